"""Output folder of a sweep: sweep.json, sweep.csv, figures, report.html."""

from __future__ import annotations

import csv
import html
import io
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..sweeps import SweepPlan, SweepResult, partial_dir, run_sweep
from .atomic import json_roundtrip, output_folder, png_figure, write_json
from .figures import COLORS, _quiet, _save, label, subplots
from .tables import format_value

__all__ = ["sweep_to_folder", "write_sweep"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _csv(result: SweepResult, path: Path) -> None:
    """sweep.csv, long and tidy: one row per point, arm and outcome; every parameter a
    numeric column (a point that does not set a parameter has its base value), the arm
    (empty for a single-scenario sweep, ``B-A`` for a difference between arms), the
    outcome, its value and its Monte Carlo standard error. One-way sweeps add the paired
    difference from the base case (point 0) on the same patients with its 95% interval
    (empty for the base point and for medians and rates, which have no per-patient
    difference)."""
    plan = result.plan
    names = list(plan.spec.design.parameters)
    paired = result.analysis.get("paired_vs_base")
    extra = ["difference_vs_base", "difference_ci95_low", "difference_ci95_high"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            [
                "point",
                *names,
                "arm",
                "outcome",
                "value",
                "mc_se",
                *(extra if paired is not None else []),
            ]
        )
        for i, (pt, out) in enumerate(zip(plan.points, result.outputs, strict=True)):
            values = [
                format_value(pt[n]) if n in pt else format_value(plan.base_values[n]) for n in names
            ]
            for k in plan.output_keys:
                arm, _, outcome = k.rpartition(":")
                row = [str(i), *values, arm, outcome, _f(out.get(k)), _f(out.get(k + "_se"))]
                if paired is not None:
                    d = paired[i].get(k)
                    row += (
                        ["", "", ""]
                        if d is None
                        else [_f(d["mean_difference"]), _f(d["ci95"][0]), _f(d["ci95"][1])]
                    )
                w.writerow(row)


def _labels(plan: SweepPlan) -> dict[str, tuple[str, str]]:
    """Outcome name -> (label, unit) from the metric registry."""
    from ..outcomes import metric_specs
    from ..runner import _plan_for

    cur = plan.scenarios[0].economics.currency
    return {
        m.name: (m.label, cur if m.unit == "currency" else m.unit)
        for m in metric_specs(_plan_for(plan.scenarios[0]))
    }


def _key_label(key: str, labels: dict[str, tuple[str, str]]) -> str:
    """'first_line-rescue:qaly' -> 'QALYs (discounted) [QALY], first_line - rescue'."""
    arm, _, outcome = key.rpartition(":")
    text, unit = labels.get(outcome, (outcome, ""))
    text = f"{text} [{unit}]" if unit and unit != "proportion" else text
    return f"{text}, {arm.replace('-', ' - ')}" if arm else text


def param_label(path: str) -> str:
    """A parameter's own name (its last path components), not the whole dotted path."""
    parts = [p for p in path.split(".") if not p.isdigit()]
    return " ".join(parts[-2:]).replace("_", " ")


def _touches(plan: SweepPlan, name: str, key: str) -> bool:
    """Whether parameter ``name`` can move output ``key`` (its arm, or either arm of a
    difference, has the parameter)."""
    arm, _, _ = key.rpartition(":")
    if not arm:
        return True
    idx = [plan.arms.index(a) for a in arm.split("-") if a in plan.arms]
    return any(i in plan.applies.get(name, []) for i in idx)


def _f(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return format_value(x)


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


def _tornado_figure(bars: list[dict[str, Any]], title: str, path: Path) -> None:
    """Low/high bars: the two ends in two colours, each with its 95% Monte Carlo error."""
    base = bars[0]["base_outcome"]
    items = bars[1:]
    fig, ax = subplots(figsize=(8, 0.6 * len(items) + 2.0))
    kinds = set()
    for row, b in enumerate(reversed(items)):
        ax.barh(row, b["high"] - b["low"], left=b["low"], color="#dddddd")
        err, paired = _bars(b["outcomes"], b["mc_se"], b.get("difference_vs_base"), base)
        kinds.add(paired)
        for j, (v, y) in enumerate(zip(b["values"], b["outcomes"], strict=True)):
            color = COLORS[0] if j == 0 else COLORS[1]
            ax.errorbar(
                y,
                row,
                xerr=[[err[0][j]], [err[1][j]]],
                fmt="o",
                color=color,
                markersize=5,
                capsize=3,
                label=(("low value" if j == 0 else "high value") if row == 0 else None),
            )
            ax.annotate(
                format_value(v),
                (y, row),
                textcoords="offset points",
                xytext=(0, 9 if j == 0 else -13),
                ha="center",
                fontsize=7,
                color=color,
            )
    ax.axvline(base, color="black", linestyle="--", linewidth=1, label="base case")
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels(
        [label(param_label(b["parameter"]), 40) for b in reversed(items)], fontsize=8
    )
    ax.set_ylim(-0.7, len(items) - 0.3)
    note = " or ".join(PAIRED_NOTE if k else MC_NOTE for k in sorted(kinds, reverse=True))
    ax.set_xlabel(
        label(title, 130) + f"\n(bars: range over the two values; error bars: {note})", fontsize=8
    )
    ax.set_title("One-way sensitivity", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(True, axis="x", alpha=0.3)
    _save(fig, path)


def _line_figure(
    series: list[tuple[str, list[tuple[Any, ...]]]], title: str, base: float, path: Path
) -> None:
    """Parameters swept over listed values: the outcome against each value (one panel per
    parameter); error bars are the paired intervals of the difference from the base case
    (or each point's Monte Carlo error where an estimator has no paired difference)."""
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
        ax.set_xlabel(label(param_label(name), 40), fontsize=8)
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
    groups: dict[tuple[Any, ...], list[tuple[Any, float, float]]] = {}
    for pt, out in zip(plan.points, result.outputs, strict=True):
        groups.setdefault(tuple(pt[o] for o in others), []).append(
            (pt[first], out.get(key, math.nan), out.get(key + "_se", math.nan))
        )
    fig, ax = subplots(figsize=(7.5, 4.5))
    for (combo, rows), color in zip(groups.items(), COLORS * 10, strict=False):
        rows.sort(key=lambda r: r[0])
        xs = (
            list(range(len(rows)))
            if not all(isinstance(r[0], int | float) for r in rows)
            else [r[0] for r in rows]
        )
        text = ", ".join(f"{o}={format_value(v)}" for o, v in zip(others, combo, strict=True))
        ax.errorbar(
            xs,
            [r[1] for r in rows],
            yerr=[1.96 * r[2] for r in rows],
            marker="o",
            color=color,
            capsize=3,
            label=label(text or key),
        )
    ax.set_xlabel(first)
    ax.set_ylabel(key)
    ax.set_title(f"Grid: {key} (error bars: 95% Monte Carlo error)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def _global_figure(
    info: dict[str, Any], key: str, design: str, path: Path, title: str | None = None
) -> None:
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
        [label(param_label(n), 40) for n in names], rotation=20, ha="right", fontsize=8
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
    """A value of information, rounded to what it can tell (3 significant digits, no
    negative zero)."""
    if x is None:
        return ""
    if abs(x) < 0.5:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    v = round(x, digits)
    return f"{v:,.{digits}f}"


def _psa_figures(result: SweepResult, folder: Path) -> list[str]:
    plan = result.plan
    arms = plan.arms
    ref = arms[0]
    psa = result.analysis["psa"]
    files = []
    fig, axes = subplots(1, 2, figsize=(12, 4.8))
    for arm, color in zip(arms[1:], COLORS[1:], strict=False):
        dp = [o[f"{arm}-{ref}:cumulative_prednisone_g"] for o in result.outputs]
        dc = [o[f"{arm}-{ref}:{psa.get('cost', 'cost_total')}"] for o in result.outputs]
        dq = [o[f"{arm}-{ref}:{psa.get('effect', 'qaly')}"] for o in result.outputs]
        axes[0].scatter(dp, dc, s=8, alpha=0.5, color=color, label=label(f"{arm} - {ref}"))
        axes[1].scatter(dq, dc, s=8, alpha=0.5, color=color, label=label(f"{arm} - {ref}"))
    for ax in axes:
        ax.axhline(0, color="black", linewidth=0.8)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    cur = plan.scenarios[0].economics.currency
    axes[0].set_xlabel("incremental cumulative prednisone (g)")
    axes[0].set_ylabel(f"incremental cost ({cur})")
    axes[0].set_title("PSA: steroid exposure vs cost, one point per draw")
    axes[1].set_xlabel("incremental QALYs")
    axes[1].set_ylabel(f"incremental cost ({cur})")
    axes[1].set_title("Cost-effectiveness plane")
    _save(fig, folder / "psa_scatter.png")
    files.append("psa_scatter.png")
    fig, ax = subplots(figsize=(7.5, 4.5))
    wtp = psa["willingness_to_pay"]
    for k, (arm, color) in enumerate(zip(arms, COLORS, strict=False)):
        # markers and a small offset keep lines at 0 or 1 visible and apart
        ax.plot(
            wtp,
            [v + 0.006 * (k - (len(arms) - 1) / 2) for v in psa["ceac"][arm]],
            color=color,
            marker="o",
            markersize=3,
            linewidth=1.5,
            label=label(arm),
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
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"willingness to pay ({cur} per QALY)")
    ax.set_ylabel("probability cost-effective")
    ax.set_title("Cost-effectiveness acceptability curves and frontier")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, folder / "ceac.png")
    files.append("ceac.png")
    fig, axes = subplots(1, 2, figsize=(12, 4.2))
    axes[0].plot(wtp, psa["evpi_per_patient"], color=COLORS[0], marker="o", markersize=3)
    axes[0].set_ylim(bottom=0)
    axes[0].set_xlabel(f"willingness to pay ({cur} per QALY)")
    axes[0].set_ylabel(f"EVPI per patient ({cur})")
    axes[0].set_title("Expected value of perfect information")
    axes[0].grid(True, alpha=0.3)
    groups = psa["evppi_per_patient_at_reference"]
    errs = [psa.get("evppi_se", {}).get(g) or 0.0 for g in groups]
    axes[1].barh(
        [label(g, 30) for g in groups], list(groups.values()), xerr=errs, capsize=3, color=COLORS[2]
    )
    axes[1].set_xlim(left=0)
    axes[1].set_xlabel(
        f"EVPPI per patient ({cur}) at {psa['reference_willingness_to_pay']:,.0f}"
        "/QALY (bars: +/- 1 SE)"
    )
    axes[1].set_title("Partial EVPI by parameter group (GAM metamodel)")
    axes[1].grid(True, axis="x", alpha=0.3)
    _save(fig, folder / "evppi.png")
    files.append("evppi.png")
    return files


@_quiet
def _figures(result: SweepResult, folder: Path) -> list[str]:
    design = result.plan.spec.design.type
    keys = result.plan.output_keys
    files: list[str] = []
    if design == "one_way":
        plan = result.plan
        labels = _labels(plan)
        tornado = result.analysis["tornado"]
        specs = plan.spec.design.parameters
        listed = {n for n, sp in specs.items() if len(sp.points()) > 2}
        for key in keys:
            bars = tornado[key]
            # only the parameters that can move this output (its arm has them)
            kept = [b for b in bars[1:] if _touches(plan, b["parameter"], key)]
            ends = [b for b in kept if b["parameter"] not in listed]
            title = _key_label(key, labels)
            if ends:
                name = "tornado.png" if not files else f"tornado_{_slug(key)}.png"
                _tornado_figure([bars[0], *ends], title, folder / name)
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
                _line_figure(series, title, bars[0]["base_outcome"], folder / name)
                files.append(name)
    elif design == "grid":
        for j, key in enumerate(keys):
            name = "grid.png" if j == 0 else f"grid_{_slug(key)}.png"
            _grid_figure(result, key, folder / name)
            files.append(name)
    elif design in ("sobol", "morris"):
        for key in keys:
            info = result.analysis["indices"][key]
            if "error" in info:
                continue
            name = f"{design}.png" if not files else f"{design}_{_slug(key)}.png"
            _global_figure(info, key, design, folder / name, _key_label(key, _labels(result.plan)))
            files.append(name)
    else:
        files += _psa_figures(result, folder)
    return files


def _html(result: SweepResult, data: dict[str, Any], folder: Path, figs: list[str]) -> str:
    plan = result.plan
    out = io.StringIO()
    w = out.write
    w("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>")
    w(
        f"<title>Sweep: {html.escape(plan.spec.name)}</title><style>body{{font-family:"
        "system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-"
        "collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:"
        "3px 6px;text-align:right}th{background:#f3f3f3}img{max-width:100%}small{color:#555}"
        "</style></head><body>"
    )
    w(f"<h1>Sensitivity sweep: {html.escape(plan.spec.name)}</h1>")
    w(f"<p>{html.escape(plan.spec.description)}</p>")
    w(
        f"<p>Design <b>{html.escape(plan.spec.design.type)}</b>, {len(plan.points)} points, "
        f"{plan.spec.patients:,} virtual patients per point, the same patients at every point "
        f"(seed {plan.seed}), strategies: {html.escape(', '.join(plan.arms))}. Monte Carlo "
        "standard errors (the <code>mc_se</code> column of sweep.csv, error bars in the "
        "figures, &plusmn; 95% intervals in the table of points) tell a real effect from "
        "noise.</p>"
    )
    if "paired_vs_base" in data["analysis"]:
        w(
            "<p>Because every point runs the same patients, a difference between points is "
            "much more precise than the two points' own intervals suggest. Each point is "
            "therefore also compared with the base case (point 0) patient by patient: "
            "&Delta; in the table of points, <code>difference_vs_base</code> with its 95% "
            "interval in sweep.csv, and the error bars of the one-way figures. A median "
            "(time to an event) or a rate has no per-patient difference; those keep their "
            "Monte Carlo error.</p>"
        )
    analysis = data["analysis"]
    if "psa" in analysis:
        psa = analysis["psa"]
        cur = html.escape(plan.scenarios[0].economics.currency)
        ref = psa["reference_willingness_to_pay"]
        k = psa["willingness_to_pay"].index(ref)
        se = psa.get("evpi_at_reference_se")
        pop = psa.get("population")
        w(
            f"<h2>Decision and value of information</h2><p>At {ref:,.0f} {cur}/QALY the "
            f"strategy with the highest expected net monetary benefit is "
            f"<b>{html.escape(psa['optimal_strategy'][k])}</b>, the best in "
            f"{100 * psa['ceaf'][k]:.0f}% of draws. EVPI per patient: "
            f"<b>{_money(psa['evpi_at_reference'])} {cur}</b>"
            + (f" (SE {_money(se)})" if se is not None else "")
            + (
                f"; for the {pop:,.0f} patients the decision concerns (discounted): "
                f"<b>{_money(psa['evpi_population_at_reference'])} {cur}</b>"
                if pop
                else ""
            )
            + f".</p><table><tr><th>parameter group</th><th>EVPPI per patient ({cur})</th>"
            f"<th>SE</th><th>population EVPPI ({cur})</th><th>metamodel R&sup2; by strategy"
            f"</th></tr>"
        )
        for g, v in psa["evppi_per_patient_at_reference"].items():
            gse = psa.get("evppi_se", {}).get(g)
            popv = psa.get("evppi_population_at_reference", {}).get(g)
            r2 = ", ".join(f"{x:.2f}" for x in psa.get("evppi_metamodel_r_squared", {}).get(g, []))
            w(
                f"<tr><td style='text-align:left'>{html.escape(g)}</td><td>{_money(v)}</td>"
                f"<td>{'' if gse is None else _money(gse)}</td>"
                f"<td>{'' if popv is None else _money(popv)}</td><td>{r2}</td></tr>"
            )
        w("</table><p><small>" + html.escape(psa["note"]) + "</small></p>")
    if "indices" in analysis:
        w("<h2>Global sensitivity indices</h2>")
        labels = _labels(plan)
        for key, info in analysis["indices"].items():
            w(f"<h3>{html.escape(_key_label(key, labels))}</h3>")
            if "error" in info:
                w(f"<p>{html.escape(info['error'])}</p>")
                continue
            cols = [c for c in info if c != "parameters"]
            w(
                "<table><tr><th>parameter</th>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
                + "</tr>"
            )
            for i, name in enumerate(info["parameters"]):
                w(
                    f"<tr><td style='text-align:left' title='{html.escape(name)}'>"
                    f"{html.escape(param_label(name))}</td>"
                    + "".join(f"<td>{info[c][i]:.3f}</td>" for c in cols)
                    + "</tr>"
                )
            w("</table>")
    w("<h2>Figures</h2>")
    for f in figs:
        w(png_figure(folder / f, f))
    w(_points_table(result))
    w(
        "<p><small>Every point and output is in sweep.csv (one row per point, arm and "
        "outcome) and sweep.json.</small></p></body></html>\n"
    )
    return out.getvalue()


def _points_table(result: SweepResult, limit: int = 60) -> str:
    """The points as a table: parameters, then each output with its 95% Monte Carlo
    interval and, in one-way sweeps, its paired difference from the base case with a 95%
    interval (the first ``limit`` points; all are in sweep.csv)."""
    plan = result.plan
    paired = result.analysis.get("paired_vs_base")
    labels = _labels(plan)
    names = list(plan.spec.design.parameters)
    keys = plan.output_keys
    out = ["<h2>Points</h2><div style='overflow-x:auto'><table><tr><th>point</th>"]
    out += [f"<th>{html.escape(param_label(n))}</th>" for n in names]
    out += [f"<th>{html.escape(_key_label(k, labels))}</th>" for k in keys]
    out.append("</tr>")
    for i, (pt, o) in enumerate(zip(plan.points[:limit], result.outputs[:limit], strict=False)):
        cells = [f"<td>{i}</td>"]
        cells += [
            f"<td>{html.escape(format_value(pt[n]) if n in pt else 'base')}</td>" for n in names
        ]
        for k in keys:
            v, se = o.get(k), o.get(k + "_se")
            if v is None or v != v:
                cells.append("<td></td>")
                continue
            half = "" if se is None or se != se else f" &plusmn; {1.96 * se:.3g}"
            d = paired[i].get(k) if paired is not None else None
            diff = (
                ""
                if d is None or None in d["ci95"]
                else (
                    f"<br><small>&Delta; {d['mean_difference']:+.3g} ({d['ci95'][0]:+.3g} to "
                    f"{d['ci95'][1]:+.3g})</small>"
                )
            )
            cells.append(f"<td>{v:.4g}{half}{diff}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    if len(plan.points) > limit:
        out.append(f"<p><small>First {limit} of {len(plan.points)} points.</small></p>")
    return "".join(out)


def write_sweep(result: SweepResult, folder: str | os.PathLike[str]) -> dict[str, Any]:
    folder = Path(folder)
    data = result.to_json()
    write_json(folder / "sweep.json", data)
    _csv(result, folder / "sweep.csv")
    figs = _figures(result, folder)
    (folder / "report.html").write_text(
        _html(result, json_roundtrip(data), folder, figs), encoding="utf-8"
    )
    return data


def sweep_to_folder(
    plan: SweepPlan,
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    label: str = "output folder",
    **kwargs: Any,
) -> SweepResult:
    """Run (or resume) a sweep, then write its output folder atomically.

    The output folder (and its ``.partial`` checkpoint) stays locked for the whole run;
    the same ownership rules as a run apply (``atomic.output_folder``), and neither the
    sweep file's folder nor its scenarios' folders are ever replaced.
    """
    out = Path(out)
    here = plan.source.parent
    inputs = [
        plan.source,
        *[
            here / f
            for f in (
                (plan.spec.base,) if plan.spec.base else (plan.spec.strategies or {}).values()
            )
        ],
    ]
    with output_folder(out, kind="sweep", force=force, inputs=inputs, label=label) as folder:
        result = run_sweep(plan, out, force=force, **kwargs)
        with folder.writing() as tmp:
            write_sweep(result, tmp)
        shutil.rmtree(partial_dir(out), ignore_errors=True)
    return result
