"""Read a profiled worker's pyinstrument session: where its time went, by library and stage.

pyinstrument's own text report hides library frames, which is most of a Faust worker's time;
this summary adds each frame's self time to its package (hub, faust, aiokafka, asyncio, ...)
and reports the inclusive time of the hub's stages and of Faust's send and fetch machinery.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

__all__ = ["STAGES", "summarise"]

# (function, file it is defined in, what the summary calls it)
STAGES = (
    ("process", "hub/stages/gate.py", "gate stage (its pure batch function)"),
    ("process", "hub/stages/identity.py", "identity stage"),
    ("process", "hub/stages/view.py", "view stage"),
    ("process", "hub/stages/alerts.py", "alerts stage"),
    ("process", "hub/stages/pattern_people.py", "patterns-people stage"),
    ("process", "hub/stages/patterns.py", "patterns stage"),
    ("control", "hub/disclosure.py", "disclosure control (in the patterns stage)"),
    ("process", "hub/stages/quarantine.py", "release stage"),
    ("decode", "hub/serde.py", "Serde.decode (Avro + pydantic), all stages"),
    ("run", "hub/runtime/run.py", "stage runtime, every stage (process + deliveries)"),
    ("_phases", "hub/runtime/run.py", "runtime: table writes to changelog records"),
    ("_deliver", "hub/runtime/run.py", "runtime: sending outputs and changelogs"),
    ("_apply", "hub/runtime/run.py", "runtime: writing the tables' stores"),
    ("local_books", "hub/stages/accounting.py", "books read for the status endpoint (bench polls)"),
    ("_send_produce_req", "aiokafka/producer/sender.py", "aiokafka produce requests"),
    ("_fetcher", "faust/transport/consumer.py", "Faust fetcher"),
    ("on_message", "faust/transport/conductor.py", "Faust conductor (per message)"),
    ("_read", "aiokafka/conn.py", "aiokafka response decoding"),
    ("select", "selectors.py", "idle (waiting in epoll)"),
)


def summarise(path: Path) -> str:
    """A text summary of the session saved at ``path`` (a ``.pyisession`` file)."""
    session = Session.load(str(path))
    root: Any = ConsoleRenderer(show_all=True).preprocess(session.root_frame())
    if root is None:
        return f"{path}: no samples"
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    _walk(root, frozenset(), None, own, inclusive)
    total = root.time
    lines = [f"{path.name}: {total:.1f}s sampled; self time by package:"]
    lines += [f"  {name:<28} {t:6.2f}s {t / total:6.1%}" for name, t in own.most_common(10)]
    lines.append("inclusive time of stages and machinery (overlapping):")
    lines += [
        f"  {label:<44} {inclusive[label]:6.2f}s {inclusive[label] / total:6.1%}"
        for *_, label in STAGES
        if inclusive[label]
    ]
    return "\n".join(lines)


def _walk(
    frame: Any,
    inside: frozenset[str],
    parent_file: str | None,
    own: Counter[str],
    inclusive: Counter[str],
) -> None:
    file_path = parent_file if frame.function == "[self]" else frame.file_path
    own[_package(file_path, frame.function)] += frame.time - sum(c.time for c in frame.children)
    labels = set(inside)
    for function, where, label in STAGES:
        if frame.function == function and where in (frame.file_path or "") and label not in inside:
            inclusive[label] += frame.time  # outermost call only: recursion is not counted twice
            labels.add(label)
    for child in frame.children:
        _walk(child, frozenset(labels), file_path, own, inclusive)


def _package(file_path: str | None, function: str) -> str:
    path = file_path or ""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/hub/" in path:
        return "hub"
    if "/python3." in path and "/lib/" in path:
        module = path.split("/python3.", 1)[1].split("/", 1)[-1]  # e.g. asyncio/events.py
        return "stdlib " + module.split("/", 1)[0].removesuffix(".py")
    return f"builtin {function}" if path.startswith("<built") else path or "other"


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(summarise(Path(argument)))
