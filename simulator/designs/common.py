"""What the sweep designs share: the sweep's uniform draws and SALib's problem and sampler."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import streams
from ..scenario.sweep_schema import Morris, Sobol

Point = dict[str, Any]


def uniform_rows(seed: int, n: int, k: int, purpose: str) -> np.ndarray:
    """An n x k table of uniforms, a pure function of the seed and the purpose."""
    return streams.uniform(seed, np.arange(n)[:, None], purpose, np.arange(k)[None, :])


def salib_problem(design: Sobol | Morris) -> dict[str, Any]:
    return {
        "num_vars": len(design.parameters),
        "names": list(design.parameters),
        "bounds": [[b.low, b.high] for b in design.parameters.values()],
    }


def salib_points(design: Sobol | Morris, seed: int) -> list[Point]:
    """The design's SALib sample (Saltelli/Sobol' or Morris trajectories) as points."""
    problem = salib_problem(design)
    seed32 = int(seed % (2**32))
    if isinstance(design, Sobol):
        from SALib.sample import sobol as sobol_sample

        x = sobol_sample.sample(
            problem, design.n, calc_second_order=design.second_order, seed=seed32
        )
    else:
        from SALib.sample import morris as morris_sample

        x = morris_sample.sample(
            problem, design.trajectories, num_levels=design.levels, seed=seed32
        )
    names = problem["names"]
    return [{n: float(row[j]) for j, n in enumerate(names)} for row in x]


def global_indices(
    design: Sobol | Morris, points: list[Point], y: dict[str, np.ndarray], seed: int
) -> dict[str, Any]:
    problem = salib_problem(design)
    seed32 = int(seed % (2**32))
    out: dict[str, Any] = {}
    x = np.array([[p[n] for n in problem["names"]] for p in points])
    for key, values in y.items():
        if not np.all(np.isfinite(values)):
            out[key] = {
                "error": "outcome undefined at some points (e.g. a median never"
                " reached); indices not computed"
            }
            continue
        if np.ptp(values) == 0:
            out[key] = {"error": "outcome constant over the design; indices undefined"}
            continue
        if isinstance(design, Sobol):
            from SALib.analyze import sobol as sobol_analyze

            si = sobol_analyze.analyze(
                problem, values, calc_second_order=design.second_order, conf_level=0.95, seed=seed32
            )
            out[key] = {
                "parameters": problem["names"],
                "S1": [float(v) for v in si["S1"]],
                "S1_ci95_halfwidth": [float(v) for v in si["S1_conf"]],
                "ST": [float(v) for v in si["ST"]],
                "ST_ci95_halfwidth": [float(v) for v in si["ST_conf"]],
            }
            if design.second_order:
                # the second-order indices the n(2k+2) runs pay for: a k x k matrix, S2[i][j]
                # the interaction of parameters i < j, None on and below the diagonal (as
                # SALib gives them, NaN there)
                out[key]["S2"] = _matrix(si["S2"])
                out[key]["S2_ci95_halfwidth"] = _matrix(si["S2_conf"])
        else:
            from SALib.analyze import morris as morris_analyze

            mi = morris_analyze.analyze(
                problem, x, values, conf_level=0.95, num_levels=design.levels, seed=seed32
            )
            out[key] = {
                "parameters": problem["names"],
                "mu_star": [float(v) for v in mi["mu_star"]],
                "mu_star_ci95_halfwidth": [float(v) for v in mi["mu_star_conf"]],
                "mu": [float(v) for v in mi["mu"]],
                "sigma": [float(v) for v in mi["sigma"]],
            }
    return out


def _matrix(m: Any) -> list[list[float | None]]:
    """A matrix of SALib's as lists, NaN (no index) as None."""
    return [[float(v) if math.isfinite(v) else None for v in row] for row in np.asarray(m)]


def global_analyse(
    design: Sobol | Morris,
    points: list[Point],
    outputs: list[dict[str, float]],
    seed: int,
    base_values: dict[str, Any],
    keys: Sequence[str],
) -> dict[str, Any]:
    """``analyse`` of the SALib designs (Sobol', Morris): indices per output."""
    y = {k: np.array([o.get(k, math.nan) for o in outputs], dtype=float) for k in keys}
    return {"indices": global_indices(design, points, y, seed)}


def global_figures(result: Any, folder: Path) -> list[str]:
    """``figures`` of the SALib designs: one bar chart of indices per output that has
    them, named after the design (``sobol.png``, ``morris_<output>.png``, ...)."""
    from ..report.sweep_figures import _global_figure, _key_label, _labels, _slug, parameter_labels

    kind = result.plan.spec.design.type
    labels = _labels(result.plan)
    names = parameter_labels(result.plan)
    files: list[str] = []
    for key in result.plan.output_keys:
        info = result.analysis["indices"][key]
        if "error" in info:
            continue
        name = f"{kind}.png" if not files else f"{kind}_{_slug(key)}.png"
        _global_figure(info, key, kind, folder / name, _key_label(key, labels), names)
        files.append(name)
    return files
