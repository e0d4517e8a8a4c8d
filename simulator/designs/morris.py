"""Morris elementary effects (SALib): mu* with its confidence interval, and sigma."""

from __future__ import annotations

from typing import Any

from ..scenario.sweep_schema import Morris
from .common import Point, global_analyse, global_figures, salib_points

KEEPS_PATIENT_VALUES = False

# the analysis and figures of the two SALib designs are the same code (designs/common.py)
analyse = global_analyse
figures = global_figures


def points(design: Morris, seed: int, base_values: dict[str, Any]) -> list[Point]:
    return salib_points(design, seed)
