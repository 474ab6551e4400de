"""SQL poll: new and changed rows of a partner's PostgreSQL table, published as events.

``placehub ingest sql --dsn DSN --query-file Q.sql --partner P --mapping M.yaml`` runs
the partner's own ``SELECT`` (the query file) wrapped in keyset paging on a watermark
column (``updated_at`` by default) with the primary key (``id``) as tie-break::

    SELECT * FROM (<query>) AS source
    WHERE source.updated_at IS NOT NULL AND (source.updated_at, source.id) > (%s, %s)
    ORDER BY source.updated_at, source.id LIMIT n

A row whose watermark moved (it changed) is read again and published as a new event.
Event ids are derived from (partner, query name, key, watermark), so a batch re-sent
after a crash is counted once by the hub. The position — the last watermark and a keyed
hash (HMAC with the place key) of the last row key — is kept in the compacted
``partner.<id>.positions`` topic (key ``partner/query``), written after each acknowledged
batch. The row key itself never leaves the partner (it may be a person's reference): a
restart finds the row whose key hashes to the saved one among the rows at the saved
watermark and resumes after it; if that row has since changed, the rows at that watermark
are read again (same event ids, counted once by the hub).

Rows that cannot become events go to a JSON-lines reject file (key, watermark, reason;
never row values) and are counted: ``read = published + rejected``. Rows whose
watermark is NULL are never read (document the column as NOT NULL).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from connectors.csv_drop import IngestSummary, event_id_for
from connectors.delivery import Delivery, Outgoing
from connectors.mapping import EventMapping
from connectors.pseudonymise import PlaceKey, load_place_key
from connectors.publisher import Publisher, require_known_partner, require_partner_topics
from hub.config import Settings
from hub.errors import BrokerError, ConfigError, EventRejected, UnavailableError
from hub.kafka_clients import kafka_python_options
from hub.topics import Topics

__all__ = ["Position", "PositionStore", "SqlPoll", "SqlSourceError", "key_hash"]


class SqlSourceError(UnavailableError):
    """Raised when the partner's database cannot be reached or the query fails."""


def _scalar_to_json(value: Any) -> dict[str, Any]:
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ConfigError(f"a watermark or key of type {type(value).__name__} is not supported")
    kind = "int" if isinstance(value, int) else "decimal" if isinstance(value, Decimal) else "str"
    return {"type": kind, "value": str(value)}


_FROM_JSON: dict[str, Callable[[str], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "int": int,
    "decimal": Decimal,
    "str": str,
}


_POSITION_PURPOSE = "sql-position-key"


class Position(BaseModel):
    """Where a query's polling stands: the last watermark published, a keyed hash of the
    last row key at it (never the key: it may be a person's reference), and counts."""

    model_config = ConfigDict(extra="ignore")  # a position saved with a raw key: key dropped

    watermark: dict[str, Any]
    key_hash: str | None = None
    read: int = 0
    published: int = 0
    rejected: int = 0

    @classmethod
    def at(cls, watermark: Any, key_hash: str, previous: Position | None) -> Position:
        """The position after a row with ``watermark`` and a key hashing to ``key_hash``."""
        totals = previous.model_dump(include={"read", "published", "rejected"}) if previous else {}
        return cls(watermark=_scalar_to_json(watermark), key_hash=key_hash, **totals)

    def watermark_value(self) -> Any:
        """The watermark as the Python value psycopg sends as a parameter."""
        return _FROM_JSON[self.watermark["type"]](self.watermark["value"])


def key_hash(place_key: PlaceKey, key: Any) -> str:
    """The keyed hash a position keeps of a row key (its type and value)."""
    return place_key.keyed_hash(_POSITION_PURPOSE, json.dumps(_scalar_to_json(key)).encode())


class PositionStore:
    """Positions in the partner's compacted ``partner.<id>.positions`` topic (one
    partition, JSON), which the hub's workers create: a connector creates no topic."""

    def __init__(self, settings: Settings, delivery: Delivery, partner_id: str) -> None:
        self.settings = settings
        self.topic = Topics(settings.topic_prefix).partner_positions(partner_id)
        self.delivery = delivery
        self.partner_id = partner_id

    def load(self, name: str) -> Position | None:
        """The last position saved under ``name``, or None when there is none."""
        require_partner_topics(self.delivery, self.partner_id, {self.topic})
        consumer = KafkaConsumer(
            **kafka_python_options(self.settings),
            enable_auto_commit=False,
            allow_auto_create_topics=False,
        )
        found: bytes | None = None
        try:
            partition = TopicPartition(self.topic, 0)
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            end = consumer.end_offsets([partition])[partition]
            while consumer.position(partition) < end:
                for records in consumer.poll(timeout_ms=1000).values():
                    for record in records:
                        if record.key == name.encode():
                            found = record.value
        except KafkaError as exc:
            raise BrokerError(f"could not read {self.topic}: {exc}") from exc
        finally:
            consumer.close()
        return Position.model_validate_json(found) if found else None

    def save(self, name: str, position: Position) -> None:
        """Write ``position`` under ``name`` and wait for the acknowledgement."""
        record = Outgoing(self.topic, name.encode(), position.model_dump_json().encode(), name)
        self.delivery.deliver([record])


class SqlPoll:
    """Polls one query of one partner's database and publishes its new and changed rows."""

    def __init__(
        self,
        dsn: str,
        query_path: Path,
        partner: str,
        mapping: EventMapping,
        settings: Settings,
        *,
        watermark: str = "updated_at",
        key: str = "id",
        name: str | None = None,
        batch_size: int = 500,
        reject_path: Path | None = None,
    ) -> None:
        require_known_partner(settings, partner)
        self.place_key = load_place_key(settings)
        try:
            self.query = query_path.read_text().strip().rstrip(";")
        except OSError as exc:
            raise ConfigError(f"{query_path}: cannot read the query file: {exc.strerror}") from exc
        self.dsn = dsn
        self.partner = partner
        self.mapping = mapping
        self.settings = settings
        self.watermark, self.key = watermark, key
        self.name = f"{partner}/{name or query_path.stem}"
        self.batch_size = batch_size
        state = settings.state_dir / "ingest"
        self.reject_path = reject_path or state / f"{partner}-{query_path.stem}.rejects.jsonl"

    def _statement(self, mode: str) -> sql.Composed:
        """Rows from the start, ``after`` a (watermark, key), or ``from`` a watermark on."""
        wm, key = sql.Identifier("source", self.watermark), sql.Identifier("source", self.key)
        where = {
            "start": "WHERE {wm} IS NOT NULL",
            "after": "WHERE {wm} IS NOT NULL AND ({wm}, {key}) > (%s, %s)",
            "from": "WHERE {wm} IS NOT NULL AND {wm} >= %s",
        }[mode]
        return sql.SQL(
            "SELECT * FROM ({query}) AS source " + where + " ORDER BY {wm}, {key} LIMIT %s"
        ).format(query=sql.SQL(self.query), wm=wm, key=key)

    def _keys_at(self, after: bool) -> sql.Composed:
        """Row keys at one watermark, in key order (to find the saved position's row)."""
        wm, key = sql.Identifier("source", self.watermark), sql.Identifier("source", self.key)
        where = "WHERE {wm} = %s AND {key} > %s" if after else "WHERE {wm} = %s"
        return sql.SQL(
            "SELECT {key} AS row_key FROM ({query}) AS source " + where + " ORDER BY {key} LIMIT %s"
        ).format(query=sql.SQL(self.query), wm=wm, key=key)

    def _resume(
        self, connection: psycopg.Connection[dict[str, Any]], position: Position
    ) -> tuple[str, list[Any]]:
        """Where to read from after ``position``: after its row when a row at its watermark
        has the key hashed there, else from its watermark again (ids repeat; counted once)."""
        watermark = position.watermark_value()
        last: list[Any] = []
        while position.key_hash is not None:
            keys = self._run(connection, self._keys_at(bool(last)), [watermark, *last])
            for row in keys:
                if key_hash(self.place_key, row["row_key"]) == position.key_hash:
                    return "after", [watermark, row["row_key"]]
            if len(keys) < self.batch_size:
                break
            last = [keys[-1]["row_key"]]
        return "from", [watermark]

    def poll_once(self) -> IngestSummary:
        """Publish every row past the saved position, batch by batch, until caught up."""
        started = time.monotonic()
        summary = IngestSummary(source=self.name, reject_file=str(self.reject_path))
        self.reject_path.parent.mkdir(parents=True, exist_ok=True)
        with (
            Publisher(self.partner, self.mapping.source_system, self.settings) as publisher,
            self._connect() as connection,
            self.reject_path.open("a", encoding="utf-8") as rejects,
        ):
            store = PositionStore(self.settings, publisher.delivery, self.partner)
            position = store.load(self.name)
            mode, params = ("start", []) if position is None else self._resume(connection, position)
            while True:
                rows = self._fetch(connection, mode, params)
                if not rows:
                    break
                batch: list[Outgoing] = []
                for row in rows:
                    summary.read += 1
                    problem = self._prepare(publisher, row, batch)
                    if problem is not None:
                        summary.rejected += 1
                        rejects.write(json.dumps(self._reject(row, problem)) + "\n")
                if batch:
                    publisher.deliver(batch)
                    summary.published += len(batch)
                rejects.flush()
                last = rows[-1]
                mode, params = "after", [last[self.watermark], last[self.key]]
                position = Position.at(
                    last[self.watermark], key_hash(self.place_key, last[self.key]), position
                )
                position.read += len(rows)
                position.published += len(batch)
                position.rejected += len(rows) - len(batch)
                store.save(self.name, position)
                if len(rows) < self.batch_size:
                    break
        summary.seconds = time.monotonic() - started
        return summary

    def run(self, interval_s: float, polls: int | None = None) -> IngestSummary:
        """Poll every ``interval_s`` seconds (``polls`` times, or until interrupted)."""
        total = IngestSummary(source=self.name, reject_file=str(self.reject_path))
        done = 0
        while polls is None or done < polls:
            summary = self.poll_once()
            total.read += summary.read
            total.published += summary.published
            total.rejected += summary.rejected
            total.seconds += summary.seconds
            done += 1
            if polls is None or done < polls:
                time.sleep(interval_s)
        return total

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        try:
            return psycopg.connect(self.dsn, row_factory=dict_row, autocommit=True)
        except psycopg.Error as exc:
            raise SqlSourceError(f"cannot connect to the database: {_first_line(exc)}") from exc

    def _run(
        self,
        connection: psycopg.Connection[dict[str, Any]],
        statement: sql.Composed,
        params: list[Any],
    ) -> list[dict[str, Any]]:
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, [*params, self.batch_size])
                return cursor.fetchall()
        except psycopg.Error as exc:
            raise SqlSourceError(f"{self.name}: the query failed: {_first_line(exc)}") from exc

    def _fetch(
        self, connection: psycopg.Connection[dict[str, Any]], mode: str, params: list[Any]
    ) -> list[dict[str, Any]]:
        rows = self._run(connection, self._statement(mode), params)
        if rows and (self.watermark not in rows[0] or self.key not in rows[0]):
            raise ConfigError(
                f"{self.name}: the query must return the columns "
                f"{self.watermark!r} and {self.key!r}"
            )
        return rows

    def _prepare(
        self, publisher: Publisher, row: dict[str, Any], batch: list[Outgoing]
    ) -> str | None:
        version = f"{row[self.key]}@{_scalar_to_json(row[self.watermark])['value']}"
        event_id = event_id_for(self.partner, f"sql:{self.name}", version)
        try:
            batch.append(publisher.prepare(self.mapping.draft(row, event_id)))
        except EventRejected as exc:
            return self.mapping.explain(exc)
        return None

    def _reject(self, row: dict[str, Any], reason: str) -> dict[str, Any]:
        return {
            "key": _scalar_to_json(row[self.key])["value"],
            "watermark": _scalar_to_json(row[self.watermark])["value"],
            "reason": reason,
        }


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
