"""Disclosure control: primary suppression, rounding, secondary suppression, and an attack.

The attack is a reader who sets every published number beside every other (areas, their
place total, a filter that drops an area, the previous window, the two windows together)
and works out what the true counts could be: a published ``v`` means a true count in
``[v - 2, v + 2]`` (and at least 5, or it would not be shown), a suppressed cell means
1..4 or anything larger (the reader cannot tell primary from secondary), an absent cell
means 0. The reader narrows these intervals through every relation, then searches for
true counts consistent with all of it. A suppressed cell is safe while at least two of its
values stay possible; the same attack on an output without secondary suppression pins
some, which shows it has teeth.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence

import pytest

from hub.disclosure import BASE, RULE, THRESHOLD, control, round_count

# A relation as the reader knows it: total, members, and whether the total is exactly
# the members' sum (each person in one member) or only at most it (a person in several).
Relation = tuple[Hashable, Sequence[Hashable], bool]
Bounds = dict[Hashable, tuple[int, int]]
Counts = dict[Hashable, int]
# Larger than any count in these tables: "suppressed" gives the reader no upper bound.
_UNBOUNDED = 10_000


def test_counts_under_5_are_suppressed_and_others_rounded_to_the_nearest_5() -> None:
    rounded = [round_count(n) for n in range(14)]
    assert rounded == [None] * 5 + [5, 5, 5, 10, 10, 10, 10, 10, 15]
    assert round_count(102) == 100
    assert round_count(103) == 105


def test_a_negative_count_is_refused_naming_the_field_and_rule() -> None:
    with pytest.raises(ValueError, match="count: a count of people is never negative"):
        round_count(-1)


def test_empty_cells_are_not_published_small_ones_suppressed() -> None:
    published = control({"a": 0, "b": 3, "c": 12, "d": 5}, [])
    assert published == {"b": None, "c": 10, "d": 5}


def test_one_suppressed_member_beside_a_published_total_takes_the_smallest_with_it() -> None:
    counts = {"place": 57, "A": 3, "B": 30, "C": 9, "D": 15}
    published = control(counts, [("place", ["A", "B", "C", "D"])])
    # Without C, A would be place - B - C - D to within the rounding.
    assert published == {"place": 55, "A": None, "B": 30, "C": None, "D": 15}


def test_a_tie_goes_to_the_first_member_in_the_relation() -> None:
    counts = {"place": 23, "A": 3, "B": 10, "C": 10}
    assert control(counts, [("place", ["A", "C", "B"])])["C"] is None
    assert control(counts, [("place", ["A", "B", "C"])])["B"] is None


def test_the_total_is_suppressed_when_no_member_is_left_to_suppress() -> None:
    # X is suppressed beside A; in its second relation its only other member is empty.
    counts = {"place": 45, "A": 3, "X": 12, "Y": 30, "X or Z": 12, "Z": 0}
    published = control(counts, [("place", ["A", "X", "Y"]), ("X or Z", ["X", "Z"])])
    assert published == {"place": 45, "A": None, "X": None, "Y": 30, "X or Z": None}


def test_small_suppressed_members_together_under_a_published_total_take_a_third() -> None:
    counts: Counts = {"place": 7, "a0": 1, "a1": 5, "a2": 1}
    relations: list[Relation] = [("place", ["a0", "a1", "a2"], True)]
    published = control(counts, [("place", ["a0", "a1", "a2"])])
    assert published == {"place": 5, "a0": None, "a1": None, "a2": None}
    # Two suppressed cells are not enough here: place 5 and a1 5 leave a0 + a2 at most 2.
    two_suppressed: dict[Hashable, int | None] = {"place": 5, "a0": None, "a1": 5, "a2": None}
    assert _pinned(counts, two_suppressed, relations) == ["a0", "a2"]
    assert _pinned(counts, published, relations) == []


def test_as_many_people_as_suppressed_members_under_a_published_total_take_another() -> None:
    # Seven areas of one person each: the place's 7, published as 5 (so at most 7), less
    # nothing published leaves 7 suppressed cells of at least 1 each: every one is 1.
    areas = [f"a{i}" for i in range(7)]
    counts: Counts = {"place": 7, **dict.fromkeys(areas, 1), "big": 0}
    relations: list[Relation] = [("place", [*areas, "big"], True)]
    published = control(counts, [("place", [*areas, "big"])])
    assert _pinned(counts, published, relations) == []
    assert published["place"] is None


def test_secondary_suppression_follows_chained_relations_until_none_changes() -> None:
    # Two areas by two domains with their totals. Suppressing for area a0 suppresses a
    # cell of domain d1, whose relation was already looked at: only a second pass sees it.
    counts = {
        ("a0", "d0"): 2,
        ("a0", "d1"): 11,
        ("a1", "d0"): 20,
        ("a1", "d1"): 30,
        "a0": 13,
        "a1": 50,
        "d0": 22,
        "d1": 41,
    }
    margins = [
        ("d1", [("a0", "d1"), ("a1", "d1")]),
        ("a0", [("a0", "d0"), ("a0", "d1")]),
        ("d0", [("a0", "d0"), ("a1", "d0")]),
    ]
    published = control(counts, margins)
    suppressed = {key for key, value in published.items() if value is None}
    assert suppressed == {("a0", "d0"), ("a0", "d1"), ("a1", "d0"), ("a1", "d1")}


def test_the_output_does_not_depend_on_the_order_counts_come_in() -> None:
    counts, relations = _people_table(random.Random(7))
    margins = [(total, members) for total, members, _ in relations]
    reordered = dict(reversed(list(counts.items())))
    assert control(reordered, margins) == control(counts, margins)


@pytest.mark.parametrize(
    ("counts", "problem"),
    [
        ({"place": 11, "A": 5, "B": 5}, "a total counts people, so never more"),
        ({"place": 10, "A": 5}, "every total and member needs a count"),
    ],
)
def test_margins_that_cannot_be_true_are_refused(counts: Counts, problem: str) -> None:
    with pytest.raises(ValueError, match=f"margins: {problem}"):
        control(counts, [("place", ["A", "B"])])


def test_the_rule_in_words_names_the_threshold_and_the_rounding() -> None:
    assert f"under {THRESHOLD} are suppressed" in RULE
    assert f"nearest multiple of {BASE}" in RULE
    assert "neighbouring windows" in RULE


# Areas A, B, C in two windows, each with its place total and a filter that drops C, and
# each area over both windows (people in either: at most the sum, as some are in both).
SMALL_IN_BOTH_WINDOWS = ((2, 5, 5), (3, 8, 1), (0, 5, 0, 5))
SMALL_PAIR_UNDER_A_FILTER = ((1, 1, 5), (13, 6, 8), (1, 1, 3, 5))


def test_differencing_recovers_small_cells_without_secondary_suppression() -> None:
    counts, relations = _two_windows(*SMALL_IN_BOTH_WINDOWS)
    primary_only = {key: round_count(n) for key, n in counts.items() if n}
    assert _pinned(counts, primary_only, relations) == [
        ("now", "A"),
        ("prev", "A"),
        ("prev", "C"),
    ]
    # Each window alone gives nothing away: it is the neighbouring window that does.
    within_windows = [relation for relation in relations if relation[2]]
    assert _pinned(counts, primary_only, within_windows) == []


@pytest.mark.parametrize("scenario", [SMALL_IN_BOTH_WINDOWS, SMALL_PAIR_UNDER_A_FILTER])
def test_the_differencing_attack_fails_on_controlled_output(
    scenario: tuple[Sequence[int], Sequence[int], Sequence[int]],
) -> None:
    counts, relations = _two_windows(*scenario)
    published = control(counts, [(total, members) for total, members, _ in relations])
    assert _pinned(counts, published, relations) == []


@pytest.mark.parametrize("table", ["people_table", "two_windows"])
def test_over_random_tables_no_small_count_is_published_or_recoverable(table: str) -> None:
    draw = {"people_table": _people_table, "two_windows": _random_two_windows}[table]
    for seed in range(300):
        counts, relations = draw(random.Random(seed))
        published = control(counts, [(total, members) for total, members, _ in relations])
        assert {key for key, n in counts.items() if n} == set(published), seed
        shown = [value for value in published.values() if value is not None]
        assert all(value >= THRESHOLD and value % BASE == 0 for value in shown), seed
        assert _pinned(counts, published, relations) == [], seed


def _two_windows(
    now: Sequence[int], prev: Sequence[int], overlap: Sequence[int]
) -> tuple[Counts, list[Relation]]:
    """Areas A, B, C in two windows (``overlap``: people in both, per area and place)."""
    areas = ("A", "B", "C")
    counts: Counts = {}
    relations: list[Relation] = []
    for window, values in (("now", now), ("prev", prev)):
        counts.update({(window, area): n for area, n in zip(areas, values, strict=True)})
        counts[(window, "place")] = sum(values)
        counts[(window, "A+B")] = values[0] + values[1]
        relations += [
            ((window, "place"), [(window, area) for area in areas], True),
            ((window, "A+B"), [(window, "A"), (window, "B")], True),
            ((window, "place"), [(window, "A+B"), (window, "C")], True),
        ]
    for where, both in zip((*areas, "place"), overlap, strict=True):
        counts[("both", where)] = counts[("now", where)] + counts[("prev", where)] - both
        relations.append((("both", where), [("now", where), ("prev", where)], False))
    return counts, relations


def _random_two_windows(rng: random.Random) -> tuple[Counts, list[Relation]]:
    def draw() -> int:
        return rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 20])

    now = [draw() for _ in range(3)]
    prev = [draw() for _ in range(3)]
    overlap = [rng.randint(0, min(n, p)) for n, p in zip(now, prev, strict=True)]
    overlap.append(rng.randint(sum(overlap), min(sum(now), sum(prev))))
    return _two_windows(now, prev, overlap)


def _people_table(rng: random.Random) -> tuple[Counts, list[Relation]]:
    """People by area and need domain, counted from people drawn at random: each lives in
    one area (area totals add up to the place) and has one or two needs (they do not)."""
    areas = [f"a{i}" for i in range(rng.randint(2, 4))]
    domains = [f"d{j}" for j in range(rng.randint(2, 3))]
    area_weights = [rng.random() for _ in areas]
    domain_weights = [rng.random() for _ in domains]
    people = [
        (rng.choices(areas, area_weights)[0], set(rng.choices(domains, domain_weights, k=2)))
        for _ in range(rng.randint(5, 60))
    ]
    counts: Counts = {"place": len(people)}
    for area in areas:
        counts[area] = sum(1 for lives, _ in people if lives == area)
        for domain in domains:
            counts[(area, domain)] = sum(1 for at, has in people if at == area and domain in has)
    for domain in domains:
        counts[domain] = sum(1 for _, has in people if domain in has)
    relations: list[Relation] = [
        *((area, [(area, domain) for domain in domains], False) for area in areas),
        *((domain, [(area, domain) for area in areas], True) for domain in domains),
        ("place", list(areas), True),
        ("place", list(domains), False),
    ]
    return counts, relations


def _pinned(
    counts: Mapping[Hashable, int],
    published: Mapping[Hashable, int | None],
    relations: Sequence[Relation],
) -> list[Hashable]:
    """The suppressed cells whose true count is the only one consistent with everything
    published (the truth is always consistent; is any other value?)."""
    known = _known(counts, published)
    assert _feasible(known, relations), "the truth should be consistent with the output"
    pinned = []
    for key, value in published.items():
        if value is not None:
            continue
        low, high = known[key]
        true = counts[key]
        below = true > low and _feasible({**known, key: (low, true - 1)}, relations)
        above = true < high and _feasible({**known, key: (true + 1, high)}, relations)
        if not (below or above):
            pinned.append(key)
    return pinned


def _known(counts: Mapping[Hashable, int], published: Mapping[Hashable, int | None]) -> Bounds:
    """What the output alone says of each true count, as an interval."""
    known: Bounds = {}
    for key in counts:
        if key not in published:
            known[key] = (0, 0)
            continue
        value = published[key]
        if value is None:
            known[key] = (1, _UNBOUNDED)
        else:
            known[key] = (max(value - BASE // 2, THRESHOLD), value + BASE // 2)
    return known


def _feasible(bounds: Bounds, relations: Sequence[Relation]) -> bool:
    """Whether whole counts within ``bounds`` satisfy every relation: narrow, then split
    the least certain cell in two and try each half (complete, as the domains are
    finite)."""
    narrowed = _narrow(bounds, relations)
    if narrowed is None:
        return False
    open_cells = [
        (high - low, str(key), key) for key, (low, high) in narrowed.items() if high > low
    ]
    if not open_cells:
        return True
    _, _, key = min(open_cells)
    low, high = narrowed[key]
    middle = (low + high) // 2
    return _feasible({**narrowed, key: (low, middle)}, relations) or _feasible(
        {**narrowed, key: (middle + 1, high)}, relations
    )


def _narrow(bounds: Bounds, relations: Sequence[Relation]) -> Bounds | None:
    """The intervals narrowed through every relation until none narrows further (None:
    no counts fit). An exact total is its members' sum; any other is at least its largest
    member and at most their sum."""
    narrowed = dict(bounds)
    changed = True
    while changed:
        changed = False
        for total, members, exact in relations:
            lows = sum(narrowed[member][0] for member in members)
            highs = sum(narrowed[member][1] for member in members)
            low, high = narrowed[total]
            floor = lows if exact else max(narrowed[member][0] for member in members)
            new_total = (max(low, floor), min(high, highs))
            if new_total[0] > new_total[1]:
                return None
            changed |= new_total != narrowed[total]
            narrowed[total] = new_total
            for member in members:
                low, high = narrowed[member]
                others_high = highs - high
                others_low = lows - low
                cap = new_total[1] - others_low if exact else new_total[1]
                new = (max(low, new_total[0] - others_high), min(high, cap))
                if new[0] > new[1]:
                    return None
                if new != (low, high):
                    changed = True
                    narrowed[member] = new
                    lows += new[0] - low
                    highs += new[1] - high
    return narrowed
