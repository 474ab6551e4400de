"""SQL poll against a real PostgreSQL and the real broker: watermark, restarts, bad rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaAdminClient

from connectors.mapping import EventMapping
from connectors.pseudonymise import load_place_key
from connectors.publisher import UnknownPartner
from connectors.sql_poll import SqlPoll, key_hash
from hub.config import PROJECT_ROOT, Settings
from hub.kafka_clients import kafka_python_options
from hub.topics import Topics
from tests.integration.connector_helpers import BAD_NHS, GOOD_NHS, onboard, published_events
from tests.integration.helpers import Record, read_topic

PARTNER = "council-housing"
MAPPING = """\
source_system: northgate-housing
fields:
  source_ref: ref
  occurred_at: updated_at
  identifiers.nhs: {column: nhs_number, optional: true}
  basis.kind: {value: CONSENT}
  basis.consent_id: consent_ref
  basis.purpose: {value: early-help}
  payload.family: {value: housing}
  payload.kind: {column: status, map: {arrears: ARREARS, notice: NOTICE_SERVED}}
  payload.arrears_band: {column: band, optional: true}
  area_code: {column: ward, optional: true}
  age_band: {column: age_band, optional: true}
person_key: {given_name: given_name, family_name: family_name, born: born, postcode: postcode}
"""
COLUMNS = (
    "id, updated_at, ref, nhs_number, consent_ref, status, band, ward, age_band, "
    "given_name, family_name, born, postcode"
)
GOOD: dict[str, Any] = {
    "ref": "HSG-1",
    "nhs_number": GOOD_NHS,
    "consent_ref": "c-1",
    "status": "arrears",
    "band": "BAND_0_250",
    "ward": "E05000001",
    "age_band": "AGE_25_34",
    "given_name": None,
    "family_name": None,
    "born": None,
    "postcode": None,
}


@pytest.fixture(autouse=True)
def _onboarded(hub_settings: Settings) -> None:
    onboard(hub_settings, PARTNER)  # no worker runs here to create the topic


def _positions(settings: Settings) -> list[Record]:
    """The partner's saved positions, as the topic holds them."""
    return read_topic(settings, Topics(settings.topic_prefix).partner_positions(PARTNER))


@pytest.fixture
def table(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema with a partner's ``referrals`` table; dropped afterwards."""
    schema = f"t{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(
            f"CREATE TABLE {schema}.referrals (id bigint PRIMARY KEY, "
            "updated_at timestamptz NOT NULL, ref text, nhs_number text, consent_ref text, "
            "status text, band text, ward text, age_band text, given_name text, "
            "family_name text, born date, postcode text)"
        )
    yield f"{schema}.referrals"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"DROP SCHEMA {schema} CASCADE")


# Row times, relative to now: day ``day`` of a month that began 30 days ago.
START = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=30)


def at(day: int, minutes: int = 0) -> datetime:
    return START + timedelta(days=day - 1, minutes=minutes)


def insert(dsn: str, table: str, row_id: int, when: datetime, **changes: Any) -> None:
    row = {**GOOD, "ref": f"HSG-{row_id}", **changes}
    values = [row_id, when, *row.values()]
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f"INSERT INTO {table} ({COLUMNS}) VALUES ({', '.join(['%s'] * 13)})", values)


def poller(dsn: str, table: str, settings: Settings, tmp_path: Path, **options: Any) -> SqlPoll:
    query = tmp_path / "referrals.sql"
    query.write_text(f"SELECT * FROM {table};\n")
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(MAPPING)
    return SqlPoll(
        dsn, query, PARTNER, EventMapping.load(mapping_path), settings,
        reject_path=tmp_path / "rejects.jsonl", **options,
    )  # fmt: skip


def test_new_and_changed_rows_published_and_position_survives_restart(
    postgres_dsn: str, table: str, hub_settings: Settings, tmp_path: Path
) -> None:
    for n in range(1, 6):  # two rows share a watermark: the key breaks the tie
        insert(postgres_dsn, table, n, at(min(n, 4)))

    first = poller(postgres_dsn, table, hub_settings, tmp_path, batch_size=2).poll_once()
    restarted = poller(postgres_dsn, table, hub_settings, tmp_path).poll_once()
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"UPDATE {table} SET status = 'notice', updated_at = %s WHERE id = 2", [at(9)])
    insert(postgres_dsn, table, 6, at(8))
    env = {
        **os.environ,
        "PLACEHUB_TOPIC_PREFIX": hub_settings.topic_prefix,
        "PLACEHUB_BOOTSTRAP_SERVERS": hub_settings.bootstrap_servers,
        "PLACEHUB_ALLOW_TEST_KEY": "1",
    }
    cli = subprocess.run(
        [sys.executable, "-m", "hub.cli", "ingest", "sql", "--dsn", postgres_dsn,
         "--query-file", str(tmp_path / "referrals.sql"), "--partner", PARTNER,
         "--mapping", str(tmp_path / "mapping.yaml"), "--once", "--json"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert (first.read, first.published, first.rejected) == (5, 5, 0)
    assert (restarted.read, restarted.published) == (0, 0), "did not resume from the position"
    assert cli.returncode == 0, cli.stderr
    later = json.loads(cli.stdout)
    assert (later["read"], later["published"], later["rejected"]) == (2, 2, 0)
    events = published_events(hub_settings, PARTNER)
    assert len({e.event_id for e in events}) == len(events) == 7
    row2 = sorted((e.occurred_at, e.event_type) for e in events if e.source_ref == "HSG-2")
    assert [kind for _, kind in row2] == ["housing.arrears", "housing.notice_served"]
    positions = read_topic(
        hub_settings, Topics(hub_settings.topic_prefix).partner_positions(PARTNER)
    )
    last = json.loads(positions[-1][1] or b"{}")
    assert positions[-1][0] == f"{PARTNER}/referrals".encode()
    assert last["read"] == 7 and "key" not in last  # the row key never leaves the partner
    assert last["key_hash"] == key_hash(load_place_key(hub_settings), 2)


# (column changes, the reason the row must be rejected with)
SQL_CORPUS: list[tuple[dict[str, Any], str]] = [
    ({"nhs_number": None}, "identifiers: Dictionary should have at least 1 item"),
    ({"nhs_number": BAD_NHS}, "column 'nhs_number' (identifiers.nhs): the NHS number's check"),
    ({"status": "evicted"}, "column 'status' (payload.kind): is not one of the mapped codes"),
    ({"consent_ref": None}, "column 'consent_ref' (basis.consent_id): is empty"),
    ({"ref": "H" * 70}, "column 'ref' (source_ref): String should have at most 64 characters"),
    ({"ward": "Leeds"}, "column 'ward' (area_code): String should match pattern"),
    ({"age_band": "old"}, "column 'age_band' (age_band): Input should be 'AGE_0_4'"),
    ({"band": "lots"}, "column 'band' (payload.arrears_band): Input should be 'BAND_0_250'"),
    (
        {"given_name": "Ann", "family_name": "Lee", "born": "1990-01-02", "postcode": "nowhere"},
        "(person key): the postcode is not a UK postcode",
    ),
]


def test_malformed_rows_are_rejected_precisely_and_counted(
    postgres_dsn: str, table: str, hub_settings: Settings, tmp_path: Path
) -> None:
    insert(postgres_dsn, table, 1, at(1))
    for n, (changes, _) in enumerate(SQL_CORPUS, start=2):
        insert(postgres_dsn, table, n, at(1, minutes=n), **changes)
    insert(postgres_dsn, table, 99, at(2), nhs_number=None, given_name="Ann",
           family_name="Lee", born="1990-01-02", postcode="LS1 4AP")  # fmt: skip

    poll = poller(postgres_dsn, table, hub_settings, tmp_path)
    summary = poll.poll_once()

    assert (summary.read, summary.published, summary.rejected) == (len(SQL_CORPUS) + 2, 2, 9)
    assert summary.read == summary.published + summary.rejected
    rejects = {int(r["key"]): r["reason"] for r in map(json.loads, poll.reject_path.open())}
    for n, (_, reason) in enumerate(SQL_CORPUS, start=2):
        assert reason in rejects[n], f"row {n}: {rejects[n]!r} lacks {reason!r}"
    text = poll.reject_path.read_text()
    assert BAD_NHS not in text and "Leeds" not in text and "nowhere" not in text
    published = {e.source_ref for e in published_events(hub_settings, PARTNER)}
    assert published == {"HSG-1", "HSG-99"}


def test_positions_keep_a_keyed_hash_of_the_row_key_never_the_key(
    postgres_dsn: str, table: str, hub_settings: Settings, tmp_path: Path
) -> None:
    """A --key column can hold a person's reference: the partner's positions must not."""
    for n in range(1, 4):
        insert(postgres_dsn, table, n, at(n), ref=f"HSG-PERSON-{n}")

    first = poller(postgres_dsn, table, hub_settings, tmp_path, key="ref").poll_once()
    again = poller(postgres_dsn, table, hub_settings, tmp_path, key="ref").poll_once()

    assert (first.read, first.published, again.read) == (3, 3, 0)
    positions = read_topic(
        hub_settings, Topics(hub_settings.topic_prefix).partner_positions(PARTNER)
    )
    assert positions and not any(b"HSG-PERSON" in (value or b"") for _, value, _ in positions)
    saved = json.loads(positions[-1][1] or b"{}")
    assert saved["key_hash"] == key_hash(load_place_key(hub_settings), "HSG-PERSON-3")


def test_a_restart_after_the_saved_row_changed_reads_its_watermark_again(
    postgres_dsn: str, table: str, hub_settings: Settings, tmp_path: Path
) -> None:
    """The hash finds no row at the saved watermark: every row there is read again (same
    event ids, counted once by the hub), and nothing is skipped."""
    for n in range(1, 4):
        insert(postgres_dsn, table, n, at(1))  # one watermark, the key breaks the tie
    first = poller(postgres_dsn, table, hub_settings, tmp_path, batch_size=2).poll_once()
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"UPDATE {table} SET status = 'notice', updated_at = %s WHERE id = 3", [at(2)])

    again = poller(postgres_dsn, table, hub_settings, tmp_path).poll_once()

    assert (first.read, first.published) == (3, 3)
    assert (again.read, again.published) == (3, 3)  # rows 1 and 2 again, row 3's new version
    events = published_events(hub_settings, PARTNER)
    assert len(events) == 6 and len({e.event_id for e in events}) == 4
    assert {e.event_type for e in events if e.source_ref == "HSG-3"} == {
        "housing.arrears",
        "housing.notice_served",
    }


def test_a_partner_without_its_positions_topic_is_refused_before_a_row_is_read(
    postgres_dsn: str, table: str, hub_settings: Settings, tmp_path: Path
) -> None:
    """The connector creates no topic (its principal may not): a deployment whose workers
    have not made the partner's positions topic is told so, and nothing is published."""
    positions = Topics(hub_settings.topic_prefix).partner_positions(PARTNER)
    admin = KafkaAdminClient(**kafka_python_options(hub_settings))
    try:
        admin.delete_topics([positions])
        deadline = time.monotonic() + 30
        while positions in admin.list_topics():
            assert time.monotonic() < deadline, "the positions topic was not deleted"
            time.sleep(0.2)
    finally:
        admin.close()
    insert(postgres_dsn, table, 1, at(1))

    with pytest.raises(UnknownPartner) as refused:
        poller(postgres_dsn, table, hub_settings, tmp_path).poll_once()

    assert positions in str(refused.value) and "is not onboarded" in str(refused.value)
    assert published_events(hub_settings, PARTNER) == []
