"""Adverse events: IVIG infusion events by dose, and steroid toxicity by daily dose."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .xp import Ops

__all__ = ["IvigAE", "SteroidAE"]


@dataclass(frozen=True)
class SteroidAE:
    """A hazard per day while on prednisone: a baseline rate times the relative risk of
    the current dose band. The first event happens when the cumulative hazard crosses the
    patient's own Exp(1) threshold, so its time is exact."""

    name: str
    baseline_per_day: float
    thresholds_mg: tuple[float, ...]
    relative_risk: tuple[float, ...]
    case_fatality: float = 0.0
    inclusive: bool = True  # a dose at a threshold reaches it (>=), else only above (>)

    def rate(self, xp: Ops, dose_mg_per_day: Any) -> Any:
        """Hazard per day at a daily dose: baseline times the relative risk of its band."""
        rr = 1.0
        prev = 1.0
        for th, r in zip(self.thresholds_mg, self.relative_risk, strict=True):
            reached = dose_mg_per_day >= th if self.inclusive else dose_mg_per_day > th
            rr = rr + reached * (r - prev)
            prev = r
        return self.baseline_per_day * rr

    @functools.cached_property
    def band_rates(self) -> np.ndarray | None:
        """``rate`` with the first m thresholds reached, m = 0..len: the same float
        operations in the same order (a threshold not reached adds 0.0, which changes
        nothing), so ``band_rates[m]`` has the bits of ``rate``. None unless the
        thresholds ascend (then the thresholds reached are always the first m)."""
        th = self.thresholds_mg
        if any(b <= a for a, b in itertools.pairwise(th)):
            return None
        out = []
        for m in range(len(th) + 1):
            rr = 1.0
            prev = 1.0
            for j, r in enumerate(self.relative_risk):
                rr = rr + (1.0 if j < m else 0.0) * (r - prev)
                prev = r
            out.append(self.baseline_per_day * rr)
        return np.array(out, dtype=np.float64)


@dataclass(frozen=True)
class IvigAE:
    """Risk per infusion day, set so that one reference cycle has the published risk."""

    name: str
    hazard_per_g_per_kg: float
    daily_dose_exponent: float
    reference_daily_dose_g_per_kg: float
    risk_factor_multiplier: float
    stops_ivig: bool
    case_fatality: float = 0.0

    def probability(self, xp: Ops, day_dose_g_per_kg: Any, risk_factor: Any) -> Any:
        """Probability on one infusion day of ``day_dose_g_per_kg``."""
        d = xp.maximum(day_dose_g_per_kg, 1e-300)
        ratio = d / self.reference_daily_dose_g_per_kg
        if self.daily_dose_exponent == 1.0:  # the default: exp(0 * log(ratio)) is exactly 1
            shape: Any = 1.0
        else:
            shape = xp.exp((self.daily_dose_exponent - 1.0) * xp.log(ratio))
        mult = 1.0 + risk_factor * (self.risk_factor_multiplier - 1.0)
        p = 1.0 - xp.exp(-self.hazard_per_g_per_kg * d * shape * mult)
        return xp.where(day_dose_g_per_kg > 0, p, 0.0)
