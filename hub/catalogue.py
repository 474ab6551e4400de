"""The browsable schema catalogue for partner IT teams, generated from the schemas.

One source, two renderings: ``docs/catalogue.md`` (written by ``placehub schemas docs`` and
checked by a test to be current) and ``GET /catalogue`` (HTML, served by every worker).
Each contract gets its documentation, mode, topics, fields, named types and an example in
Avro's JSON encoding; the envelope gets one example per event family.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from faust.web import Request, Response, View

from hub.app import Hub
from hub.config import PROJECT_ROOT
from hub.contracts import Contract, history, load_contracts
from hub.examples import avro_json, example
from hub.models import PAYLOAD_MODELS
from hub.schema_files import SCHEMA_DIR, load_schema

__all__ = [
    "DOCS_PATH",
    "event_types",
    "install_catalogue_page",
    "render_html",
    "render_markdown",
    "write_docs",
]

DOCS_PATH = PROJECT_ROOT / "docs" / "catalogue.md"

_INTRO = (
    "Every record on a placehub topic is Avro, framed the Confluent way (byte 0, a 4-byte "
    "schema id, the Avro body), with its schema in the hub's registry (the Confluent Schema "
    "Registry REST API under `/subjects`, `/schemas`, `/compatibility`, `/config`). Subjects "
    "follow the topic name strategy: `<topic>-value`. Records carry codes, bands and "
    "pseudonymous tokens only: no names, identifiers, dates of birth, addresses or free text "
    "about a person. Examples are synthetic and shown in Avro's JSON encoding (timestamps are "
    "milliseconds since the epoch, UTC)."
)


@dataclass(frozen=True)
class _Block:
    """One piece of the document: a heading, paragraph, table, list or code sample."""

    kind: str  # 'h1', 'h2', 'h3', 'p', 'table', 'ul', 'code'
    text: str = ""
    rows: tuple[tuple[str, ...], ...] = ()


def event_types() -> list[tuple[str, str, str]]:
    """(event_type, payload record, what the family covers) for every kind of every family."""
    return [
        (f"{model.model_fields['family'].default}.{kind.value.lower()}", model.__name__, doc)
        for model in PAYLOAD_MODELS
        for doc in [(model.__doc__ or "").strip().splitlines()[0]]
        for kind in cast(type[StrEnum], model.model_fields["kind"].annotation)
    ]


def render_markdown(directory: Path = SCHEMA_DIR) -> str:
    """The catalogue as Markdown (what ``docs/catalogue.md`` holds)."""
    out: list[str] = []
    for block in _document(directory):
        if block.kind in ("h1", "h2", "h3"):
            anchor = _anchor(block.text)
            prefix = f'<a id="{anchor}"></a>\n\n' if anchor else ""
            out.append(f"{prefix}{'#' * int(block.kind[1])} {block.text}\n")
        elif block.kind == "p":
            out.append(f"{block.text}\n")
        elif block.kind == "ul":
            out.append("".join(f"- {row[0]}\n" for row in block.rows))
        elif block.kind == "code":
            out.append(f"```json\n{block.text}\n```\n")
        else:
            head, *body = block.rows
            lines = [head, tuple("---" for _ in head), *body]
            out.append("".join(f"| {' | '.join(_cell(c) for c in row)} |\n" for row in lines))
    return "\n".join(out)


def write_docs(path: Path = DOCS_PATH) -> Path:
    """Write the Markdown catalogue to ``path`` (``docs/catalogue.md``); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown())
    return path


def render_html(directory: Path = SCHEMA_DIR) -> str:
    """The catalogue as one HTML page (what ``GET /catalogue`` serves)."""
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>placehub schema catalogue</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}",
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;",
        "text-align:left;vertical-align:top}pre{background:#f4f4f4;padding:.5rem;overflow:auto}",
        "</style></head><body>",
    ]
    for block in _document(directory):
        text = _inline_html(block.text)
        if block.kind in ("h1", "h2", "h3"):
            anchor = f" id='{_anchor(block.text)}'" if _anchor(block.text) else ""
            out.append(f"<{block.kind}{anchor}>{text}</{block.kind}>")
        elif block.kind == "p":
            out.append(f"<p>{text}</p>")
        elif block.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline_html(r[0])}</li>" for r in block.rows))
            out.append("</ul>")
        elif block.kind == "code":
            out.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        else:
            head, *body = block.rows
            out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head))
            out += [
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                for row in body
            ]
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def install_catalogue_page(hub: Hub) -> None:
    """Serve the catalogue at ``GET /catalogue`` (rendered once, at start-up)."""
    page = render_html()

    class CataloguePage(View):
        """``GET /catalogue``: the schema catalogue as HTML, for partner IT teams."""

        async def get(self, request: Request) -> Response:
            return self.html(page)

    hub.app.page("/catalogue")(CataloguePage)


def _document(directory: Path) -> Iterator[_Block]:
    contracts = load_contracts(directory)
    yield _Block("h1", "placehub schema catalogue")
    yield _Block("p", _INTRO)
    yield _Block("h2", "Contracts")
    yield _Block(
        "table",
        rows=(
            ("schema", "compatibility", "topics", "versions"),
            *(
                (
                    f"[{c.name}](#{c.name.lower()})",
                    c.compatibility.value,
                    ", ".join(f"`{t}`" for t in c.topics),
                    str(len(history(c.name, directory))),
                )
                for c in contracts
            ),
        ),
    )
    yield _Block("h2", "Event types")
    yield _Block(
        "p",
        "A `PartnerEvent`'s `event_type` is `<family>.<kind>` and must match its payload.",
    )
    rows = [(f"`{t}`", f"[{model}](#{model.lower()})", doc) for t, model, doc in event_types()]
    yield _Block("table", rows=(("event_type", "payload", "family"), *rows))
    for contract in contracts:
        yield from _contract(contract, load_schema(contract.name, directory))


def _contract(contract: Contract, schema: dict[str, Any]) -> Iterator[_Block]:
    yield _Block("h2", contract.name)
    yield _Block("p", schema.get("doc", ""))
    yield _Block(
        "p",
        f"Compatibility: **{contract.compatibility.value}**. Topics: "
        + ", ".join(f"`{topic}`" for topic in contract.topics)
        + ".",
    )
    yield from _record(schema)
    for named in _named_types(schema):
        yield _Block("h3", f"{named['name']} ({named['type']})")
        yield _Block("p", named.get("doc", ""))
        if named["type"] == "record":
            yield from _record(named)
        else:
            yield _Block("p", "Symbols: " + ", ".join(f"`{s}`" for s in named["symbols"]) + ".")
    payload = next((f for f in schema["fields"] if f["name"] == "payload"), None)
    branches = payload["type"] if payload else [None]
    for variant, _ in enumerate(branches):
        record = example(schema, variant)
        title = record.get("event_type", contract.name)
        yield _Block("h3", f"Example: {title}")
        yield _Block("code", avro_json(schema, record))


def _record(schema: dict[str, Any]) -> Iterator[_Block]:
    rows = [(f"`{f['name']}`", _type_name(f["type"]), f.get("doc", "")) for f in schema["fields"]]
    yield _Block("table", rows=(("field", "type", "meaning"), *rows))


def _named_types(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Records and enums defined inside ``schema``, in the order they are defined."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "enum") and node is not schema:
                found.append(node)
            for field in node.get("fields", []):
                walk(field["type"])
            walk(node.get("items"))

    walk(schema)
    return found


def _type_name(node: Any) -> str:
    if isinstance(node, str):
        return node.rsplit(".", 1)[-1]
    if isinstance(node, list):
        branches = [b for b in node if b != "null"]
        names = " \\| ".join(_type_name(b) for b in branches)
        return f"{names} (optional)" if "null" in node else f"one of {names}"
    if node.get("logicalType"):
        return str(node["logicalType"])
    if node["type"] in ("record", "enum"):
        return f"[{node['name']}](#{node['name'].lower()})"
    if node["type"] == "array":
        return f"array of {_type_name(node['items'])}"
    return _type_name(node["type"])


def _anchor(heading: str) -> str:
    """Link target of a contract or type heading ('HousingEvent (record)' → 'housingevent')."""
    word = heading.split(" ")[0]
    return word.lower() if word.isalnum() and word[0].isupper() else ""


def _cell(text: str) -> str:
    return text.replace("\n", " ")


def _inline_html(text: str) -> str:
    """The little Markdown the catalogue uses (`code`, **bold**, [link](#a)) as HTML."""
    out = html.escape(text, quote=False).replace("\\|", "|")
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\[([^\]]+)\]\(#([^)]+)\)", r"<a href='#\2'>\1</a>", out)
