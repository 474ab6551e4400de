"""The lookup's pure side: the view's refs index (``hub.stages.refs``), kept by the view
stage as views change, and the checks of a lookup's query (``hub.lookup``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from multidict import MultiDict

from hub import batch
from hub.batch import Op
from hub.lookup import BadLookup, source_ref_of
from hub.stages.effects import Staged
from hub.stages.refs import holds, index_key, ref_digest, reindex
from hub.stages.view import PersonView, TimelineEntry, ViewStage
from tests.unit import factories
from tests.unit.test_stages import (
    CTX,
    PERSON,
    VIEW_PARTITION,
    event_item,
    run,
    view_record,
    written,
)

HOUSING, SCHOOL = "council-housing", "northfield-school"


def entry(partner: str, ref: str, basis: str = "consent:c-1") -> TimelineEntry:
    return TimelineEntry(
        event_id=f"{partner}-{ref}-{basis}",
        event_type="housing.arrears",
        partner_id=partner,
        occurred_at=factories.WHEN,
        purpose="early-help",
        basis=basis,
        source_ref=ref,
        tokens=[factories.NHS_TOKEN],
    )


def view(person_id: str, *entries: TimelineEntry) -> PersonView:
    return PersonView(person_id=person_id, entries=list(entries))


def row(index: dict[bytes, Any], partner: str, ref: str, partition: int = 1) -> Any:
    return index.get(index_key(partition, ref_digest(partner, ref)))


def test_the_digest_names_the_partner_and_the_ref_together() -> None:
    assert ref_digest(HOUSING, "R-1") != ref_digest(SCHOOL, "R-1")
    assert ref_digest(HOUSING, "R-1") != ref_digest(HOUSING, "R-2")
    assert ref_digest("a", "b\0c") != ref_digest("a\0b", "c")
    assert "R-1" not in index_key(3, ref_digest(HOUSING, "R-1")).decode()


def test_reindex_adds_moves_and_removes_a_person() -> None:
    index: dict[bytes, Any] = {}
    first = view("p-1", entry(HOUSING, "R-1"), entry(SCHOOL, "S-1"))
    reindex(index, 1, "p-1", None, first)
    assert row(index, HOUSING, "R-1") == ["p-1"] and row(index, SCHOOL, "S-1") == ["p-1"]
    reindex(index, 1, "p-2", None, view("p-2", entry(HOUSING, "R-1", "consent:c-2")))
    assert row(index, HOUSING, "R-1") == ["p-1", "p-2"]

    # The school's entry erased from p-1: its row goes; housing's row keeps both people.
    reindex(index, 1, "p-1", first, view("p-1", entry(HOUSING, "R-1")))
    assert row(index, SCHOOL, "S-1") is None
    assert row(index, HOUSING, "R-1") == ["p-1", "p-2"]
    # p-2's view gone (merged away or erased): only p-1 is left in the row.
    reindex(index, 1, "p-2", view("p-2", entry(HOUSING, "R-1", "consent:c-2")), None)
    assert row(index, HOUSING, "R-1") == ["p-1"]
    reindex(index, 1, "p-1", view("p-1", entry(HOUSING, "R-1")), None)
    assert index == {}


def test_one_ref_on_two_partitions_is_two_rows() -> None:
    index: dict[bytes, Any] = {}
    reindex(index, 0, "p-a", None, view("p-a", entry(HOUSING, "R-1")))
    reindex(index, 3, "p-b", None, view("p-b", entry(HOUSING, "R-1")))
    assert row(index, HOUSING, "R-1", 0) == ["p-a"] and row(index, HOUSING, "R-1", 3) == ["p-b"]


def test_reindex_through_a_staged_table_rolls_back_with_it() -> None:
    staged = Staged({})
    mark = staged.savepoint()
    reindex(staged, 2, "p-1", None, view("p-1", entry(HOUSING, "R-1")))
    assert row(dict(staged.items()), HOUSING, "R-1", 2) == ["p-1"]
    staged.rollback(mark)
    assert dict(staged.items()) == {}


def test_holds_checks_the_partner_and_the_ref() -> None:
    entries = [entry(HOUSING, "R-1"), entry(SCHOOL, "S-1")]
    assert holds(entries, HOUSING, ref_digest(HOUSING, "R-1"))
    assert not holds(entries, SCHOOL, ref_digest(HOUSING, "R-1"))  # not the school's record
    assert not holds(entries, HOUSING, ref_digest(HOUSING, "S-1"))


def test_the_view_stage_keeps_the_index_with_the_views() -> None:
    kept, gone = factories.event(consent_id="c-2"), factories.event(consent_id="c-1")
    _, state = run(ViewStage(CTX), [view_record([event_item(kept, "s1")])])
    key = index_key(VIEW_PARTITION, ref_digest(HOUSING, "HSG-0042"))
    assert written(state, "view-refs") == {key: [PERSON]}
    # The refs row is written on the person's partition, as the view is.
    assert {p for p, _, _ in state["view-refs"].writes()} == {VIEW_PARTITION}

    views, refs = written(state, "views"), written(state, "view-refs")
    _, state = run(
        ViewStage(CTX), [view_record([event_item(gone, "s2")])], views=views, view_refs=refs
    )
    assert written(state, "view-refs") == {}  # the ref was already indexed: nothing to write
    views = {**views, **written(state, "views")}

    # Erasing every entry of the person takes them out of the index.
    erase = [batch.Item(Op.ERASE, PERSON, basis=f"consent:{c}") for c in ("c-1", "c-2")]
    _, state = run(ViewStage(CTX), [view_record(erase)], views=views, view_refs=refs)
    assert written(state, "views") == {PERSON.encode(): None}
    assert written(state, "view-refs") == {key: None}


def test_an_expired_entry_leaves_the_index() -> None:
    event = factories.event(occurred_at=factories.WHEN - timedelta(days=300))
    _, state = run(ViewStage(CTX), [view_record([event_item(event, "s1")])])
    views, refs = written(state, "views"), written(state, "view-refs")
    later = type(CTX)(**{**CTX.__dict__, "consent_retention": timedelta(days=200)})
    sweep = batch.Item(Op.SWEEP, PERSON)
    _, state = run(ViewStage(later), [view_record([sweep])], views=views, view_refs=refs)
    assert set(written(state, "view-refs").values()) == {None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "source_ref"),
        ({"source_ref": ["A-1", "A-2"]}, "source_ref"),
        ({"source_ref": ["has space"]}, "source_ref"),
        ({"source_ref": [""]}, "source_ref"),
        ({"source_ref": ["x" * 65]}, "source_ref"),
        ({"source_ref": ["9434765919"]}, "source_ref"),  # an NHS number
        ({"source_ref": ["A-1"], "partner": [SCHOOL]}, "partner"),
    ],
)
def test_a_bad_query_names_the_field_and_never_the_value(
    query: dict[str, list[str]], field: str
) -> None:
    multi = MultiDict([(name, value) for name, values in query.items() for value in values])
    with pytest.raises(BadLookup) as refused:
        source_ref_of(multi, HOUSING)
    assert refused.value.status == 422
    assert refused.value.title.startswith(f"{field}: ")
    assert not any(v and v in refused.value.title for vs in query.values() for v in vs)


def test_a_good_query_gives_its_ref() -> None:
    assert source_ref_of(MultiDict(source_ref="HSG-0042"), HOUSING) == "HSG-0042"
    both = MultiDict([("source_ref", "HSG-0042"), ("partner", HOUSING)])
    assert source_ref_of(both, HOUSING) == "HSG-0042"
