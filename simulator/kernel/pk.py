"""Serum IgG excess after IVIG: each infusion day adds a bolus to two exponentials.

An infusion of d g/kg raises serum IgG by R d g/L (R ~ 1/plasma volume), split into a
fast component (redistribution and FcRn-saturated catabolism, half-life ~3.5 days) and a
slow one (IgG half-life ~3 weeks). Infusions last hours, days apart, so each infusion day
is a bolus at the start of the day. Sources and the fit are in docs/model.md.
"""

from __future__ import annotations

from typing import Any

from .. import fmath

__all__ = ["bolus", "rate_from_half_life"]


def rate_from_half_life(half_life_days: float) -> float:
    return fmath.log(2.0) / half_life_days


def bolus(dose_g_per_kg: Any, rise_g_per_l_per_g_per_kg: Any, fast_fraction: float) -> Any:
    """(fast, slow) increments of IgG excess in g/L for one infusion day."""
    total = dose_g_per_kg * rise_g_per_l_per_g_per_kg
    return total * fast_fraction, total * (1.0 - fast_fraction)
