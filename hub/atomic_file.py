"""Write a file whole or not at all, with its mode set before anyone can read it.

Why: the local cluster's secrets, key stores, rendered configuration and pid files must
never be seen half-written, nor readable by others for a moment (a password file made
with the default mode and then narrowed would be).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (text as UTF-8), created with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)  # an old tmp file keeps its mode otherwise
    tmp.replace(path)
