"""The scenario model: what a YAML scenario may say, its units, defaults and their sources.

Every field is typed, frozen and validated; unknown keys are rejected. Units are in the
names (``dose_g_per_kg``, ``half_life_days``). Each default carries a ``source`` in its
field metadata: a citation from ``shared/domain/parameters.md``, the founding abstract
(Faggioli et al., Ann Rheum Dis 2015;74(Suppl 2):1139), or the word "assumption" with
the reasoning; ``docs/model.md`` tabulates them and a test keeps that table in step with
this file.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any, Literal

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
from scipy import special

from ..limits import MAX_PATIENTS, MIN_TRUNCATED_MASS, SEED_BOUND

__all__ = [
    "IVIG",
    "AdverseEventIVIG",
    "AdverseEventSteroid",
    "Disease",
    "Dist",
    "Population",
    "Regimen",
    "Rule",
    "Scenario",
]

FAGGIOLI = "Faggioli et al., Ann Rheum Dis 2015;74(Suppl 2):1139 (founding abstract)"


def _leaves(tp: Any) -> list[Any]:
    """The plain types a value of annotation ``tp`` may have (Annotated and unions undone)."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return [leaf for arg in typing.get_args(tp) for leaf in _leaves(arg)]
    return [] if tp is type(None) else [tp]


def _strict(value: Any, tp: Any, where: str = "") -> Any:
    """Reject what pydantic's lax mode would quietly convert: booleans (``true`` is not 1)
    and text where a number is expected, non-finite numbers, fractional whole numbers.
    Containers are checked item by item; ``where`` names the item in the message."""
    if value is None:
        return value
    leaves = _leaves(tp)
    numeric = {leaf for leaf in leaves if leaf in (int, float)}
    if numeric and not any(leaf in (bool, str) or leaf is Any for leaf in leaves) and not any(
        typing.get_origin(leaf) is Literal for leaf in leaves
    ):
        kind = "a whole number" if numeric == {int} else "a number"
        if isinstance(value, bool):
            raise ValueError(f"{where}must be {kind}, not a boolean")
        if isinstance(value, str | bytes):
            raise ValueError(f"{where}must be {kind}, not text")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{where}must be a finite number, got {value}")
            if numeric == {int} and not value.is_integer():
                raise ValueError(f"{where}must be a whole number, got {value}")
        return value
    for leaf in leaves:
        origin, args = typing.get_origin(leaf), typing.get_args(leaf)
        if origin in (list, tuple) and isinstance(value, list | tuple):
            for i, item in enumerate(value):
                item_tp = args[0] if origin is list or args[-1:] == (Ellipsis,) else (
                    args[i] if i < len(args) else Any)
                _strict(item, item_tp, f"{where}item {i}: ")
        elif origin is dict and len(args) == 2 and isinstance(value, dict):
            for key, item in value.items():
                _strict(item, args[1], f"{where}{key}: ")
    return value


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_values(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return value if field is None else _strict(value, field.annotation)


def P(default: Any, unit: str, source: str, **constraints: Any) -> Any:
    """A parameter field: default, unit and source recorded for docs/model.md."""
    return Field(default, json_schema_extra={"unit": unit, "source": source}, **constraints)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]

# --------------------------------------------------------------------------------------
# Distributions as users write them
# --------------------------------------------------------------------------------------

_DIST_KEYS = {
    "fixed": ({"value"}, set()),
    "normal": ({"mean", "sd"}, {"low", "high"}),
    "truncnormal": ({"mean", "sd"}, {"low", "high"}),
    "lognormal": (set(), {"mean", "sd", "median", "cv", "range", "range_coverage", "low", "high"}),
    "uniform": ({"low", "high"}, set()),
}


def _number_to_fixed(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return {"dist": "fixed", "value": value}
    return value


class Dist(Frozen):
    """A distribution of a patient characteristic or parameter.

    Forms: a plain number (fixed); ``{dist: normal, mean, sd}`` with optional ``low`` and
    ``high`` truncation bounds (``truncnormal`` needs at least one); ``{dist: lognormal}``
    from ``mean`` and ``sd`` (of the variable itself), from ``median`` and ``cv``, or from
    ``median`` and ``range: [lo, hi]`` read as the central ``range_coverage`` (default
    95%) of the distribution, with optional truncation; ``{dist: uniform, low, high}``.
    For truncated distributions ``mean`` and ``sd`` are those of the parent
    (untruncated) distribution.
    """

    dist: Literal["fixed", "normal", "truncnormal", "lognormal", "uniform"]
    value: float | None = None
    mean: float | None = None
    sd: float | None = None
    median: float | None = None
    cv: float | None = None
    range: tuple[float, float] | None = None
    range_coverage: float | None = None
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Dist:
        required, optional = _DIST_KEYS[self.dist]
        given = {
            k for k in ("value", "mean", "sd", "median", "cv", "range", "range_coverage",
                        "low", "high") if getattr(self, k) is not None
        }
        missing = required - given
        if missing:
            raise ValueError(f"{self.dist} needs {', '.join(sorted(missing))}")
        extra = given - required - optional
        if extra:
            raise ValueError(
                f"{self.dist} does not take {', '.join(sorted(extra))}"
                f" (it takes {', '.join(sorted(required | optional))})"
            )
        for key in ("value", "mean", "sd", "median", "cv", "low", "high"):
            v = getattr(self, key)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{key} must be a finite number, got {v}")
        if self.sd is not None and self.sd <= 0:
            raise ValueError(f"sd must be > 0, got {self.sd}")
        if self.cv is not None and self.cv <= 0:
            raise ValueError(f"cv must be > 0, got {self.cv}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.dist == "truncnormal" and self.low is None and self.high is None:
            raise ValueError("truncnormal needs low, high or both")
        if self.dist == "lognormal":
            self._check_lognormal(given)
        self._check_truncation()
        return self

    def standard_bounds(self) -> tuple[float, float]:
        """Truncation bounds on the standard normal scale of the parent distribution
        (log scale for a lognormal); (-inf, inf) when not truncated."""
        if self.dist == "lognormal":
            mu, sigma = lognormal_params(self)
            lo = -math.inf if not self.low else (math.log(self.low) - mu) / sigma
            hi = math.inf if self.high is None else (math.log(self.high) - mu) / sigma
            return lo, hi
        if self.dist in ("normal", "truncnormal"):
            mean, sd = float(self.mean), float(self.sd)  # type: ignore[arg-type]
            lo = -math.inf if self.low is None else (self.low - mean) / sd
            hi = math.inf if self.high is None else (self.high - mean) / sd
            return lo, hi
        return -math.inf, math.inf

    def _check_truncation(self) -> None:
        lo, hi = self.standard_bounds()
        if lo == -math.inf and hi == math.inf:
            return
        log_share = log_normal_mass(lo, hi)
        if log_share >= math.log(MIN_TRUNCATED_MASS):
            return
        share = math.exp(log_share)
        shown = f"{share:.3g}" if share > 0 else f"about 1e{log_share / math.log(10):.0f}"
        bounds = f"[{_g(self.low)}, {_g(self.high)}]"
        parent = (f"mean {_g(self.mean)}, sd {_g(self.sd)}" if self.dist != "lognormal"
                  else f"median {math.exp(lognormal_params(self)[0]):.4g}")
        raise ValueError(
            f"the bounds low/high {bounds} hold only {shown} of this {self.dist}"
            f" distribution's mass ({parent}); at least {MIN_TRUNCATED_MASS:g} is needed."
            " Move the bounds towards the centre or fix the mean/sd (for a truncated"
            " distribution they are those of the parent, untruncated distribution)"
        )

    def _check_lognormal(self, given: set[str]) -> None:
        forms = [{"mean", "sd"}, {"median", "cv"}, {"median", "range"}]
        core = given - {"low", "high", "range_coverage"}
        if core not in forms:
            shown = ", ".join(sorted(core)) or "none of them"
            raise ValueError(
                "lognormal needs exactly one of: mean and sd; median and cv; median and range"
                f" (given: {shown})"
            )
        for key in ("mean", "median"):
            v = getattr(self, key)
            if v is not None and v <= 0:
                raise ValueError(f"lognormal {key} must be > 0, got {v}")
        if self.range is not None:
            lo, hi = self.range
            if not 0 < lo < hi:
                raise ValueError(f"range must be [lo, hi] with 0 < lo < hi, got {list(self.range)}")
            if self.median is not None and not lo < self.median < hi:
                raise ValueError(f"median {self.median} must lie inside range {list(self.range)}")
        if self.range_coverage is not None and not 0 < self.range_coverage < 1:
            raise ValueError(f"range_coverage must be in (0, 1), got {self.range_coverage}")
        if self.low is not None and self.low < 0:
            raise ValueError(f"a lognormal is positive: low must be >= 0, got {self.low}")

    def min_value(self) -> float:
        """Smallest value the distribution can take."""
        if self.dist == "fixed":
            return float(self.value)  # type: ignore[arg-type]
        if self.dist == "lognormal":
            return self.low if self.low is not None else 0.0
        if self.dist == "uniform":
            return float(self.low)  # type: ignore[arg-type]
        return self.low if self.low is not None else -math.inf

    def max_value(self) -> float:
        """Largest value the distribution can take."""
        if self.dist == "fixed":
            return float(self.value)  # type: ignore[arg-type]
        return self.high if self.high is not None else math.inf


def _g(x: float | None) -> str:
    return "none" if x is None else f"{x:g}"


def log_normal_mass(lo: float, hi: float) -> float:
    """log(Phi(hi) - Phi(lo)) for the standard normal, accurate far in either tail."""
    if lo > 0:  # the upper tail, mirrored: Phi(-lo) - Phi(-hi) keeps its digits
        lo, hi = -hi, -lo
    la, lb = float(special.log_ndtr(lo)), float(special.log_ndtr(hi))
    if lb == -math.inf:
        return -math.inf
    diff = la - lb
    if diff >= 0:
        return -math.inf
    return lb + math.log1p(-math.exp(diff)) if diff > -700 else lb


def lognormal_params(d: Dist) -> tuple[float, float]:
    """(mu, sigma) of log X for a lognormal Dist, from whichever form it was given in."""
    if d.mean is not None and d.sd is not None:
        s2 = math.log1p((d.sd / d.mean) ** 2)
        return math.log(d.mean) - 0.5 * s2, math.sqrt(s2)
    if d.median is None:
        raise ValueError("lognormal needs mean and sd, median and cv, or median and range")
    if d.cv is not None:
        return math.log(d.median), math.sqrt(math.log1p(d.cv**2))
    if d.range is None:
        raise ValueError("lognormal needs mean and sd, median and cv, or median and range")
    coverage = d.range_coverage if d.range_coverage is not None else 0.95
    z = float(special.ndtri(0.5 + coverage / 2.0))
    return math.log(d.median), math.log(d.range[1] / d.range[0]) / (2.0 * z)


def _positive(d: Dist) -> Dist:
    if d.min_value() <= 0 and not (d.dist == "lognormal" and d.low in (None, 0.0)):
        raise ValueError(
            f"must be positive, but this {d.dist} distribution can take values down to"
            f" {d.min_value()}; give low > 0 or use a lognormal"
        )
    return d


def _fraction(d: Dist) -> Dist:
    if d.min_value() < 0 or d.max_value() > 1:
        raise ValueError(
            f"must stay within [0, 1], but this {d.dist} distribution spans"
            f" [{d.min_value()}, {d.max_value()}]; give low and high"
        )
    return d


AnyDist = Annotated[Dist, BeforeValidator(_number_to_fixed)]
PositiveDist = Annotated[Dist, BeforeValidator(_number_to_fixed), AfterValidator(_positive)]
FractionDist = Annotated[Dist, BeforeValidator(_number_to_fixed), AfterValidator(_fraction)]


def fixed(value: float) -> Dist:
    return Dist(dist="fixed", value=value)


def normal(mean: float, sd: float, low: float | None = None, high: float | None = None) -> Dist:
    return Dist(dist="normal", mean=mean, sd=sd, low=low, high=high)


def lognormal(**kw: float) -> Dist:
    return Dist(dist="lognormal", **kw)


# --------------------------------------------------------------------------------------
# Population
# --------------------------------------------------------------------------------------


class Population(Frozen):
    """Baseline characteristics of the virtual patients at diagnosis (day 0)."""

    age_years: AnyDist = P(
        normal(39.8, 11.0, 28.0, 72.0), "years",
        f"{FAGGIOLI}: mean 42.6, range 28-72. Parent mean 39.8 and sd 11 (assumption) are"
        " chosen so the truncated distribution has mean 42.6.",
    )
    female: Probability = P(
        11 / 15, "proportion", f"{FAGGIOLI}: 11 of 15 (73%); 69-79% in larger cohorts"
        " (parameters.md section 9)",
    )
    weight_kg_female: PositiveDist = P(
        lognormal(mean=68.0, sd=13.0), "kg",
        "assumption: adult women, no weight reported in the abstract",
    )
    weight_kg_male: PositiveDist = P(
        lognormal(mean=82.0, sd=14.0), "kg",
        "assumption: adult men, no weight reported in the abstract",
    )
    dermatomyositis: Probability = P(
        1.36 / 2.36, "proportion",
        "DM:PM 1.36:1 in a systematic review of 2518 Asian PM/DM patients (PMC3600325);"
        " the abstract pools PM and DM without a split",
    )
    lung_involvement: Probability = P(
        5 / 15, "proportion", f"{FAGGIOLI}: reticular HRCT pattern in 5 of 15",
    )
    dysphagia: Probability = P(2 / 15, "proportion", f"{FAGGIOLI}: 2 of 15")
    thrombosis_risk_factor: Probability = P(
        0.05, "proportion",
        "assumption: share with a prior thromboembolism or equivalent risk factor, which"
        " multiplies the IVIG thromboembolism risk (see safety)",
    )
    cpk_u_per_l: PositiveDist = P(
        lognormal(mean=2980.0, sd=1300.0), "U/L",
        f"{FAGGIOLI}: mean 2980 U/L (range 2430-9100). The sd (CV 0.44) is an assumption:"
        " the reported range is right-skewed",
    )
    myoglobin_ng_per_ml: PositiveDist = P(
        lognormal(mean=420.0, sd=190.0), "ng/mL",
        f"{FAGGIOLI}: mean 420 ng/mL; sd (CV 0.45) assumption, as for CPK",
    )
    cpk_myoglobin_correlation: float = P(
        0.7, "correlation of log values",
        "assumption: both enzymes leak from the same inflamed muscle",
        ge=-0.99, le=0.99,
    )
    mmt8_baseline: AnyDist = P(
        normal(118.0, 12.0, 60.0, 146.0), "points (0-150)",
        "assumption: moderate weakness (leg weakness in all 15, Faggioli); MMT-8 is the IMACS"
        " strength core set measure (parameters.md section 8)",
    )

    @field_validator("mmt8_baseline")
    @classmethod
    def _mmt8_range(cls, d: Dist) -> Dist:
        if d.min_value() < 0 or d.max_value() > 150:
            raise ValueError("MMT-8 lies in [0, 150]: give low >= 0 and high <= 150")
        return d

    @field_validator("age_years")
    @classmethod
    def _age_range(cls, d: Dist) -> Dist:
        if d.min_value() < 0 or d.max_value() > 120:
            raise ValueError("ages must lie in [0, 120]: give low and high")
        return d


# --------------------------------------------------------------------------------------
# Disease and drug-response parameters (the physics)
# --------------------------------------------------------------------------------------


class Activity(Frozen):
    """Latent disease activity a = exp(y), a = 1 at diagnosis.

    dy/dt = k (s(t) - y) - E(t): y relaxes at rate k towards the untreated set point s(t),
    and treatment pushes it down at rate E(t) (see docs/model.md).
    """

    reversion_rate_per_day: float = P(
        0.0226, "1/day",
        "assumption (calibrated, docs/model.md section 6): log-activity moves halfway to its"
        " untreated level in about a month once treatment stops; sets how fast a taper"
        " below need shows as a relapse",
        gt=0,
    )
    acute_setpoint_log: AnyDist = P(
        normal(1.25, 0.3, None, 1.2), "log activity",
        "assumption (calibrated): untreated, the acute disease at presentation would climb"
        " above its activity at diagnosis (acute presentation); capped at 1.2 (3.3x) so"
        " untreated CPK stays within the ~50x ULN seen in active PM (parameters.md section"
        " 3); the spread lets some patients worsen despite treatment",
    )
    burnout_half_life_days: float = P(
        108.0, "days",
        "assumption (calibrated): the acute drive fades towards each patient's chronic level"
        " over months (monophasic 41%, polycyclic 33%, chronic 27% over 2 years: Milano"
        " cohort, ACR Convergence 2025)",
        gt=0,
    )
    chronic_setpoint_log: AnyDist = P(
        normal(-3.95, 1.2), "log activity",
        "assumption (calibrated): between-patient spread of the lasting disease drive; CPK"
        " sits near the ULN at about -3.3, so untreated, about 3 in 10 patients would burn"
        " out to a normal CPK (monophasic course 41% over 2 years on treatment, Milano"
        " cohort)",
    )
    flare_rate_per_year: float = P(
        0.6, "1/year",
        "assumption (calibrated): random flares on top of the dynamics; whether a flare"
        " becomes a relapse depends on the treatment at the time (relapse during taper"
        " 47%, Marie 2001; 65% CK-defined, mostly in the first 2 years, Clin Rheumatol"
        " 2006)",
        ge=0, le=50,
    )
    flare_setpoint_log: AnyDist = P(
        normal(-1.0, 1.0, None, 1.0), "log activity",
        "assumption (calibrated): at a flare the disease drive jumps back up to this level"
        " (relative to activity at diagnosis; never below where it already is), then fades"
        " like the acute drive. Capped at 1.0 so a flare never drives the disease beyond"
        " ~2.7x its activity at diagnosis",
    )
    polymyositis_setpoint_shift_log: float = P(
        0.5, "log activity",
        "relapses are commoner in PM than DM (Clin Rheumatol 2006, doi:10.1007/s10067-005-"
        "0075-3); the size of the shift is an assumption",
    )


class Enzymes(Frozen):
    """How activity shows in the blood: CPK, myoglobin, and the assays."""

    cpk_uln_u_per_l: float = P(200.0, "U/L", f"{FAGGIOLI}: normal value <200 U/L", gt=0)
    cpk_background_u_per_l: PositiveDist = P(
        lognormal(median=90.0, cv=0.3), "U/L",
        "assumption: a patient's CPK with inactive disease, inside the 20-200 U/L reference"
        " range (Unbound Medicine, parameters.md section 3)",
    )
    cpk_assay_cv: float = P(
        0.10, "coefficient of variation",
        "assumption: analytical plus within-day biological variation of CPK",
        ge=0, le=1,
    )
    myoglobin_uln_ng_per_ml: float = P(120.0, "ng/mL", f"{FAGGIOLI}: normal value <120 ng/mL", gt=0)
    myoglobin_background_ng_per_ml: PositiveDist = P(
        lognormal(median=45.0, cv=0.3), "ng/mL", "assumption: inside the reference range",
    )
    myoglobin_assay_cv: float = P(
        0.15, "coefficient of variation", "assumption", ge=0, le=1,
    )
    relapse_cpk_x_uln: float = P(
        1.5, "x ULN",
        "assumption: a measured CPK above 1.5x ULN after normalisation is a biochemical"
        " relapse (CK-defined relapse, Clin Rheumatol 2006); the margin keeps assay noise"
        " near the ULN from counting as relapse",
        gt=0,
    )

    @model_validator(mode="after")
    def _backgrounds_below_uln(self) -> Enzymes:
        if self.cpk_background_u_per_l.min_value() >= self.cpk_uln_u_per_l:
            raise ValueError("cpk_background_u_per_l must be able to lie below cpk_uln_u_per_l")
        return self


class Strength(Frozen):
    """Muscle strength (MMT-8) recovers more slowly than enzymes fall."""

    recovery_rate_ratio: float = P(
        0.33, "ratio",
        "assumption: strength's log-deficit moves at 1/3 the pace of log-activity, so"
        " enzymes can be normal while weakness persists; Faggioli: mild leg weakness until"
        " month 6",
        gt=0, le=1,
    )
    measurement_sd_points: float = P(3.0, "MMT-8 points", "assumption", ge=0)


class SteroidResponse(Frozen):
    """Emax dose-response of prednisone-equivalent dose on the fall of activity."""

    emax_per_day: float = P(
        0.106, "1/day",
        "assumption (calibrated): maximal rate at which steroids push log-activity down",
        ge=0,
    )
    ed50_mg_per_day: float = P(
        20.0, "mg/day prednisone",
        "assumption: half the maximal effect at 20 mg/day, so 60-80 mg/day induction is"
        " near-maximal and the 5 mg/day floor gives a fifth of it",
        gt=0,
    )
    onset_half_life_days: float = P(
        21.0, "days",
        "assumption (calibrated): steroid (and sparing-agent) effect on muscle inflammation"
        " builds up, and wears off after a dose cut, with this half-life; clinical response"
        " to steroids takes weeks (response onset ~7 weeks: droracle.ai [low-quality])",
        gt=0,
    )
    sensitivity_cv: float = P(0.4, "CV", "assumption: between-patient variability", ge=0)
    methylprednisolone_to_prednisone: float = P(
        1.25, "mg prednisone per mg", "standard glucocorticoid equivalence (4 mg MP = 5 mg"
        " prednisone); textbook, assumption for this model", gt=0,
    )


class IgGKinetics(Frozen):
    """Serum IgG excess after IVIG: two exponentials per infusion, closed form."""

    rise_g_per_l_per_g_per_kg: float = P(
        25.0, "g/L per g/kg",
        "derived: 1 g/kg into a plasma volume of ~40 mL/kg; matches 22 g/L above baseline at"
        " day 7 after 2 g/kg (Galnares-Olalde, GBS, n=42) with the kinetics below",
        gt=0,
    )
    rise_cv: float = P(
        0.7, "CV",
        "derived: rise in IgG 2 weeks after 2 g/kg 7.8 (SD 5.6) g/L (Kuitwaard 2009, Ann"
        " Neurol 66:597, n=174)",
        ge=0,
    )
    fast_fraction: float = P(
        0.87, "fraction",
        "derived: fit to 3053 mg/dL at day 7 and 1092 at day 30 from 832 at baseline"
        " (Galnares-Olalde) and 7.8 g/L at 2 weeks (Kuitwaard)",
        ge=0, le=1,
    )
    fast_half_life_days: float = P(
        3.5, "days",
        "derived (same fit): redistribution and FcRn saturation after high doses;"
        " equilibrium after 3-5 days (immunoglobulin SmPC)",
        gt=0,
    )
    slow_half_life_days: float = P(
        21.0, "days",
        "IgG half-life 17-21 days (Immunodeficiency UK) to 32.5 days at replacement doses"
        " (SmPC); high doses shorten it (FcRn saturation)",
        gt=0,
    )


class IVIGResponse(Frozen):
    """IVIG pushes activity down in proportion to an IgG-driven effect compartment."""

    effect_per_g_per_l_per_day: float = P(
        0.0030, "1/day per g/L",
        "assumption (calibrated to Faggioli 2015: mean CPK ~30% of baseline after 3 cycles);"
        " no PK/PD model of IVIG in myositis exists (parameters.md section 2)",
        ge=0,
    )
    effect_half_life_days: float = P(
        11.0, "days",
        "assumption (calibrated): immunomodulation builds and fades more slowly than serum"
        " IgG, so the benefit grows over cycles (Faggioli: CPK fell 70% after 3 cycles and"
        " normalised after 5)",
        gt=0,
    )
    sensitivity_cv: float = P(0.5, "CV", "assumption: between-patient variability", ge=0)


class Refractory(Frozen):
    """A subgroup with refractory disease: a lasting drive and little response to drugs."""

    share: float = P(
        0.17, "proportion",
        "17% of 77 PM/DM patients worsened on treatment (Marie 2001, J Rheumatol 28:2230);"
        " chronic continuous course in 27% over 2 years (Milano cohort)",
        ge=0, le=1,
    )
    steroid_relative_sensitivity: float = P(
        0.1, "ratio", "assumption: refractory patients keep a tenth of the steroid effect",
        ge=0, le=1,
    )
    ivig_relative_sensitivity: float = P(
        0.3, "ratio",
        "assumption (calibrated): IVIG still helps some steroid-resistant patients (Dalakas"
        " 1993, NEJM 329:1993), less than responsive ones",
        ge=0, le=1,
    )
    chronic_setpoint_shift_log: float = P(
        4.85, "log activity",
        "assumption (calibrated): refractory disease does not burn out; its lasting drive"
        " sits this much higher",
    )


class SparingAgent(Frozen):
    """A steroid-sparing immunosuppressant: a constant effect after an onset delay."""

    onset_delay_days: float = P(
        90.0, "days",
        "assumption: onset delay NOT FOUND in primary sources (parameters.md section 5);"
        " azathioprine added to prednisone made no difference at 3 months (Bunch 1980)",
        ge=0,
    )
    effect_per_day: float = P(
        0.02, "1/day",
        "assumption: about the effect of 20 mg/day prednisone in a typical patient",
        ge=0,
    )


def _default_agents() -> dict[str, SparingAgent]:
    return {
        "azathioprine": SparingAgent(onset_delay_days=90.0, effect_per_day=0.02),
        "methotrexate": SparingAgent(onset_delay_days=60.0, effect_per_day=0.02),
        "mycophenolate": SparingAgent(onset_delay_days=75.0, effect_per_day=0.02),
        "ciclosporin": SparingAgent(onset_delay_days=45.0, effect_per_day=0.02),
    }


class Disease(Frozen):
    activity: Activity = Activity()
    refractory: Refractory = Refractory()
    enzymes: Enzymes = Enzymes()
    strength: Strength = Strength()
    steroid: SteroidResponse = SteroidResponse()
    igg: IgGKinetics = IgGKinetics()
    ivig: IVIGResponse = IVIGResponse()
    sparing_agents: dict[str, SparingAgent] = Field(
        default_factory=_default_agents,
        json_schema_extra={
            "unit": "-",
            "source": "onset delays are assumptions (NOT FOUND, parameters.md section 5):"
            " ciclosporin 45, methotrexate 60, mycophenolate 75, azathioprine 90 days",
        },
    )


# --------------------------------------------------------------------------------------
# Decision rules
# --------------------------------------------------------------------------------------

RULE_ATOMS = {
    "cpk_above_x_uln": "measured CPK above this multiple of the ULN",
    "cpk_above_pct_baseline": "measured CPK above this percentage of the day-0 measurement",
    "cpk_rise_pct": "measured CPK more than this percentage above the previous measurement",
    "day_at_least": "the visit is on or after this day",
    "day_before": "the visit is before this day",
    "relapse": "a relapse was detected at this visit (true) or not (false)",
    "relapses_at_least": "the patient has had at least this many relapses",
    "prednisone_above_mg_per_day": "current prednisone dose above this",
    "ever_normal": "CPK has been measured below the ULN since diagnosis or the last relapse",
}


class Rule(Frozen):
    """A condition evaluated at a visit on measured values: one key per rule.

    Combine with ``any``, ``all`` and ``not``. Atoms are listed in ``RULE_ATOMS``.
    """

    any: list[Rule] | None = None
    all: list[Rule] | None = None
    not_: Rule | None = Field(None, alias="not")
    cpk_above_x_uln: float | None = Field(None, ge=0)
    cpk_above_pct_baseline: float | None = Field(None, ge=0)
    cpk_rise_pct: float | None = Field(None, ge=-100)
    day_at_least: float | None = Field(None, ge=0)
    day_before: float | None = Field(None, ge=0)
    relapse: bool | None = None
    relapses_at_least: int | None = Field(None, ge=0)
    prednisone_above_mg_per_day: float | None = Field(None, ge=0)
    ever_normal: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_key(self) -> Rule:
        keys = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(keys) != 1:
            names = ", ".join(["any", "all", "not", *RULE_ATOMS])
            shown = ", ".join("not" if k == "not_" else k for k in keys) or "nothing"
            raise ValueError(f"a rule has exactly one key, one of: {names}; got {shown}")
        if keys[0] in ("any", "all") and not getattr(self, keys[0]):
            raise ValueError(f"'{keys[0]}' needs a non-empty list of rules")
        return self

    def key(self) -> str:
        for k in type(self).model_fields:
            if getattr(self, k) is not None:
                return "not" if k == "not_" else k
        raise AssertionError("unreachable: validated rules have one key")


def _default_hold_rule() -> Rule:
    return Rule.model_validate({"all": [{"cpk_above_x_uln": 1.0}, {"cpk_rise_pct": 10.0}]})


# --------------------------------------------------------------------------------------
# Regimen
# --------------------------------------------------------------------------------------


class Pulse(Frozen):
    share: Probability = P(
        0.2, "proportion", f"{FAGGIOLI}: 3 of 15 patients had a methylprednisolone pulse",
    )
    methylprednisolone_mg_per_day: float = P(1000.0, "mg/day", FAGGIOLI, gt=0)
    days: int = P(3, "days", FAGGIOLI, ge=1, le=10)


class Steroid(Frozen):
    induction_mg_per_kg_per_day: float = P(
        1.0, "mg/kg/day prednisone",
        "prednisolone 1 mg/kg/day for 4-6 weeks (textbook excerpt, parameters.md section 5);"
        " usual practice per model brief",
        gt=0, le=3,
    )
    cap_mg_per_day: float = P(80.0, "mg/day", "model brief: ~1 mg/kg/day, cap ~80 mg", gt=0)
    induction_days: int = P(
        28, "days", "4-6 weeks (textbook excerpt, parameters.md section 5); 4 weeks chosen",
        ge=1,
    )
    round_to_mg: float = P(5.0, "mg", "assumption: doses in whole 5 mg tablets", gt=0)
    pulse: Pulse | None = Pulse()


class TaperStep(Frozen):
    above_mg_per_day: float = Field(ge=0)
    reduce_mg_per_day: float = Field(gt=0)
    every_days: int = Field(ge=1)


def _default_taper_steps() -> list[TaperStep]:
    return [
        TaperStep(above_mg_per_day=30.0, reduce_mg_per_day=5.0, every_days=7),
        TaperStep(above_mg_per_day=0.0, reduce_mg_per_day=5.0, every_days=14),
    ]


class RelapseResponse(Frozen):
    """What a clinic does at a relapse: raise prednisone, then taper again."""

    dose_factor: float = P(2.0, "x current dose", "assumption: double the dose", ge=1)
    min_mg_per_day: float = P(20.0, "mg/day", "assumption", ge=0)
    hold_days: int = P(28, "days", "assumption: 4 weeks before tapering again", ge=0)


class Taper(Frozen):
    """Scheduled steps down from the induction dose, paused when ``hold_when`` fires."""

    steps: list[TaperStep] = Field(
        default_factory=_default_taper_steps,
        json_schema_extra={
            "unit": "mg/day, days",
            "source": "reduce 5 mg/week; below 25-35 mg/day, 5 mg every 2 weeks (textbook"
            " excerpt, parameters.md section 5)",
        },
        min_length=1,
    )
    floor_mg_per_day: float = P(
        5.0, "mg/day", f"{FAGGIOLI}: maintenance at 5 mg/day (no independent source)", ge=0,
    )
    hold_when: Rule | None = Field(
        default_factory=_default_hold_rule,
        json_schema_extra={
            "unit": "rule",
            "source": "assumption: hold when CPK is above the ULN and more than 10% above the"
            " previous visit (model brief: taper when CPK is falling or normal)",
        },
    )
    relapse: RelapseResponse = RelapseResponse()

    @field_validator("steps")
    @classmethod
    def _steps_descending(cls, steps: list[TaperStep]) -> list[TaperStep]:
        aboves = [s.above_mg_per_day for s in steps]
        if aboves != sorted(aboves, reverse=True) or len(set(aboves)) != len(aboves):
            raise ValueError(
                f"steps must be ordered by strictly decreasing above_mg_per_day, got {aboves}"
            )
        return steps


class IVIG(Frozen):
    dose_g_per_kg: float = P(
        2.0, "g/kg per cycle", f"{FAGGIOLI}; standard dose (Wang 2012, Clin Rheumatol"
        " 31:801)", gt=0, le=4,
    )
    days_per_cycle: int = P(
        5, "days", f"{FAGGIOLI}: 2 g/kg in 5 days; label 2-5 days (Octagam 10%)", ge=1, le=10,
    )
    interval_days: int = P(28, "days", "every 4 weeks (Octagam 10% label, ProDERM)", ge=1)
    cycles: int = P(6, "cycles", f"{FAGGIOLI}: 6 months", ge=1, le=60)
    start_day: float | None = P(
        7.0, "day",
        f"assumption: {FAGGIOLI} gave IVIG 'after an initial treatment with corticosteroids';"
        " one week chosen",
        ge=0,
    )
    start_when: Rule | None = Field(
        None,
        json_schema_extra={"unit": "rule", "source": "rescue strategies (none by default)"},
    )
    start_delay_days: float = P(
        7.0, "days", "assumption: time to arrange infusions once a rescue rule fires", ge=0,
    )

    @model_validator(mode="after")
    def _one_start(self) -> IVIG:
        if self.days_per_cycle > self.interval_days:
            raise ValueError(
                f"days_per_cycle ({self.days_per_cycle}) exceeds interval_days"
                f" ({self.interval_days}): cycles would overlap"
            )
        if (self.start_day is None) == (self.start_when is None):
            raise ValueError("give either start_day (first-line) or start_when (rescue), not both")
        return self


class SparingPlan(Frozen):
    agent: str
    share: Probability = Field(description="proportion of patients who receive this agent")
    start_day: float = Field(ge=0)


class Regimen(Frozen):
    steroid: Steroid = Steroid()
    taper: Taper = Taper()
    ivig: IVIG | None = IVIG()
    sparing_agents: list[SparingPlan] = Field(default_factory=list)
    sparing_start_when: Rule | None = Field(
        None,
        json_schema_extra={
            "unit": "rule",
            "source": "none by default: a rule that starts the planned (or on-relapse) agent"
            " early, e.g. steroid dependence",
        },
    )
    sparing_on_relapse: str | None = P(
        "azathioprine", "agent",
        "assumption: an immunosuppressant is added at a relapse if none is running"
        " (guidelines: steroids + MTX or AZA first line; Meyer 2018)",
    )


class Visits(Frozen):
    every_days: int = P(14, "days", "assumption: fortnightly labs in the first months", ge=1)
    until_day: int = P(84, "day", "assumption", ge=0)
    then_every_days: int = P(28, "days", "assumption: monthly labs afterwards", ge=1)


# --------------------------------------------------------------------------------------
# Safety
# --------------------------------------------------------------------------------------


class AdverseEventIVIG(Frozen):
    """Risk per IVIG cycle at a reference dose, spread over infusion days by dose."""

    p_per_cycle: float = Field(ge=0, le=1)
    reference_dose_g_per_kg: float = Field(2.0, gt=0)
    daily_dose_exponent: float = Field(1.0, ge=0)
    reference_daily_dose_g_per_kg: float = Field(0.4, gt=0)
    risk_factor_multiplier: float = Field(1.0, ge=0)
    stops_ivig: bool = False
    source: str = ""


class AdverseEventSteroid(Frozen):
    """Hazard while on prednisone: a baseline rate times a relative risk by dose band."""

    baseline_per_year: float = Field(ge=0)
    dose_thresholds_mg_per_day: list[float] = Field(min_length=1)
    relative_risk: list[float] = Field(min_length=1)
    source: str = ""

    @model_validator(mode="after")
    def _bands(self) -> AdverseEventSteroid:
        th = self.dose_thresholds_mg_per_day
        if len(th) != len(self.relative_risk):
            raise ValueError(
                f"relative_risk needs one value per threshold ({len(th)}), got"
                f" {len(self.relative_risk)}"
            )
        if th != sorted(th) or th[0] <= 0:
            raise ValueError(f"dose_thresholds_mg_per_day must increase from > 0, got {th}")
        if any(r < 0 for r in self.relative_risk):
            raise ValueError("relative_risk values must be >= 0")
        return self


def _default_ivig_aes() -> dict[str, AdverseEventIVIG]:
    return {
        "headache": AdverseEventIVIG(
            p_per_cycle=0.053,
            source="derived: headache in 42% of ProDERM patients over ~10 cycles"
            " (rheumapedia summary [secondary]): 1-0.58^(1/10) per cycle",
        ),
        "aseptic_meningitis": AdverseEventIVIG(
            p_per_cycle=0.0031, stops_ivig=True,
            source="derived: 5 of 1637 infusion courses (0.31%), 4 of 194 patients (2%) in"
            " a 4-year registry (Pediatr Asthma Allergy Immunol 2000;14:287); 8.4 courses"
            " per patient, so an 'infusion' is read as one course (cycle)",
        ),
        "thromboembolism": AdverseEventIVIG(
            p_per_cycle=0.012, risk_factor_multiplier=3.69, stops_ivig=True,
            source="derived: 8 events in 664 ProDERM cycles (safety paper, doi:10.1186/"
            "s13075-023-03232-2); OR 3.69 with prior thromboembolism (Neurology Open 2022)",
        ),
        "acute_kidney_injury": AdverseEventIVIG(
            p_per_cycle=0.0012, stops_ivig=True,
            source="derived: 2 of 1637 infusion courses (0.12%), both adults on 2 g/kg (same"
            " registry; a course read as one cycle)",
        ),
    }


def _default_steroid_aes() -> dict[str, AdverseEventSteroid]:
    return {
        "vertebral_fracture": AdverseEventSteroid(
            baseline_per_year=0.004, dose_thresholds_mg_per_day=[0.001, 2.5, 7.5],
            relative_risk=[1.55, 2.59, 5.18],
            source="relative risks by daily dose (van Staa, GPRD, 244,235 users); baseline"
            " rate 0.4%/year is an assumption",
        ),
        "hip_fracture": AdverseEventSteroid(
            baseline_per_year=0.001, dose_thresholds_mg_per_day=[0.001, 2.5, 7.5],
            relative_risk=[0.99, 1.77, 2.27],
            source="relative risks by daily dose (van Staa, GPRD); baseline 0.1%/year at"
            " age ~45 is an assumption",
        ),
        "serious_infection": AdverseEventSteroid(
            baseline_per_year=0.02, dose_thresholds_mg_per_day=[0.001, 7.5, 20.0],
            relative_risk=[1.0, 1.5, 3.0],
            source="assumption: infection risk rises above 20-25 mg/day (seekhealthz.com"
            " [low-quality]); baseline 2%/year and relative risks are assumptions",
        ),
        "steroid_diabetes": AdverseEventSteroid(
            baseline_per_year=0.005, dose_thresholds_mg_per_day=[0.001, 10.0, 30.0],
            relative_risk=[1.0, 4.0, 8.0],
            source="assumption: insulin resistance above 10 mg/day (seekhealthz.com"
            " [low-quality]); incidence vs dose NOT FOUND",
        ),
    }


class Safety(Frozen):
    ivig: dict[str, AdverseEventIVIG] = Field(default_factory=_default_ivig_aes)
    steroid: dict[str, AdverseEventSteroid] = Field(default_factory=_default_steroid_aes)


# --------------------------------------------------------------------------------------
# Economics and outcome definitions
# --------------------------------------------------------------------------------------


def _default_sparing_prices() -> dict[str, float]:
    return {"azathioprine": 0.2, "methotrexate": 0.3, "mycophenolate": 1.0, "ciclosporin": 4.0}


class Prices(Frozen):
    """Unit prices, in the scenario's currency."""

    ivig_per_g: float = P(
        34.0, "per g",
        "UK NHS average price GBP 34/g (National Immunoglobulin Database Annual Report"
        " 2018/19); UK list prices GBP 46-59/g (BNF 2018); US USD 73-350/g [low-quality]",
        ge=0,
    )
    infusion_day: float = P(
        250.0, "per infusion day",
        "assumption: day-unit chair, nursing and consumables; chair time NOT FOUND"
        " (parameters.md section 7); about 2.3 h at label rates for 0.4 g/kg/day",
        ge=0,
    )
    prednisone_per_mg: float = P(
        0.002, "per mg", "assumption: generic oral prednisolone, a few pence per 5 mg", ge=0,
    )
    methylprednisolone_pulse_day: float = P(
        400.0, "per pulse day", "assumption: day-case admission for 1 g IV methylprednisolone",
        ge=0,
    )
    visit: float = P(
        150.0, "per visit",
        "assumption: specialist outpatient visit with CPK and myoglobin", ge=0,
    )
    sparing_agent_per_day: dict[str, float] = Field(
        default_factory=_default_sparing_prices,
        json_schema_extra={
            "unit": "per day",
            "source": "assumption: generic oral doses (azathioprine 2 mg/kg, methotrexate"
            " 15-25 mg weekly, mycophenolate 2 g, ciclosporin 3-5 mg/kg) at UK generic"
            " prices; not in parameters.md",
        },
    )


class Utilities(Frozen):
    """Health-state utilities for QALYs, by the state seen at each visit."""

    active_disease: float = P(
        0.55, "utility", "assumption: measured CPK at or above the ULN; no EQ-5D by state"
        " for PM/DM in parameters.md", ge=-0.6, le=1,
    )
    remission_on_high_dose_steroid: float = P(
        0.70, "utility", "assumption: CPK normal, prednisone above the threshold below",
        ge=-0.6, le=1,
    )
    remission: float = P(
        0.80, "utility", "assumption: CPK normal on low-dose or no prednisone", ge=-0.6, le=1,
    )
    high_dose_steroid_mg_per_day: float = P(
        7.5, "mg/day", "assumption: the usual 7.5 mg/day glucocorticoid-toxicity threshold"
        " (fracture relative risk steps up at 7.5 mg, van Staa)", ge=0,
    )


def _default_ae_costs() -> dict[str, float]:
    return {"headache": 0.0, "aseptic_meningitis": 1500.0, "thromboembolism": 4000.0,
            "acute_kidney_injury": 3000.0, "vertebral_fracture": 2500.0, "hip_fracture": 9000.0,
            "serious_infection": 3500.0, "steroid_diabetes": 800.0}


def _default_ae_qaly_loss() -> dict[str, float]:
    return {"headache": 0.001, "aseptic_meningitis": 0.01, "thromboembolism": 0.05,
            "acute_kidney_injury": 0.02, "vertebral_fracture": 0.03, "hip_fracture": 0.1,
            "serious_infection": 0.02, "steroid_diabetes": 0.02}


class Economics(Frozen):
    currency: str = P("GBP", "-", "the currency of the default prices (UK NHS)")
    discount_rate_per_year: float = P(
        0.035, "per year", "assumption: 3.5%/year for costs and QALYs, as in the UK NICE"
        " reference case", ge=0, le=0.2,
    )
    willingness_to_pay_per_qaly: float = P(
        20000.0, "per QALY", "assumption: the lower end of the UK NICE GBP 20,000-30,000/QALY"
        " range; used for net monetary benefit and acceptability curves", ge=0,
    )
    prices: Prices = Prices()
    utilities: Utilities = Utilities()
    adverse_event_cost: dict[str, float] = Field(
        default_factory=_default_ae_costs,
        json_schema_extra={"unit": "per event", "source": "assumption: typical UK episode"
                           " costs; none in parameters.md"},
    )
    adverse_event_qaly_loss: dict[str, float] = Field(
        default_factory=_default_ae_qaly_loss,
        json_schema_extra={"unit": "QALY per event", "source": "assumption: one-off"
                           " losses; none in parameters.md"},
    )

    @field_validator("adverse_event_cost", "adverse_event_qaly_loss",
                     "prices", mode="after")
    @classmethod
    def _non_negative(cls, value: Any) -> Any:
        items = value.items() if isinstance(value, dict) else []
        for k, v in items:
            if v < 0:
                raise ValueError(f"{k} must be >= 0, got {v}")
        return value


class Remission(Frozen):
    """Complete remission at a month m (an outcome definition, docs/model.md)."""

    cpk_normal_weeks: int = P(
        12, "weeks",
        "assumption: CPK normal at every visit of the last 12 weeks; most published"
        " definitions want >= 6 months of inactivity (Pongtarakulpanit 2025), too long to"
        " assess at month 6",
        ge=0, le=52,
    )
    max_prednisone_mg_per_day: float = P(
        7.5, "mg/day", "assumption: on low-dose or no prednisone", ge=0,
    )
    min_mmt8: float = P(
        140.0, "MMT-8 points", "assumption: at most minimal weakness (>= 93% of 150)",
        ge=0, le=150,
    )


class Outcomes(Frozen):
    remission: Remission = Remission()


# --------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------


class Scenario(Frozen):
    name: str = "unnamed scenario"
    description: str = ""
    patients: int = Field(1000, ge=1, le=MAX_PATIENTS)
    seed: int = Field(20150610, ge=0, lt=SEED_BOUND)
    horizon_days: int = Field(728, ge=28, le=3650)
    population: Population = Population()
    disease: Disease = Disease()
    regimen: Regimen = Regimen()
    visits: Visits = Visits()
    safety: Safety = Safety()
    economics: Economics = Economics()
    outcomes: Outcomes = Outcomes()
