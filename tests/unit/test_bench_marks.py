"""The bench's end-of-pipeline rule (``tests.bench.marks.not_done``) with plain dicts: a
stage is done only when its marks cover every input partition from its first offset to
its end."""

from __future__ import annotations

from tests.bench.marks import not_done

EXTENTS = {("t", 0): (0, 10), ("t", 1): (0, 0), ("u", 0): (4, 8)}


def test_a_stage_whose_marks_cover_every_partition_is_done() -> None:
    marks = {"patterns|t|0": [[-1, 9]], "patterns|u|0": [[0, 7]]}
    assert not_done(marks, "patterns", EXTENTS) == 0


def test_records_past_the_marks_or_in_a_gap_are_not_done() -> None:
    marks = {"patterns|t|0": [[0, 3], [5, 9]], "patterns|u|0": [[4, 6]]}
    assert not_done(marks, "patterns", EXTENTS) == 6 + 1  # t/0 from the gap at 4; u/0's 7


def test_another_stages_marks_and_a_partition_never_marked_do_not_count() -> None:
    marks = {"view|t|0": [[0, 9]], "view|u|0": [[4, 7]]}
    assert not_done(marks, "patterns", EXTENTS) == 10 + 4
    assert not_done(marks, "view", EXTENTS) == 0
