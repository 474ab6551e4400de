"""The ``_schemas`` record layout and the state it folds to, without a broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub._schema_state import (
    SchemaState,
    SubjectVersion,
    config_key,
    config_value,
    schema_key,
    schema_value,
)
from hub.compatibility import Compatibility
from hub.errors import ConfigError, RegistryError
from hub.schema_files import schema_id_of

V1 = {"type": "record", "name": "Reading", "fields": [{"name": "a", "type": "string"}]}
V2 = {"type": "record", "name": "Reading", "fields": [{"name": "b", "type": "int"}]}


def as_bytes(record: dict[str, Any]) -> bytes:
    """What the topic carries (``SchemasTopic.write``): compact JSON."""
    return json.dumps(record, separators=(",", ":")).encode()


def write(state: SchemaState, version: SubjectVersion, schema: dict[str, Any]) -> None:
    """Fold the record a registry writes for ``version`` back in, as another process would."""
    registered = SchemaState().remember(version.schema_id, schema)
    key, value = schema_key(version.subject, version.version), schema_value(version, registered)
    state.apply(as_bytes(key), as_bytes(value))


def test_the_records_keep_confluents_layout() -> None:
    version = SubjectVersion("readings-value", 2, 7, deleted=True)
    registered = SchemaState().remember(7, V1)
    assert as_bytes(schema_key("readings-value", 2)) == (
        b'{"keytype":"SCHEMA","subject":"readings-value","version":2,"magic":1}'
    )
    assert as_bytes(schema_value(version, registered)) == (
        b'{"subject":"readings-value","version":2,"id":7,"schema":'
        + json.dumps(registered.text).encode()
        + b',"deleted":true}'
    )
    assert as_bytes(config_key(None)) == b'{"keytype":"CONFIG","subject":null,"magic":0}'
    assert as_bytes(config_value(Compatibility.FULL)) == b'{"compatibilityLevel":"FULL"}'


def test_versions_fold_in_order_with_soft_deletes_and_tombstones() -> None:
    state, one, two = SchemaState(), schema_id_of(V1), schema_id_of(V2)
    write(state, SubjectVersion("s", 1, one), V1)
    write(state, SubjectVersion("s", 2, two), V2)
    write(state, SubjectVersion("s", 1, one, deleted=True), V1)
    assert [v.version for v in state.live("s")] == [2]
    assert [v.version for v in state.versions("s", deleted=True)] == [1, 2]
    assert state.version("s", "latest", deleted=False).schema_id == two
    assert state.lookup("s", one, deleted=True).version == 1
    assert state.usages(one, deleted=False) == []
    assert state.subject_names(deleted=False) == ["s"]
    assert state.next_version("s") == 3

    state.apply(as_bytes(schema_key("s", 2)), None)
    assert state.subject_names(deleted=False) == []
    assert state.subject_names(deleted=True) == ["s"]
    with pytest.raises(RegistryError) as refused:
        state.versions("s", deleted=False)
    assert refused.value.error_code == 40401
    assert state.find(two) is not None  # schemas outlive the versions that named them


def test_modes_fold_with_the_global_default_and_tombstones() -> None:
    state = SchemaState()
    assert state.compatibility("s", fallback=True) is Compatibility.BACKWARD
    state.apply(as_bytes(config_key(None)), as_bytes(config_value(Compatibility.FULL)))
    state.apply(as_bytes(config_key("s")), as_bytes(config_value(Compatibility.NONE)))
    assert state.compatibility("s", fallback=False) is Compatibility.NONE
    assert state.compatibility("other", fallback=True) is Compatibility.FULL
    state.apply(as_bytes(config_key("s")), None)
    assert state.compatibility("s", fallback=True) is Compatibility.FULL
    with pytest.raises(RegistryError) as refused:
        state.compatibility("s", fallback=False)
    assert refused.value.error_code == 40408


def test_an_id_naming_a_different_schema_is_refused() -> None:
    state = SchemaState()
    state.remember(5, V1)
    assert state.remember(5, json.loads(json.dumps(V1))) is state.schema(5)
    with pytest.raises(ConfigError, match="schema id 5 collides"):
        state.remember(5, V2)
