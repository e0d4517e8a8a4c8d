"""Outcomes: one row per patient, and the cohort metrics aggregated from those rows.

``patient_table`` turns an engine's :class:`~simulator.records.ChunkResult` into flat
columns (baseline characteristics and outcomes, one entry per patient): this is what
``patients.csv`` holds and what comparisons pair across strategies. ``CohortSummary``
aggregates those columns as chunks stream in (exact, order-independent statistics from
``stats.py``), so memory does not grow with the number of patients.

Definitions (docs/model.md §5): a month is 4 weeks (day 84 is month 3; week 16 is day 112,
week 24 day 168, week 52 day 364); values at a time are those of the visit on that day;
CPK is "normal" below the ULN; the Total Improvement Score (TIS) is against the day-0
visit; "inactive" and a clinical relapse are as in the scenario's ``outcomes`` block.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import fmath, jit
from .center_stats import CENTER_HEADLINE, CENTER_METRICS, CenterRecord, center_metrics
from .kernel import measures
from .kernel.events import Flag
from .kernel.mortality import CAUSE_BACKGROUND, CAUSE_DISEASE, MAX_AGE
from .kernel.plan import MONTH_DAYS, Plan
from .kernel.xp import ARRAY
from .records import ChunkResult
from .scenario.schema import Scenario
from .stats import Z95, KaplanMeier, LogHistogram, Moments, Proportion

__all__ = [
    "METRICS",
    "CohortSummary",
    "Metric",
    "cea_columns",
    "last_day_read",
    "metric_specs",
    "patient_table",
]

TIS_WEEKS = (16, 24, 52)
ENTRY_WEEKS = (12, 16, 24, 52)  # from entry: 12 is where Hara 2003 reports
SURVIVAL_YEARS = (1, 2, 3, 5, 10, 20)
FINAL_YEAR_DAYS = 365.0  # the horizon's last year, for the *_final_year metrics
# What each kind of metric's "mean" holds (summary.json, comparison.json/.csv).
ESTIMATORS = {
    "mean": "mean",
    "proportion": "proportion",
    "rate": "ratio_of_sums",
    "time": "km_median",
}


def difference_estimator(estimator: str, rmst_to_day: int) -> str:
    """What a comparison's difference between two arms of a metric with this
    ``estimator`` is: for a Kaplan-Meier median, a difference of restricted mean times to
    ``rmst_to_day`` (a difference of medians has no simple interval); otherwise the
    difference of the arms' own estimates, paired over the same patients."""
    if estimator == ESTIMATORS["time"]:
        return f"rmst_difference_to_day_{rmst_to_day}"
    return f"paired_{estimator}_difference"


CORE_SET_MONTHLY = (
    "mmt8",
    "physician_global",
    "patient_global",
    "haq",
    "extramuscular",
    "tis",
    "damage",
    "skin_activity",
    "lung_activity",
    "dysphagia_activity",
)
DOMAIN_LABELS = {"skin": "skin (DM)", "lung": "lung (ILD)", "dysphagia": "swallowing"}


# The metric registry: every outcome's name, estimator, unit and label (``metric_specs``),
# which direction is better (``better_of``) and whether it is a headline outcome
# (``HEADLINE``, in the order tables and reports show them first). The CLI, summary.json,
# compare, sweeps and every report read outcomes from here.

# Which direction is better for the patient or the payer; None: no judgement (resource use
# or a process measure), report "higher" and "lower" instead of "better" and "worse".
BETTER: dict[str, str | None] = {
    "cpk_baseline_u_per_l": None,
    "cpk_ratio_month_3": "lower",
    "myoglobin_ratio_month_3": "lower",
    "cpk_normal_month_3": "higher",
    "cpk_normal_month_5": "higher",
    "cpk_normal_month_6": "higher",
    "cpk_normal_month_12": "higher",
    "myoglobin_normal_month_6": "higher",
    "cpk_ever_normal": "higher",
    "time_to_cpk_normal_days": "lower",
    "mmt8_month_6": "higher",
    "mmt8_month_12": "higher",
    "strength_ever_normal": "higher",
    "damage_points": "lower",
    "time_to_tis20_days": "lower",
    "time_to_tis40_days": "lower",
    "treatment_failure_week_24": "lower",
    "inactive_month_6": "higher",
    "inactive_month_12": "higher",
    "inactive_month_24": "higher",
    "time_to_inactive_days": "lower",
    "complete_clinical_response": "higher",
    "remission_off_therapy": "higher",
    "relapse": "lower",
    "relapses": "lower",
    "relapse_rate_per_100_patient_years": "lower",
    "relapse_during_taper": "lower",
    "relapse_after_stopping": "lower",
    "biochemical_relapse": "lower",
    "biochemical_relapses_2_or_more": "lower",
    "course_monophasic": "higher",
    # a polycyclic course is better than a chronic one and worse than a monophasic one:
    # no direction of its own
    "course_polycyclic": None,
    "course_chronic": "lower",
    "last_visit_remission": "higher",
    "last_visit_improved": None,
    "last_visit_worsened": "lower",
    "last_visit_remission_off_therapy": "higher",
    "cumulative_prednisone_g": "lower",
    "prednisone_5mg_by_month_6": "higher",
    "time_to_prednisone_le_7_5mg_days": "lower",
    "time_to_prednisone_le_5mg_days": "lower",
    "steroid_stopped": "higher",
    "ivig_g": None,
    "ivig_cycles": None,
    "rescue_started": None,
    "rescue_started_final_year": None,
    "ivig_given_final_year": None,
    "rescue_pulse": "lower",
    "sparing_agent_used": None,
    "sparing_agent_stopped": None,
    "time_to_rescue_days": None,
    "qaly": "higher",
    "qaly_lifetime": "higher",
    "net_monetary_benefit": "higher",
}


def better_of(name: str) -> str | None:
    if name in BETTER:
        return BETTER[name]
    if name in CENTER_METRICS:
        return CENTER_METRICS[name][2]
    if name.startswith("tis") or name.endswith(
        ("_inactive_month_6", "_inactive_month_12")  # an extramuscular domain inactive
    ):
        return "higher"
    if name.startswith(("cost_", "adverse_event_", "death_")) or name == "died":
        return "lower"
    if name.startswith("alive_year_") or name in (
        "life_years",
        "life_years_lifetime",
        "net_monetary_benefit",
    ):
        return "higher"
    return None


HEADLINE = (
    "entered",
    "tis_week_16_from_entry",
    "tis20_week_16_from_entry",
    "tis40_week_16_from_entry",
    "tis60_week_16_from_entry",
    "mmt8_change_week_16_from_entry",
    "tis_week_52_from_entry",
    "unblinded",
    "cpk_ratio_month_3",
    "cpk_normal_month_6",
    "time_to_cpk_normal_days",
    "tis_week_16",
    "tis_week_24",
    "tis_week_52",
    "tis20_week_24",
    "tis40_week_24",
    "tis60_week_24",
    "time_to_tis20_days",
    "time_to_tis40_days",
    "inactive_month_12",
    "complete_clinical_response",
    "remission_off_therapy",
    "relapse",
    "relapse_rate_per_100_patient_years",
    "course_monophasic",
    "course_polycyclic",
    "course_chronic",
    "damage_points",
    "mmt8_month_12",
    "cumulative_prednisone_g",
    "time_to_prednisone_le_5mg_days",
    "prednisone_5mg_by_month_6",
    "ivig_g",
    "ivig_cycles",
    "rescue_started",
    "sparing_agent_used",
    "died",
    "alive_year_1",
    "cost_total",
    "qaly",
    "life_years_lifetime",
    "cost_lifetime",
    "qaly_lifetime",
    *CENTER_HEADLINE,  # an infusion center (scenarios with a center:)
)


@dataclass(frozen=True)
class Metric:
    """How a cohort metric is computed from patient-table columns.

    ``kind``: "mean", "proportion", "time" (Kaplan-Meier; the estimate is the median) or
    "rate" (sum of ``column`` over sum of ``denominator``, per 100)."""

    name: str
    kind: str
    column: str
    unit: str
    label: str
    event_column: str = ""
    nonnegative: bool = True
    denominator: str = ""

    @property
    def better(self) -> str | None:
        """ "higher", "lower" or None (no judgement: resource use, a process measure)."""
        return better_of(self.name)

    @property
    def headline(self) -> bool:
        """Shown first in tables and reports."""
        return self.name in HEADLINE


def _visit_index(plan: Plan, day: float) -> int | None:
    hits = np.flatnonzero(plan.visit_days == day)
    return int(hits[0]) if hits.size else None


def _at_day(plan: Plan, matrix: np.ndarray, day: float) -> np.ndarray:
    i = _visit_index(plan, day)
    if i is None:
        return np.full(matrix.shape[0], math.nan)
    return matrix[:, i]


def _at_month(plan: Plan, matrix: np.ndarray, month: int) -> np.ndarray:
    return _at_day(plan, matrix, month * MONTH_DAYS)


def visit_tis_from_diagnosis(visits: dict[str, np.ndarray], plan: Plan) -> np.ndarray:
    """Each visit's Total Improvement Score against the day-0 visit (NaN where the
    patient had died). Without an entry visit that is the kernel's visit TIS; with one,
    the kernel's is against the entry visit from entry on (what the rules read, and the
    ``*_from_entry`` outcomes), so this scores the same measures against day 0 again."""
    if plan.entry_rule is None:
        return visits["tis"]
    return _tis_against_day_0(visits, plan.cpk_uln, plan.myoglobin_uln)


def _tis_against_day_0(
    visits: dict[str, np.ndarray], cpk_uln: float, myoglobin_uln: float
) -> np.ndarray:
    """The TIS of every visit against the first (measures.total_improvement_score, as
    the kernel scores a visit: enzymes as multiples of their ULN)."""

    def core(k: slice) -> measures.CoreSet:
        return measures.CoreSet(
            visits["physician_global"][:, k],
            visits["patient_global"][:, k],
            visits["mmt8"][:, k],
            visits["haq"][:, k],
            visits["cpk"][:, k] / cpk_uln,
            visits["myoglobin"][:, k] / myoglobin_uln,
            visits["extramuscular"][:, k],
        )

    tis: np.ndarray = measures.total_improvement_score(ARRAY, core(slice(0, 1)), core(slice(None)))
    return tis


def _days_at_risk_of_relapse(chunk: ChunkResult, plan: Plan) -> np.ndarray:
    """Per patient, the days at risk of a clinical relapse: from a visit with a normal
    CPK (a relapse needs one since diagnosis or the last relapse) to the next relapse, and
    again from the next normal CPK, to the horizon or death. The kernel's ``ever_normal``
    read from the visits: set at a normal CPK, cleared at a relapse."""
    flags = chunk.visit_flags
    event = np.where(
        (flags & Flag.RELAPSE) != 0, 0, np.where((flags & Flag.CPK_NORMAL) != 0, 1, -1)
    )
    # each visit's state after it: the last relapse (0) or normal CPK (1) at or before it
    k = np.arange(event.shape[1])
    last = np.maximum.accumulate(np.where(event >= 0, k, -1), axis=1)
    state = np.where(last >= 0, np.take_along_axis(event, np.maximum(last, 0), axis=1), 0)
    end = np.minimum(chunk.outcomes["death_day"], plan.horizon_days)
    span = np.maximum(_until_next_visit(plan, end) - plan.visit_days[None, :], 0.0)
    days_at_risk: np.ndarray = (span * state).sum(axis=1)
    return days_at_risk


def _until_next_visit(plan: Plan, end: np.ndarray) -> np.ndarray:
    """Per patient and visit, the day what was seen there holds until: the next visit,
    or the horizon after the last one, or ``end`` (death) if sooner."""
    nxt = np.append(plan.visit_days[1:], plan.horizon_days)
    until: np.ndarray = np.minimum(nxt[None, :], end[:, None])
    return until


def _first_visit_day(plan: Plan, hit: np.ndarray) -> np.ndarray:
    """Per row, the day of the first visit where ``hit`` holds; inf if none."""
    any_hit = hit.any(axis=1)
    return np.where(any_hit, plan.visit_days[hit.argmax(axis=1)], math.inf)


def _flag(condition: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """1.0 / 0.0 where defined, NaN elsewhere."""
    return np.where(defined, condition.astype(np.float64), math.nan)


def _normal(values: np.ndarray, uln: float) -> np.ndarray:
    return _flag(values < uln, ~np.isnan(values))


def _time(values: np.ndarray, censor_day: float) -> tuple[np.ndarray, np.ndarray]:
    observed = np.isfinite(values) & (values <= censor_day)
    return np.where(observed, values, censor_day), observed


def _discounted_years(delta: float, t0: np.ndarray | float, t1: np.ndarray | float) -> Any:
    """Integral of exp(-delta t) over [t0, t1] days, in years."""
    if delta == 0:
        return (np.asarray(t1) - np.asarray(t0)) / 365.25
    e0 = fmath.exp_array(-delta * np.asarray(t0))
    return (e0 - fmath.exp_array(-delta * np.asarray(t1))) / delta / 365.25


def _longest_run_days(ok: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Per row, the longest span (last day - first day) of consecutive True visits."""
    n, v = ok.shape
    best = np.zeros(n)
    start = np.full(n, np.nan)
    for j in range(v):
        start = np.where(ok[:, j], np.where(np.isnan(start), days[j], start), np.nan)
        span = np.where(ok[:, j], days[j] - start, 0.0)
        best = np.maximum(best, span)
    return best


def _economics(cols: dict[str, np.ndarray], chunk: ChunkResult, plan: Plan, scn: Scenario) -> None:
    """Discounted costs by component and QALYs (docs/model.md §5)."""
    econ = scn.economics
    price = econ.prices
    d = plan.discount_per_day
    o = chunk.outcomes
    days = plan.visit_days
    # Follow-up ends at death (``end``): no visits, drugs or utility after it.
    end = np.minimum(o["death_day"], plan.horizon_days)
    attended = ~np.isnan(chunk.visits["cpk"])
    cols["cost_ivig"] = price.ivig_per_g * o["discounted_ivig_g"]
    cols["cost_infusion_days"] = price.infusion_day * o["discounted_infusion_days"]
    cols["cost_prednisone"] = price.prednisone_per_mg * o["discounted_prednisone_mg"]
    # Pulse days (initial and rescue) at their days, cut by death and the horizon; their
    # methylprednisolone is in the pulse-day price, not in cost_prednisone.
    cols["cost_methylprednisolone_pulse"] = (
        price.methylprednisolone_pulse_day * o["discounted_pulse_days"]
    )
    start = o["sparing_start_day"]
    started = np.isfinite(start) & (start <= plan.horizon_days)
    per_day = np.array([price.sparing_agent_per_day.get(a, 0.0) for a in plan.agents] + [0.0])
    agent = np.where(started, o["sparing_agent"].astype(np.int64), -1)
    start = np.where(started, np.minimum(start, end), end)
    # until the end of follow-up, or until regimen.sparing_stop_when stopped it
    until = np.minimum(o["sparing_stop_day"], end)
    years = _discounted_years(d, start, np.maximum(until, start))
    cols["cost_sparing_agents"] = per_day[agent] * years * 365.25
    cols["cost_visits"] = price.visit * (attended * fmath.exp_array(-d * days)[None, :]).sum(axis=1)
    ae_cost = np.zeros(chunk.n)
    ae_loss = np.zeros(chunk.n)
    for ae in plan.ivig_aes:
        k = o[f"ae_{ae.name}_discounted_n"]
        ae_cost += econ.adverse_event_cost.get(ae.name, 0.0) * k
        ae_loss += econ.adverse_event_qaly_loss.get(ae.name, 0.0) * k
    for ae in plan.steroid_aes:
        t = o[f"ae_{ae.name}_day"]
        at = fmath.exp_array(-d * np.minimum(t, plan.horizon_days))
        k = np.where(t <= plan.horizon_days, at, 0.0)
        ae_cost += econ.adverse_event_cost.get(ae.name, 0.0) * k
        ae_loss += econ.adverse_event_qaly_loss.get(ae.name, 0.0) * k
    cols["cost_adverse_events"] = ae_cost
    cols["cost_total"] = (
        cols["cost_ivig"]
        + cols["cost_infusion_days"]
        + cols["cost_prednisone"]
        + cols["cost_methylprednisolone_pulse"]
        + cols["cost_sparing_agents"]
        + cols["cost_visits"]
        + ae_cost
    )
    # QALYs: the utility of the state seen at each visit holds until the next visit.
    u = econ.utilities
    haq = chunk.visits["haq"]
    utility = u.haq_intercept + u.haq_slope * haq
    utility = utility - u.active_disease_decrement * (chunk.visits["inactive"] < 0.5)
    before_steroid = utility[:, -1]
    utility = utility - u.high_dose_steroid_decrement * (
        chunk.visit_prednisone > u.high_dose_steroid_mg_per_day
    )
    utility = np.clip(utility, measures.EQ5D_UK_3L_MIN, measures.EQ5D_UK_3L_MAX)
    # The utility carried for life is the last visit's; where a pulse decided there runs
    # past the horizon, its high-dose decrement is that of the oral dose the patient
    # returns to (the pulse's days are not carried for life).
    oral = o["final_oral_prednisone_mg_per_day"]
    pulsing = o["final_prednisone_mg_per_day"] != oral
    carried_mg = np.where(pulsing, oral, chunk.visit_prednisone[:, -1])
    carried = np.clip(
        before_steroid
        - u.high_dose_steroid_decrement * (carried_mg > u.high_dose_steroid_mg_per_day),
        measures.EQ5D_UK_3L_MIN,
        measures.EQ5D_UK_3L_MAX,
    )
    # The utility seen at a visit holds until the next visit or death, whichever is first.
    # (the last visit's utility holds until the horizon)
    stop = _until_next_visit(plan, end)
    spans = np.maximum(_discounted_years(d, days[None, :], stop), 0.0)
    utility = np.where(attended, utility, 0.0)
    cols["qaly"] = (utility * spans).sum(axis=1) - ae_loss
    cols["qaly_loss_adverse_events"] = ae_loss
    # carried for life only if still taken at the horizon
    still = ~(o["sparing_stop_day"] <= plan.horizon_days)
    last_utility = np.where(attended[:, -1], carried, 0.0)
    _lifetime(cols, chunk, plan, scn, last_utility, np.where(still, per_day[agent], 0.0))
    # Net monetary benefit at the scenario's willingness to pay, on the costs and QALYs of
    # the cost-effectiveness analysis (lifetime by default): per patient, so arms and sweep
    # points compare it paired.
    cost_col, qaly_col = cea_columns(scn)
    cols["net_monetary_benefit"] = (
        econ.willingness_to_pay_per_qaly * cols[qaly_col] - cols[cost_col]
    )


def _lifetime(
    cols: dict[str, np.ndarray],
    chunk: ChunkResult,
    plan: Plan,
    scn: Scenario,
    last_utility: np.ndarray,
    sparing_per_day: np.ndarray,
) -> None:
    """Costs, QALYs and life-years over a lifetime (docs/model.md §5, Lifetime): the
    simulated horizon, then, for the patients alive at its end, the state of the last
    visit carried forward: its utility, the final prednisone dose, the sparing agent if
    one was started and visits at the maintenance interval, until death from the life
    table plus the disease-related excess hazard of the last 4-week window (its age term
    following age). Closed form per year of age (constant hazard within each), to age
    111; discounted from day 0 like everything else."""
    o = chunk.outcomes
    h_days = plan.horizon_days
    alive = o["death_day"] > h_days
    base = chunk.baseline
    age = base.age_years + h_days / 365.25
    female = base.female.astype(np.int64)
    excess = np.where(
        alive,
        np.maximum(o["final_death_hazard_per_day"] - o["final_background_hazard_per_day"], 0.0),
        0.0,
    )
    bg_table = plan.background_per_day * 365.25  # per year, [sex, age]
    slope = plan.excess_log_hr_per_year_of_age
    delta = plan.discount_per_day * 365.25  # continuous rate per year
    disc_ly = np.zeros(chunk.n)  # discounted years lived after the horizon
    ly = np.zeros(chunk.n)
    disc0 = fmath.exp(-plan.discount_per_day * float(h_days))
    # ~90 years of age, each ~25 array operations: numba's loop when loaded (same bits)
    loops = jit.loops(chunk.n, calls=2000)
    if loops is not None:
        loops.lifetime_into(
            np.ascontiguousarray(alive, dtype=np.bool_),
            np.ascontiguousarray(age, dtype=np.float64),
            np.ascontiguousarray(female),
            np.ascontiguousarray(excess, dtype=np.float64),
            np.ascontiguousarray(bg_table, dtype=np.float64),
            float(slope),
            float(delta),
            disc0,
            MAX_AGE,
            disc_ly,
            ly,
        )
    else:
        _lifetime_years(alive, age, female, excess, bg_table, slope, delta, disc0, disc_ly, ly)
    _lifetime_columns(cols, chunk, scn, h_days, alive, last_utility, sparing_per_day, disc_ly, ly)


def _lifetime_years(
    alive: np.ndarray,
    age: np.ndarray,
    female: np.ndarray,
    excess: np.ndarray,
    bg_table: np.ndarray,
    slope: float,
    delta: float,
    disc0: float,
    disc_ly: np.ndarray,
    ly: np.ndarray,
) -> None:
    """The years of :func:`_lifetime` on numpy, every patient a year of age at a time
    (``_loops.lifetime_into`` is the same loop compiled, vectorized over patients)."""
    surv = np.where(alive, 1.0, 0.0)
    disc = np.full(age.shape[0], disc0)
    a = age.copy()
    while True:
        live = (a < MAX_AGE + 1) & (surv > 0)
        if not live.any():
            break
        whole = np.floor(a)
        length = np.where(live, np.minimum(whole + 1.0, MAX_AGE + 1) - a, 0.0)
        row = np.clip(whole, 0, MAX_AGE).astype(np.int64)
        hz = bg_table[female, row] + excess * 365.25 * fmath.exp_array(slope * (a - age))
        rate = hz + delta
        with np.errstate(divide="ignore", invalid="ignore"):
            part = np.where(rate > 0, -fmath.expm1_array(-rate * length) / rate, length)
            part_ly = np.where(hz > 0, -fmath.expm1_array(-hz * length) / hz, length)
        disc_ly += np.where(live, surv * disc * part, 0.0)
        ly += np.where(live, surv * part_ly, 0.0)
        surv = np.where(live, surv * fmath.exp_array(-hz * length), surv)
        disc = np.where(live, disc * fmath.exp_array(-delta * length), disc)
        a = np.where(live, a + length, a)


def _lifetime_columns(
    cols: dict[str, np.ndarray],
    chunk: ChunkResult,
    scn: Scenario,
    h_days: float,
    alive: np.ndarray,
    last_utility: np.ndarray,
    sparing_per_day: np.ndarray,
    disc_ly: np.ndarray,
    ly: np.ndarray,
) -> None:
    """The lifetime columns from the years lived after the horizon."""
    o = chunk.outcomes
    econ = scn.economics
    price = econ.prices
    visit_every = float(scn.visits.then_every_days)
    # the oral dose: the same as the final dose unless a pulse decided at the last visit
    # runs past the horizon (its methylprednisolone is not a daily dose to carry for life)
    per_year = 365.25 * (
        o["final_oral_prednisone_mg_per_day"] * price.prednisone_per_mg
        + sparing_per_day
        + price.visit / visit_every
    )
    lived = np.minimum(o["death_day"], h_days) / 365.25
    cols["life_years_lifetime"] = lived + ly
    cols["discounted_life_years_lifetime"] = cols["discounted_life_years"] + disc_ly
    cols["qaly_lifetime"] = cols["qaly"] + np.where(alive, last_utility, 0.0) * disc_ly
    cols["cost_lifetime"] = cols["cost_total"] + np.where(alive, per_year, 0.0) * disc_ly


def patient_table(chunk: ChunkResult, plan: Plan, scn: Scenario) -> dict[str, np.ndarray]:
    """Flat per-patient columns: baseline first, then outcomes."""
    b = chunk.baseline
    o = chunk.outcomes
    vis = chunk.visits
    uln, myo_uln = plan.cpk_uln, plan.myoglobin_uln
    cpk0 = vis["cpk"][:, 0]
    myo0 = vis["myoglobin"][:, 0]
    horizon = plan.horizon_days
    death = o["death_day"]
    died = death <= horizon
    # Time-to-event outcomes are censored at death (the last whole day alive) or at the
    # end of follow-up; outcomes measured at a visit are among the patients alive then.
    death_floor = np.floor(np.where(died, death, horizon))
    last_visit = np.minimum(float(plan.visit_days[-1]), death_floor)
    until = np.minimum(float(horizon), death_floor)
    cols: dict[str, np.ndarray] = {
        "patient": b.patient,
        "age_years": b.age_years,
        "female": b.female.astype(np.int64),
        "weight_kg": b.weight_kg,
        "dermatomyositis": b.dermatomyositis.astype(np.int64),
        "lung_involvement": b.lung_involvement.astype(np.int64),
        "dysphagia": b.dysphagia.astype(np.int64),
        "thrombosis_risk_factor": b.thrombosis_risk_factor.astype(np.int64),
        "lasting_drive_log": b.lasting_drive_log,
        "methylprednisolone_pulse": np.asarray(chunk.pulse).astype(np.int64),
        "induction_prednisone_mg_per_day": chunk.induction_mg,
        "cpk_baseline_u_per_l": cpk0,
        "myoglobin_baseline_ng_per_ml": myo0,
        "mmt8_baseline": vis["mmt8"][:, 0],
        "physician_global_baseline_cm": vis["physician_global"][:, 0],
        "patient_global_baseline_cm": vis["patient_global"][:, 0],
        "haq_baseline": vis["haq"][:, 0],
        "extramuscular_baseline_cm": vis["extramuscular"][:, 0],
    }
    if chunk.center_patients is not None:
        # an infusion center: the patient's replication, arrival day and what the center
        # did to them (days delayed and reduced, cycles and days skipped, days waited)
        cols.update(chunk.center_patients)
    cpk3 = _at_month(plan, vis["cpk"], 3)
    cols["cpk_month_3_u_per_l"] = cpk3
    cols["cpk_ratio_month_3"] = cpk3 / cpk0
    cols["myoglobin_ratio_month_3"] = _at_month(plan, vis["myoglobin"], 3) / myo0
    for m in (3, 5, 6, 12):
        cols[f"cpk_normal_month_{m}"] = _normal(_at_month(plan, vis["cpk"], m), uln)
    for m in (6, 12):
        cols[f"myoglobin_normal_month_{m}"] = _normal(_at_month(plan, vis["myoglobin"], m), myo_uln)
    for m in (6, 12):
        cols[f"mmt8_month_{m}"] = _at_month(plan, vis["mmt8"], m)
    # Each extramuscular domain, among the patients who have it (NaN otherwise): its
    # activity VAS at diagnosis, and inactive (<= 1 cm, the threshold of "inactive").
    for d in DOMAIN_LABELS:
        values = vis[f"{d}_activity"]
        cols[f"{d}_activity_baseline_cm"] = values[:, 0]
        for m in (6, 12):
            v = _at_month(plan, values, m)
            cols[f"{d}_inactive_month_{m}"] = _flag(v <= plan.inactive_ext, ~np.isnan(v))
    # The TIS outcomes from diagnosis read each visit against the day-0 visit, also in a
    # scenario with an entry visit (where the kernel's visit TIS, which the rules read, is
    # against the entry visit from entry on; the *_from_entry outcomes read that one).
    tis_dx = visit_tis_from_diagnosis(vis, plan)
    for wk in TIS_WEEKS:
        tis = _at_day(plan, tis_dx, 7 * wk)
        cols[f"tis_week_{wk}"] = tis
        for level in (20, 40, 60):
            cols[f"tis{level}_week_{wk}"] = _flag(tis >= level, ~np.isnan(tis))
    first_day = {
        name: o[name]
        for name in (
            "time_to_cpk_normal_days",
            "time_to_tis20_days",
            "time_to_tis40_days",
            "time_to_inactive_days",
        )
    }
    if plan.entry_rule is not None:  # the kernel's are of its entry-based TIS
        for level in (20, 40):
            first_day[f"time_to_tis{level}_days"] = _first_visit_day(plan, tis_dx >= level)
    for name, day in first_day.items():
        t, seen = _time(day, last_visit)
        cols[name], cols[name.replace("time_to_", "").replace("_days", "_reached")] = (
            t,
            seen.astype(np.int64),
        )
    cols["cpk_ever_normal"] = np.isfinite(o["time_to_cpk_normal_days"]).astype(np.int64)
    cols["strength_ever_normal"] = np.isfinite(o["time_to_strength_normal_days"]).astype(np.int64)
    for m in (6, 12, 24):
        cols[f"inactive_month_{m}"] = _at_month(plan, vis["inactive"], m)
    t, seen = _time(o["time_to_complete_response_days"], last_visit)
    cols["time_to_complete_response_days"] = t
    cols["complete_clinical_response"] = seen.astype(np.int64)
    # Off all therapy: no prednisone, after the last infusion, and no sparing agent: never
    # one, or one stopped before the visit (regimen.sparing_stop_when; without a stop rule
    # an agent once started is never stopped, and a patient who ever had one is never off).
    after_ivig = plan.visit_days[None, :] > o["last_infusion_day"][:, None]
    # An agent planned at a start day has that day from the start: it started only if the
    # patient was still followed then.
    sparing_started = o["sparing_start_day"] <= np.minimum(horizon, death)
    no_sparing = ~sparing_started[:, None] | (
        plan.visit_days[None, :] > o["sparing_stop_day"][:, None]
    )
    off = (vis["inactive"] > 0.5) & (chunk.visit_prednisone <= 0.0) & after_ivig & no_sparing
    run = _longest_run_days(off, plan.visit_days)
    cols["remission_off_therapy"] = (run >= plan.complete_response_days).astype(np.int64)
    # Relapse: clinical (enzymes with function or physician global), and CK-defined.
    cols["relapses"] = o["relapses"]
    cols["relapse"] = (o["relapses"] > 0).astype(np.int64)
    cols["relapse_during_taper"] = (o["relapses_on_steroid"] > 0).astype(np.int64)
    cols["relapse_after_stopping"] = (o["relapses_off_steroid"] > 0).astype(np.int64)
    cols["years_at_risk_of_relapse"] = _days_at_risk_of_relapse(chunk, plan) / 365.25
    t, seen = _time(o["time_to_first_relapse_days"], until)
    cols["time_to_first_relapse_days"], cols["relapse_observed"] = t, seen.astype(np.int64)
    cols["biochemical_relapse"] = (o["biochemical_relapses"] > 0).astype(np.int64)
    cols["biochemical_relapses_2_or_more"] = (o["biochemical_relapses"] > 1).astype(np.int64)
    # Course over the first two years (Milano cohort categories).
    window = plan.course_type_days
    defined = (horizon >= window) & (death > window)  # alive at the end of the window
    responded = o["time_to_inactive_days"] <= window
    relapsed = o["time_to_first_relapse_days"] <= window
    cols["course_monophasic"] = _flag(responded & ~relapsed, defined)
    cols["course_polycyclic"] = _flag(responded & relapsed, defined)
    cols["course_chronic"] = _flag(~responded, defined)
    # State at the last visit (Marie 2001 categories), among the patients alive then.
    last_inactive = vis["inactive"][:, -1] > 0.5
    last_tis = tis_dx[:, -1]
    alive_last = ~np.isnan(vis["inactive"][:, -1])
    cols["last_visit_remission"] = _flag(last_inactive, alive_last)
    cols["last_visit_worsened"] = _flag(~last_inactive & (last_tis < 20), alive_last)
    cols["last_visit_improved"] = _flag(~last_inactive & (last_tis >= 20), alive_last)
    # In remission off all therapy at the last visit (Bronner 2006, at follow-up): inactive
    # there, no prednisone, after the last infusion, and no sparing agent (above), among
    # the patients alive then.
    cols["last_visit_remission_off_therapy"] = _flag(off[:, -1], alive_last)
    if plan.entry_rule is not None:
        _from_entry(cols, chunk, plan)
    tis24 = _at_day(plan, tis_dx, 168)
    dead24 = death <= 168  # death counts as treatment failure
    # undefined for everyone when no visit is scheduled on day 168 (a shorter horizon):
    # otherwise only the dead would have a value, every one of them a failure
    week24 = (~np.isnan(tis24) | dead24) & (_visit_index(plan, 168) is not None)
    cols["treatment_failure_week_24"] = _flag((tis24 < 20) | dead24, week24)
    cols["damage_points"] = o["damage_points"]
    cols["cumulative_prednisone_g"] = o["cumulative_prednisone_mg"] / 1000.0
    pred6 = _at_month(plan, chunk.visit_prednisone, 6)
    cols["prednisone_month_6_mg_per_day"] = pred6
    cols["prednisone_5mg_by_month_6"] = _flag(pred6 <= 5.0, ~np.isnan(pred6))
    for label, key in (
        ("7_5", "time_to_prednisone_le_7_5_days"),
        ("5", "time_to_prednisone_le_5_days"),
    ):
        t, seen = _time(o[key], until)
        cols[f"time_to_prednisone_le_{label}mg_days"] = t
        cols[f"prednisone_le_{label}mg_reached"] = seen.astype(np.int64)
    cols["final_prednisone_mg_per_day"] = o["final_prednisone_mg_per_day"]
    cols["steroid_stopped"] = np.isfinite(o["steroid_stopped_day"]).astype(np.int64)
    cols["ivig_g"] = o["ivig_g"]
    cols["ivig_cycles"] = o["ivig_cycles"]
    cols["ivig_infusion_days"] = o["ivig_infusion_days"]
    cols["ivig_stopped_for_adverse_event"] = o["ivig_stopped"].astype(np.int64)
    cols["rescue_started"] = np.isfinite(o["rescue_day"]).astype(np.int64)
    cols["rescue_day"] = np.where(np.isfinite(o["rescue_day"]), o["rescue_day"], math.nan)
    t, seen = _time(o["rescue_day"], until)
    cols["time_to_rescue_days"] = t
    # Is the start rule still firing when the simulation stops? The share of the patients
    # it started in the horizon's last year. The lifetime extrapolation gives no IVIG after
    # the horizon (docs/model.md section 5, Lifetime), so a rule still firing is cut off.
    # (h - 365, h]; below zero for a horizon shorter than a year, so that it covers day 0
    w0 = horizon - FINAL_YEAR_DAYS
    cols["rescue_started_final_year"] = (
        (o["rescue_day"] > w0) & (o["rescue_day"] <= horizon)
    ).astype(np.int64)
    # Any IVIG in that year: a course started by the rule, a new course (retreat_when) or
    # cycles added (extend_when) still running when the simulation stops.
    cols["ivig_given_final_year"] = (o["last_infusion_day"] > w0).astype(np.int64)
    cols["rescue_pulse"] = (o["rescue_pulses"] > 0).astype(np.int64)
    agent = o["sparing_agent"].astype(np.int64)
    cols["sparing_agent_used"] = sparing_started.astype(np.int64)
    cols["sparing_agent"] = np.where(sparing_started, agent, -1)
    cols["sparing_start_day"] = np.where(sparing_started, o["sparing_start_day"], math.nan)
    stopped = o["sparing_stop_day"] <= horizon
    cols["sparing_agent_stopped"] = stopped.astype(np.int64)
    cols["sparing_stop_day"] = np.where(stopped, o["sparing_stop_day"], math.nan)
    for ae in plan.steroid_aes:
        day = o[f"ae_{ae.name}_day"]
        cols[f"ae_{ae.name}"] = (day <= horizon).astype(np.int64)
        cols[f"ae_{ae.name}_day"] = np.where(day <= horizon, day, math.nan)
    for ae in plan.ivig_aes:
        cols[f"ae_{ae.name}"] = (o[f"ae_{ae.name}_n"] > 0).astype(np.int64)
    _survival(cols, o, plan)
    _economics(cols, chunk, plan, scn)
    return cols


def cea_columns(scn: Scenario) -> tuple[str, str]:
    """(cost, QALY) columns of the cost-effectiveness analysis: lifetime by default
    (``economics.cea_horizon``), or the simulated horizon."""
    if scn.economics.cea_horizon == "lifetime":
        return "cost_lifetime", "qaly_lifetime"
    return "cost_total", "qaly"


def decision_population(scn: Scenario) -> float:
    """Patients the decision concerns: new patients a year over the decision's years,
    each year's cohort discounted (for population EVPI)."""
    econ = scn.economics
    r = econ.discount_rate_per_year
    years = econ.decision_horizon_years
    return float(sum(econ.new_patients_per_year / (1 + r) ** k for k in range(years)))


def survival_years(plan: Plan) -> list[int]:
    """The whole years k at which survival is reported (day round(365.25 k) within the
    horizon)."""
    return [k for k in SURVIVAL_YEARS if _year_day(k) <= plan.horizon_days]


# Metrics read at one fixed visit day (or survival at one whole year): their value is the
# same whatever the horizon from that day on (``last_day_read``). Anything read at the
# last visit, over the whole follow-up or from a patient's own entry day is not here.
_AT_DAY: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"(?:cpk|myoglobin)_(?:ratio|normal)_month_(\d+)"), MONTH_DAYS),
    (
        re.compile(
            "(?:"
            + "|".join(["mmt8", "inactive", *(f"{d}_inactive" for d in DOMAIN_LABELS)])
            + r")_month_(\d+)"
        ),
        MONTH_DAYS,
    ),
    (re.compile(r"prednisone_5mg_by_month_(\d+)"), MONTH_DAYS),
    (re.compile(r"(?:tis|tis20|tis40|tis60|treatment_failure)_week_(\d+)"), 7),
)


def last_day_read(name: str) -> int | None:
    """The last day of the course that metric ``name`` reads, when that is one fixed
    visit day or year: a horizon from that day on gives it the same value (same patients,
    same streams; tests/test_calibrate.py checks it). None for every other metric."""
    m = re.fullmatch(r"alive_year_(\d+)", name)
    if m:
        return _year_day(int(m.group(1)))
    for pattern, unit in _AT_DAY:
        m = pattern.fullmatch(name)
        if m:
            return int(m.group(1)) * unit
    return None


def _year_day(k: int) -> int:
    return math.floor(365.25 * k + 0.5)


def _survival(cols: dict[str, np.ndarray], o: dict[str, np.ndarray], plan: Plan) -> None:
    """Deaths by cause, survival at whole years and life-years (docs/model.md §5)."""
    horizon = plan.horizon_days
    death = o["death_day"]
    died = death <= horizon
    cause = np.where(died, o["death_cause"], 0.0)
    cols["died"] = died.astype(np.int64)
    cols["death_day"] = np.where(died, death, math.nan)
    cols["death_cause"] = cause.astype(np.int64)
    cols["time_to_death_days"] = np.floor(np.where(died, death, horizon))
    cols["death_observed"] = died.astype(np.int64)
    cols["death_background"] = (cause == CAUSE_BACKGROUND).astype(np.int64)
    cols["death_disease"] = (cause == CAUSE_DISEASE).astype(np.int64)
    for j, ae in enumerate(plan.steroid_aes + plan.ivig_aes):  # type: ignore[operator]
        if ae.case_fatality > 0:
            cols[f"death_{ae.name}"] = (cause == 3 + j).astype(np.int64)
    for k in survival_years(plan):
        cols[f"alive_year_{k}"] = (death > _year_day(k)).astype(np.int64)
    end = np.minimum(death, horizon)
    cols["life_years"] = end / 365.25
    cols["discounted_life_years"] = _discounted_years(plan.discount_per_day, 0.0, end)


def _from_entry(cols: dict[str, np.ndarray], chunk: ChunkResult, plan: Plan) -> None:
    """Study outcomes counted from entry (scenario ``entry``); NaN for patients who never
    entered or whose week falls after the horizon."""
    o = chunk.outcomes
    entry = o["entry_day"]
    entered = np.isfinite(entry)
    cols["entered"] = entered.astype(np.int64)
    cols["entry_day"] = np.where(entered, entry, math.nan)
    days = plan.visit_days
    rows = np.arange(chunk.n)
    at_entry = np.clip(np.searchsorted(days, np.where(entered, entry, -1.0)), 0, days.size - 1)

    def at_entry_visit(values: np.ndarray) -> np.ndarray:
        return np.where(entered, values[rows, at_entry], math.nan)

    mmt_entry = at_entry_visit(chunk.visits["mmt8"])
    cpk_entry = at_entry_visit(chunk.visits["cpk"])
    for wk in ENTRY_WEEKS:
        target = np.where(entered, entry + 7 * wk, -1.0)
        j = np.clip(np.searchsorted(days, target), 0, days.size - 1)
        ok = entered & (days[j] == target)
        tis = np.where(ok, chunk.visits["tis"][rows, j], math.nan)
        cols[f"tis_week_{wk}_from_entry"] = tis
        for level in (20, 40, 60):
            cols[f"tis{level}_week_{wk}_from_entry"] = _flag(tis >= level, ~np.isnan(tis))
        mmt = np.where(ok, chunk.visits["mmt8"][rows, j], math.nan)
        cols[f"mmt8_change_week_{wk}_from_entry"] = mmt - mmt_entry
        cpk = np.where(ok, chunk.visits["cpk"][rows, j], math.nan)
        cols[f"cpk_ratio_week_{wk}_from_entry"] = cpk / cpk_entry
    cols["unblinded"] = np.where(
        entered, np.isfinite(o["unblind_day"]).astype(np.float64), math.nan
    )
    # Switched by week wk (ProDERM's period 1 ends at week 16): among the entered patients
    # whose week wk falls within the horizon; a death before it is not a switch.
    for wk in ENTRY_WEEKS:
        within = entered & (entry + 7 * wk <= plan.horizon_days)
        cols[f"unblinded_week_{wk}_from_entry"] = _flag(o["unblind_day"] <= entry + 7 * wk, within)
    # Physician global at entry, in ProDERM's categories of a whole-cm rating: mild 0-3,
    # moderate 4-6, severe 7-10 (the measured cm rounded to the nearest whole cm).
    pga = at_entry_visit(chunk.visits["physician_global"])
    cols["physician_global_at_entry_cm"] = pga
    seen = ~np.isnan(pga)
    cols["physician_global_at_entry_mild"] = _flag(pga < 3.5, seen)
    cols["physician_global_at_entry_moderate"] = _flag((pga >= 3.5) & (pga < 6.5), seen)
    cols["physician_global_at_entry_severe"] = _flag(pga >= 6.5, seen)
    # Treatment at entry (ProDERM: concomitant corticosteroids 88%, immunosuppressants 57%).
    pred = at_entry_visit(chunk.visit_prednisone)
    cols["prednisone_at_entry"] = _flag(pred > 0.0, entered)
    on_agent = (o["sparing_start_day"] <= entry) & ~(o["sparing_stop_day"] <= entry)
    cols["sparing_agent_at_entry"] = _flag(on_agent, entered)


def _m(name: str, kind: str, unit: str, label: str, column: str = "", **kw: Any) -> Metric:
    return Metric(name, kind, column or name, unit, label, **kw)


def metric_specs(plan: Plan) -> list[Metric]:
    """Every cohort metric of a scenario, in report order."""
    P, Mn, T = "proportion", "mean", "time"
    specs = [
        _m("cpk_baseline_u_per_l", Mn, "U/L", "CPK at diagnosis"),
        _m("cpk_ratio_month_3", Mn, "ratio", "CPK at day 84 / baseline"),
        _m("myoglobin_ratio_month_3", Mn, "ratio", "myoglobin at day 84 / baseline"),
        _m("cpk_normal_month_3", P, P, "CPK normal at month 3"),
        _m("cpk_normal_month_5", P, P, "CPK normal at month 5 (day 140)"),
        _m("cpk_normal_month_6", P, P, "CPK normal at month 6"),
        _m("cpk_normal_month_12", P, P, "CPK normal at month 12"),
        _m("myoglobin_normal_month_6", P, P, "myoglobin normal at month 6"),
        _m("cpk_ever_normal", P, P, "CPK normal at some visit"),
        _m(
            "time_to_cpk_normal_days",
            T,
            "days",
            "time to CPK normal (KM median)",
            event_column="cpk_normal_reached",
        ),
        _m("mmt8_month_6", Mn, "points (0-150)", "MMT-8 at month 6"),
        _m("mmt8_month_12", Mn, "points (0-150)", "MMT-8 at month 12"),
        _m("strength_ever_normal", P, P, "MMT-8 >= 142 at some visit"),
    ]
    for d, label in DOMAIN_LABELS.items():
        for m in (6, 12):
            specs.append(
                _m(
                    f"{d}_inactive_month_{m}",
                    P,
                    P,
                    f"{label} inactive (<= 1 cm) at month {m}, among those with it",
                )
            )
    specs += [
        _m("damage_points", Mn, "MMT-8 points", "muscle damage at the horizon"),
    ]
    for wk in TIS_WEEKS:
        specs.append(_m(f"tis_week_{wk}", Mn, "points (0-100)", f"TIS at week {wk}"))
        for level, word in ((20, "minimal"), (40, "moderate"), (60, "major")):
            specs.append(_m(f"tis{level}_week_{wk}", P, P, f"TIS >= {level} ({word}) at week {wk}"))
    specs += [
        _m(
            "time_to_tis20_days",
            T,
            "days",
            "time to TIS >= 20 (KM median)",
            event_column="tis20_reached",
        ),
        _m(
            "time_to_tis40_days",
            T,
            "days",
            "time to TIS >= 40 (KM median)",
            event_column="tis40_reached",
        ),
        _m(
            "treatment_failure_week_24",
            P,
            P,
            "no minimal response (TIS < 20) at week 24, or died by then",
        ),
        _m("inactive_month_6", P, P, "inactive at month 6"),
        _m("inactive_month_12", P, P, "inactive at month 12"),
        _m("inactive_month_24", P, P, "inactive at month 24"),
        _m(
            "time_to_inactive_days",
            T,
            "days",
            "time to inactive disease (KM median)",
            event_column="inactive_reached",
        ),
        _m("complete_clinical_response", P, P, "complete clinical response (>= 6 months inactive)"),
        _m("remission_off_therapy", P, P, "remission off all therapy (>= 6 months)"),
        _m("relapse", P, P, ">= 1 clinical relapse"),
        _m("relapses", Mn, "count", "clinical relapses per patient"),
        _m(
            "relapse_rate_per_100_patient_years",
            "rate",
            "per 100 patient-years",
            "clinical relapses per 100 patient-years at risk",
            column="relapses",
            denominator="years_at_risk_of_relapse",
        ),
        _m("relapse_during_taper", P, P, "relapse while on prednisone"),
        _m("relapse_after_stopping", P, P, "relapse after prednisone was stopped"),
        _m("biochemical_relapse", P, P, ">= 1 CK-defined relapse"),
        _m("biochemical_relapses_2_or_more", P, P, ">= 2 CK-defined relapses"),
        _m("course_monophasic", P, P, "monophasic course (2 years)"),
        _m("course_polycyclic", P, P, "polycyclic course (2 years)"),
        _m("course_chronic", P, P, "chronic continuous course (2 years)"),
        _m("last_visit_remission", P, P, "inactive at the last visit"),
        _m("last_visit_improved", P, P, "improved, not inactive, at the last visit"),
        _m("last_visit_worsened", P, P, "not improved (TIS < 20) at the last visit"),
        _m(
            "last_visit_remission_off_therapy",
            P,
            P,
            "inactive and off all therapy at the last visit",
        ),
        _m("cumulative_prednisone_g", Mn, "g", "cumulative prednisone-equivalent dose"),
        _m("prednisone_5mg_by_month_6", P, P, "prednisone <= 5 mg/day at month 6"),
        _m(
            "time_to_prednisone_le_7_5mg_days",
            T,
            "days",
            "time to prednisone <= 7.5 mg/day (KM median)",
            event_column="prednisone_le_7_5mg_reached",
        ),
        _m(
            "time_to_prednisone_le_5mg_days",
            T,
            "days",
            "time to prednisone <= 5 mg/day (KM median)",
            event_column="prednisone_le_5mg_reached",
        ),
        _m("steroid_stopped", P, P, "prednisone stopped"),
        _m("ivig_g", Mn, "g", "IVIG per patient"),
        _m("ivig_cycles", Mn, "cycles", "IVIG cycles per patient"),
        # the rule is rescue in a rescue arm, entry in a trial arm, where a placebo arm's
        # "IVIG" is placebo infusions
        _m("rescue_started", P, P, "IVIG (or placebo) started by its start rule"),
        _m(
            "rescue_started_final_year",
            P,
            P,
            "IVIG (or placebo) started by its start rule in the horizon's last year",
        ),
        _m(
            "ivig_given_final_year",
            P,
            P,
            "IVIG (or placebo) infused in the horizon's last year",
        ),
        _m("rescue_pulse", P, P, "rescue methylprednisolone pulse"),
        _m("sparing_agent_used", P, P, "steroid-sparing agent started"),
        _m("sparing_agent_stopped", P, P, "steroid-sparing agent stopped (sparing_stop_when)"),
        _m(
            "time_to_rescue_days",
            T,
            "days",
            "time to IVIG started by its start rule (KM median)",
            event_column="rescue_started",
        ),
        _m("died", P, P, "died during follow-up"),
        _m("death_disease", P, P, "died: disease-related"),
        _m("death_background", P, P, "died: background (life table)"),
    ]
    for ae in plan.steroid_aes + plan.ivig_aes:  # type: ignore[operator]
        if ae.case_fatality > 0:
            specs.append(_m(f"death_{ae.name}", P, P, f"died: {ae.name.replace('_', ' ')}"))
    for k in survival_years(plan):
        specs.append(_m(f"alive_year_{k}", P, P, f"alive at {k} year{'s' if k > 1 else ''}"))
    specs += [
        _m("life_years", Mn, "years", "life-years within the horizon (undiscounted)"),
        _m(
            "life_years_lifetime",
            Mn,
            "years",
            "life expectancy from diagnosis (lifetime, undiscounted)",
        ),
        _m("cost_lifetime", Mn, "currency", "total cost over a lifetime (discounted)"),
        _m("qaly_lifetime", Mn, "QALY", "QALYs over a lifetime (discounted)"),
        _m(
            "net_monetary_benefit",
            Mn,
            "currency",
            "net monetary benefit at the willingness to pay (cost-effectiveness horizon)",
            nonnegative=False,
        ),
        _m("cost_total", Mn, "currency", "total cost (discounted)"),
        _m("cost_ivig", Mn, "currency", "cost: IVIG"),
        _m("cost_infusion_days", Mn, "currency", "cost: infusion days"),
        _m("cost_prednisone", Mn, "currency", "cost: prednisone"),
        _m("cost_methylprednisolone_pulse", Mn, "currency", "cost: methylprednisolone pulses"),
        _m("cost_sparing_agents", Mn, "currency", "cost: steroid-sparing agents"),
        _m("cost_visits", Mn, "currency", "cost: visits and labs"),
        _m("cost_adverse_events", Mn, "currency", "cost: adverse events"),
        _m("qaly", Mn, "QALY", "QALYs (discounted)"),
    ]
    if plan.entry_rule is not None:
        specs.append(_m("entered", P, P, "entered the study"))
        for wk in ENTRY_WEEKS:
            specs.append(
                _m(
                    f"tis_week_{wk}_from_entry",
                    Mn,
                    "points (0-100)",
                    f"TIS at week {wk} from entry",
                )
            )
            for level in (20, 40, 60):
                specs.append(
                    _m(
                        f"tis{level}_week_{wk}_from_entry",
                        P,
                        P,
                        f"TIS >= {level} at week {wk} from entry",
                    )
                )
            specs.append(
                _m(
                    f"mmt8_change_week_{wk}_from_entry",
                    Mn,
                    "points",
                    f"MMT-8 change at week {wk} from entry",
                    nonnegative=False,
                )
            )
            specs.append(
                _m(
                    f"cpk_ratio_week_{wk}_from_entry",
                    Mn,
                    "ratio",
                    f"CPK at week {wk} / CPK at entry",
                )
            )
        specs.append(_m("unblinded", P, P, "switched from placebo to open-label IVIG"))
        for wk in ENTRY_WEEKS:
            specs.append(
                _m(
                    f"unblinded_week_{wk}_from_entry",
                    P,
                    P,
                    f"switched to open-label IVIG by week {wk} from entry",
                )
            )
        specs.append(
            _m("physician_global_at_entry_cm", Mn, "cm (0-10)", "physician global at entry")
        )
        for band, cm in (("mild", "0-3"), ("moderate", "4-6"), ("severe", "7-10")):
            specs.append(
                _m(
                    f"physician_global_at_entry_{band}",
                    P,
                    P,
                    f"physician global at entry {cm} cm (rounded), {band}",
                )
            )
        specs.append(_m("prednisone_at_entry", P, P, "on prednisone at entry"))
        specs.append(_m("sparing_agent_at_entry", P, P, "on a steroid-sparing agent at entry"))
    for ae in plan.steroid_aes + plan.ivig_aes:  # type: ignore[operator]
        specs.append(
            Metric(
                f"adverse_event_{ae.name}",
                "proportion",
                f"ae_{ae.name}",
                "proportion",
                f"{ae.name.replace('_', ' ')} (>= 1)",
            )
        )
    return specs


METRICS = (
    "cpk_ratio_month_3",
    "cpk_normal_month_6",
    "tis_week_24",
    "tis40_week_24",
    "inactive_month_12",
    "relapse",
    "course_chronic",
    "cumulative_prednisone_g",
    "time_to_prednisone_le_5mg_days",
    "ivig_g",
)


class RatioEstimate:
    """Sum of x over sum of y (times ``scale``), with a delta-method 95% interval."""

    def __init__(self, scale: float = 100.0) -> None:
        self.scale = scale
        self.x, self.y, self.xy = Moments(), Moments(), Moments()

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        for acc, row in zip(*self.parts(x, y), strict=True):
            acc.add(row)

    def parts(self, x: np.ndarray, y: np.ndarray) -> tuple[list[Moments], list[np.ndarray]]:
        """The sums ``add`` adds to, and what it adds to each (``Moments.add_many``)."""
        return [self.x, self.y, self.xy], [x, y, x * y]

    def merge(self, other: RatioEstimate) -> None:
        self.x.merge(other.x)
        self.y.merge(other.y)
        self.xy.merge(other.xy)

    def to_dict(self) -> dict[str, Any]:
        n = self.x.count
        if n < 2 or self.y.total <= 0:
            return {"mean": None, "ci95": [None, None], "n": n}
        r = self.x.total / self.y.total
        mx, my = self.x.mean, self.y.mean
        cov = (self.xy.total - n * mx * my) / (n - 1)
        var = (self.x.var - 2 * r * cov + r * r * self.y.var) / (n * my * my)
        se = math.sqrt(max(var, 0.0))
        return {
            "mean": r * self.scale,
            "ci95": [max(0.0, (r - Z95 * se) * self.scale), (r + Z95 * se) * self.scale],
            "n": n,
        }


class PairedRatioDifference:
    """The difference ``R_b - R_a`` of two arms' ratio-of-sums rates (``sum x / sum t``,
    times ``scale``) on the same patients, with a delta-method 95% interval that uses the
    pairing: each patient's linearised contribution is ``(x_b - R_b t_b) / mean(t_b) -
    (x_a - R_a t_a) / mean(t_a)``, and the variance of the difference is their sample
    variance over n, expanded into sums of the per-patient values and products (each
    product rounded once per patient, so the sums do not depend on the chunking; the
    same products for both arms and across them, so two identical arms differ by
    exactly 0 with an interval of [0, 0]). A rate has no per-patient difference, so
    there are no better/worse/same shares."""

    #: the per-patient products summed: (first factor, second factor) by name
    PRODUCTS = (
        ("xa", "xa"),
        ("ta", "ta"),
        ("xa", "ta"),
        ("xb", "xb"),
        ("tb", "tb"),
        ("xb", "tb"),
        ("xa", "xb"),
        ("xa", "tb"),
        ("ta", "xb"),
        ("ta", "tb"),
    )

    def __init__(self, scale: float = 100.0) -> None:
        self.scale = scale
        self.sums = {k: Moments() for k in ("xa", "ta", "xb", "tb")}
        self.products = [Moments() for _ in self.PRODUCTS]

    def add(self, xa: np.ndarray, ta: np.ndarray, xb: np.ndarray, tb: np.ndarray) -> None:
        cols = {"xa": xa, "ta": ta, "xb": xb, "tb": tb}
        for k, acc in self.sums.items():
            acc.add(cols[k])
        for (u, v), acc in zip(self.PRODUCTS, self.products, strict=True):
            acc.add(cols[u] * cols[v])

    def merge(self, other: PairedRatioDifference) -> None:
        for k, acc in self.sums.items():
            acc.merge(other.sums[k])
        for mine, theirs in zip(self.products, other.products, strict=True):
            mine.merge(theirs)

    def to_dict(self) -> dict[str, Any]:
        m = {k: acc.mean for k, acc in self.sums.items()}
        n = self.sums["xa"].count
        none = {"higher_pct": None, "lower_pct": None, "same_pct": None, "n": n}
        ta, tb = self.sums["ta"].total, self.sums["tb"].total
        if n < 2 or ta <= 0 or tb <= 0:
            return {"mean_difference": None, "ci95": [None, None], **none}
        ra, rb = self.sums["xa"].total / ta, self.sums["xb"].total / tb
        c = {
            pair: (acc.total - n * m[pair[0]] * m[pair[1]]) / (n - 1)
            for pair, acc in zip(self.PRODUCTS, self.products, strict=True)
        }
        # written alike, so that for two identical arms the three are the same bits
        var_a = c["xa", "xa"] - (ra * c["xa", "ta"] + ra * c["xa", "ta"]) + ra * ra * c["ta", "ta"]
        var_b = c["xb", "xb"] - (rb * c["xb", "tb"] + rb * c["xb", "tb"]) + rb * rb * c["tb", "tb"]
        cov_ab = c["xa", "xb"] - (rb * c["xa", "tb"] + ra * c["ta", "xb"]) + ra * rb * c["ta", "tb"]
        at, bt = m["ta"], m["tb"]
        var = (var_b / (bt * bt) + var_a / (at * at) - 2 * cov_ab / (at * bt)) / n
        d = rb - ra
        half = Z95 * math.sqrt(max(var, 0.0))
        return {
            "mean_difference": d * self.scale,
            "ci95": [(d - half) * self.scale, (d + half) * self.scale],
            **none,
        }


class CohortSummary:
    """Streaming aggregation of patient tables into cohort metrics."""

    def __init__(
        self, plan: Plan, currency: str = "", metrics: frozenset[str] | None = None
    ) -> None:
        """``metrics``: only these metrics, and no monthly tables (a sweep keeps a few
        outcomes of every point); each is computed exactly as in a full summary."""
        # Plain data only: summaries travel between processes (plans hold compiled rules).
        self.specs = metric_specs(plan)
        if metrics is not None:
            self.specs = [m for m in self.specs if m.name in metrics]
        self.currency = currency
        self.acc: dict[str, Any] = {}
        horizon = int(plan.horizon_days)
        for m in self.specs:
            if m.kind == "mean":
                self.acc[m.name] = Moments()
            elif m.kind == "proportion":
                self.acc[m.name] = Proportion()
            elif m.kind == "rate":
                self.acc[m.name] = RatioEstimate()
            else:
                self.acc[m.name] = KaplanMeier(horizon)
        first: dict[float, int] = {}  # each visit day's first column (_visit_index)
        for i, day in enumerate(plan.visit_days.tolist()):
            first.setdefault(day, i)
        self.months = [
            m
            for m in range(int(plan.horizon_days) // MONTH_DAYS + 1)
            if metrics is None and m * MONTH_DAYS in first
        ]
        self.month_index = [first[m * MONTH_DAYS] for m in self.months]
        self.cpk_months = [LogHistogram() for _ in self.months]
        self.myo_months = [LogHistogram() for _ in self.months]
        self.pred_months = [Moments() for _ in self.months]
        self.core_months = {name: [Moments() for _ in self.months] for name in CORE_SET_MONTHLY}
        # the monthly TIS is against day 0 (visit_tis_from_diagnosis): the ULNs it needs
        # where the kernel's visit TIS is against an entry visit
        self.tis_ulns = None if plan.entry_rule is None else (plan.cpk_uln, plan.myoglobin_uln)
        self.n = 0
        self.center: CenterRecord | None = None  # a scenario with an infusion center

    def add(self, table: dict[str, np.ndarray], chunk: ChunkResult) -> None:
        n = int(table["patient"].shape[0])
        self.n += n
        if chunk.center is not None:
            self.center = CenterRecord.merge_all([self.center, chunk.center])
        # every mean, ratio and monthly mean is added in one Moments.add_many call (the
        # same exact sums as one add each, hundreds of them a chunk)
        moments: list[Moments] = []
        rows: list[np.ndarray] = []
        shares: list[Proportion] = []  # counted together: valid (not NaN), and > 0.5
        flags: list[np.ndarray] = []
        for m in self.specs:
            acc = self.acc[m.name]
            col = np.asarray(table[m.column], dtype=np.float64)
            if m.kind == "mean":
                moments.append(acc)
                rows.append(col)
            elif m.kind == "proportion":
                shares.append(acc)
                flags.append(col)
            elif m.kind == "rate":
                accs, values = acc.parts(col, np.asarray(table[m.denominator], dtype=np.float64))
                moments += accs
                rows += values
            else:
                seen = np.asarray(table[m.event_column]) > 0
                # a death during follow-up before the event: a competing event (for the
                # cumulative incidence; the Kaplan-Meier curve counts it as a censoring)
                died = table.get("died")
                competing = None if died is None else ~seen & (np.asarray(died) > 0)
                acc.add(col.astype(np.int64), seen, competing)
        columns = self.month_index
        monthly = [
            (self.cpk_months, chunk.visit_cpk),
            (self.myo_months, chunk.visit_myoglobin),
            (self.pred_months, chunk.visit_prednisone),
            *((accs, self._monthly_values(chunk, name)) for name, accs in self.core_months.items()),
        ]
        for month_accs, values in monthly:
            for k, i in enumerate(columns):
                acc = month_accs[k]
                moments.append(acc.moments if isinstance(acc, LogHistogram) else acc)
                rows.append(values[:, i])
        if moments and n:
            Moments.add_many(moments, rows)
        if shares and n:
            f = np.vstack(flags)
            valid = ~np.isnan(f)
            n_valid = np.count_nonzero(valid, axis=1).tolist()
            n_yes = np.count_nonzero(valid & (f > 0.5), axis=1).tolist()
            for acc, k, v in zip(shares, n_yes, n_valid, strict=True):
                acc.add_counts(k, v)
        for k, i in enumerate(columns):
            self.cpk_months[k].add(chunk.visit_cpk[:, i], moments=False)
            self.myo_months[k].add(chunk.visit_myoglobin[:, i], moments=False)

    def _monthly_values(self, chunk: ChunkResult, name: str) -> np.ndarray:
        if name == "tis" and self.tis_ulns is not None:
            return _tis_against_day_0(chunk.visits, *self.tis_ulns)
        return chunk.visits[name]

    def merge(self, other: CohortSummary) -> None:
        self.n += other.n
        if other.center is not None:
            self.center = CenterRecord.merge_all([self.center, other.center])
        for name, acc in self.acc.items():
            acc.merge(other.acc[name])
        pairs = [
            (self.cpk_months, other.cpk_months),
            (self.myo_months, other.myo_months),
            (self.pred_months, other.pred_months),
        ]
        pairs += [(self.core_months[n], other.core_months[n]) for n in self.core_months]
        for mine, theirs in pairs:
            for a, b in zip(mine, theirs, strict=True):
                a.merge(b)

    def metrics(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for m in self.specs:
            d = self.acc[m.name].to_dict()
            ci = d["ci95"]
            if m.kind == "mean" and m.nonnegative and ci[0] is not None:
                ci = [max(0.0, ci[0]), ci[1]]  # a normal interval must not cross zero here
            unit = self.currency if m.unit == "currency" else m.unit
            entry = {
                "mean": d["mean"],
                "ci95": ci,
                "n": d["n"],
                "unit": unit,
                "label": m.label,
                "estimator": ESTIMATORS[m.kind],
            }
            if m.kind == "time":
                entry["events"] = d["events"]
                entry["censored"] = d["censored"]
                for key in ("rmst", "rmst_ci95", "rmst_variance", "rmst_to_day"):
                    entry[key] = d[key]
            out[m.name] = entry
        if self.center is not None:
            out.update(center_metrics(self.center))
        return out

    def curves(self) -> dict[str, dict[str, list[Any]]]:
        """Kaplan-Meier curves of the time-to-event metrics, for figures."""
        return {m.name: self.acc[m.name].to_dict()["curve"] for m in self.specs if m.kind == "time"}

    def by_month(self, which: str = "cpk") -> list[dict[str, Any]]:
        hists = self.cpk_months if which == "cpk" else self.myo_months
        rows = []
        for month, h in zip(self.months, hists, strict=True):
            d = h.to_dict()
            rows.append(
                {
                    "month": month,
                    "day": month * MONTH_DAYS,
                    "median": d["median"],
                    "p05": d["p05"],
                    "p95": d["p95"],
                    "mean": d["mean"],
                }
            )
        return rows

    def prednisone_by_month(self) -> list[dict[str, Any]]:
        return [
            {"month": month, "day": month * MONTH_DAYS, "mean": acc.to_dict()["mean"]}
            for month, acc in zip(self.months, self.pred_months, strict=True)
        ]

    def core_set_by_month(self) -> dict[str, list[dict[str, Any]]]:
        """Mean and SD of each core set measure (and TIS, damage) at each monthly visit."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name, accs in self.core_months.items():
            rows = []
            for month, acc in zip(self.months, accs, strict=True):
                d = acc.to_dict()
                rows.append(
                    {"month": month, "day": month * MONTH_DAYS, "mean": d["mean"], "sd": d["sd"]}
                )
            out[name] = rows
        return out
