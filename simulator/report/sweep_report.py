"""Output folder of a sweep: sweep.json, sweep.csv, figures, report.html."""

from __future__ import annotations

import csv
import html
import io
import math
import os
from pathlib import Path
from typing import Any

from ..designs import figures as design_figures
from ..sweeps import SweepResult
from .atomic import json_roundtrip, png_figure, write_json
from .comparison import economics_basis
from .figures import _quiet
from .sweep_figures import (
    AT_BASE_END,
    _key_label,
    _labels,
    _money,
    _touches,
    at_base_value,
    cea_basis,
    param_label,
    parameter_labels,
)
from .tables import format_value

__all__ = ["write_sweep"]


def _csv(result: SweepResult, path: Path) -> None:
    """sweep.csv, long and tidy: one row per point, arm and outcome; every parameter a
    numeric column (a point that does not set a parameter has its base value), the arm
    (empty for a single-scenario sweep, ``B-A`` for a difference between arms), the
    outcome, the estimator its value is (``_estimators``), its value and its Monte Carlo
    standard error. One-way sweeps add the paired
    difference from the base case (point 0) on the same patients with its 95% interval
    (empty for the base point and for medians and rates, which have no per-patient
    difference)."""
    plan = result.plan
    names = plan.parameter_names
    paired = result.analysis.get("paired_vs_base")
    estimator = _estimators(plan)
    extra = ["difference_vs_base", "difference_ci95_low", "difference_ci95_high"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            [
                "point",
                *names,
                "arm",
                "outcome",
                "estimator",
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
                row = [
                    str(i),
                    *values,
                    arm,
                    outcome,
                    estimator(pt, arm, outcome),
                    _f(out.get(k)),
                    _f(out.get(k + "_se")),
                ]
                if paired is not None:
                    d = paired[i].get(k)
                    row += (
                        ["", "", ""]
                        if d is None
                        else [_f(d["mean_difference"]), _f(d["ci95"][0]), _f(d["ci95"][1])]
                    )
                w.writerow(row)


def _estimators(plan: Any) -> Any:
    """(point, arm, outcome) -> what the value is: the summary's estimator for an arm
    (``mean``, ``proportion``, ``ratio_of_sums``, ``km_median``), the comparison's for a
    difference between arms (``outcomes.difference_estimator``, as compare names it);
    empty for a center's metrics."""
    from ..outcomes import ESTIMATORS, difference_estimator, metric_specs
    from ..runner import _plan_for

    kinds = {m.name: m.kind for m in metric_specs(_plan_for(plan.scenarios[0]))}
    arms = set(plan.arms)

    def estimator(point: dict[str, Any], arm: str, outcome: str) -> str:
        kind = kinds.get(outcome)
        if kind is None:
            return ""
        if not arm or arm in arms:
            return ESTIMATORS[kind]
        horizon = point.get("horizon_days", plan.scenarios[0].horizon_days)
        return difference_estimator(ESTIMATORS[kind], int(horizon))

    return estimator


def _f(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return format_value(x)


@_quiet
def _figures(result: SweepResult, folder: Path) -> list[str]:
    """The design's own figures (``simulator/designs/<design>.py``)."""
    return design_figures(result, folder)


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
    units = (
        f"{plan.spec.patients:,} simulated infusion centers per point (each with its own"
        " arrivals), the same centers and patients at every point"
        if plan.scenarios[0].center is not None
        else f"{plan.spec.patients:,} virtual patients per point, the same patients at every point"
    )
    w(
        f"<p>Design <b>{html.escape(plan.spec.design.type)}</b>, {len(plan.points)} points, "
        f"{units} "
        f"(seed {plan.seed}), strategies: {html.escape(', '.join(plan.arms))}. Monte Carlo "
        "standard errors of each point (the <code>mc_se</code> column of sweep.csv, "
        "&plusmn; 95% intervals in the table of points) tell a real effect from noise.</p>"
    )
    if "paired_vs_base" in data["analysis"]:
        w(
            "<p>Because every point runs the same patients, a difference between points is "
            "much more precise than the two points' own intervals suggest. Each point is "
            "therefore also compared with the base case (point 0) patient by patient: "
            "&Delta; in the table of points, <code>difference_vs_base</code> with its 95% "
            "interval in sweep.csv. A median (time to an event) or a rate has no "
            "per-patient difference; those keep their Monte Carlo error.</p>"
        )
    w(f"<p>{error_bars_text(plan.spec.design.type)}</p>")
    w(settings_html(result, data))
    analysis = data["analysis"]
    if "psa" in analysis:
        psa = analysis["psa"]
        cur = html.escape(plan.scenarios[0].economics.currency)
        ref = psa["reference_willingness_to_pay"]
        k = psa["willingness_to_pay"].index(ref)
        se = psa.get("evpi_at_reference_se")
        pop = psa.get("population")
        w(
            "<h2>Decision and value of information</h2><p>The cost-effectiveness results "
            "(the cost-effectiveness plane of psa_scatter.png, the CEAC and CEAF, EVPI and "
            f"EVPPI) use <b>{html.escape(cea_basis(psa))}</b> costs and QALYs (the outcomes "
            f"<code>{html.escape(psa['cost'])}</code> and "
            f"<code>{html.escape(psa['effect'])}</code> of each draw; "
            "<code>economics.cea_horizon</code>).</p>"
        )
        w(
            f"<p>At {ref:,.0f} {cur}/QALY the "
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
            + f".</p><table><tr><th>parameter group</th><th>parameters in the group</th>"
            f"<th>EVPPI per patient ({cur})</th>"
            f"<th>SE</th><th>population EVPPI ({cur})</th><th>metamodel R&sup2; of the"
            " incremental net benefit ("
            + html.escape(", ".join(psa.get("evppi_metamodel_strategies", [])))
            + ")</th></tr>"
        )
        groups = psa.get("evppi_groups") or data.get("design_spec", {}).get("groups") or {}
        names = parameter_labels(plan)
        for g, v in psa["evppi_per_patient_at_reference"].items():
            members = "; ".join(
                f"<span title='{html.escape(m)}'>{html.escape(names.get(m, m))}</span>"
                for m in groups.get(g, [])
            )
            gse = psa.get("evppi_se", {}).get(g)
            popv = psa.get("evppi_population_at_reference", {}).get(g)
            r2 = ", ".join(f"{x:.2f}" for x in psa.get("evppi_metamodel_r_squared", {}).get(g, []))
            w(
                f"<tr><td style='text-align:left'>{html.escape(g)}</td>"
                f"<td style='text-align:left'>{members}</td>"
                f"<td>{'n/a' if v is None else _money(v)}</td>"
                f"<td>{'' if gse is None else _money(gse)}</td>"
                f"<td>{'' if popv is None else _money(popv)}</td><td>{r2}</td></tr>"
            )
        w("</table>")
        if psa.get("evppi_unavailable"):
            w(f"<p><b>{html.escape(psa['evppi_unavailable'])}.</b></p>")
        if psa.get("evppi_capped_at_evpi"):
            groups = ", ".join(html.escape(g) for g in psa["evppi_capped_at_evpi"])
            w(
                f"<p><b>The metamodel's EVPPI of {groups} exceeded the EVPI and is shown as"
                " the EVPI</b> (knowing some parameters is worth no more than knowing all:"
                " the fit follows the draws' noise; more draws narrow it).</p>"
            )
        w("<p><small>" + html.escape(psa["note"]) + "</small></p>")
    if "indices" in analysis:
        w("<h2>Global sensitivity indices</h2>")
        labels = _labels(plan)
        names = parameter_labels(plan)
        for key, info in analysis["indices"].items():
            w(f"<h3>{html.escape(_key_label(key, labels))}</h3>")
            if "error" in info:
                w(f"<p>{html.escape(info['error'])}</p>")
                continue
            cols = [c for c in info if c != "parameters" and not c.startswith("S2")]
            w(
                "<table><tr><th>parameter</th>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
                + "</tr>"
            )
            for i, name in enumerate(info["parameters"]):
                w(
                    f"<tr><td style='text-align:left' title='{html.escape(name)}'>"
                    f"{html.escape(names.get(name) or param_label(name))}</td>"
                    + "".join(f"<td>{info[c][i]:.3f}</td>" for c in cols)
                    + "</tr>"
                )
            w("</table>")
            if "S2" in info:
                w(_second_order_table(info, names))
    if "tornado" in analysis:
        w(_undefined_ends(result, analysis["tornado"]))
        w(_ends_at_base(result, analysis["tornado"]))
    w("<h2>Figures</h2>")
    for f in figs:
        w(png_figure(folder / f, f))
    w(_points_table(result))
    w(
        "<p><small>Every point and output is in sweep.csv (one row per point, arm and "
        "outcome) and sweep.json.</small></p></body></html>\n"
    )
    return out.getvalue()


def _second_order_table(info: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    """Sobol' second-order indices (``second_order: true``): S2 of each pair of
    parameters, row before column, with its 95% bootstrap half-width; empty on and below
    the diagonal. ``labels``: the parameters' labels, by dotted path."""
    labels = labels or {}
    names = info["parameters"]
    out = [
        "<p>Second-order indices S2 (the share of the variance due to the interaction of two"
        " parameters alone; &plusmn; 95% bootstrap half-width):</p><table><tr><th>S2</th>"
    ]
    out += [
        f"<th title='{html.escape(n)}'>{html.escape(labels.get(n) or param_label(n))}</th>"
        for n in names
    ]
    out.append("</tr>")
    for i, name in enumerate(names):
        cells = []
        for v, h in zip(info["S2"][i], info["S2_ci95_halfwidth"][i], strict=True):
            text = "" if v is None else f"{v:.3f}" + ("" if h is None else f" &plusmn; {h:.3f}")
            cells.append(f"<td>{text}</td>")
        out.append(
            f"<tr><th style='text-align:left' title='{html.escape(name)}'>"
            f"{html.escape(labels.get(name) or param_label(name))}</th>" + "".join(cells) + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


def _undefined_ends(result: SweepResult, tornado: dict[str, list[dict[str, Any]]]) -> str:
    """The one-way bars whose outcome is undefined at one of the parameter's values (a
    median never reached): they have no low-to-high swing (null in sweep.json, which
    lists the values in ``undefined_at``) and are drawn last, labelled, in the tornado;
    the bars the tornado figures show (a parameter's two ends, where it can move the
    output)."""
    plan = result.plan
    labels = _labels(plan)
    ends = {n for n, sp in plan.spec.design.parameters.items() if len(sp.points()) <= 2}
    rows = [
        (key, b)
        for key, bars in tornado.items()
        for b in bars[1:]
        if b.get("undefined_at") and b["parameter"] in ends and _touches(plan, b["parameter"], key)
    ]
    if not rows:
        return ""
    out = [
        "<p>Undefined at one end (the outcome has no value at a parameter's value, e.g. a"
        " median never reached, so the bar has no swing; drawn last in the tornado):</p><ul>"
    ]
    shown = parameter_labels(plan)  # the tornado's names
    out += [
        f"<li>{html.escape(_key_label(key, labels))}:"
        f" {html.escape(shown.get(b['parameter']) or param_label(b['parameter']))}"
        f" at {html.escape(', '.join(format_value(v) for v in b['undefined_at']))}</li>"
        for key, b in rows
    ]
    out.append("</ul>")
    return "".join(out)


def _is_base(value: Any, base: Any) -> bool:
    return at_base_value({"base_value": base, "values": [value]}) != []


def _ends_at_base(result: SweepResult, tornado: dict[str, list[dict[str, Any]]]) -> str:
    """The one-way bars with an end at the parameter's base value (one-sided: that end is
    the base case, so the bar shows only the other end's effect, not a small effect of
    the whole range); each parameter once, as the tornado figures label it."""
    plan = result.plan
    names = parameter_labels(plan)
    ends = {n for n, sp in plan.spec.design.parameters.items() if len(sp.points()) <= 2}
    seen: dict[str, dict[str, Any]] = {}
    for key, bars in tornado.items():
        for b in bars[1:]:
            name = b["parameter"]
            if name in ends and _touches(plan, name, key) and at_base_value(b):
                seen.setdefault(name, b)
    if not seen:
        return ""
    out = [
        f"<p>One-sided bars ({AT_BASE_END}: that end is the base case itself, so the bar"
        " shows only the effect of moving the parameter to its other end, not the effect"
        " of its whole range):</p><ul>"
    ]
    for name, b in seen.items():
        at = at_base_value(b)
        other = ", ".join(format_value(v) for v in b["values"] if v not in at)
        out.append(
            f"<li>{html.escape(names.get(name) or param_label(name))}: "
            f"{html.escape(', '.join(format_value(v) for v in at))} is the base value"
            + (f"; its bar shows only the effect of {html.escape(other)}" if other else "")
            + "</li>"
        )
    out.append("</ul>")
    return "".join(out)


def error_bars_text(design: str) -> str:
    """What the error bars of a design's figures are (each figure's axis or title says
    it too), as HTML."""
    if design == "one_way":
        return (
            "Error bars of the tornado and line figures: the 95% interval of each point's"
            " difference from the base case, paired on the same patients (drawn around the"
            " point); an outcome without a per-patient difference (a median, a rate) shows"
            " the point's own 95% Monte Carlo error instead, as each figure's axis says."
            " A tornado's grey bar is the range of the outcome over the parameter's two"
            " values, not an uncertainty."
        )
    if design == "grid":
        return (
            "Error bars of the grid figures: each point's 95% Monte Carlo error (1.96"
            " standard errors)."
        )
    if design in ("sobol", "morris"):
        return (
            "Error bars of the index figures: 95% bootstrap confidence intervals of the"
            " indices (SALib), not the Monte Carlo error of the points."
        )
    return (
        "The PSA figures draw no Monte Carlo error bars: each point of psa_scatter.png is"
        " one draw's mean over its patients (the draws' mean inner-loop Monte Carlo"
        " standard errors are in sweep.json, analysis.psa.mean_inner_mc_se), the CEAC,"
        " CEAF and EVPI are shares and means over the draws, and the only error bars, on"
        " the EVPPI panel of evppi.png, are &plusmn; 1 standard error from resampling the"
        " draws (without refitting the metamodels)."
    )


def _distribution(spec: dict[str, Any]) -> tuple[str, str]:
    """A PSA parameter's distribution as the sweep file gives it: (type, its parameters)."""
    kind = str(spec.get("dist", ""))
    rest = []
    for k, v in spec.items():
        if k == "dist":
            continue
        text = "[" + ", ".join(format_value(x) for x in v) + "]" if isinstance(v, list) else None
        rest.append(f"{k} {text if text is not None else format_value(v)}")
    return kind, ", ".join(rest)


def settings_html(result: SweepResult, data: dict[str, Any]) -> str:
    """What an assessor needs to reproduce the sweep: the sweep file, the simulator's
    version, seed and sizes; the base scenario's economics (willingness to pay, discount
    rate, cost-effectiveness horizon, perspective, price year: the compare report's
    ``economics_basis``); for a PSA each parameter's distribution (as the sweep file
    gives it), the correlation and the parameters of each EVPPI group."""
    plan = result.plan
    econ = data["economics"]
    cur = html.escape(econ["currency"])
    spec = data.get("design_spec", {})
    whose = (
        "the base scenario"
        if plan.spec.strategies is None
        else f"the first strategy's scenario ({html.escape(plan.arms[0])})"
    )
    out = [
        "<h2>Settings</h2><ul>",
        f"<li>Sweep file <code>{html.escape(data['sweep_file'])}</code> (design "
        f"<b>{html.escape(data['design'])}</b>, {len(plan.points):,} points, "
        f"{data['patients_per_point']:,} per point and strategy, seed {data['seed']}); "
        f"simulator version <b>{html.escape(data['simulator_version'])}</b>; fingerprint "
        f"<code>{html.escape(data['fingerprint'][:16])}</code>.</li>",
        f"<li>Economics of {whose}: willingness to pay "
        f"<b>{econ['willingness_to_pay_per_qaly']:,.0f} {cur} per QALY</b>. "
        f"{html.escape(economics_basis(econ))}</li>",
        "</ul>",
    ]
    if spec.get("type") == "psa":
        names = parameter_labels(plan)
        groups = data["analysis"].get("psa", {}).get("evppi_groups") or spec.get("groups") or {}
        group_of = {m: g for g, members in groups.items() for m in members}
        out.append(
            f"<p>PSA: {spec.get('draws', len(plan.points)):,} draws, each parameter drawn by"
            " inverse CDF of its distribution"
            + (
                " (correlated through a Gaussian copula, correlation matrix below)"
                if spec.get("correlation")
                else " (independently)"
            )
            + ".</p><table><tr><th>parameter</th><th>path in the scenario</th>"
            "<th>distribution</th><th>its parameters (as in the sweep file)</th>"
            "<th>EVPPI group</th></tr>"
        )
        for name, dist in spec.get("parameters", {}).items():
            kind, params = _distribution(dist)
            out.append(
                f"<tr><td style='text-align:left'>{html.escape(names.get(name, name))}</td>"
                f"<td style='text-align:left'><code>{html.escape(name)}</code></td>"
                f"<td style='text-align:left'>{html.escape(kind)}</td>"
                f"<td style='text-align:left'>{html.escape(params)}</td>"
                f"<td style='text-align:left'>{html.escape(group_of.get(name, ''))}</td></tr>"
            )
        out.append("</table>")
        if spec.get("from_posterior"):
            out.append(
                "<p>Calibrated parameters: each draw takes one row of "
                f"<code>{html.escape(str(spec['from_posterior']))}</code>, resampled by"
                " weight.</p>"
            )
        if spec.get("correlation"):
            cols = list(spec.get("correlation_parameters", spec.get("parameters", {})))
            out.append("<table><tr><th>correlation</th>")
            out += [
                f"<th title='{html.escape(c)}'>{html.escape(names.get(c, c))}</th>" for c in cols
            ]
            out.append("</tr>")
            for c, row in zip(cols, spec["correlation"], strict=False):
                out.append(
                    f"<tr><th style='text-align:left'>{html.escape(names.get(c, c))}</th>"
                    + "".join(f"<td>{format_value(x)}</td>" for x in row)
                    + "</tr>"
                )
            out.append("</table>")
        if not spec.get("groups"):
            out.append("<p>No EVPPI groups given: each parameter is its own group.</p>")
    return "".join(out)


def _num(v: float, digits: int, sign: str = "") -> str:
    """``digits`` significant digits, but whole numbers with thousands separators from
    1,000 up (20,890 rather than 2.089e+04)."""
    if abs(v) >= 1000:
        return f"{v:{sign},.0f}"
    return f"{v:{sign}.{digits}g}"


def _short(value: Any) -> str:
    """A drawn input as people read it (4 significant digits, as the outputs beside it);
    sweep.csv and sweep.json keep every digit."""
    if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
        return f"{value:.4g}"
    return format_value(value)


def _points_table(result: SweepResult, limit: int = 60) -> str:
    """The points as a table: parameters, then each output with its 95% Monte Carlo
    interval and, in one-way sweeps, its paired difference from the base case with a 95%
    interval (the first ``limit`` points; all are in sweep.csv)."""
    plan = result.plan
    paired = result.analysis.get("paired_vs_base")
    labels = _labels(plan)
    readable = parameter_labels(plan)
    names = plan.parameter_names
    keys = plan.output_keys
    one_way = plan.spec.design.type == "one_way"
    out = ["<h2>Points</h2><div style='overflow-x:auto'><table><tr><th>point</th>"]
    out += [f"<th title='{html.escape(n)}'>{html.escape(readable[n])}</th>" for n in names]
    out += [f"<th>{html.escape(_key_label(k, labels))}</th>" for k in keys]
    out.append("</tr>")
    for i, (pt, o) in enumerate(zip(plan.points[:limit], result.outputs[:limit], strict=False)):
        cells = [f"<td>{i}</td>"]
        cells += [
            f"<td>{html.escape(_short(pt[n]) if n in pt else 'base')}"
            + (
                "<br><small>(the base value)</small>"
                if one_way and n in pt and _is_base(pt[n], plan.base_values.get(n))
                else ""
            )
            + "</td>"
            for n in names
        ]
        for k in keys:
            v, se = o.get(k), o.get(k + "_se")
            if v is None or v != v:
                cells.append("<td></td>")
                continue
            half = "" if se is None or se != se else f" &plusmn; {_num(1.96 * se, 3)}"
            d = paired[i].get(k) if paired is not None else None
            diff = (
                ""
                if d is None or None in d["ci95"]
                else (
                    f"<br><small>&Delta; {_num(d['mean_difference'], 3, '+')} "
                    f"({_num(d['ci95'][0], 3, '+')} to {_num(d['ci95'][1], 3, '+')})</small>"
                )
            )
            cells.append(f"<td>{_num(v, 4)}{half}{diff}</td>")
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
