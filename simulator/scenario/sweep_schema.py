"""The sweep file: which scenario(s), which parameters, which design, which outcomes.

    name: ivig_dose
    base: ../first_line.yaml          # one scenario ...
    strategies:                       # ... or several, compared at every point
      first_line: ../first_line.yaml  #     (the first is the reference)
      rescue: ../rescue.yaml
    patients: 1000                    # virtual patients per point (the same at every point)
    seed: 1                           # default: the (first) scenario's seed
    outcomes: [cpk_normal_month_6, cost_total, qaly]
    design:
      type: one_way                   # one_way | grid | psa | sobol | morris
      parameters:
        regimen.ivig.dose_g_per_kg: {low: 1.0, high: 2.0}

Parameter names are the dotted paths of ``--set``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..limits import MAX_PATIENTS, SEED_BOUND
from .schema import MAX_MONEY, Dist, Frozen, _number_to_fixed, _strict

__all__ = ["Bounds", "SweepFile"]

AnyDist = Annotated[Dist, BeforeValidator(_number_to_fixed)]


def _finite(value: Any) -> Any:
    """A listed value of a grid or one-way design: any value --set takes, but a number in
    it must be finite (``.nan`` or ``.inf`` would reach the scenario as text)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            try:
                _finite(item)
            except ValueError as err:
                raise ValueError(f"item {i}: {err}") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            try:
                _finite(item)
            except ValueError as err:
                raise ValueError(f"{key}: {err}") from None
    return value


#: a value listed by a grid or one-way design
Listed = Annotated[Any, AfterValidator(_finite)]


class Bounds(Frozen):
    low: float
    high: float

    @model_validator(mode="after")
    def _order(self) -> Bounds:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        return self


class OneWayValue(Frozen):
    low: float | None = None
    high: float | None = None
    values: list[Listed] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _form(self) -> OneWayValue:
        if self.values is None:
            if self.low is None or self.high is None:
                raise ValueError("give low and high, or a list of values")
            if not self.low < self.high:
                raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        elif self.low is not None or self.high is not None:
            raise ValueError("give either low and high or values, not both")
        return self

    def points(self) -> list[Any]:
        return list(self.values) if self.values is not None else [self.low, self.high]


class _Design(BaseModel):
    """Base of the design types. Their ``type`` is a discriminator, which pydantic does not
    allow a "*" before-validator on, so the strict checks of Frozen are listed by field."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator(
        "parameters",
        "draws",
        "correlation",
        "willingness_to_pay",
        "n",
        "second_order",
        "trajectories",
        "levels",
        mode="before",
        check_fields=False,
    )
    @classmethod
    def _strict_values(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return value if field is None else _strict(value, field.annotation, field=field)


class OneWay(_Design):
    type: Literal["one_way"]
    parameters: dict[str, OneWayValue] = Field(min_length=1)


class Grid(_Design):
    type: Literal["grid"]
    parameters: dict[str, list[Listed]] = Field(min_length=1)

    @model_validator(mode="after")
    def _nonempty(self) -> Grid:
        for k, v in self.parameters.items():
            if not v:
                raise ValueError(f"parameter {k} needs at least one value")
        return self


class PSA(_Design):
    type: Literal["psa"]
    parameters: dict[str, AnyDist] = Field(default_factory=dict)
    # posterior.csv of `simulate calibrate` (relative to the sweep file): each draw takes
    # one row, resampled by weight, for the parameters in its columns
    from_posterior: str | None = None
    draws: int = Field(ge=2, le=1_000_000)
    correlation: list[list[float]] | None = None
    groups: dict[str, list[str]] | None = None
    willingness_to_pay: list[float] = Field(
        default_factory=lambda: [float(x) for x in range(0, 100_001, 5_000)], min_length=1
    )

    @field_validator("correlation")
    @classmethod
    def _correlation(
        cls, c: list[list[float]] | None, info: ValidationInfo
    ) -> list[list[float]] | None:
        if c is None:
            return c
        k = len(info.data["parameters"]) if "parameters" in info.data else len(c)
        if len(c) != k or any(len(row) != k for row in c):
            raise ValueError(
                f"correlation must be a {k} x {k} matrix (one row and column"
                " per parameter, in the order they are listed)"
            )
        for i in range(k):
            if c[i][i] != 1:
                raise ValueError("correlation must have 1 on the diagonal")
            for j in range(k):
                if c[i][j] != c[j][i] or not -1 <= c[i][j] <= 1:
                    raise ValueError("correlation must be symmetric with entries in [-1, 1]")
        _check_positive_definite(c)
        return c

    @model_validator(mode="after")
    def _checks(self) -> PSA:
        if not self.parameters and self.from_posterior is None:
            raise ValueError("give parameters, from_posterior, or both")
        if self.groups is not None and self.from_posterior is None:
            names = set(self.parameters)
            for g, members in self.groups.items():
                unknown = [m for m in members if m not in names]
                if unknown or not members:
                    raise ValueError(
                        f"group {g!r} names parameters not in the PSA: {unknown or 'none'}"
                    )
        bad = [w for w in self.willingness_to_pay if not 0 <= w <= MAX_MONEY]
        if bad:
            raise ValueError(
                f"willingness_to_pay values must be in [0, {MAX_MONEY:g}] (per QALY),"
                f" got {bad[0]:g}"
            )
        return self


def _check_positive_definite(c: list[list[float]]) -> None:
    """A correlation matrix must be positive definite (the Gaussian copula factorises it);
    if not, say why and suggest the nearest valid one."""
    a = np.asarray(c, dtype=float)
    smallest = float(np.linalg.eigvalsh(a).min())
    if smallest > 1e-8:
        return
    kind = (
        "singular (a parameter is an exact combination of others)"
        if smallest > -1e-8
        else "not positive definite (no set of variables can have all these correlations)"
    )
    rows = ", ".join(
        "[" + ", ".join(f"{x:g}" for x in row) + "]" for row in nearest_correlation(a).tolist()
    )
    raise ValueError(
        f"correlation is {kind}: its smallest eigenvalue is {smallest:.3g}. A nearby valid"
        f" matrix (eigenvalues clipped, rescaled to a unit diagonal, rounded): [{rows}]"
    )


def nearest_correlation(a: np.ndarray, decimals: int = 2) -> np.ndarray:
    """A positive definite correlation matrix near ``a``: eigenvalues clipped from below,
    rescaled to a unit diagonal, rounded to ``decimals`` (clipping harder until the
    rounded matrix is still positive definite)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    for floor in (1e-2, 3e-2, 0.1, 0.3):
        b = (v * np.maximum(w, floor)) @ v.T
        d = np.sqrt(np.diag(b))
        b = np.round(b / np.outer(d, d), decimals)
        np.fill_diagonal(b, 1.0)
        if np.linalg.eigvalsh(b).min() > 1e-8:
            return b
    return np.eye(len(a))


class Sobol(_Design):
    type: Literal["sobol"]
    parameters: dict[str, Bounds] = Field(min_length=2)
    n: int = Field(ge=2, le=2**20)
    second_order: bool = False

    @model_validator(mode="after")
    def _power_of_two(self) -> Sobol:
        if self.n & (self.n - 1):
            lower = 1 << (self.n.bit_length() - 1)
            raise ValueError(
                f"n must be a power of two for Sobol' sampling (Saltelli), got"
                f" {self.n}; use {lower} or {lower * 2}"
            )
        return self


class Morris(_Design):
    type: Literal["morris"]
    parameters: dict[str, Bounds] = Field(min_length=2)
    trajectories: int = Field(ge=2, le=10_000)
    levels: int = Field(4, ge=2, le=20)

    @model_validator(mode="after")
    def _even_levels(self) -> Morris:
        if self.levels % 2:
            raise ValueError(f"levels must be even (Morris 1991), got {self.levels}")
        return self


Design = Annotated[OneWay | Grid | PSA | Sobol | Morris, Field(discriminator="type")]


class SweepFile(Frozen):
    input_kind: ClassVar[str] = "sweep file"  # what messages call the file

    name: str = "sweep"
    description: str = ""
    base: str | None = None
    strategies: dict[str, str] | None = None
    patients: int = Field(1000, ge=1, le=MAX_PATIENTS)
    seed: int | None = Field(None, ge=0, lt=SEED_BOUND)
    engine: Literal["auto", "simpy", "cohort"] = "auto"
    outcomes: list[str] = Field(min_length=1)
    design: Design

    @model_validator(mode="after")
    def _scenarios(self) -> SweepFile:
        if (self.base is None) == (self.strategies is None):
            raise ValueError("give either base (one scenario) or strategies (several)")
        if self.strategies is not None and len(self.strategies) < 2:
            raise ValueError("strategies needs at least two scenarios (the first is the reference)")
        return self
