"""The treatment course of a patient: events, their order, and what each one does.

This module is the model's clock-free core. It says which event comes next for each
patient and what happens at it; it never waits. Both engines call it: the SimPy engine
(``engines/des.py``) for one patient at a time with plain floats, the cohort engine for
arrays of patients. Each function takes ``xp`` (``kernel.xp.SCALAR`` or ``ARRAY``).

Events and their fixed order at the same instant (lower runs first):

    0  PULSE_END      methylprednisolone pulse days are over: oral induction dose starts
    1  SPARING_ONSET  a steroid-sparing agent started earlier begins to act
    2  FLARE          a random flare raises the disease drive (seen only through labs)
    3  VISIT          labs drawn (CPK, myoglobin, MMT-8), then decisions on them:
                      relapse -> escalate; taper hold/resume; rescue IVIG; sparing agent
    4  TAPER          the next scheduled step down of prednisone (unless held)
    5  INFUSION       one IVIG infusion day (after the visit's blood draw, as in clinic)
    6  END            horizon reached

So a visit on an infusion day sees the pre-infusion value, and a visit on a taper day
can hold that day's step. Between events the state moves in closed form
(``disease.relax``); drugs act only through piecewise-constant doses and IgG boluses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import streams
from ..scenario.schema import Scenario
from . import disease, effects, pk
from .population import Baseline, ppf, sample_baseline
from .rules import RuleFn, Seen, compile_rule
from .xp import Ops

__all__ = [
    "EVENT_NAMES",
    "FLAGS",
    "Params",
    "Plan",
    "State",
    "advance",
    "handle",
    "init_state",
    "make_params",
    "next_event",
]

PULSE_END, SPARING_ONSET, FLARE, VISIT, TAPER, INFUSION, END = range(7)
EVENT_NAMES = ("pulse_end", "sparing_onset", "flare", "visit", "taper", "infusion", "end")

# Decision flags recorded with each event (bit mask; names in FLAGS).
F_NORMAL = 1
F_FIRST_NORMAL = 2
F_RELAPSE = 4
F_ESCALATE = 8
F_HOLD = 16
F_RESUME = 32
F_SPARING_START = 64
F_RESCUE = 128
F_TAPER_STEP = 256
F_IVIG_STOP = 512
F_DOSE_CHANGE = 1024
F_SPARING_ONSET = 2048
F_FLARE = 4096
F_IVIG_AE0 = 1 << 16  # bit 16 + j: IVIG adverse event type j at this infusion
FLAGS = {
    "cpk_normal": F_NORMAL,
    "first_normal": F_FIRST_NORMAL,
    "relapse": F_RELAPSE,
    "escalate": F_ESCALATE,
    "taper_hold": F_HOLD,
    "taper_resume": F_RESUME,
    "sparing_start": F_SPARING_START,
    "rescue_ivig": F_RESCUE,
    "taper_step": F_TAPER_STEP,
    "ivig_stopped": F_IVIG_STOP,
    "dose_change": F_DOSE_CHANGE,
    "sparing_onset": F_SPARING_ONSET,
    "flare": F_FLARE,
}

MONTH_DAYS = 28  # a "month" is 4 weeks throughout: day 84 is month 3 (IVIG every 4 weeks)
THRESHOLDS_MG = (7.5, 5.0)  # time to prednisone at or below these is tracked


@dataclass(frozen=True)
class TaperBand:
    above_mg: float
    reduce_mg: float
    every_days: float


@dataclass(frozen=True)
class SteroidAE:
    name: str
    baseline_per_day: float
    thresholds_mg: tuple[float, ...]
    relative_risk: tuple[float, ...]

    def rate(self, xp: Ops, dose: Any) -> Any:
        """Hazard per day at a daily dose: baseline times the relative risk of its band."""
        rr = 1.0
        prev = 1.0
        for th, r in zip(self.thresholds_mg, self.relative_risk, strict=True):
            rr = rr + (dose >= th) * (r - prev)
            prev = r
        return self.baseline_per_day * rr


@dataclass(frozen=True)
class IvigAE:
    name: str
    hazard_per_g_per_kg: float
    daily_dose_exponent: float
    reference_daily_dose_g_per_kg: float
    risk_factor_multiplier: float
    stops_ivig: bool

    def probability(self, xp: Ops, day_dose: float, risk_factor: Any) -> Any:
        """Probability on one infusion day of ``day_dose`` g/kg."""
        shape = (day_dose / self.reference_daily_dose_g_per_kg) ** (self.daily_dose_exponent - 1)
        mult = 1.0 + risk_factor * (self.risk_factor_multiplier - 1.0)
        return 1.0 - xp.exp(-self.hazard_per_g_per_kg * day_dose * shape * mult)


@dataclass(frozen=True)
class Plan:
    """Scenario-level constants, compiled once: the same for every patient."""

    horizon_days: float
    propagator: disease.Propagator
    cpk_uln: float
    myoglobin_uln: float
    cpk_sigma_log: float
    myoglobin_sigma_log: float
    mmt8_sd: float
    relapse_cpk_x_uln: float
    emax: float
    ed50: float
    mp_to_pred: float
    igg_fast_fraction: float
    ivig_potency: float
    induction_days: float
    taper_bands: tuple[TaperBand, ...]
    floor_mg: float
    hold_rule: RuleFn | None
    relapse_factor: float
    relapse_min_mg: float
    relapse_hold_days: float
    ivig_on: bool
    ivig_day_dose: float
    ivig_days_per_cycle: int
    ivig_interval_days: float
    ivig_cycles: int
    ivig_start_day: float
    rescue_rule: RuleFn | None
    rescue_delay_days: float
    agents: tuple[str, ...]
    agent_onset_days: tuple[float, ...]
    agent_effect: tuple[float, ...]
    on_relapse_agent: int
    visit_days: np.ndarray
    visit_days_list: tuple[float, ...] = field(repr=False)
    steroid_aes: tuple[SteroidAE, ...]
    ivig_aes: tuple[IvigAE, ...]
    sparing_rule: RuleFn | None
    discount_per_day: float
    _ae_rate_cache: dict[float, tuple[float, ...]] = field(default_factory=dict, repr=False,
                                                           compare=False)

    def steroid_ae_rates(self, xp: Ops, dose: Any) -> tuple[Any, ...]:
        """Hazard per day of each steroid adverse event at a dose (cached for one patient:
        a patient takes only a handful of distinct doses)."""
        if xp.vector:
            return tuple(ae.rate(xp, dose) for ae in self.steroid_aes)
        cache = self._ae_rate_cache
        hit = cache.get(dose)
        if hit is None:
            hit = cache[dose] = tuple(ae.rate(xp, dose) for ae in self.steroid_aes)
        return hit

    @property
    def max_infusions(self) -> int:
        return self.ivig_cycles * self.ivig_days_per_cycle if self.ivig_on else 0


def visit_days(scn: Scenario) -> np.ndarray:
    """Lab visit days: the schedule plus every 4-week month day, up to the horizon."""
    v = scn.visits
    h = scn.horizon_days
    days = set(range(0, min(v.until_day, h) + 1, v.every_days))
    last = max(days)
    days.update(range(last + v.then_every_days, h + 1, v.then_every_days))
    days.update(range(0, h + 1, MONTH_DAYS))
    return np.array(sorted(days), dtype=np.float64)


def make_plan(scn: Scenario) -> Plan:
    dis, reg = scn.disease, scn.regimen
    act = dis.activity
    k = act.reversion_rate_per_day
    propagator = disease.Propagator(
        activity_rate=k,
        strength_ratio=dis.strength.recovery_rate_ratio,
        burnout_rate=math.log(2.0) / act.burnout_half_life_days,
        fast_rate=pk.rate_from_half_life(dis.igg.fast_half_life_days),
        slow_rate=pk.rate_from_half_life(dis.igg.slow_half_life_days),
        effect_rate=math.log(2.0) / dis.ivig.effect_half_life_days,
        steroid_rate=math.log(2.0) / dis.steroid.onset_half_life_days,
    )
    agents = tuple(dis.sparing_agents)
    ivig = reg.ivig
    days = visit_days(scn)
    return Plan(
        horizon_days=float(scn.horizon_days),
        propagator=propagator,
        cpk_uln=dis.enzymes.cpk_uln_u_per_l,
        myoglobin_uln=dis.enzymes.myoglobin_uln_ng_per_ml,
        cpk_sigma_log=math.sqrt(math.log1p(dis.enzymes.cpk_assay_cv**2)),
        myoglobin_sigma_log=math.sqrt(math.log1p(dis.enzymes.myoglobin_assay_cv**2)),
        mmt8_sd=dis.strength.measurement_sd_points,
        relapse_cpk_x_uln=dis.enzymes.relapse_cpk_x_uln,
        emax=dis.steroid.emax_per_day,
        ed50=dis.steroid.ed50_mg_per_day,
        mp_to_pred=dis.steroid.methylprednisolone_to_prednisone,
        igg_fast_fraction=dis.igg.fast_fraction,
        ivig_potency=dis.ivig.effect_per_g_per_l_per_day,
        induction_days=float(reg.steroid.induction_days),
        taper_bands=tuple(
            TaperBand(s.above_mg_per_day, s.reduce_mg_per_day, float(s.every_days))
            for s in reg.taper.steps
        ),
        floor_mg=reg.taper.floor_mg_per_day,
        hold_rule=compile_rule(reg.taper.hold_when) if reg.taper.hold_when else None,
        relapse_factor=reg.taper.relapse.dose_factor,
        relapse_min_mg=reg.taper.relapse.min_mg_per_day,
        relapse_hold_days=float(reg.taper.relapse.hold_days),
        ivig_on=ivig is not None,
        ivig_day_dose=(ivig.dose_g_per_kg / ivig.days_per_cycle) if ivig else 0.0,
        ivig_days_per_cycle=ivig.days_per_cycle if ivig else 1,
        ivig_interval_days=float(ivig.interval_days) if ivig else 0.0,
        ivig_cycles=ivig.cycles if ivig else 0,
        ivig_start_day=(
            float(ivig.start_day) if ivig is not None and ivig.start_day is not None
            else math.inf
        ),
        rescue_rule=compile_rule(ivig.start_when) if ivig and ivig.start_when else None,
        rescue_delay_days=ivig.start_delay_days if ivig else 0.0,
        agents=agents,
        agent_onset_days=tuple(dis.sparing_agents[a].onset_delay_days for a in agents),
        agent_effect=tuple(dis.sparing_agents[a].effect_per_day for a in agents),
        on_relapse_agent=(
            agents.index(reg.sparing_on_relapse) if reg.sparing_on_relapse else -1
        ),
        visit_days=days,
        visit_days_list=(*tuple(float(d) for d in days), math.inf),
        steroid_aes=tuple(
            SteroidAE(name, ae.baseline_per_year / 365.25, tuple(ae.dose_thresholds_mg_per_day),
                      tuple(ae.relative_risk))
            for name, ae in scn.safety.steroid.items()
        ),
        ivig_aes=tuple(
            IvigAE(
                name,
                hazard_per_g_per_kg=-math.log1p(-min(ae.p_per_cycle, 1 - 1e-15))
                / ae.reference_dose_g_per_kg,
                daily_dose_exponent=ae.daily_dose_exponent,
                reference_daily_dose_g_per_kg=ae.reference_daily_dose_g_per_kg,
                risk_factor_multiplier=ae.risk_factor_multiplier,
                stops_ivig=ae.stops_ivig,
            )
            for name, ae in scn.safety.ivig.items()
        ),
        sparing_rule=(compile_rule(reg.sparing_start_when) if reg.sparing_start_when
                      else None),
        discount_per_day=math.log1p(scn.economics.discount_rate_per_year) / 365.25,
    )


@dataclass
class Params:
    """Per-patient constants: baseline, treatment luck and the patient's random draws.

    Fields are arrays over a chunk of patients; ``row(i)`` gives one patient's values as
    plain Python floats and lists for the SimPy engine.
    """

    patient: Any
    weight_kg: Any
    cpk0: Any
    cpk_bg: Any
    myo0: Any
    myo_bg: Any
    mmt8_0: Any
    setpoint: Any
    z0: Any
    steroid_sens: Any
    igg_rise: Any
    ivig_gain: Any
    risk_factor: Any
    induction_mg: Any
    pulse: Any
    pulse_mg: Any
    pulse_end: Any
    agent: Any
    agent_start: Any
    noise_cpk: Any
    noise_myo: Any
    noise_mmt8: Any
    ivig_ae_u: Any
    steroid_ae_threshold: Any
    flare_day: Any
    flare_level: Any

    def row(self, i: int) -> Params:
        out = {}
        for name, value in vars(self).items():
            v = value[i]
            out[name] = v.tolist() if isinstance(v, np.ndarray) else v.item()
        return Params(**out)

    def take(self, idx: np.ndarray) -> Params:
        return Params(**{name: value[idx] for name, value in vars(self).items()})


def _round_dose(x: np.ndarray, step: float) -> np.ndarray:
    return np.floor(x / step + 0.5) * step


def make_params(scn: Scenario, plan: Plan, seed: int, patients: np.ndarray,
                baseline: Baseline | None = None) -> tuple[Params, Baseline]:
    """Everything a chunk of patients needs, drawn vectorized from their own streams."""
    ids = np.asarray(patients, dtype=np.int64)
    base = baseline if baseline is not None else sample_baseline(scn, seed, ids)
    reg = scn.regimen
    n = ids.shape[0]

    def u(purpose: str, index: Any = 0) -> np.ndarray:
        return streams.uniform(seed, ids, purpose, index)

    induction = np.minimum(reg.steroid.cap_mg_per_day,
                           reg.steroid.induction_mg_per_kg_per_day * base.weight_kg)
    induction = np.maximum(_round_dose(induction, reg.steroid.round_to_mg), plan.floor_mg)
    pulse_cfg = reg.steroid.pulse
    pulse = (u("regimen.pulse") < pulse_cfg.share) if pulse_cfg else np.zeros(n, dtype=bool)
    pulse_mg = pulse_cfg.methylprednisolone_mg_per_day * plan.mp_to_pred if pulse_cfg else 0.0
    pulse_end = np.where(pulse, float(pulse_cfg.days) if pulse_cfg else 0.0, np.inf)

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

    days = plan.visit_days.astype(np.int64)[None, :]
    col = ids[:, None]
    noise = {name: streams.normal(seed, col, "lab." + name, days)
             for name in ("cpk", "myoglobin", "mmt8")}
    n_inf = max(plan.max_infusions, 1)
    ivig_ae_u = np.stack(
        [streams.uniform(seed, col, "ae.ivig." + ae.name, np.arange(n_inf)[None, :])
         for ae in plan.ivig_aes], axis=1,
    ) if plan.ivig_aes else np.zeros((n, 0, n_inf))
    steroid_thr = np.stack(
        [streams.exponential(seed, ids, "ae.steroid." + ae.name) for ae in plan.steroid_aes],
        axis=1,
    ) if plan.steroid_aes else np.zeros((n, 0))
    flare_day, flare_level = _flares(scn, seed, ids)
    params = Params(
        patient=ids,
        weight_kg=base.weight_kg,
        cpk0=base.cpk_u_per_l,
        cpk_bg=base.cpk_background_u_per_l,
        myo0=base.myoglobin_ng_per_ml,
        myo_bg=base.myoglobin_background_ng_per_ml,
        mmt8_0=base.mmt8,
        setpoint=base.chronic_setpoint_log,
        z0=base.acute_setpoint_log - base.chronic_setpoint_log,
        steroid_sens=base.steroid_sensitivity,
        igg_rise=base.igg_rise_g_per_l_per_g_per_kg,
        ivig_gain=plan.ivig_potency * base.ivig_sensitivity,
        risk_factor=base.thrombosis_risk_factor.astype(np.float64),
        induction_mg=induction,
        pulse=pulse,
        pulse_mg=np.full(n, pulse_mg),
        pulse_end=pulse_end,
        agent=agent,
        agent_start=agent_start,
        noise_cpk=noise["cpk"],
        noise_myo=noise["myoglobin"],
        noise_mmt8=noise["mmt8"],
        ivig_ae_u=ivig_ae_u,
        steroid_ae_threshold=steroid_thr,
        flare_day=flare_day,
        flare_level=flare_level,
    )
    return params, base


def max_flares(rate_per_year: float, horizon_days: float) -> int:
    """Flares drawn per patient: the Poisson mean plus 8 sd (P(more) < 1e-12 for mean <= 50)."""
    mean = rate_per_year * horizon_days / 365.25
    return math.ceil(mean + 8.0 * math.sqrt(mean) + 8.0) if mean > 0 else 0


def _flares(scn: Scenario, seed: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flare days (whole days; inf past the last) and sizes, from each patient's streams.

    A Poisson process: gaps are exponential with the scenario's rate. Flares start at the
    beginning of a day so every event falls on a whole day.
    """
    act = scn.disease.activity
    n = ids.shape[0]
    k = max_flares(act.flare_rate_per_year, scn.horizon_days)
    if k == 0:
        return np.full((n, 1), np.inf), np.zeros((n, 1))
    idx = np.arange(k)[None, :]
    col = ids[:, None]
    mean_gap_days = 365.25 / act.flare_rate_per_year
    gaps = streams.exponential(seed, col, "disease.flare_gap", idx) * mean_gap_days
    days = np.ceil(np.cumsum(gaps, axis=1))

    sizes = ppf(act.flare_setpoint_log, streams.uniform(seed, col, "disease.flare_setpoint", idx))
    days = np.where(days > scn.horizon_days, np.inf, days)
    return np.hstack([days, np.full((n, 1), np.inf)]), np.hstack([sizes, np.zeros((n, 1))])


class State:
    """A patient's (or a cohort's) state between events. Fields: floats or arrays."""

    __slots__ = (
        "ae_hazard",
        "ae_time",
        "agent",
        "agent_effect",
        "c",
        "cpk_base",
        "cpk_prev",
        "cum_pred",
        "disc_infusions",
        "disc_ivig_g",
        "disc_pred",
        "e",
        "ever_normal",
        "first_normal",
        "first_relapse",
        "flare_k",
        "flares",
        "ivig_ae_disc",
        "ivig_ae_n",
        "ivig_cycles",
        "ivig_g",
        "ivig_given",
        "ivig_next",
        "ivig_start",
        "ivig_stopped",
        "pred",
        "pulse_end",
        "relapses",
        "rescue",
        "spar_on",
        "spar_onset",
        "spar_start",
        "t",
        "t_le",
        "taper_hold",
        "taper_next",
        "v",
        "visit_k",
        "w",
        "xf",
        "xs",
        "y",
        "z",
    )

    def take(self, idx: np.ndarray) -> State:
        out = State.__new__(State)
        for name in State.__slots__:
            v = getattr(self, name)
            setattr(out, name, [a[idx] for a in v] if isinstance(v, list) else v[idx])
        return out

    def put(self, idx: np.ndarray, sub: State) -> None:
        for name in State.__slots__:
            v, s = getattr(self, name), getattr(sub, name)
            if isinstance(v, list):
                for a, b in zip(v, s, strict=True):
                    a[idx] = b
            else:
                v[idx] = s


def _drug_const(xp: Ops, plan: Plan, prm: Params, pred: Any, spar_on: Any,
                agent_eff: Any) -> Any:
    steroid = effects.steroid_effect(pred, plan.emax, plan.ed50, prm.steroid_sens)
    return steroid + spar_on * agent_eff


def init_state(xp: Ops, plan: Plan, prm: Params) -> State:
    """State at day 0, before any event."""
    st = State.__new__(State)
    vec = xp.vector
    n = len(prm.patient) if vec else 1

    def full(value: Any) -> Any:
        return np.full(n, value, dtype=np.float64) if vec else value

    st.t = full(0.0)
    st.y = full(0.0)
    st.w = full(0.0)
    st.z = prm.z0 * 1.0
    st.xf = full(0.0)
    st.xs = full(0.0)
    st.v = full(0.0)
    st.pred = xp.where(prm.pulse, prm.pulse_mg, prm.induction_mg) * 1.0
    st.pulse_end = prm.pulse_end * 1.0
    st.agent = prm.agent * 1 if vec else prm.agent
    st.spar_start = prm.agent_start * 1.0
    agent_onset = np.asarray((*plan.agent_onset_days, 0.0)) if plan.agents else np.zeros(1)
    agent_eff = np.asarray((*plan.agent_effect, 0.0)) if plan.agents else np.zeros(1)
    if vec:
        st.spar_onset = st.spar_start + agent_onset[st.agent]
        st.agent_effect = agent_eff[st.agent]
    else:
        st.spar_onset = st.spar_start + float(agent_onset[st.agent])
        st.agent_effect = float(agent_eff[st.agent])
    st.spar_on = full(0.0)
    st.c = _drug_const(xp, plan, prm, st.pred, st.spar_on, st.agent_effect)
    st.e = st.c * 0.0
    st.cum_pred = full(0.0)
    st.disc_pred = full(0.0)
    st.disc_ivig_g = full(0.0)
    st.disc_infusions = full(0.0)
    st.taper_next = full(plan.induction_days)
    st.taper_hold = full(0.0)
    st.ivig_start = full(plan.ivig_start_day)
    st.ivig_next = full(plan.ivig_start_day if plan.ivig_on else math.inf)
    st.ivig_given = np.zeros(n, dtype=np.int64) if vec else 0
    st.ivig_cycles = full(0.0)
    st.ivig_stopped = full(0.0)
    st.ivig_g = full(0.0)
    st.rescue = full(math.inf)
    st.visit_k = np.zeros(n, dtype=np.int64) if vec else 0
    st.flare_k = np.zeros(n, dtype=np.int64) if vec else 0
    st.flares = full(0.0)
    st.cpk_base = full(math.nan)
    st.cpk_prev = full(math.nan)
    st.ever_normal = full(0.0)
    st.first_normal = full(math.inf)
    st.first_relapse = full(math.inf)
    st.relapses = full(0.0)
    st.t_le = [xp.where(st.pred <= th, 0.0, math.inf) * 1.0 for th in THRESHOLDS_MG]
    st.ae_hazard = [full(0.0) for _ in plan.steroid_aes]
    st.ae_time = [full(math.inf) for _ in plan.steroid_aes]
    st.ivig_ae_n = [full(0.0) for _ in plan.ivig_aes]
    st.ivig_ae_disc = [full(0.0) for _ in plan.ivig_aes]
    return st


def next_event(xp: Ops, plan: Plan, prm: Params, st: State) -> tuple[Any, Any]:
    """(time, kind) of each patient's next event; ties go to the lower kind."""
    if xp.vector:
        visit_t = np.append(plan.visit_days, np.inf)[st.visit_k]
        times = np.stack(
            [st.pulse_end, st.spar_onset, xp.pick(prm.flare_day, st.flare_k), visit_t,
             st.taper_next, st.ivig_next, np.full(st.t.shape, plan.horizon_days)], axis=1,
        )
        kind = np.argmin(times, axis=1)
        return times[np.arange(times.shape[0]), kind], kind
    best_t, best_k = st.pulse_end, PULSE_END
    for kind, t in ((SPARING_ONSET, st.spar_onset), (FLARE, prm.flare_day[st.flare_k]),
                    (VISIT, plan.visit_days_list[st.visit_k]),
                    (TAPER, st.taper_next), (INFUSION, st.ivig_next)):
        if t < best_t:
            best_t, best_k = t, kind
    if plan.horizon_days < best_t:
        return plan.horizon_days, END
    return best_t, best_k


def advance(xp: Ops, plan: Plan, prm: Params, st: State, t: Any) -> None:
    """Move the state from st.t to t in closed form (no event in between)."""
    tau = t - st.t
    (yy, yz, ye, ysc, yc, yf, ys, yv, ww, wz, we, wsc, wc, wf, ws, wv,
     zz, ff, ss, vf, vs, vv, ee) = plan.propagator(xp, tau)
    g = prm.ivig_gain
    sc = prm.setpoint
    c = st.c
    y, w, z, xf, xs, v, e = st.y, st.w, st.z, st.xf, st.xs, st.v, st.e
    st.y = yy * y + yz * z + ye * e + ysc * sc + yc * c + g * (yf * xf + ys * xs + yv * v)
    st.w = ww * w + wz * z + we * e + wsc * sc + wc * c + g * (wf * xf + ws * xs + wv * v)
    st.z = zz * z
    st.xf = ff * xf
    st.xs = ss * xs
    st.v = vf * xf + vs * xs + vv * v
    st.e = ee * e + (1.0 - ee) * c
    st.cum_pred = st.cum_pred + st.pred * tau
    d = plan.discount_per_day
    if d > 0:
        st.disc_pred = st.disc_pred + st.pred * (xp.exp(-d * st.t) - xp.exp(-d * t)) / d
    else:
        st.disc_pred = st.disc_pred + st.pred * tau
    rates = plan.steroid_ae_rates(xp, st.pred)
    for j in range(len(rates)):
        rate = rates[j]
        h0 = st.ae_hazard[j]
        h1 = h0 + rate * tau
        thr = xp.column(prm.steroid_ae_threshold, j)
        hit = xp.logical_and(h0 < thr, h1 >= thr)
        st.ae_time[j] = xp.where(hit, st.t + (thr - h0) / xp.maximum(rate, 1e-300),
                                 st.ae_time[j])
        st.ae_hazard[j] = h1
    st.t = t * 1.0


def _set_dose(xp: Ops, plan: Plan, prm: Params, st: State, dose: Any) -> None:
    st.pred = dose
    st.c = _drug_const(xp, plan, prm, dose, st.spar_on, st.agent_effect)
    for i, th in enumerate(THRESHOLDS_MG):
        st.t_le[i] = xp.where(xp.logical_and(dose <= th, st.t_le[i] == math.inf), st.t,
                              st.t_le[i])


def _band(xp: Ops, plan: Plan, dose: Any) -> tuple[Any, Any]:
    """(reduction, interval) of the taper band the dose is in; (0, inf) below all bands."""
    reduce, every = dose * 0.0, dose * 0.0 + math.inf
    found = dose < 0.0
    for b in plan.taper_bands:
        m = xp.logical_and(dose > b.above_mg, xp.logical_not(found))
        reduce = xp.where(m, b.reduce_mg, reduce)
        every = xp.where(m, b.every_days, every)
        found = xp.logical_or(found, m)
    return reduce, every


def _next_step_time(xp: Ops, plan: Plan, t: Any, dose: Any) -> Any:
    _, every = _band(xp, plan, dose)
    return xp.where(dose > plan.floor_mg, t + every, math.inf)


def _start_sparing(xp: Ops, plan: Plan, prm: Params, st: State, when: Any) -> Any:
    """Start the planned agent now if it has not started, else the on-relapse agent."""
    if plan.on_relapse_agent < 0 and not plan.agents:
        return when * 0.0
    none_yet = st.spar_start > st.t
    can = xp.logical_and(when, none_yet)
    fallback = plan.on_relapse_agent
    agent = xp.where(st.agent >= 0, st.agent, fallback)
    can = xp.logical_and(can, agent >= 0)
    onsets = (*plan.agent_onset_days, 0.0)
    effs = (*plan.agent_effect, 0.0)
    if xp.vector:
        onset = np.asarray(onsets)[agent]
        eff = np.asarray(effs)[agent]
    else:
        onset, eff = onsets[agent], effs[agent]
    st.agent = xp.where(can, agent, st.agent)
    st.spar_start = xp.where(can, st.t, st.spar_start)
    st.spar_onset = xp.where(can, st.t + onset, st.spar_onset)
    st.agent_effect = xp.where(can, eff, st.agent_effect)
    return can


def visit(xp: Ops, plan: Plan, prm: Params, st: State) -> tuple[Any, Any, Any, Any]:
    """Labs and decisions at a visit. Returns (flags, cpk, myoglobin, mmt8) measured."""
    k = st.visit_k
    cpk = disease.measured(
        xp, disease.enzyme_level(xp, st.y, prm.cpk0, prm.cpk_bg), plan.cpk_sigma_log,
        xp.pick(prm.noise_cpk, k),
    )
    myo = disease.measured(
        xp, disease.enzyme_level(xp, st.y, prm.myo0, prm.myo_bg), plan.myoglobin_sigma_log,
        xp.pick(prm.noise_myo, k),
    )
    strength = disease.mmt8(xp, st.w, prm.mmt8_0, plan.mmt8_sd, xp.pick(prm.noise_mmt8, k))
    st.cpk_base = xp.where(k == 0, cpk, st.cpk_base)
    uln = plan.cpk_uln
    normal = cpk < uln
    relapse = xp.logical_and(st.ever_normal > 0, cpk > plan.relapse_cpk_x_uln * uln)
    first = xp.logical_and(normal, st.first_normal == math.inf)
    flags = normal * F_NORMAL + first * F_FIRST_NORMAL + relapse * F_RELAPSE

    # Relapse: escalate prednisone, restart the taper after a hold, add a sparing agent.
    st.relapses = st.relapses + relapse
    st.first_relapse = xp.where(xp.logical_and(relapse, st.first_relapse == math.inf), st.t,
                                st.first_relapse)
    up = xp.minimum(prm.induction_mg, xp.maximum(
        plan.relapse_min_mg, xp.floor(st.pred * plan.relapse_factor / 5.0 + 0.5) * 5.0))
    escalate = xp.logical_and(relapse, up > st.pred)
    _set_dose(xp, plan, prm, st, xp.where(escalate, up, st.pred))
    flags = flags + escalate * F_ESCALATE
    st.taper_next = xp.where(relapse, st.t + plan.relapse_hold_days, st.taper_next)
    st.taper_hold = xp.where(relapse, 0.0, st.taper_hold)
    flags = flags + _start_sparing(xp, plan, prm, st, relapse) * F_SPARING_START
    st.ever_normal = xp.where(relapse, 0.0, xp.where(normal, 1.0, st.ever_normal))
    st.first_normal = xp.where(first, st.t, st.first_normal)

    seen = Seen(day=st.t, cpk=cpk, cpk_uln=uln, cpk_baseline=st.cpk_base,
                cpk_previous=st.cpk_prev, relapse=relapse, relapses=st.relapses,
                prednisone_mg_per_day=st.pred, ever_normal=st.ever_normal > 0)
    if plan.hold_rule is not None:
        hold = xp.logical_and(plan.hold_rule(xp, seen), xp.logical_not(relapse))
        newly = xp.logical_and(hold, st.taper_hold == 0)
        resume = xp.logical_and(xp.logical_not(hold), st.taper_hold > 0)
        resume = xp.logical_and(resume, xp.logical_not(relapse))
        st.taper_hold = xp.where(hold, 1.0, xp.where(resume, 0.0, st.taper_hold))
        st.taper_next = xp.where(
            hold, math.inf,
            xp.where(resume, xp.maximum(_next_step_time(xp, plan, st.t, st.pred),
                                        plan.induction_days), st.taper_next),
        )
        flags = flags + newly * F_HOLD + resume * F_RESUME
    if plan.sparing_rule is not None:
        flags = flags + _start_sparing(xp, plan, prm, st, plan.sparing_rule(xp, seen)) \
            * F_SPARING_START
    if plan.rescue_rule is not None:
        fire = xp.logical_and(plan.rescue_rule(xp, seen), st.ivig_start == math.inf)
        st.rescue = xp.where(fire, st.t, st.rescue)
        st.ivig_start = xp.where(fire, st.t + plan.rescue_delay_days, st.ivig_start)
        st.ivig_next = xp.where(fire, st.ivig_start, st.ivig_next)
        flags = flags + fire * F_RESCUE
    st.cpk_prev = cpk
    st.visit_k = k + 1
    return flags, cpk, myo, strength


def taper(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    reduce, _ = _band(xp, plan, st.pred)
    step = st.pred > plan.floor_mg
    new = xp.where(step, xp.maximum(plan.floor_mg, st.pred - reduce), st.pred)
    _set_dose(xp, plan, prm, st, new)
    st.taper_next = _next_step_time(xp, plan, st.t, new)
    return step * F_TAPER_STEP


def pulse_end(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    _set_dose(xp, plan, prm, st, prm.induction_mg * 1.0)
    st.pulse_end = st.pulse_end * 0.0 + math.inf
    return st.t * 0.0 + F_DOSE_CHANGE


def sparing_onset(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    st.spar_on = st.spar_on * 0.0 + 1.0
    st.spar_onset = st.spar_onset * 0.0 + math.inf
    st.c = _drug_const(xp, plan, prm, st.pred, st.spar_on, st.agent_effect)
    return st.t * 0.0 + F_SPARING_ONSET


def flare(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    """A random flare: the disease drive jumps back up to the flare's level (never down),
    then fades at the burnout rate."""
    st.z = xp.maximum(st.z, xp.pick(prm.flare_level, st.flare_k) - prm.setpoint)
    st.flare_k = st.flare_k + 1
    st.flares = st.flares + 1.0
    return st.t * 0.0 + F_FLARE


def infusion(xp: Ops, plan: Plan, prm: Params, st: State) -> tuple[Any, Any]:
    """One IVIG infusion day. Returns (flags, grams given)."""
    n = st.ivig_given
    d = plan.ivig_day_dose
    disc = xp.exp(-plan.discount_per_day * st.t)
    flags = st.t * 0.0
    stop = st.t < 0.0
    for j, ae in enumerate(plan.ivig_aes):
        p = ae.probability(xp, d, prm.risk_factor)
        u = xp.pick(xp.column(prm.ivig_ae_u, j), n)
        hit = u < p
        st.ivig_ae_n[j] = st.ivig_ae_n[j] + hit
        st.ivig_ae_disc[j] = st.ivig_ae_disc[j] + hit * disc
        flags = flags + hit * (F_IVIG_AE0 << j)
        if ae.stops_ivig:
            stop = xp.logical_or(stop, hit)
    fast, slow = pk.bolus(d, prm.igg_rise, plan.igg_fast_fraction)
    st.xf = st.xf + fast
    st.xs = st.xs + slow
    grams = d * prm.weight_kg
    st.ivig_g = st.ivig_g + grams
    st.disc_ivig_g = st.disc_ivig_g + grams * disc
    st.disc_infusions = st.disc_infusions + disc
    st.ivig_cycles = st.ivig_cycles + (n % plan.ivig_days_per_cycle == 0)
    n = n + 1
    st.ivig_given = n
    cycle = n // plan.ivig_days_per_cycle
    nxt = (st.ivig_start + cycle * plan.ivig_interval_days + n % plan.ivig_days_per_cycle)
    done = xp.logical_or(stop, cycle >= plan.ivig_cycles)
    st.ivig_next = xp.where(done, math.inf, nxt)
    st.ivig_stopped = xp.where(stop, 1.0, st.ivig_stopped)
    return flags + stop * F_IVIG_STOP, grams


def handle(xp: Ops, plan: Plan, prm: Params, st: State, kind: int) -> tuple[Any, Any, Any, Any]:
    """Run the event ``kind`` (one kind for every patient given). Returns
    (flags, cpk, myoglobin, mmt8-or-grams) with NaN where an event measures nothing."""
    nan = st.t * 0.0 + math.nan
    if kind == VISIT:
        return visit(xp, plan, prm, st)
    if kind == INFUSION:
        flags, grams = infusion(xp, plan, prm, st)
        return flags, nan, nan, grams
    if kind == TAPER:
        return taper(xp, plan, prm, st), nan, nan, nan
    if kind == PULSE_END:
        return pulse_end(xp, plan, prm, st), nan, nan, nan
    if kind == SPARING_ONSET:
        return sparing_onset(xp, plan, prm, st), nan, nan, nan
    if kind == FLARE:
        return flare(xp, plan, prm, st), nan, nan, nan
    return st.t * 0.0, nan, nan, nan
