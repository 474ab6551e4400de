from datetime import date

import pytest

from connectors.pseudonymise import (
    IdentifierError,
    normalise_council_ref,
    normalise_nhs_number,
    normalise_upn,
    person_key,
    token,
)

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
    assert a.startswith("nhs:") and len(a) == len("nhs:") + 43
    assert "9434765919" not in a
    assert token("council", "abc 123", KEY) == token("council", "ABC123", KEY)


def test_unknown_scheme_and_empty_key_are_errors() -> None:
    with pytest.raises(IdentifierError, match="unknown identifier scheme"):
        token("passport", "X", KEY)
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
