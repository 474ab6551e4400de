"""Build the SDK wheel, ``placehub-connectors``: ``python sdk/build.py [--out DIR]``.

It stages, in a temporary folder beside ``sdk/pyproject.toml``, the ``connectors`` package
(less the hub-side modules in ``HUB_SIDE``), exactly the ``hub`` modules those import
(followed through their imports, read from the code) and ``schemas/*.avsc``, and builds
the wheel there with pip (setuptools from the package registry, as for the hub's). The tests
check that what is staged imports no Faust, aiokafka, aiohttp or private ``hub._*`` module.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Not in the SDK: ``simulate`` knows the hub's person ids (hub.stages), ``events`` reads
# hub.events (no partner may), ``sql_poll`` needs psycopg, which a partner publishing
# through the SDK alone does not.
HUB_SIDE = frozenset({"connectors.simulate", "connectors.events", "connectors.sql_poll"})


def connector_modules() -> list[str]:
    """The ``connectors`` modules the SDK ships."""
    names = sorted(f"connectors.{path.stem}" for path in (ROOT / "connectors").glob("*.py"))
    return [name.removesuffix(".__init__") for name in names if name not in HUB_SIDE]


def sdk_modules() -> list[str]:
    """Every module the SDK ships: its connectors and the project modules they import."""
    seen: set[str] = set()
    todo = connector_modules()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_project_imports(_source(name)))
    return sorted(seen)


def _source(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _project_imports(path: Path) -> set[str]:
    """The ``hub``/``connectors`` modules ``path`` imports (and their packages)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            # ``from hub import x`` names a module x when hub/x.py exists
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] not in ("hub", "connectors"):
                continue
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if _source(candidate).exists():
                    found.add(candidate)
    return found


def stage(into: Path) -> None:
    """Lay out the SDK's source tree in ``into`` (the files themselves, links followed)."""
    shutil.copy(ROOT / "sdk" / "pyproject.toml", into / "pyproject.toml")
    for module in sdk_modules():
        source = _source(module)
        target = into / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    for package in ("hub", "connectors"):
        shutil.copy(ROOT / package / "py.typed", into / package / "py.typed")
    (into / "hub" / "schemas").mkdir()
    for schema in (ROOT / "schemas").glob("*.avsc"):
        shutil.copy(schema, into / "hub" / "schemas" / schema.name)


def build(out: Path) -> Path:
    """Build the wheel into ``out`` (replacing an SDK wheel built there before); its path."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("placehub_connectors-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="placehub-sdk-") as folder:
        staged = Path(folder)
        stage(staged)
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        command += ["--wheel-dir", str(out), str(staged)]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:  # setuptools' warnings are shown only when the build fails
        raise SystemExit(f"building the SDK wheel failed:\n{done.stdout}{done.stderr}")
    [wheel] = out.glob("placehub_connectors-*.whl")
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="wheel folder")
    print(build(parser.parse_args().out))


if __name__ == "__main__":
    main()
