"""One-way sensitivity: the base case, then each parameter alone at its low and high values
(a tornado) or at each listed value (a line plot). Every point runs the same patients, so
each point also keeps its per-patient values for a paired comparison with the base case."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..scenario.sweep_schema import OneWay
from .common import Point

#: run_sweep keeps each point's per-patient values (the base case is point 0)
KEEPS_PATIENT_VALUES = True


def points(design: OneWay, seed: int, base_values: dict[str, Any]) -> list[Point]:
    """The base case (no override), then each parameter's values in turn."""
    pts: list[Point] = [{}]
    for name, spec in design.parameters.items():
        pts.extend({name: v} for v in spec.points())
    return pts


def analyse(
    design: OneWay,
    points: list[Point],
    outputs: list[dict[str, float]],
    seed: int,
    base_values: dict[str, Any],
    keys: Sequence[str],
) -> dict[str, Any]:
    return {"tornado": _tornado(design, points, outputs, keys, base_values)}


def _tornado(
    design: OneWay,
    points: list[Point],
    outputs: list[dict[str, float]],
    keys: Sequence[str],
    base_values: dict[str, Any],
) -> dict[str, list[dict[str, Any]]]:
    base = outputs[0]
    res: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        bars = []
        i = 1
        for name, spec in design.parameters.items():
            vals = spec.points()
            outs = outputs[i : i + len(vals)]
            i += len(vals)
            ys = [o.get(key, math.nan) for o in outs]
            ses = [o.get(key + "_se", math.nan) for o in outs]
            # low and high over the values with an outcome (min/max with a NaN would
            # depend on the order); an outcome undefined at a value (a median never
            # reached) leaves the bar without a swing, marked and sorted last
            finite = [y for y in ys if _finite(y)]
            undefined = [v for v, y in zip(vals, ys, strict=True) if not _finite(y)]
            low = min(finite) if finite else math.nan
            high = max(finite) if finite else math.nan
            bar = {
                "parameter": name,
                "base_value": base_values.get(name),
                "points": list(range(i - len(vals), i)),
                "values": vals,
                "outcomes": ys,
                "mc_se": ses,
                "low": low,
                "high": high,
                "swing": math.nan if undefined else high - low,
            }
            if undefined:
                bar["undefined_at"] = undefined
            bars.append(bar)
        # largest swing first; a swing that is undefined (an end without a value) last
        bars.sort(key=lambda b: (0, -abs(b["swing"])) if _finite(b["swing"]) else (1, 0.0))
        res[key] = [{"base_outcome": base.get(key), "base_mc_se": base.get(key + "_se")}, *bars]
    return res


def _finite(y: Any) -> bool:
    return isinstance(y, int | float) and math.isfinite(y)


def figures(result: Any, folder: Path) -> list[str]:
    """A tornado per output for low/high parameters, a line plot per output for listed
    values; only the parameters that can move the output (its arm has them)."""
    from ..report.sweep_figures import (
        _key_label,
        _labels,
        _line_figure,
        _slug,
        _tornado_figure,
        _touches,
        parameter_labels,
    )

    plan = result.plan
    files: list[str] = []
    labels = _labels(plan)
    names = parameter_labels(plan)
    tornado = result.analysis["tornado"]
    specs = plan.spec.design.parameters
    listed = {n for n, sp in specs.items() if len(sp.points()) > 2}
    for key in plan.output_keys:
        bars = tornado[key]
        kept = [b for b in bars[1:] if _touches(plan, b["parameter"], key)]
        ends = [b for b in kept if b["parameter"] not in listed]
        title = _key_label(key, labels)
        if ends:
            name = "tornado.png" if not files else f"tornado_{_slug(key)}.png"
            _tornado_figure([bars[0], *ends], title, folder / name, names)
            files.append(name)
        lines = [b for b in kept if b["parameter"] in listed]
        if lines:
            series = [
                (
                    b["parameter"],
                    list(
                        zip(
                            b["values"],
                            b["outcomes"],
                            b["mc_se"],
                            b.get("difference_vs_base") or [None] * len(b["values"]),
                            strict=True,
                        )
                    ),
                )
                for b in lines
            ]
            name = f"values_{_slug(key)}.png"
            _line_figure(series, title, bars[0]["base_outcome"], folder / name, names)
            files.append(name)
    return files
