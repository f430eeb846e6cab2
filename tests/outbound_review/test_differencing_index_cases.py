"""Cases the indexed differencing check must get right whatever random histories turn up:
partners only partly inside the containing release, groupings whose columns come in another
order, partners named in the order recorded, groupings first used after the releases they sum,
and the pair search inside the new release. Each is compared with the reference check too."""

from __future__ import annotations

import itertools

from outbound_review._difference_index import close_pairs
from outbound_review.differencing import GroupKey, Interval, ReleaseDescriptor, ReleaseIndex, Value, ValueSet
from tests.outbound_review.test_differencing_index import _Reference


def _recorded(*releases: ReleaseDescriptor) -> tuple[ReleaseIndex, _Reference]:
    """The releases recorded in the index and in the reference, in this order."""
    index, reference = ReleaseIndex(), _Reference()
    for release in releases:
        index.add(release)
        reference.add(release)
    return index, reference


def test_close_pairs_are_found_from_either_end() -> None:
    parts = [{("N",): 5}, {("N",): 3, ("S",): 9}, {("N",): 1}, {("S",): 2}]
    totals = {("N",): 10, ("S",): 12}
    # N: 5 + 3 leaves 2, 5 + 1 leaves 4, 3 + 1 leaves 6; S: 9 + 2 leaves 1. None leaves 0 or 10.
    assert close_pairs(parts, totals, 5) == {(0, 1), (0, 2), (1, 3)}
    assert close_pairs(parts, totals, 7) == {(0, 1), (0, 2), (1, 2), (1, 3)}
    assert close_pairs(parts, totals, 1) == set()


def test_pairs_inside_the_new_release_are_named_lower_id_first() -> None:
    """Disjoint ``zz`` and ``aa`` inside ``new``'s cells leave 3 of its 30 people in one cell; a
    third release inside, overlapping both, pairs with neither."""
    v, w = ValueSet(frozenset({"v"})), ValueSet(frozenset({"w"}))
    zz = ReleaseDescriptor.create(
        "zz", "s1", "o1", ["p"], {("N",): 17, ("S",): 5}, filter={"d": v}, grouping=["g"]
    )
    aa = ReleaseDescriptor.create(
        "aa", "s1", "o1", ["p"], {("N",): 10, ("S",): 5}, filter={"d": w}, grouping=["g"]
    )
    both = ValueSet(frozenset({"v", "w"}))
    mm = ReleaseDescriptor.create(
        "mm", "s1", "o1", ["p"], {("N",): 1, ("S",): 1}, filter={"d": both}, grouping=["g"]
    )
    index, reference = _recorded(zz, aa, mm)
    new = ReleaseDescriptor.create("new", "s2", "o1", ["p"], {("N",): 30, ("S",): 40}, grouping=["g"])
    findings = index.check(new, 10)
    assert findings == reference.check(new, 10)
    assert [(f.kind, f.other_release_ids, f.group_key, f.difference) for f in findings] == [
        ("combined", ("aa", "zz"), ("N",), 3)
    ]


def test_a_partner_grouping_a_column_the_containing_release_filters() -> None:
    """Only some cells of ``b`` lie inside ``o``: its total by ``o``'s grouping (67) is far from
    the 30 people ``o`` holds beyond ``new``, yet its two cells inside leave 3 of them."""
    first_two = {"edu": ValueSet(frozenset({1, 2}))}
    young, older = Interval(None, 30, high_closed=False), Interval(30, None)
    o = ReleaseDescriptor.create("o", "s1", "o1", ["p"], {(): 50}, filter=first_two)
    b = ReleaseDescriptor.create(
        "b", "s1", "o1", ["p"], {(1,): 15, (2,): 12, (3,): 40}, filter={"age": older}, grouping=["edu"]
    )
    new = ReleaseDescriptor.create("new", "s1", "o1", ["p"], {(): 20}, filter={**first_two, "age": young})
    index, reference = _recorded(o, b)
    findings = index.check(new, 10)
    assert findings == reference.check(new, 10)
    assert [(f.kind, f.other_release_ids, f.difference) for f in findings] == [("combined", ("o", "b"), 3)]


def test_a_partner_wholly_inside_at_the_edge_of_the_window() -> None:
    """All of ``b``'s cells lie inside ``o``: the people it puts there (41) are its whole total,
    and leave exactly ``min_cell − 1`` of the 50 ``o`` holds beyond ``new``."""
    first_two = {"edu": ValueSet(frozenset({1, 2}))}
    young, older = Interval(None, 30, high_closed=False), Interval(30, None)
    o = ReleaseDescriptor.create("o", "s1", "o1", ["p"], {(): 70}, filter=first_two)
    b = ReleaseDescriptor.create(
        "b", "s1", "o1", ["p"], {(1,): 25, (2,): 16}, filter={"age": older}, grouping=["edu"]
    )
    new = ReleaseDescriptor.create("new", "s1", "o1", ["p"], {(): 20}, filter={**first_two, "age": young})
    index, reference = _recorded(o, b)
    findings = index.check(new, 10)
    assert findings == reference.check(new, 10)
    assert [(f.other_release_ids, f.difference) for f in findings] == [(("o", "b"), 9)]


def test_groupings_whose_columns_come_in_another_order() -> None:
    """Sums are kept under keys in sorted column order; releases grouped ``c, a, b`` and
    ``b, c, a`` must still meet cell by cell, as containing release and as partner."""
    keys = list(itertools.product(("x", "y"), (1, 2), ("p", "q")))  # c, a, b

    def by(order: tuple[str, ...], counts: dict[tuple[Value, ...], int]) -> dict[GroupKey, int]:
        return {tuple(dict(zip("cab", k, strict=True))[c] for c in order): n for k, n in counts.items()}

    u, v = ValueSet(frozenset({"u"})), ValueSet(frozenset({"v"}))
    whole = dict.fromkeys(keys, 20)
    some = {k: 12 if k == ("x", 1, "p") else 10 for k in keys}
    rest = {k: 5 if k == ("x", 1, "p") else 10 for k in keys}
    o = ReleaseDescriptor.create("o", "s1", "o1", ["p"], by(tuple("cab"), whole), grouping="cab")
    b = ReleaseDescriptor.create(
        "b", "s1", "o1", ["p"], by(tuple("bca"), rest), filter={"d": v}, grouping="bca"
    )
    index, reference = _recorded(o, b)
    # new inside o beside b: o's cell (x, 1, p) minus both leaves 3.
    new = ReleaseDescriptor.create(
        "new", "s1", "o1", ["p"], by(tuple("cab"), some), filter={"d": u}, grouping="cab"
    )
    # a total by (c, a, b) with b inside it: cell (x, 1, p) minus b leaves 15, the others 10.
    total = ReleaseDescriptor.create("t", "s1", "o1", ["p"], by(tuple("cab"), whole), grouping="cab")
    for release in (new, total):
        for min_cell in (4, 11, 16):
            assert index.check(release, min_cell) == reference.check(release, min_cell)
    assert [(f.other_release_ids, f.group_key, f.difference) for f in index.check(new, 4)] == [
        (("o", "b"), ("x", 1, "p"), 3)
    ]
    assert {(f.other_release_ids, f.difference) for f in index.check(total, 16)} == {
        (("b",), 10),
        (("b",), 15),
    }


def test_partners_come_in_the_order_recorded_not_by_id() -> None:
    """Three releases each pair with ``new`` inside ``o``: named in the order a walk over the
    buckets meets them (this scenario's, then the operator's other scenarios), as before."""
    u, v, w, z = (ValueSet(frozenset({x})) for x in "uvwz")
    o = ReleaseDescriptor.create("o", "s1", "o1", ["p"], {(): 30})
    zz = ReleaseDescriptor.create("zz", "s1", "o1", ["p"], {(): 17}, filter={"d": v})
    aa = ReleaseDescriptor.create("aa", "s2", "o1", ["p"], {(): 18}, filter={"d": w})
    mm = ReleaseDescriptor.create("mm", "s1", "o1", ["p"], {(): 19}, filter={"d": z})
    index, reference = _recorded(o, zz, aa, mm)
    new = ReleaseDescriptor.create("new", "s1", "o1", ["p"], {(): 10}, filter={"d": u})
    findings = index.check(new, 10)
    assert findings == reference.check(new, 10)
    assert [f.other_release_ids for f in findings] == [("o", "zz"), ("o", "mm"), ("o", "aa")]


def test_a_grouping_first_seen_late_gets_the_earlier_sums() -> None:
    """``b`` is recorded before anything is grouped by district alone; once ``o`` is, ``b``'s
    cells summed by district must be there for ``new`` inside ``o`` to meet it."""
    u, v = ValueSet(frozenset({"u"})), ValueSet(frozenset({"v"}))
    b_cells = {("N", 1): 8, ("N", 2): 9, ("S", 1): 20, ("S", 2): 20}
    b = ReleaseDescriptor.create(
        "b", "s1", "o1", ["p"], b_cells, filter={"d": v}, grouping=["district", "edu"]
    )
    o = ReleaseDescriptor.create("o", "s1", "o1", ["p"], {("N",): 40, ("S",): 60}, grouping=["district"])
    index, reference = _recorded(b, o)
    new = ReleaseDescriptor.create(
        "new", "s1", "o1", ["p"], {("N",): 20, ("S",): 20}, filter={"d": u}, grouping=["district"]
    )
    findings = index.check(new, 10)
    assert findings == reference.check(new, 10)
    assert [(f.other_release_ids, f.group_key, f.difference) for f in findings] == [(("o", "b"), ("N",), 3)]


def test_a_partner_partly_inside_reaching_in_one_cell_only() -> None:
    """``b``'s cells by district put 30 and 3 people where ``o`` holds 30 and 80 beyond
    ``new``: too many to leave a few in ``N`` unless only the cells inside count (28), and
    nowhere near in ``S``. The district sums are what rule a release in or out here."""
    first_two = {"edu": ValueSet(frozenset({1, 2}))}
    young, older = Interval(None, 30, high_closed=False), Interval(30, None)
    o = ReleaseDescriptor.create(
        "o", "s1", "o1", ["p"], {("N",): 50, ("S",): 100}, filter=first_two, grouping=["district"]
    )
    b_cells = {("N", 1): 15, ("N", 2): 13, ("N", 3): 2, ("S", 1): 1, ("S", 2): 1, ("S", 3): 1}
    b = ReleaseDescriptor.create(
        "b", "s1", "o1", ["p"], b_cells, filter={"age": older}, grouping=["district", "edu"]
    )
    index, reference = _recorded(o, b)
    new = ReleaseDescriptor.create(
        "new",
        "s1",
        "o1",
        ["p"],
        {("N",): 20, ("S",): 20},
        filter={**first_two, "age": young},
        grouping=["district"],
    )
    findings = index.check(new, 4)
    assert findings == reference.check(new, 4)
    assert [(f.other_release_ids, f.group_key, f.difference) for f in findings] == [(("o", "b"), ("N",), 2)]
