"""An infusion center: chairs, opening hours, IVIG stock and the patients who arrive.

With a ``center:`` block a scenario no longer describes independent patients: new
patients arrive over the center's years and compete for its infusion chairs and its IVIG
stock, and an infusion happens only when the center grants both (``engines/center.py``).
One simulated center is one unit of work; ``patients`` (and ``--patients``) then counts
center replications.

Chair time per infusion day is computed from the day's dose with the label's
infusion-rate ramp (Octagam 10%: 1 mg/kg/min for 30 min, then 2, then the maximum of
4 mg/kg/min; docs/sources/parameters.md section 7) plus set-up and observation time, or
given as ``chair_hours``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .schema import Frozen, P, Probability

__all__ = ["Arrivals", "Center", "Delivery", "Policy", "Shortage", "Stock", "chair_hours"]

LABEL = "Octagam 10% US label / SmPC (docs/sources/parameters.md section 7)"


def _exactly_one(a: str, a_value: Any, b: str, b_value: Any, either: str) -> None:
    """Raise unless exactly one of the two fields is set; ``either`` says what each one
    means ("give either <either>, got ...")."""
    if (a_value is None) == (b_value is None):
        got = "neither" if a_value is None else f"{a}: {a_value:g} and {b}: {b_value:g}"
        raise ValueError(f"give either {either}, got {got}")


class Arrivals(Frozen):
    """New patients: a Poisson process of ``per_year`` over ``years`` (each arrives on a
    whole day), or a ``cohort`` of patients all at day 0."""

    per_year: float | None = P(
        None,
        "new patients/year",
        "assumption: set per center (the shipped center scenario uses 60, a large referral"
        " center's new PM/DM patients; incidence ~1 per 100,000 per year)",
        gt=0,
        le=100_000,
    )
    years: float = P(3.0, "years", "assumption: the budget horizon of a center's plan", gt=0, le=50)
    cohort: int | None = Field(None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_process(self) -> Arrivals:
        _exactly_one(
            "per_year",
            self.per_year,
            "cohort",
            self.cohort,
            "per_year (Poisson arrivals) or cohort (all at day 0)",
        )
        return self


class Delivery(Frozen):
    """Standing orders, placed every ``every_days`` from day ``first_order_day`` and
    arriving ``lead_time_days`` later: a fixed ``lot_g``, or (periodic review) what
    brings the stock plus the grams on order up to ``order_up_to_g``."""

    every_days: int = P(7, "days", "assumption: weekly pharmacy order", ge=1, le=3650)
    lot_g: float | None = P(None, "g", "assumption: a fixed lot (or order_up_to_g)", gt=0)
    order_up_to_g: float | None = P(
        3000.0,
        "g",
        "assumption: about three weeks of a 60-patient/year first-line center's use",
        gt=0,
    )
    lead_time_days: int = P(7, "days", "assumption: one week from order to delivery", ge=0)
    first_order_day: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _lot_replaces_default(cls, data: Any) -> Any:
        # a fixed lot given alone replaces the default order-up-to rule
        if isinstance(data, dict) and data.get("lot_g") is not None and "order_up_to_g" not in data:
            return {**data, "order_up_to_g": None}
        return data

    @model_validator(mode="after")
    def _one_rule(self) -> Delivery:
        _exactly_one(
            "lot_g",
            self.lot_g,
            "order_up_to_g",
            self.order_up_to_g,
            "lot_g (a fixed lot) or order_up_to_g (not both)",
        )
        return self


class Shortage(Frozen):
    """A supply shortage: deliveries arriving in [from_day, until_day) bring
    ``supply_factor`` of their lot (0: nothing arrives)."""

    from_day: int = Field(ge=0)
    until_day: int = Field(ge=0)
    supply_factor: Probability = 0.5

    @model_validator(mode="after")
    def _window(self) -> Shortage:
        if self.until_day <= self.from_day:
            raise ValueError(
                f"until_day ({self.until_day}) must be after from_day ({self.from_day})"
            )
        return self


class Stock(Frozen):
    """IVIG stock in grams; ``initial_g: null`` is an unlimited supply."""

    initial_g: float | None = P(
        2000.0, "g", "assumption: about two weeks of a 60-patient/year first-line center", ge=0
    )
    deliveries: Delivery | None = Delivery()
    shortages: list[Shortage] = Field(default_factory=list)


class Policy(Frozen):
    """What happens to an infusion day the center cannot give on the day it is due.

    ``when_short``: ``delay`` (try again on the next opening day), ``reduce`` (when IVIG
    is short, give what the stock allows if that is at least ``reduce_min_fraction`` of
    the day's dose; otherwise delay), or ``skip`` (the day and the rest of its cycle are
    not given). With ``max_delay_days`` a day still not given that many days after it was
    due is skipped. ``priority`` orders the queue for a chair (``fifo``: by due day;
    ``rescue_first``: patients on rescue IVIG first; ``new_first``: patients in their
    first cycle first); ``reserve_g`` of stock is kept for the prioritised patients."""

    when_short: Literal["delay", "reduce", "skip"] = "delay"
    max_delay_days: int | None = Field(None, ge=0, le=3650)
    reduce_min_fraction: float = Field(0.5, gt=0.0, le=1.0)
    priority: Literal["fifo", "rescue_first", "new_first"] = "fifo"
    reserve_g: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _reserve_needs_priority(self) -> Policy:
        if self.reserve_g > 0 and self.priority == "fifo":
            raise ValueError(
                f"reserve_g ({self.reserve_g:g}) keeps stock for prioritised patients, but"
                " priority is fifo: choose priority rescue_first or new_first (or set"
                " reserve_g: 0)"
            )
        return self


class Center(Frozen):
    chairs: int | None = P(
        2, "chairs", "assumption: a small day unit; null is unlimited", ge=1, le=10_000
    )
    open_weekdays: int = P(
        5, "days/week", "assumption: Monday to Friday (day 0 is a Monday)", ge=1, le=7
    )
    open_hours: tuple[float, float] = P((8.0, 18.0), "hour of day", "assumption: 08:00-18:00")
    chair_hours: float | None = P(
        None,
        "h per infusion day",
        "computed from the day's dose and the label ramp plus set-up and observation when null",
        gt=0,
        le=24,
    )
    rate_ramp_mg_per_kg_min: tuple[float, ...] = P(
        (1.0, 2.0, 4.0), "mg/kg/min", f"{LABEL}: 1 -> 2 -> 4 mg/kg/min maximum in DM"
    )
    ramp_step_minutes: float = P(30.0, "min", f"{LABEL}: step up every 30 min", gt=0)
    setup_hours: float = P(0.5, "h", "assumption: cannulation and pre-infusion checks", ge=0)
    observation_hours: float = P(0.5, "h", "assumption: observation after the infusion", ge=0)
    nurses_per_chair: float = P(0.5, "nurses", "assumption: one nurse for two chairs", ge=0)
    stock: Stock = Stock()
    arrivals: Arrivals = Arrivals(per_year=60.0)
    policy: Policy = Policy()

    @field_validator("open_hours")
    @classmethod
    def _open_hours(cls, hours: tuple[float, float]) -> tuple[float, float]:
        start, end = hours
        if not (0.0 <= start < end <= 24.0):
            raise ValueError(
                f"must be [start, end] within 0-24 with start < end, got [{start:g}, {end:g}]"
            )
        return hours

    @model_validator(mode="after")
    def _hours(self) -> Center:
        start, end = self.open_hours
        if not self.rate_ramp_mg_per_kg_min or any(r <= 0 for r in self.rate_ramp_mg_per_kg_min):
            raise ValueError("rate_ramp_mg_per_kg_min must list positive rates")
        if self.chair_hours is not None and self.chair_hours > end - start:
            raise ValueError(
                f"chair_hours ({self.chair_hours}) do not fit in the opening hours"
                f" ({end - start:g} h)"
            )
        return self


def chair_hours(center: Center, dose_g_per_kg: float) -> float:
    """Chair hours of one infusion day of ``dose_g_per_kg``: set-up, the infusion at the
    ramped rate (each step held ``ramp_step_minutes``, the last until the dose is in) and
    observation; or ``center.chair_hours`` when given. The patient's weight cancels: the
    label rates are per kilogram."""
    if center.chair_hours is not None:
        return float(center.chair_hours)
    left = dose_g_per_kg * 1000.0  # mg/kg
    minutes = 0.0
    rates = center.rate_ramp_mg_per_kg_min
    for i, rate in enumerate(rates):
        step = left / rate if i == len(rates) - 1 else min(center.ramp_step_minutes, left / rate)
        minutes += step
        left -= step * rate
        if left <= 1e-12:
            break
    return center.setup_hours + minutes / 60.0 + center.observation_hours
