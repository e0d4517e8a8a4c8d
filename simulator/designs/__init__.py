"""The sweep designs, one module each (as SALib lays out its methods): ``points`` (the
design's points in a fixed order), ``analyse`` (what the design computes from the
outputs), ``figures`` (what report.html shows) and ``KEEPS_PATIENT_VALUES`` (whether each
point keeps its per-patient values for paired comparisons between points).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from . import grid, morris, one_way, psa, sobol
from .common import Point, salib_problem
from .psa import psa_analysis

__all__ = [
    "DESIGNS",
    "Point",
    "analyse",
    "module_for",
    "points_of",
    "psa_analysis",
    "salib_problem",
]

DESIGNS: dict[str, ModuleType] = {
    "one_way": one_way,
    "grid": grid,
    "sobol": sobol,
    "morris": morris,
    "psa": psa,
}


def module_for(design: Any) -> ModuleType:
    return DESIGNS[design.type]


def points_of(design: Any, seed: int, base_values: dict[str, Any]) -> list[Point]:
    """The design's points, in a fixed order (the first is the base case for one_way)."""
    return list(module_for(design).points(design, seed, base_values))


def analyse(
    design: Any,
    points: list[Point],
    outputs: list[dict[str, float]],
    seed: int,
    base_values: dict[str, Any],
    keys: Sequence[str],
) -> dict[str, Any]:
    """Design-specific analysis of the outputs (a list of {output: value} per point)."""
    return dict(module_for(design).analyse(design, points, outputs, seed, base_values, keys))


def figures(result: Any, folder: Path) -> list[str]:
    return list(module_for(result.plan.spec.design).figures(result, folder))
