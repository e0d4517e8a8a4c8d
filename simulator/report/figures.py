"""Figures for a run and for comparisons (matplotlib, PNG).

Figures are made with matplotlib's object-oriented API (``matplotlib.figure.Figure``),
never through pyplot, so importing this module changes nothing in the process: no
backend switch (a notebook keeps its inline plots), no figure registry to leak.

Scenario names reach titles and legends as the user wrote them, so every text goes
through :func:`label`: shortened to ``MAX_LABEL`` characters with an ellipsis, ``$``
escaped (no mathtext), and characters that none of the fonts in ``FONTS`` can draw
replaced by ``?`` (matplotlib would warn once per glyph and take minutes on a long name).
Each figure function runs under a local ``warnings.catch_warnings()`` and
``matplotlib.rc_context`` (never global state), so no library warning reaches the user.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import matplotlib
import numpy as np
from matplotlib import font_manager, ticker
from matplotlib.figure import Figure

__all__ = ["enzyme_bands", "km_curves", "label", "prednisone_lines"]

# Okabe & Ito (2008) colour-blind-safe palette
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
_META = {"Software": None}  # no version string: figures stay the same across installs
MAX_LABEL = 60
FONTS = ("DejaVu Sans", "Noto Sans", "Noto Sans CJK JP", "Noto Sans Symbols", "Noto Sans Symbols2")
"""Font fallback list: the ones installed are used, in this order."""

F = TypeVar("F", bound=Callable[..., Any])


@functools.lru_cache(maxsize=1)
def _fonts() -> tuple[list[str], frozenset[int]]:
    """The installed fonts of FONTS and every code point they can draw."""
    from matplotlib.ft2font import FT2Font

    installed = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    names: list[str] = []
    chars: set[int] = set()
    for name in FONTS:
        if name in installed:
            names.append(name)
            try:
                chars.update(FT2Font(installed[name]).get_charmap())
            except (OSError, RuntimeError):  # an unreadable font only narrows the set
                continue
    return names or ["sans-serif"], frozenset(chars)


def label(text: Any, limit: int = MAX_LABEL) -> str:
    """``text`` as it can be drawn: one line, at most ``limit`` characters, every
    character in the fonts (else ``?``), ``$`` escaped."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "\u2026"
    chars = _fonts()[1]
    if chars:
        s = "".join(c if ord(c) in chars else "?" for c in s)
    return s.replace("$", r"\$")


def _quiet(fn: F) -> F:
    """Run a figure function with matplotlib's UserWarnings silenced and the font
    fallback list set, both only for the duration of the call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with matplotlib.rc_context({"font.family": _fonts()[0]}):
                return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """Like ``pyplot.subplots``, without pyplot: a Figure (its own Agg canvas on save) and
    its axes."""
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*args, **kwargs)


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata=_META, bbox_inches="tight")


@_quiet
def enzyme_bands(
    arms: Sequence[tuple[str, list[dict[str, Any]]]],
    uln: float,
    ylabel: str,
    path: str | os.PathLike[str],
    title: str,
) -> None:
    """Median and 5-95% band by month of an enzyme, ULN marked; one panel per arm."""
    k = len(arms)
    cols = min(k, 2)
    rows = (k + cols - 1) // cols
    fig, axes = subplots(
        rows,
        cols,
        figsize=(7.5 if k == 1 else 11, 4.5 if k == 1 else 3.4 * rows),
        sharey=True,
        squeeze=False,
    )
    for i, ((name, rows_), color) in enumerate(zip(arms, COLORS, strict=False)):
        ax = axes[i // cols][i % cols]
        rows_ = [r for r in rows_ if r["median"] is not None]
        months = [r["month"] for r in rows_]
        ax.fill_between(
            months,
            [r["p05"] for r in rows_],
            [r["p95"] for r in rows_],
            color=color,
            alpha=0.2,
            linewidth=0,
            label="5-95% of patients",
        )
        ax.plot(
            months,
            [r["median"] for r in rows_],
            color=color,
            marker="o",
            markersize=3,
            label="median",
        )
        ax.axhline(uln, color="black", linestyle="--", linewidth=1, label=f"ULN ({uln:g})")
        ax.set_yscale("log")
        ax.set_title(label(name) if k > 1 else label(title), fontsize=10 if k > 1 else 12)
        ax.set_xlabel("month (4 weeks)")
        if i % cols == 0:
            ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for j in range(k, rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    if k > 1:
        fig.suptitle(label(title))
    _save(fig, path)


@_quiet
def km_curves(
    arms: Sequence[tuple[str, dict[str, list[Any]]]],
    path: str | os.PathLike[str],
    title: str,
    ylabel: str,
    horizon_days: float,
) -> None:
    """Cumulative proportion reaching an event (1 - Kaplan-Meier, deaths censored), with
    95% bands; dashed, the share who reached it alive (the Aalen-Johansen cumulative
    incidence, deaths a competing event) where the curve carries it."""
    k = len(arms)
    fig, (ax, tab) = subplots(
        2,
        1,
        figsize=(7.5, 4.6 + 0.22 * k),
        sharex=True,
        gridspec_kw={"height_ratios": [4.5, 0.35 + 0.22 * k]},
    )
    for (name, curve), color in zip(arms, COLORS, strict=False):
        days = [0.0, *curve["day"], horizon_days]
        surv = [1.0, *curve["survival"]]
        surv.append(surv[-1])
        ax.step(days, [1 - s for s in surv], where="post", color=color, label=label(name))
        cif = curve.get("cumulative_incidence")
        if cif:
            level = [0.0, *cif]
            level.append(level[-1])
            ax.step(days, level, where="post", color=color, linestyle="--", linewidth=1.0)
        # censoring marks: on the curve, at the days someone was censored
        cens = curve.get("censored_day", [])
        if cens:
            idx = np.searchsorted(np.asarray(curve["day"]), np.asarray(cens), side="right")
            level = np.asarray([1.0, *curve["survival"]])[idx]
            ax.plot(cens, 1 - level, linestyle="none", marker="|", markersize=6, color=color)
        lo = [1.0, *[x if x is not None else 0.0 for x in curve["lo"]]]
        hi = [1.0, *[x if x is not None else 0.0 for x in curve["hi"]]]
        lo.append(lo[-1])
        hi.append(hi[-1])
        ax.fill_between(
            days,
            [1 - h for h in hi],
            [1 - v for v in lo],
            step="post",
            color=color,
            alpha=0.15,
            linewidth=0,
        )
    ax.set_xlim(0, horizon_days)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(label(title))
    ax.grid(True, alpha=0.3)
    if any(curve.get("cumulative_incidence") for _, curve in arms):
        ax.plot(
            [], [], color="0.4", linestyle="--", linewidth=1.0, label="dashed: deaths competing"
        )
        title_note = "solid: had no one died (deaths censored)\n| censored"
    else:
        title_note = "| censored"
    ax.legend(fontsize=8, loc="lower right", title=title_note, title_fontsize=7)
    # numbers at risk under the plot, at most 8 columns
    tab.set_ylim(-0.5, k - 0.5)
    tab.set_yticks(range(k))
    tab.set_yticklabels([label(n, 16) for n, _ in reversed(arms)], fontsize=7)
    for spine in tab.spines.values():
        spine.set_visible(False)
    tab.tick_params(axis="y", length=0, pad=22)
    for row, ((_, curve), color) in enumerate(
        zip(reversed(arms), reversed(COLORS[:k]), strict=False)
    ):
        days, n = curve.get("at_risk_day", []), curve.get("at_risk", [])
        step = max(1, math.ceil(len(days) / 8))
        for d, v in list(zip(days, n, strict=False))[::step]:
            tab.text(d, row, f"{v:,}", ha="center", va="center", fontsize=7, color=color)
    tab.set_xlabel("days since diagnosis (numbers at risk below the curves)")
    _save(fig, path)


@_quiet
def prednisone_lines(
    arms: Sequence[tuple[str, list[dict[str, Any]]]], path: str | os.PathLike[str], title: str
) -> None:
    """Mean daily prednisone dose at each monthly visit, one line per arm."""
    fig, ax = subplots(figsize=(7.5, 4.0))
    for (name, rows), color in zip(arms, COLORS, strict=False):
        rows = [r for r in rows if r["mean"] is not None]
        ax.plot(
            [r["month"] for r in rows],
            [r["mean"] for r in rows],
            color=color,
            marker="o",
            markersize=3,
            label=label(name),
        )
    ax.axhline(5.0, color="black", linestyle=":", linewidth=1, label="5 mg/day")
    # A methylprednisolone pulse at day 0 (prednisone-equivalent) would flatten a linear
    # axis: linear up to 10 mg/day, logarithmic above.
    ax.set_yscale("symlog", linthresh=10.0, linscale=1.0)
    ticks = [t for t in (0, 2.5, 5, 7.5, 10, 20, 50, 100, 200, 500, 1000, 2000)]
    top = max([r["mean"] for _, rows in arms for r in rows if r["mean"] is not None] + [10.0])
    ax.set_yticks([t for t in ticks if t <= top * 1.5])
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(0, top * 1.5)
    ax.set_xlabel(
        "month (4 weeks); a methylprednisolone pulse (day 0, rescue) counts as prednisone"
    )
    ax.set_ylabel("mean prednisone (mg/day, log above 10)")
    ax.set_title(label(title))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


@_quiet
def ce_plane(
    rows: Sequence[dict[str, Any]],
    wtp: float,
    currency: str,
    optimal: str,
    path: str | os.PathLike[str],
    title: str,
    horizon: str = "lifetime",
) -> None:
    """Cost-effectiveness plane of an incremental analysis: every strategy (mean QALYs,
    mean cost), the efficiency frontier through the non-dominated ones, dominated and
    extendedly dominated ones marked, and the willingness-to-pay line through the optimal
    strategy (every point on it has the same net monetary benefit). ``horizon`` is the
    analysis's (``economics.cea_horizon``), named on the axes."""
    fig, ax = subplots(figsize=(7.5, 5.0))
    draw_ce_plane(ax, rows, wtp, currency, optimal, title, horizon)
    _save(fig, path)


def draw_ce_plane(
    ax: Any,
    rows: Sequence[dict[str, Any]],
    wtp: float,
    currency: str,
    optimal: str,
    title: str,
    horizon: str = "lifetime",
) -> None:
    """The cost-effectiveness plane (see ``ce_plane``) on a given matplotlib Axes;
    ``optimal`` is the analysis's optimal strategy (``economics.optimal_strategy``)."""
    markers = {
        "ND": ("o", "#0072B2", "on the efficiency frontier"),
        "ED": ("s", "#E69F00", "extendedly dominated"),
        "D": ("X", "#D55E00", "dominated"),
        "": ("o", "#0072B2", "strategy"),
    }
    frontier = [r for r in rows if r["status"] == "ND"]
    frontier.sort(key=lambda r: r["cost"])
    if len(frontier) > 1:
        ax.plot(
            [r["effect"] for r in frontier],
            [r["cost"] for r in frontier],
            color="black",
            linewidth=1.2,
            zorder=1,
            label="efficiency frontier",
        )
    seen: set[str] = set()
    xs = [r["effect"] for r in rows]
    middle = (max(xs) + min(xs)) / 2
    for r in rows:
        marker, color, kind = markers[r["status"]]
        ax.scatter(
            [r["effect"]],
            [r["cost"]],
            s=70,
            marker=marker,
            color=color,
            zorder=3,
            edgecolor="black",
            linewidth=0.6,
            label=None if kind in seen else kind,
        )
        seen.add(kind)
        # away from the frontier, which rises to the right, and inside the axes: a
        # point off the frontier lies above it, so its label goes above (to the side
        # facing the middle); a frontier point's label goes above-left in the right
        # half and below-right in the left half
        right = r["effect"] > middle
        above = right or r["status"] != "ND"
        ax.annotate(
            label(r["strategy"], 24),
            (r["effect"], r["cost"]),
            textcoords="offset points",
            xytext=((-6 if right else 6), (7 if above else -7)),
            ha="right" if right else "left",
            va="bottom" if above else "top",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            zorder=4,
        )
    best = next(r for r in rows if r["strategy"] == optimal)
    span = (max(xs) - min(xs)) or max(abs(max(xs)), 1e-3) * 0.1
    x0, x1 = min(xs) - 0.15 * span, max(xs) + 0.15 * span
    ax.plot(
        [x0, x1],
        [best["cost"] + wtp * (x0 - best["effect"]), best["cost"] + wtp * (x1 - best["effect"])],
        color="#666666",
        linestyle="--",
        linewidth=1,
        label=f"{wtp:,.0f} {currency}/QALY through the optimal strategy",
    )
    ys = [r["cost"] for r in rows]
    yspan = (max(ys) - min(ys)) or max(abs(max(ys)), 1.0) * 0.1
    ax.set_ylim(min(ys) - 0.15 * yspan, max(ys) + 0.2 * yspan)
    ax.set_xlim(x0, x1)
    over = "lifetime" if horizon == "lifetime" else "simulated horizon"
    ax.set_xlabel(f"QALYs per patient ({over}, discounted)")
    ax.set_ylabel(f"cost per patient ({label(currency, 8)}, {over}, discounted)")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_title(label(title))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
