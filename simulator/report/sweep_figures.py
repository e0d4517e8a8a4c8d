"""Figures of sweeps: tornado and line plots (one-way), grids, Sobol'/Morris indices and
PSA (scatter, CEAC/CEAF, EVPI/EVPPI), and the labels they use, all from the metric registry.
Each design module (``simulator/designs``) calls the ones it needs; nothing here runs a
simulation."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..sweeps import SweepPlan, SweepResult, difference_arm, split_key
from .figures import COLORS, _quiet, _save, label, subplots
from .tables import format_value


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


@dataclass(frozen=True)
class KeyLabels:
    """What the labels of a sweep's output keys are made of: each outcome's (label,
    unit), the sweep's strategies (the first the reference of every difference) and, for
    an outcome whose difference between arms is not the difference of the arms' own
    values (a time to an event: restricted mean times, not medians), what that difference
    is, in words."""

    outcomes: dict[str, tuple[str, str]]
    arms: tuple[str, ...] = ()
    differences: dict[str, str] = field(default_factory=dict)

    def get(self, outcome: str, default: tuple[str, str]) -> tuple[str, str]:
        return self.outcomes.get(outcome, default)


def _labels(plan: SweepPlan) -> KeyLabels:
    """Outcome name -> (label, unit) from the metric registry (and the center's
    metrics when the sweep's scenarios have a center), with the sweep's strategies and
    what each difference between them is (``_difference_texts``)."""
    from ..center_stats import CENTER_METRICS
    from ..outcomes import metric_specs
    from ..runner import _plan_for

    cur = plan.scenarios[0].economics.currency
    specs = metric_specs(_plan_for(plan.scenarios[0]))
    labels = {m.name: (m.label, cur if m.unit == "currency" else m.unit) for m in specs}
    if any(s.center is not None for s in plan.scenarios):
        labels.update({name: (text, unit) for name, (text, unit, _) in CENTER_METRICS.items()})
    return KeyLabels(labels, tuple(plan.arms), _difference_texts(plan, specs))


def _difference_texts(plan: SweepPlan, specs: list[Any]) -> dict[str, str]:
    """Outcome -> what its difference between two arms is, for the outcomes whose
    comparison (``outcomes.difference_estimator``, the ``estimator`` column of sweep.csv)
    is a difference of restricted mean times to the horizon rather than of the arms' own
    estimates (Kaplan-Meier medians): 'difference in restricted mean time to CPK normal,
    to day 728'. Each point's horizon is its own (a swept ``horizon_days``)."""
    from ..outcomes import ESTIMATORS, difference_estimator

    base = plan.scenarios[0].horizon_days
    horizons = sorted({int(p.get("horizon_days", base)) for p in plan.points} or {int(base)})
    out: dict[str, str] = {}
    for m in specs:
        names = {difference_estimator(ESTIMATORS[m.kind], h) for h in horizons}
        if not all(n.startswith("rmst_difference_to_day_") for n in names):
            continue
        what = re.sub(r"\s*\(KM median\)", "", m.label)
        to = (
            f"to day {horizons[0]}"
            if len(horizons) == 1
            else f"to each point's horizon (day {horizons[0]} to {horizons[-1]})"
        )
        out[m.name] = f"difference in restricted mean {what}, {to}"
    return out


def _key_label(key: str, labels: KeyLabels) -> str:
    """'first_line-rescue:qaly' -> 'QALYs (discounted) [QALY], first_line - rescue';
    a difference of a time to an event says what it is: 'first_line-rescue:
    time_to_cpk_normal_days' -> 'difference in restricted mean time to CPK normal, to
    day 728 [days], first_line - rescue'."""
    arm, _, outcome = key.rpartition(":")
    text, unit = labels.get(outcome, (outcome, ""))
    parts = split_key(key, labels.arms)
    if parts is None:  # not a key of the sweep's strategies: as it is spelled
        arm = arm.replace("-", " - ")
    else:
        if len(parts[0]) == 2:
            text = labels.differences.get(outcome, text)
        arm = " - ".join(parts[0])
    text = f"{text} [{unit}]" if unit and unit != "proportion" else text
    return f"{text}, {arm}" if arm else text


def param_label(path: str) -> str:
    """A parameter's own name (its last path components), not the whole dotted path."""
    parts = [p for p in path.split(".") if not p.isdigit()]
    return " ".join(parts[-2:]).replace("_", " ")


#: words of a path written as people read them
_WORDS = {
    "ivig": "IVIG",
    "cpk": "CPK",
    "igg": "IgG",
    "haq": "HAQ",
    "tis": "TIS",
    "qaly": "QALY",
    "mmt8": "MMT-8",
    "emax": "Emax",
    "ed50": "ED50",
    "uln": "ULN",
    "cv": "CV",
    "sd": "SD",
}
#: words at the end of a field's name that only spell its unit (given apart)
_UNIT_WORDS = {
    "per",
    "day",
    "days",
    "year",
    "years",
    "g",
    "l",
    "kg",
    "mg",
    "ml",
    "ng",
    "u",
    "cm",
    "qaly",
    "log",
    "h",
    "min",
    "hours",
    "minutes",
    "cycle",
    "points",
}
#: sections whose name says nothing a field's own name does not ("activity flare rate")
_PLAIN_SECTIONS = {
    "population",
    "disease",
    "activity",
    "heterogeneity",
    "enzymes",
    "function",
    "extramuscular",
    "core_set",
    "regimen",
    "safety",
    "visits",
    "economics",
    "utilities",
    "outcomes",
    "center",
}
#: names for parameters whose path's words read poorly
_NAMES = {
    "disease.mortality.excess_per_year": "excess mortality",
    "horizon_days": "simulated horizon (days)",
    # two "HAQ slopes": weakness -> HAQ, and HAQ -> utility
    "disease.core_set.haq_slope": "HAQ per strength lost, slope",
    "disease.core_set.haq_exponent": "HAQ per strength lost, exponent",
    "economics.utilities.haq_slope": "HAQ-to-utility slope",
}
#: a distribution's parameters: what its part of the label says, and whether it keeps the
#: unit of the value drawn (a CV has none)
_DIST_PARTS = {
    "value": ("", True),
    "mean": ("mean", True),
    "median": ("median", True),
    "sd": ("SD", True),
    "cv": ("CV", False),
    "low": ("lower bound", True),
    "high": ("upper bound", True),
}
#: paths whose unit is an amount of money ("per g": GBP per g)
_MONEY = ("economics.prices.", "economics.adverse_event_cost.", "economics.willingness_to_pay")


def _words(name: str, strip_unit: bool = True) -> str:
    """A field's name in words, without the words that spell its unit (when some remain):
    'effect_per_g_per_l_per_day' -> 'effect', 'half_life_days' -> 'half-life'."""
    tokens = [t for t in name.split("_") if t]
    if strip_unit:
        kept = list(tokens)
        while kept and kept[-1].lower() in _UNIT_WORDS:
            kept.pop()
        if kept and kept[-1] != "per":
            tokens = kept
    text = " ".join(_WORDS.get(t.lower(), t) for t in tokens)
    return text.replace("half life", "half-life")


def _unit_of(scenario: Any, parts: list[str | int]) -> tuple[str | None, int | None]:
    """The unit the schema gives the field at ``parts`` of ``scenario`` (its
    ``schema.field_extra``, as ``scenario.reference.parameter_table`` reads it), and the
    index of the part that is a distribution's parameter (``.mean`` of a Dist), if any."""
    from pydantic import BaseModel

    from ..scenario.schema import Dist, field_extra

    node: Any = scenario
    unit: str | None = None
    dist_at: int | None = None
    for i, part in enumerate(parts):
        if isinstance(node, Dist) and isinstance(part, str) and part in _DIST_PARTS:
            dist_at = i
            if not _DIST_PARTS[part][1]:
                unit = None
            break
        if isinstance(node, BaseModel) and isinstance(part, str):
            fields = type(node).model_fields
            name = next((n for n, f in fields.items() if part in (n, f.alias)), None)
            if name is None:
                return None, dist_at
            unit = field_extra(fields[name]).get("unit")
            node = getattr(node, name)
        elif isinstance(node, dict) and part in node:
            node = node[part]  # an entry of a dict keeps the dict's unit
        elif isinstance(node, list | tuple) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None, dist_at
    return (None if unit in (None, "", "-", "rule") else str(unit)), dist_at


def parameter_label(path: str, scenario: Any = None, currency: str = "") -> str:
    """A swept parameter as people read it, with its unit from the scenario schema:
    'economics.prices.ivig_per_g' -> 'IVIG price (GBP per g)',
    'disease.ivig.effect_per_g_per_l_per_day' -> 'IVIG effect (1/day per g/L)',
    'disease.activity.lasting_drive_log.mean' -> 'lasting drive, mean (log activity)';
    a threshold inside a rule: 'IVIG start rule: below TIS'. Without a scenario (or for a
    path the schema does not have) the parameter's own name (``param_label``)."""
    from ..sweeps import _split

    try:
        parts = _split(path)
    except ValueError:
        return param_label(path)
    words = [p for p in parts if isinstance(p, str)]
    if scenario is None or not words:
        return param_label(path)
    rule = next(
        (i for i, p in enumerate(parts) if isinstance(p, str) and p.endswith("_when")), None
    )
    if rule is not None:
        field = str(parts[rule])
        section = str(parts[rule - 1]) if rule > 0 else ""
        head = " ".join(w for w in (_section(section), _words(field[: -len("_when")], False)) if w)
        inside = [p for p in parts[rule + 1 :] if isinstance(p, str) and p not in ("any", "all")]
        tail = " ".join(_words(p, False) for p in inside[-2:])
        return f"{head} rule: {tail}" if tail else f"{head} rule"
    unit, dist_at = _unit_of(scenario, parts)
    end = dist_at if dist_at is not None else len(parts)
    field_parts = parts[:end]
    names = [p for p in field_parts if isinstance(p, str)]
    if not names:
        return param_label(path)
    field = names[-1]
    section = names[-2] if len(names) > 1 else ""
    base = ".".join(str(p) for p in field_parts)
    if base in _NAMES:
        text = _NAMES[base]
    elif section == "prices" or (len(names) > 2 and names[-3] == "prices"):
        text = f"{_words(field)} price"
    elif section in ("adverse_event_cost", "adverse_event_qaly_loss"):
        text = f"{_words(field, False)} {_words(section, False)}"
    else:
        text = " ".join(w for w in (_section(section), _words(field)) if w)
    if dist_at is not None:
        part = _DIST_PARTS[str(parts[dist_at])][0]
        text = f"{text}, {part}" if part else text
    if unit and currency and path.startswith(_MONEY) and unit.startswith("per "):
        unit = f"{currency} {unit}"
    if unit and unit.lower() not in text.lower().split():
        text = f"{text} ({unit})"
    return text


def _section(name: str) -> str:
    """A section's name as the first words of its fields' labels ('' for a section that
    says nothing more: 'activity', 'utilities')."""
    return "" if name in _PLAIN_SECTIONS or not name else _words(name, False)


def parameter_labels(plan: SweepPlan) -> dict[str, str]:
    """Each swept parameter's label (``parameter_label``), its unit read from the first
    strategy's scenario that has the parameter."""
    cur = plan.scenarios[0].economics.currency
    out = {}
    for name in plan.parameter_names:
        arms = plan.applies.get(name) or [0]
        out[name] = parameter_label(name, plan.scenarios[arms[0]], cur)
    return out


def _touches(plan: SweepPlan, name: str, key: str) -> bool:
    """Whether parameter ``name`` can move output ``key`` (its arm, or either arm of a
    difference, has the parameter); the key is read against the plan's strategies."""
    parts = split_key(key, plan.arms)
    if parts is None:
        return True  # not a key of the plan's strategies: keep it rather than drop it
    arms, _ = parts
    if not arms:
        return True
    return any(plan.arms.index(a) in plan.applies.get(name, []) for a in arms)


#: line styles and markers of the CEAC curves, in turn (curves that coincide stay apart)
CEAC_STYLES = ("-", "--", ":", "-.")
CEAC_MARKERS = ("o", "D", "^", "v", "P", "X")  # not "s": the CEAF's marker

PAIRED_NOTE = "95% interval of the difference from the base case, paired on the same patients"
MC_NOTE = "95% Monte Carlo error of each point"


def _bars(
    ys: list[float], ses: list[float], diffs: list[dict[str, Any] | None] | None, base: float
) -> tuple[list[list[float]], bool]:
    """Error bars for points ``ys``: the paired interval of each point's difference from
    the base case, placed around the point (``base + interval``), when every point has
    one; otherwise each point's own 95% Monte Carlo error. Returns (lower and upper bar
    lengths, paired or not)."""
    if diffs is not None and all(d is not None and None not in d["ci95"] for d in diffs):
        lo = [max(0.0, y - (base + d["ci95"][0])) for y, d in zip(ys, diffs, strict=True)]
        hi = [max(0.0, base + d["ci95"][1] - y) for y, d in zip(ys, diffs, strict=True)]
        return [lo, hi], True
    half = [1.96 * se if se == se else 0.0 for se in ses]
    return [half, half], False


def _finite(y: Any) -> bool:
    return isinstance(y, int | float) and math.isfinite(y)


def _ranks(values: Sequence[Any]) -> list[int]:
    """Each value's rank among ``values`` (0 the lowest), so that a bar's ends are told
    apart by value, not by the order they were listed in; values that cannot be ordered
    keep their listed order."""
    try:
        order = sorted(range(len(values)), key=lambda j: values[j])
    except TypeError:
        order = list(range(len(values)))
    ranks = [0] * len(values)
    for r, j in enumerate(order):
        ranks[j] = r
    return ranks


UNDEFINED_END = "undefined at one end"
AT_BASE_END = "one end at the base value"


def at_base_value(bar: dict[str, Any]) -> list[Any]:
    """The values of a one-way bar that equal the parameter's base value: that end is the
    base case itself, so the bar shows only the other end's effect (one-sided), not the
    effect of the whole range."""
    base = bar.get("base_value")
    if not _finite(base):
        return []
    return [v for v in bar["values"] if _finite(v) and v == base]


def _end_alignment(ys: list[Any], j: int, base: float, high: bool) -> str:
    """Which way the label of end ``j`` of a bar runs from its marker: away from the
    base-case line (so the line never runs through it); an end on the line runs away
    from the bar's other end."""
    y = ys[j]
    if _finite(base) and y != base:
        return "left" if y > base else "right"
    others = [o for k, o in enumerate(ys) if k != j and _finite(o) and o != y]
    if others:
        return "right" if others[0] > y else "left"
    return "left" if high else "right"


def _tornado_figure(
    bars: list[dict[str, Any]], title: str, path: Path, names: dict[str, str] | None = None
) -> None:
    """Low/high bars: the two ends in two colours (by value: the lower value is the "low
    value"), each with its 95% Monte Carlo error. A bar with no outcome at an end (e.g. a
    median never reached; ``undefined_at`` in sweep.json) has no range: its defined end
    is drawn alone and the bar is labelled as undefined at one end (sorted last). A bar
    with an end at the parameter's base value is labelled so (it is one-sided). Each
    end's value is written beside its marker, above (low value) or below (high value)
    and running away from the base-case line. ``names``: the parameters' labels (with
    units), by dotted path."""
    names = names or {}
    base = bars[0]["base_outcome"]
    items = bars[1:]
    fig, ax = subplots(figsize=(8.5, 0.6 * len(items) + 2.0))
    kinds = set()
    labelled: set[str] = set()
    ends = ("low value", "high value")
    for row, b in enumerate(reversed(items)):
        defined = [_finite(y) for y in b["outcomes"]]
        if all(defined):
            ax.barh(row, b["high"] - b["low"], left=b["low"], color="#dddddd")
        err, paired = _bars(b["outcomes"], b["mc_se"], b.get("difference_vs_base"), base)
        kinds.add(paired)
        ranks = _ranks(b["values"])
        for j in sorted(range(len(ranks)), key=lambda j: ranks[j]):
            v, y = b["values"][j], b["outcomes"][j]
            high = ranks[j] > 0
            color = COLORS[1] if high else COLORS[0]
            if not defined[j]:
                ax.annotate(
                    f"undefined at {format_value(v)}",
                    (base if _finite(base) else 0.0, row),
                    textcoords="offset points",
                    xytext=(4, -14 if high else 7),
                    ha="left",  # beside the base-case line, not through it
                    fontsize=7,
                    color=color,
                    style="italic",
                )
                continue
            name = ends[1] if high else ends[0]
            ax.errorbar(
                y,
                row,
                xerr=[[err[0][j]], [err[1][j]]],
                fmt="o",
                color=color,
                markersize=5,
                capsize=3,
                label=name if name not in labelled else None,
            )
            labelled.add(name)
            ha = _end_alignment(b["outcomes"], j, base, high)
            ax.annotate(
                format_value(v),
                (y, row),
                textcoords="offset points",
                xytext=(4 if ha == "left" else -4, -14 if high else 7),
                ha=ha,
                fontsize=7,
                color=color,
            )
    ax.axvline(base, color="black", linestyle="--", linewidth=1, label="base case")
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels(
        [
            label(names.get(b["parameter"]) or param_label(b["parameter"]), 48)
            + ("" if all(_finite(y) for y in b["outcomes"]) else f"\n({UNDEFINED_END})")
            + (f"\n({AT_BASE_END})" if at_base_value(b) else "")
            for b in reversed(items)
        ],
        fontsize=8,
    )
    ax.set_ylim(-0.7, len(items) - 0.3)
    ax.margins(x=0.08)  # room for the values written beside the outermost ends
    note = " or ".join(PAIRED_NOTE if k else MC_NOTE for k in sorted(kinds, reverse=True))
    ax.set_xlabel(
        label(title, 130) + f"\n(bars: range over the two values; error bars: {note})", fontsize=8
    )
    ax.set_title("One-way sensitivity", fontsize=10)
    handles, texts = ax.get_legend_handles_labels()
    by_text = dict(zip(texts, handles, strict=True))
    order = [n for n in ("base case", *ends) if n in by_text]  # low before high
    ax.legend([by_text[n] for n in order], order, fontsize=7, loc="best")
    ax.grid(True, axis="x", alpha=0.3)
    _save(fig, path)


def _line_figure(
    series: list[tuple[str, list[tuple[Any, ...]]]],
    title: str,
    base: float,
    path: Path,
    names: dict[str, str] | None = None,
) -> None:
    """Parameters swept over listed values: the outcome against each value (one panel per
    parameter); error bars are the paired intervals of the difference from the base case
    (or each point's Monte Carlo error where an estimator has no paired difference).
    ``names``: the parameters' labels (with units), by dotted path."""
    names = names or {}
    k = len(series)
    fig, axes = subplots(1, k, figsize=(4.2 * k + 1, 3.8), squeeze=False)
    kinds = set()
    for ax, (name, rows) in zip(axes[0], series, strict=True):
        rows.sort(key=lambda r: r[0])
        err, paired = _bars(
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows] if all(len(r) > 3 for r in rows) else None,
            base,
        )
        kinds.add(paired)
        ax.errorbar(
            [r[0] for r in rows],
            [r[1] for r in rows],
            yerr=err,
            marker="o",
            color=COLORS[0],
            capsize=3,
        )
        ax.axhline(base, color="black", linestyle="--", linewidth=1, label="base case")
        ax.set_xlabel(label(names.get(name) or param_label(name), 48), fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(label(title, 60), fontsize=8)
    axes[0][0].legend(fontsize=7)
    note = " or ".join(PAIRED_NOTE if k else MC_NOTE for k in sorted(kinds, reverse=True))
    fig.suptitle(f"One-way sensitivity over listed values (error bars: {note})", fontsize=9)
    _save(fig, path)


def _grid_figure(result: SweepResult, key: str, path: Path) -> None:
    plan = result.plan
    names = list(plan.spec.design.parameters)
    first = names[0]
    others = names[1:]
    shown = parameter_labels(plan)  # with their units, as in the tables
    groups: dict[tuple[Any, ...], list[tuple[Any, float, float]]] = {}
    for pt, out in zip(plan.points, result.outputs, strict=True):
        groups.setdefault(tuple(pt[o] for o in others), []).append(
            (pt[first], out.get(key, math.nan), out.get(key + "_se", math.nan))
        )
    fig, ax = subplots(figsize=(7.5, 4.5))
    xs: list[Any] = []
    for (combo, rows), color in zip(groups.items(), COLORS * 10, strict=False):
        rows.sort(key=lambda r: r[0])
        numeric = all(isinstance(r[0], int | float) for r in rows)
        xs = [r[0] for r in rows] if numeric else list(range(len(rows)))
        if not numeric:
            ax.set_xticks(xs, [format_value(r[0]) for r in rows])
        text = ", ".join(
            f"{shown.get(o) or param_label(o)} = {format_value(v)}"
            for o, v in zip(others, combo, strict=True)
        )
        ax.errorbar(
            xs,
            [r[1] for r in rows],
            yerr=[1.96 * r[2] for r in rows],
            marker="o",
            color=color,
            capsize=3,
            label=label(text or key),
        )
    if xs and all(isinstance(x, int) and not isinstance(x, bool) for x in xs):
        ax.set_xticks(sorted(set(xs)))  # a count (chairs, cycles): its own values only
    arm = key.rpartition(":")[0]
    if arm and arm not in plan.arms:  # a difference between two arms: mark no difference
        ax.axhline(0.0, color="black", linewidth=0.8, linestyle=":")
    ylabel = _key_label(key, _labels(plan))
    ax.set_xlabel(shown.get(first) or param_label(first))
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(f"{ylabel}\n(error bars: 95% Monte Carlo error)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def _global_figure(
    info: dict[str, Any],
    key: str,
    design: str,
    path: Path,
    title: str | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """Sobol' or Morris indices of one output; ``labels``: the parameters' labels (with
    units), by dotted path."""
    labels = labels or {}
    names = info["parameters"]
    x = np.arange(len(names))
    fig, ax = subplots(figsize=(max(6, 1.2 * len(names) + 2), 4.5))
    if design == "sobol":
        ax.bar(
            x - 0.2,
            info["S1"],
            0.4,
            yerr=info["S1_ci95_halfwidth"],
            capsize=3,
            label="first order S1",
            color=COLORS[0],
        )
        ax.bar(
            x + 0.2,
            info["ST"],
            0.4,
            yerr=info["ST_ci95_halfwidth"],
            capsize=3,
            label="total ST",
            color=COLORS[1],
        )
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel("Sobol' index (95% CI)")
    else:
        ax.bar(
            x,
            info["mu_star"],
            0.5,
            yerr=info["mu_star_ci95_halfwidth"],
            capsize=3,
            label="mu* (mean |elementary effect|)",
            color=COLORS[0],
        )
        ax.plot(x, info["sigma"], "D", color=COLORS[1], label="sigma (interactions/nonlinearity)")
        ax.set_ylabel(label(f"{title or key}: change over the range (95% CI)", 70), fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(
        [label(labels.get(n) or param_label(n), 48) for n in names],
        rotation=20,
        ha="right",
        fontsize=8,
    )
    note = " (negative estimates shown as estimated)" if design == "sobol" else ""
    ax.set_title(
        label(f"{'Sobol' if design == 'sobol' else 'Morris'}: {title or key}{note}", 90),
        fontsize=10,
    )
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    _save(fig, path)


def _money(x: float) -> str:
    """A value of information, rounded to what it can tell: 3 significant digits (also
    above the units: 14,683,772 -> 14,700,000), thousands separated, no negative zero."""
    if x is None:
        return ""
    if abs(x) < 0.5:
        return "0"
    v = float(f"{x:.3g}")  # 3 significant digits, whatever the magnitude
    digits = max(0, 2 - math.floor(math.log10(abs(v))))
    return f"{v:,.{digits}f}"


def cea_basis(psa: dict[str, Any]) -> str:
    """What the PSA's costs and QALYs are, read from its analysis: 'lifetime, discounted
    at 3.5%/year' (``cost_lifetime``/``qaly_lifetime``), or 'simulated horizon of 728 days,
    discounted at 3.5%/year' (``economics.cea_horizon: clinical``)."""
    horizon = psa.get("cea_horizon")
    if horizon is None:  # an analysis without it: what its QALY column is
        horizon = "lifetime" if str(psa.get("effect", "")).endswith("_lifetime") else "clinical"
    if horizon == "lifetime":
        text = "lifetime"
    else:
        days = psa.get("horizon_days")
        text = "simulated horizon" + (f" of {days:,} days" if days is not None else "")
    rate = psa.get("discount_rate_per_year")
    return f"{text}, discounted" + ("" if rate is None else f" at {100 * rate:g}%/year")


def _psa_figures(result: SweepResult, folder: Path) -> list[str]:
    """The PSA's figures (the cost-effectiveness plane, the CEAC and CEAF, EVPI and
    EVPPI), each drawn on one of the sweep's workers when it has several
    (``parallel.session_map``): ~0.3 s each."""
    from ..parallel import session_map

    draw = (_psa_scatter, _psa_ceac, _psa_evppi)
    return session_map(_psa_figure, [(fn, result, folder) for fn in draw])


def _psa_figure(task: tuple[Any, SweepResult, Path]) -> str:
    """Draw one of the PSA's figures (a task of ``session_map``); its file name."""
    draw, result, folder = task
    return draw(result, folder)  # type: ignore[no-any-return]


@_quiet
def _psa_scatter(result: SweepResult, folder: Path) -> str:
    plan = result.plan
    arms = plan.arms
    ref = arms[0]
    psa = result.analysis["psa"]
    fig, axes = subplots(1, 2, figsize=(12, 4.8))
    for arm, color in zip(arms[1:], COLORS[1:], strict=False):
        diff = difference_arm(arm, ref)
        dp = [o[f"{diff}:cumulative_prednisone_g"] for o in result.outputs]
        dc = [o[f"{diff}:{psa.get('cost', 'cost_total')}"] for o in result.outputs]
        dq = [o[f"{diff}:{psa.get('effect', 'qaly')}"] for o in result.outputs]
        axes[0].scatter(dp, dc, s=8, alpha=0.5, color=color, label=label(f"{arm} - {ref}"))
        axes[1].scatter(dq, dc, s=8, alpha=0.5, color=color, label=label(f"{arm} - {ref}"))
    for ax in axes:
        ax.axhline(0, color="black", linewidth=0.8)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    cur = plan.scenarios[0].economics.currency
    basis = cea_basis(psa)
    axes[0].set_xlabel("incremental cumulative prednisone (g, simulated horizon)")
    axes[0].set_ylabel(f"incremental cost ({cur}; {basis})")
    axes[0].set_title("PSA: steroid exposure vs cost, one point per draw")
    axes[1].set_xlabel(f"incremental QALYs ({basis})")
    axes[1].set_ylabel(f"incremental cost ({cur}; {basis})")
    axes[1].set_title("Cost-effectiveness plane, one point per draw")
    _save(fig, folder / "psa_scatter.png")
    return "psa_scatter.png"


@_quiet
def _psa_ceac(result: SweepResult, folder: Path) -> str:
    plan = result.plan
    arms = plan.arms
    psa = result.analysis["psa"]
    cur = plan.scenarios[0].economics.currency
    fig, ax = subplots(figsize=(7.5, 4.5))
    wtp = psa["willingness_to_pay"]
    for k, (arm, color) in enumerate(zip(arms, COLORS, strict=False)):
        # the true probabilities; curves that coincide (at 0 or 1) stay apart by line
        # style and marker, drawn in turn thinner and smaller so that each shows
        ax.plot(
            wtp,
            psa["ceac"][arm],
            color=color,
            linestyle=CEAC_STYLES[k % len(CEAC_STYLES)],
            marker=CEAC_MARKERS[k % len(CEAC_MARKERS)],
            markersize=max(2.5, 7.0 - 1.5 * k),
            markerfacecolor="none" if k % 2 else color,
            linewidth=max(1.0, 2.6 - 0.5 * k),
            label=label(arm),
            zorder=2 + k,
        )
    if "ceaf" in psa:
        ax.plot(
            wtp,
            psa["ceaf"],
            color="black",
            linestyle="none",
            marker="s",
            markersize=7,
            markerfacecolor="none",
            label="frontier (CEAF): the strategy with the highest expected NMB",
        )
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"willingness to pay ({cur} per QALY)")
    ax.set_ylabel("probability cost-effective")
    ax.set_title(
        "Cost-effectiveness acceptability curves and frontier\n"
        f"(net monetary benefit on costs and QALYs: {cea_basis(psa)})",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, folder / "ceac.png")
    return "ceac.png"


@_quiet
def _psa_evppi(result: SweepResult, folder: Path) -> str:
    plan = result.plan
    psa = result.analysis["psa"]
    cur = plan.scenarios[0].economics.currency
    wtp = psa["willingness_to_pay"]
    fig, axes = subplots(1, 2, figsize=(12, 4.2))
    axes[0].plot(wtp, psa["evpi_per_patient"], color=COLORS[0], marker="o", markersize=3)
    axes[0].set_ylim(bottom=0)
    axes[0].set_xlabel(f"willingness to pay ({cur} per QALY)")
    axes[0].set_ylabel(f"EVPI per patient ({cur})")
    axes[0].set_title("Expected value of perfect information")
    axes[0].grid(True, alpha=0.3)
    groups = psa["evppi_per_patient_at_reference"]
    unavailable = psa.get("evppi_unavailable")
    note = None
    if unavailable is not None:
        axes[1].set_xticks([])
        axes[1].set_yticks([])
        note = unavailable.replace(": ", ":\n", 1)
    else:
        errs = [psa.get("evppi_se", {}).get(g) or 0.0 for g in groups]
        axes[1].barh(
            [label(g, 30) for g in groups],
            list(groups.values()),
            xerr=errs,
            capsize=3,
            color=COLORS[2],
        )
        axes[1].set_xlim(left=0)
        if psa.get("evpi_at_reference") == 0.0:
            note = "EVPI is 0 at this willingness to pay:\nthe same strategy is best in every draw"
    if note is not None:
        axes[1].set_xlim(0, 1)
        axes[1].text(
            0.5,
            0.5,
            note,
            transform=axes[1].transAxes,
            ha="center",
            va="center",
            fontsize=9,
            bbox={"facecolor": "white", "edgecolor": "0.7"},
        )
    axes[1].set_xlabel(
        f"EVPPI per patient ({cur}) at {psa['reference_willingness_to_pay']:,.0f}"
        "/QALY (bars: +/- 1 SE)"
    )
    axes[1].set_title("Partial EVPI by parameter group (GAM metamodel)")
    axes[1].grid(True, axis="x", alpha=0.3)
    fig.suptitle(
        f"Value of information on net monetary benefit (costs and QALYs: {cea_basis(psa)})",
        fontsize=10,
    )
    _save(fig, folder / "evppi.png")
    return "evppi.png"
