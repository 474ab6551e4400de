"""The peer in the bench: Quix Streams, in a virtualenv of its own, folding the same partner
records into per-person RocksDB state (``tests/bench/peer/quix_fold.py`` says what it does
and why it needs its own virtualenv).

The virtualenv is made under ``.cache/bench-peer`` from ``peer/requirements.txt`` (pinned)
the first time the bench needs it, and again whenever that file changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from connectors.simulate import PARTNERS
from hub.config import PROJECT_ROOT, Settings
from hub.schema_files import load_schema
from hub.topics import Topics

__all__ = ["PEER", "peer_python", "quix_fold_rate"]

PEER = "Quix Streams 3.28.1: consume + Avro decode + per-person RocksDB fold (1 process)"
VENV = PROJECT_ROOT / ".cache" / "bench-peer"
HERE = Path(__file__).parent / "peer"
REQUIREMENTS = HERE / "requirements.txt"
TIMEOUT_S = 900


def peer_python(progress: Callable[[str], None]) -> Path:
    """The peer virtualenv's interpreter, made or brought up to the requirements first."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    wanted = REQUIREMENTS.read_text()
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        progress(f"  installing the peer into {VENV.relative_to(PROJECT_ROOT)} (once)")
        pip = [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"]
        subprocess.run(pip, check=True)
        subprocess.run([*pip[:5], "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(wanted)
    return python


def quix_fold_rate(
    settings: Settings, events: int, folder: Path, progress: Callable[[str], None]
) -> float:
    """Records/s of the peer over the first ``events`` records of the partner topics, read
    from the beginning with fresh state (a new group, a new state folder)."""
    python = peer_python(progress)
    run = uuid.uuid4().hex[:6]
    folder.mkdir(parents=True, exist_ok=True)
    schema, out = folder / "PartnerEvent.avsc", folder / f"peer-{run}.json"
    schema.write_text(json.dumps(load_schema("PartnerEvent")))
    topics = Topics(settings.topic_prefix)
    command = [str(python), str(HERE / "quix_fold.py"), "--bootstrap", settings.bootstrap_servers]
    for partner in PARTNERS:
        command += ["--topic", topics.partner(partner)]
    command += ["--schema", str(schema), "--events", str(events)]
    command += ["--state", str(folder / f"peer-state-{run}"), "--group", f"peer-{run}"]
    command += ["--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"the peer failed: {done.stderr[-2000:]}")
    rate: float = json.loads(out.read_text())["rate"]
    return rate
