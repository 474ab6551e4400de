"""CSV drop: a partner's export file, streamed row by row into events, resumable.

``placehub ingest csv FILE --partner P --mapping M.yaml`` reads the file once to learn its
identity (SHA-256) and size, then streams it: each record becomes a draft through the
mapping, is pseudonymised and encoded by the SDK, and is sent in acknowledged batches.

- **Constant memory**: the file is read a line at a time; only one batch is held.
- **Exactly once**: an event's id is derived from (partner, file identity, row number),
  and a checkpoint (byte offset, line, counts, reject-file length) is replaced atomically
  after each acknowledged batch. A run that was killed resumes at the checkpoint; rows
  sent after it are sent again with the same ids, which the hub counts once.
- **Nothing lost**: a row that cannot become an event goes to the reject file (the same
  encoding and delimiter, with ``_line`` and ``_reason`` columns in front, so it can be
  fixed and dropped again with the same mapping); ``read = published + rejected``.
- **Precise errors**: a reason names the line, the column and the problem, never a value.
- **Safe to open**: a reject-file cell that a spreadsheet would run as a formula (one that
  begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written with a
  leading ``'``, so opening the file cannot run what a hostile export put in it.
- **Fails before reading** for a partner the place does not declare or a place key that is
  missing, short or the test key (``ConfigError``, the setting named).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import os
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel
from tqdm import tqdm

from connectors.delivery import Outgoing
from connectors.mapping import EventMapping
from connectors.pseudonymise import load_place_key
from connectors.publisher import Publisher, require_known_partner
from hub.config import Settings
from hub.errors import EventRejected, InputError

__all__ = [
    "Checkpoint",
    "CsvDrop",
    "CsvFileError",
    "IngestSummary",
    "event_id_for",
    "spreadsheet_safe",
]

MAX_LINE_BYTES = 1 << 20
# A fixed namespace, so every machine derives the same event id for the same row.
_ID_NAMESPACE = uuid.UUID("6f1d2c52-9a0e-4f7e-8d1c-7b3f2a9e5c41")
_BOM = codecs.BOM_UTF8
# What makes a spreadsheet read a cell as a formula (OWASP's list for CSV injection).
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


class CsvFileError(InputError):
    """Raised when the file as a whole cannot be read with its mapping (header, lines)."""


def spreadsheet_safe(cells: list[str]) -> list[str]:
    """``cells`` with a ``'`` before any that a spreadsheet would run as a formula."""
    return [f"'{cell}" if cell.startswith(_FORMULA_LEADS) else cell for cell in cells]


def event_id_for(partner: str, source: str, position: str) -> str:
    """A deterministic event id: the same source row always gets the same id."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{partner}|{source}|{position}"))


@dataclass
class IngestSummary:
    """What a run did: ``read = published + rejected`` always holds."""

    source: str
    read: int = 0
    published: int = 0
    rejected: int = 0
    reject_file: str | None = None
    resumed_at_line: int | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    def describe(self) -> str:
        """One line for a person."""
        resumed = f", resumed at line {self.resumed_at_line}" if self.resumed_at_line else ""
        rejects = f" (see {self.reject_file})" if self.rejected and self.reject_file else ""
        return (
            f"{self.source}: read {self.read}, published {self.published}, "
            f"rejected {self.rejected}{rejects} in {self.seconds:.1f}s{resumed}"
        )

    def to_json(self) -> str:
        """The summary as one JSON object (for ``--json``)."""
        return json.dumps(asdict(self))


class Checkpoint(BaseModel):
    """How far a file has been imported; replaced atomically after each acknowledged batch."""

    file_sha256: str
    offset: int = 0
    line: int = 0
    read: int = 0
    published: int = 0
    rejected: int = 0
    reject_bytes: int = 0
    header: list[str] = []
    done: bool = False

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        """The checkpoint at ``path``, or None when there is none (or it is unreadable)."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValueError):
            return None

    def save(self, path: Path) -> None:
        """Write to a temporary file, fsync, then rename over the old one (atomic)."""
        temporary = path.with_suffix(path.suffix + ".tmp")
        with temporary.open("wb") as out:
            out.write(self.model_dump_json().encode())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)


class _Lines:
    """Feeds ``csv.reader`` one decoded line at a time, keeping the byte offset and line.

    Undecodable bytes are kept (surrogateescape) so the record can still be parsed and
    written to the reject file byte for byte; the lines they were on are remembered.
    """

    def __init__(self, source: IO[bytes], encoding: str, offset: int, line: int) -> None:
        self.source = source
        self.encoding = encoding
        self.offset = offset
        self.line = line
        self.bad_lines: list[int] = []

    def __iter__(self) -> Iterator[str]:
        while True:
            raw = self.source.readline(MAX_LINE_BYTES)
            if not raw:
                return
            self.line += 1
            if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise CsvFileError(f"line {self.line} is longer than {MAX_LINE_BYTES} bytes")
            self.offset += len(raw)
            if self.line == 1 and raw.startswith(_BOM) and self.encoding == "utf-8":
                raw = raw[len(_BOM) :]
            try:
                yield raw.decode(self.encoding)
            except UnicodeDecodeError:
                self.bad_lines.append(self.line)
                yield raw.decode(self.encoding, errors="surrogateescape")


class CsvDrop:
    """One CSV file's import for one partner, with its reject file and checkpoint."""

    def __init__(
        self,
        path: Path,
        partner: str,
        mapping: EventMapping,
        settings: Settings,
        *,
        reject_path: Path | None = None,
        batch_size: int = 500,
        progress: bool = True,
    ) -> None:
        require_known_partner(settings, partner)
        load_place_key(settings)
        self.path = path
        self.partner = partner
        self.mapping = mapping
        self.settings = settings
        self.reject_path = reject_path or path.with_name(path.stem + ".rejects.csv")
        self.checkpoint_path = self.reject_path.with_name(
            self.reject_path.stem + ".checkpoint.json"
        )
        self.batch_size = batch_size
        self.progress = progress
        self.options = mapping.csv

    def run(self) -> IngestSummary:
        """Import the file (or the rest of it) and return the whole file's counts."""
        started = time.monotonic()
        digest, size = self._identity()
        checkpoint = Checkpoint.load(self.checkpoint_path)
        if checkpoint is None or checkpoint.file_sha256 != digest:
            checkpoint = Checkpoint(file_sha256=digest)
        summary = IngestSummary(source=str(self.path), reject_file=str(self.reject_path))
        if checkpoint.offset:
            summary.resumed_at_line = checkpoint.line + 1
        if not checkpoint.done:
            with Publisher(self.partner, self.mapping.source_system, self.settings) as publisher:
                self._import(checkpoint, publisher, size)
        summary.read, summary.published = checkpoint.read, checkpoint.published
        summary.rejected = checkpoint.rejected
        summary.seconds = time.monotonic() - started
        summary.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return summary

    def _identity(self) -> tuple[str, int]:
        """SHA-256 and size of the file, read in chunks (constant memory)."""
        digest = hashlib.sha256()
        size = 0
        try:
            with self.path.open("rb") as source:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise CsvFileError(f"{self.path}: cannot read: {exc.strerror}") from exc
        return digest.hexdigest(), size

    def _import(self, checkpoint: Checkpoint, publisher: Publisher, size: int) -> None:
        with (
            self.path.open("rb") as source,
            self._open_rejects(checkpoint) as rejects,
            tqdm(
                total=size,
                initial=checkpoint.offset,
                unit="B",
                unit_scale=True,
                desc=self.path.name,
                file=sys.stderr,
                disable=not self.progress,
                mininterval=0.5,
            ) as bar,
        ):
            source.seek(checkpoint.offset)
            lines = _Lines(source, self.options.encoding, checkpoint.offset, checkpoint.line)
            reader = csv.reader(
                lines,
                delimiter=self.options.delimiter,
                quotechar=self.options.quotechar,
                strict=True,
            )
            writer = csv.writer(rejects, delimiter=self.options.delimiter, lineterminator="\n")
            if not checkpoint.header:
                checkpoint.header = self._header(reader, lines)
                writer.writerow(["_line", "_reason", *spreadsheet_safe(checkpoint.header)])
            batch: list[Outgoing] = []
            since_checkpoint = 0
            for line, fields, problem in self._records(reader, lines, len(checkpoint.header)):
                checkpoint.read += 1
                since_checkpoint += 1
                if problem is None:
                    problem = self._prepare(publisher, checkpoint, fields, batch)
                if problem is not None:
                    checkpoint.rejected += 1
                    writer.writerow([line, problem, *spreadsheet_safe(fields)])
                if since_checkpoint >= self.batch_size:
                    self._commit(publisher, batch, checkpoint, lines, rejects, bar)
                    since_checkpoint = 0
            checkpoint.done = True
            self._commit(publisher, batch, checkpoint, lines, rejects, bar)

    def _open_rejects(self, checkpoint: Checkpoint) -> IO[str]:
        """The reject file, cut back to what the checkpoint counted (a resume re-adds the rest)."""
        mode = "r+" if checkpoint.header and self.reject_path.exists() else "w"
        rejects = self.reject_path.open(
            mode, encoding=self.options.encoding, errors="surrogateescape", newline=""
        )
        rejects.seek(checkpoint.reject_bytes)
        rejects.truncate()
        return rejects

    def _header(self, reader: Any, lines: _Lines) -> list[str]:
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise CsvFileError(f"{self.path}: the file is empty (no header line)") from None
        except csv.Error as exc:
            raise CsvFileError(f"{self.path}: line 1 (header): {exc}") from None
        if lines.bad_lines:
            raise CsvFileError(
                f"{self.path}: line 1 (header) is not valid {self.options.encoding}; "
                "set csv.encoding in the mapping (e.g. latin-1)"
            )
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise CsvFileError(f"{self.path}: the header repeats columns {duplicates}")
        missing = [column for column in self.mapping.columns() if column not in header]
        if missing:
            raise CsvFileError(
                f"{self.path}: the header lacks columns {missing} that the mapping reads"
                f" (is the delimiter {self.options.delimiter!r} right?)"
            )
        return header

    def _records(
        self, reader: Any, lines: _Lines, width: int
    ) -> Iterator[tuple[int, list[str], str | None]]:
        """(first line, fields, problem or None) for each non-blank record."""
        while True:
            first = lines.line + 1
            bad_before = len(lines.bad_lines)
            try:
                fields: list[str] = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield first, [], f"not valid CSV: {exc}"
                continue
            if not fields:
                continue  # a blank line is not a record
            if len(lines.bad_lines) > bad_before:
                yield (
                    first,
                    fields,
                    f"line {lines.bad_lines[bad_before]}: bytes that are not valid "
                    f"{self.options.encoding}; set csv.encoding in the mapping (e.g. latin-1)",
                )
            elif len(fields) != width:
                yield first, fields, f"{len(fields)} fields, the header has {width}"
            else:
                yield first, fields, None

    def _prepare(
        self, publisher: Publisher, checkpoint: Checkpoint, fields: list[str], batch: list[Outgoing]
    ) -> str | None:
        """Add the row's event to ``batch``; the reason it was rejected otherwise."""
        row = dict(zip(checkpoint.header, fields, strict=True))
        event_id = event_id_for(self.partner, checkpoint.file_sha256, str(checkpoint.read))
        try:
            batch.append(publisher.prepare(self.mapping.draft(row, event_id)))
        except EventRejected as exc:
            return self.mapping.explain(exc)
        return None

    def _commit(
        self,
        publisher: Publisher,
        batch: list[Outgoing],
        checkpoint: Checkpoint,
        lines: _Lines,
        rejects: IO[str],
        bar: tqdm[Any],
    ) -> None:
        """Deliver the batch, make the rejects durable, then move the checkpoint past both."""
        if batch:
            publisher.deliver(batch)
            checkpoint.published += len(batch)
            batch.clear()
        rejects.flush()
        os.fsync(rejects.fileno())
        checkpoint.reject_bytes = rejects.tell()
        checkpoint.offset, checkpoint.line = lines.offset, lines.line
        checkpoint.save(self.checkpoint_path)
        bar.update(lines.offset - bar.n)
        bar.set_postfix_str(f"rows={checkpoint.read} rejected={checkpoint.rejected}", refresh=False)
