"""The "Infusion center" section of a run's and of a comparison's report.html, and its
figures (``center_figures.py``), for scenarios with a ``center:`` block. Runs and
comparisons without a center get nothing from here: their outputs do not change."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..center_stats import CENTER_METRICS, CenterRecord, center_summary
from . import center_figures
from .atomic import png_figure
from .center_figures import CenterMarks
from .tables import format_difference, format_estimate

__all__ = [
    "CENTER_COMPARISON_FILES",
    "CENTER_FILES",
    "compare_section",
    "describe_center",
    "run_section",
    "write_compare_figures",
    "write_run_figures",
]

log = logging.getLogger(__name__)

CENTER_FILES = ("center_utilisation.png", "center_queue.png", "center_stock.png")
"""Figures a run with a center adds to its folder (none without a center)."""
CENTER_COMPARISON_FILES = ("center_by_arm.png",)
"""Figures a comparison of center scenarios adds to its folder."""

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_PRIORITY = {
    "fifo": "the queue for a chair is served by due day",
    "rescue_first": "patients on rescue IVIG go first in the queue for a chair",
    "new_first": "patients in their first IVIG cycle go first in the queue for a chair",
}


def _hour(h: float) -> str:
    minutes = round(h * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")


def describe_center(center: Any) -> str:
    """The center of a scenario (``scenario.center.Center``) in one paragraph of plain
    text: chairs and opening hours, arrivals, IVIG supply, and the policy."""
    days = center.open_weekdays
    when = (
        "every day"
        if days == 7
        else ("on Mondays" if days == 1 else f"{_WEEKDAYS[0]} to {_WEEKDAYS[days - 1]}")
    )
    start, end = center.open_hours
    chairs = (
        f"{_plural(center.chairs, 'chair')} open {when}, {_hour(start)}-{_hour(end)}"
        if center.chairs is not None
        else f"unlimited chairs, open {when}, {_hour(start)}-{_hour(end)}"
    )
    arr = center.arrivals
    arrivals = (
        f"new patients arrive at random (Poisson), {arr.per_year:g} a year for "
        f"{_plural(arr.years, 'year')}"
        if arr.cohort is None
        else f"a cohort of {arr.cohort:,} patients arrives on day 0"
    )
    st = center.stock
    if st.initial_g is None:
        supply = "IVIG stock is unlimited"
    else:
        supply = f"IVIG stock starts at {st.initial_g:,.0f} g"
        dl = st.deliveries
        if dl is None:
            supply += " and is never restocked"
        else:
            every = _plural(dl.every_days, "day")
            order = (
                f"an order of {dl.lot_g:,.0f} g"
                if dl.lot_g is not None
                else f"an order up to {dl.order_up_to_g:,.0f} g (stock plus orders)"
            )
            supply += f"; every {every} {order} is placed, delivered "
            supply += (
                f"{_plural(dl.lead_time_days, 'day')} later" if dl.lead_time_days else "at once"
            )
            for s in st.shortages:
                supply += (
                    f"; deliveries on days {s.from_day:,}-{s.until_day - 1:,} bring "
                    f"{100 * s.supply_factor:.0f}% of the order"
                )
    pol = center.policy
    short = {
        "delay": "is delayed to the next opening day",
        "reduce": (
            "is given at a reduced dose if the stock holds at least "
            f"{100 * pol.reduce_min_fraction:.0f}% of it, else delayed"
        ),
        "skip": "is skipped with the rest of its cycle",
    }[pol.when_short]
    policy = f"an infusion day the center cannot give on its due day {short}"
    if pol.max_delay_days is not None:
        policy += f", and skipped if not given within {_plural(pol.max_delay_days, 'day')}"
    policy += f"; {_PRIORITY[pol.priority]}"
    if pol.reserve_g > 0:
        policy += f", and {pol.reserve_g:,.0f} g of stock are kept for them"
    text = f"{chairs}; {arrivals}; {supply}; {policy}."
    return text[0].upper() + text[1:]


def _ci(ci: Sequence[Any], unit: str) -> str:
    lo, hi = ci
    if lo is None or hi is None:
        return "n/a"
    return f"{format_estimate(lo, unit)} to {format_estimate(hi, unit)}"


def _caption(path: Path, alt: str, caption: str) -> str:
    return png_figure(path, alt).replace(
        "</figure>", f"<figcaption><small>{html.escape(caption)}</small></figcaption></figure>"
    )


def _centers(n: int) -> str:
    return f"{n:,} simulated center" + ("" if n == 1 else "s")


# --------------------------------------------------------------------------------------
# A run
# --------------------------------------------------------------------------------------


def write_run_figures(
    rec: CenterRecord, section: dict[str, Any], center: Any, folder: Path, name: str
) -> None:
    """The figures of ``CENTER_FILES`` into ``folder``, from the run's center record and
    its summary.json ``center`` section."""
    marks = CenterMarks.of(center, rec.replications)
    by_month = section["by_month"]
    hours = rec.series.get("chair_hours") if center.chairs is None else None
    center_figures.utilisation(
        by_month,
        marks,
        folder / "center_utilisation.png",
        f"Chair {'utilisation' if center.chairs is not None else 'hours used'} by month: {name}",
        center_figures.band(np.asarray(hours, dtype=float)) if hours is not None else None,
    )
    center_figures.queue(
        by_month,
        np.asarray(rec.waits, dtype=float),
        section["waits_pooled_days"],
        marks,
        folder / "center_queue.png",
        f"Queue: {name}",
    )
    center_figures.stock(
        by_month, marks, folder / "center_stock.png", f"IVIG stock and use by month: {name}"
    )
    log.debug("center figures written to %s", folder)


def _window(center: Any) -> str:
    arr = center.arrivals
    if arr.cohort is not None:
        return "the whole run"
    return f"the {_plural(arr.years, 'year')} of arrivals"


def run_section(
    metrics: dict[str, dict[str, Any]], section: dict[str, Any], center: Any, folder: Path
) -> str:
    """The "Infusion center" section of a run's report: the center, its metrics (mean
    and 95% CI over center replications), the pooled waits and IVIG, and the figures."""
    reps = int(section["replications"])
    out = [
        "<h2>Infusion center</h2>",
        f"<p>{html.escape(describe_center(center))}</p>",
        (
            f"<p>Each of the {_centers(reps)} is one replication, with its own arrivals "
            if reps != 1
            else "<p>One center was simulated (one replication: no confidence intervals) "
        )
        + f"({section['patients_simulated']:,} new patients in all). Chair utilisation, IVIG "
        f"per month, stock-out days and nurse hours count {html.escape(_window(center))}; "
        "waits, delays, reductions and skips the whole run (until the last patients have "
        "finished their follow-up).</p>",
        f"<table><tr><th>center measure</th><th>unit</th><th>mean over {_centers(reps)}</th>"
        "<th>95% CI</th></tr>",
    ]
    for key in CENTER_METRICS:
        m = metrics.get(key)
        if m is None:
            continue
        unit = m["unit"]
        out.append(
            f"<tr><td>{html.escape(m['label'])}</td><td>{html.escape(unit)}</td>"
            f"<td>{format_estimate(m['mean'], unit)}</td><td>{_ci(m['ci95'], unit)}</td></tr>"
        )
    out.append(
        "</table><p><small>Mean over the simulated centers with a Student-t 95% confidence "
        "interval over centers (n/a with a single center); a proportion's interval is cut "
        "at 0% and 100%, a count's at 0. The 95th percentile of waits is each center's own, "
        "averaged over centers.</small></p>"
    )
    w = section["waits_pooled_days"]
    g = section["grams"]
    if w["n"]:
        out.append(
            f"<p>Pooled over all centers: {w['n']:,} infusion days waited on average "
            f"{w['mean']:.3g} days (median {w['median']:.3g}, 95th percentile "
            f"{w['p95']:.3g}, longest {w['max']:.3g} days); "
            f"{100 * w['share_waiting_over_1_day']:.1f}% waited more than a day. "
        )
    else:
        out.append("<p>No infusion day was given at any center. ")
    out.append(f"IVIG: {g['given']:,.0f} g given")
    if g["delivered"]:
        out.append(
            f", {g['delivered']:,.0f} g delivered (the initial stock included), "
            f"{g['left']:,.0f} g left at the end of the runs"
        )
    out.append(" (all centers together).</p>")
    out.append("<h3>Center figures</h3>")
    band = (
        f"line: mean over {_centers(reps)}; band: 5th-95th percentile of centers"
        if reps != 1
        else "line: the one simulated center"
    )
    arrivals = (
        " The dash-dot line is the last day a new patient can arrive; the center then "
        "treats the patients it has."
        if center.arrivals.cohort is None
        else ""
    )
    out.append(
        _caption(
            folder / "center_utilisation.png",
            "chair utilisation by month",
            (
                "Chair utilisation by 4-week month of center time: chair hours in use over "
                f"the chair hours the center was open ({band}); dashed: 100%.{arrivals}"
                if center.chairs is not None
                else "The center has unlimited chairs, so no utilisation: chair hours used "
                f"per 4-week month of center time instead ({band}).{arrivals}"
            ),
        )
    )
    out.append(
        _caption(
            folder / "center_queue.png",
            "backlog by month and waits per infusion day",
            "Top: infusion days past their due day and not yet given, counted at the end "
            f"of each day and averaged over the month ({band}). Bottom: the wait of every "
            f"infusion day of all {_centers(reps)} pooled ({w['n']:,} days), from the "
            "opening hour of the day it was due to its start, as a share of infusion days; "
            "solid: mean, dashed: 95th percentile of the pooled waits.",
        )
    )
    out.append(
        _caption(
            folder / "center_stock.png",
            "IVIG stock and grams given by month",
            (
                "Top: IVIG in stock at the end of each day, averaged over the month; shaded: "
                "supply shortages; dotted: the level standing orders fill up to (when orders "
                "fill up to a level). Bottom: grams of IVIG given per 4-week month. Both: "
                f"{band}."
                if center.stock.initial_g is not None
                else "The center's IVIG stock is unlimited (top: nothing to show). Bottom: "
                f"grams of IVIG given per 4-week month ({band})."
            ),
        )
    )
    return "".join(out)


# --------------------------------------------------------------------------------------
# A comparison
# --------------------------------------------------------------------------------------


def write_compare_figures(
    records: Sequence[tuple[str, CenterRecord]], center: Any, folder: Path
) -> dict[str, dict[str, Any]]:
    """``center_by_arm.png`` into ``folder``; returns each arm's center summary
    (``center_stats.center_summary``), by arm name."""
    sections = {name: center_summary(rec) for name, rec in records}
    center_figures.arms_overlay(
        [(n, s["by_month"]) for n, s in sections.items()],
        CenterMarks.of(center, max((rec.replications for _, rec in records), default=0)),
        folder / "center_by_arm.png",
        "Infusion center by month",
    )
    return sections


def compare_section(
    outcomes: dict[str, dict[str, Any]],
    names: Sequence[str],
    scenarios: Sequence[Any],
    sections: dict[str, dict[str, Any]],
    folder: Path,
    same_patients: bool = True,
) -> str:
    """The "Infusion center" section of a comparison's report: each arm's center, its
    center metrics with their 95% CIs (and a paired difference from the first arm where
    the comparison has one), and the overlay figure."""
    ref = names[0]
    reps = int(sections[ref]["replications"])
    out = [
        "<h2>Infusion center</h2>",
        f"<p>Every arm simulates the same {_centers(reps)} with the same arrivals (the same "
        "new patients on the same days); each center is one replication.</p>"
        if same_patients
        else f"<p>Every arm simulates {_centers(reps)}, each one replication; the arms differ "
        "in what a comparison must keep the same (see the warning above), so their arrivals "
        "and patients may differ.</p>",
    ]
    texts = [describe_center(s.center) for s in scenarios]
    if all(t == texts[0] for t in texts):
        out.append(f"<p>The center in every arm: {html.escape(texts[0])}</p>")
    else:
        out.append("<ul>")
        for n, t in zip(names, texts, strict=True):
            out.append(f"<li><b>{html.escape(n)}</b>: {html.escape(t)}</li>")
        out.append("</ul>")
    keys = [k for k in CENTER_METRICS if k in outcomes]
    diffs = [n for n in names[1:] if any(outcomes[k]["differences"].get(n) for k in keys)]
    out.append("<table><tr><th>center measure</th>")
    for n in names:
        out.append(f"<th>{html.escape(n)}</th>")
    for n in diffs:
        out.append(f"<th>{html.escape(n)} &minus; {html.escape(ref)}</th>")
    out.append("</tr>")
    for key in keys:
        o = outcomes[key]
        unit = o["unit"]
        out.append(f"<tr><td>{html.escape(o['label'])} <small>({html.escape(unit)})</small></td>")
        for n in names:
            a = o["arms"][n]
            out.append(
                f"<td>{format_estimate(a['mean'], unit)}<br><small>{_ci(a['ci95'], unit)}"
                "</small></td>"
            )
        for n in diffs:
            d = o["differences"].get(n)
            if not d:
                out.append("<td></td>")
                continue
            lo, hi = d["ci95"]
            cls = ""
            if o.get("better") and lo is not None and hi is not None:
                good = lo > 0 if o["better"] == "higher" else hi < 0
                bad = hi < 0 if o["better"] == "higher" else lo > 0
                cls = " class='better'" if good else (" class='worse'" if bad else "")
            out.append(
                f"<td{cls}>{format_difference(d['mean_difference'], unit)}<br><small>"
                f"{format_difference(lo, unit)} to {format_difference(hi, unit)}</small></td>"
            )
        out.append("</tr>")
    paired = (
        f" Differences from {html.escape(ref)} are paired replication by replication"
        " (each arm's center k against the reference's center k), with a Student-t 95% CI"
        " over centers."
        if diffs
        else ""
    )
    out.append(
        f"</table><p><small>Each arm: mean over its {_centers(reps)} with a Student-t 95% "
        f"confidence interval over centers (n/a with a single center).{paired}</small></p>"
    )
    out.append(
        _caption(
            folder / "center_by_arm.png",
            "chair utilisation and backlog by month, every arm",
            "Chair utilisation (top; dashed: 100%) and infusion days past their due day "
            "(bottom; counted at the end of each day, averaged over the month) by 4-week "
            f"month of center time, one colour per arm: line, mean over {_centers(reps)}; "
            "band, 5th-95th percentile of centers.",
        )
    )
    return "".join(out)
