"""An in-memory schema registry, so serde and gate rules are tested without Kafka."""

from __future__ import annotations

from typing import Any, cast

import fastavro

from hub.codec import ParsedSchema
from hub.errors import SchemaNotFound
from hub.schema_files import RegisteredSchema, schema_id_of


class MemoryRegistry:
    """The subset of ``SchemaRegistry`` that ``Serde`` uses, kept in a dict."""

    def __init__(self) -> None:
        self.by_schema_id: dict[int, RegisteredSchema] = {}

    def register(self, subject: str, schema: dict[str, Any]) -> RegisteredSchema:
        schema_id = schema_id_of(schema)
        parsed = cast(ParsedSchema, fastavro.parse_schema(schema))
        return self.by_schema_id.setdefault(schema_id, RegisteredSchema(schema_id, schema, parsed))

    def knows(self, schema_id: int) -> bool:
        return schema_id in self.by_schema_id

    def by_id(self, schema_id: int) -> RegisteredSchema:
        try:
            return self.by_schema_id[schema_id]
        except KeyError:
            raise SchemaNotFound(f"schema id {schema_id} is not registered") from None
