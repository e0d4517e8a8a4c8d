"""A run's output folder: summary.json, report.html and figures, from a finished run
(``simulator.jobs.run_to_folder`` runs a scenario and streams patients.csv and
events.csv with the writers of ``tables.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..center_stats import CENTER_METRICS
from ..runner import RunResult
from ..scenario import Scenario
from . import center_report, figures
from .atomic import write_json
from .tables import WARN_CSS

__all__ = ["CENTER_FILES", "OUTPUT_FILES", "write_outputs"]

OUTPUT_FILES = (
    "summary.json",
    "report.html",
    "patients.csv",
    "cpk.png",
    "time_to_normal.png",
    "myoglobin.png",
    "prednisone.png",
)
CENTER_FILES = center_report.CENTER_FILES
"""The figures a run with an infusion center (``center:``) writes besides OUTPUT_FILES."""


def write_outputs(result: RunResult, folder: str | os.PathLike[str]) -> None:
    """summary.json and the figures of a finished run, into an existing folder."""
    folder = Path(folder)
    data = result.summary_json()
    write_json(folder / "summary.json", data)
    name = result.scenario.name
    plan = result.plan
    figures.enzyme_bands(
        [(name, data["cpk_by_month"])],
        plan.cpk_uln,
        "CPK (U/L)",
        folder / "cpk.png",
        f"CPK by month: {name}",
    )
    figures.enzyme_bands(
        [(name, data["myoglobin_by_month"])],
        plan.myoglobin_uln,
        "myoglobin (ng/mL)",
        folder / "myoglobin.png",
        f"Myoglobin by month: {name}",
    )
    figures.km_curves(
        [(name, data["kaplan_meier"]["time_to_cpk_normal_days"])],
        folder / "time_to_normal.png",
        f"Time to CPK normalisation (Kaplan-Meier): {name}",
        "proportion with CPK < ULN at a visit",
        plan.horizon_days,
    )
    figures.prednisone_lines(
        [(name, data["prednisone_by_month"])], folder / "prednisone.png", f"Prednisone dose: {name}"
    )
    if result.center is not None and result.scenario.center is not None:
        center_report.write_run_figures(
            result.center, data["center"], result.scenario.center, folder, name
        )
    (folder / "report.html").write_text(_html(result, data, folder), encoding="utf-8")


def run_extrapolation_note(scn: Scenario, metrics: dict[str, dict[str, Any]]) -> str | None:
    """``comparison.extrapolation_note`` for one run, from its metrics: IVIG still given
    in the horizon's last year, which the lifetime rows cut off."""
    from ..comparison import extrapolation_note
    from ..outcomes import cea_columns

    return extrapolation_note([scn.name], [scn], [metrics], cea_columns(scn)[0])


def _html(result: RunResult, data: dict[str, Any], folder: Path) -> str:
    """A self-contained page (figures inline, no network) for readers of a single run."""
    import html

    from .atomic import png_figure
    from .tables import format_estimate

    scn = result.scenario
    econ = scn.economics
    center = data.get("center") if scn.center is not None else None
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(scn.name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;"
        "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
        "font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
        "td:nth-child(3),td:nth-child(4){white-space:nowrap}"
        f"img{{max-width:100%}}small{{color:#555}}{WARN_CSS}</style></head><body>",
        f"<h1>{html.escape(scn.name)}</h1>",
        f"<p>{html.escape(scn.description or '')}</p>",
        (
            f"<p>{data['patients']:,} virtual patients, seed {data['seed']}, followed "
            f"{scn.horizon_days:,} days from diagnosis. Simulator "
            if center is None
            else f"<p>{center['replications']:,} simulated infusion center"
            f"{'' if center['replications'] == 1 else 's'} "
            f"({center['patients_simulated']:,} new patients in all), seed {data['seed']}; "
            f"each patient is followed {scn.horizon_days:,} days from diagnosis. Simulator "
        ),
        f"{html.escape(data['simulator_version'])}. Costs and QALYs are discounted at "
        f"{100 * econ.discount_rate_per_year:g}% a year ({html.escape(econ.currency)}, "
        f"prices of {econ.price_year}, {html.escape(econ.perspective)}); the lifetime "
        "rows carry each surviving patient's last state forward to death "
        "(docs/model.md, section 5). Net monetary benefit is at "
        f"{econ.willingness_to_pay_per_qaly:,.0f} {html.escape(econ.currency)} per QALY, on the "
        + (
            "lifetime costs and QALYs"
            if econ.cea_horizon == "lifetime"
            else f"costs and QALYs of the simulated {scn.horizon_days:,} days only"
        )
        + " (economics.cea_horizon).</p>",
    ]
    note = run_extrapolation_note(scn, data["metrics"])
    if note:
        out.append(f'<p class="warn">{html.escape(note)}</p>')
    if center is not None:
        out.append(center_report.run_section(data["metrics"], center, scn.center, folder))
    out.append(
        ("<h2>Outcomes</h2>" if center is None else "<h2>Patient outcomes</h2>")
        + "<table><tr><th>outcome</th><th>unit</th><th>estimate</th>"
        "<th>95% CI</th><th>estimator</th></tr>"
    )
    for key, m in data["metrics"].items():
        if center is not None and key in CENTER_METRICS:
            continue  # in the section "Infusion center"
        lo, hi = m["ci95"]
        unit = m["unit"]
        est = m.get("estimator", "")
        if est == "km_median":
            est = f"Kaplan-Meier median (restricted mean {m['rmst']:.0f} days)"
        out.append(
            f"<tr><td>{html.escape(m['label'])}</td><td>{html.escape(unit)}</td>"
            f"<td>{format_estimate(m['mean'], unit)}</td>"
            f"<td>{format_estimate(lo, unit)} to {format_estimate(hi, unit)}</td>"
            f"<td>{html.escape(est)}</td></tr>"
        )
    out.append("</table>")
    out.append("<h2>Figures</h2>" if center is None else "<h2>Patient figures</h2>")
    for fname, alt in (
        ("cpk.png", "CPK by month"),
        ("myoglobin.png", "myoglobin by month"),
        ("time_to_normal.png", "time to CPK normalisation"),
        ("prednisone.png", "prednisone dose by month"),
    ):
        out.append(png_figure(folder / fname, alt))
    out.append(
        "<p><small>Every outcome is defined in docs/model.md, section 5; every "
        "default with its source in section 7. summary.json holds these numbers and "
        "the resolved scenario; patients.csv one row per patient.</small></p>"
        "</body></html>\n"
    )
    return "".join(out)
