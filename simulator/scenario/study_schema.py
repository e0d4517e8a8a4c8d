"""A study file: a published study emulated by one or more scenarios, the outcomes it
reports as simulator metrics, and the published values with their uncertainty.

    study: Marie 2001
    citation: "Marie I, et al. J Rheumatol 2001;28:2230-7"
    role: calibration                   # calibration | validation
    arms:                               # scenario files, relative to this file
      usual_care: ../scenarios/studies/usual_care_long_term.yaml
    patients: 4000                      # virtual patients per arm (default 2000)
    targets:
      - metric: relapse_during_taper    # any metric of summary.json
        arm: usual_care                 # default: the only arm
        label: relapse during the taper
        published: {events: 36, n: 77}  # or {value, ci95: [lo, hi]} or {value, se}
      - metric: tis60_week_16_from_entry
        difference: [placebo, ivig]     # ivig - placebo, paired on the same patients
        published: {value: 0.75, ci95: [0.47, 0.91]}
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ..limits import MAX_PATIENTS, SEED_BOUND
from .schema import Frozen

__all__ = ["Published", "StudyFile", "StudyTarget"]


class Published(Frozen):
    """A published figure: counts (``events`` of ``n``: the proportion with its Wilson
    95% interval), or a value with its 95% interval, or a value with its standard error
    (interval value +/- 1.96 SE)."""

    events: int | None = Field(None, ge=0)
    n: int | None = Field(None, ge=1)
    value: float | None = None
    ci95: tuple[float, float] | None = None
    se: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_form(self) -> Published:
        counts = self.events is not None or self.n is not None
        if counts:
            if self.events is None or self.n is None:
                raise ValueError("counts need both events and n")
            if self.events > self.n:
                raise ValueError(f"events ({self.events}) cannot exceed n ({self.n})")
            if self.value is not None or self.ci95 is not None or self.se is not None:
                raise ValueError("give counts (events, n) or a value, not both")
            return self
        if self.value is None or not math.isfinite(self.value):
            raise ValueError("give counts (events and n), or a finite value with ci95 or se")
        if (self.ci95 is None) == (self.se is None):
            raise ValueError("a value needs exactly one of ci95 or se")
        if self.ci95 is not None:
            lo, hi = self.ci95
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= self.value <= hi):
                raise ValueError(
                    f"ci95 [{lo:g}, {hi:g}] must be finite and contain the value {self.value:g}"
                )
        return self


class StudyTarget(Frozen):
    metric: str
    role: Literal["calibration", "validation"] | None = None  # default: the study's
    arm: str | None = None
    difference: tuple[str, str] | None = None
    label: str = ""
    published: Published
    note: str = ""

    @model_validator(mode="after")
    def _arm_or_difference(self) -> StudyTarget:
        if self.arm is not None and self.difference is not None:
            raise ValueError("give arm or difference, not both")
        if self.difference is not None and self.difference[0] == self.difference[1]:
            raise ValueError("a difference needs two different arms")
        return self


class StudyFile(Frozen):
    input_kind: ClassVar[str] = "study file"  # what messages call the file

    study: str
    citation: str
    role: Literal["calibration", "validation"]
    arms: dict[str, str] = Field(min_length=1)
    patients: int = Field(2000, ge=1, le=MAX_PATIENTS)
    seed: int | None = Field(None, ge=0, lt=SEED_BOUND)
    description: str = ""
    targets: list[StudyTarget] = Field(min_length=1)

    @model_validator(mode="after")
    def _arms_known(self) -> StudyFile:
        for i, t in enumerate(self.targets):
            named = [t.arm] if t.arm is not None else list(t.difference or ())
            for a in named:
                if a not in self.arms:
                    raise ValueError(
                        f"targets[{i}]: arm {a!r} is not one of the study's arms"
                        f" ({', '.join(self.arms)})"
                    )
            if t.arm is None and t.difference is None and len(self.arms) > 1:
                raise ValueError(
                    f"targets[{i}]: the study has several arms; name the arm (or a"
                    " difference between two)"
                )
        return self
