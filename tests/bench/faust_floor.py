"""A bare Faust agent over the partner topics: what the framework alone costs per worker.

``python -m tests.bench.faust_floor EVENTS OUT [--forward topic|producer]`` reads the hub's
partner topics from the beginning with one agent that Avro-decodes each value and, with
``--forward``, sends it on to one other topic as each hub stage does: through Faust's
``Topic.send`` (what the hub uses) or straight to the app's producer. It writes the rate
from the first record to the ``EVENTS``-th to ``OUT`` as JSON and exits.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastavro
import faust

from connectors.simulate import PARTNERS
from hub._admin import ensure_topic
from hub.codec import split_frame
from hub.config import load_settings
from hub.runtime.transport import DurableApp, faust_credentials
from hub.schema_files import load_schema
from hub.topics import Topics

__all__ = ["main"]


def main() -> None:
    """Run the agent until it has seen EVENTS records; then write the rate and exit."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.faust_floor")
    parser.add_argument("events", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--forward", choices=["topic", "producer"], default=None)
    args = parser.parse_args()
    settings = load_settings()
    topics = Topics(settings.topic_prefix)
    app = DurableApp(
        f"{settings.app_id}-floor-{args.forward or 'decode'}",
        broker=f"kafka://{settings.bootstrap_servers}",
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.state_dir / "floor"),
        web_enabled=False,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
    )

    def raw(*names: str) -> Any:
        return app.topic(
            *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    source = raw(*(topics.partner(partner) for partner in PARTNERS))
    sink_name = f"{settings.topic_prefix}floor-forward"
    sink = raw(sink_name)
    if args.forward:  # the broker creates no topic on first use (auto.create.topics.enable off)
        ensure_topic(settings, sink_name, partitions=settings.partitions)
    schema: Any = fastavro.parse_schema(load_schema("PartnerEvent"))
    seen = {"count": 0, "started": 0.0}

    async def agent(stream: Any) -> AsyncIterator[None]:
        async for key, value in stream.items():
            if not seen["count"]:
                seen["started"] = time.perf_counter()
            _, body = split_frame(value)
            fastavro.schemaless_reader(io.BytesIO(body), schema)
            if args.forward == "topic":
                await sink.send(key=key, value=value)
            elif args.forward == "producer":
                await app.producer.send(sink_name, key, value, None, None, None)
            seen["count"] += 1
            if seen["count"] >= args.events:
                rate = (args.events - 1) / (time.perf_counter() - seen["started"])
                args.out.write_text(json.dumps({"rate": rate}))
                os._exit(0)  # a bench child: no graceful shutdown needed, the result is written
            yield None

    app.agent(source, name="floor")(agent)
    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
