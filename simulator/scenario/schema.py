"""The scenario model: what a YAML scenario may say, its units, defaults and their sources.

Every field is typed, frozen and validated; unknown keys are rejected. Units are in the
names (``dose_g_per_kg``, ``half_life_days``). Each default carries a ``source`` in its
field metadata: a citation from ``docs/sources/parameters.md``, the founding abstract
(Faggioli et al., Ann Rheum Dis 2015;74(Suppl 2):1139), or the word "assumption" with
the reasoning; ``docs/model.md`` tabulates them and a test keeps that table in step with
this file.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from scipy import special

from .. import fmath
from ..limits import MAX_PATIENTS, MIN_TRUNCATED_MASS, SEED_BOUND

log = logging.getLogger(__name__)

__all__ = [
    "IVIG",
    "MERGED_DEFAULTS",
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


def _converted(tp: Any) -> bool:
    """True when a validator of ``tp`` (at any level of its unions) may turn one kind of
    value into another before pydantic checks it (a number into a distribution)."""
    while typing.get_origin(tp) is Annotated:
        args = typing.get_args(tp)
        if any(isinstance(m, BeforeValidator | PlainValidator | WrapValidator) for m in args[1:]):
            return True
        tp = args[0]
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(_converted(arg) for arg in typing.get_args(tp))
    return False


_LIST_ORIGINS = (list, tuple, set, frozenset)
_SCALAR_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
_PLURAL_NAMES = {int: "whole numbers", float: "numbers", bool: "true/false values", str: "texts"}


def _expected(leaves: list[Any]) -> tuple[str, bool, bool] | None:
    """What ``leaves`` accept, as (text for messages, accepts a list, accepts a mapping);
    None when some leaf is not a plain type, a list, a mapping or a model."""
    names: list[str] = []
    accepts_list = accepts_map = False
    for leaf in leaves:
        origin = typing.get_origin(leaf)
        if leaf in _SCALAR_NAMES:
            name = _SCALAR_NAMES[leaf]
        elif origin is Literal:
            name = "one of " + ", ".join(repr(a) for a in typing.get_args(leaf))
        elif origin in _LIST_ORIGINS:
            accepts_list = True
            args = [a for a in typing.get_args(leaf) if a is not Ellipsis]
            items = {_PLURAL_NAMES.get(a) for a in args}
            name = f"a list of {items.pop()}" if len(items) == 1 and None not in items else "a list"
        elif origin is dict or (isinstance(leaf, type) and issubclass(leaf, BaseModel)):
            accepts_map = True
            name = "a mapping"
        else:
            return None
        if name not in names:
            names.append(name)
    if "a number" in names and "a whole number" in names:
        names.remove("a whole number")
    return " or ".join(names), accepts_list, accepts_map


@dataclasses.dataclass(frozen=True)
class _Check:
    """What :func:`_strict` checks for one annotation."""

    kind: str | None  # "a number" / "a whole number" when only numbers are allowed
    whole: bool
    boolean: bool  # the only plain value allowed is true or false
    containers: list[tuple[Any, Any]]  # (origin, args) of each leaf
    shape: tuple[str, bool, bool] | None  # see _expected; None: not checked


_CHECKS: dict[int, tuple[Any, _Check]] = {}


def _check_of(tp: Any) -> _Check:
    """What ``_strict`` checks for annotation ``tp``, worked out once per annotation (a
    scenario's validation calls it for every field)."""
    got = _CHECKS.get(id(tp))
    if got is not None and got[0] is tp:
        return got[1]
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
    boolean = bool(leaves) and all(leaf is bool for leaf in leaves)
    containers = [(typing.get_origin(leaf), typing.get_args(leaf)) for leaf in leaves]
    shape = None if _converted(tp) else _expected(leaves)
    check = _Check(kind, whole, boolean, containers, shape)
    _CHECKS[id(tp)] = (tp, check)  # keeps tp: its id stays unique
    return check


def _range_text(field: FieldInfo | None) -> str:
    """ " in [28, 36525]": the bounds of a field's constraints, for messages."""
    lo = hi = ""
    for m in field.metadata if field is not None else ():
        for attr, text in (("ge", "[{}"), ("gt", "({}")):
            if getattr(m, attr, None) is not None:
                lo = text.format(_number_text(getattr(m, attr)))
        for attr, text in (("le", "{}]"), ("lt", "{})")):
            if getattr(m, attr, None) is not None:
                hi = text.format(_number_text(getattr(m, attr)))
    if lo and hi:
        return f" in {lo}, {hi}"
    if lo:
        return f" {'>=' if lo[0] == '[' else '>'} {lo[1:]}"
    if hi:
        return f" {'<=' if hi[-1] == ']' else '<'} {hi[:-1]}"
    return ""


def _number_text(x: Any) -> str:
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}" if abs(x) >= 10**5 else str(x)
    return f"{x:g}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_BIGGEST_WHOLE = 2**63  # pydantic's integers are 64-bit: a float beyond is "too large"


def _strict(value: Any, tp: Any, where: str = "", field: FieldInfo | None = None) -> Any:
    """Reject what pydantic's lax mode would quietly convert or word badly: booleans where
    a number is expected (``true`` is not 1) and anything but true/false where a boolean
    is (``1``, ``"yes"``), text where a number is expected, non-finite numbers,
    fractional or too large whole numbers, and a list or mapping where the field takes
    none (one problem naming the value, not one per member of a union such as ``a number
    or a list of numbers``). Containers are checked item by item; ``where`` names the
    item in the message, which then shows its value."""
    if value is None:
        return value
    check = _check_of(tp)
    shown = f" (got {_short(value)})" if where else ""
    if isinstance(value, Mapping | list | tuple):
        is_map = isinstance(value, Mapping)
        if check.shape is not None and not check.shape[2 if is_map else 1]:
            # a mapping's value is not shown by the caller (its path points at it)
            got = f" (got {_short(_plain(value))})" if is_map or where else ""
            raise ValueError(
                f"{where}must be {check.shape[0]}, not {'a mapping' if is_map else 'a list'}{got}"
            )
        for origin, args in check.containers:
            if origin in _LIST_ORIGINS and isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    item_tp = (
                        args[0]
                        if origin is not tuple or args[-1:] == (Ellipsis,)
                        else (args[i] if i < len(args) else Any)
                    )
                    _strict(item, item_tp, f"{where}item {i}: ")
            elif origin is dict and len(args) == 2 and isinstance(value, dict):
                for key, item in value.items():
                    _strict(item, args[1], f"{where}{key}: ")
        return value
    if check.boolean and not isinstance(value, bool | np.bool_):
        what = "text" if isinstance(value, str | bytes) else "a number"
        raise ValueError(f"{where}must be true or false, not {what}{shown}")
    if check.kind is not None:
        if isinstance(value, bool):
            raise ValueError(f"{where}must be {check.kind}, not a boolean{shown}")
        if isinstance(value, str | bytes):
            raise ValueError(f"{where}must be {check.kind}, not text{shown}")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{where}must be a finite number, got {value}")
            if check.whole and abs(value) >= _BIGGEST_WHOLE:
                raise ValueError(
                    f"{where}too large: must be a whole number{_range_text(field)}{shown}"
                )
            if check.whole and not value.is_integer():
                raise ValueError(f"{where}must be a whole number, got {value}")
    return value


def _plain(value: Any) -> Any:
    """A mapping as a plain dict (for its repr in messages)."""
    return dict(value) if isinstance(value, Mapping) and not isinstance(value, dict) else value


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_values(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return value if field is None else _strict(value, field.annotation, field=field)


def field_extra(field: Any) -> dict[str, Any]:
    """A field's documentation record (``json_schema_extra``: its ``unit`` and, for a
    parameter, its ``source``; :func:`P`), or {} for a field without one."""
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def P(default: Any, unit: str, source: str, **constraints: Any) -> Any:
    """A parameter field: default, unit and source recorded for docs/model.md."""
    return Field(default, json_schema_extra={"unit": unit, "source": source}, **constraints)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]

MAX_MONEY = 1e9
"""Upper bound of every amount of money per unit (a price per gram, day, mg, visit or
pulse day, a cost per adverse event, the willingness to pay per QALY), in any currency.
About 1000 times the largest plausible value in any current currency (IVIG at ~350 USD/g
is ~9 million VND or IDR per gram; a willingness to pay of three times GDP per head is
~3e8 VND), and small enough that a patient's totals (at most ~1e5 g of IVIG, 36,525
days, a few thousand visits or events) stay below ~1e15 and their sums and squares far
from overflow (the statistics need |x| < 2**500): a value like 1e308 was accepted and
crashed the run after it started."""

MAX_QALY_LOSS = 100.0
"""Upper bound of a one-off QALY loss per adverse event: no event costs more than a
lifetime of full health (same overflow reason as MAX_MONEY)."""

MAX_NEW_PATIENTS_PER_YEAR = 1e9
"""Upper bound of ``economics.new_patients_per_year`` (population EVPI): more than the
world's births per year, and it keeps the population EVPI (x up to 100 years) finite."""

Money = Annotated[float, Field(ge=0, le=MAX_MONEY)]

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
    95%) of the distribution (the median kept and the range's width used when the two
    do not fit one lognormal: a warning says so), with optional truncation;
    ``{dist: uniform, low, high}``.
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
        if self.range is not None and self.median is not None:
            _warn_off_centre_range(self.median, self.range, self.range_coverage or 0.95)
        if self.low is not None and self.low < 0:
            raise ValueError(f"a lognormal is positive: low must be >= 0, got {self.low}")
        mu, sigma = lognormal_params(self)
        if not (math.isfinite(mu) and math.isfinite(sigma)):
            # e.g. sd 1e200 for mean 70: the log-scale sd overflows, every draw is NaN
            raise ValueError(
                "this lognormal's spread is too large to draw from (its log-scale mean and"
                f" sd are {mu:g} and {sigma:g}); give a smaller sd or cv"
            )

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


@functools.lru_cache(maxsize=256)
def _warn_off_centre_range(median: float, rng: tuple[float, float], coverage: float) -> None:
    """A lognormal's median is the geometric mean of any central interval: a median and a
    range that are not so (a published "median (range)" of a skewed sample often is not)
    cannot both hold. The median is kept and the range gives only the spread, so the
    central interval drawn is not the one written; say which it is, once a form."""
    lo, hi = rng
    half = math.sqrt(hi / lo)
    if abs(math.log(median / math.sqrt(lo * hi))) <= 0.01:
        return
    log.warning(
        "lognormal with median %g and range [%g, %g]: no lognormal has both (its median"
        " would be %.4g, the geometric mean of the range); the median is kept and the"
        " range sets the spread, so its central %g%% is [%.4g, %.4g]",
        median,
        lo,
        hi,
        math.sqrt(lo * hi),
        100 * coverage,
        median / half,
        median * half,
    )


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


def top_value(d: Dist, share: float = 1e-12) -> float:
    """The largest value the distribution takes, or for an unbounded one the value that
    only ``share`` of draws exceed."""
    top = d.max_value()
    if math.isfinite(top) or d.dist in ("fixed", "uniform"):
        return top
    lo, hi = d.standard_bounds()
    # the upper quantile of the (truncated) standard normal, in the tail that keeps digits
    a, b = float(special.ndtr(-max(lo, -40.0))), float(special.ndtr(-min(hi, 40.0)))
    z = -float(special.ndtri(b + share * (a - b)))
    if d.dist == "lognormal":
        mu, sigma = lognormal_params(d)
        return math.exp(min(mu + sigma * z, 709.0))
    return float(d.mean) + float(d.sd) * z  # type: ignore[arg-type]


def _at_most(limit: float, unit: str) -> AfterValidator:
    """A cap on a patient characteristic that multiplies into doses, costs or sums (a
    weight of 1e300 kg crashed the run after it started): the distribution must stay
    below ``limit`` (all but 1e-12 of its draws, when it is unbounded)."""

    def check(d: Dist) -> Dist:
        top = top_value(d)
        if d.dist == "fixed" and not top <= limit:
            raise ValueError(f"{top:g} {unit} is above the limit of {limit:g} {unit}")
        if not top <= limit:
            raise ValueError(
                f"values up to {top:.3g} {unit} are possible, above the limit of {limit:g}"
                f" {unit}; give a distribution within it (e.g. high: {limit:g})"
            )
        return d

    return AfterValidator(check)


MAX_WEIGHT_KG = 1000.0  # the heaviest people recorded weighed about 600 kg
MAX_ENZYME = 1e7  # U/L of CPK, ng/mL of myoglobin: ~10x the highest in rhabdomyolysis

AnyDist = Annotated[Dist, BeforeValidator(_number_to_fixed)]
PositiveDist = Annotated[Dist, BeforeValidator(_number_to_fixed), AfterValidator(_positive)]
WeightDist = Annotated[PositiveDist, _at_most(MAX_WEIGHT_KG, "kg")]
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
    weight_kg_female: WeightDist = P(
        lognormal(mean=68.0, sd=13.0),
        "kg",
        "assumption: adult women, no weight reported in the abstract",
    )
    weight_kg_male: WeightDist = P(
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
    cpk_u_per_l: Annotated[PositiveDist, _at_most(MAX_ENZYME, "U/L")] = P(
        lognormal(mean=2980.0, sd=1300.0),
        "U/L",
        f"{FAGGIOLI}: mean 2980 U/L (range 2430-9100). The sd (CV 0.44) is an assumption:"
        " the reported range is right-skewed",
    )
    myoglobin_ng_per_ml: Annotated[PositiveDist, _at_most(MAX_ENZYME, "ng/mL")] = P(
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


def _unit(unit: str) -> dict[str, str]:
    """The unit of a field whose source is its block's (an adverse event's ``source``)."""
    return {"unit": unit}


class AdverseEventIVIG(Frozen):
    """Risk per IVIG cycle at a reference dose, spread over infusion days by dose."""

    p_per_cycle: float = Field(ge=0, le=1, json_schema_extra=_unit("probability per cycle"))
    reference_dose_g_per_kg: float = Field(2.0, gt=0, json_schema_extra=_unit("g/kg"))
    daily_dose_exponent: float = Field(1.0, ge=0, json_schema_extra=_unit("-"))
    reference_daily_dose_g_per_kg: float = Field(0.4, gt=0, json_schema_extra=_unit("g/kg"))
    risk_factor_multiplier: float = Field(1.0, ge=0, json_schema_extra=_unit("x"))
    stops_ivig: bool = False
    case_fatality: float = Field(0.0, ge=0, le=1, json_schema_extra=_unit("proportion"))
    source: str = ""


class AdverseEventSteroid(Frozen):
    """Hazard while on prednisone: a baseline rate times a relative risk by dose band."""

    baseline_per_year: float = Field(ge=0, json_schema_extra=_unit("1/year"))
    dose_thresholds_mg_per_day: list[float] = Field(min_length=1, json_schema_extra=_unit("mg/day"))
    relative_risk: list[float] = Field(min_length=1, json_schema_extra=_unit("x"))
    case_fatality: float = Field(0.0, ge=0, le=1, json_schema_extra=_unit("proportion"))
    # True: a dose equal to a threshold is in the band above it (">= 7.5 mg/day", as van
    # Staa's bands); False: only a dose above it ("above 10 mg/day")
    thresholds_inclusive: bool = True
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
            p_per_cycle=0.075,
            source="derived: headache in 42% of ProDERM patients (rheumapedia summary"
            " [secondary]) over 664 IVIG cycles in 95 patients, 7.0 each (safety paper,"
            " parameters.md section 2): 1-0.58^(1/7) per cycle",
        ),
        "aseptic_meningitis": AdverseEventIVIG(
            p_per_cycle=0.0031,
            stops_ivig=True,
            source="derived: 5 of 1637 infusions (0.31%), 4 of 194 patients (2%) in a"
            " 4-year registry (Pediatr Asthma Allergy Immunol 2000;14:287, parameters.md"
            " section 6a); 8.4 infusions per patient, so an 'infusion' is read as one course"
            " (cycle): an assumption (per infusion day the risk per cycle would be higher)",
        ),
        "thromboembolism": AdverseEventIVIG(
            p_per_cycle=0.01064,
            risk_factor_multiplier=3.69,
            stops_ivig=True,
            case_fatality=0.2,
            source="derived: 8 events in 664 ProDERM cycles (1.2%; safety paper,"
            " doi:10.1186/s13075-023-03232-2) is the average over patients with and without"
            " a risk factor, so the risk without one solves 0.95 p + 0.05 (1 - (1 - p)^3.69)"
            " = 8/664 with the 5% share of population.thrombosis_risk_factor: p = 0.01064;"
            " OR 3.69 with prior thromboembolism (Neurology Open 2022); case fatality 20%"
            " (IVIG thrombosis review, PMID 15970713)",
        ),
        "acute_kidney_injury": AdverseEventIVIG(
            p_per_cycle=0.0012,
            stops_ivig=True,
            source="derived: 2 of 1637 infusions (0.12%), both adults on 2 g/kg (same"
            " registry; an infusion read as one course (cycle), an assumption)",
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
            thresholds_inclusive=False,
            source="assumption: infection risk rises above 20-25 mg/day (seekhealthz.com"
            " [low-quality]); baseline 2%/year and relative risks are assumptions; case"
            " fatality 10% is an assumption (infection caused 34/49 deaths in a cohort of"
            " 676, Xiao 2016, parameters.md section 9)",
        ),
        "steroid_diabetes": AdverseEventSteroid(
            baseline_per_year=0.005,
            dose_thresholds_mg_per_day=[0.001, 10.0, 30.0],
            relative_risk=[1.0, 4.0, 8.0],
            thresholds_inclusive=False,
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
        le=MAX_MONEY,
    )
    infusion_day: float = P(
        250.0,
        "per infusion day",
        "assumption: day-unit chair, nursing and consumables; chair time NOT FOUND"
        " (parameters.md section 7); about 2.3 h at label rates for 0.4 g/kg/day",
        ge=0,
        le=MAX_MONEY,
    )
    prednisone_per_mg: float = P(
        0.002,
        "per mg",
        "assumption: generic oral prednisolone, a few pence per 5 mg",
        ge=0,
        le=MAX_MONEY,
    )
    methylprednisolone_pulse_day: float = P(
        400.0,
        "per pulse day",
        "assumption: day-case admission for 1 g IV methylprednisolone",
        ge=0,
        le=MAX_MONEY,
    )
    visit: float = P(
        150.0,
        "per visit",
        "assumption: specialist outpatient visit with CPK and myoglobin",
        ge=0,
        le=MAX_MONEY,
    )
    sparing_agent_per_day: dict[str, Money] = Field(
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
        "Carreno A et al., Value Health 2011;14:192-200 (doi:10.1016/j.jval.2010.11.001;"
        " other_sources.md section 1): EQ-5D (TTO) = 0.9567 - 0.309 HAQ-DI, in rheumatoid"
        " arthritis; its use in myositis is an assumption (disability drives utility the"
        " same way)",
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
        "assumption: 3.5%/year for costs and QALYs, as in the UK NICE reference case"
        " (other_sources.md section 3)",
        ge=0,
        le=0.2,
    )
    willingness_to_pay_per_qaly: float = P(
        20000.0,
        "per QALY",
        "assumption: the lower end of the UK NICE GBP 20,000-30,000/QALY"
        " range (other_sources.md section 3); used for net monetary benefit and"
        " acceptability curves",
        ge=0,
        le=MAX_MONEY,
    )
    cea_horizon: Literal["lifetime", "clinical"] = P(
        "lifetime",
        "-",
        "NICE reference case (other_sources.md section 3): a lifetime horizon for a"
        " chronic disease. 'lifetime' extends"
        " costs, QALYs and survival beyond the clinical horizon (docs/model.md §5,"
        " Lifetime); 'clinical' uses the simulated horizon only",
    )
    perspective: str = P(
        "UK NHS and personal social services",
        "-",
        "assumption: the NICE reference-case perspective of the default prices"
        " (other_sources.md section 3)",
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
        le=MAX_NEW_PATIENTS_PER_YEAR,
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
    adverse_event_cost: dict[str, Money] = Field(
        default_factory=_default_ae_costs,
        json_schema_extra={
            "unit": "per event",
            "source": "assumption: typical UK episode costs; none in parameters.md",
        },
    )
    adverse_event_qaly_loss: dict[str, Annotated[float, Field(ge=0, le=MAX_QALY_LOSS)]] = Field(
        default_factory=_default_ae_qaly_loss,
        json_schema_extra={
            "unit": "QALY per event",
            "source": "assumption: one-off losses; none in parameters.md",
        },
    )


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


# Defaults that a scenario's block merges over instead of replacing (``merge_defaults``):
# mappings of named entries (adverse events, their costs, the sparing agents and their
# prices) and blocks whose default is built with other values than the block's own
# (the extramuscular domains). A block there changes only the keys it gives, as ``--set``
# and ``extends:`` do: ``safety: {ivig: {thromboembolism: {case_fatality: 0.1}}}`` keeps
# the other IVIG adverse events and thromboembolism's other values; an entry not in the
# defaults needs all its required keys. (``--set safety.ivig={}`` still sets the whole
# mapping: an override sets exactly the value it names.)
MERGED_DEFAULTS: tuple[tuple[str, ...], ...] = (
    ("safety", "ivig"),
    ("safety", "steroid"),
    ("economics", "adverse_event_cost"),
    ("economics", "adverse_event_qaly_loss"),
    ("economics", "prices", "sparing_agent_per_day"),
    ("disease", "sparing_agents"),
    ("disease", "extramuscular", "skin"),
    ("disease", "extramuscular", "lung"),
    ("disease", "extramuscular", "dysphagia"),
)


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
