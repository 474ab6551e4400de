"""Pseudonymisation at source: identifiers become keyed tokens before anything is sent.

A token is ``scheme:key-id:`` + base64url(HMAC-SHA256(place key, normalised value)),
unpadded. The key id names the place key a token was made with (it is derived from the
key, so every partner holding the key writes the same id): a key rotation can see which
tokens are still under the old key. Tokens without a key id (``scheme:digest``) were made
before key ids and are still read, never made.

Normalisation makes the same person give the same token in every partner's system (Unicode
compatibility forms folded, separators dropped, case fixed); validation (e.g. the NHS
number's mod-11 check digit) stops typos becoming new people, and known dummy numbers are
refused at the source. The ``person`` scheme is reachable only through ``person_key``'s
parts. Errors name the scheme and the rule, never the value.
"""

from __future__ import annotations

import base64
import hmac
import operator
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from hub.config import TEST_PLACE_KEY, Settings
from hub.errors import ConfigError, InputError

__all__ = [
    "MIN_PLACE_KEY_BYTES",
    "SCHEMES",
    "IdentifierError",
    "PlaceKey",
    "is_test_range_nhs_number",
    "key_id",
    "load_place_key",
    "normalise_council_ref",
    "normalise_nhs_number",
    "normalise_upn",
    "person_key",
    "token",
]

MIN_PLACE_KEY_BYTES = 32
_KEY_ID_LABEL = b"placehub place key id"
# NHS England reserves 999 000 0000 - 999 999 9999 for test data (they pass the check digit).
_NHS_TEST_RANGE = ("9990000000", "9999999999")
_EARLIEST_BIRTH = date(1880, 1, 1)
# Compiled once: the SDK normalises every identifier of every event it publishes.
_SPACES_AND_DASHES = re.compile(r"[\s-]")
_SPACES = re.compile(r"\s")
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_UPN = re.compile(r"[A-Z][0-9]{11}[0-9A-Z]")
_COUNCIL_REF = re.compile(r"[A-Z0-9/-]{3,32}")


class IdentifierError(InputError):
    """Raised when an identifier fails normalisation or its check; names the scheme only."""


def _folded(value: str) -> str:
    """Unicode compatibility forms folded (full-width digits become ASCII digits), so that
    the same identifier typed on another keyboard gives the same token."""
    return unicodedata.normalize("NFKC", value)


def normalise_nhs_number(value: str) -> str:
    """Ten digits with a valid mod-11 check digit, not a dummy or test number; spaces and
    dashes are dropped."""
    digits = _SPACES_AND_DASHES.sub("", _folded(value))
    if not _TEN_DIGITS.fullmatch(digits):
        raise IdentifierError("nhs: an NHS number must be 10 digits")
    total = sum(map(operator.mul, map(int, digits[:9]), range(10, 1, -1)))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    if check == 10 or check != int(digits[9]):
        raise IdentifierError("nhs: the NHS number's check digit is wrong")
    if len(set(digits)) == 1:
        raise IdentifierError("nhs: an NHS number of one repeated digit is a dummy, refused")
    if is_test_range_nhs_number(digits):
        raise IdentifierError(
            "nhs: NHS numbers 999 000 0000 to 999 999 9999 are reserved for testing, refused"
        )
    return digits


def is_test_range_nhs_number(digits: str) -> bool:
    """True for NHS England's test range (999 000 0000 - 999 999 9999): never a person."""
    return _NHS_TEST_RANGE[0] <= digits <= _NHS_TEST_RANGE[1]


_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # the DfE check-letter alphabet (no I, O, S)


def normalise_upn(value: str) -> str:
    """A 13-character school Unique Pupil Number whose first letter checks out (DfE rule)."""
    upn = _SPACES.sub("", _folded(value)).upper()
    if not _UPN.fullmatch(upn):
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
    ref = _SPACES.sub("", _folded(value))
    if not ref.isascii() or not _COUNCIL_REF.fullmatch(ref.upper()):
        raise IdentifierError("council: a council reference is 3-32 letters, digits, '/' or '-'")
    return ref.upper()


def person_key(given_name: str, family_name: str, born: date, postcode: str) -> str:
    """Fallback key from name, date of birth and postcode, normalised for spelling noise.

    The only way to the ``person`` scheme: a name-date-postcode string written any other
    way would give another token for the same person.
    """

    def fold(text: str) -> str:
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        return re.sub(r"[^a-z]", "", ascii_text.lower())

    pc = re.sub(r"\s", "", _folded(postcode)).upper()
    if not re.fullmatch(r"[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}", pc):
        raise IdentifierError("person: the postcode is not a UK postcode")
    if not fold(given_name) or not fold(family_name):
        raise IdentifierError("person: a given and a family name are both needed")
    if not _EARLIEST_BIRTH <= born <= date.today():
        raise IdentifierError("person: the date of birth is in the future or before 1880")
    return f"{fold(given_name)}|{fold(family_name)}|{born.isoformat()}|{pc}"


def _person(value: str) -> str:
    """A ``person_key`` value, checked by making it again from its parts."""
    parts = value.split("|")
    if len(parts) == 4 and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", parts[2]):
        try:
            born = date.fromisoformat(parts[2])
        except ValueError:
            pass
        else:
            return person_key(parts[0], parts[1], born, parts[3])
    raise IdentifierError(
        "person: a person identifier must be made by person_key(given name, family name, "
        "date of birth, postcode), not written as one string"
    )


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "nhs": normalise_nhs_number,
    "upn": normalise_upn,
    "council": normalise_council_ref,
    "person": _person,
}
SCHEMES = tuple(_NORMALISERS)


@lru_cache(maxsize=16)
def key_id(place_key: bytes) -> str:
    """The place key's id: 8 base32 characters of an HMAC of a fixed label under the key
    (reveals nothing of the key, and every holder of the key derives the same id)."""
    digest = hmac.digest(place_key, _KEY_ID_LABEL, "sha256")
    return base64.b32encode(digest).decode()[:8].lower()


def token(scheme: str, value: str, place_key: bytes) -> str:
    """The pseudonymous token for ``value`` under ``scheme`` (normalised and checked first)."""
    normalise = _NORMALISERS.get(scheme)
    if normalise is None:
        raise IdentifierError(f"unknown identifier scheme; use one of {sorted(_NORMALISERS)}")
    if not place_key:
        raise IdentifierError("the place key is empty")
    digest = hmac.digest(place_key, f"{scheme}|{normalise(value)}".encode(), "sha256")
    return f"{scheme}:{key_id(place_key)}:{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


@dataclass(frozen=True)
class PlaceKey:
    """The place's HMAC key, checked, with its id (``secret`` never appears in a repr)."""

    secret: bytes = field(repr=False)
    setting: str  # where the key came from, for errors

    @property
    def id(self) -> str:
        """The key id carried on every token made with this key."""
        return key_id(self.secret)

    @property
    def is_test_key(self) -> bool:
        """True for the public test key (anyone can reverse its tokens)."""
        return hmac.compare_digest(self.secret, TEST_PLACE_KEY.encode())

    def keyed_hash(self, purpose: str, value: bytes) -> str:
        """A keyed hash of ``value`` for ``purpose`` (e.g. a SQL row key kept in Kafka)."""
        digest = hmac.digest(self.secret, purpose.encode() + b"|" + value, "sha256")
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def load_place_key(settings: Settings) -> PlaceKey:
    """The place key from ``PLACEHUB_PLACE_KEY_FILE`` or ``PLACEHUB_PLACE_KEY``, checked.

    Raises ``ConfigError`` naming the setting when the key is missing or shorter than
    ``MIN_PLACE_KEY_BYTES``, or is the public test key, unless ``PLACEHUB_ALLOW_TEST_KEY``
    (the demo and the tests) allows the test key.
    """
    if settings.place_key_file is not None:
        setting = "PLACEHUB_PLACE_KEY_FILE"
    elif settings.place_key is not None:
        setting = "PLACEHUB_PLACE_KEY"
    elif settings.allow_test_key:
        return PlaceKey(TEST_PLACE_KEY.encode(), "PLACEHUB_ALLOW_TEST_KEY")
    else:
        raise ConfigError(
            "PLACEHUB_PLACE_KEY_FILE: no place key is set (nor PLACEHUB_PLACE_KEY); ask the "
            "hub's operator for the place key. The public test key is only for the demo and "
            "the tests (PLACEHUB_ALLOW_TEST_KEY=1)"
        )
    key = PlaceKey(settings.place_key_bytes(), setting)
    if key.is_test_key:
        if settings.allow_test_key:
            return key
        raise ConfigError(
            f"{setting}: this is the public test key, whose tokens anyone can reverse; it is "
            "only for the demo and the tests (PLACEHUB_ALLOW_TEST_KEY=1)"
        )
    if len(key.secret) < MIN_PLACE_KEY_BYTES:
        raise ConfigError(
            f"{setting}: the place key has {len(key.secret)} bytes; at least "
            f"{MIN_PLACE_KEY_BYTES} are needed (e.g. 32 random bytes, base64-encoded)"
        )
    return key
