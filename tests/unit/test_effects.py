"""Staged table writes read like the table with the batch's changes applied."""

from __future__ import annotations

import pytest

from hub.staged import StagedTable


def test_reads_see_staged_writes_and_deletes_without_touching_the_table() -> None:
    table = {"a": 1, "b": 2}
    staged = StagedTable(table)
    staged["a"] = 10
    staged["c"] = 3
    del staged["b"]
    assert (staged["a"], staged.get("b"), staged["c"]) == (10, None, 3)
    assert sorted(staged) == ["a", "c"] and len(staged) == 2
    assert "b" not in staged and staged.pop("c") == 3 and "c" not in staged
    assert table == {"a": 1, "b": 2}


def test_deleting_a_missing_key_raises_like_a_dict() -> None:
    staged = StagedTable({})
    with pytest.raises(KeyError):
        del staged["missing"]
    assert staged.pop("missing", None) is None
