"""Full-factorial grid: every combination of the listed values."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..scenario.sweep_schema import Grid
from .common import Point

KEEPS_PATIENT_VALUES = False


def points(design: Grid, seed: int, base_values: dict[str, Any]) -> list[Point]:
    names = list(design.parameters)
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*design.parameters.values())
    ]


def analyse(
    design: Grid,
    points: list[Point],
    outputs: list[dict[str, float]],
    seed: int,
    base_values: dict[str, Any],
    keys: Sequence[str],
) -> dict[str, Any]:
    return {}  # the points are the result (sweep.csv, the figures)


def figures(result: Any, folder: Path) -> list[str]:
    from ..report.sweep_figures import _grid_figure, _slug

    files = []
    for j, key in enumerate(result.plan.output_keys):
        name = "grid.png" if j == 0 else f"grid_{_slug(key)}.png"
        _grid_figure(result, key, folder / name)
        files.append(name)
    return files
