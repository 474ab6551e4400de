"""API callers: bearer and Basic credentials, and a users file that names every partner."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hub.config import PROJECT_ROOT
from hub.errors import ConfigError
from hub.users import Role, UserDirectory, hash_token

USERS = PROJECT_ROOT / "deploy/local/users.yaml"


def basic(user_id: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user_id}:{token}".encode()).decode()


def test_basic_credentials_are_the_user_id_and_its_token() -> None:
    """What Confluent clients send (``basic.auth.user.info``)."""
    users = UserDirectory.load(USERS)
    user = users.authenticate(basic("city-health-feed", "demo-partner-health"))
    assert user is not None and user.role is Role.PARTNER and user.partner == "city-health"
    assert users.authenticate(basic("admin", "demo-partner-health")) is None  # not its token
    assert users.authenticate(basic("city-health-feed", "wrong")) is None
    assert users.authenticate("Basic not-base64!") is None
    assert users.authenticate("Basic " + base64.b64encode(b"no colon").decode()) is None
    assert users.by_id("admin") is not None and users.by_id("nobody") is None


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("{id: feed, role: partner}", "a user of role partner must name its partner"),
        ("{id: alex, role: practitioner}", "a user of role practitioner must name its partner"),
        (
            "{id: pat, role: privacy-officer}",
            "a user of role privacy-officer must name its partner",
        ),
        ("{id: jo, role: steward, team: money}", "a team belongs to a partner"),
    ],
)
def test_a_user_acting_for_a_partner_must_name_it(tmp_path: Path, entry: str, rule: str) -> None:
    """A partner token without a partner read every partner's books."""
    path = tmp_path / "users.yaml"
    path.write_text(f"users:\n  - {entry[:-1]}, token_sha256: {hash_token('t')}}}\n")
    with pytest.raises(ConfigError) as caught:
        UserDirectory.load(path)
    assert str(path) in str(caught.value)
    assert "users.0" in str(caught.value) and rule in str(caught.value)


def test_two_users_may_not_share_a_token(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    same = hash_token("t")
    path.write_text(
        f"users:\n  - {{id: a, role: steward, token_sha256: {same}}}\n"
        f"  - {{id: b, role: admin, token_sha256: {same}}}\n"
    )
    with pytest.raises(ConfigError, match="user b has the same token as another user"):
        UserDirectory.load(path)


def test_a_user_acting_for_a_partner_the_place_does_not_know_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(
        f"users:\n  - {{id: a, role: steward, token_sha256: {hash_token('s')}}}\n"
        f"  - {{id: b, role: partner, partner: unknown-trust, token_sha256: {hash_token('t')}}}\n"
    )
    assert UserDirectory.load(path).by_id("b") is not None  # no partners given: not checked
    with pytest.raises(ConfigError) as caught:
        UserDirectory.load(path, {"city-health", "council-housing"})
    assert str(caught.value) == f"{path}: users.1.partner: not a partner of the partners file"
    assert UserDirectory.load(path, {"unknown-trust"}).by_id("b") is not None
