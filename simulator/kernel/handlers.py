"""What each event does, which event comes next, and the exact step between events.

Both engines call these functions: the SimPy engine for one patient with plain floats,
the cohort engine for arrays of patients (``xp`` is ``kernel.xp.SCALAR`` or ``ARRAY``).
The order of same-day events is fixed by ``events.Event`` (see its docstring).
"""

from __future__ import annotations

import math
import operator
from types import SimpleNamespace
from typing import Any

import numpy as np

from .. import jit
from . import disease, effects, measures, mortality, pk
from .disease import C, S
from .events import IVIG_AE_SHIFT, Event, Flag
from .params import FLARE_ACCEPT, FLARE_GAP, Params, flare_draw, flare_hazard
from .plan import MONTH_DAYS, THRESHOLDS_MG, Plan
from .rules import Seen
from .state import State
from .xp import Ops

__all__ = [
    "VISIT_VALUES",
    "advance",
    "handle",
    "infusion",
    "init_state",
    "next_event",
    "postpone_infusion",
    "skip_infusion",
]

# What a visit measures, in this order (``handle`` returns them for a visit).
VISIT_VALUES = (
    "cpk",
    "myoglobin",
    "mmt8",
    "physician_global",
    "patient_global",
    "haq",
    "extramuscular",
    "tis",
    "inactive",
    "damage",
    "skin_activity",
    "lung_activity",
    "dysphagia_activity",
)


def _full(xp: Ops, like: Any, value: float) -> Any:
    return like * 0.0 + value


# --------------------------------------------------------------------------------------
# Initial state
# --------------------------------------------------------------------------------------


def _drug_input(plan: Plan, prm: Params, pred: Any, spar_on: Any, agent_effect: Any) -> Any:
    steroid = effects.steroid_effect(pred, plan.emax, plan.ed50, prm.steroid_sens)
    return steroid + spar_on * agent_effect


def init_state(xp: Ops, plan: Plan, prm: Params) -> State:
    """State at day 0, before any event."""
    st = State.__new__(State)
    vec = xp.vector
    zero = prm.drive * 0.0

    def full(value: float) -> Any:
        return zero + value

    st.t = full(0.0)
    st.disc_at_t = full(1.0)  # exp(-d * 0)
    for name in (
        "y",
        "q",
        "w",
        "xs",
        "xl",
        "xd",
        "f",
        "l",
        "fe",
        "le",
        "v",
        "e",
        "j",
        "j_window",
        "damage_points",
    ):
        setattr(st, name, full(0.0))
    st.z = prm.z0 * 1.0
    pulse = prm.pulse
    st.oral_mg = prm.induction_mg * 1.0
    st.pred = xp.where(pulse, plan.pulse_mg, prm.induction_mg) * 1.0
    st.pulse_end = prm.pulse_end * 1.0
    st.rescue_pulses = full(0.0)
    st.agent = prm.agent * 1 if vec else prm.agent
    st.spar_start = prm.agent_start * 1.0
    onsets = (*plan.agent_onset_days, 0.0)
    effects_ = (*plan.agent_effect, 0.0)
    st.spar_onset = st.spar_start + xp.take(onsets, st.agent)
    st.agent_effect = xp.take(effects_, st.agent) * 1.0
    st.spar_on = full(0.0)
    st.spar_stop = full(math.inf)
    st.c = _drug_input(plan, prm, st.pred, st.spar_on, st.agent_effect)
    st.taper_hold = full(0.0)
    st.taper_fast = full(0.0)
    # oral induction lasts induction_days after the pulse (docs/model.md section 3)
    st.taper_not_before = (
        xp.where(prm.pulse, plan.induction_days + plan.pulse_days, plan.induction_days) * 1.0
    )
    st.last_step = full(0.0)
    st.steroid_stopped = full(math.inf)
    st.floor_since = xp.where(prm.induction_mg <= plan.floor_mg, 0.0, math.inf) * 1.0
    st.taper_next = full(math.inf)
    st.ivig_start = prm.ivig_start * 1.0  # inf: IVIG only if a rescue rule fires
    st.ivig_next = st.ivig_start * 1.0 if plan.ivig_on else full(math.inf)
    st.ivig_given = np.zeros(len(prm.patient), dtype=np.int64) if vec else 0
    st.ivig_day_in_cycle = st.ivig_given * 1
    st.ivig_cycles = st.ivig_given * 1
    st.ivig_planned = st.ivig_given * 0 + plan.ivig_cycles
    st.cycle_start = full(math.inf)
    st.ivig_stopped = full(0.0)
    st.ivig_rule_stopped = full(0.0)
    st.ivig_g = full(0.0)
    st.rescue = full(math.inf)
    st.last_infusion = full(-math.inf)
    st.entry_day = full(math.inf)
    st.relapse_pending = full(0.0)
    st.unblind_day = full(math.inf)
    st.unblind_pending = full(0.0)
    st.drug_active = full(0.0 if plan.ivig_placebo else 1.0)
    st.flare_k = st.ivig_given * 0
    st.flare_time = full(0.0)
    st.flares = full(0.0)
    _next_flare_candidate(xp, plan, prm, st)
    st.visit_k = st.ivig_given * 0
    for name in (
        "cpk_base",
        "cpk_prev",
        "b_phga",
        "b_ptga",
        "b_mmt8",
        "b_haq",
        "b_cpkx",
        "b_myox",
        "b_ext",
        "best_mmt8",
        "best_phga",
    ):
        setattr(st, name, full(math.nan))
    st.ever_normal = full(0.0)
    st.bio_ever_normal = full(0.0)
    st.inactive_since = full(math.inf)
    for name in (
        "first_normal",
        "first_relapse",
        "last_relapse",
        "first_bio_relapse",
        "first_inactive",
        "ccr_day",
        "first_tis20",
        "first_tis40",
        "first_strength_normal",
    ):
        setattr(st, name, full(math.inf))
    for name in (
        "relapses",
        "relapses_on_steroid",
        "relapses_off_steroid",
        "bio_relapses",
        "cum_pred",
        "disc_pred",
        "disc_pulse_days",
        "disc_ivig_g",
        "disc_infusions",
    ):
        setattr(st, name, full(0.0))
    st.t_le = [xp.where(st.pred <= th, 0.0, math.inf) * 1.0 for th in THRESHOLDS_MG]
    st.ae_hazard = [full(0.0) for _ in plan.steroid_aes]
    st.ae_time = [full(math.inf) for _ in plan.steroid_aes]
    st.ivig_ae_n = [full(0.0) for _ in plan.ivig_aes]
    st.ivig_ae_disc = [full(0.0) for _ in plan.ivig_aes]
    st.mort_h = full(0.0)
    st.death_day = full(math.inf)
    st.death_cause = full(0.0)
    st.death_due = full(math.inf)
    st.death_due_cause = full(0.0)
    _set_mortality_rate(xp, plan, prm, st, full(1.0))
    _schedule_taper(xp, plan, st)
    _schedule_death(xp, plan, prm, st)
    return st


# --------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------


def next_event(xp: Ops, plan: Plan, prm: Params, st: State) -> tuple[Any, Any]:
    """(time, kind) of each patient's next event; ties go to the lower kind."""
    if xp.vector:
        visit_t = np.append(plan.visit_days, np.inf)[st.visit_k]
        end = np.minimum(st.death_day, plan.horizon_days)
        times = np.stack(
            [
                st.pulse_end,
                st.spar_onset,
                st.flare_next,
                visit_t,
                st.taper_next,
                st.ivig_next,
                st.death_next,
                end,
            ],
            axis=1,
        )
        kind = np.argmin(times, axis=1)
        return times[np.arange(times.shape[0]), kind], kind
    best_t, best_k = st.pulse_end, Event.PULSE_END
    for kind, t in (
        (Event.SPARING_ONSET, st.spar_onset),
        (Event.FLARE, st.flare_next),
        (Event.VISIT, plan.visit_days_list[st.visit_k]),
        (Event.TAPER, st.taper_next),
        (Event.INFUSION, st.ivig_next),
        (Event.DEATH, st.death_next),
    ):
        if t < best_t:
            best_t, best_k = t, kind
    end = min(st.death_day, plan.horizon_days)
    if end < best_t:
        return end, Event.END
    return best_t, best_k


# Flag values as plain ints for the handlers' arithmetic: with an IntFlag operand numpy
# probes the enum class for its array protocol through enum's Python-level __getattr__
# (Python 3.11), about 1.5 us an operation; the values are the same.
_BIT = SimpleNamespace(**{name: int(f) for name, f in Flag.__members__.items()})

# The states one closed-form step moves, in disease.STEPPED order.
STEPPED_FIELDS = ("y", "q", "w", "xs", "xl", "xd", "z", "f", "l", "fe", "le", "v", "e", "j")
_STEPPED_OF = operator.attrgetter(*STEPPED_FIELDS)


def _set_stepped(st: State, values: tuple[Any, ...]) -> None:
    # one tuple assignment, not a setattr loop: 0.07 against 0.6 us, once per event of
    # the SimPy engine
    (
        st.y,
        st.q,
        st.w,
        st.xs,
        st.xl,
        st.xd,
        st.z,
        st.f,
        st.l,
        st.fe,
        st.le,
        st.v,
        st.e,
        st.j,
    ) = values


def advance(xp: Ops, plan: Plan, prm: Params, st: State, t: Any) -> None:
    """Move the state from st.t to t in closed form (no event in between)."""
    tau = t - st.t
    if not xp.vector:
        coef = plan.propagator(xp, prm.node, tau)
        _set_stepped(st, disease.step_one(coef, *_STEPPED_OF(st), prm.drive, st.c, prm.ivig_gain))
    else:
        _advance_vector(xp, plan, prm, st, tau)
    advance_clocks(xp, plan, prm, st, t, tau)


def _flat(a: Any, n: int) -> bool:
    """A contiguous float64 array of n values, as numba's step loop takes."""
    return (
        type(a) is np.ndarray
        and a.dtype == np.float64
        and a.shape == (n,)
        and bool(a.flags.c_contiguous)
    )


def _advance_vector(xp: Ops, plan: Plan, prm: Params, st: State, tau: Any) -> None:
    n = len(tau)
    loops = jit.loops(n)
    if loops is not None:
        args = (*_STEPPED_OF(st), prm.drive, st.c, prm.ivig_gain)
        if all(_flat(a, n) for a in args):  # numba's loop over the same scalar step
            stepped = plan.propagator.with_rows(
                prm.node, tau, lambda table, rows: loops.step_rows(table, rows, *args)
            )
            _set_stepped(st, stepped)
            return
    coef = plan.propagator(xp, prm.node, tau)
    x = {**dict(zip(disease.STEPPED, _STEPPED_OF(st), strict=True)), S: prm.drive, C: st.c}
    new = disease.step(xp, coef, x, prm.ivig_gain)
    _set_stepped(st, tuple(new[k] for k in disease.STEPPED))


def advance_clocks(xp: Ops, plan: Plan, prm: Params, st: State, t: Any, tau: Any) -> None:
    """The clocks of a step to ``t``: cumulative and discounted prednisone, the steroid
    adverse events' hazards (and when each crosses its threshold), the death hazard."""
    if not xp.vector:
        _advance_clocks_one(xp, plan, prm, st, t, tau)
        return
    st.cum_pred = st.cum_pred + st.pred * tau
    # Discounted days of the step; a step never crosses the end of a pulse (an event), so
    # it is all on a pulse or all off one. Pulse days are costed as pulse days, not as
    # prednisone (docs/model.md section 5).
    d = plan.discount_per_day
    if d > 0:
        disc_t = xp.exp(-d * t)  # exp(-d * st.t) is st.disc_at_t, from the last step
        days = (st.disc_at_t - disc_t) / d
        st.disc_at_t = disc_t
    else:
        days = tau
    pulsing = st.pulse_end < math.inf
    st.disc_pred = st.disc_pred + xp.where(pulsing, 0.0, st.pred) * days
    st.disc_pulse_days = st.disc_pulse_days + xp.where(pulsing, days, 0.0)
    rates = plan.steroid_ae_rates(xp, st.pred)
    for j in range(len(rates)):
        rate = rates[j]
        h0 = st.ae_hazard[j]
        h1 = h0 + rate * tau
        thr = xp.column(prm.steroid_ae_threshold, j)
        hit = xp.logical_and(h0 < thr, h1 >= thr)
        st.ae_time[j] = xp.where(hit, _crossing(xp, st.t, h0, thr, rate), st.ae_time[j])
        st.ae_hazard[j] = h1
    st.mort_h = st.mort_h + st.mort_rate * tau
    st.t = t * 1.0


def _advance_clocks_one(xp: Ops, plan: Plan, prm: Params, st: State, t: Any, tau: Any) -> None:
    """:func:`advance_clocks` for one patient: the same expressions in the same order on
    floats, without the array namespace's calls (the SimPy engine's hottest path)."""
    pred, t0 = st.pred, st.t
    st.cum_pred = st.cum_pred + pred * tau
    d = plan.discount_per_day
    if d > 0:
        disc_t = xp.exp(-d * t)
        days = (st.disc_at_t - disc_t) / d
        st.disc_at_t = disc_t
    else:
        days = tau
    pulsing = st.pulse_end < math.inf
    st.disc_pred = st.disc_pred + (0.0 if pulsing else pred) * days
    st.disc_pulse_days = st.disc_pulse_days + (days if pulsing else 0.0)
    hazards, times, thresholds = st.ae_hazard, st.ae_time, prm.steroid_ae_threshold
    for j, rate in enumerate(plan.steroid_ae_rates(xp, pred)):
        h0 = hazards[j]
        h1 = h0 + rate * tau
        thr = thresholds[j]
        if h0 < thr and h1 >= thr:
            times[j] = t0 + (thr - h0) / max(rate, 1e-300)  # _crossing
        hazards[j] = h1
    st.mort_h = st.mort_h + st.mort_rate * tau
    st.t = t * 1.0


# --------------------------------------------------------------------------------------
# Scheduling helpers
# --------------------------------------------------------------------------------------


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


def _schedule_taper(xp: Ops, plan: Plan, st: State) -> None:
    """The next taper step: the band's interval after the last step (shortened while the
    disease is inactive), not before the end of induction or of a relapse hold, never
    while held, at or below the floor, or during a pulse."""
    _, every = _band(xp, plan, st.oral_mg)
    pace = xp.where(st.taper_fast > 0, plan.fast_factor, 1.0)
    # Steps fall on whole days: a shortened interval is rounded up.
    interval = xp.minimum(every * pace, 1e9)  # inf below every band: never due
    due = xp.maximum(st.last_step - xp.floor(-interval), st.taper_not_before)
    due = xp.maximum(due, st.t)
    off = xp.logical_or(st.taper_hold > 0, st.oral_mg <= plan.floor_mg)
    off = xp.logical_or(off, st.pulse_end < math.inf)
    st.taper_next = xp.where(off, math.inf, due) if plan.steroid_on else st.t * 0.0 + math.inf


def _crossing(xp: Ops, t: Any, hazard: Any, threshold: Any, rate: Any) -> Any:
    """When a cumulative hazard at ``hazard`` now, growing at ``rate`` per day, reaches
    ``threshold`` (one expression for adverse events and deaths, so a fatal event and its
    adverse event fall on the same instant). A rate near 0 puts the crossing past any
    horizon: numpy's overflow to inf there is the answer (never), not an error."""
    with np.errstate(over="ignore"):
        return t + (threshold - hazard) / xp.maximum(rate, 1e-300)


def _set_mortality_rate(xp: Ops, plan: Plan, prm: Params, st: State, activity: Any) -> None:
    """The background and disease-related death hazards per day for the window starting
    now: the life table at the current age, and the excess at this age and ``activity``
    (geometric mean inflammation over the window before; 1 at diagnosis)."""
    age = prm.age0 + st.t / 365.25
    bg = mortality.background_rate(xp, plan.background_per_day, prm.female, age)
    if plan.excess_per_day > 0:
        lasting = plan.excess_lasting_fraction
        excess = (
            plan.excess_per_day
            * prm.mortality_risk
            * xp.exp(plan.excess_log_hr_per_year_of_age * (age - plan.excess_reference_age))
            * (lasting + (1.0 - lasting) * activity)
        )
    else:
        excess = age * 0.0
    st.mort_bg = bg * 1.0
    st.mort_rate = bg + excess


def _schedule_death(xp: Ops, plan: Plan, prm: Params, st: State) -> None:
    """The time of death if nothing changes before it: the background and disease hazard
    crossing the patient's threshold at the current rate, the first event of a steroid
    adverse event that will be fatal for this patient at the current dose, or a fatal
    IVIG adverse event today. Called whenever one of these may have changed."""
    if not plan.mortality_on:
        st.death_next = st.t * 0.0 + math.inf
        st.death_next_cause = st.t * 0.0
        return
    rate = st.mort_rate
    best = xp.where(rate > 0, _crossing(xp, st.t, st.mort_h, prm.death_threshold, rate), math.inf)
    cause = st.t * 0.0
    rates = plan.steroid_ae_rates(xp, st.pred)
    for j, ae in enumerate(plan.steroid_aes):
        if ae.case_fatality <= 0:
            continue
        h = st.ae_hazard[j]
        thr = xp.column(prm.steroid_ae_threshold, j)
        r = rates[j]
        will = xp.logical_and(xp.logical_and(xp.column(prm.steroid_ae_fatal, j), h < thr), r > 0)
        tj = xp.where(will, _crossing(xp, st.t, h, thr, r), math.inf)
        better = tj < best
        best = xp.where(better, tj, best)
        cause = xp.where(better, 3.0 + j, cause)
    due = st.death_due <= best
    st.death_next = xp.where(due, st.death_due, best)
    st.death_next_cause = xp.where(due, st.death_due_cause, cause)


def _next_flare_candidate(xp: Ops, plan: Plan, prm: Params, st: State) -> None:
    """The next flare candidate after number ``flare_k - 1``: a Poisson process at the
    largest hazard ``flare_max_rate_per_day`` (thinning, Lewis & Shedler 1979), each
    candidate at the beginning of the day after its time and at most one a day (a second
    on the same day moves to the next day, a shift that depends only on the candidate
    times, not on treatment; whole days keep the exact propagator cached). Candidates
    that would be rejected whatever the patient's treatment (their uniform above the
    patient's untreated hazard, ``prm.flare_bound_per_day``) are passed over without an
    event (``xp.thin``): the same candidates, days and flares as running each of them,
    with about a ninth of the flare events in first_line."""
    if plan.flare_max_rate_per_day <= 0:
        st.flare_level_u = st.t * 0.0
        st.flare_accept_u = st.t * 0.0
        st.flare_next = st.t * 0.0 + math.inf
        return
    k, st.flare_time, st.flare_next = xp.thin(
        prm.seed,
        prm.patient,
        FLARE_GAP,
        FLARE_ACCEPT,
        st.flare_k,
        st.flare_time,
        xp.floor(st.t) * 1.0,
        plan.flare_max_rate_per_day,
        prm.flare_bound_per_day,
        plan.horizon_days,
    )
    st.flare_k = k
    st.flare_level_u, st.flare_accept_u = flare_draw(xp, prm, k)


def flare_hazard_per_day(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    """Flare hazard now: the base rate times exp(factor x shortfall), the shortfall being
    how far the current treatment (steroid and sparing input, IVIG effect) leaves the
    lasting drive above the control level, in log units, capped."""
    cover = (st.c + prm.ivig_gain * st.v) / prm.rate
    return flare_hazard(xp, plan, prm.drive, cover)


def _set_dose(xp: Ops, plan: Plan, prm: Params, st: State, dose: Any) -> None:
    st.pred = dose
    st.c = _drug_input(plan, prm, dose, st.spar_on, st.agent_effect)
    for i, th in enumerate(THRESHOLDS_MG):
        st.t_le[i] = xp.where(xp.logical_and(dose <= th, st.t_le[i] == math.inf), st.t, st.t_le[i])
    st.floor_since = xp.where(
        dose <= plan.floor_mg, xp.where(st.floor_since == math.inf, st.t, st.floor_since), math.inf
    )


def _set_oral(xp: Ops, plan: Plan, prm: Params, st: State, dose: Any) -> None:
    """Set the oral dose; it takes effect now unless a pulse is running."""
    st.oral_mg = dose
    pulsing = st.pulse_end < math.inf
    _set_dose(xp, plan, prm, st, xp.where(pulsing, st.pred, dose))


def _start_sparing(xp: Ops, plan: Plan, st: State, when: Any) -> Any:
    """Start the planned agent now if it has not started, else the on-relapse agent."""
    if plan.on_relapse_agent < 0 and not plan.agents:
        return when * 0.0
    none_yet = st.spar_start > st.t
    can = xp.logical_and(when, none_yet)
    agent = xp.where(st.agent >= 0, st.agent, plan.on_relapse_agent)
    can = xp.logical_and(can, agent >= 0)
    onset = xp.take((*plan.agent_onset_days, 0.0), agent)
    eff = xp.take((*plan.agent_effect, 0.0), agent)
    st.agent = xp.where(can, agent, st.agent)
    st.spar_start = xp.where(can, st.t, st.spar_start)
    st.spar_onset = xp.where(can, st.t + onset, st.spar_onset)
    st.agent_effect = xp.where(can, eff, st.agent_effect)
    return can


# --------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------


def visit(xp: Ops, plan: Plan, prm: Params, st: State) -> tuple[Any, tuple[Any, ...]]:
    """Labs, core set and decisions at a visit. Returns (flags, VISIT_VALUES)."""
    k = st.visit_k
    t = st.t
    cs = plan.core
    # Damage accrues once per 4-week window, at the visit that closes it (every month day
    # is a visit), from the exact integral of log inflammation over the window: the same
    # whatever other events fall inside it.
    window_end = xp.logical_and(t > 0, t - xp.floor(t / MONTH_DAYS) * MONTH_DAYS == 0)
    accrued = disease.damage_step(
        xp,
        st.damage_points,
        st.j - st.j_window,
        MONTH_DAYS * 1.0,
        plan.damage_threshold_log,
        plan.damage_rate,
        plan.damage_max,
    )
    st.damage_points = xp.where(window_end, accrued, st.damage_points)
    if plan.mortality_on:
        bg, rate = st.mort_bg, st.mort_rate
        _set_mortality_rate(xp, plan, prm, st, xp.exp((st.j - st.j_window) / MONTH_DAYS))
        st.mort_bg = xp.where(window_end, st.mort_bg, bg)
        st.mort_rate = xp.where(window_end, st.mort_rate, rate)
    st.j_window = xp.where(window_end, st.j, st.j_window)
    cpk = disease.measured(
        xp,
        disease.enzyme_level(xp, st.q, prm.cpk0, prm.cpk_bg),
        plan.cpk_sigma_log,
        xp.pick(prm.noise_cpk, k),
    )
    myo = disease.measured(
        xp,
        disease.enzyme_level(xp, st.y, prm.myo0, prm.myo_bg),
        plan.myoglobin_sigma_log,
        xp.pick(prm.noise_myoglobin, k),
    )
    # The global ratings see inflammation as a^p (``core_set.activity_exponent``).
    a = xp.exp(cs.activity_exponent * st.y)
    p_ = cs.activity_exponent
    ax_skin = prm.ext_w_skin * xp.exp(p_ * st.xs)
    ax_lung = prm.ext_w_lung * xp.exp(p_ * st.xl)
    ax_dys = prm.ext_w_dysphagia * xp.exp(p_ * st.xd)
    ax = ax_skin + ax_lung + ax_dys
    mmt_true = xp.minimum(
        xp.maximum(150.0 - st.damage_points - (150.0 - prm.mmt8_0) * xp.exp(st.w), 0.0), 150.0
    )
    deficit = measures.deficit_fraction(xp, mmt_true)
    phga = measures.physician_global_cm(
        xp,
        a,
        ax,
        cs.physician_scale_muscle,
        cs.physician_scale_extra,
        cs.physician_sd_cm,
        xp.pick(prm.noise_physician_global, k),
    )
    ptga = measures.patient_global_cm(
        xp,
        a,
        ax,
        deficit,
        cs.patient_weight_activity,
        cs.patient_weight_extra,
        cs.patient_weight_deficit,
        cs.patient_sd_cm,
        xp.pick(prm.noise_patient_global, k),
    )
    haq = measures.haq(
        xp,
        deficit,
        ax,
        cs.haq_slope,
        cs.haq_exponent,
        cs.haq_weight_extra,
        cs.haq_sd,
        xp.pick(prm.noise_haq, k),
    )
    ext = measures.extramuscular_cm(
        xp,
        ax,
        cs.extramuscular_scale,
        cs.extramuscular_sd_cm,
        xp.pick(prm.noise_extramuscular, k),
        prm.ext_present,
    )
    # each domain's own activity VAS (MDAAT organ scales), NaN where the patient lacks it
    domains = []
    for w, a_d, noise in (
        (prm.ext_w_skin, ax_skin, prm.noise_skin),
        (prm.ext_w_lung, ax_lung, prm.noise_lung),
        (prm.ext_w_dysphagia, ax_dys, prm.noise_dysphagia),
    ):
        vas = measures.extramuscular_cm(
            xp, a_d, cs.extramuscular_scale, cs.extramuscular_sd_cm, xp.pick(noise, k), 1.0
        )
        domains.append(xp.where(w > 0, vas, math.nan))
    mmt8 = measures.mmt8_measured(xp, mmt_true, plan.mmt8_sd, xp.pick(prm.noise_mmt8, k))
    cpkx = cpk / plan.cpk_uln
    myox = myo / plan.myoglobin_uln
    first = k == 0
    st.cpk_base = xp.where(first, cpk, st.cpk_base)
    st.b_phga = xp.where(first, phga, st.b_phga)
    st.b_ptga = xp.where(first, ptga, st.b_ptga)
    st.b_mmt8 = xp.where(first, mmt8, st.b_mmt8)
    st.b_haq = xp.where(first, haq, st.b_haq)
    st.b_cpkx = xp.where(first, cpkx, st.b_cpkx)
    st.b_myox = xp.where(first, myox, st.b_myox)
    st.b_ext = xp.where(first, ext, st.b_ext)
    st.best_mmt8 = xp.where(first, mmt8, st.best_mmt8)
    st.best_phga = xp.where(first, phga, st.best_phga)
    base_cs = measures.CoreSet(
        st.b_phga, st.b_ptga, st.b_mmt8, st.b_haq, st.b_cpkx, st.b_myox, st.b_ext
    )
    now_cs = measures.CoreSet(phga, ptga, mmt8, haq, cpkx, myox, ext)
    tis = measures.total_improvement_score(xp, base_cs, now_cs)
    inactive = measures.inactive(
        xp, now_cs, plan.inactive_phga, plan.inactive_ext, plan.inactive_cpk_x_uln
    )
    normal = cpk < plan.cpk_uln

    # Clinical relapse: enzymes up together with weaker muscles or a worse physician global,
    # after the disease had responded (CPK normal since diagnosis or the last relapse).
    mmt_drop = 100.0 * (st.best_mmt8 - mmt8) / xp.maximum(st.best_mmt8, 1.0)
    phga_rise = phga - st.best_phga
    clinical = xp.logical_or(
        mmt_drop >= plan.relapse_mmt8_drop_pct, phga_rise >= plan.relapse_phga_rise
    )
    relapse = xp.logical_and(
        xp.logical_and(st.ever_normal > 0, cpkx > plan.relapse_cpk_x_uln), clinical
    )
    if plan.relapse_confirm:
        # Confirmed at the next visit: the criteria must hold at two visits in a row; the
        # relapse (and the clinic's response to it) dates from the confirming visit.
        seen_before = st.relapse_pending > 0
        st.relapse_pending = xp.where(relapse, 1.0, 0.0)
        relapse = xp.logical_and(relapse, seen_before)
        st.relapse_pending = xp.where(relapse, 0.0, st.relapse_pending)
    bio = xp.logical_and(st.bio_ever_normal > 0, cpkx > plan.biochemical_x_uln)
    first_normal = xp.logical_and(normal, st.first_normal == math.inf)
    flags = (
        normal * _BIT.CPK_NORMAL
        + first_normal * _BIT.FIRST_NORMAL
        + relapse * _BIT.RELAPSE
        + inactive * _BIT.INACTIVE
        + bio * _BIT.BIOCHEMICAL_RELAPSE
    )

    on_steroid = st.pred > 0
    st.relapses = st.relapses + relapse
    st.relapses_on_steroid = st.relapses_on_steroid + xp.logical_and(relapse, on_steroid)
    st.relapses_off_steroid = st.relapses_off_steroid + xp.logical_and(
        relapse, xp.logical_not(on_steroid)
    )
    st.first_relapse = xp.where(
        xp.logical_and(relapse, st.first_relapse == math.inf), t, st.first_relapse
    )
    st.last_relapse = xp.where(relapse, t, st.last_relapse)
    st.bio_relapses = st.bio_relapses + bio
    st.first_bio_relapse = xp.where(
        xp.logical_and(bio, st.first_bio_relapse == math.inf), t, st.first_bio_relapse
    )
    st.bio_ever_normal = xp.where(bio, 0.0, xp.where(normal, 1.0, st.bio_ever_normal))
    st.ever_normal = xp.where(relapse, 0.0, xp.where(normal, 1.0, st.ever_normal))
    st.first_normal = xp.where(first_normal, t, st.first_normal)
    st.best_mmt8 = xp.where(relapse, mmt8, xp.maximum(st.best_mmt8, mmt8))
    st.best_phga = xp.where(relapse, phga, xp.minimum(st.best_phga, phga))
    st.inactive_since = xp.where(inactive, xp.minimum(st.inactive_since, t), math.inf)
    st.first_inactive = xp.where(
        xp.logical_and(inactive, st.first_inactive == math.inf), t, st.first_inactive
    )
    ccr = xp.logical_and(inactive, t - st.inactive_since >= plan.complete_response_days)
    st.ccr_day = xp.where(xp.logical_and(ccr, st.ccr_day == math.inf), t, st.ccr_day)
    st.first_tis20 = xp.where(
        xp.logical_and(tis >= 20.0, st.first_tis20 == math.inf), t, st.first_tis20
    )
    st.first_tis40 = xp.where(
        xp.logical_and(tis >= 40.0, st.first_tis40 == math.inf), t, st.first_tis40
    )
    st.first_strength_normal = xp.where(
        xp.logical_and(mmt8 >= 142.0, st.first_strength_normal == math.inf),
        t,
        st.first_strength_normal,
    )

    worse = _worsening(xp, st, phga, ptga, mmt8, haq, ext)
    seen = Seen(
        day=t,
        cpk_x_uln=cpkx,
        cpk_pct_baseline=100.0 * cpk / st.cpk_base,
        cpk_rise_pct=100.0 * (cpk - st.cpk_prev) / st.cpk_prev,
        myoglobin_x_uln=myox,
        mmt8=mmt8,
        mmt8_drop_pct_best=mmt_drop,
        physician_global_cm=phga,
        physician_global_rise_cm=phga_rise,
        patient_global_cm=ptga,
        haq=haq,
        extramuscular_cm=ext,
        skin_activity_cm=domains[0],
        lung_activity_cm=domains[1],
        dysphagia_activity_cm=domains[2],
        tis=tis,
        prednisone_mg_per_day=st.pred,
        relapses=st.relapses,
        days_since_relapse=t - st.last_relapse,
        days_inactive=xp.where(inactive, t - st.inactive_since, 0.0),
        ivig_cycles=st.ivig_cycles * 1.0,
        days_on_floor=xp.where(st.floor_since < math.inf, t - st.floor_since, 0.0),
        days_since_entry=t - st.entry_day,
        physician_global_above_baseline_cm=worse[0],
        mmt8_below_baseline_pct=worse[1],
        extramuscular_above_baseline_cm=worse[2],
        core_set_worse_30pct=worse[3],
        relapse=relapse,
        ever_normal=st.ever_normal > 0,
        inactive=inactive,
        entered=st.entry_day < math.inf,
    )
    if plan.entry_rule is not None:
        # Entry at a 4-weekly visit in the window: the core set of this visit becomes the
        # baseline of the TIS, and the best values (for relapse) start again from it.
        window = xp.logical_and(t >= plan.entry_from_day, t <= plan.entry_until_day)
        window = xp.logical_and(window, t - xp.floor(t / MONTH_DAYS) * MONTH_DAYS == 0)
        enter = xp.logical_and(
            xp.logical_and(window, st.entry_day == math.inf), plan.entry_rule(xp, seen)
        )
        st.entry_day = xp.where(enter, t, st.entry_day)
        for name, value in (
            ("b_phga", phga),
            ("b_ptga", ptga),
            ("b_mmt8", mmt8),
            ("b_haq", haq),
            ("b_cpkx", cpkx),
            ("b_myox", myox),
            ("b_ext", ext),
            ("best_mmt8", mmt8),
            ("best_phga", phga),
        ):
            setattr(st, name, xp.where(enter, value, getattr(st, name)))
        tis = xp.where(enter, 0.0, tis)
        seen.entered = st.entry_day < math.inf
        seen.days_since_entry = t - st.entry_day
        seen.tis = tis
        # against the entry visit from now on (at it, nothing is worse than itself)
        (
            seen.physician_global_above_baseline_cm,
            seen.mmt8_below_baseline_pct,
            seen.extramuscular_above_baseline_cm,
            seen.core_set_worse_30pct,
        ) = _worsening(xp, st, phga, ptga, mmt8, haq, ext)
        flags = flags + enter * _BIT.ENTRY

    # Relapse: escalate prednisone (a pulse first if the rescue rule fires), hold the
    # taper, add a sparing agent.
    if plan.steroid_on:
        up = xp.maximum(
            plan.relapse_min_mg,
            xp.floor(st.oral_mg * plan.relapse_factor / plan.round_to_mg + 0.5) * plan.round_to_mg,
        )
        up = xp.minimum(xp.maximum(prm.induction_mg, plan.relapse_min_mg), up)
        escalate = xp.logical_and(relapse, up > st.oral_mg)
        _set_oral(xp, plan, prm, st, xp.where(escalate, up, st.oral_mg))
        flags = flags + escalate * _BIT.ESCALATE
        st.taper_not_before = xp.where(relapse, t + plan.relapse_hold_days, st.taper_not_before)
        st.last_step = xp.where(escalate, t, st.last_step)
        if plan.rescue_pulse_rule is not None:
            pulse = xp.logical_and(plan.rescue_pulse_rule(xp, seen), relapse)
            pulse = xp.logical_and(pulse, st.pulse_end == math.inf)
            st.pulse_end = xp.where(pulse, t + plan.pulse_days, st.pulse_end)
            _set_dose(xp, plan, prm, st, xp.where(pulse, plan.pulse_mg, st.pred))
            st.rescue_pulses = st.rescue_pulses + pulse
            flags = flags + pulse * _BIT.RESCUE_PULSE
    flags = flags + _start_sparing(xp, plan, st, relapse) * _BIT.SPARING_START

    if plan.steroid_on:
        if plan.hold_rule is not None:
            hold = xp.logical_and(plan.hold_rule(xp, seen), xp.logical_not(relapse))
            newly = xp.logical_and(hold, st.taper_hold == 0)
            resume = xp.logical_and(xp.logical_not(hold), st.taper_hold > 0)
            st.taper_hold = xp.where(hold, 1.0, 0.0)
            flags = flags + newly * _BIT.TAPER_HOLD + resume * _BIT.TAPER_RESUME
        if plan.fast_rule is not None:
            fast = plan.fast_rule(xp, seen)
            st.taper_fast = xp.where(fast, 1.0, 0.0)
            flags = flags + fast * _BIT.TAPER_FAST
        if plan.stop_rule is not None:
            stop = xp.logical_and(plan.stop_rule(xp, seen), xp.logical_not(relapse))
            stop = xp.logical_and(xp.logical_and(stop, st.oral_mg <= plan.floor_mg), st.oral_mg > 0)
            stop = xp.logical_and(stop, st.pulse_end == math.inf)
            _set_oral(xp, plan, prm, st, xp.where(stop, 0.0, st.oral_mg))
            st.steroid_stopped = xp.where(
                xp.logical_and(stop, st.steroid_stopped == math.inf), t, st.steroid_stopped
            )
            flags = flags + stop * _BIT.STEROID_STOP
        _schedule_taper(xp, plan, st)
    if plan.sparing_rule is not None:
        flags = (
            flags + _start_sparing(xp, plan, st, plan.sparing_rule(xp, seen)) * _BIT.SPARING_START
        )
    if plan.sparing_stop_rule is not None:
        # stop a started agent for good (its effect ends now; one not yet acting never
        # acts); _start_sparing never starts a second one
        on = xp.logical_and(st.spar_start <= t, st.spar_stop == math.inf)
        stop = xp.logical_and(plan.sparing_stop_rule(xp, seen), on)
        st.spar_stop = xp.where(stop, t, st.spar_stop)
        st.spar_on = xp.where(stop, 0.0, st.spar_on)
        st.spar_onset = xp.where(stop, math.inf, st.spar_onset)
        st.c = xp.where(stop, _drug_input(plan, prm, st.pred, st.spar_on, st.agent_effect), st.c)
        flags = flags + stop * _BIT.SPARING_STOP
    if plan.rescue_rule is not None:
        fire = xp.logical_and(plan.rescue_rule(xp, seen), st.ivig_start == math.inf)
        st.rescue = xp.where(fire, t, st.rescue)
        st.ivig_start = xp.where(fire, t + plan.rescue_delay_days, st.ivig_start)
        st.ivig_next = xp.where(fire, st.ivig_start, st.ivig_next)
        flags = flags + fire * _BIT.RESCUE_IVIG
    if plan.ivig_on:
        started = st.ivig_cycles > 0
        if plan.ivig_stop_rule is not None:
            stop = xp.logical_and(plan.ivig_stop_rule(xp, seen), started)
            stop = xp.logical_and(stop, st.ivig_planned > st.ivig_cycles)
            st.ivig_planned = xp.where(stop, st.ivig_cycles, st.ivig_planned)
            between = st.ivig_day_in_cycle == 0
            st.ivig_next = xp.where(xp.logical_and(stop, between), math.inf, st.ivig_next)
            st.ivig_rule_stopped = xp.where(stop, 1.0, st.ivig_rule_stopped)
            flags = flags + stop * _BIT.IVIG_RULE_STOP
        if plan.ivig_extend_rule is not None:
            last = xp.logical_and(started, st.ivig_cycles >= st.ivig_planned)
            ext_ok = xp.logical_and(last, st.ivig_planned < plan.ivig_max_cycles)
            ext_ok = xp.logical_and(ext_ok, st.ivig_stopped == 0)
            ext_ok = xp.logical_and(ext_ok, st.ivig_rule_stopped == 0)
            due = st.cycle_start + plan.ivig_interval_days
            ext_ok = xp.logical_and(ext_ok, due >= t)
            extend = xp.logical_and(plan.ivig_extend_rule(xp, seen), ext_ok)
            st.ivig_planned = st.ivig_planned + extend
            between = st.ivig_day_in_cycle == 0
            st.ivig_next = xp.where(xp.logical_and(extend, between), due, st.ivig_next)
            flags = flags + extend * _BIT.IVIG_EXTEND
        if plan.ivig_retreat_rule is not None:
            # a new course once the last has ended (every planned cycle given, nothing
            # scheduled), not after an adverse-event stop, while courses remain; its first
            # infusion start_delay_days later, as for a rescue
            ended = xp.logical_and(started, st.ivig_next == math.inf)
            ok = xp.logical_and(ended, st.ivig_stopped == 0)
            ok = xp.logical_and(ok, st.ivig_planned + plan.ivig_cycles <= plan.ivig_max_cycles)
            retreat = xp.logical_and(plan.ivig_retreat_rule(xp, seen), ok)
            st.ivig_planned = st.ivig_planned + retreat * plan.ivig_cycles
            st.ivig_next = xp.where(retreat, t + plan.rescue_delay_days, st.ivig_next)
            flags = flags + retreat * _BIT.IVIG_RETREAT
    if plan.unblind_rule is not None:
        unblind = xp.logical_and(plan.unblind_rule(xp, seen), st.drug_active == 0)
        unblind = xp.logical_and(unblind, st.entry_day < math.inf)
        if plan.unblind_confirm:
            # confirmed at the next visit: the rule must fire at two visits in a row, and
            # the switch is made at the second
            seen_before = st.unblind_pending > 0
            st.unblind_pending = xp.where(unblind, 1.0, 0.0)
            unblind = xp.logical_and(unblind, seen_before)
        st.drug_active = xp.where(unblind, 1.0, st.drug_active)
        st.unblind_day = xp.where(unblind, t, st.unblind_day)
        flags = flags + unblind * _BIT.UNBLIND
    st.cpk_prev = cpk
    st.visit_k = k + 1
    values = (cpk, myo, mmt8, phga, ptga, haq, ext, tis, inactive * 1.0, st.damage_points, *domains)
    return flags, values


def _worsening(xp: Ops, st: State, phga: Any, ptga: Any, mmt8: Any, haq: Any, ext: Any) -> Any:
    """The core set against its baseline (the day-0 visit, or entry), as ProDERM's
    confirmed deterioration reads it (parameters.md section 8): physician global above
    baseline (cm), MMT-8 below baseline (% of it), extramuscular global above baseline
    (cm), and how many of the five measures other than the enzymes are worse by at least
    30% of their baseline value (physician, patient and extramuscular global and HAQ up,
    MMT-8 down; a measure at 0 at baseline is worse by any rise)."""
    phga_up = phga - st.b_phga
    mmt8_down = 100.0 * (st.b_mmt8 - mmt8) / xp.maximum(st.b_mmt8, 1.0)
    ext_up = ext - st.b_ext
    count = 0.0
    for now, base in ((phga, st.b_phga), (ptga, st.b_ptga), (ext, st.b_ext), (haq, st.b_haq)):
        count = count + xp.logical_and(now > base, now - base >= 0.3 * base)
    count = count + xp.logical_and(mmt8 < st.b_mmt8, st.b_mmt8 - mmt8 >= 0.3 * st.b_mmt8)
    return phga_up, mmt8_down, ext_up, count


def taper(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    reduce, _ = _band(xp, plan, st.oral_mg)
    step = st.oral_mg > plan.floor_mg
    new = xp.where(step, xp.maximum(plan.floor_mg, st.oral_mg - reduce), st.oral_mg)
    _set_oral(xp, plan, prm, st, new)
    st.last_step = xp.where(step, st.t, st.last_step)
    _schedule_taper(xp, plan, st)
    return step * _BIT.TAPER_STEP


def pulse_end(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    st.pulse_end = st.pulse_end * 0.0 + math.inf
    _set_dose(xp, plan, prm, st, st.oral_mg * 1.0)
    _schedule_taper(xp, plan, st)
    return st.t * 0.0 + _BIT.DOSE_CHANGE


def sparing_onset(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    st.spar_on = st.spar_on * 0.0 + 1.0
    st.spar_onset = st.spar_onset * 0.0 + math.inf
    st.c = _drug_input(plan, prm, st.pred, st.spar_on, st.agent_effect)
    return st.t * 0.0 + _BIT.SPARING_ONSET


def flare(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    """A flare candidate: accepted with probability hazard now / largest hazard (so a
    patient on more treatment has a subset of the flares of the same patient on less);
    an accepted flare raises the fading drive to the flare's level (never lowers it)."""
    accept = st.flare_accept_u * plan.flare_max_rate_per_day < flare_hazard_per_day(
        xp, plan, prm, st
    )
    u = st.flare_level_u
    level = xp.ppf(plan.flare_dist, u)
    st.z = xp.where(accept, xp.maximum(st.z, level - prm.drive), st.z)
    st.flares = st.flares + accept
    st.flare_k = st.flare_k + 1
    _next_flare_candidate(xp, plan, prm, st)
    return accept * _BIT.FLARE


def infusion(xp: Ops, plan: Plan, prm: Params, st: State, fraction: Any = 1.0) -> tuple[Any, Any]:
    """One IVIG infusion day. Returns (flags, grams given).

    ``fraction`` < 1 gives a reduced dose (an infusion center short of IVIG,
    ``engines/center.py``): the grams, the IgG bolus and the adverse-event risk of the
    day scale with it; the saturation factor stays that of the planned cycle dose, so a
    reduced day never acts more than the full one."""
    n = st.ivig_given
    first_day = st.ivig_day_in_cycle == 0
    st.ivig_cycles = st.ivig_cycles + first_day
    st.cycle_start = xp.where(first_day, st.t, st.cycle_start)
    cycle = st.ivig_cycles - 1
    cycle_dose = xp.take(plan.cycle_doses, cycle)
    # 0 while on placebo; x * 1.0 is exact, so a full dose keeps its bits
    d = cycle_dose / plan.ivig_days_per_cycle * st.drug_active * fraction
    disc = st.disc_at_t  # exp(-discount_per_day * st.t)
    flags = st.t * 0.0
    stop = st.t < 0.0
    for j, ae in enumerate(plan.ivig_aes):
        p = ae.probability(xp, d, prm.risk_factor)
        u = xp.pick(xp.column(prm.ivig_ae_u, j), n)
        hit = u < p
        if ae.case_fatality > 0:
            fatal = xp.logical_and(u < p * ae.case_fatality, st.death_due == math.inf)
            st.death_due = xp.where(fatal, st.t, st.death_due)
            st.death_due_cause = xp.where(
                fatal, 3.0 + len(plan.steroid_aes) + j, st.death_due_cause
            )
        st.ivig_ae_n[j] = st.ivig_ae_n[j] + hit
        st.ivig_ae_disc[j] = st.ivig_ae_disc[j] + hit * disc
        flags = flags + hit * (1 << (IVIG_AE_SHIFT + j))
        if ae.stops_ivig:
            stop = xp.logical_or(stop, hit)
    fast, slow = pk.bolus(d, prm.igg_rise, plan.igg_fast_fraction)
    st.f = st.f + fast
    st.l = st.l + slow
    # Saturation in the cycle dose: the effective bolus of a cycle of D g/kg is scaled by
    # (D_ref + ED50) / (D + ED50), so a whole cycle's effect is an Emax curve in D that
    # equals the calibrated potency at the reference dose.
    sat = (plan.ivig_reference_dose + plan.ivig_ed50) / (cycle_dose + plan.ivig_ed50)
    st.fe = st.fe + fast * sat
    st.le = st.le + slow * sat
    grams = d * prm.weight_kg
    st.ivig_g = st.ivig_g + grams
    st.disc_ivig_g = st.disc_ivig_g + grams * disc
    st.disc_infusions = st.disc_infusions + disc
    st.ivig_given = n + 1
    st.last_infusion = st.t * 1.0
    day = st.ivig_day_in_cycle + 1
    cycle_done = day >= plan.ivig_days_per_cycle
    st.ivig_day_in_cycle = xp.where(cycle_done, 0, day)
    more = st.ivig_cycles < st.ivig_planned
    nxt = xp.where(
        cycle_done, xp.where(more, st.cycle_start + plan.ivig_interval_days, math.inf), st.t + 1.0
    )
    st.ivig_next = xp.where(stop, math.inf, nxt)
    st.ivig_stopped = xp.where(stop, 1.0, st.ivig_stopped)
    st.ivig_day_in_cycle = xp.where(stop, 0, st.ivig_day_in_cycle)
    return flags + stop * _BIT.IVIG_STOPPED, grams


def postpone_infusion(st: State, day: float) -> None:
    """The infusion due now happens on ``day`` instead (an infusion center had no chair
    or no IVIG for it). One patient (the center engine is a SimPy engine); the cycle's
    later days and the next cycle follow from the day it is actually given."""
    st.ivig_next = float(day)


def skip_infusion(plan: Plan, st: State, due_day: float) -> bool:
    """The infusion due now (first due on ``due_day``, patient clock) is not given, nor
    the rest of its cycle (an infusion center short of chairs or IVIG, policy ``skip``).
    A cycle not yet begun counts as one of the planned cycles (its slot passes) and the
    next falls ``interval_days`` after the slot, not after the day it was given up (which
    would stretch the schedule by the delay tried first); a cycle under way ends here.
    Returns whether a whole cycle was skipped. One patient."""
    whole = st.ivig_day_in_cycle == 0
    if whole:
        st.ivig_cycles = st.ivig_cycles + 1
        st.cycle_start = float(min(due_day, st.t))
    st.ivig_day_in_cycle = 0
    more = st.ivig_cycles < st.ivig_planned and st.ivig_stopped == 0
    st.ivig_next = st.cycle_start + plan.ivig_interval_days if more else math.inf
    return bool(whole)


def death(xp: Ops, plan: Plan, prm: Params, st: State) -> Any:
    """The patient dies: record when and of what, and cancel everything still planned."""
    cause = st.death_next_cause
    # Background or disease-related, in proportion to the two hazards now.
    from_hazard = xp.where(
        prm.death_cause_u * st.mort_rate < st.mort_bg,
        float(mortality.CAUSE_BACKGROUND),
        float(mortality.CAUSE_DISEASE),
    )
    cause = xp.where(cause == 0, from_hazard, cause)
    for j in range(len(plan.steroid_aes)):
        # the fatal adverse event (its first event) happens now: its own crossing time,
        # computed from the hazard at the last step's start rather than where the death
        # was scheduled, can differ by a rounding either way, or not be reached at all
        st.ae_time[j] = xp.where(cause == 3.0 + j, st.t, st.ae_time[j])
    st.death_day = st.t * 1.0
    st.death_cause = cause
    never = st.t * 0.0 + math.inf
    st.pulse_end = never
    st.spar_onset = never * 1.0
    st.flare_next = never * 1.0
    st.taper_next = never * 1.0
    st.ivig_next = never * 1.0
    st.death_next = never * 1.0
    st.visit_k = st.visit_k * 0 + len(plan.visit_days)
    return st.t * 0.0 + _BIT.DEATH


def handle(
    xp: Ops, plan: Plan, prm: Params, st: State, kind: int, fraction: Any = 1.0
) -> tuple[Any, tuple[Any, ...] | None, Any]:
    """Run the event ``kind`` (one kind for every patient given); ``fraction`` of the
    day's IVIG dose for an infusion (an infusion center short of IVIG).

    Returns (flags, visit values or None, grams of IVIG or NaN)."""
    nan = st.t * 0.0 + math.nan
    values = None
    grams = nan
    if kind == Event.VISIT:
        flags, values = visit(xp, plan, prm, st)
    elif kind == Event.INFUSION:
        flags, grams = infusion(xp, plan, prm, st, fraction)
    elif kind == Event.TAPER:
        flags = taper(xp, plan, prm, st)
    elif kind == Event.PULSE_END:
        flags = pulse_end(xp, plan, prm, st)
    elif kind == Event.SPARING_ONSET:
        flags = sparing_onset(xp, plan, prm, st)
    elif kind == Event.FLARE:
        flags = flare(xp, plan, prm, st)
    elif kind == Event.DEATH:
        return death(xp, plan, prm, st), None, nan
    else:
        flags = st.t * 0.0
    if kind != Event.FLARE and kind != Event.SPARING_ONSET:
        _schedule_death(xp, plan, prm, st)  # the dose or the hazard may have changed
    return flags, values, grams
