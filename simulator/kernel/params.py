"""Per-patient constants and random draws for a chunk of patients.

Everything a patient's course needs that is not in the Plan: the baseline
characteristics (``population.py``), the treatment luck (who gets a pulse, which planned
agent) and the random numbers, each from the patient's own named stream
(``streams.py``). Lab and core-set noise are indexed by the visit day, IVIG adverse events
by the infusion number, flares by their number, so patient k's numbers never depend on
how many patients run or on the engine.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import streams
from ..scenario.schema import Scenario
from .plan import Plan
from .population import Baseline, sample_baseline
from .xp import ARRAY, Ops

__all__ = [
    "FLARE_ACCEPT",
    "FLARE_GAP",
    "NOISE",
    "Params",
    "flare_draw",
    "flare_hazard",
    "make_params",
]

# Measurement noise per visit: CPK, myoglobin and the core set measures.
NOISE = (
    "cpk",
    "myoglobin",
    "mmt8",
    "physician_global",
    "patient_global",
    "haq",
    "extramuscular",
    "skin",
    "lung",
    "dysphagia",
)


@dataclass
class Params:
    """Per-patient constants. Fields are arrays over a chunk of patients; ``row(i)`` gives
    one patient's values as plain Python floats and lists for the SimPy engine."""

    seed: Any
    patient: Any
    weight_kg: Any
    cpk0: Any
    cpk_bg: Any
    myo0: Any
    myo_bg: Any
    mmt8_0: Any
    drive: Any
    z0: Any
    node: Any
    rate: Any
    steroid_sens: Any
    igg_rise: Any
    ivig_gain: Any
    risk_factor: Any
    ext_w_skin: Any
    ext_w_lung: Any
    ext_w_dysphagia: Any
    ext_present: Any
    induction_mg: Any
    pulse: Any
    pulse_end: Any
    agent: Any
    agent_start: Any
    ivig_start: Any  # first-line IVIG start day, inf for patients who may get rescue only
    noise_cpk: Any
    noise_myoglobin: Any
    noise_mmt8: Any
    noise_physician_global: Any
    noise_patient_global: Any
    noise_haq: Any
    noise_extramuscular: Any
    noise_skin: Any
    noise_lung: Any
    noise_dysphagia: Any
    ivig_ae_u: Any
    steroid_ae_threshold: Any
    age0: Any
    female: Any
    mortality_risk: Any
    death_threshold: Any
    death_cause_u: Any
    steroid_ae_fatal: Any
    flare_bound_per_day: Any  # above the patient's flare hazard at any treatment

    def take(self, idx: np.ndarray) -> Params:
        """Rows ``idx`` of every per-patient field (tables whole rows), as a new Params."""
        out = {name: value if name == "seed" else value[idx] for name, value in vars(self).items()}
        return Params(**out)

    def row(self, i: int) -> Params:
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            if name == "seed":
                out[name] = value
                continue
            v = value[i]
            out[name] = v.tolist() if isinstance(v, np.ndarray) else v.item()
        return Params(**out)


def _round_dose(x: np.ndarray, step: float) -> np.ndarray:
    return np.floor(x / step + 0.5) * step


def flare_draw(xp: Ops, prm: Params, k: Any) -> tuple[Any, Any]:
    """(uniform for its level, uniform for its acceptance) of each patient's flare
    candidate number k, drawn on demand from the patient's own streams (the same bits for
    both engines); the candidates' times come from ``FLARE_GAP`` (``xp.thin``)."""
    return (
        xp.stream("uniform", prm.seed, prm.patient, "disease.flare_level", k),
        xp.stream("uniform", prm.seed, prm.patient, FLARE_ACCEPT, k),
    )


FLARE_GAP, FLARE_ACCEPT = "disease.flare_gap", "disease.flare_accept"


def flare_hazard(xp: Ops, plan: Plan, drive: Any, cover: Any) -> Any:
    """Flare hazard per day: the base rate times exp(factor x shortfall), the shortfall
    being how far a treatment ``cover`` (in log activity) leaves the lasting ``drive``
    above the control level, capped. ``handlers.flare_hazard_per_day`` calls it with the
    current cover; with ``cover`` 0 it is the patient's largest, the thinning's bound."""
    shortfall = xp.minimum(
        xp.maximum(drive - cover - plan.control_log, 0.0), plan.flare_shortfall_cap
    )
    return plan.flare_rate_per_day * xp.exp(plan.flare_factor * shortfall)


# The visit noise of the last chunks, by (seed, patient ids, visit days): a calibration
# or a sweep runs the same patients at many parameter values, and their noise does not
# depend on the parameters (~1 ms a measure for 1,000 patients over 2 years, against
# ~0.03 ms for a copy). Only chunks up to 16 MB of noise (200,000 patient-visits)
# are kept, within _MEMO_BYTES in all.
_MEMO: OrderedDict[tuple[Any, ...], dict[str, np.ndarray]] = OrderedDict()
_MEMO_LOCK = threading.Lock()
_MEMO_BYTES = 96 << 20
_MEMO_ENTRY_BYTES = 16 << 20


# Larger chunks' noise, kept by this thread while the arms of one chunk run
# (``shared_noise``: compare and sweeps run every arm on the same patients; a 10,000-patient
# chunk's noise is 24 MB, ~45 ms to draw and ~5 ms to copy).
_SHARED = threading.local()


@contextlib.contextmanager
def shared_noise() -> Iterator[None]:
    """Within the block, this thread keeps the visit noise of chunks too large for the
    memo, for the other arms of the same chunk; it is dropped when the block ends."""
    held = getattr(_SHARED, "grids", None)
    _SHARED.grids = {}
    try:
        yield
    finally:
        _SHARED.grids = held


def _noise_grids(seed: int, ids: np.ndarray, days: np.ndarray) -> dict[str, np.ndarray]:
    """Each measure's normal draws by (patient, visit day), fresh arrays (the caller may
    write them), remembered for the next chunk of the same patients (in the memo), or
    for the other arms of this chunk (``shared_noise``, when too large for the memo)."""

    def draw() -> dict[str, np.ndarray]:
        return {name: streams.normal_grid(seed, ids, "lab." + name, days) for name in NOISE}

    key = (int(seed), ids.tobytes(), days.tobytes())
    if ids.size * days.size * 8 * len(NOISE) > _MEMO_ENTRY_BYTES:
        shared = getattr(_SHARED, "grids", None)
        if shared is None:
            return draw()
        got = shared.get(key)
        if got is None:
            got = shared[key] = draw()
        return {name: a.copy() for name, a in got.items()}
    with _MEMO_LOCK:
        got = _MEMO.get(key)
        if got is not None:
            _MEMO.move_to_end(key)
            return {name: a.copy() for name, a in got.items()}
    grids = draw()
    with _MEMO_LOCK:
        _MEMO[key] = {name: a.copy() for name, a in grids.items()}
        while sum(sum(a.nbytes for a in g.values()) for g in _MEMO.values()) > _MEMO_BYTES:
            _MEMO.popitem(last=False)
    return grids


def make_params(
    scn: Scenario, plan: Plan, seed: int, patients: np.ndarray, baseline: Baseline | None = None
) -> tuple[Params, Baseline]:
    """Everything a chunk of patients needs, drawn vectorized from their own streams."""
    ids = np.asarray(patients, dtype=np.int64)
    base = baseline if baseline is not None else sample_baseline(scn, seed, ids)
    reg = scn.regimen
    n = ids.shape[0]

    def u(purpose: str, index: Any = 0) -> np.ndarray:
        return streams.uniform(seed, ids, purpose, index)

    st = reg.steroid
    if st is not None:
        induction = np.minimum(st.cap_mg_per_day, st.induction_mg_per_kg_per_day * base.weight_kg)
        induction = _round_dose(induction, st.round_to_mg)
        pulse = (u("regimen.pulse") < st.pulse.share) if st.pulse else np.zeros(n, dtype=bool)
    else:
        induction = np.zeros(n)
        pulse = np.zeros(n, dtype=bool)
    pulse_end = np.where(pulse, plan.pulse_days, np.inf)
    ivig_start = np.full(n, plan.ivig_start_day)
    if reg.ivig is not None and reg.ivig.first_line_share is not None:
        first_line = u("regimen.ivig_first_line") < reg.ivig.first_line_share
        ivig_start = np.where(first_line, plan.ivig_start_day, np.inf)

    agent = np.full(n, -1, dtype=np.int64)
    agent_start = np.full(n, np.inf)
    if reg.sparing_agents:
        draw = u("regimen.sparing_agent")
        edge = 0.0
        for p in reg.sparing_agents:
            hit = (draw >= edge) & (draw < edge + p.share)
            agent = np.where(hit, plan.agents.index(p.agent), agent)
            agent_start = np.where(hit, p.start_day, agent_start)
            edge += p.share

    days = plan.visit_days.astype(np.int64)
    col = ids[:, None]
    noise = _noise_grids(seed, ids, days)
    n_inf = max(plan.max_infusions, 1)
    ivig_ae_u = (
        np.stack(
            [
                streams.uniform(seed, col, "ae.ivig." + ae.name, np.arange(n_inf)[None, :])
                for ae in plan.ivig_aes
            ],
            axis=1,
        )
        if plan.ivig_aes
        else np.zeros((n, 0, n_inf))
    )
    steroid_thr = (
        np.stack(
            [streams.exponential(seed, ids, "ae.steroid." + ae.name) for ae in plan.steroid_aes],
            axis=1,
        )
        if plan.steroid_aes
        else np.zeros((n, 0))
    )
    w_skin, w_lung, w_dys = plan.ext_weights
    # each domain's weight where the patient has it, 0 where not
    ext_skin = (w_skin * base.dermatomyositis).astype(np.float64)
    ext_lung = (w_lung * base.lung_involvement).astype(np.float64)
    ext_dys = (w_dys * base.dysphagia).astype(np.float64)
    ext = ext_skin + ext_lung + ext_dys
    gain = plan.ivig_potency * base.ivig_sensitivity
    mo = scn.disease.mortality
    risk = mo.hazard_ratio_lung ** base.lung_involvement.astype(
        np.float64
    ) * mo.hazard_ratio_dysphagia ** base.dysphagia.astype(np.float64)
    steroid_fatal = (
        np.stack(
            [u("death.ae." + ae.name) < ae.case_fatality for ae in plan.steroid_aes],
            axis=1,
        )
        if plan.steroid_aes
        else np.zeros((n, 0), dtype=bool)
    )
    # The flare hazard is largest with no treatment (treatment only lowers the
    # shortfall): candidates whose uniform puts them above it would be rejected whatever
    # the treatment, and are passed over (``handlers._next_flare_candidate``). The bound
    # is raised by 2^-20 of itself so that no rounding of the hazard can exceed it.
    flare_bound = flare_hazard(ARRAY, plan, base.lasting_drive_log, 0.0) * (1.0 + 2.0**-20)
    params = Params(
        seed=int(seed),
        patient=ids,
        weight_kg=base.weight_kg,
        cpk0=base.cpk_u_per_l,
        cpk_bg=base.cpk_background_u_per_l,
        myo0=base.myoglobin_ng_per_ml,
        myo_bg=base.myoglobin_background_ng_per_ml,
        mmt8_0=base.mmt8,
        drive=base.lasting_drive_log,
        z0=base.acute_setpoint_log - base.lasting_drive_log,
        node=base.rate_node,
        rate=plan.rate_per_day[base.rate_node],
        steroid_sens=base.steroid_sensitivity,
        igg_rise=base.igg_rise_g_per_l_per_g_per_kg,
        ivig_gain=gain,
        risk_factor=base.thrombosis_risk_factor.astype(np.float64),
        ext_w_skin=ext_skin,
        ext_w_lung=ext_lung,
        ext_w_dysphagia=ext_dys,
        ext_present=(ext > 0).astype(np.float64),
        induction_mg=induction.astype(np.float64),
        pulse=pulse,
        pulse_end=pulse_end,
        agent=agent,
        agent_start=agent_start,
        ivig_start=ivig_start,
        noise_cpk=noise["cpk"],
        noise_myoglobin=noise["myoglobin"],
        noise_mmt8=noise["mmt8"],
        noise_physician_global=noise["physician_global"],
        noise_patient_global=noise["patient_global"],
        noise_haq=noise["haq"],
        noise_extramuscular=noise["extramuscular"],
        noise_skin=noise["skin"],
        noise_lung=noise["lung"],
        noise_dysphagia=noise["dysphagia"],
        ivig_ae_u=ivig_ae_u,
        steroid_ae_threshold=steroid_thr,
        age0=base.age_years,
        female=base.female.astype(np.int64),
        mortality_risk=risk,
        death_threshold=streams.exponential(seed, ids, "death.threshold"),
        death_cause_u=u("death.cause"),
        steroid_ae_fatal=steroid_fatal,
        flare_bound_per_day=flare_bound,
    )
    return params, base
