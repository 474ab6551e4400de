"""A server-sent-events client for tests: reads a stream in a thread, one block per event."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

__all__ = ["SseClient", "SseEvent"]


@dataclass(frozen=True)
class SseEvent:
    """One dispatched block: its ``event:`` (``""`` if none), ``id:`` and ``data:`` lines,
    and when it was read (``time.time_ns()``)."""

    event: str
    id: str | None
    data: str
    at_ns: int = 0


@dataclass
class SseClient:
    """``GET url`` as a stream; ``events`` fills as blocks arrive (comments are skipped).
    With ``reconnect``, a stream the server ends is resumed from the last id seen, as a
    browser's ``EventSource`` does (``reconnects`` counts them)."""

    url: str
    token: str | None
    last_event_id: str | None = None
    reconnect: bool = False
    events: list[SseEvent] = field(default_factory=list)
    status: int | None = None
    content_type: str = ""
    reconnects: int = 0

    def __post_init__(self) -> None:
        self._closed = False
        self.reply = self._open(self.last_event_id)
        self.status = self.reply.status_code
        self.content_type = self.reply.headers.get("Content-Type", "")
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()

    def _open(self, last_event_id: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        return requests.get(self.url, headers=headers, stream=True, timeout=(5, 60))

    def _read(self) -> None:
        while True:
            self._read_stream()
            if not self.reconnect or self._closed:
                return
            seen = [e.id for e in self.events if e.id is not None]
            try:
                self.reply = self._open(seen[-1] if seen else self.last_event_id)
            except requests.RequestException:
                return
            if self.reply.status_code != 200:
                return
            self.reconnects += 1

    def _read_stream(self) -> None:
        block: dict[str, Any] = {"event": "", "id": None, "data": []}
        try:
            for line in self.reply.iter_lines(decode_unicode=True):
                if line == "":
                    if block["id"] is not None or block["data"]:
                        data = "\n".join(block["data"])
                        self.events.append(
                            SseEvent(block["event"], block["id"], data, time.time_ns())
                        )
                    block = {"event": "", "id": None, "data": []}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        block["data"].append(value)
                    elif name in ("event", "id"):
                        block[name] = value
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by close() or by the server

    def wait_for(self, check: Any, what: str, timeout_s: float = 60) -> list[SseEvent]:
        """The events once ``check(events)`` holds; AssertionError naming ``what`` if not
        within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not check(list(self.events)):
            if time.monotonic() > deadline:
                raise AssertionError(f"stream did not show {what}; it had {self.events}")
            time.sleep(0.05)
        return list(self.events)

    def caught_up(self, timeout_s: float = 60) -> list[SseEvent]:
        """The events sent before the stream said it was live (an id with no data)."""
        events = self.wait_for(lambda es: any(_bare(e) for e in es), "its live position")
        return events[: next(i for i, e in enumerate(events) if _bare(e))]

    def close(self) -> None:
        self._closed = True
        self.reply.close()


def _bare(event: SseEvent) -> bool:
    return event.id is not None and not event.data and not event.event
