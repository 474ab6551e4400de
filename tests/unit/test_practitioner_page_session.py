"""Sign-in sessions of the practitioners' page (``hub.practitioner_session``)."""

from __future__ import annotations

import pytest

from hub import practitioner_session
from hub.practitioner_session import Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_found_by_its_id_until_it_expires_or_is_closed() -> None:
    clock = Clock()
    sessions = Sessions(ttl_s=60, clock=clock)
    first, session = sessions.open("alex.housing")
    second, _ = sessions.open("alex.housing")
    assert first != second  # a fresh, random id each sign-in
    assert sessions.find(first) == session and session.user_id == "alex.housing"
    assert sessions.find(None) is None and sessions.find("") is None
    assert sessions.find(first + "x") is None
    sessions.close(first)
    assert sessions.find(first) is None and sessions.find(second) is not None
    clock.now += 60
    assert sessions.find(second) is None  # expired


def test_only_the_sessions_own_csrf_token_is_allowed() -> None:
    sessions = Sessions()
    _, one = sessions.open("alex.housing")
    _, other = sessions.open("sam.school")
    assert one.allows(one.csrf)
    assert not one.allows(other.csrf) and not one.allows(None) and not one.allows("")


def test_the_worker_keeps_a_hash_of_each_session_id_never_the_id() -> None:
    sessions = Sessions()
    session_id, _ = sessions.open("alex.housing")
    assert session_id not in repr(vars(sessions))


def test_past_the_limit_the_oldest_session_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(practitioner_session, "MAX_SESSIONS", 2)
    sessions = Sessions()
    oldest, _ = sessions.open("a")
    middle, _ = sessions.open("b")
    newest, _ = sessions.open("c")
    assert sessions.find(oldest) is None
    assert sessions.find(middle) is not None and sessions.find(newest) is not None
