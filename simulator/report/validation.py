"""Output folder of `simulate validate`: validation.csv, validation.json, validation.png
(a forest plot of every target: published 95% interval against the simulated value and
its Monte Carlo 95% interval) and report.html."""

from __future__ import annotations

import csv
import html
import os
from pathlib import Path
from typing import Any

from ..studies import TargetResult, share_inside
from .atomic import json_roundtrip, png_figure, write_json
from .figures import COLORS, _quiet, _save, label, subplots

__all__ = ["VALIDATION_FILES", "forest", "forest_of_ranges", "validation_json", "write_validation"]

VALIDATION_FILES = ("validation.csv", "validation.json", "validation.png", "report.html")
COLUMNS = (
    "study",
    "role",
    "label",
    "metric",
    "arm",
    "estimator",
    "published",
    "published_low",
    "published_high",
    "simulated",
    "simulated_low",
    "simulated_high",
    "overlaps",
    "published_inside_simulated",
    "patients",
    "assessed",
    "seed",
    "citation",
)


def _share(results: list[TargetResult], role: str | None = None) -> dict[str, Any]:
    rows = [r for r in results if role is None or r.role == role]
    return {
        "targets": len(rows),
        "overlapping": sum(r.overlaps for r in rows),
        "share": share_inside(rows) if rows else None,
    }


def validation_json(results: list[TargetResult], seed: int | None) -> dict[str, Any]:
    from .._version import __version__

    return {
        "simulator_version": __version__,
        "seed": seed,
        "criterion": "a target is met when the simulated 95% Monte Carlo interval overlaps"
        " the published 95% interval",
        "summary": {
            "all": _share(results),
            "calibration": _share(results, "calibration"),
            "validation": _share(results, "validation"),
        },
        "targets": [r.to_json() for r in results],
    }


def _fmt(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _csv(results: list[TargetResult], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in results:
            row = r.to_json()
            w.writerow(
                [repr(row[c]) if isinstance(row[c], float) else _fmt(row[c]) for c in COLUMNS]
            )


def by_role(rows: list[Any]) -> list[Any]:
    """The calibration targets, then the validation targets (each in their own order):
    what the model was fitted to apart from what it predicts. Rows are TargetResults or
    their JSON dicts."""

    def role(r: Any) -> str:
        return r["role"] if isinstance(r, dict) else r.role

    return sorted(rows, key=lambda r: role(r) != "calibration")


def _unit_scale(r: TargetResult) -> bool:
    vals = [r.published_low, r.published_high, r.simulated_low, r.simulated_high]
    return all(v is None or -1.0 <= v <= 1.5 for v in vals)


def _forest_panel(
    ax: Any, rows: list[TargetResult], title: str, interval: str = "95% MC interval"
) -> None:
    for y, r in enumerate(rows):
        ax.plot(
            [r.published_low, r.published_high],
            [y, y],
            color="#bbbbbb",
            linewidth=7,
            solid_capstyle="butt",
            label="published 95% interval" if y == 0 else None,
        )
        ax.plot(
            [r.published],
            [y],
            marker="|",
            color="black",
            markersize=12,
            label="published value" if y == 0 else None,
        )
        if r.simulated is not None:
            c = COLORS[0] if r.overlaps else COLORS[1]
            lo = r.simulated - (r.simulated_low if r.simulated_low is not None else r.simulated)
            hi = (r.simulated_high if r.simulated_high is not None else r.simulated) - r.simulated
            ax.errorbar(
                [r.simulated],
                [y],
                xerr=[[max(lo, 0.0)], [max(hi, 0.0)]],
                fmt="o",
                color=c,
                capsize=3,
                markersize=5,
            )
    for y in range(1, len(rows)):  # calibration targets above, validation targets below
        if rows[y].role != rows[y - 1].role:
            ax.axhline(y - 0.5, color="#777777", linewidth=0.8, linestyle="--")
    ax.plot([], [], "o", color=COLORS[0], label=f"simulated ({interval}): overlaps")
    ax.plot([], [], "o", color=COLORS[1], label="simulated: does not overlap")
    ax.set_yticks(range(len(rows)))
    tag = {"validation": " [validation]"}  # kept whole when a long label is shortened
    ax.set_yticklabels(
        [
            label(f"{r.study}: {r.label}", 70 - len(tag.get(r.role, ""))) + tag.get(r.role, "")
            for r in rows
        ],
        fontsize=7,
    )
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_xlabel(title, fontsize=8)
    ax.legend(fontsize=7, loc="best")


@_quiet
def forest(
    results: list[TargetResult],
    path: Path,
    interval: str = "95% MC interval",
    title: str = "Simulated vs published",
) -> None:
    """One row per target: the published 95% interval (grey bar, the value as a tick) and
    the simulated value with its Monte Carlo 95% interval (a dot: blue when the intervals
    overlap, vermilion when not). Proportions, ratios and differences of proportions share
    one panel; outcomes on other scales (MMT-8 points, days, costs) get a second one. The
    calibration targets come first and the validation targets after them, below a dashed
    line. ``interval`` names what the simulated interval is, when it is not a Monte Carlo
    one (scripts/posterior_validation.py: the range over posterior draws)."""
    results = by_role(results)
    unit = list(reversed([r for r in results if _unit_scale(r)]))
    other = list(reversed([r for r in results if not _unit_scale(r)]))
    panels = [
        (rows, t)
        for rows, t in (
            (unit, "proportion, ratio or difference of proportions"),
            (other, "the outcome's own unit"),
        )
        if rows
    ]
    heights = [0.42 * len(rows) + 1.2 for rows, _ in panels]
    fig, axes = subplots(
        len(panels),
        1,
        figsize=(10, sum(heights) + 0.6),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, (rows, scale) in zip(axes[:, 0], panels, strict=True):
        _forest_panel(ax, rows, scale, interval)
    n_in = sum(r.overlaps for r in results)
    axes[0, 0].set_title(f"{title}: {n_in} of {len(results)} targets overlap", fontsize=10)
    _save(fig, path)


def forest_of_ranges(rows: list[dict[str, Any]], path: Path, interval: str, title: str) -> None:
    """:func:`forest` of targets predicted as a range rather than simulated once: each row
    a target's description (``study``, ``role``, ``label``, ``metric``, ``arm``,
    ``published``, ``published_low``, ``published_high``) with the prediction's
    ``median``, ``low`` and ``high`` (scripts/posterior_validation.py: over posterior
    draws; scripts/loso_validation.py: without the target's study)."""
    results = [
        TargetResult(
            study=r["study"],
            citation="",
            role=r["role"],
            label=r["label"],
            metric=r["metric"],
            arm=r["arm"],
            estimator="",
            published=r["published"],
            published_low=r["published_low"],
            published_high=r["published_high"],
            simulated=r["median"],
            simulated_low=r["low"],
            simulated_high=r["high"],
            patients=0,
        )
        for r in rows
    ]
    forest(results, path, interval=interval, title=title)


def _html(data: dict[str, Any], folder: Path) -> str:
    s = data["summary"]
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Validation</title><style>body{font-family:system-ui,sans-serif;"
        "max-width:1200px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;"
        "font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 6px;"
        "text-align:right}th{background:#f3f3f3}td.l{text-align:left}img{max-width:100%}"
        ".no{color:#D55E00;font-weight:bold}small{color:#555}</style></head><body>",
        "<h1>Simulated against published studies</h1>",
    ]

    def share(k: str) -> str:
        v = s[k]
        if not v["targets"]:
            return f"{k}: no targets"
        return f"{k}: <b>{v['overlapping']} of {v['targets']}</b> ({100 * v['share']:.0f}%)"

    seeds = sorted({t["seed"] for t in data["targets"] if t.get("seed") is not None})
    out.append(
        f"<p>{html.escape(data['criterion'])}. {share('calibration')}; "
        f"{share('validation')} (targets the model was not fitted to); "
        f"{share('all')}.</p><p><small>Simulator {html.escape(data['simulator_version'])}; "
        + (f"seed {', '.join(map(str, seeds))}" if seeds else "seed: each study's own")
        + " (in validation.csv for each target). Patients: simulated per arm; assessed:"
        " those the estimate is over (for an outcome among entered patients, fewer).</small></p>"
    )
    out.append(png_figure(folder / "validation.png", "validation forest plot"))
    out.append(
        "<table><tr><th>study</th><th>role</th><th>outcome</th><th>arm</th>"
        "<th>published (95% CI)</th><th>simulated (95% MC CI)</th><th>overlap</th>"
        "<th>patients (assessed)</th></tr>"
    )
    heading = {
        "calibration": "calibration targets: the default parameters were fitted to these",
        "validation": "validation targets: not fitted to (external validation)",
    }
    shown = None
    for t in by_role(data["targets"]):
        if t["role"] != shown:
            shown = t["role"]
            out.append(
                f"<tr><th colspan='8' style='text-align:left'>"
                f"{html.escape(heading.get(shown, shown))}</th></tr>"
            )
        sim = (
            ""
            if t["simulated"] is None
            else f"{t['simulated']:.3g} ({t['simulated_low']:.3g} to {t['simulated_high']:.3g})"
        )
        ok = "yes" if t["overlaps"] else "<span class='no'>no</span>"
        out.append(
            f"<tr><td class='l' title='{html.escape(t['citation'])}'>"
            f"{html.escape(t['study'])}</td><td class='l'>{t['role']}</td>"
            f"<td class='l'>{html.escape(t['label'])}<br><small>{html.escape(t['metric'])}"
            f" ({html.escape(t['estimator'])})</small></td><td class='l'>"
            f"{html.escape(t['arm'])}</td><td>{t['published']:.3g} "
            f"({t['published_low']:.3g} to {t['published_high']:.3g})</td><td>{sim}</td>"
            f"<td>{ok}</td><td>{t['patients']:,}"
            + (
                f" ({t['assessed']:,})"
                if t.get("assessed") is not None and t["assessed"] != t["patients"]
                else ""
            )
            + "</td></tr>"
        )
    out.append(
        "</table><p><small>Published intervals from the counts are Wilson 95% "
        "intervals. Citations: hover over a study, or see validation.csv. Every "
        "row is in validation.csv and validation.json.</small></p></body></html>\n"
    )
    return "".join(out)


def write_validation(
    results: list[TargetResult], folder: str | os.PathLike[str], seed: int | None = None
) -> dict[str, Any]:
    folder = Path(folder)
    data = validation_json(results, seed)
    write_json(folder / "validation.json", data)
    _csv(results, folder / "validation.csv")
    forest(results, folder / "validation.png")
    (folder / "report.html").write_text(_html(json_roundtrip(data), folder), encoding="utf-8")
    return data
