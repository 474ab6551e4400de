import weakref
from collections.abc import Iterator
from types import SimpleNamespace

from faust.types import TP

from hub import web
from hub.stages.accounting import (
    already_counted,
    count,
    ledger_key,
    local_books,
    partner_status,
)
from hub.stages.effects import Record


def test_a_record_read_again_is_not_counted_again() -> None:
    entry = count(None, 5, "a", ["received"])
    assert already_counted(entry, 5)
    assert not already_counted(entry, 6)
    assert not already_counted(None, 0)
    # Records delivered late (Faust dropped them and the watchdog read them again) are
    # counted when they come: only offsets counted before are skipped.
    entry = count(count(entry, 9, "a", ["received"]), 7, "a", ["received"])
    assert [already_counted(entry, n) for n in (5, 6, 7, 8, 9)] == [True, False, True, False, True]
    assert entry["partners"]["a"]["received"] == 3
    assert already_counted({"offset": 5, "partners": {}}, 3)  # an entry from before ranges


def entry(partner: str, *sources: str) -> dict[str, object]:
    return {"partner_id": partner, "sources": list(sources)}


def test_fates_are_read_off_state_and_the_books_balance() -> None:
    ledger = count(None, 0, "a", ["received"])
    for offset in range(1, 7):
        ledger = count(ledger, offset, "a", ["received"])
    ledger = count(ledger, 7, "a", ["received", "dead_lettered"])
    views = [{"entries": [entry("a", "s0", "s5"), entry("a", "s1"), entry("b", "x")]}]
    held = [[{"partner_id": "a", "source": "s2"}]]
    fates = {"s3": {"fate": "dropped", "partner": "a"}, "s4": {"fate": "erased", "partner": "a"}}
    status = partner_status([local_books([ledger], views, held, fates.values(), fates)["a"]])
    assert status["received"] == 8
    assert (status["in_view"], status["duplicate"], status["held_in_quarantine"]) == (2, 1, 1)
    assert (status["dropped"], status["erased"], status["dead_lettered"]) == (1, 1, 1)
    assert status["in_flight"] == 1 and status["balanced"] is False  # one not placed yet


def test_a_source_with_a_fate_is_not_also_counted_where_it_was() -> None:
    views = [{"entries": [entry("a", "s0")]}]
    fates = {"s0": {"fate": "erased", "partner": "a"}}
    ledger = [count(None, 0, "a", ["received"])]
    status = partner_status([local_books(ledger, views, [], fates.values(), fates)["a"]])
    assert status["in_view"] == 0 and status["erased"] == 1 and status["in_flight"] == 0


def test_names() -> None:
    assert ledger_key("partner.a.events", 3) == "partner.a.events|3"
    assert Record("partner.a.events", 3, 7, None, None).source == "partner.a.events:3:7"


def test_status_adds_up_every_workers_share() -> None:
    one = local_books([count(None, 0, "a", ["received"])], [], [], [], {})["a"]
    two = local_books([], [{"entries": [entry("a", "s0")]}], [], [], {})["a"]
    status = partner_status([one, two])
    assert status["received"] == 1 and status["in_view"] == 1 and status["in_flight"] == 0


class _Row(dict[str, object]):
    """A table row that can be watched (a weak reference says whether it is still held)."""


def test_a_workers_books_read_its_views_one_at_a_time() -> None:
    """With a million people, listing every view for one read of the books took about a
    gigabyte for as long as the read lasted (the scale bench): rows are read one by one."""
    freed: list[int] = []
    most = 0

    def views() -> Iterator[_Row]:
        nonlocal most
        for n in range(50):
            row = _Row(partition=0, entries=[entry("a", f"s{n}")])
            weakref.finalize(row, freed.append, n)
            most = max(most, n + 1 - len(freed))  # rows made and not yet let go
            yield row

    owned = {TP("app-view", 0), TP("consent.records", 0), TP("partner.a.events", 0)}
    hub = SimpleNamespace(
        app=SimpleNamespace(assignor=SimpleNamespace(assigned_actives=lambda: owned)),
        internal=SimpleNamespace(view="app-view"),
        topics=SimpleNamespace(consent="consent.records"),
        fates={},
        ledger={ledger_key("partner.a.events", 0): count(None, 49, "a", ["received"] * 50)},
        views=SimpleNamespace(values=views),
        held={},
        partners=[SimpleNamespace(id="a")],
    )
    books = web.local_books(hub)  # type: ignore[arg-type]
    assert books["a"]["in_view"] == 50 and books["a"]["received"] == 50
    assert most <= 2  # the row read and the one before it, never all of them
