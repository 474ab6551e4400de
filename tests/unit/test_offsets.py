"""Done offsets as ranges (``hub.stages.offsets``): exact whatever order offsets come in."""

from hub.stages.offsets import MAX_RANGES, done, with_done


def test_ranges_merge_adjacent_offsets_and_keep_gaps() -> None:
    ranges = with_done(None, [3, 4, 5, 9, 7])
    assert ranges == [[3, 5], [7, 7], [9, 9]]
    assert with_done(ranges, [6, 8]) == [[3, 9]]
    assert [done(ranges, n) for n in (2, 3, 6, 7, 8, 9, 10)] == [
        False, True, False, True, False, True, False,
    ]  # fmt: skip


def test_gaps_that_never_fill_are_bounded_by_merging_the_oldest() -> None:
    ranges = with_done(None, range(0, 2 * (MAX_RANGES + 5), 2))  # every other offset
    assert len(ranges) == MAX_RANGES
    assert done(ranges, 1)  # an old gap, merged away
    assert not done(ranges, 2 * (MAX_RANGES + 5) - 3)  # a recent gap, kept


def test_the_input_is_not_changed() -> None:
    ranges = [[0, 2]]
    assert with_done(ranges, [3]) == [[0, 3]] and ranges == [[0, 2]]
