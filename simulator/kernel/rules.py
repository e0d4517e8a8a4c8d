"""Decision rules from the scenario, compiled into functions of what a clinic sees.

A rule (``simulator.scenario.regimen.Rule``) is evaluated at a visit, on measured values
and the current treatment (``Seen``), never on the latent state. ``compile_rule`` turns it
into a function ``f(xp, seen) -> bool`` (one patient) or a boolean array (a cohort): the
same compiled rule drives both engines.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

from ..scenario.regimen import MEASURES, Rule
from .xp import Ops

__all__ = ["RuleFn", "Seen", "compile_rule", "describe_rule"]


@dataclass(slots=True)
class Seen:
    """What the clinic knows at a visit (floats for one patient, arrays for a cohort).

    One attribute per name of ``scenario.regimen.MEASURES`` plus the flags below."""

    day: Any
    cpk_x_uln: Any
    cpk_pct_baseline: Any
    cpk_rise_pct: Any
    myoglobin_x_uln: Any
    mmt8: Any
    mmt8_drop_pct_best: Any
    physician_global_cm: Any
    physician_global_rise_cm: Any
    patient_global_cm: Any
    haq: Any
    extramuscular_cm: Any
    skin_activity_cm: Any
    lung_activity_cm: Any
    dysphagia_activity_cm: Any
    tis: Any
    prednisone_mg_per_day: Any
    relapses: Any
    days_since_relapse: Any
    days_inactive: Any
    ivig_cycles: Any
    days_on_floor: Any
    days_since_entry: Any
    physician_global_above_baseline_cm: Any
    mmt8_below_baseline_pct: Any
    extramuscular_above_baseline_cm: Any
    core_set_worse_30pct: Any
    relapse: Any
    ever_normal: Any
    inactive: Any
    entered: Any


_missing = set(MEASURES) - set(Seen.__dataclass_fields__)
if _missing:  # pragma: no cover - a programming error, caught at import
    raise ImportError(f"Seen lacks measures {sorted(_missing)}")

RuleFn = Callable[[Ops, Seen], Any]

# The comparisons of named measures with a value: the symbol and the operator (NaN
# compares false in all four).
_COMPARE = {
    "above": (">", operator.gt),
    "below": ("<", operator.lt),
    "at_least": (">=", operator.ge),
    "at_most": ("<=", operator.le),
}


def _all(parts: list[RuleFn]) -> RuleFn:
    return lambda xp, s: reduce(xp.logical_and, [f(xp, s) for f in parts])


def _compare(name: str, value: float, key: str) -> RuleFn:
    op = _COMPARE[key][1]
    return lambda xp, s: op(getattr(s, name), value)


def compile_rule(rule: Rule) -> RuleFn:
    key = rule.key()
    if key == "any":
        parts = [compile_rule(r) for r in rule.any or []]
        return lambda xp, s: reduce(xp.logical_or, [f(xp, s) for f in parts])
    if key == "all":
        return _all([compile_rule(r) for r in rule.all or []])
    if key == "not":
        inner = compile_rule(rule.not_)  # type: ignore[arg-type]
        return lambda xp, s: xp.logical_not(inner(xp, s))
    v = getattr(rule, key)
    if key in _COMPARE:
        parts = [_compare(name, value, key) for name, value in sorted(v.items())]
        return parts[0] if len(parts) == 1 else _all(parts)
    atoms: dict[str, RuleFn] = {
        "cpk_above_x_uln": lambda xp, s: s.cpk_x_uln > v,
        "cpk_above_pct_baseline": lambda xp, s: s.cpk_pct_baseline > v,
        "cpk_rise_pct": lambda xp, s: s.cpk_rise_pct > v,
        "day_at_least": lambda xp, s: s.day >= v,
        "day_before": lambda xp, s: s.day < v,
        "relapse": lambda xp, s: s.relapse if v else xp.logical_not(s.relapse),
        "relapses_at_least": lambda xp, s: s.relapses >= v,
        "prednisone_above_mg_per_day": lambda xp, s: s.prednisone_mg_per_day > v,
        "ever_normal": lambda xp, s: s.ever_normal if v else xp.logical_not(s.ever_normal),
        "inactive": lambda xp, s: s.inactive if v else xp.logical_not(s.inactive),
        "entered": lambda xp, s: s.entered if v else xp.logical_not(s.entered),
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
    if key in _COMPARE:
        op = _COMPARE[key][0]
        parts = [f"{n.replace('_', ' ')} {op} {x:g}" for n, x in sorted(v.items())]
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"
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
        "inactive": "disease inactive" if v else "disease active",
        "entered": "entered the study" if v else "not yet entered",
    }
    return text[key]
