"""Output folder of a comparison: comparison.json/.csv, figures and report.html."""

from __future__ import annotations

import csv
import html
import io
import os
from pathlib import Path
from typing import Any

from ..center_stats import CENTER_METRICS
from ..comparison import ComparisonResult
from ..outcomes import HEADLINE
from . import center_report, figures
from .atomic import json_roundtrip, png_figure, write_json
from .tables import WARN_CSS, format_difference, format_money_difference, format_value
from .tables import format_estimate as _fmt

__all__ = ["CENTER_COMPARISON_FILES", "COMPARISON_FILES", "write_comparison"]

COMPARISON_FILES = (
    "comparison.json",
    "comparison.csv",
    "incremental_analysis.csv",
    "report.html",
    "ce_plane.png",
    "km_cpk_normal.png",
    "km_prednisone_5mg.png",
    "cpk_by_arm.png",
    "prednisone_by_arm.png",
)
CENTER_COMPARISON_FILES = center_report.CENTER_COMPARISON_FILES
"""The figures a comparison of scenarios with an infusion center writes besides
COMPARISON_FILES."""


def _csv_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = [
        [
            "outcome",
            "label",
            "unit",
            "better",
            "arm",
            "estimator",
            "estimate",
            "ci95_low",
            "ci95_high",
            "difference_estimator",
            "difference_vs_" + data["reference_arm"],
            "difference_ci95_low",
            "difference_ci95_high",
            "pct_better_or_higher",
            "pct_worse_or_lower",
            "pct_unchanged",
            "pct_cannot_tell_censored",
        ]
    ]
    for name, o in data["outcomes"].items():
        for arm, a in o["arms"].items():
            d = o["differences"].get(arm)
            lo, hi = a["ci95"]
            row = [
                name,
                o["label"],
                o["unit"],
                o["better"] or "",
                arm,
                o["estimator"],
                format_value(a["mean"]) if a["mean"] is not None else "",
                _f(lo),
                _f(hi),
                o["difference_estimator"] if d is not None else "",
            ]
            if d is None:
                row += ["", "", "", "", "", "", ""]
            else:
                up = d.get("better_pct", d.get("higher_pct"))
                down = d.get("worse_pct", d.get("lower_pct"))
                row += [
                    _f(d["mean_difference"]),
                    _f(d["ci95"][0]),
                    _f(d["ci95"][1]),
                    _f(up),
                    _f(down),
                    _f(d["same_pct"]),
                    _f(d.get("undetermined_pct")),
                ]
            rows.append(row)
    return rows


def row_label(o: dict[str, Any]) -> str:
    """The outcome's label, naming the difference's estimator when it is not the arms'."""
    est = o.get("difference_estimator", "")
    if est.startswith("rmst_difference_to_day_"):
        day = est.rsplit("_", 1)[-1]
        return str(o["label"]).replace("(KM median)", f"(KM median; difference: mean to day {day})")
    return str(o["label"])


def _f(x: Any) -> str:
    return "" if x is None else format_value(x)


def _figures(result: ComparisonResult, data: dict[str, Any], folder: Path) -> None:
    names = result.names
    horizon = result.summaries[0].months[-1] * 28 if result.summaries[0].months else 0
    horizon = float(result.scenarios[0].horizon_days or horizon)
    uln = result.scenarios[0].disease.enzymes.cpk_uln_u_per_l
    km = data["kaplan_meier"]
    figures.km_curves(
        [(n, km[n]["time_to_cpk_normal_days"]) for n in names],
        folder / "km_cpk_normal.png",
        "Time to CPK normalisation",
        "proportion with CPK < ULN at a visit",
        horizon,
    )
    figures.km_curves(
        [(n, km[n]["time_to_prednisone_le_5mg_days"]) for n in names],
        folder / "km_prednisone_5mg.png",
        "Time to prednisone <= 5 mg/day",
        "proportion on <= 5 mg/day",
        horizon,
    )
    figures.enzyme_bands(
        [(n, data["cpk_by_month"][n]) for n in names],
        uln,
        "CPK (U/L)",
        folder / "cpk_by_arm.png",
        "CPK by month: median and 5-95% band",
    )
    figures.prednisone_lines(
        [(n, data["prednisone_by_month"][n]) for n in names],
        folder / "prednisone_by_arm.png",
        "Mean daily prednisone",
    )
    ia = data["economics"]["incremental_analysis"]
    figures.ce_plane(
        ia["rows"],
        ia["willingness_to_pay_per_qaly"],
        ia["currency"],
        ia["optimal_strategy"],
        folder / "ce_plane.png",
        "Cost-effectiveness plane",
        data["economics"]["horizon"],
    )


STATUS = {"ND": "on the frontier", "ED": "extendedly dominated", "D": "dominated", "": ""}


def incremental_rows(ia: dict[str, Any]) -> list[list[str]]:
    """incremental_analysis.csv: dampack's columns, then NMB and its difference from the
    optimal strategy."""
    rows = [
        [
            "strategy",
            "cost",
            "qaly",
            "inc_cost",
            "inc_qaly",
            "icer",
            "status",
            "net_monetary_benefit",
            "nmb_vs_optimal",
            "nmb_vs_optimal_ci95_low",
            "nmb_vs_optimal_ci95_high",
            "optimal_from_wtp",
            "optimal_to_wtp",
            "optimal",
            "willingness_to_pay_per_qaly",
            "currency",
        ]
    ]
    for r in ia["rows"]:
        d = r["net_monetary_benefit_vs_optimal"]
        rng = r["optimal_for_wtp"] or [None, None]
        rows.append(
            [
                r["strategy"],
                _f(r["cost"]),
                _f(r["effect"]),
                _f(r["inc_cost"]),
                _f(r["inc_effect"]),
                _f(r["icer"]),
                r["status"],
                _f(r["net_monetary_benefit"]),
                "0" if d is None else _f(d["mean_difference"]),
                "" if d is None else _f(d["ci95"][0]),
                "" if d is None else _f(d["ci95"][1]),
                _f(rng[0]),
                _f(rng[1]),
                "1" if r["strategy"] == ia["optimal_strategy"] else "0",
                _f(ia["willingness_to_pay_per_qaly"]),
                ia["currency"],
            ]
        )
    return rows


def economics_basis(ia: dict[str, Any]) -> str:
    """One sentence on what the costs and QALYs are: horizon, discounting, perspective and
    price year."""
    horizon = (
        "a lifetime horizon (the simulated years, then the last state carried "
        "forward to death; docs/model.md section 5, Lifetime)"
        if ia.get("horizon") == "lifetime"
        else "the simulated horizon only"
    )
    rate = 100 * ia.get("discount_rate_per_year", 0.0)
    return (
        f"Costs and QALYs over {horizon}, discounted at {rate:g}% a year; perspective: "
        f"{ia.get('perspective', '')}; prices of {ia.get('price_year', '')} in "
        f"{ia['currency']}."
    )


def incremental_html(ia: dict[str, Any]) -> str:
    cur = html.escape(ia["currency"])
    wtp = ia["willingness_to_pay_per_qaly"]
    out = [
        f"<h2>Incremental analysis</h2><p>Strategies sorted by cost; dominated (more "
        f"costly, not more effective than another) and extendedly dominated (a mix of two "
        f"others would do better) strategies are set aside, and ICERs are computed along "
        f"the efficiency frontier (as dampack's <code>calculate_icers</code>). At "
        f"{wtp:,.0f} {cur}/QALY the optimal strategy, with the highest net monetary "
        f"benefit, is <b>{html.escape(ia['optimal_strategy'])}</b>.</p>",
        f"<p>{html.escape(economics_basis(ia))}</p>",
        *(
            [f"<p>{html.escape(ia['disease_parameters'])}</p>"]
            if ia.get("disease_parameters")
            else []
        ),
        *(
            [f'<p class="warn">{html.escape(ia["extrapolation"])}</p>']
            if ia.get("extrapolation")
            else []
        ),
        f"<table><tr><th>strategy</th><th>cost ({cur})</th><th>QALYs</th>"
        f"<th>incremental cost</th><th>incremental QALYs</th><th>ICER ({cur}/QALY)</th>"
        f"<th>status</th><th>optimal for willingness to pay ({cur}/QALY)</th>"
        f"<th>net monetary benefit vs optimal (95% CI)</th></tr>",
    ]
    for r in ia["rows"]:
        d = r["net_monetary_benefit_vs_optimal"]
        rng = r["optimal_for_wtp"]
        span = (
            ""
            if rng is None
            else (
                f"{rng[0]:,.0f} to {rng[1]:,.0f}"
                if rng[1] is not None
                else f"{rng[0]:,.0f} and above"
            )
        )
        nmb = "optimal" if d is None else format_money_difference(d)
        out.append(
            f"<tr><td>{html.escape(r['strategy'])}</td><td>{r['cost']:,.0f}</td>"
            f"<td>{r['effect']:.4f}</td>"
            f"<td>{'' if r['inc_cost'] is None else format(r['inc_cost'], ',.0f')}</td>"
            f"<td>{'' if r['inc_effect'] is None else format(r['inc_effect'], '.4f')}</td>"
            f"<td>{'' if r['icer'] is None else format(r['icer'], ',.0f')}</td>"
            f"<td>{STATUS[r['status']]}</td><td>{span}</td><td>{nmb}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _html(
    result: ComparisonResult,
    data: dict[str, Any],
    folder: Path,
    center: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The report; ``center`` (each arm's ``center_summary``, by name) adds the section
    "Infusion center" for comparisons of scenarios with a center."""
    names = data["arms"]
    ref = data["reference_arm"]
    out = io.StringIO()
    w = out.write
    w("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>")
    w(f"<title>Strategy comparison: {html.escape(' vs '.join(names))}</title>")
    w(
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:14px}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
        "td:first-child,th:first-child{text-align:left}.better{color:#0072B2}"
        ".worse{color:#D55E00}figure{margin:1em 0}img{max-width:100%}"
        f"small{{color:#555}}{WARN_CSS}</style></head><body>"
    )
    w(f"<h1>{html.escape(' vs '.join(names))}</h1>")
    who = f"{data['patients']:,} virtual patients"
    if center is not None:
        reps = center[ref]["replications"]
        who = f"{reps:,} simulated infusion center{'' if reps == 1 else 's'}"
        if data["same_patients"]:
            who += f" ({center[ref]['patients_simulated']:,} new patients in all)"
    if data["same_patients"]:
        w(
            f"<p>{who}, seed {data['seed']}, the same patients "
            f"in every arm (common random numbers), each followed "
            f"{data['horizon_days'][ref]:,} days from diagnosis. Differences are against "
            f"<b>{html.escape(ref)}</b>, with intervals that use the pairing of the patients "
            "(see Outcomes). Simulator "
            f"{html.escape(data['simulator_version'])}; every arm's scenario as run is in "
            "comparison.json (resolved_scenarios).</p>"
        )
    else:
        w(
            "<p style='border:2px solid #a11;padding:0.6em'><b>Warning: the arms are not the "
            "same patients.</b> They were compared with --allow-different-populations although "
            "they differ in what a comparison must keep the same, so differences between arms "
            "mix treatment effects with these differences:</p><ul>"
        )
        for line in data["arm_differences"]:
            w(f"<li><code>{html.escape(line)}</code></li>")
        w(
            f"</ul><p>{who} per arm, seed {data['seed']}; "
            f"differences against <b>{html.escape(ref)}</b>. Simulator "
            f"{html.escape(data['simulator_version'])}.</p>"
        )
    w("<h2>Strategies</h2><ul>")
    for n, scn in zip(names, result.scenarios, strict=True):
        desc = html.escape(scn.description or "")
        w(f"<li><b>{html.escape(n)}</b>: {desc}</li>")
    w("</ul>")
    econ = data["economics"]
    cur = html.escape(econ["currency"])
    w(incremental_html(econ["incremental_analysis"]))
    w(png_figure(folder / "ce_plane.png", "cost-effectiveness plane"))
    w(
        "<h2>Each arm against the first</h2><table><tr><th>arm vs "
        + html.escape(ref)
        + f"</th><th>incremental cost ({cur})</th><th>incremental QALYs</th><th>ICER ({cur}/QALY)"
        f"</th><th>incremental net monetary benefit at {econ['willingness_to_pay_per_qaly']:,.0f}"
        f" {cur}/QALY (95% CI)</th><th>verdict</th></tr>"
    )
    for arm, e in econ["arms"].items():
        nmb = e["incremental_net_monetary_benefit"]
        icer = "n/a" if e["icer_per_qaly"] is None else f"{e['icer_per_qaly']:,.0f}"
        w(
            f"<tr><td>{html.escape(arm)}</td><td>{e['incremental_cost']:+,.0f}</td>"
            f"<td>{e['incremental_qaly']:+.4f}</td><td>{icer}</td>"
            f"<td>{format_money_difference(nmb)}</td><td>{html.escape(e['verdict'])}</td></tr>"
        )
    w("</table>")
    if center is not None:
        w(
            center_report.compare_section(
                data["outcomes"], names, result.scenarios, center, folder, data["same_patients"]
            )
        )
    w(
        ("<h2>Outcomes</h2>" if center is None else "<h2>Patient outcomes</h2>")
        + "<p><small>Estimates with 95% confidence intervals (Monte Carlo "
        "error). For each arm after the first: its difference from "
        f"{html.escape(ref)} (the difference of the two values shown; its 95% CI uses the "
        "pairing of the same patients in both arms: for a proportion Newcombe's paired score "
        "interval), and the percent of the patients with a "
        "value in both arms who are better off / worse off / unchanged (for resource use: "
        "higher / lower / unchanged; none for a rate). Times to an event: the "
        "arm columns are Kaplan-Meier medians, the differences are differences in restricted "
        "mean time (the area under each arm's Kaplan-Meier curve up to the day named in the "
        "row), with a paired interval from each patient's influence on both curves; a "
        "patient is better or worse off only "
        'when the earlier of the two times is the event itself ("cannot tell": the earlier '
        "one is a censoring, a death or the end of follow-up, before which the event had not "
        "happened). A difference in <span class='better'>blue</span> has its whole 95% CI on "
        "the better side, in <span class='worse'>orange</span> on the worse side (none for "
        "outcomes without a better direction: resource use).</small></p>"
    )
    w("<table><tr><th>outcome</th>")
    for n in names:
        w(f"<th>{html.escape(n)}</th>")
    for n in names[1:]:
        w(f"<th>{html.escape(n)} &minus; {html.escape(ref)}</th><th>better / worse / same</th>")
    w("</tr>")
    order = [k for k in HEADLINE if k in data["outcomes"]] + [
        k for k in data["outcomes"] if k not in HEADLINE
    ]
    for key in order:
        if center is not None and key in CENTER_METRICS:
            continue  # in the section "Infusion center"
        o = data["outcomes"][key]
        unit = o["unit"]
        w(f"<tr><td>{html.escape(row_label(o))} <small>({html.escape(unit)})</small></td>")
        for n in names:
            a = o["arms"][n]
            lo, hi = a["ci95"]
            w(
                f"<td>{_fmt(a['mean'], unit)}<br><small>{_fmt(lo, unit)} to {_fmt(hi, unit)}"
                "</small></td>"
            )
        for n in names[1:]:
            d = o["differences"].get(n)
            if d is None:
                w("<td></td><td></td>")
                continue
            cls = ""
            if o["better"] and d["ci95"][0] is not None:
                lo, hi = d["ci95"]
                good = lo > 0 if o["better"] == "higher" else hi < 0
                bad = hi < 0 if o["better"] == "higher" else lo > 0
                cls = " class='better'" if good else (" class='worse'" if bad else "")
            w(
                f"<td{cls}>{format_difference(d['mean_difference'], unit)}<br><small>"
                f"{format_difference(d['ci95'][0], unit)} to"
                f" {format_difference(d['ci95'][1], unit)}</small></td>"
            )
            up = d.get("better_pct", d.get("higher_pct"))
            down = d.get("worse_pct", d.get("lower_pct"))
            if up is None or down is None or d["same_pct"] is None:
                w("<td>n/a</td>")
            else:
                cannot = d.get("undetermined_pct")
                tail = "" if cannot is None else f"<br><small>{cannot:.1f}% cannot tell</small>"
                w(f"<td>{up:.1f}% / {down:.1f}% / {d['same_pct']:.1f}%{tail}</td>")
        w("</tr>")
    w("</table>")
    w("<h2>Figures</h2>" if center is None else "<h2>Patient figures</h2>")
    for fname, alt in (
        ("km_cpk_normal.png", "time to CPK normalisation"),
        ("km_prednisone_5mg.png", "time to prednisone 5 mg/day"),
        ("cpk_by_arm.png", "CPK by month"),
        ("prednisone_by_arm.png", "mean prednisone"),
    ):
        w(png_figure(folder / fname, alt))
    w(
        "<h2>How to read this</h2><p><small>CPK is 'normal' below the ULN at a visit. The "
        "Total Improvement Score (TIS, 0-100) is the 2016 ACR/EULAR score of the six core set "
        "measures against the day-0 visit (minimal >= 20, moderate >= 40, major >= 60). "
        "Disease is inactive with physician global and extramuscular activity at most 1 cm "
        "and CPK below the ULN; a complete clinical response is 6 months inactive. A clinical "
        "relapse is CPK above 1.5 x ULN together with MMT-8 10% below its best or physician "
        "global 2 cm above its best, after CPK had been normal (docs/model.md, section 5). "
        "Costs and QALYs are discounted. The model and every default with its source are "
        "described in docs/model.md.</small></p></body></html>\n"
    )
    return out.getvalue()


def write_comparison(result: ComparisonResult, folder: str | os.PathLike[str]) -> dict[str, Any]:
    folder = Path(folder)
    data = result.to_json()
    write_json(folder / "comparison.json", data)
    with (folder / "comparison.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(_csv_rows(data))
    with (folder / "incremental_analysis.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(
            incremental_rows(data["economics"]["incremental_analysis"])
        )
    _figures(result, data, folder)
    records = [(n, s.center) for n, s in zip(result.names, result.summaries, strict=True)]
    center = None
    if all(rec is not None for _, rec in records) and result.scenarios[0].center is not None:
        center = json_roundtrip(
            center_report.write_compare_figures(
                [(n, rec) for n, rec in records if rec is not None],
                result.scenarios[0].center,
                folder,
            )
        )
    (folder / "report.html").write_text(
        _html(result, json_roundtrip(data), folder, center), encoding="utf-8"
    )
    return data
