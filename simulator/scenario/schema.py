"""The scenario model: what a YAML scenario may say, its units, defaults and their sources.

Every field is typed, frozen and validated; unknown keys are rejected. Units are in the
names (``dose_g_per_kg``, ``half_life_days``). Each default carries a ``source`` in its
field metadata: a citation from ``docs/sources/parameters.md``, the founding abstract
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

from .. import fmath
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


_CHECKS: dict[int, tuple[Any, str | None, bool, list[tuple[Any, Any]]]] = {}


def _check_of(tp: Any) -> tuple[str | None, bool, list[tuple[Any, Any]]]:
    """What ``_strict`` checks for annotation ``tp``, worked out once per annotation (a
    scenario's validation calls it for every field): the kind of number it must be
    (None: not a number), whether whole, and its containers' (origin, args)."""
    got = _CHECKS.get(id(tp))
    if got is not None and got[0] is tp:
        return got[1], got[2], got[3]
    leaves = _leaves(tp)
    numeric = {leaf for leaf in leaves if leaf in (int, float)}
    whole = numeric == {int}
    kind = None
    if (
        numeric
        and not any(leaf in (bool, str) or leaf is Any for leaf in leaves)
        and not any(typing.get_origin(leaf) is Literal for leaf in leaves)
    ):
        kind = "a whole number" if whole else "a number"
    containers = [(typing.get_origin(leaf), typing.get_args(leaf)) for leaf in leaves]
    _CHECKS[id(tp)] = (tp, kind, whole, containers)  # keeps tp: its id stays unique
    return kind, whole, containers


def _strict(value: Any, tp: Any, where: str = "") -> Any:
    """Reject what pydantic's lax mode would quietly convert: booleans (``true`` is not 1)
    and text where a number is expected, non-finite numbers, fractional whole numbers.
    Containers are checked item by item; ``where`` names the item in the message."""
    if value is None:
        return value
    kind, whole, containers = _check_of(tp)
    if kind is not None:
        if isinstance(value, bool):
            raise ValueError(f"{where}must be {kind}, not a boolean")
        if isinstance(value, str | bytes):
            raise ValueError(f"{where}must be {kind}, not text")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{where}must be a finite number, got {value}")
            if whole and not value.is_integer():
                raise ValueError(f"{where}must be a whole number, got {value}")
        return value
    for origin, args in containers:
        if origin in (list, tuple) and isinstance(value, list | tuple):
            for i, item in enumerate(value):
                item_tp = (
                    args[0]
                    if origin is list or args[-1:] == (Ellipsis,)
                    else (args[i] if i < len(args) else Any)
                )
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
            k
            for k in (
                "value",
                "mean",
                "sd",
                "median",
                "cv",
                "range",
                "range_coverage",
                "low",
                "high",
            )
            if getattr(self, k) is not None
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
            lo = -math.inf if not self.low else (fmath.log(self.low) - mu) / sigma
            hi = math.inf if self.high is None else (fmath.log(self.high) - mu) / sigma
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
        parent = (
            f"mean {_g(self.mean)}, sd {_g(self.sd)}"
            if self.dist != "lognormal"
            else f"median {math.exp(lognormal_params(self)[0]):.4g}"
        )
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


def lognormal_sigma(cv: float) -> float:
    """SD of log X for a lognormal X with coefficient of variation ``cv``."""
    return math.sqrt(fmath.log1p(cv * cv))


def lognormal_params(d: Dist) -> tuple[float, float]:
    """(mu, sigma) of log X for a lognormal Dist, from whichever form it was given in."""
    if d.mean is not None and d.sd is not None:
        ratio = d.sd / d.mean
        s2 = fmath.log1p(ratio * ratio)
        return fmath.log(d.mean) - 0.5 * s2, math.sqrt(s2)
    if d.median is None:
        raise ValueError("lognormal needs mean and sd, median and cv, or median and range")
    if d.cv is not None:
        return fmath.log(d.median), lognormal_sigma(d.cv)
    if d.range is None:
        raise ValueError("lognormal needs mean and sd, median and cv, or median and range")
    coverage = d.range_coverage if d.range_coverage is not None else 0.95
    z = float(special.ndtri(0.5 + coverage / 2.0))
    return fmath.log(d.median), fmath.log(d.range[1] / d.range[0]) / (2.0 * z)


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
        normal(39.8, 11.0, 28.0, 72.0),
        "years",
        f"{FAGGIOLI}: mean 42.6, range 28-72. Parent mean 39.8 and sd 11 (assumption) are"
        " chosen so the truncated distribution has mean 42.6.",
    )
    female: Probability = P(
        11 / 15,
        "proportion",
        f"{FAGGIOLI}: 11 of 15 (73%); 69-79% in larger cohorts (parameters.md section 9)",
    )
    weight_kg_female: PositiveDist = P(
        lognormal(mean=68.0, sd=13.0),
        "kg",
        "assumption: adult women, no weight reported in the abstract",
    )
    weight_kg_male: PositiveDist = P(
        lognormal(mean=82.0, sd=14.0),
        "kg",
        "assumption: adult men, no weight reported in the abstract",
    )
    dermatomyositis: Probability = P(
        1.36 / 2.36,
        "proportion",
        "DM:PM 1.36:1 in a systematic review of 2518 Asian PM/DM patients (PMC3600325);"
        " the abstract pools PM and DM without a split",
    )
    lung_involvement: Probability = P(
        5 / 15,
        "proportion",
        f"{FAGGIOLI}: reticular HRCT pattern in 5 of 15",
    )
    dysphagia: Probability = P(2 / 15, "proportion", f"{FAGGIOLI}: 2 of 15")
    thrombosis_risk_factor: Probability = P(
        0.05,
        "proportion",
        "assumption: share with a prior thromboembolism or equivalent risk factor, which"
        " multiplies the IVIG thromboembolism risk (see safety)",
    )
    cpk_u_per_l: PositiveDist = P(
        lognormal(mean=2980.0, sd=1300.0),
        "U/L",
        f"{FAGGIOLI}: mean 2980 U/L (range 2430-9100). The sd (CV 0.44) is an assumption:"
        " the reported range is right-skewed",
    )
    myoglobin_ng_per_ml: PositiveDist = P(
        lognormal(mean=420.0, sd=190.0),
        "ng/mL",
        f"{FAGGIOLI}: mean 420 ng/mL; sd (CV 0.45) assumption, as for CPK",
    )
    cpk_myoglobin_correlation: float = P(
        0.7,
        "correlation of log values",
        "assumption: both enzymes leak from the same inflamed muscle",
        ge=-0.99,
        le=0.99,
    )
    mmt8_baseline: AnyDist = P(
        normal(118.0, 12.0, 60.0, 146.0),
        "points (0-150)",
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
# Disease (the physics) and regimens: their own modules, which build on the pieces above
# --------------------------------------------------------------------------------------

from .center import Center, chair_hours  # noqa: E402
from .disease import Disease  # noqa: E402
from .regimen import IVIG, Regimen, Rule, Visits  # noqa: E402

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
    case_fatality: float = Field(0.0, ge=0, le=1)
    source: str = ""


class AdverseEventSteroid(Frozen):
    """Hazard while on prednisone: a baseline rate times a relative risk by dose band."""

    baseline_per_year: float = Field(ge=0)
    dose_thresholds_mg_per_day: list[float] = Field(min_length=1)
    relative_risk: list[float] = Field(min_length=1)
    case_fatality: float = Field(0.0, ge=0, le=1)
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
            p_per_cycle=0.0031,
            stops_ivig=True,
            source="derived: 5 of 1637 infusion courses (0.31%), 4 of 194 patients (2%) in"
            " a 4-year registry (Pediatr Asthma Allergy Immunol 2000;14:287); 8.4 courses"
            " per patient, so an 'infusion' is read as one course (cycle)",
        ),
        "thromboembolism": AdverseEventIVIG(
            p_per_cycle=0.012,
            risk_factor_multiplier=3.69,
            stops_ivig=True,
            case_fatality=0.2,
            source="derived: 8 events in 664 ProDERM cycles (safety paper, doi:10.1186/"
            "s13075-023-03232-2); OR 3.69 with prior thromboembolism (Neurology Open 2022);"
            " case fatality 20% (IVIG thrombosis review, PMID 15970713)",
        ),
        "acute_kidney_injury": AdverseEventIVIG(
            p_per_cycle=0.0012,
            stops_ivig=True,
            source="derived: 2 of 1637 infusion courses (0.12%), both adults on 2 g/kg (same"
            " registry; a course read as one cycle)",
        ),
    }


def _default_steroid_aes() -> dict[str, AdverseEventSteroid]:
    return {
        "vertebral_fracture": AdverseEventSteroid(
            baseline_per_year=0.004,
            dose_thresholds_mg_per_day=[0.001, 2.5, 7.5],
            relative_risk=[1.55, 2.59, 5.18],
            source="relative risks by daily dose (van Staa, GPRD, 244,235 users); baseline"
            " rate 0.4%/year is an assumption",
        ),
        "hip_fracture": AdverseEventSteroid(
            baseline_per_year=0.001,
            dose_thresholds_mg_per_day=[0.001, 2.5, 7.5],
            relative_risk=[0.99, 1.77, 2.27],
            source="relative risks by daily dose (van Staa, GPRD); baseline 0.1%/year at"
            " age ~45 is an assumption",
        ),
        "serious_infection": AdverseEventSteroid(
            baseline_per_year=0.02,
            dose_thresholds_mg_per_day=[0.001, 7.5, 20.0],
            relative_risk=[1.0, 1.5, 3.0],
            case_fatality=0.1,
            source="assumption: infection risk rises above 20-25 mg/day (seekhealthz.com"
            " [low-quality]); baseline 2%/year and relative risks are assumptions; case"
            " fatality 10% is an assumption (infection caused 34/49 deaths in a cohort of"
            " 676, Xiao 2016, parameters.md section 9)",
        ),
        "steroid_diabetes": AdverseEventSteroid(
            baseline_per_year=0.005,
            dose_thresholds_mg_per_day=[0.001, 10.0, 30.0],
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
        34.0,
        "per g",
        "UK NHS average price GBP 34/g (National Immunoglobulin Database Annual Report"
        " 2018/19); UK list prices GBP 46-59/g (BNF 2018); US USD 73-350/g [low-quality]",
        ge=0,
    )
    infusion_day: float = P(
        250.0,
        "per infusion day",
        "assumption: day-unit chair, nursing and consumables; chair time NOT FOUND"
        " (parameters.md section 7); about 2.3 h at label rates for 0.4 g/kg/day",
        ge=0,
    )
    prednisone_per_mg: float = P(
        0.002,
        "per mg",
        "assumption: generic oral prednisolone, a few pence per 5 mg",
        ge=0,
    )
    methylprednisolone_pulse_day: float = P(
        400.0,
        "per pulse day",
        "assumption: day-case admission for 1 g IV methylprednisolone",
        ge=0,
    )
    visit: float = P(
        150.0,
        "per visit",
        "assumption: specialist outpatient visit with CPK and myoglobin",
        ge=0,
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
    """Health-state utility at each visit from function (HAQ) and disease activity."""

    haq_intercept: float = P(
        0.9567,
        "utility",
        "Carreno A et al., Value Health 2011;14:192-200 (doi:10.1016/j.jval.2010.11.001):"
        " EQ-5D (TTO) = 0.9567 - 0.309 HAQ-DI, in rheumatoid arthritis; its use in myositis"
        " is an assumption (disability drives utility the same way)",
        ge=-0.6,
        le=1,
    )
    haq_slope: float = P(
        -0.309,
        "utility per HAQ unit",
        "Carreno 2011 (as above)",
        ge=-1,
        le=0,
    )
    active_disease_decrement: float = P(
        0.05,
        "utility",
        "assumption: a further loss while the disease is active (not inactive at the visit:"
        " fatigue, rash, dysphagia beyond what HAQ captures)",
        ge=0,
        le=1,
    )
    high_dose_steroid_decrement: float = P(
        0.03,
        "utility",
        "assumption: a loss while on more than the dose below (weight gain,"
        " sleep disturbance, cushingoid features rise above 5-7.5 mg/day, parameters.md 6b)",
        ge=0,
        le=1,
    )
    high_dose_steroid_mg_per_day: float = P(
        7.5,
        "mg/day",
        "assumption: the usual 7.5 mg/day glucocorticoid-toxicity threshold"
        " (fracture relative risk steps up at 7.5 mg, van Staa)",
        ge=0,
    )


def _default_ae_costs() -> dict[str, float]:
    return {
        "headache": 0.0,
        "aseptic_meningitis": 1500.0,
        "thromboembolism": 4000.0,
        "acute_kidney_injury": 3000.0,
        "vertebral_fracture": 2500.0,
        "hip_fracture": 9000.0,
        "serious_infection": 3500.0,
        "steroid_diabetes": 800.0,
    }


def _default_ae_qaly_loss() -> dict[str, float]:
    return {
        "headache": 0.001,
        "aseptic_meningitis": 0.01,
        "thromboembolism": 0.05,
        "acute_kidney_injury": 0.02,
        "vertebral_fracture": 0.03,
        "hip_fracture": 0.1,
        "serious_infection": 0.02,
        "steroid_diabetes": 0.02,
    }


class Economics(Frozen):
    currency: str = P("GBP", "-", "the currency of the default prices (UK NHS)")
    discount_rate_per_year: float = P(
        0.035,
        "per year",
        "assumption: 3.5%/year for costs and QALYs, as in the UK NICE reference case",
        ge=0,
        le=0.2,
    )
    willingness_to_pay_per_qaly: float = P(
        20000.0,
        "per QALY",
        "assumption: the lower end of the UK NICE GBP 20,000-30,000/QALY"
        " range; used for net monetary benefit and acceptability curves",
        ge=0,
    )
    cea_horizon: Literal["lifetime", "clinical"] = P(
        "lifetime",
        "-",
        "NICE reference case: a lifetime horizon for a chronic disease. 'lifetime' extends"
        " costs, QALYs and survival beyond the clinical horizon (docs/model.md §5,"
        " Lifetime); 'clinical' uses the simulated horizon only",
    )
    perspective: str = P(
        "UK NHS and personal social services",
        "-",
        "assumption: the NICE reference-case perspective of the default prices",
    )
    price_year: int = P(
        2019,
        "year",
        "the IVIG price, the main cost, is the NHS 2018/19"
        " average (parameters.md section 7); the other prices are"
        " assumptions of that period",
        ge=1900,
        le=2100,
    )
    new_patients_per_year: float = P(
        740.0,
        "patients/year",
        "derived: dermatomyositis incidence 1.1/100,000 person-years (Kronzer 2023,"
        " parameters.md section 9) x UK population ~67 million; polymyositis would add"
        " more, and not all are candidates for IVIG (an assumption either way). Scales EVPI"
        " to a population",
        ge=0,
    )
    decision_horizon_years: int = P(
        10,
        "years",
        "assumption: how long the decision holds (new patients affected), for population EVPI",
        ge=1,
        le=100,
    )
    prices: Prices = Prices()
    utilities: Utilities = Utilities()
    adverse_event_cost: dict[str, float] = Field(
        default_factory=_default_ae_costs,
        json_schema_extra={
            "unit": "per event",
            "source": "assumption: typical UK episode costs; none in parameters.md",
        },
    )
    adverse_event_qaly_loss: dict[str, float] = Field(
        default_factory=_default_ae_qaly_loss,
        json_schema_extra={
            "unit": "QALY per event",
            "source": "assumption: one-off losses; none in parameters.md",
        },
    )

    @field_validator("adverse_event_cost", "adverse_event_qaly_loss", "prices", mode="after")
    @classmethod
    def _non_negative(cls, value: Any) -> Any:
        items = value.items() if isinstance(value, dict) else []
        for k, v in items:
            if v < 0:
                raise ValueError(f"{k} must be >= 0, got {v}")
        return value


class Inactive(Frozen):
    """When the disease counts as inactive at a visit (docs/model.md §5)."""

    max_physician_global_cm: float = P(
        1.0,
        "cm",
        "assumption: IMACS wording not retrieved; physician global activity at most"
        " 1 cm of 10 (Pongtarakulpanit 2025, Autoimmun Rev 24:103879: definitions vary)",
        ge=0,
        le=10,
    )
    max_extramuscular_cm: float = P(1.0, "cm", "assumption, as above", ge=0, le=10)
    max_cpk_x_uln: float = P(1.0, "x ULN", "assumption: CPK below the ULN", gt=0)


class RelapseDefinition(Frozen):
    """A clinical relapse: enzymes together with function or physician global worsening,
    after the disease had responded (CPK normal since diagnosis or the last relapse)."""

    cpk_x_uln: float = P(
        1.5,
        "x ULN",
        "assumption: enzymes rise (CPK above 1.5x ULN; CK-defined relapse, Clin Rheumatol"
        " 2006, doi:10.1007/s10067-005-0075-3) together with clinical worsening (Marie 2001)",
        gt=0,
    )
    mmt8_drop_pct_best: float = P(
        10.0,
        "%",
        "assumption: MMT-8 at least 10% below its best since the last relapse",
        ge=0,
        le=100,
    )
    physician_global_rise_cm: float = P(
        2.0,
        "cm",
        "physician global 2 cm above its lowest since the last relapse (the 2 cm step of the"
        " ProDERM confirmed-deterioration definition, parameters.md section 8)",
        ge=0,
        le=10,
    )
    confirm_at_next_visit: bool = P(
        False,
        "-",
        "false: a relapse counts (and is treated) at the visit where it is seen (Marie"
        " 2001 and Clin Rheumatol 2006 count clinical recurrences); true: the criteria"
        " must hold at two visits in a row, as ProDERM's confirmed deterioration"
        " (parameters.md section 8)",
    )


class Outcomes(Frozen):
    inactive: Inactive = Inactive()
    relapse: RelapseDefinition = RelapseDefinition()
    complete_response_days: int = P(
        168,
        "days",
        "complete clinical response: inactive for at least 6 months (most definitions,"
        " Pongtarakulpanit 2025)",
        ge=28,
        le=730,
    )
    course_type_days: int = P(
        728,
        "days",
        "course over the first two years (104 weeks): monophasic, polycyclic, chronic"
        " continuous"
        " (Milano cohort, ACR Convergence 2025)",
        ge=28,
    )


# --------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------


class Entry(Frozen):
    """Entry into a study: patients are followed from diagnosis (a run-in on the
    scenario's regimen) and enter at the first 4-weekly visit in [from_day, until_day]
    where ``when`` fires; from then the Total Improvement Score is against the entry
    visit and the ``*_from_entry`` outcomes count from entry. Patients who never enter are
    left out of those outcomes (``entered`` gives the share who do)."""

    when: Rule
    from_day: int = Field(0, ge=0)
    until_day: int = Field(ge=0)

    @model_validator(mode="after")
    def _window(self) -> Entry:
        if self.until_day < self.from_day:
            raise ValueError(f"until_day ({self.until_day}) is before from_day ({self.from_day})")
        return self


class Scenario(Frozen):
    name: str = "unnamed scenario"
    description: str = ""
    patients: int = Field(1000, ge=1, le=MAX_PATIENTS)
    seed: int = Field(20150610, ge=0, lt=SEED_BOUND)
    horizon_days: int = Field(728, ge=28, le=36525)
    population: Population = Population()
    disease: Disease = Disease()
    regimen: Regimen = Regimen()
    visits: Visits = Visits()
    safety: Safety = Safety()
    economics: Economics = Economics()
    outcomes: Outcomes = Outcomes()
    entry: Entry | None = None
    center: Center | None = None

    @model_validator(mode="after")
    def _infusion_day_fits_the_center(self) -> Scenario:
        if self.center is None or self.regimen.ivig is None:
            return self
        doses = self.regimen.ivig.dose_g_per_kg
        most = max(doses) if isinstance(doses, list) else doses
        hours = chair_hours(self.center, most / self.regimen.ivig.days_per_cycle)
        start, end = self.center.open_hours
        if hours > end - start:
            raise ValueError(
                f"center: an infusion day of {most / self.regimen.ivig.days_per_cycle:g} g/kg"
                f" takes {hours:.2f} chair hours, more than the opening hours"
                f" ({end - start:g} h): widen center.open_hours or spread the cycle over"
                " more days"
            )
        return self

    @model_validator(mode="after")
    def _entry_within_horizon(self) -> Scenario:
        if self.entry is not None and self.entry.until_day > self.horizon_days:
            raise ValueError(
                f"entry.until_day ({self.entry.until_day}) is after the horizon"
                f" (horizon_days: {self.horizon_days})"
            )
        return self
