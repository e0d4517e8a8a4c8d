"""Sobol' variance-based indices (SALib): first-order and total indices with
bootstrap confidence intervals, from a Saltelli sample with N a power of two."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..scenario.sweep_schema import Sobol
from .common import Point, global_indices, salib_points

KEEPS_PATIENT_VALUES = False


def points(design: Sobol, seed: int, base_values: dict[str, Any]) -> list[Point]:
    return salib_points(design, seed)


def analyse(
    design: Sobol,
    points: list[Point],
    outputs: list[dict[str, float]],
    seed: int,
    base_values: dict[str, Any],
    keys: Sequence[str],
) -> dict[str, Any]:
    y = {k: np.array([o.get(k, math.nan) for o in outputs], dtype=float) for k in keys}
    return {"indices": global_indices(design, points, y, seed)}


def figures(result: Any, folder: Path) -> list[str]:
    from ..report.sweep_figures import _global_figure, _key_label, _labels, _slug

    files: list[str] = []
    for key in result.plan.output_keys:
        info = result.analysis["indices"][key]
        if "error" in info:
            continue
        name = "sobol.png" if not files else f"sobol_{_slug(key)}.png"
        _global_figure(info, key, "sobol", folder / name, _key_label(key, _labels(result.plan)))
        files.append(name)
    return files
