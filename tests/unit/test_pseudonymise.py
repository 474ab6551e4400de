import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from connectors.pseudonymise import (
    IdentifierError,
    key_id,
    load_place_key,
    normalise_council_ref,
    normalise_nhs_number,
    normalise_upn,
    person_key,
    token,
)
from hub.config import TEST_PLACE_KEY, Settings
from hub.errors import ConfigError
from hub.models import TOKEN_PATTERN
from hub.worker import check_place_key

KEY = b"unit-test-key"


@pytest.mark.parametrize("raw", ["9434765919", "943 476 5919", "943-476-5919", " 9434765919 "])
def test_nhs_number_formats_normalise_to_ten_digits(raw: str) -> None:
    assert normalise_nhs_number(raw) == "9434765919"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("9434765918", "check digit"),
        ("943476591", "10 digits"),
        ("94347659190", "10 digits"),
        ("94347659l9", "10 digits"),
        ("", "10 digits"),
    ],
)
def test_bad_nhs_numbers_are_rejected_without_echoing_them(raw: str, problem: str) -> None:
    with pytest.raises(IdentifierError, match=problem) as caught:
        normalise_nhs_number(raw)
    assert raw.strip() == "" or raw not in str(caught.value)


def test_nhs_number_whose_check_digit_would_be_ten_is_invalid() -> None:
    # 123456789x: weighted sum 210 → 11 - (210 % 11) = 10, so no digit is valid.
    for last in "0123456789":
        with pytest.raises(IdentifierError):
            normalise_nhs_number("123456789" + last)


def test_same_person_same_token_whatever_the_format() -> None:
    assert token("nhs", "943 476 5919", KEY) == token("nhs", "9434765919", KEY)


def test_tokens_differ_by_key_and_by_scheme_and_hide_the_value() -> None:
    a = token("nhs", "9434765919", KEY)
    assert a != token("nhs", "9434765919", b"another-key")
    assert a.startswith(f"nhs:{key_id(KEY)}:") and len(a) == len("nhs:") + 9 + 43
    assert re.fullmatch(TOKEN_PATTERN, a)
    assert "9434765919" not in a
    assert token("council", "abc 123", KEY) == token("council", "ABC123", KEY)


def test_tokens_carry_the_place_key_id_derived_from_the_key() -> None:
    assert key_id(KEY) == key_id(KEY) != key_id(b"another-key")
    assert re.fullmatch(r"[a-z2-7]{8}", key_id(KEY))
    assert token("upn", "A000000000000", KEY).split(":")[1] == key_id(KEY)


def test_unknown_scheme_and_empty_key_are_errors() -> None:
    with pytest.raises(IdentifierError, match="unknown identifier scheme") as caught:
        token("9434765919", "X", KEY)
    assert "9434765919" not in str(caught.value)
    with pytest.raises(IdentifierError, match="place key is empty"):
        token("nhs", "9434765919", b"")


def test_upn_check_letter() -> None:
    # A (check letter) + 12 characters: the weighted sum of these digits is 0 mod 23 → 'A'.
    assert normalise_upn("a000000000000") == "A000000000000"
    with pytest.raises(IdentifierError, match="check letter"):
        normalise_upn("B000000000000")
    with pytest.raises(IdentifierError, match="a letter, 11 digits"):
        normalise_upn("A12")


def test_council_reference_and_person_key() -> None:
    assert normalise_council_ref(" hsg 0042 ") == "HSG0042"
    with pytest.raises(IdentifierError):
        normalise_council_ref("x")
    key = person_key("Zoë", "O'Brien", date(2010, 5, 1), "ls1 4ap")
    assert key == person_key("zoe", "OBRIEN", date(2010, 5, 1), "LS14AP")
    with pytest.raises(IdentifierError, match="postcode"):
        person_key("a", "b", date(2010, 5, 1), "nowhere")


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("999 999 9999", "one repeated digit"),  # the well-known dummy; passes the check
        ("9990000018", "reserved for testing"),  # the start of NHS England's test range
        ("0000000000", "one repeated digit"),
        ("4444444444", "one repeated digit"),
    ],
)
def test_dummy_and_test_nhs_numbers_are_refused_naming_the_rule(raw: str, rule: str) -> None:
    with pytest.raises(IdentifierError, match=rule) as caught:
        normalise_nhs_number(raw)
    assert raw not in str(caught.value) and raw.replace(" ", "") not in str(caught.value)


def test_unicode_forms_of_an_identifier_give_the_same_token() -> None:
    full_width = "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19"  # 9434765919
    assert normalise_nhs_number(full_width) == "9434765919"
    assert token("nhs", full_width, KEY) == token("nhs", "9434765919", KEY)
    assert normalise_upn("\uff41000000000000") == "A000000000000"
    with pytest.raises(IdentifierError):
        normalise_council_ref("\u0131sg-1")  # a dotless i would upper-case to an ASCII I


def test_person_scheme_only_through_person_key_parts() -> None:
    key = person_key("Jane", "Smith", date(1980, 2, 1), "AB1 2CD")
    assert token("person", key, KEY) == token("person", "Jane|Smith|1980-02-01|ab1 2cd", KEY)
    for raw in ["JANE SMITH 1980-02-01 AB1 2CD", "jane|smith|01/02/1980|AB12CD", "x|y|z"]:
        with pytest.raises(IdentifierError, match="made by person_key") as caught:
            token("person", raw, KEY)
        assert raw not in str(caught.value)
    with pytest.raises(IdentifierError, match="date of birth"):
        person_key("Jane", "Smith", date.today() + timedelta(days=1), "AB1 2CD")


def _settings(**values: object) -> Settings:
    # Only what these tests set, whatever PLACEHUB_* the environment holds.
    fields: dict[str, object] = {"place_key": None, "place_key_file": None, "allow_test_key": False}
    return Settings(**{**fields, **values})  # type: ignore[arg-type]


def test_place_key_is_required_outside_the_demo_and_tests() -> None:
    with pytest.raises(ConfigError, match="PLACEHUB_PLACE_KEY_FILE: no place key is set"):
        load_place_key(_settings())
    assert load_place_key(_settings(allow_test_key=True)).secret == TEST_PLACE_KEY.encode()


def test_the_public_test_key_is_refused_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PLACEHUB_PLACE_KEY: this is the public test key"):
        load_place_key(_settings(place_key=TEST_PLACE_KEY))
    key_file = tmp_path / "place.key"
    key_file.write_text(TEST_PLACE_KEY + "\n")
    with pytest.raises(ConfigError, match="PLACEHUB_PLACE_KEY_FILE: this is the public test"):
        load_place_key(_settings(place_key_file=key_file))
    assert load_place_key(_settings(place_key_file=key_file, allow_test_key=True)).is_test_key


def test_short_place_keys_are_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PLACEHUB_PLACE_KEY: the place key has 31 bytes"):
        load_place_key(_settings(place_key="k" * 31))
    key_file = tmp_path / "place.key"
    key_file.write_text("k" * 31)
    with pytest.raises(ConfigError, match=r"PLACEHUB_PLACE_KEY_FILE: .* at least 32"):
        load_place_key(_settings(place_key_file=key_file, allow_test_key=True))
    key_file.write_text("k" * 32 + "\n")
    key = load_place_key(_settings(place_key_file=key_file))
    assert key.secret == b"k" * 32 and key.id == key_id(b"k" * 32)
    assert "k" * 32 not in repr(key)


def test_the_worker_needs_no_key_but_refuses_a_short_or_public_one() -> None:
    check_place_key(_settings())  # partners tokenise; the hub never needs the key
    with pytest.raises(ConfigError, match="PLACEHUB_PLACE_KEY: this is the public test key"):
        check_place_key(_settings(place_key=TEST_PLACE_KEY))
    with pytest.raises(ConfigError, match="PLACEHUB_PLACE_KEY"):
        check_place_key(_settings(place_key="short"))
