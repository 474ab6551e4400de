"""The audit trail of people's data: one ``AuditRecord`` on ``hub.audit`` per access.

Every read of person data (a view, a lookup, a break-glass read, an alert shown, an access
history) is answered only once its record is in Kafka, whatever its outcome, so the trail
cannot miss an answer that was given. A record names the partners whose entries the answer
showed (``owners``), which is how a data owner lists the reads of its data
(``hub.owner_reads``). Records are keyed by person (or by action when there is
none), so a person's whole history is one partition to read.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING

from hub.batch import partition_for
from hub.models import AuditRecord, utc_now
from hub.runtime import producer_of
from hub.users import User

if TYPE_CHECKING:
    from hub.app import Hub

__all__ = ["write_audit"]


async def write_audit(
    hub: Hub,
    user: User,
    person_id: str | None,
    outcome: str,
    action: str,
    audit_id: str = "",
    owners: Collection[str] = (),
) -> None:
    """Write ``user``'s ``action`` on ``person_id`` with ``outcome``; return once Kafka has
    it. ``owners``: the partners whose entries the answer shows (every caller that shows a
    person's data passes them, so the data owners can list the read). Person-level outcomes
    are counted in ``placehub_person_reads`` (rounded)."""
    record = AuditRecord(
        audit_id=audit_id or str(uuid.uuid4()),
        at=utc_now(),
        actor=user.id,
        role=user.role.value,
        action=action,
        person_id=person_id,
        outcome=outcome,  # type: ignore[arg-type]
        owners=sorted(set(owners)),
    )
    value = hub.serde.encode(record, f"{hub.topics.audit}-value")
    key = (person_id or action).encode()
    partition = partition_for(key, hub.settings.partitions)
    producer = producer_of(hub.app)
    delivery = await producer.send(hub.topics.audit, value, key=key, partition=partition)
    await delivery
    if person_id is not None:
        hub.metrics.person_reads.labels(outcome).inc()
