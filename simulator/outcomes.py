"""Outcomes: one row per patient, and the cohort metrics aggregated from those rows.

``patient_table`` turns an engine's :class:`~simulator.records.ChunkResult` into flat
columns (baseline characteristics and outcomes, one entry per patient): this is what
``patients.csv`` holds and what comparisons pair across strategies. ``CohortSummary``
aggregates those columns as chunks stream in (exact, order-independent statistics from
``stats.py``), so memory does not grow with the number of patients.

Definitions (docs/model.md, "Outcomes"): a month is 4 weeks (day 84 is month 3); values at
month m are the lab visit on day 28 m; CPK is "normal" when the measured value is below
the ULN; time to CPK normal is the first visit with a normal value (censored at the last
visit); a relapse is a measured CPK above ``relapse_cpk_x_uln`` x ULN after a normal one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .kernel.course import MONTH_DAYS, Plan
from .records import ChunkResult
from .scenario.schema import Scenario
from .stats import KaplanMeier, LogHistogram, Moments, Proportion

__all__ = ["METRICS", "CohortSummary", "Metric", "metric_specs", "patient_table"]


@dataclass(frozen=True)
class Metric:
    """How a cohort metric is computed from patient-table columns."""

    name: str
    kind: str  # "mean", "proportion" or "time" (Kaplan-Meier; mean = median)
    column: str
    unit: str
    label: str
    event_column: str = ""
    nonnegative: bool = True


def _month_index(plan: Plan, month: int) -> int | None:
    day = month * MONTH_DAYS
    hits = np.flatnonzero(plan.visit_days == day)
    return int(hits[0]) if hits.size else None


def _at_month(plan: Plan, matrix: np.ndarray, month: int) -> np.ndarray:
    i = _month_index(plan, month)
    if i is None:
        return np.full(matrix.shape[0], math.nan)
    return matrix[:, i]


def _normal(values: np.ndarray, uln: float) -> np.ndarray:
    """1.0 / 0.0 where measured, NaN where the visit lies beyond the horizon."""
    return np.where(np.isnan(values), math.nan, (values < uln).astype(np.float64))


def _time(values: np.ndarray, censor_day: float) -> tuple[np.ndarray, np.ndarray]:
    observed = np.isfinite(values)
    return np.where(observed, values, censor_day), observed


def _discounted_years(delta: float, t0: np.ndarray | float, t1: np.ndarray | float) -> Any:
    """Integral of exp(-delta t) over [t0, t1] days, in years."""
    if delta == 0:
        return (np.asarray(t1) - np.asarray(t0)) / 365.25
    return (np.exp(-delta * np.asarray(t0)) - np.exp(-delta * np.asarray(t1))) / delta / 365.25


def _economics(cols: dict[str, np.ndarray], chunk: ChunkResult, plan: Plan,
               scn: Scenario) -> None:
    """Discounted costs by component, QALYs, and complete remission (docs/model.md)."""
    econ = scn.economics
    price = econ.prices
    d = plan.discount_per_day
    o = chunk.outcomes
    n = chunk.n
    days = plan.visit_days
    disc_visits = float(np.exp(-d * days).sum())
    cols["cost_ivig"] = price.ivig_per_g * o["discounted_ivig_g"]
    cols["cost_infusion_days"] = price.infusion_day * o["discounted_infusion_days"]
    cols["cost_prednisone"] = price.prednisone_per_mg * o["discounted_prednisone_mg"]
    pulse_days = scn.regimen.steroid.pulse.days if scn.regimen.steroid.pulse else 0
    pulse_disc = float(sum(math.exp(-d * k) for k in range(pulse_days)))
    cols["cost_methylprednisolone_pulse"] = (
        np.asarray(chunk.pulse, dtype=np.float64) * price.methylprednisolone_pulse_day * pulse_disc)
    start = o["sparing_start_day"]
    started = np.isfinite(start) & (start <= plan.horizon_days)
    per_day = np.array([price.sparing_agent_per_day.get(a, 0.0) for a in plan.agents] + [0.0])
    agent = np.where(started, o["sparing_agent"].astype(np.int64), -1)
    years = _discounted_years(d, np.where(started, start, plan.horizon_days), plan.horizon_days)
    cols["cost_sparing_agents"] = per_day[agent] * years * 365.25
    cols["cost_visits"] = np.full(n, price.visit * disc_visits)
    ae_cost = np.zeros(n)
    ae_loss = np.zeros(n)
    for ae in plan.ivig_aes:
        k = o[f"ae_{ae.name}_discounted_n"]
        ae_cost += econ.adverse_event_cost.get(ae.name, 0.0) * k
        ae_loss += econ.adverse_event_qaly_loss.get(ae.name, 0.0) * k
    for ae in plan.steroid_aes:
        t = o[f"ae_{ae.name}_day"]
        k = np.where(t <= plan.horizon_days, np.exp(-d * np.minimum(t, plan.horizon_days)), 0.0)
        ae_cost += econ.adverse_event_cost.get(ae.name, 0.0) * k
        ae_loss += econ.adverse_event_qaly_loss.get(ae.name, 0.0) * k
    cols["cost_adverse_events"] = ae_cost
    cols["cost_total"] = (cols["cost_ivig"] + cols["cost_infusion_days"] + cols["cost_prednisone"]
                          + cols["cost_methylprednisolone_pulse"] + cols["cost_sparing_agents"]
                          + cols["cost_visits"] + ae_cost)
    # QALYs: the state seen at each visit holds until the next visit.
    u = econ.utilities
    normal = chunk.visit_cpk < plan.cpk_uln
    high = chunk.visit_prednisone > u.high_dose_steroid_mg_per_day
    utility = np.where(~normal, u.active_disease,
                       np.where(high, u.remission_on_high_dose_steroid, u.remission))
    spans = _discounted_years(d, days[:-1], days[1:])
    cols["qaly"] = (utility[:, :-1] * spans[None, :]).sum(axis=1) - ae_loss
    cols["qaly_loss_adverse_events"] = ae_loss
    rem = scn.outcomes.remission
    for m in (6, 12):
        i = _month_index(plan, m)
        if i is None:
            cols[f"complete_remission_month_{m}"] = np.full(n, math.nan)
            continue
        window = (days > days[i] - 7 * rem.cpk_normal_weeks) & (days <= days[i])
        ok = normal[:, window].all(axis=1)
        ok &= chunk.visit_prednisone[:, i] <= rem.max_prednisone_mg_per_day
        ok &= chunk.visit_mmt8[:, i] >= rem.min_mmt8
        cols[f"complete_remission_month_{m}"] = ok.astype(np.float64)


def patient_table(chunk: ChunkResult, plan: Plan, scn: Scenario) -> dict[str, np.ndarray]:
    """Flat per-patient columns: baseline first, then outcomes."""
    b = chunk.baseline
    o = chunk.outcomes
    uln, myo_uln = plan.cpk_uln, plan.myoglobin_uln
    cpk0 = chunk.visit_cpk[:, 0]
    myo0 = chunk.visit_myoglobin[:, 0]
    last_visit = float(plan.visit_days[-1])
    cols: dict[str, np.ndarray] = {
        "patient": b.patient,
        "age_years": b.age_years,
        "female": b.female.astype(np.int64),
        "weight_kg": b.weight_kg,
        "dermatomyositis": b.dermatomyositis.astype(np.int64),
        "lung_involvement": b.lung_involvement.astype(np.int64),
        "dysphagia": b.dysphagia.astype(np.int64),
        "thrombosis_risk_factor": b.thrombosis_risk_factor.astype(np.int64),
        "refractory": b.refractory.astype(np.int64),
        "methylprednisolone_pulse": np.asarray(chunk.pulse).astype(np.int64),
        "induction_prednisone_mg_per_day": chunk.induction_mg,
        "cpk_baseline_u_per_l": cpk0,
        "myoglobin_baseline_ng_per_ml": myo0,
        "mmt8_baseline": chunk.visit_mmt8[:, 0],
    }
    cpk3 = _at_month(plan, chunk.visit_cpk, 3)
    myo3 = _at_month(plan, chunk.visit_myoglobin, 3)
    cols["cpk_month_3_u_per_l"] = cpk3
    cols["cpk_ratio_month_3"] = cpk3 / cpk0
    cols["myoglobin_ratio_month_3"] = myo3 / myo0
    for m in (3, 5, 6, 12):
        cols[f"cpk_normal_month_{m}"] = _normal(_at_month(plan, chunk.visit_cpk, m), uln)
    for m in (6, 12):
        cols[f"myoglobin_normal_month_{m}"] = _normal(
            _at_month(plan, chunk.visit_myoglobin, m), myo_uln)
    cols["mmt8_month_6"] = _at_month(plan, chunk.visit_mmt8, 6)
    t, seen = _time(o["time_to_cpk_normal_days"], last_visit)
    cols["time_to_cpk_normal_days"], cols["cpk_normal_reached"] = t, seen.astype(np.int64)
    cols["relapses"] = o["relapses"]
    cols["relapse"] = (o["relapses"] > 0).astype(np.int64)
    t, seen = _time(o["time_to_first_relapse_days"], plan.horizon_days)
    cols["time_to_first_relapse_days"], cols["relapse_observed"] = t, seen.astype(np.int64)
    cols["cumulative_prednisone_g"] = o["cumulative_prednisone_mg"] / 1000.0
    pred6 = _at_month(plan, chunk.visit_prednisone, 6)
    cols["prednisone_month_6_mg_per_day"] = pred6
    cols["prednisone_5mg_by_month_6"] = np.where(np.isnan(pred6), math.nan,
                                                 (pred6 <= 5.0).astype(np.float64))
    for label, key in (("7_5", "time_to_prednisone_le_7_5_days"),
                       ("5", "time_to_prednisone_le_5_days")):
        t, seen = _time(o[key], plan.horizon_days)
        cols[f"time_to_prednisone_le_{label}mg_days"] = t
        cols[f"prednisone_le_{label}mg_reached"] = seen.astype(np.int64)
    cols["final_prednisone_mg_per_day"] = o["final_prednisone_mg_per_day"]
    cols["ivig_g"] = o["ivig_g"]
    cols["ivig_cycles"] = o["ivig_cycles"]
    cols["ivig_infusion_days"] = o["ivig_infusion_days"]
    cols["ivig_stopped_for_adverse_event"] = o["ivig_stopped"].astype(np.int64)
    cols["rescue_started"] = np.isfinite(o["rescue_day"]).astype(np.int64)
    cols["rescue_day"] = np.where(np.isfinite(o["rescue_day"]), o["rescue_day"], math.nan)
    t, seen = _time(o["rescue_day"], plan.horizon_days)
    cols["time_to_rescue_days"] = t
    agent = o["sparing_agent"].astype(np.int64)
    started = np.isfinite(o["sparing_start_day"])
    cols["sparing_agent_used"] = started.astype(np.int64)
    cols["sparing_agent"] = np.where(started, agent, -1)
    cols["sparing_start_day"] = np.where(started, o["sparing_start_day"], math.nan)
    for ae in plan.steroid_aes:
        day = o[f"ae_{ae.name}_day"]
        cols[f"ae_{ae.name}"] = (day <= plan.horizon_days).astype(np.int64)
        cols[f"ae_{ae.name}_day"] = np.where(day <= plan.horizon_days, day, math.nan)
    for ae in plan.ivig_aes:
        cols[f"ae_{ae.name}"] = (o[f"ae_{ae.name}_n"] > 0).astype(np.int64)
    _economics(cols, chunk, plan, scn)
    return cols


def metric_specs(plan: Plan) -> list[Metric]:
    """Every cohort metric of a scenario, in report order."""
    specs = [
        Metric("cpk_baseline_u_per_l", "mean", "cpk_baseline_u_per_l", "U/L",
               "CPK at diagnosis"),
        Metric("cpk_ratio_month_3", "mean", "cpk_ratio_month_3", "ratio",
               "CPK at day 84 / baseline"),
        Metric("myoglobin_ratio_month_3", "mean", "myoglobin_ratio_month_3", "ratio",
               "myoglobin at day 84 / baseline"),
        Metric("cpk_normal_month_3", "proportion", "cpk_normal_month_3", "proportion",
               "CPK normal at month 3"),
        Metric("cpk_normal_month_5", "proportion", "cpk_normal_month_5", "proportion",
               "CPK normal at month 5 (day 140)"),
        Metric("cpk_normal_month_6", "proportion", "cpk_normal_month_6", "proportion",
               "CPK normal at month 6"),
        Metric("cpk_normal_month_12", "proportion", "cpk_normal_month_12", "proportion",
               "CPK normal at month 12"),
        Metric("myoglobin_normal_month_6", "proportion", "myoglobin_normal_month_6",
               "proportion", "myoglobin normal at month 6"),
        Metric("time_to_cpk_normal_days", "time", "time_to_cpk_normal_days", "days",
               "time to CPK normal (KM median)", "cpk_normal_reached"),
        Metric("mmt8_month_6", "mean", "mmt8_month_6", "points (0-150)", "MMT-8 at month 6"),
        Metric("relapse", "proportion", "relapse", "proportion", ">= 1 relapse"),
        Metric("relapses", "mean", "relapses", "count", "relapses per patient"),
        Metric("cumulative_prednisone_g", "mean", "cumulative_prednisone_g", "g",
               "cumulative prednisone-equivalent dose"),
        Metric("prednisone_5mg_by_month_6", "proportion", "prednisone_5mg_by_month_6",
               "proportion", "prednisone <= 5 mg/day at month 6"),
        Metric("time_to_prednisone_le_7_5mg_days", "time", "time_to_prednisone_le_7_5mg_days",
               "days", "time to prednisone <= 7.5 mg/day (KM median)",
               "prednisone_le_7_5mg_reached"),
        Metric("time_to_prednisone_le_5mg_days", "time", "time_to_prednisone_le_5mg_days",
               "days", "time to prednisone <= 5 mg/day (KM median)", "prednisone_le_5mg_reached"),
        Metric("ivig_g", "mean", "ivig_g", "g", "IVIG per patient"),
        Metric("ivig_cycles", "mean", "ivig_cycles", "cycles", "IVIG cycles per patient"),
        Metric("rescue_started", "proportion", "rescue_started", "proportion",
               "rescue IVIG started"),
        Metric("sparing_agent_used", "proportion", "sparing_agent_used", "proportion",
               "steroid-sparing agent started"),
        Metric("time_to_rescue_days", "time", "time_to_rescue_days", "days",
               "time to rescue IVIG (KM median)", "rescue_started"),
        Metric("complete_remission_month_6", "proportion", "complete_remission_month_6",
               "proportion", "complete remission at month 6"),
        Metric("complete_remission_month_12", "proportion", "complete_remission_month_12",
               "proportion", "complete remission at month 12"),
        Metric("cost_total", "mean", "cost_total", "currency", "total cost (discounted)"),
        Metric("cost_ivig", "mean", "cost_ivig", "currency", "cost: IVIG"),
        Metric("cost_infusion_days", "mean", "cost_infusion_days", "currency",
               "cost: infusion days"),
        Metric("cost_prednisone", "mean", "cost_prednisone", "currency", "cost: prednisone"),
        Metric("cost_methylprednisolone_pulse", "mean", "cost_methylprednisolone_pulse",
               "currency", "cost: methylprednisolone pulses"),
        Metric("cost_sparing_agents", "mean", "cost_sparing_agents", "currency",
               "cost: steroid-sparing agents"),
        Metric("cost_visits", "mean", "cost_visits", "currency", "cost: visits and labs"),
        Metric("cost_adverse_events", "mean", "cost_adverse_events", "currency",
               "cost: adverse events"),
        Metric("qaly", "mean", "qaly", "QALY", "QALYs (discounted)"),
    ]
    for ae in plan.steroid_aes + plan.ivig_aes:  # type: ignore[operator]
        specs.append(Metric(f"adverse_event_{ae.name}", "proportion", f"ae_{ae.name}",
                            "proportion", f"{ae.name.replace('_', ' ')} (>= 1)"))
    return specs


METRICS = ("cpk_baseline_u_per_l", "cpk_ratio_month_3", "cpk_normal_month_6",
           "time_to_cpk_normal_days", "relapse", "cumulative_prednisone_g",
           "prednisone_5mg_by_month_6", "ivig_g")


class CohortSummary:
    """Streaming aggregation of patient tables into cohort metrics."""

    def __init__(self, plan: Plan, currency: str = "") -> None:
        # Keep plain data only: summaries travel between processes (the plan holds
        # compiled rules, which do not pickle).
        self.specs = metric_specs(plan)
        self.currency = currency
        self.acc: dict[str, Any] = {}
        horizon = int(plan.horizon_days)
        for m in self.specs:
            if m.kind == "mean":
                self.acc[m.name] = Moments()
            elif m.kind == "proportion":
                self.acc[m.name] = Proportion()
            else:
                self.acc[m.name] = KaplanMeier(horizon)
        self.months = [m for m in range(int(plan.horizon_days) // MONTH_DAYS + 1)
                       if _month_index(plan, m) is not None]
        self.month_index = [_month_index(plan, m) for m in self.months]
        self.cpk_months = [LogHistogram() for _ in self.months]
        self.myo_months = [LogHistogram() for _ in self.months]
        self.pred_months = [Moments() for _ in self.months]
        self.n = 0

    def add(self, table: dict[str, np.ndarray], chunk: ChunkResult) -> None:
        self.n += int(table["patient"].shape[0])
        for m in self.specs:
            acc = self.acc[m.name]
            col = np.asarray(table[m.column], dtype=np.float64)
            if m.kind == "mean":
                acc.add(col)
            elif m.kind == "proportion":
                valid = ~np.isnan(col)
                acc.add(col > 0.5, valid)
            else:
                acc.add(col.astype(np.int64), np.asarray(table[m.event_column]) > 0)
        for k, i in enumerate(self.month_index):
            self.cpk_months[k].add(chunk.visit_cpk[:, i])
            self.myo_months[k].add(chunk.visit_myoglobin[:, i])
            self.pred_months[k].add(chunk.visit_prednisone[:, i])

    def merge(self, other: CohortSummary) -> None:
        self.n += other.n
        for name, acc in self.acc.items():
            acc.merge(other.acc[name])
        for mine, theirs in ((self.cpk_months, other.cpk_months),
                             (self.myo_months, other.myo_months),
                             (self.pred_months, other.pred_months)):
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
            entry = {"mean": d["mean"], "ci95": ci, "n": d["n"], "unit": unit,
                     "label": m.label}
            if m.kind == "time":
                entry["events"] = d["events"]
                entry["censored"] = d["censored"]
            out[m.name] = entry
        return out

    def curves(self) -> dict[str, dict[str, list[Any]]]:
        """Kaplan-Meier curves of the time-to-event metrics, for figures."""
        return {m.name: self.acc[m.name].to_dict()["curve"] for m in self.specs
                if m.kind == "time"}

    def by_month(self, which: str = "cpk") -> list[dict[str, Any]]:
        hists = self.cpk_months if which == "cpk" else self.myo_months
        rows = []
        for month, h in zip(self.months, hists, strict=True):
            d = h.to_dict()
            rows.append({"month": month, "day": month * MONTH_DAYS, "median": d["median"],
                         "p05": d["p05"], "p95": d["p95"], "mean": d["mean"]})
        return rows

    def prednisone_by_month(self) -> list[dict[str, Any]]:
        return [{"month": month, "day": month * MONTH_DAYS, "mean": acc.to_dict()["mean"]}
                for month, acc in zip(self.months, self.pred_months, strict=True)]
