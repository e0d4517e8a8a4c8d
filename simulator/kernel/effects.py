"""Treatment effects on disease activity, in 1/day (rate of fall of log-activity)."""

from __future__ import annotations

from typing import Any

__all__ = ["steroid_effect"]


def steroid_effect(
    dose_mg_per_day: Any, emax_per_day: float, ed50_mg: float, sensitivity: Any
) -> Any:
    """Emax model in prednisone-equivalent mg/day, scaled by the patient's sensitivity."""
    return sensitivity * emax_per_day * dose_mg_per_day / (ed50_mg + dose_mg_per_day)
