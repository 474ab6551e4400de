"""The contract catalogue: each schema's declared mode, its topics and its kept history.

``schemas/catalogue.yaml`` declares, for every ``.avsc`` file, the compatibility mode it
evolves under and the topics it is the value of. ``schemas/history/<Name>/vN.avsc`` keeps
every version that was ever published. ``check`` is what CI runs: the current schema must
be the latest recorded version, and must honour its mode against *every* earlier one (CI is
always transitive, because a topic can still hold records written with any of them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.compatibility import Compatibility, incompatibilities
from hub.config import Settings
from hub.config_files import load_config_file
from hub.errors import ConfigError, InputError
from hub.partners import load_partners
from hub.registry import SchemaRegistry, SubjectVersion
from hub.schema_files import SCHEMA_DIR, load_schema, schema_id_of

__all__ = [
    "Contract",
    "Finding",
    "check",
    "history",
    "load_contracts",
    "register",
    "subjects_of",
]

_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


class Contract(BaseModel):
    """One schema's entry in ``schemas/catalogue.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    compatibility: Compatibility = Compatibility.BACKWARD
    topics: list[str] = Field(min_length=1)


class _CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schemas: dict[str, Contract] = Field(min_length=1)


@dataclass(frozen=True)
class Finding:
    """One reason ``placehub schemas check`` fails, about one schema."""

    schema: str
    problem: str

    def __str__(self) -> str:
        return f"{self.schema}: {self.problem}"


def load_contracts(directory: Path = SCHEMA_DIR) -> list[Contract]:
    """The contracts declared in ``<directory>/catalogue.yaml``, in file order."""
    loaded = load_config_file(directory / "catalogue.yaml", _CatalogueFile, "schema catalogue")
    return [contract.model_copy(update={"name": name}) for name, contract in loaded.schemas.items()]


def history(name: str, directory: Path = SCHEMA_DIR) -> list[tuple[str, dict[str, Any]]]:
    """The recorded versions of schema ``name`` as ('vN', schema), oldest first.

    ConfigError if the numbering has a gap or a file is not valid Avro.
    """
    folder = directory / "history" / name
    numbers = sorted(
        int(match.group(1))
        for path in (folder.iterdir() if folder.is_dir() else [])
        if (match := _VERSION_FILE.match(path.name))
    )
    if numbers != list(range(1, len(numbers) + 1)):
        raise ConfigError(f"{folder}: versions must be v1.avsc, v2.avsc, ... without gaps")
    return [(f"v{n}", load_schema(f"v{n}", folder)) for n in numbers]


def check(directory: Path = SCHEMA_DIR) -> list[Finding]:
    """Everything wrong with the catalogue; empty when every schema may be published."""
    contracts = load_contracts(directory)
    declared = {contract.name for contract in contracts}
    on_disk = {path.stem for path in directory.glob("*.avsc")}
    findings = [
        Finding(name, f"{name}.avsc is not declared in catalogue.yaml")
        for name in sorted(on_disk - declared)
    ]
    findings += [
        Finding(name, f"declared in catalogue.yaml but {name}.avsc does not exist")
        for name in sorted(declared - on_disk)
    ]
    for contract in contracts:
        if contract.name in on_disk:
            findings += _check_one(contract, directory)
    return findings


def _check_one(contract: Contract, directory: Path) -> list[Finding]:
    name = contract.name
    try:
        current = load_schema(name, directory)
        earlier = history(name, directory)
    except ConfigError as exc:
        return [Finding(name, str(exc))]
    if not earlier:
        return [Finding(name, f"no history: record it as history/{name}/v1.avsc")]
    found: list[Finding] = []
    latest_label, latest = earlier[-1]
    if schema_id_of(latest) != schema_id_of(current):
        found.append(
            Finding(
                name,
                f"{name}.avsc differs from its latest recorded version {latest_label}: record "
                f"it as history/{name}/v{len(earlier) + 1}.avsc once it is compatible",
            )
        )
    full_names = {_full_name(schema) for _, schema in earlier} | {_full_name(current)}
    if len(full_names) > 1:
        found.append(Finding(name, f"the record's full name changed: {sorted(full_names)}"))
    mode = _transitive(contract.compatibility)
    try:
        problems = incompatibilities(current, earlier, mode)
    except InputError as exc:
        return [*found, Finding(name, str(exc))]
    found += [
        Finding(name, f"breaks {contract.compatibility.value} {problem}") for problem in problems
    ]
    return found


def subjects_of(contract: Contract, settings: Settings) -> list[str]:
    """The registry subjects (TopicNameStrategy, ``<topic>-value``) the contract is used under."""
    partners = [partner.id for partner in load_partners(settings.partners_file)]
    topics = [
        topic.replace("{partner}", partner)
        for topic in contract.topics
        for partner in (partners if "{partner}" in topic else [""])
    ]
    return [f"{settings.topic_prefix}{topic}-value" for topic in topics]


def register(
    registry: SchemaRegistry, settings: Settings, directory: Path = SCHEMA_DIR
) -> list[SubjectVersion]:
    """Register every current schema under its subjects, each subject set to its mode."""
    registered: list[SubjectVersion] = []
    for contract in load_contracts(directory):
        schema = load_schema(contract.name, directory)
        for subject in subjects_of(contract, settings):
            if registry.compatibility(subject) is not contract.compatibility:
                registry.set_compatibility(subject, contract.compatibility)
            registered.append(registry.register_version(subject, schema))
    return registered


def _transitive(mode: Compatibility) -> Compatibility:
    if mode is Compatibility.NONE or mode.transitive:
        return mode
    return Compatibility(f"{mode.value}_TRANSITIVE")


def _full_name(schema: dict[str, Any]) -> str:
    namespace = schema.get("namespace")
    return f"{namespace}.{schema.get('name')}" if namespace else str(schema.get("name"))
