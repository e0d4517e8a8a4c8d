"""Flat per-patient records that the engines produce and the runner aggregates.

An engine runs a chunk of patient ids and returns a :class:`ChunkResult`: the patients'
baseline, their final state as flat outcome columns, a fixed grid of lab visits (every
patient has the same visit days, so visits are an (n, V) matrix per measure) and,
if asked, the full event log. Both engines produce exactly this, so aggregation,
output files and the engine-equality tests need not know which engine ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernel.course import END, EVENT_NAMES, Params, Plan, State
from .kernel.population import Baseline

__all__ = ["ChunkResult", "EventLog", "outcome_columns"]

STATE_OUTCOMES = (
    ("first_normal", "time_to_cpk_normal_days"),
    ("first_relapse", "time_to_first_relapse_days"),
    ("relapses", "relapses"),
    ("cum_pred", "cumulative_prednisone_mg"),
    ("ivig_g", "ivig_g"),
    ("ivig_given", "ivig_infusion_days"),
    ("ivig_cycles", "ivig_cycles"),
    ("ivig_stopped", "ivig_stopped"),
    ("ivig_start", "ivig_start_day"),
    ("rescue", "rescue_day"),
    ("agent", "sparing_agent"),
    ("spar_start", "sparing_start_day"),
    ("pred", "final_prednisone_mg_per_day"),
    ("flares", "flares"),
)


def outcome_columns(plan: Plan) -> list[str]:
    names = [out for _, out in STATE_OUTCOMES]
    names += ["time_to_prednisone_le_7_5_days", "time_to_prednisone_le_5_days"]
    names += [f"ae_{ae.name}_day" for ae in plan.steroid_aes]
    names += [f"ae_{ae.name}_n" for ae in plan.ivig_aes]
    return names


def state_outcomes(plan: Plan, st: State) -> dict[str, Any]:
    """Outcome values from a final state (floats for one patient, arrays for a cohort)."""
    out = {name: getattr(st, attr) for attr, name in STATE_OUTCOMES}
    out["time_to_prednisone_le_7_5_days"] = st.t_le[0]
    out["time_to_prednisone_le_5_days"] = st.t_le[1]
    for ae, t in zip(plan.steroid_aes, st.ae_time, strict=True):
        out[f"ae_{ae.name}_day"] = t
    for ae, k in zip(plan.ivig_aes, st.ivig_ae_n, strict=True):
        out[f"ae_{ae.name}_n"] = k
    return out


@dataclass
class EventLog:
    """Every event of a chunk, as columns (built only when the user asks for it)."""

    patient: list[int] = field(default_factory=list)
    day: list[float] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    cpk: list[float] = field(default_factory=list)
    myoglobin: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    prednisone: list[float] = field(default_factory=list)

    def append(self, patient: int, day: float, kind: int, flags: float, cpk: float,
               myoglobin: float, value: float, prednisone: float) -> None:
        self.patient.append(patient)
        self.day.append(day)
        self.kind.append(kind)
        self.flags.append(int(flags))
        self.cpk.append(cpk)
        self.myoglobin.append(myoglobin)
        self.value.append(value)
        self.prednisone.append(prednisone)

    def extend_arrays(self, patient: np.ndarray, day: np.ndarray, kind: np.ndarray,
                      flags: np.ndarray, cpk: np.ndarray, myoglobin: np.ndarray,
                      value: np.ndarray, prednisone: np.ndarray) -> None:
        self.patient.extend(patient.tolist())
        self.day.extend(day.tolist())
        self.kind.extend(kind.tolist())
        self.flags.extend(flags.astype(np.int64).tolist())
        self.cpk.extend(cpk.tolist())
        self.myoglobin.extend(myoglobin.tolist())
        self.value.extend(value.tolist())
        self.prednisone.extend(prednisone.tolist())

    def sorted(self) -> EventLog:
        """Events ordered by patient, then time, then the fixed event order."""
        order = sorted(range(len(self.day)),
                       key=lambda i: (self.patient[i], self.day[i], self.kind[i]))
        out = EventLog()
        for name in vars(out):
            col = getattr(self, name)
            setattr(out, name, [col[i] for i in order])
        return out


@dataclass
class ChunkResult:
    """What an engine returns for a chunk of patients."""

    baseline: Baseline
    pulse: np.ndarray
    induction_mg: np.ndarray
    outcomes: dict[str, np.ndarray]
    visit_days: np.ndarray
    visit_cpk: np.ndarray
    visit_myoglobin: np.ndarray
    visit_mmt8: np.ndarray
    visit_prednisone: np.ndarray
    visit_flags: np.ndarray
    events: EventLog | None = None

    @property
    def n(self) -> int:
        return int(self.baseline.patient.shape[0])

    @classmethod
    def empty(cls, plan: Plan, prm: Params, base: Baseline, events: bool) -> ChunkResult:
        """A result to fill in: NaN outcomes and visit values for every patient."""
        n = int(base.patient.shape[0])
        v = len(plan.visit_days)
        return cls(
            baseline=base,
            pulse=prm.pulse,
            induction_mg=prm.induction_mg,
            outcomes=empty_outcomes(plan, n),
            visit_days=plan.visit_days,
            visit_cpk=np.full((n, v), math.nan),
            visit_myoglobin=np.full((n, v), math.nan),
            visit_mmt8=np.full((n, v), math.nan),
            visit_prednisone=np.full((n, v), math.nan),
            visit_flags=np.zeros((n, v), dtype=np.int64),
            events=EventLog() if events else None,
        )


def empty_outcomes(plan: Plan, n: int) -> dict[str, np.ndarray]:
    return {name: np.full(n, math.nan) for name in outcome_columns(plan)}


EVENT_LABELS = dict(enumerate(EVENT_NAMES))
assert EVENT_LABELS[END] == "end"
