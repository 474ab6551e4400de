"""Extract the JSON Schemas of the Strimzi custom resources placehub uses from a Strimzi
release's CRDs, so CI validates deploy/k8s/ against the operator it is written for.

Redo it for another release (the CRDs are read with ``git show`` from a clone of
strimzi/strimzi-kafka-operator at the release's tag):

    python deploy/k8s/schemas/extract_strimzi.py /path/to/strimzi-kafka-operator.git 1.0.1

It writes ``strimzi-<tag>/<kind>.json`` beside this file and ``strimzi-<tag>/SOURCE``
(repository, tag, commit). A CRD's ``openAPIV3Schema`` is Kubernetes' OpenAPI dialect;
the output is plain JSON Schema: ``nullable`` becomes a ``null`` type,
``x-kubernetes-int-or-string`` an integer-or-string, and every object that lists its
properties (and does not say ``x-kubernetes-preserve-unknown-fields``) refuses others,
as the API server would prune them silently: a misspelt field is an error here.
``apiVersion`` and ``kind`` must be the served version's, and ``metadata.name`` is required.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CRD_DIR = "packaging/install/cluster-operator"
# The CRD files (by their number in the install folder) of the kinds deploy/k8s uses.
CRDS = {
    "040-Crd-kafka.yaml": "kafka",
    "043-Crd-kafkatopic.yaml": "kafkatopic",
    "044-Crd-kafkauser.yaml": "kafkauser",
    "045-Crd-kafkanodepool.yaml": "kafkanodepool",
}
API_VERSION = "v1"  # the one version Strimzi 1.x serves and stores


def strict(schema: Any) -> Any:
    """``schema`` (an OpenAPI v3 structural schema) as plain, closed JSON Schema."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items() if key != "description"}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    out.pop("x-kubernetes-validations", None)  # CEL rules: the API server's, not JSON Schema
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def resource_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The closed JSON Schema of ``crd``'s served ``API_VERSION``."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == API_VERSION and v["served"]]
    schema: dict[str, Any] = strict(version["schema"]["openAPIV3Schema"])
    props = schema["properties"]
    props["apiVersion"] = {"const": f"{group}/{API_VERSION}"}
    props["kind"] = {"const": kind}
    props["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": kind, **schema}


def main(git_dir: str, tag: str) -> None:
    """Write the schemas of ``CRDS`` at ``tag`` of the Strimzi clone at ``git_dir``."""
    out_dir = HERE / f"strimzi-{tag}"
    out_dir.mkdir(exist_ok=True)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", git_dir, *args], check=True, capture_output=True, text=True
        ).stdout

    commit = git("rev-parse", f"{tag}^{{commit}}").strip()
    for file, kind in CRDS.items():
        crd = yaml.safe_load(git("show", f"{tag}:{CRD_DIR}/{file}"))
        text = json.dumps(resource_schema(crd), indent=1, sort_keys=True)
        (out_dir / f"{kind}.json").write_text(text + "\n")
    (out_dir / "SOURCE").write_text(
        f"repository: strimzi/strimzi-kafka-operator\ntag: {tag}\ncommit: {commit}\n"
        f"files: {', '.join(f'{CRD_DIR}/{f}' for f in CRDS)}\n"
        f"made by: deploy/k8s/schemas/extract_strimzi.py (its docstring says how)\n"
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: extract_strimzi.py STRIMZI_GIT_DIR TAG")
    main(sys.argv[1], sys.argv[2])
