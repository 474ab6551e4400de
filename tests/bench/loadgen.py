"""Load generators the benchmarks run as separate processes (so they do not share a GIL).

- ``publish --rate R --seconds S [--raw]``: publish the simulated place's events at a fixed
  rate through the SDK (or, with ``--raw``, same-sized records through a bare kafka-python
  producer), every 10 ms a batch, waiting for its acknowledgements as the SDK does. The
  publish time (ns) is written into each record: into the event id for the SDK.
- ``http --url U --requests N --concurrency C``: GET ``U`` (``{id}`` replaced by ids from
  ``--ids``), report per-request latencies.
- ``serve --port P``: a trivial aiohttp server, the framework's ceiling for the query figures.

Each prints one JSON line with its results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from typing import Any

import aiohttp
from aiohttp import web
from kafka import KafkaProducer

from connectors import EventDraft, Publisher
from connectors.simulate import PARTNERS, Place
from hub.config import load_settings
from hub.kafka_clients import kafka_python_producer_options

__all__ = ["event_id_at", "main", "published_at"]

TICK_S = 0.01
RAW_TOPIC = "raw-latency"


def event_id_at(ns: int, seq: int) -> str:
    """A UUID-shaped event id carrying the publish time ``ns`` (so no side channel is needed)."""
    h = f"{ns:016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-0000-{seq:012x}"


def published_at(event_id: str) -> int | None:
    """The publish time (ns) carried by an ``event_id_at`` id, or None for other ids."""
    if len(event_id) != 36 or event_id[19:23] != "0000":
        return None
    return int(event_id[:8] + event_id[9:13] + event_id[14:18], 16)


def _publish(rate: float, seconds: float, raw: bool, people: int, seed: int) -> dict[str, Any]:
    settings = load_settings()
    total = int(rate * seconds)
    drafts = list(Place(seed=seed, people=people).events(total))
    per_tick = max(1, round(rate * TICK_S))
    started = time.monotonic()
    sent = 0
    if raw:
        producer = KafkaProducer(
            **kafka_python_producer_options(settings),
            linger_ms=5,
        )
        producer.send(settings.topic_prefix + RAW_TOPIC, value=b"warm-up").get(timeout=30)
        started = time.monotonic()
        while sent < total:
            now = time.time_ns()
            futures = [
                producer.send(
                    settings.topic_prefix + RAW_TOPIC,
                    value=now.to_bytes(8, "big") + n.to_bytes(8, "big") + bytes(400),
                )
                for n in range(sent, min(sent + per_tick, total))
            ]
            producer.flush()  # as the SDK does: the caller waits for the acks anyway
            for future in futures:
                future.get(timeout=30)
            sent += len(futures)
            _pace(started, sent / rate)
        producer.close()
    else:
        publishers = {p.id: Publisher(p.id, p.source_system, settings) for p in PARTNERS.values()}
        for partner, publisher in publishers.items():  # warm-up: schemas, topics
            publisher.publish(next(d for p, d in drafts if p == partner))
        started = time.monotonic()
        while sent < total:
            now = time.time_ns()
            batch: dict[str, list[EventDraft]] = defaultdict(list)
            for n in range(sent, min(sent + per_tick, total)):
                partner, draft = drafts[n]
                batch[partner].append(draft.model_copy(update={"event_id": event_id_at(now, n)}))
            for partner, items in batch.items():
                publishers[partner].publish_many(items)
            sent += sum(len(items) for items in batch.values())
            _pace(started, sent / rate)
        for publisher in publishers.values():
            publisher.close()
    elapsed = time.monotonic() - started
    return {"sent": sent, "seconds": elapsed, "rate": sent / elapsed}


def _pace(started: float, due_s: float) -> None:
    delay = started + due_s - time.monotonic()
    if delay > 0:
        time.sleep(delay)


async def _http(url: str, ids: list[str], requests: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = defaultdict(int)
    headers = {"Authorization": "Bearer demo-practitioner-housing"}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(url.replace("{id}", ids[n % len(ids)]) if ids else url)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            target = queue.get_nowait()
            started = time.perf_counter()
            async with session.get(target, headers=headers) as reply:
                await reply.read()
                statuses[reply.status] += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url.replace("{id}", ids[0]) if ids else url) as warm:
            await warm.read()
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"latencies_s": latencies, "statuses": statuses, "seconds": elapsed}


def _serve(port: int) -> None:
    body = {"person_id": "p-baseline", "event_count": 1}

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1/people/{person_id}", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def main() -> None:
    """Parse the sub-command and run it; results as one JSON line on stdout."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loadgen")
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish")
    publish.add_argument("--rate", type=float, required=True)
    publish.add_argument("--seconds", type=float, required=True)
    publish.add_argument("--raw", action="store_true")
    publish.add_argument("--people", type=int, default=2_000)
    publish.add_argument("--seed", type=int, default=3)
    http = commands.add_parser("http")
    http.add_argument("--url", required=True)
    http.add_argument("--ids", default="", help="comma-separated values for {id}")
    http.add_argument("--requests", type=int, required=True)
    http.add_argument("--concurrency", type=int, default=32)
    serve = commands.add_parser("serve")
    serve.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.command == "publish":
        print(json.dumps(_publish(args.rate, args.seconds, args.raw, args.people, args.seed)))
    elif args.command == "http":
        ids = [i for i in args.ids.split(",") if i]
        print(json.dumps(asyncio.run(_http(args.url, ids, args.requests, args.concurrency))))
    else:
        _serve(args.port)


if __name__ == "__main__":
    main()
