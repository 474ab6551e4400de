"""The ACL model as plain data, and apply/revoke against a fake admin client."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.admin import ACL, ACLFilter, ACLOperation, ResourceType, ScramMechanism
from kafka.errors import NoError, SecurityDisabledError

from hub import kafka_acls
from hub.errors import BrokerError, ConfigError
from hub.kafka_acls import Grant, Role
from hub.topics import Topics


def _rows(principal: kafka_acls.Principal) -> set[tuple[str, str, str, str]]:
    return {(g.resource, g.name, g.pattern, g.operation) for g in kafka_acls.grants_for(principal)}


def test_a_partner_writes_only_its_own_topics_and_reads_only_its_positions() -> None:
    rows = _rows(kafka_acls.partner("food-bank", Topics("t1.")))
    assert rows == {
        ("topic", "t1.partner.food-bank.events", "literal", "WRITE"),
        ("topic", "t1.partner.food-bank.events", "literal", "DESCRIBE"),
        ("topic", "t1.partner.food-bank.links", "literal", "WRITE"),
        ("topic", "t1.partner.food-bank.links", "literal", "DESCRIBE"),
        ("topic", "t1.consent.records", "literal", "WRITE"),
        ("topic", "t1.consent.records", "literal", "DESCRIBE"),
        ("topic", "t1.partner.food-bank.positions", "literal", "READ"),
        ("topic", "t1.partner.food-bank.positions", "literal", "WRITE"),
        ("topic", "t1.partner.food-bank.positions", "literal", "DESCRIBE"),
        ("cluster", "kafka-cluster", "literal", "IDEMPOTENT_WRITE"),
    }


def test_a_partner_has_no_prefix_grant_no_group_and_creates_nothing() -> None:
    grants = kafka_acls.grants_for(kafka_acls.partner("food-bank"))
    assert all(g.pattern == "literal" for g in grants)
    assert not [g for g in grants if g.resource == "group"]
    assert not [g for g in grants if g.operation in ("CREATE", "ALTER_CONFIGS", "DELETE")]
    readable = {g.name for g in grants if g.operation == "READ"}
    assert readable == {"partner.food-bank.positions"}


def test_a_connector_holds_exactly_its_partners_grants() -> None:
    topics = Topics("p.")
    made = kafka_acls.connector("council-housing", "sql-1", topics)
    assert made.name == "connector-council-housing-sql-1"
    assert made.role is Role.CONNECTOR
    assert kafka_acls.grants_for(made) == kafka_acls.grants_for(
        kafka_acls.partner("council-housing", topics)
    )


def test_a_worker_owns_the_hub_topics_its_app_internals_and_its_groups() -> None:
    rows = _rows(kafka_acls.worker("1", "placehub", Topics()))
    for name, pattern in [
        ("partner.", "prefixed"),
        ("hub.", "prefixed"),
        ("placehub-", "prefixed"),
        ("consent.records", "literal"),
        ("_schemas", "literal"),
    ]:
        for op in ("READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"):
            assert ("topic", name, pattern, op) in rows
    groups = {(name, pattern, op) for kind, name, pattern, op in rows if kind == "group"}
    assert groups == {
        ("placehub", "literal", "READ"),
        ("placehub", "literal", "DESCRIBE"),
        ("placehub-", "prefixed", "READ"),
        ("placehub-", "prefixed", "DESCRIBE"),
    }
    assert ("cluster", "kafka-cluster", "literal", "IDEMPOTENT_WRITE") in rows
    # Nothing beyond those: no DELETE, no cluster ALTER, no transactional ids.
    assert {op for *_, op in rows} <= {
        "READ",
        "WRITE",
        "DESCRIBE",
        "CREATE",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
    }


def test_the_admin_is_a_super_user_with_no_acls() -> None:
    assert kafka_acls.grants_for(kafka_acls.admin()) == []
    assert kafka_acls.admin().kafka_principal == "User:admin"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: kafka_acls.partner("Food Bank"), "partner_id"),
        (lambda: kafka_acls.partner("x"), "partner_id"),
        (lambda: kafka_acls.connector("food-bank", "a b"), "connector name"),
        (lambda: kafka_acls.worker("", "placehub"), "worker name"),
        (lambda: kafka_acls.worker("1", ""), "app_id"),
    ],
)
def test_bad_names_are_refused_naming_the_field_not_the_value(make: Any, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make()
    assert str(caught.value).startswith(f"{field}:")
    assert "Food Bank" not in str(caught.value) and "a b" not in str(caught.value)


def test_to_acls_allows_from_any_host_as_the_user_principal() -> None:
    acls = kafka_acls.to_acls(kafka_acls.partner("food-bank"))
    assert len(acls) == len(kafka_acls.grants_for(kafka_acls.partner("food-bank")))
    assert {acl.principal for acl in acls} == {"User:partner-food-bank"}
    assert {acl.host for acl in acls} == {"*"}
    cluster = [acl for acl in acls if acl.resource_pattern.resource_type == ResourceType.CLUSTER]
    assert [acl.operation for acl in cluster] == [ACLOperation.IDEMPOTENT_WRITE]


class FakeAdmin:
    """Holds ACLs and SCRAM users the way the broker would, for one test."""

    def __init__(self) -> None:
        self.acls: list[ACL] = []
        self.users: dict[str, tuple[ScramMechanism, int]] = {}

    def create_acls(self, acls: list[ACL]) -> dict[str, list[Any]]:
        self.acls += [acl for acl in acls if acl not in self.acls]
        return {"succeeded": list(acls), "failed": []}

    def _matches(self, acl: ACL, flt: ACLFilter) -> bool:
        if isinstance(flt, ACL):
            return acl == flt
        return acl.principal == flt.principal

    def describe_acls(self, acl_filter: ACLFilter) -> tuple[list[ACL], Any]:
        return [a for a in self.acls if self._matches(a, acl_filter)], NoError

    def delete_acls(self, acl_filters: list[ACLFilter]) -> list[Any]:
        results = []
        for flt in acl_filters:
            gone = [a for a in self.acls if self._matches(a, flt)]
            self.acls = [a for a in self.acls if a not in gone]
            results.append((flt, gone, NoError))
        return results

    def alter_user_scram_credentials(self, alterations: list[Any]) -> dict[str, str | None]:
        answer: dict[str, str | None] = {}
        for change in alterations:
            if hasattr(change, "salted_password"):
                self.users[change.user] = (change.mechanism, change.iterations)
                answer[change.user] = None
            elif self.users.pop(change.user, None) is None:
                answer[change.user] = "Attempt to delete a user credential that does not exist"
            else:
                answer[change.user] = None
        return answer


def test_onboard_sets_the_credential_and_the_acls_and_apply_is_idempotent() -> None:
    client = FakeAdmin()
    principal = kafka_acls.partner("food-bank")
    added, removed = kafka_acls.onboard(client, principal, kafka_acls.new_password())
    assert (added, removed) == (len(kafka_acls.grants_for(principal)), 0)
    assert client.users == {
        "partner-food-bank": (ScramMechanism.SCRAM_SHA_512, kafka_acls.SCRAM_ITERATIONS)
    }
    assert sorted(map(repr, client.acls)) == sorted(map(repr, kafka_acls.to_acls(principal)))
    assert kafka_acls.apply(client, principal) == (0, 0)


def test_apply_removes_grants_the_model_no_longer_gives() -> None:
    client = FakeAdmin()
    principal = kafka_acls.partner("food-bank")
    worker_acls = kafka_acls.to_acls(kafka_acls.worker("1", "placehub"))
    stray = next(a for a in worker_acls if a.resource_pattern.resource_type == ResourceType.GROUP)
    stray.principal = principal.kafka_principal
    client.acls.append(stray)
    added, removed = kafka_acls.apply(client, principal)
    assert removed == 1
    assert stray not in client.acls
    assert added == len(kafka_acls.grants_for(principal))


def test_revoke_removes_acls_and_credential_and_may_run_twice() -> None:
    client = FakeAdmin()
    principal = kafka_acls.connector("food-bank", "csv")
    other = kafka_acls.partner("food-bank")
    kafka_acls.onboard(client, principal, "a" * 48)
    kafka_acls.onboard(client, other, "b" * 48)
    assert kafka_acls.revoke(client, principal) == len(kafka_acls.grants_for(principal))
    assert principal.name not in client.users
    assert {acl.principal for acl in client.acls} == {other.kafka_principal}
    assert kafka_acls.revoke(client, principal) == 0


def test_a_broker_refusal_is_a_broker_error() -> None:
    class Refusing(FakeAdmin):
        def describe_acls(self, acl_filter: ACLFilter) -> tuple[list[ACL], Any]:
            raise SecurityDisabledError()

    with pytest.raises(BrokerError, match="SecurityDisabledError"):
        kafka_acls.apply(Refusing(), kafka_acls.partner("food-bank"))


def test_new_passwords_are_long_hex_and_differ() -> None:
    one, two = kafka_acls.new_password(), kafka_acls.new_password()
    assert one != two and len(one) == 48 and int(one, 16) >= 0


def test_grants_are_plain_sortable_rows() -> None:
    grants = kafka_acls.grants_for(kafka_acls.partner("food-bank"))
    assert grants == sorted(grants)
    assert all(isinstance(g, Grant) for g in grants)
