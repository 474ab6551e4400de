"""Pseudonymisation at source: identifiers become keyed tokens before anything is sent.

A token is ``scheme:`` + base64url(HMAC-SHA256(place key, normalised value)), unpadded.
Normalisation makes the same person give the same token in every partner's system;
validation (e.g. the NHS number's mod-11 check digit) stops typos becoming new people.
Errors name the scheme and the problem, never the value.
"""

from __future__ import annotations

import base64
import hmac
import re
import unicodedata
from collections.abc import Callable
from datetime import date

from hub.errors import InputError

__all__ = [
    "IdentifierError",
    "normalise_council_ref",
    "normalise_nhs_number",
    "normalise_upn",
    "person_key",
    "token",
]


class IdentifierError(InputError):
    """Raised when an identifier fails normalisation or its check; names the scheme only."""


def normalise_nhs_number(value: str) -> str:
    """Ten digits with a valid mod-11 check digit; spaces and dashes are dropped."""
    digits = re.sub(r"[\s-]", "", value)
    if not re.fullmatch(r"\d{10}", digits):
        raise IdentifierError("nhs: an NHS number must be 10 digits")
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    if check == 10 or check != int(digits[9]):
        raise IdentifierError("nhs: the NHS number's check digit is wrong")
    return digits


_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # the DfE check-letter alphabet (no I, O, S)


def normalise_upn(value: str) -> str:
    """A 13-character school Unique Pupil Number whose first letter checks out (DfE rule)."""
    upn = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z]\d{11}[0-9A-Z]", upn):
        raise IdentifierError("upn: a UPN is a letter, 11 digits and a digit or letter")
    weighted = sum(
        _upn_value(ch) * weight for ch, weight in zip(upn[1:], range(2, 14), strict=True)
    )
    if _UPN_LETTERS[weighted % 23] != upn[0]:
        raise IdentifierError("upn: the UPN's check letter is wrong")
    return upn


def _upn_value(ch: str) -> int:
    if ch.isdigit():
        return int(ch)
    return _UPN_LETTERS.index(ch) if ch in _UPN_LETTERS else 0


def normalise_council_ref(value: str) -> str:
    """A council reference: trimmed, upper case, inner spaces dropped, 3 to 32 characters."""
    ref = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z0-9/-]{3,32}", ref):
        raise IdentifierError("council: a council reference is 3-32 letters, digits, '/' or '-'")
    return ref


def person_key(given_name: str, family_name: str, born: date, postcode: str) -> str:
    """Fallback key from name, date of birth and postcode, normalised for spelling noise."""

    def fold(text: str) -> str:
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        return re.sub(r"[^a-z]", "", ascii_text.lower())

    pc = re.sub(r"\s", "", postcode).upper()
    if not re.fullmatch(r"[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}", pc):
        raise IdentifierError("person: the postcode is not a UK postcode")
    if not fold(given_name) or not fold(family_name):
        raise IdentifierError("person: a given and a family name are both needed")
    return f"{fold(given_name)}|{fold(family_name)}|{born.isoformat()}|{pc}"


def _already_normalised(value: str) -> str:
    return value  # ``person_key`` output: normalised when it was made


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "nhs": normalise_nhs_number,
    "upn": normalise_upn,
    "council": normalise_council_ref,
    "person": _already_normalised,
}


def token(scheme: str, value: str, place_key: bytes) -> str:
    """The pseudonymous token for ``value`` under ``scheme`` (normalised and checked first)."""
    normalise = _NORMALISERS.get(scheme)
    if normalise is None:
        raise IdentifierError(
            f"unknown identifier scheme {scheme!r}; use one of {sorted(_NORMALISERS)}"
        )
    if not place_key:
        raise IdentifierError("the place key is empty")
    digest = hmac.digest(place_key, f"{scheme}|{normalise(value)}".encode(), "sha256")
    return f"{scheme}:{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"
