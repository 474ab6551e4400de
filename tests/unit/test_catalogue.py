"""The schema catalogue for partner IT teams: complete, current, and served as HTML."""

from __future__ import annotations

from hub.catalogue import DOCS_PATH, event_types, render_html, render_markdown
from hub.contracts import load_contracts
from hub.models import PAYLOAD_MODELS


def test_docs_catalogue_is_generated_from_the_current_schemas() -> None:
    assert DOCS_PATH.read_text() == render_markdown(), "run `placehub schemas docs`"


def test_catalogue_lists_every_event_type_and_contract_with_an_example() -> None:
    page = render_html()
    types = event_types()
    kinds = sum(len(model.model_fields["kind"].annotation) for model in PAYLOAD_MODELS)  # type: ignore[arg-type]
    assert len(types) == kinds >= 24
    for event_type, payload, _ in types:
        assert f"<code>{event_type}</code>" in page
        assert f"id='{payload.lower()}'" in page
    for contract in load_contracts():
        assert f"<h2 id='{contract.name.lower()}'>{contract.name}</h2>" in page
    for model in PAYLOAD_MODELS:  # one example event per family
        family = model.model_fields["family"].default
        assert f"<h3>Example: {family}." in page
    assert page.count("<h3>Example:") == len(PAYLOAD_MODELS) + len(load_contracts()) - 1
