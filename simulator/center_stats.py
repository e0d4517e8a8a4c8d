"""What an infusion center did, summarised over its replications (``engines/center.py``).

Each simulated center is one replication: its totals (patients, infusion days, waits,
delays, grams, chair and nurse hours) and its monthly series are independent draws of
what such a center sees, so a center metric is the mean over replications with a
Student-t 95% interval. Chair utilisation, grams per month, stock-out days and nurse
hours are counted over the arrival window (``center.arrivals.years``; the whole run for
a cohort); waits, delays, reductions and skips over the whole run (the last arrivals'
courses included).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CENTER_HEADLINE",
    "CENTER_METRICS",
    "MONTH_DAYS",
    "CenterRecord",
    "center_metrics",
    "center_summary",
    "paired_center_differences",
]

MONTH_DAYS = 28


@dataclass
class CenterRecord:
    """What the centers of a chunk did: per replication totals and monthly series.

    Series are by 4-week month of center time and have one row per replication; the
    waits are every infusion day's wait (days from the opening hour of the day it was
    first due to its start), in replication order."""

    replications: int = 0
    months: int = 0
    totals: dict[str, np.ndarray] = field(default_factory=dict)
    series: dict[str, np.ndarray] = field(default_factory=dict)
    waits: np.ndarray = field(default_factory=lambda: np.zeros(0))

    TOTALS = (
        "patients",
        "infusion_days",
        "days_delayed",
        "cycles_delayed",
        "days_reduced",
        "cycles_skipped",
        "days_skipped",
        "grams_given",
        "grams_window",
        "grams_delivered",
        "grams_left",
        "stock_out_days",
        "chair_hours",
        "chair_hours_open",
        "nurse_hours_window",
        "wait_days_total",
        "wait_p95_days",
        "center_days",
    )
    SERIES = ("chair_hours", "chair_hours_open", "grams", "stock_g", "backlog", "infusion_days")

    @classmethod
    def merge_all(cls, parts: Sequence[CenterRecord | None]) -> CenterRecord:
        """One record of several, in the order given."""
        kept = [p for p in parts if p is not None and p.replications]
        if not kept:
            return cls()
        months = max(p.months for p in kept)

        def pad(a: np.ndarray) -> np.ndarray:
            out = np.full((a.shape[0], months), np.nan)
            out[:, : a.shape[1]] = a
            return out

        return cls(
            replications=sum(p.replications for p in kept),
            months=months,
            totals={k: np.concatenate([p.totals[k] for p in kept]) for k in cls.TOTALS},
            series={k: np.vstack([pad(p.series[k]) for p in kept]) for k in cls.SERIES},
            waits=np.concatenate([p.waits for p in kept]),
        )


# name -> (label, unit, better)
CENTER_METRICS: dict[str, tuple[str, str, str | None]] = {
    "center_patients": ("new patients per center", "patients", None),
    "center_chair_utilisation": (
        "chair utilisation (share of open chair hours)",
        "proportion",
        None,
    ),
    "center_wait_mean_days": ("wait per infusion day, mean", "days", "lower"),
    "center_wait_p95_days": ("wait per infusion day, 95th percentile", "days", "lower"),
    "center_cycles_delayed": ("IVIG cycles started late, per center", "cycles", "lower"),
    "center_days_delayed": ("IVIG infusion days given late, per center", "days", "lower"),
    "center_days_reduced": ("IVIG infusion days at a reduced dose, per center", "days", "lower"),
    "center_cycles_skipped": ("IVIG cycles skipped, per center", "cycles", "lower"),
    "center_ivig_g_per_month": ("IVIG given per 4-week month", "g", None),
    "center_stock_out_days": ("days IVIG was short for a due infusion", "days", "lower"),
    "center_nurse_hours_per_month": ("nurse hours per 4-week month", "h", None),
}


#: The center metrics shown first (terminal tables, headline rows), in this order.
CENTER_HEADLINE = (
    "center_chair_utilisation",
    "center_wait_mean_days",
    "center_wait_p95_days",
    "center_cycles_delayed",
    "center_cycles_skipped",
    "center_stock_out_days",
    "center_ivig_g_per_month",
)


def _per_center(rec: CenterRecord) -> dict[str, np.ndarray]:
    t = rec.totals
    months = t["center_days"] / MONTH_DAYS
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "center_patients": t["patients"],
            "center_chair_utilisation": t["chair_hours"] / t["chair_hours_open"],
            "center_wait_mean_days": t["wait_days_total"] / t["infusion_days"],
            "center_wait_p95_days": t["wait_p95_days"],
            "center_cycles_delayed": t["cycles_delayed"],
            "center_days_delayed": t["days_delayed"],
            "center_days_reduced": t["days_reduced"],
            "center_cycles_skipped": t["cycles_skipped"],
            "center_ivig_g_per_month": t["grams_window"] / months,
            "center_stock_out_days": t["stock_out_days"],
            "center_nurse_hours_per_month": t["nurse_hours_window"] / months,
        }


def _mean_ci(x: np.ndarray) -> tuple[float | None, list[float | None], int, float | None]:
    """Mean over the centers, its Student-t 95% interval, the number of centers and the
    standard error of the mean."""
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return None, [None, None], 0, None
    mean = float(x.mean())
    if n < 2:
        return mean, [None, None], n, None
    se = float(x.std(ddof=1) / math.sqrt(n))
    # scipy.stats costs ~0.45 s to import, and only an infusion center's summary needs
    # it: imported here, not by every command that imports the runner
    from scipy import stats as sstats

    half = float(sstats.t.ppf(0.975, n - 1) * se)
    return mean, [mean - half, mean + half], n, se


def center_metrics(rec: CenterRecord) -> dict[str, dict[str, Any]]:
    """Center metrics in the form of the cohort metrics (mean, ci95, n = replications)."""
    out: dict[str, dict[str, Any]] = {}
    for name, values in _per_center(rec).items():
        label, unit, _ = CENTER_METRICS[name]
        mean, ci, n, se = _mean_ci(values)
        if mean is not None and ci[0] is not None and ci[1] is not None:
            ci = [max(0.0, ci[0]), min(1.0, ci[1]) if unit == "proportion" else ci[1]]
        out[name] = {
            "mean": mean,
            "ci95": ci,
            # the interval is Student-t over few centers and cut at the scale's ends: its
            # width is not 2 x 1.96 standard errors (a sweep reads this instead)
            "se": se,
            "n": n,
            "unit": unit,
            "label": label,
            "estimator": "mean_over_centers",
        }
    return out


def _band(a: np.ndarray) -> dict[str, list[float | None]]:
    def col(f: Any) -> list[float | None]:
        out: list[float | None] = []
        for j in range(a.shape[1]):
            v = a[:, j]
            v = v[np.isfinite(v)]
            out.append(float(f(v)) if v.size else None)
        return out

    return {
        "mean": col(np.mean),
        "p05": col(lambda v: np.quantile(v, 0.05)),
        "p95": col(lambda v: np.quantile(v, 0.95)),
    }


def center_summary(rec: CenterRecord) -> dict[str, Any]:
    """The ``center`` section of summary.json: totals, pooled waits and monthly series."""
    t = rec.totals
    waits = rec.waits
    s = rec.series
    with np.errstate(invalid="ignore", divide="ignore"):
        util = s["chair_hours"] / s["chair_hours_open"]
    return {
        "replications": rec.replications,
        "patients_simulated": int(t["patients"].sum()) if rec.replications else 0,
        "infusion_days": float(t["infusion_days"].sum()) if rec.replications else 0.0,
        "waits_pooled_days": {
            "n": int(waits.size),
            "mean": float(waits.mean()) if waits.size else None,
            "median": float(np.median(waits)) if waits.size else None,
            "p95": float(np.quantile(waits, 0.95)) if waits.size else None,
            "max": float(waits.max()) if waits.size else None,
            "share_waiting_over_1_day": float((waits > 1.0).mean()) if waits.size else None,
        },
        "grams": {
            "given": float(t["grams_given"].sum()) if rec.replications else 0.0,
            "delivered": float(np.nansum(t["grams_delivered"])) if rec.replications else 0.0,
            "left": float(np.nansum(t["grams_left"])) if rec.replications else 0.0,
        },
        "by_month": {
            "month": list(range(rec.months)),
            "chair_utilisation": _band(util),
            "ivig_g": _band(s["grams"]),
            "stock_g": _band(s["stock_g"]),
            "backlog": _band(s["backlog"]),
            "infusion_days": _band(s["infusion_days"]),
        },
    }


def paired_center_differences(a: CenterRecord, b: CenterRecord) -> dict[str, dict[str, Any]]:
    """Center metrics of ``b`` minus ``a`` replication by replication: two arms run on
    the same seed see the same arrivals and patients in each replication (common random
    numbers), so the differences are paired; Student-t 95% interval over replications,
    and the share of replications where ``b`` is higher, lower or the same."""
    if a.replications != b.replications:
        raise ValueError("paired center differences need the same replications in both arms")
    pa, pb = _per_center(a), _per_center(b)
    out: dict[str, dict[str, Any]] = {}
    for name in CENTER_METRICS:
        d = pb[name] - pa[name]
        d = d[np.isfinite(d)]
        mean, ci, n, se = _mean_ci(d)
        if CENTER_METRICS[name][1] == "proportion" and ci[0] is not None and ci[1] is not None:
            ci = [max(-1.0, ci[0]), min(1.0, ci[1])]  # a difference of two shares

        def pct(mask: np.ndarray, n: int = n) -> float | None:
            return 100.0 * float(mask.sum()) / n if n else None

        out[name] = {
            "mean_difference": mean,
            "ci95": ci,
            "se": se,
            "n": n,
            "higher_pct": pct(d > 1e-9),
            "lower_pct": pct(d < -1e-9),
            "same_pct": pct(np.abs(d) <= 1e-9),
        }
    return out
