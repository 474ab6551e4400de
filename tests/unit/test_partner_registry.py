"""Partners added while the hub runs: the registry's records, and what joining one does to
a worker (built without a broker: nothing connects until the app starts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.app import Hub
from hub.config import Settings
from hub.errors import ConfigError, InputError
from hub.onboarding import Handover, _partner
from hub.partner_join import join
from hub.partner_registry import Registration, decode, encode
from hub.partners import Partner
from hub.users import Role, User, UserDirectory, hash_token

TOKEN = "a-new-partners-ingest-token-of-some-length"


def _registration(partner_id: str = "eastside-food-bank", **changes: object) -> Registration:
    partner = Partner(id=partner_id, name="Eastside Food Bank", sector="charity")
    user = User(
        id=f"{partner_id}-feed",
        role=Role.PARTNER,
        partner=partner_id,
        token_sha256=hash_token(TOKEN),
    )
    return Registration(partner=partner, ingest_user=user, **changes)


def _hub(tmp_path: Path) -> Hub:
    return Hub(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path, topic_prefix="x."))


def test_a_registration_reads_back_as_written_and_holds_no_token() -> None:
    registration = _registration()
    value = encode(registration)
    assert decode(value) == registration
    assert TOKEN.encode() not in value


def test_a_registration_cannot_give_an_ingest_user_to_another_partner() -> None:
    other = _registration("westside-advice").ingest_user
    with pytest.raises(ValueError, match="ingest_user must have role partner"):
        Registration(partner=_registration().partner, ingest_user=other)


def test_an_unreadable_registration_names_the_field_and_rule_not_the_value() -> None:
    value = encode(_registration()).replace(b'"charity"', b'"Charity Shop 42"')
    with pytest.raises(InputError, match=r"partner\.sector") as caught:
        decode(value)
    assert "Charity Shop" not in str(caught.value)
    with pytest.raises(InputError):
        decode(b"not json")


def test_a_new_partner_joins_the_gate_and_links_streams_and_its_user_is_answered(
    tmp_path: Path,
) -> None:
    hub = _hub(tmp_path)
    gate, links = hub.streams["gate"], hub.streams["links"]
    before = len(gate.topics)
    assert hub.users.authenticate(f"Bearer {TOKEN}") is None

    assert join(hub, _registration()) is True

    assert list(gate.topics)[-1] == "x.partner.eastside-food-bank.events"
    assert list(links.topics)[-1] == "x.partner.eastside-food-bank.links"
    assert len(gate.topics) == before + 1
    assert hub.readers["x.partner.eastside-food-bank.events"] == "gate"
    assert hub.readers["x.partner.eastside-food-bank.links"] == "links"
    assert "eastside-food-bank" in hub.partner_ids
    assert hub.partners[-1].id == "eastside-food-bank"
    user = hub.users.authenticate(f"Bearer {TOKEN}")
    assert user is not None and user.partner == "eastside-food-bank"


def test_joining_again_adds_no_topic_and_a_removal_refuses_the_token_but_keeps_reading(
    tmp_path: Path,
) -> None:
    hub = _hub(tmp_path)
    join(hub, _registration())
    topics = list(hub.streams["gate"].topics)
    assert join(hub, _registration()) is False
    assert list(hub.streams["gate"].topics) == topics

    assert join(hub, _registration(removed=True)) is False

    assert hub.users.authenticate(f"Bearer {TOKEN}") is None
    assert list(hub.streams["gate"].topics) == topics  # what it sent still reaches a fate
    assert "eastside-food-bank" in hub.partner_ids


def test_a_partner_of_the_partners_file_gains_no_second_topic(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    topics = list(hub.streams["gate"].topics)
    assert join(hub, _registration("council-housing")) is False
    assert list(hub.streams["gate"].topics) == topics


def test_a_user_whose_token_another_user_holds_is_not_added() -> None:
    owner = User(id="alex", role=Role.STEWARD, token_sha256=hash_token(TOKEN))
    directory = UserDirectory([owner])
    assert directory.add(_registration().ingest_user) is False
    found = directory.authenticate(f"Bearer {TOKEN}")
    assert found is not None and found.id == "alex"


def test_adding_a_user_again_replaces_its_old_token() -> None:
    directory = UserDirectory([])
    user = _registration().ingest_user
    assert directory.add(user)
    rotated = user.model_copy(update={"token_sha256": hash_token("another-token")})
    assert directory.add(rotated)
    assert directory.authenticate(f"Bearer {TOKEN}") is None
    assert directory.authenticate("Bearer another-token") == rotated


@pytest.mark.parametrize(
    ("partner_id", "name", "sector", "field"),
    [
        ("Eastside Food Bank", "Eastside", "charity", "id"),
        ("e" * 60, "Eastside", "charity", "id"),
        ("eastside", "", "charity", "name"),
        ("eastside", "Eastside", "Charity 42", "sector"),
    ],
)
def test_partners_add_names_the_field_and_rule_it_refuses(
    partner_id: str, name: str, sector: str, field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _partner(partner_id, name, sector)
    message = str(caught.value)
    assert message.startswith(f"{field}: ")
    for value in (partner_id, name, sector):
        assert not value or value not in message.removeprefix(f"{field}: ")


def test_the_handover_names_where_the_secrets_are_never_the_secrets(tmp_path: Path) -> None:
    settings = Settings(
        bootstrap_servers="kafka-1:9093",
        security_protocol="SASL_SSL",
        sasl_username="admin",
        sasl_password="admin-password-not-for-partners",
        ssl_cafile=tmp_path / "ca.crt",
    )
    handover = Handover(
        partner=_registration().partner,
        settings=settings,
        kafka_user="partner-eastside-food-bank",
        password_file=tmp_path / "kafka.password",
        token_file=tmp_path / "ingest.token",
        workers_joined=True,
    )
    text = handover.describe()
    assert "admin-password-not-for-partners" not in text
    assert TOKEN not in text
    for needed in (
        "kafka-1:9093",
        "partner-eastside-food-bank",
        str(tmp_path / "kafka.password"),
        str(tmp_path / "ingest.token"),
        str(tmp_path / "ca.crt"),
        "partner.eastside-food-bank.events",
        "/catalogue",
        "PLACEHUB_SASL_PASSWORD_FILE=",
        'Publisher("eastside-food-bank"',
    ):
        assert needed in text, needed
