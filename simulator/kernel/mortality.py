"""Deaths (docs/model.md §2.8): background mortality from a life table, a disease-related
excess hazard that follows muscle activity, and fatal adverse events.

The hazard of dying from background or disease causes is piecewise constant: it is set at
diagnosis and again at every 4-week month day (each is a visit) for the next window, from
the age at that day and the geometric mean muscle inflammation exp(mean y) over the window
that just ended (1 for the first window). A patient dies when the cumulative hazard
crosses the patient's own Exp(1) threshold, so the time of death is exact for that
piecewise-constant hazard and, since the hazard only changes at events, it is known in
advance and scheduled as an event. Whether a death was background or disease-related is
drawn in proportion to the two hazards at that moment (competing risks).

Fatal adverse events: the first event of a steroid adverse event is fatal for the
patients whose own uniform draw falls below its case fatality (so its scheduled time is
also the time of death); an IVIG adverse event on an infusion day is fatal when the day's
uniform falls below risk x case fatality (no new draws: the same uniform decides the
event, so fatal events are a subset of events).
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from .. import fmath
from .xp import Ops

__all__ = [
    "CAUSE_BACKGROUND",
    "CAUSE_DISEASE",
    "MAX_AGE",
    "background_table",
    "excess_log_age_factor",
    "load_life_table",
]

MAX_AGE = 110  # ages above the table's last row use its last row (the open age group)
CAUSE_BACKGROUND = 1
CAUSE_DISEASE = 2
# Codes 3 + j: steroid adverse event j; 3 + (number of steroid AEs) + j: IVIG AE j.


@lru_cache(maxsize=8)
def load_life_table(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(male_mx, female_mx) of a packaged table, single years of age from 0."""
    text = (
        resources.files("simulator")
        .joinpath("data", "life_tables", name + ".csv")
        .read_text(encoding="utf-8")
    )
    rows = csv.DictReader(
        io.StringIO("\n".join(line for line in text.splitlines() if not line.startswith("#")))
    )
    male: list[float] = []
    female: list[float] = []
    for k, row in enumerate(rows):
        if int(row["age"]) != k:
            raise ValueError(f"life table {name}: ages must run 0, 1, 2, ... (row {k})")
        male.append(float(row["male_mx"]))
        female.append(float(row["female_mx"]))
    return tuple(male), tuple(female)


def background_table(
    male_mx: tuple[float, ...] | list[float], female_mx: tuple[float, ...] | list[float]
) -> np.ndarray:
    """A (2, MAX_AGE + 1) array of background hazards per day, [male, female] by age in
    whole years; a short table's last value holds for every older age."""
    out = np.empty((2, MAX_AGE + 1))
    for row, mx in enumerate((male_mx, female_mx)):
        vals = np.asarray(mx, dtype=np.float64)[: MAX_AGE + 1]
        out[row, : vals.size] = vals
        out[row, vals.size :] = vals[-1]
    return out / 365.25


def background_rate(xp: Ops, table: np.ndarray, female: Any, age_years: Any) -> Any:
    """Background hazard per day at an age (whole years, capped at MAX_AGE)."""
    a = xp.minimum(xp.maximum(xp.floor(age_years), 0), MAX_AGE)
    return xp.take2(table, female, a)


def excess_log_age_factor(hr_per_decade: float) -> float:
    """log(HR per decade) / 10: the age term's slope per year."""
    return fmath.log(hr_per_decade) / 10.0
