"""Incremental cost-effectiveness analysis against dampack's calculate_icers.

The worked examples are dampack's own tests (DARTH-git/dampack,
tests/testthat/test_calculate_icers.R); the property tests check the frontier against a
brute-force construction."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from simulator.economics import calculate_icers, optimal_strategy


def _table(rows):
    return [
        (r.strategy, r.cost, r.effect, r.inc_cost, r.inc_effect, r.icer, r.status) for r in rows
    ]


def test_dampack_worked_example_is_reproduced_exactly():
    """The HERC example of dampack's test suite: strategies E, D, C, B, A and usual care."""
    rows = calculate_icers(
        cost=[55000, 35000, 25000, 10000, 12000, 5000],
        effect=[5, 4, 3, 2, 1.5, 1],
        strategies=["E", "D", "C", "B", "A", "UC"],
    )
    assert _table(rows) == [
        ("UC", 5000, 1, None, None, None, "ND"),
        ("B", 10000, 2, 5000, 1, 5000, "ND"),
        ("D", 35000, 4, 25000, 2, 12500, "ND"),
        ("E", 55000, 5, 20000, 1, 20000, "ND"),
        ("C", 25000, 3, None, None, None, "ED"),
        ("A", 12000, 1.5, None, None, None, "D"),
    ]


def test_dampack_default_reference_strategy():
    rows = calculate_icers(
        cost=[163771.0, 164848.7, 163765.1],
        effect=[6.48273, 6.52861, 6.52861],
        strategies=["No Treat", "Treat all", "Test & treat"],
    )
    assert rows[0].strategy == "Test & treat"
    assert [r.status for r in rows] == ["ND", "D", "D"]


def test_dampack_one_strategy():
    (row,) = calculate_icers([1], [2], ["s"])
    assert (row.strategy, row.cost, row.effect, row.icer, row.inc_cost, row.inc_effect) == (
        "s",
        1,
        2,
        None,
        None,
        None,
    )


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        calculate_icers([1, 2], [1], ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        calculate_icers([1, 2], [1, 2], ["a", "a"])
    # a NaN passed both dominance tests (every comparison with it is false) and was
    # reported on the frontier; dampack stops on NA
    nan = math.nan
    with pytest.raises(ValueError, match=r"'b'.*NaN"):
        calculate_icers([1, nan, 3], [1, 2, 3], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"'a'.*NaN"):
        calculate_icers([1, 2], [nan, 2], ["a", "b"])
    rows = calculate_icers([1, 3], [1, 3], ["a", "b"])
    assert optimal_strategy(rows, 20_000) == "b"
    rows[0] = dataclasses.replace(rows[0], cost=nan)
    with pytest.raises(ValueError, match=r"'a'.*NaN"):
        optimal_strategy(rows, 20_000)


def _frontier(points):
    """Brute force: the lower-right convex hull from the cheapest (most effective among
    equally cheap) strategy, keeping only positive slopes."""
    pts = sorted(points, key=lambda p: (p[1], -p[2]))
    hull = [pts[0]]
    while True:
        c0, e0 = hull[-1][1], hull[-1][2]
        best, best_slope = None, math.inf
        for p in pts:
            if p[2] > e0 and p[1] >= c0:
                slope = (p[1] - c0) / (p[2] - e0)
                if slope < best_slope - 1e-12 or (
                    abs(slope - best_slope) <= 1e-12 and best is not None and p[2] > best[2]
                ):
                    best, best_slope = p, slope
        if best is None:
            return [p[0] for p in hull]
        hull.append(best)


points = hs.lists(
    hs.tuples(hs.integers(0, 10_000), hs.integers(0, 10_000)),
    min_size=2,
    max_size=9,
    unique_by=(lambda p: p[0], lambda p: p[1]),
)


@settings(max_examples=300, deadline=None)
@given(points)
def test_frontier_is_the_lower_convex_hull(pts):
    """Distinct costs and effects: the non-dominated strategies are exactly the vertices
    of the efficiency frontier, with increasing cost, effect and ICER."""
    strategies = [(f"s{i}", float(c), float(e) / 100) for i, (c, e) in enumerate(pts)]
    rows = calculate_icers(
        [s[1] for s in strategies], [s[2] for s in strategies], [s[0] for s in strategies]
    )
    nd = [r for r in rows if r.status == "ND"]
    assert [r.strategy for r in nd] == _frontier(strategies)
    assert len(rows) == len(strategies)
    for a, b in itertools.pairwise(nd):
        assert b.cost > a.cost and b.effect > a.effect
    icers = [r.icer for r in nd[1:]]
    assert icers == sorted(icers)
    for r in rows:
        if r.status == "D":
            # some strategy is no more costly and at least as effective
            assert any(
                s[1] <= r.cost and s[2] >= r.effect and s[0] != r.strategy for s in strategies
            )


@settings(max_examples=200, deadline=None)
@given(points, hs.floats(0, 1e6))
def test_the_optimal_strategy_is_on_the_frontier_and_has_the_highest_nmb(pts, wtp):
    strategies = [(f"s{i}", float(c), float(e) / 100) for i, (c, e) in enumerate(pts)]
    rows = calculate_icers(
        [s[1] for s in strategies], [s[2] for s in strategies], [s[0] for s in strategies]
    )
    best = optimal_strategy(rows, wtp)
    status = {r.strategy: r.status for r in rows}
    assert status[best] == "ND"
    nmb = {s[0]: wtp * s[2] - s[1] for s in strategies}
    assert nmb[best] == max(nmb.values())


def test_a_dominated_strategy_is_never_optimal():
    rows = calculate_icers([100, 200, 150], [1.0, 2.0, 0.5], ["a", "b", "dominated"])
    assert {r.strategy: r.status for r in rows}["dominated"] == "D"
    for wtp in (0, 50, 100, 150, 1e9):
        assert optimal_strategy(rows, wtp) != "dominated"
