"""Validate the deployment files against the schemas of what runs them, so a misspelt
field or a wrong type fails CI instead of a deploy (issue 14). ``make validate-deploy``.

    python scripts/validate-deploy.py            # every deployment file, and render's check
    python scripts/validate-deploy.py FILE...    # just these (compose or Kubernetes YAML)

- A compose file (a mapping with ``services``): check-jsonschema against the Compose
  Specification's schema it ships (``vendor.compose-spec``; in 0.37.4 byte for byte
  compose-spec/compose-spec's ``schema/compose-spec.json`` of June 2026, commit 170098b).
- Strimzi resources (``kafka.strimzi.io/v1``): jsonschema against the CRD schemas vendored
  in deploy/k8s/schemas/strimzi-<version>/ (closed: an unknown field is an error).
- Every other Kubernetes resource: kubernetes-validate, strict, for ``K8S_VERSION``.
- Without FILE arguments also ``deploy/render.py --check``: the generated topics, users,
  ConfigMaps and ACL list match the code.

Each problem is printed as ``file: Kind/name: field.path: message``; exit 1 if any.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

ROOT = Path(__file__).resolve().parent.parent
STRIMZI_VERSION = "1.0.1"
STRIMZI_SCHEMAS = ROOT / "deploy" / "k8s" / "schemas" / f"strimzi-{STRIMZI_VERSION}"
STRIMZI_API = "kafka.strimzi.io/v1"
K8S_VERSION = "1.33.0"  # the oldest Kubernetes the manifests are written for
COMPOSE_FILES = [ROOT / "deploy" / "compose" / "compose.yaml"]
K8S_DIRS = [ROOT / "deploy" / "k8s" / "manifests", ROOT / "deploy" / "k8s" / "jobs"]


def default_files() -> list[Path]:
    """Every deployment file this script knows how to validate."""
    return COMPOSE_FILES + sorted(path for d in K8S_DIRS for path in d.glob("*.yaml"))


def _dotted(path: Iterator[Any] | Any) -> str:
    return ".".join(str(part) for part in path) or "(root)"


@cache
def _strimzi_validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((STRIMZI_SCHEMAS / f"{kind.lower()}.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def resource_problems(doc: dict[str, Any]) -> list[str]:
    """What is wrong with one Kubernetes resource, as ``field.path: message`` lines."""
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api, str):
        return ["(root): apiVersion and kind are required strings"]
    if api.startswith("kafka.strimzi.io/"):
        if api != STRIMZI_API or not (STRIMZI_SCHEMAS / f"{kind.lower()}.json").exists():
            return [f"apiVersion: no vendored schema for {api} {kind} (Strimzi {STRIMZI_VERSION})"]
        errors = _strimzi_validator(kind).iter_errors(doc)
        return [f"{_dotted(e.absolute_path)}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{_dotted(exc.path)}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"apiVersion: {exc.message}"]
    return []


def _name(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata") or {}
    name = metadata.get("name") or metadata.get("generateName") or "?"
    return f"{doc.get('kind', '?')}/{name}"


def compose_problems(path: Path) -> list[str]:
    """check-jsonschema's findings for a compose file (its own lines, which name the field)."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            "-o",
            "text",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode == 0:
        return []
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines()]
    found = [line.removeprefix(f"{path}::") for line in lines if line.startswith(f"{path}::")]
    return found or lines


def file_problems(path: Path) -> list[str]:
    """Every problem in one file, each line naming the file."""
    label = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    try:
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except (OSError, yaml.YAMLError) as exc:
        return [f"{label}: not readable YAML: {exc}"]
    if len(docs) == 1 and isinstance(docs[0], dict) and "services" in docs[0]:
        return [f"{label}: compose: {line}" for line in compose_problems(path)]
    found = []
    for doc in docs:
        if not isinstance(doc, dict):
            found.append(f"{label}: a document is not a mapping")
            continue
        found += [f"{label}: {_name(doc)}: {problem}" for problem in resource_problems(doc)]
    return found


def main(argv: list[str]) -> int:
    """Validate ``argv``'s files (or every deployment file); print problems, exit 1 if any."""
    files = [Path(arg).resolve() for arg in argv] or default_files()
    problems = [problem for path in files for problem in file_problems(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    rendered = 0
    if not argv:
        render = [sys.executable, str(ROOT / "deploy" / "render.py"), "--check"]
        rendered = subprocess.run(render, check=False).returncode
    if not problems:
        print(
            f"{len(files)} deployment files valid (Strimzi {STRIMZI_VERSION}, "
            f"Kubernetes {K8S_VERSION}, Compose Specification)"
        )
    return 1 if problems or rendered else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
