"""Consents before events: a worker stops handing its gate partner records while its
consent partitions are far behind.

A partner onboarding sends its consents and its history together. Read together, most of
the events meet no consent yet and are held in quarantine, to be released again when their
consent arrives: two more hops each. Meanwhile the gate's partner partitions (one per
partner per partition) take most of the consumer's turns from the consent partitions, so
the consents come in slower still. In the million-person bench load (issue 15), the gate
had held 526,194 events while 132,025 consents had been read, and about 20 people a second
reached their view. Sent together to 100,000 people, 50,449 of 90,000 events were held and
released again without this wait, none with it, and the step loaded 601 and 832 people a
second against 538 and 649 (the bench's scale step, two runs in turn; README, issue 15).

So at each of the watchdog's looks, while the consent partitions this worker owns hold more
than ``bound`` records past where their stage may be committed, the gate's partitions are
paused (Faust's ``Consumer.pause_partitions``: Faust asks aiokafka only for its active
partitions; what was already fetched waits, and nothing is skipped or committed). They are
resumed once that backlog is at most half the bound, so that a load does not flap at the
edge. The pause is applied again at every look while it lasts, since Faust's own flow
control (a rebalance's recovery, a full stream buffer) may make a partition active again.
Events under an agreement wait too: they are a bulk load's minority, and they wait in
Kafka, not in memory.

With several workers, each looks at the consent partitions it owns: in a bulk load every
consent partition has a backlog, so every worker's gate waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from hub.runtime.commits import Commits

__all__ = ["ConsentsFirst", "backlog", "paused_next"]

log = logging.getLogger(__name__)


def backlog(
    commits: Commits,
    topic: str,
    highwaters: Mapping[TP, int],
    committed: Mapping[TP, int | None],
) -> int:
    """Records of ``topic`` (of the partitions in ``highwaters``) past where their stage
    may be committed."""
    return sum(
        commits.behind(tp, highwater, committed.get(tp))
        for tp, highwater in highwaters.items()
        if tp.topic == topic
    )


def paused_next(records: int, bound: int, paused: bool) -> bool:
    """Whether the gate waits after a look that found ``records`` consents behind: over
    ``bound`` it waits; once waiting, until they are at most half of it."""
    return records > bound or (paused and records > bound // 2)


@dataclass
class ConsentsFirst:
    """Pauses and resumes the gate's partitions by the consent backlog (module docstring)."""

    consumer: Any  # Faust's consumer
    commits: Commits
    consent_topic: str
    bound: int
    gate: str = "gate"  # the stage whose partitions wait (its topics grow as partners join)
    show: Callable[[bool], None] = lambda paused: None  # a gauge: 1 while the gate waits
    paused: bool = False
    _gate: set[TP] = field(default_factory=set)

    def look(self, highwaters: Mapping[TP, int], committed: Mapping[TP, int | None]) -> None:
        """Decide from one look's offsets; pause or resume the gate's partitions."""
        records = backlog(self.commits, self.consent_topic, highwaters, committed)
        paused = paused_next(records, self.bound, self.paused)
        readers = self.commits.readers
        gate = {tp for tp in self.consumer.assignment() if readers.get(tp.topic) == self.gate}
        if paused:
            self.consumer.pause_partitions(gate)
        elif self.paused:
            self.consumer.resume_partitions(gate)  # what a rebalance took, Faust forgot
        if paused != self.paused:
            log.info(
                "%s the gate's %d partner partitions: %d consent records not yet read "
                "(the bound is %d)",
                "pausing" if paused else "resuming",
                len(gate),
                records,
                self.bound,
            )
        self.paused, self._gate = paused, gate if paused else set()
        self.show(paused)

    def holds(self, tp: TP) -> bool:
        """Whether ``tp`` waits here on purpose (the watchdog does not count it stuck)."""
        return self.paused and tp in self._gate
