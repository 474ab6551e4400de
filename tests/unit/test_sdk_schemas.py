"""The SDK's schemas: the .avsc files come from the hub package, and records are framed
with the fingerprint id the hub's registry gives the same schema, with no registry."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from hub.codec import split_frame
from hub.config import PROJECT_ROOT
from hub.errors import SchemaNotFound
from hub.models import PartnerEvent
from hub.schema_files import SCHEMA_DIR, LocalSchemas, load_schema, schema_id_of
from hub.serde import Serde
from tests.unit.factories import event


def test_the_hub_packages_schemas_are_the_ones_edited_under_schemas() -> None:
    # A link, not a copy that could drift: the wheels carry the files themselves.
    assert SCHEMA_DIR.parent == Path(str(files("hub")))
    assert SCHEMA_DIR.resolve() == PROJECT_ROOT / "schemas"


def test_a_record_carries_the_fingerprint_id_and_decodes_back() -> None:
    serde = Serde(LocalSchemas())
    original = event()

    framed = serde.encode(original, "partner.council-housing.events-value")

    assert split_frame(framed)[0] == schema_id_of(load_schema("PartnerEvent"))
    assert serde.decode(framed, PartnerEvent) == original


def test_an_id_it_did_not_frame_with_is_not_found() -> None:
    with pytest.raises(SchemaNotFound, match="schema id 7 is not one of this package's"):
        LocalSchemas().by_id(7)
