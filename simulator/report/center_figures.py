"""Figures of an infusion center (scenarios with a ``center:``), from the ``center``
section of summary.json (``center_stats.center_summary``) and the pooled waits.

Every monthly series is by 4-week month of center time (month 0 starts when the center
opens, not at a patient's diagnosis) and is drawn at the middle of its month: the mean
over the simulated centers as a line, the 5th-95th percentile of centers as a band. Like
``figures.py``, nothing here touches pyplot or global matplotlib state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import ticker

from .figures import COLORS, _quiet, _save, label, subplots

__all__ = [
    "CenterMarks",
    "arms_overlay",
    "band",
    "queue",
    "stock",
    "utilisation",
    "wait_bins",
]

MONTH_AXIS = "4-week month of center time (0 = the center opens)"
BAND = "5th-95th percentile of centers"
_WIDTHS = (1 / 24, 1 / 12, 0.25, 0.5, 1.0, 2.0, 7.0, 14.0, 28.0, 56.0, 91.0, 182.0, 364.0)
_MAX_BINS = 40


@dataclass(frozen=True)
class CenterMarks:
    """What the figures mark on the month axis: the month arrivals stop (None for a
    cohort), supply shortages as (first month, end month, supply factor), and the
    order-up-to level of the standing orders (None: fixed lots or no orders); and how
    many centers were simulated (the legends say it; one center has no band)."""

    arrivals_end_month: float | None = None
    shortages: tuple[tuple[float, float, float], ...] = ()
    order_up_to_g: float | None = None
    centers: int = 0

    @property
    def mean_label(self) -> str:
        if self.centers == 1:
            return "the simulated center"
        return f"mean over {self.centers:,} centers" if self.centers else "mean over centers"

    @property
    def band_label(self) -> str | None:
        return None if self.centers == 1 else BAND

    @classmethod
    def of(cls, center: Any, centers: int = 0) -> CenterMarks:
        """The marks of a scenario's ``center`` block (``scenario.center.Center``) for
        ``centers`` simulated centers."""
        arr = center.arrivals
        end = arr.years * 365.0 / 28.0 if arr.cohort is None else None
        stock = center.stock
        limited = stock.initial_g is not None
        shortages = tuple(
            (s.from_day / 28.0, s.until_day / 28.0, float(s.supply_factor))
            for s in (stock.shortages if limited and stock.deliveries is not None else ())
        )
        up_to = stock.deliveries.order_up_to_g if limited and stock.deliveries else None
        return cls(end, shortages, up_to, centers)


def band(rows: np.ndarray) -> dict[str, list[float | None]]:
    """Mean, 5th and 95th percentile over replications (rows) of a monthly series
    (columns), ignoring NaN; None where a month has no value."""
    out: dict[str, list[float | None]] = {"mean": [], "p05": [], "p95": []}
    for j in range(rows.shape[1]):
        v = rows[:, j]
        v = v[np.isfinite(v)]
        out["mean"].append(float(v.mean()) if v.size else None)
        out["p05"].append(float(np.quantile(v, 0.05)) if v.size else None)
        out["p95"].append(float(np.quantile(v, 0.95)) if v.size else None)
    return out


def _values(xs: Sequence[Any], scale: float = 1.0) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) * scale for v in xs], dtype=float)


def _has(band: Mapping[str, Sequence[Any]]) -> bool:
    return any(v is not None for v in band["mean"])


def _draw_band(
    ax: Any,
    band: Mapping[str, Sequence[Any]],
    color: str,
    mean_label: str,
    band_label: str | None,
    alpha: float = 0.2,
) -> None:
    mean = _values(band["mean"])
    x = np.arange(mean.size) + 0.5
    ax.fill_between(
        x,
        _values(band["p05"]),
        _values(band["p95"]),
        color=color,
        alpha=alpha,
        linewidth=0,
        label=band_label,
    )
    ax.plot(x, mean, color=color, linewidth=1.6, label=mean_label)


def _arrivals_line(ax: Any, marks: CenterMarks, legend: bool = True) -> None:
    if marks.arrivals_end_month is not None:
        ax.axvline(
            marks.arrivals_end_month,
            color="#666666",
            linestyle="-.",
            linewidth=1,
            label="last new patient can arrive" if legend else None,
        )


def _month_axis(ax: Any, months: int) -> None:
    ax.set_xlim(0, max(1, months))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=12, integer=True))
    ax.set_xlabel(MONTH_AXIS)
    ax.grid(True, alpha=0.3)


def _legend_below(ax: Any, ncol: int = 2) -> None:
    ax.legend(
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=ncol,
        frameon=False,
    )


def _note(ax: Any, text: str) -> None:
    ax.set_yticks([])
    ax.text(
        0.5,
        0.5,
        text,
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=10,
        bbox={"facecolor": "white", "edgecolor": "none"},
    )


def _utilisation_axes(ax: Any, top: float) -> None:
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="100% of open chair hours")
    ax.set_ylim(0, max(1.1, top * 1.05))
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=0))
    ax.set_ylabel("chair hours used / open chair hours")


@_quiet
def utilisation(
    by_month: dict[str, Any],
    marks: CenterMarks,
    path: str | os.PathLike[str],
    title: str,
    chair_hours: Mapping[str, Sequence[Any]] | None = None,
) -> None:
    """Chair utilisation by month: mean over centers, 5-95% band, 100% marked. With
    unlimited chairs (no utilisation) the chair hours used per month instead, when
    ``chair_hours`` (a band like ``by_month``'s) is given."""
    fig, ax = subplots(figsize=(8.5, 4.6))
    band = by_month["chair_utilisation"]
    months = len(by_month["month"])
    if _has(band):
        _draw_band(ax, band, COLORS[0], marks.mean_label, marks.band_label)
        p95 = _values(band["p95"])
        _utilisation_axes(ax, float(np.nanmax(p95)) if np.isfinite(p95).any() else 1.0)
        _arrivals_line(ax, marks)
        _legend_below(ax, ncol=4)
    elif chair_hours is not None and _has(chair_hours):
        _draw_band(ax, chair_hours, COLORS[0], marks.mean_label, marks.band_label)
        _arrivals_line(ax, marks)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("chair hours used per 4-week month\n(unlimited chairs: no utilisation)")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        _legend_below(ax, ncol=3)
    else:
        _note(ax, "unlimited chairs (center.chairs: null): no utilisation")
    ax.set_title(label(title))
    _month_axis(ax, months)
    _save(fig, path)


def wait_bins(max_wait: float) -> np.ndarray:
    """Histogram edges for waits up to ``max_wait`` days: the narrowest of 1 h, 2 h,
    6 h, 12 h, 1, 2, 7, 14, 28 ... days that gives at most 40 bins."""
    top = max(float(max_wait), 1 / 24)
    width = next((w for w in _WIDTHS if top / w <= _MAX_BINS), top / _MAX_BINS)
    n = max(1, math.ceil(top / width - 1e-9))
    if n * width <= top:  # the largest wait in the last bin, not on its right edge
        n += 1
    return np.arange(n + 1) * width


def _width_text(width: float) -> str:
    hours = width * 24
    if hours < 23.5:
        return f"{hours:g} h"
    return f"{width:g} day" + ("s" if width != 1 else "")


@_quiet
def queue(
    by_month: dict[str, Any],
    waits: np.ndarray,
    pooled: dict[str, Any],
    marks: CenterMarks,
    path: str | os.PathLike[str],
    title: str,
) -> None:
    """Top: infusion days overdue by month (mean over centers, 5-95% band). Bottom: the
    wait of every infusion day of every center (histogram, share of infusion days), mean
    and 95th percentile marked."""
    fig, (upper, lower) = subplots(2, 1, figsize=(8.5, 8.6))
    band = by_month["backlog"]
    months = len(by_month["month"])
    if _has(band):
        _draw_band(upper, band, COLORS[1], marks.mean_label, marks.band_label)
        _arrivals_line(upper, marks)
        upper.set_ylim(bottom=0)
        _legend_below(upper, ncol=2)
    upper.set_ylabel("infusion days overdue (daily count, month mean)")
    upper.set_title("Backlog: infusion days past their due day", fontsize=11)
    _month_axis(upper, months)

    waits = np.asarray(waits, dtype=float)
    waits = waits[np.isfinite(waits)]
    if waits.size:
        edges = wait_bins(float(waits.max()))
        lower.hist(
            waits,
            bins=edges,
            weights=np.full(waits.size, 1.0 / waits.size),
            color=COLORS[0],
            alpha=0.75,
            label=f"infusion days (bars {_width_text(float(edges[1] - edges[0]))} wide)",
        )
        for key, text, style in (("mean", "mean", "-"), ("p95", "95th percentile", "--")):
            value = pooled.get(key)
            if value is not None:
                lower.axvline(
                    value,
                    color="black",
                    linestyle=style,
                    linewidth=1.2,
                    label=f"{text}: {value:.3g} days",
                )
        lower.set_xlim(0, float(edges[-1]))
        lower.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=0))
        _legend_below(lower, ncol=2)
    else:
        _note(lower, "no infusion days")
    lower.set_xlabel("wait (days from the opening hour of the day due to the start)")
    lower.set_ylabel("share of infusion days")
    lower.set_title(f"Wait per infusion day ({waits.size:,} days of all centers)", fontsize=11)
    lower.grid(True, alpha=0.3)
    fig.suptitle(label(title))
    _save(fig, path)


@_quiet
def stock(
    by_month: dict[str, Any], marks: CenterMarks, path: str | os.PathLike[str], title: str
) -> None:
    """Top: IVIG in stock by month (end-of-day level, month mean), shortages shaded and
    the order-up-to level marked. Bottom: grams given per month."""
    fig, (top, bottom) = subplots(2, 1, figsize=(8.5, 7.4), sharex=True)
    months = len(by_month["month"])
    band = by_month["stock_g"]
    for k, (a, b, factor) in enumerate(marks.shortages):
        for ax in (top, bottom):
            ax.axvspan(
                a,
                b,
                color="#999999",
                alpha=0.18,
                linewidth=0,
                label=(
                    f"supply shortage ({100 * factor:.0f}% of each order arrives)"
                    if k == 0 and ax is top
                    else None
                ),
            )
    if _has(band):
        _draw_band(top, band, COLORS[2], marks.mean_label, marks.band_label)
        if marks.order_up_to_g is not None:
            top.axhline(
                marks.order_up_to_g,
                color="black",
                linestyle=":",
                linewidth=1,
                label=f"orders fill up to {marks.order_up_to_g:,.0f} g",
            )
        top.set_ylim(bottom=0)
    else:
        _note(top, "unlimited IVIG stock (center.stock.initial_g: null)")
    _arrivals_line(top, marks)
    top.set_ylabel("IVIG in stock (g; end of day,\nmean over the month)")
    top.set_title("IVIG stock", fontsize=11)
    top.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=3, frameon=False)

    given = by_month["ivig_g"]
    if _has(given):
        _draw_band(bottom, given, COLORS[4], marks.mean_label, marks.band_label)
    _arrivals_line(bottom, marks, legend=False)
    bottom.set_ylim(bottom=0)
    bottom.set_ylabel("IVIG given (g per 4-week month)")
    bottom.set_title("IVIG given", fontsize=11)
    bottom.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    _month_axis(bottom, months)
    bottom.tick_params(labelbottom=True)
    if not _has(band) and _has(given):  # the top panel's legend has no line to explain
        _legend_below(bottom, ncol=2)
    fig.suptitle(label(title))
    _save(fig, path)


@_quiet
def arms_overlay(
    arms: Sequence[tuple[str, dict[str, Any]]],
    marks: CenterMarks,
    path: str | os.PathLike[str],
    title: str,
) -> None:
    """Chair utilisation (top) and backlog of overdue infusion days (bottom) by month,
    one colour per arm: mean over centers, 5-95% band."""
    fig, (top_ax, bottom) = subplots(2, 1, figsize=(8.5, 8.0), sharex=True)
    months = max((len(b["month"]) for _, b in arms), default=1)
    top = 1.0
    util = False
    for (name, by_month), color in zip(arms, COLORS, strict=False):
        band = by_month["chair_utilisation"]
        if _has(band):
            util = True
            _draw_band(top_ax, band, color, label(name, 40), None, 0.12)
            p95 = _values(band["p95"])
            if np.isfinite(p95).any():
                top = max(top, float(np.nanmax(p95)))
        if _has(by_month["backlog"]):
            _draw_band(bottom, by_month["backlog"], color, label(name, 40), None, 0.12)
    if util:
        _utilisation_axes(top_ax, top)
    else:
        _note(top_ax, "unlimited chairs: no utilisation")
    _arrivals_line(top_ax, marks)
    _arrivals_line(bottom, marks, legend=False)
    top_ax.set_title("Chair utilisation", fontsize=11)
    top_ax.grid(True, alpha=0.3)
    top_ax.legend(
        fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=3, frameon=False
    )
    bottom.set_title("Backlog: infusion days past their due day", fontsize=11)
    bottom.set_ylabel("infusion days overdue\n(daily count, month mean)")
    bottom.set_ylim(bottom=0)
    _month_axis(bottom, months)
    bottom.tick_params(labelbottom=True)
    fig.suptitle(label(title))
    _save(fig, path)
