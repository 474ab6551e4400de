"""Sign-in sessions of the practitioners' page: a bearer token pasted once, then a cookie.

A browser cannot send ``Authorization: Bearer`` on its own, and a token kept in page
script or a URL would leak to history, logs and any injected script. So the page trades
the token, once, for a random session id held in an HttpOnly, SameSite=Strict cookie; the
token itself is never stored. The worker keeps only the SHA-256 of each session id, with
the user's id, a CSRF token for its forms and an expiry, and looks the user up again in
its users file on every request, so a user removed there is signed out at once.

Sessions live in the worker's memory: a restart (or another worker) asks the
practitioner to sign in again, which is cheaper than a session topic holding credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COOKIE", "SESSION_TTL_S", "Session", "Sessions"]

COOKIE = "placehub_session"
SESSION_TTL_S = 8 * 3600.0  # one working day; then the practitioner signs in again
MAX_SESSIONS = 10_000  # per worker: more sign-ins than that drop the oldest sessions


@dataclass(frozen=True)
class Session:
    """A signed-in practitioner: who (user id), the CSRF token their forms carry, and
    when the session ends (seconds since the epoch)."""

    user_id: str
    csrf: str
    expires_at: float

    def allows(self, csrf: str | None) -> bool:
        """Whether a form's ``csrf`` field is this session's (constant time)."""
        return csrf is not None and hmac.compare_digest(csrf.encode(), self.csrf.encode())


class Sessions:
    """The sessions one worker has opened, by the SHA-256 of their ids."""

    def __init__(
        self, ttl_s: float = SESSION_TTL_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._by_hash: dict[str, Session] = {}

    def open(self, user_id: str) -> tuple[str, Session]:
        """A new session for ``user_id``: the id to set in the cookie, and the session."""
        now = self._clock()
        self._by_hash = {k: s for k, s in self._by_hash.items() if s.expires_at > now}
        while len(self._by_hash) >= MAX_SESSIONS:  # oldest first: dicts keep insertion order
            del self._by_hash[next(iter(self._by_hash))]
        session_id = secrets.token_urlsafe(32)
        session = Session(user_id, secrets.token_urlsafe(32), now + self.ttl_s)
        self._by_hash[_digest(session_id)] = session
        return session_id, session

    def find(self, session_id: str | None) -> Session | None:
        """The live session a cookie names, or None (none, unknown or expired)."""
        if not session_id:
            return None
        session = self._by_hash.get(_digest(session_id))
        if session is None or session.expires_at <= self._clock():
            return None
        return session

    def close(self, session_id: str | None) -> None:
        """End the session a cookie names (signing out); nothing if there is none."""
        if session_id:
            self._by_hash.pop(_digest(session_id), None)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
