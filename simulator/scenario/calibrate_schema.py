"""A calibration file: which studies to fit, which parameters, how.

name: default
studies: [faggioli_2015.yaml, marie_2001.yaml]   # study files, relative to this file;
                                                 # their `calibration` targets are fitted
patients: 1000                    # virtual patients per arm and evaluation
seed: 1                           # the same patients at every evaluation (CRN)
parameters:                       # dotted paths (as --set), bounds, optional start
  disease.steroid.emax_per_day: {low: 0.04, high: 0.3}
  disease.activity.lasting_drive_log.mean: {low: -6, high: 0, start: -4.2}
method: optimize                  # optimize (Nelder-Mead) or abc (ABC-SMC)
optimize: {starts: 2, max_evaluations: 150}
abc: {particles: 200, final_tolerance: 1}   # or final_tolerance: se (see ABCSettings)
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..limits import MAX_PATIENTS, SEED_BOUND
from .schema import Frozen

__all__ = ["ABCSettings", "CalibrationFile", "FitParameter", "OptimizeSettings"]


class FitParameter(Frozen):
    low: float
    high: float
    start: float | None = None  # default: the value in the first study's first arm

    @model_validator(mode="after")
    def _order(self) -> FitParameter:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"need finite low < high, got low {self.low:g}, high {self.high:g}")
        if self.start is not None and not self.low < self.start < self.high:
            raise ValueError(
                f"start {self.start:g} must lie strictly between low {self.low:g} and high"
                f" {self.high:g}"
            )
        return self


class OptimizeSettings(Frozen):
    starts: int = Field(1, ge=1, le=50)
    max_evaluations: int = Field(200, ge=2, le=100_000)
    xatol: float = Field(0.01, gt=0)  # simplex size at convergence, logit scale
    fatol: float = Field(0.01, gt=0)  # loss change at convergence
    step: float = Field(0.6, gt=0, le=5)  # initial simplex step, logit scale


class ABCSettings(Frozen):
    """ABC-SMC settings. The kernel at tolerance e, exp(-loss / (2 e^2)), is a normal
    density of each published value around the simulated one with sd e x the half-width
    of its published 95% interval, = e x 1.96 standard errors. ``final_tolerance``: 1 (the
    default) has sd = the half-width, so the particles sample the posterior of a normal
    likelihood with sd 1.96 x the standard errors (the standard-error likelihood to the
    power 0.26: a wider posterior); ``se`` (= 1/1.96 = 0.51) has sd = the standard error
    each interval implies (half-width / 1.96), so the particles sample the posterior of a
    normal likelihood with the published standard errors."""

    particles: int = Field(200, ge=10, le=100_000)
    max_generations: int = Field(15, ge=1, le=200)
    ess_fraction: float = Field(0.5, gt=0, lt=1)  # each tolerance keeps this share of ESS
    # a number > 0 (kernel sd in half-widths of the published intervals), or se (1/1.96:
    # kernel sd = the standard errors those intervals imply)
    final_tolerance: Annotated[float, Field(gt=0)] | Literal["se"] = 1.0
    moves: int = Field(2, ge=1, le=50)  # Metropolis-Hastings moves per generation
    # stop a move's evaluation once its loss so far already means rejection (same
    # particles either way; only the evaluations that would be rejected are cut short)
    early_rejection: bool = True

    @field_validator("final_tolerance", mode="before")
    @classmethod
    def _tolerance(cls, value: Any) -> Any:
        if (
            isinstance(value, bool)
            or (isinstance(value, str) and value != "se")
            or (isinstance(value, int | float) and not (0 < value < math.inf))
        ):
            raise ValueError("must be a number > 0 or se (the published standard errors)")
        return value


class CalibrationFile(Frozen):
    input_kind: ClassVar[str] = "calibration file"  # what messages call the file

    name: str = "calibration"
    description: str = ""
    studies: list[str] = Field(min_length=1)
    patients: int = Field(1000, ge=1, le=MAX_PATIENTS)
    seed: int = Field(1, ge=0, lt=SEED_BOUND)
    parameters: dict[str, FitParameter] = Field(min_length=1)
    method: Literal["optimize", "abc"] = "optimize"
    optimize: OptimizeSettings = OptimizeSettings()
    abc: ABCSettings = ABCSettings()
