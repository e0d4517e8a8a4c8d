"""Incremental cost-effectiveness analysis of any number of strategies.

``calculate_icers`` follows dampack's ``calculate_icers`` (DARTH-git/dampack, R/icers.R)
step for step, so its table is the one health economists know from R:

1. sort by cost (ascending), then effect (descending);
2. a strategy is (strongly) **dominated** ("D") when a strategy before it in that order
   (no more costly) is at least as effective;
3. among the rest, ICERs are computed between neighbours in cost order; a strategy whose
   ICER is higher than the next strategy's is **extendedly dominated** ("ED"), and this is
   repeated until ICERs increase along the frontier;
4. the remaining strategies are **non-dominated** ("ND"): the efficiency frontier, each
   with its incremental cost, incremental effect and ICER against the previous one.

Rows come back in dampack's order: ND, then ED, then D, each by cost and then by
decreasing effect. At a willingness to pay λ the **optimal** strategy is the one with the
highest net monetary benefit λ E - C, which is always on the frontier: the most effective
ND strategy whose ICER is at most λ (``optimal_strategy``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["IcerRow", "calculate_icers", "optimal_strategy"]


@dataclass(frozen=True)
class IcerRow:
    strategy: str
    cost: float
    effect: float
    inc_cost: float | None
    inc_effect: float | None
    icer: float | None
    status: str  # "ND", "ED" or "D"; "" when there is a single strategy

    def to_dict(self) -> dict[str, object]:
        return {
            "strategy": self.strategy,
            "cost": self.cost,
            "effect": self.effect,
            "inc_cost": self.inc_cost,
            "inc_effect": self.inc_effect,
            "icer": self.icer,
            "status": self.status,
        }


def _neighbour_icers(
    rows: list[tuple[str, float, float]],
) -> list[tuple[float | None, float | None, float | None]]:
    """dampack's compute_icers: each row against the previous one (the first has none)."""
    out: list[tuple[float | None, float | None, float | None]] = [(None, None, None)]
    for (_, c0, e0), (_, c1, e1) in itertools.pairwise(rows):
        dc, de = c1 - c0, e1 - e0
        out.append((dc, de, _ratio(dc, de)))
    return out


def _ratio(dc: float, de: float) -> float:
    # R's division: x / 0 is Inf (or -Inf, NaN for 0 / 0); kept so the ordering tests of
    # extended dominance behave as dampack's do
    if de == 0:
        return math.copysign(math.inf, dc) if dc != 0 else math.nan
    return dc / de


def calculate_icers(
    cost: Sequence[float], effect: Sequence[float], strategies: Sequence[str]
) -> list[IcerRow]:
    """The incremental analysis table (see the module docstring)."""
    if not (len(cost) == len(effect) == len(strategies)):
        raise ValueError("cost, effect, and strategies must all be vectors of the same length")
    names = [str(s) for s in strategies]
    if len(set(names)) != len(names):
        raise ValueError("strategy names must be unique")
    # dampack stops on NA too: a NaN compares false both ways, so it would pass both
    # dominance steps and be reported on the frontier
    for n, c, e in zip(names, cost, effect, strict=True):
        if math.isnan(float(c)) or math.isnan(float(e)):
            raise ValueError(f"strategy {n!r}: cost {c} and effect {e} must be numbers, not NaN")
    if len(names) == 1:
        return [IcerRow(names[0], float(cost[0]), float(effect[0]), None, None, None, "")]
    # Python's sort is stable, as R's order() is for ties in both keys.
    df = sorted(
        ((n, float(c), float(e)) for n, c, e in zip(names, cost, effect, strict=True)),
        key=lambda r: (r[1], -r[2]),
    )
    dominated: list[str] = []
    for i in range(len(df) - 1):
        for j in range(i + 1, len(df)):
            if df[j][2] <= df[i][2]:
                dominated.append(df[j][0])
    extended: list[str] = []
    while True:
        dom = set(dominated) | set(extended)
        nd = [r for r in df if r[0] not in dom]
        if len(nd) <= 2:
            break
        icers = _neighbour_icers(nd)
        new = 0
        for i in range(1, len(nd) - 1):
            a, b = icers[i][2], icers[i + 1][2]
            # R: NA/NaN in a comparison inside `if` is an error; with finite, distinct
            # costs after the dominance step, ICERs here are finite and positive.
            if a is not None and b is not None and a > b:
                extended.append(nd[i][0])
                new += 1
        if new == 0:
            break
    dom = set(dominated) | set(extended)
    nd = [r for r in df if r[0] not in dom]
    rows = [
        IcerRow(n, c, e, *inc, "ND")
        for (n, c, e), inc in zip(nd, _neighbour_icers(nd), strict=True)
    ]
    # dampack arranges by desc(Status): "ND" > "ED" > "D"; then cost, then -effect
    rank = {"ND": 0, "ED": 1, "D": 2}
    others = [
        IcerRow(n, c, e, None, None, None, "ED" if n in extended else "D")
        for n, c, e in df
        if n in dom
    ]
    return sorted(rows, key=lambda r: (rank[r.status], r.cost, -r.effect)) + sorted(
        others, key=lambda r: (rank[r.status], r.cost, -r.effect)
    )


def optimal_strategy(rows: Sequence[IcerRow], wtp: float) -> str:
    """The strategy with the highest net monetary benefit ``wtp x effect - cost`` (ties:
    the cheaper one); it lies on the efficiency frontier."""
    for r in rows:
        if math.isnan(r.cost) or math.isnan(r.effect):
            raise ValueError(f"strategy {r.strategy!r}: cost and effect must not be NaN")
    best = max(rows, key=lambda r: (wtp * r.effect - r.cost, -r.cost))
    return best.strategy
