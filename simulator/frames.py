"""Tidy tables and figures of results for notebooks: ``to_frame`` and ``plot``.

``RunResult.to_frame()``, ``ComparisonResult.to_frame()`` and ``SweepResult.to_frame()``
return pandas DataFrames in long ("tidy") form, one row per estimate; ``plot(ax=...)``
draws on a matplotlib Axes the caller owns (or on a new ``Figure``, which a notebook
shows inline). pandas is optional (``pip install 'myositis-ivig-sim[notebook]'``); nothing
here touches matplotlib's global state.
"""

from __future__ import annotations

from typing import Any

__all__ = ["comparison_frame", "run_frame", "sweep_frame"]


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(
            "to_frame() needs pandas: pip install pandas (or the project's 'notebook' extra)"
        ) from None
    return pd


def run_frame(metrics: dict[str, dict[str, Any]]) -> Any:
    """One row per metric: its estimate, interval, unit and estimator."""
    pd = _pandas()
    rows = []
    for name, m in metrics.items():
        lo, hi = m["ci95"]
        rows.append(
            {
                "metric": name,
                "label": m["label"],
                "unit": m["unit"],
                "estimator": m.get("estimator"),
                "estimate": m["mean"],
                "ci95_low": lo,
                "ci95_high": hi,
                "n": m["n"],
                "rmst": m.get("rmst"),
            }
        )
    return pd.DataFrame(rows)


def comparison_frame(outcomes: dict[str, dict[str, Any]], reference: str) -> Any:
    """One row per outcome and arm: the arm's estimate and, for arms after the reference,
    the difference from it with its own estimator."""
    pd = _pandas()
    rows = []
    for name, o in outcomes.items():
        for arm, a in o["arms"].items():
            d = o["differences"].get(arm)
            rows.append(
                {
                    "metric": name,
                    "label": o["label"],
                    "unit": o["unit"],
                    "arm": arm,
                    "estimator": o["estimator"],
                    "estimate": a["mean"],
                    "ci95_low": a["ci95"][0],
                    "ci95_high": a["ci95"][1],
                    "reference": reference,
                    "difference_estimator": o["difference_estimator"] if d else None,
                    "difference": d["mean_difference"] if d else None,
                    "difference_ci95_low": d["ci95"][0] if d else None,
                    "difference_ci95_high": d["ci95"][1] if d else None,
                }
            )
    return pd.DataFrame(rows)


def sweep_frame(
    points: list[dict[str, Any]],
    outputs: list[dict[str, float]],
    base_values: dict[str, Any] | None = None,
) -> Any:
    """One row per point and output: the parameters (numeric columns; a parameter a
    point does not set is at its base value), the arm, the outcome and its value (``arm``
    is empty for a single-scenario sweep; differences between arms have arm ``"B-A"``)."""
    pd = _pandas()
    rows = []
    base = dict(base_values or {})
    for i, (given, out) in enumerate(zip(points, outputs, strict=True)):
        point = {**base, **given}
        for key, value in out.items():
            if key.endswith("_se"):
                continue
            arm, _, outcome = key.rpartition(":")
            rows.append(
                {
                    "point": i,
                    **point,
                    "arm": arm,
                    "outcome": outcome,
                    "value": value,
                    "mc_se": out.get(key + "_se"),
                }
            )
    return pd.DataFrame(rows)


def new_axes(ax: Any, figsize: tuple[float, float] = (7.5, 4.5)) -> tuple[Any, Any]:
    """The caller's Axes, or a new Figure (no pyplot) and its Axes."""
    if ax is not None:
        return ax.figure, ax
    from .report.figures import subplots

    return subplots(figsize=figsize)
