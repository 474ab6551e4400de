"""A batch's view of a table: reads see its writes; a failed record's writes roll back."""

from __future__ import annotations

import pytest

from hub.stages.effects import Staged


def test_reads_see_staged_writes_and_deletes_without_touching_the_table() -> None:
    table = {"a": 1, "b": 2}
    staged = Staged(table)
    staged["a"] = 10
    staged["c"] = 3
    del staged["b"]
    assert (staged["a"], staged.get("b"), staged["c"]) == (10, None, 3)
    assert sorted(staged) == ["a", "c"] and len(staged) == 2
    assert "b" not in staged and staged.pop("c") == 3 and "c" not in staged
    assert table == {"a": 1, "b": 2}


def test_deleting_a_missing_key_raises_like_a_dict() -> None:
    staged = Staged({})
    with pytest.raises(KeyError):
        del staged["missing"]
    assert staged.pop("missing", None) is None


def test_a_rollback_undoes_only_the_writes_since_its_savepoint() -> None:
    staged = Staged({"a": 1})
    staged["b"] = 2
    mark = staged.savepoint()
    staged["a"] = 10
    del staged["b"]
    staged["c"] = 3
    staged.rollback(mark)
    assert dict(staged.items()) == {"a": 1, "b": 2}
    assert list(staged.writes()) == [(0, "b", 2)]


def test_writes_remember_the_partition_they_belong_to_and_deletes_are_none() -> None:
    staged = Staged({"a": 1})
    staged.partition = 3
    staged["b"] = 2
    staged.partition = 1
    del staged["a"]
    assert sorted(staged.writes()) == [(1, "a", None), (3, "b", 2)]
