"""Decision rules from the scenario, compiled into functions of what a clinic sees.

A rule (``simulator.scenario.schema.Rule``) is evaluated at a visit, on measured values
and the current treatment, never on the latent state. ``compile_rule`` turns it into a
function ``f(xp, seen) -> bool`` (one patient) or boolean array (a cohort): the same
compiled rule drives both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

from ..scenario.schema import Rule
from .xp import Ops

__all__ = ["Seen", "compile_rule", "describe_rule"]


@dataclass(slots=True)
class Seen:
    """What the clinic knows at a visit (floats for one patient, arrays for a cohort)."""

    day: Any
    cpk: Any
    cpk_uln: Any
    cpk_baseline: Any
    cpk_previous: Any
    relapse: Any
    relapses: Any
    prednisone_mg_per_day: Any
    ever_normal: Any


RuleFn = Callable[[Ops, Seen], Any]


def compile_rule(rule: Rule) -> RuleFn:
    key = rule.key()
    if key == "any":
        parts = [compile_rule(r) for r in rule.any or []]
        return lambda xp, s: reduce(xp.logical_or, [f(xp, s) for f in parts])
    if key == "all":
        parts = [compile_rule(r) for r in rule.all or []]
        return lambda xp, s: reduce(xp.logical_and, [f(xp, s) for f in parts])
    if key == "not":
        inner = compile_rule(rule.not_)  # type: ignore[arg-type]
        return lambda xp, s: xp.logical_not(inner(xp, s))
    v = getattr(rule, key)
    atoms: dict[str, RuleFn] = {
        "cpk_above_x_uln": lambda xp, s: s.cpk > v * s.cpk_uln,
        "cpk_above_pct_baseline": lambda xp, s: s.cpk > v / 100.0 * s.cpk_baseline,
        "cpk_rise_pct": lambda xp, s: s.cpk > (1.0 + v / 100.0) * s.cpk_previous,
        "day_at_least": lambda xp, s: s.day >= v,
        "day_before": lambda xp, s: s.day < v,
        "relapse": lambda xp, s: s.relapse if v else xp.logical_not(s.relapse),
        "relapses_at_least": lambda xp, s: s.relapses >= v,
        "prednisone_above_mg_per_day": lambda xp, s: s.prednisone_mg_per_day > v,
        "ever_normal": lambda xp, s: s.ever_normal if v else xp.logical_not(s.ever_normal),
    }
    return atoms[key]


def describe_rule(rule: Rule) -> str:
    """A one-line human reading of a rule, for reports and the event log legend."""
    key = rule.key()
    if key in ("any", "all"):
        joiner = " or " if key == "any" else " and "
        parts = [describe_rule(r) for r in getattr(rule, key)]
        return "(" + joiner.join(parts) + ")"
    if key == "not":
        return "not " + describe_rule(rule.not_)  # type: ignore[arg-type]
    v = getattr(rule, key)
    text = {
        "cpk_above_x_uln": f"CPK > {v:g} x ULN",
        "cpk_above_pct_baseline": f"CPK > {v:g}% of baseline",
        "cpk_rise_pct": f"CPK up > {v:g}% since last visit",
        "day_at_least": f"day >= {v:g}",
        "day_before": f"day < {v:g}",
        "relapse": "relapse at this visit" if v else "no relapse at this visit",
        "relapses_at_least": f">= {v} relapses",
        "prednisone_above_mg_per_day": f"prednisone > {v:g} mg/day",
        "ever_normal": "CPK has been normal" if v else "CPK not yet normal",
    }
    return text[key]
