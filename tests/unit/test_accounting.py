from hub.accounting import already_counted, count, ledger_key, partner_status


def test_a_record_read_again_is_not_counted_again() -> None:
    entry = count(None, 5, {"a": ["received", "admitted"]})
    assert already_counted(entry, 5) and already_counted(entry, 3)
    assert not already_counted(entry, 6)
    assert not already_counted(None, 0)


def test_status_sums_entries_and_balances() -> None:
    gate = count(None, 0, {"a": ["received", "admitted"]})
    gate = count(gate, 1, {"a": ["received", "quarantined"]})
    gate = count(gate, 2, {"a": ["received", "dead_lettered"], "b": ["received", "admitted"]})
    release = count(None, 0, {"a": ["released"]})
    view = count(None, 0, {"a": ["folded"]})
    view = count(view, 1, {"a": ["folded"]})
    status = partner_status([gate, release, view], "a")
    assert status["received"] == 3
    assert status["in_view"] == 2 and status["held_in_quarantine"] == 0
    assert status["in_flight"] == 0 and status["balanced"] is True
    assert partner_status([gate], "b")["in_flight"] == 1  # admitted, not folded yet


def test_ledger_key_names_stage_topic_and_partition() -> None:
    assert ledger_key("gate", "partner.a.events", 3) == "gate|partner.a.events|3"
