"""The peer a team choosing a Python stream processor would try: Quix Streams reading the
partner topics, decoding each record with the same Avro schema and folding it into
per-person state in its RocksDB store (``stateful=True``), in one process.

Runs in a virtualenv of its own (``tests/bench/peer.py`` makes it from
``requirements.txt`` here): Quix Streams pins pydantic, pydantic-settings and
confluent-kafka below the versions placehub pins. So this file imports nothing of
placehub: the schema comes as a file and the settings as arguments.

``python quix_fold.py --bootstrap B --topic T [--topic T ...] --schema PartnerEvent.avsc
--events N --state DIR --group G --out OUT.json`` reads the topics from the beginning and
writes the rate from its first record to its ``N``-th as JSON, then stops.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import fastavro
from quixstreams import Application, State
from quixstreams.models.serializers import Deserializer


class FramedAvro(Deserializer):  # type: ignore[misc]  # quixstreams is not installed here
    """Confluent framing (magic byte, 4-byte schema id) then Avro binary, as the hub reads."""

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__()
        self.parsed = fastavro.parse_schema(schema)

    def __call__(self, value: bytes, ctx: Any) -> Any:
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), self.parsed)


class Clock:
    """Seconds from the first record folded to the ``events``-th."""

    def __init__(self, app: Application, events: int) -> None:
        self.app, self.events, self.seen = app, events, 0
        self.first = self.last = 0.0

    def tick(self) -> None:
        self.seen += 1
        if self.seen == 1:
            self.first = time.perf_counter()
        if self.seen == self.events:
            self.last = time.perf_counter()
            self.app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="quix_fold.py")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--schema", type=Path, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state,
    )
    decode = FramedAvro(json.loads(args.schema.read_text()))
    clock = Clock(app, args.events)

    def fold(event: dict[str, Any], state: State) -> None:
        """What a person's record keeps: events seen, the latest time, counts by kind."""
        state.set("events", state.get("events", 0) + 1)
        state.set("latest", max(state.get("latest", ""), str(event["occurred_at"])))
        kind = str(event["payload"].get("kind"))
        kinds = state.get("kinds", {})
        kinds[kind] = kinds.get(kind, 0) + 1
        state.set("kinds", kinds)
        clock.tick()

    for name in args.topic:
        app.dataframe(app.topic(name, value_deserializer=decode)).update(fold, stateful=True)
    app.run()
    seconds = clock.last - clock.first
    result = {
        "events": clock.seen,
        "seconds": seconds,
        "rate": (clock.seen - 1) / seconds if seconds > 0 else 0.0,
        "quixstreams": version("quixstreams"),
    }
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
