from pathlib import Path

import pytest

from hub.config import PROJECT_ROOT, Settings, load_settings
from hub.errors import ConfigError
from hub.partners import load_partners
from hub.topics import Topics
from hub.users import Role, UserDirectory


def test_shipped_demo_config_loads() -> None:
    users = UserDirectory.load(PROJECT_ROOT / "deploy/local/users.yaml")
    user = users.authenticate("Bearer demo-practitioner-housing")
    assert user is not None and user.role is Role.PRACTITIONER and user.partner == "council-housing"
    assert users.authenticate("Bearer wrong") is None
    assert users.authenticate("demo-admin") is None  # not a Bearer header
    partners = load_partners(PROJECT_ROOT / "deploy/local/partners.yaml")
    assert partners[0].id == "council-housing"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("partners: [", "not valid YAML"),
        ("partners: []", "partners: List should have at least 1 item"),
        ("partners:\n  - {id: Bad_Id, name: x, sector: health}", "partners.0.id"),
        (
            "partners:\n  - {id: aa, name: x, sector: health}"
            "\n  - {id: aa, name: y, sector: health}",
            "duplicate id aa",
        ),
    ],
)
def test_bad_partners_files_name_file_key_and_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "partners.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_partners(path)
    assert str(path) in str(caught.value)


def test_missing_users_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read users file"):
        UserDirectory.load(tmp_path / "absent.yaml")


def _settings_with(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Load settings afresh with one variable set (the cache is cleared before and after)."""
    monkeypatch.setenv(name, value)
    load_settings.cache_clear()
    try:
        load_settings()
    finally:
        load_settings.cache_clear()


def test_settings_fail_fast_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="PLACEHUB_PARTITIONS"):
        _settings_with(monkeypatch, "PLACEHUB_PARTITIONS", "zero")


def test_unknown_table_store_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="PLACEHUB_STORE: String should match pattern"):
        _settings_with(monkeypatch, "PLACEHUB_STORE", "redis://")


def test_place_key_file_wins_and_unreadable_file_is_named(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("secret\n")
    assert Settings(place_key_file=key_file).place_key_bytes() == b"secret"
    with pytest.raises(ConfigError, match="PLACEHUB_PLACE_KEY_FILE"):
        Settings(place_key_file=tmp_path / "missing").place_key_bytes()


def test_topic_names_and_partner_of() -> None:
    topics = Topics("t1.")
    assert topics.partner("city-health") == "t1.partner.city-health.events"
    assert topics.partner_of("t1.partner.city-health.events") == "city-health"
    assert topics.partner_of("t2.partner.city-health.events") is None
    assert topics.partner_of("t1.hub.events") is None
