"""A patient's (or a cohort's) state between events: every field a float or an array.

Latent disease (``disease.py``): ``y`` log muscle inflammation, ``q`` log CPK excess,
``w`` log reversible weakness, ``xs``/``xl``/``xd`` log activity of the extramuscular
domains (skin, lung, swallowing), ``z`` fading drive,
``f``/``l`` serum IgG excess (g/L), ``fe``/``le`` effective IgG, ``v`` IVIG effect
compartment, ``e`` steroid + sparing effect (1/day), ``j`` integral of ``y`` (log x day),
``c`` drug input (1/day); ``damage_points`` irreversible loss of MMT-8.
Mortality (``mortality.py``): ``mort_h`` cumulative hazard, ``mort_rate`` / ``mort_bg``
its current rate per day (all / background), ``death_next`` the scheduled death.
Treatment, clinic memory and outcome trackers; times are days, ``inf`` = never.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np

__all__ = ["LIST_FIELDS", "State", "Value"]

#: One state quantity: a float for one patient (the SimPy engine) or a float64 array over
#: the patients of a cohort (the cohort engine); the kernel's functions take either.
Value: TypeAlias = Any

LIST_FIELDS = ("t_le", "ae_hazard", "ae_time", "ivig_ae_n", "ivig_ae_disc")


class State:
    ae_hazard: list[Value]
    ae_time: list[Value]
    agent: Value
    agent_effect: Value
    b_cpkx: Value
    b_ext: Value
    b_haq: Value
    b_mmt8: Value
    b_myox: Value
    b_phga: Value
    b_ptga: Value
    best_mmt8: Value
    best_phga: Value
    bio_ever_normal: Value
    bio_relapses: Value
    c: Value
    ccr_day: Value
    cpk_base: Value
    cpk_prev: Value
    cum_pred: Value
    cycle_start: Value
    damage_points: Value
    death_cause: Value
    death_day: Value
    death_due: Value
    death_due_cause: Value
    death_next: Value
    death_next_cause: Value
    disc_at_t: Value  # exp(-discount_per_day * t), kept so that a step computes one exp
    disc_infusions: Value
    disc_ivig_g: Value
    disc_pred: Value  # oral prednisone mg, discounted (pulse days excluded)
    disc_pulse_days: Value  # days on a methylprednisolone pulse, discounted
    drug_active: Value
    e: Value
    entry_day: Value
    ever_normal: Value
    f: Value
    fe: Value
    first_bio_relapse: Value
    first_inactive: Value
    first_normal: Value
    first_relapse: Value
    first_strength_normal: Value
    first_tis20: Value
    first_tis40: Value
    flare_accept_u: Value
    flare_k: Value
    flare_level_u: Value
    flare_next: Value
    flare_time: Value
    flares: Value
    floor_since: Value
    inactive_since: Value
    ivig_ae_disc: list[Value]
    ivig_ae_n: list[Value]
    ivig_cycles: Value
    ivig_day_in_cycle: Value
    ivig_g: Value
    ivig_given: Value
    ivig_next: Value
    ivig_planned: Value
    ivig_rule_stopped: Value
    ivig_start: Value
    ivig_stopped: Value
    j: Value
    j_window: Value
    l: Value  # noqa: E741  (serum IgG, slow phase: the model's own name)
    last_infusion: Value
    last_relapse: Value
    last_step: Value
    le: Value
    mort_bg: Value
    mort_h: Value
    mort_rate: Value
    oral_mg: Value
    pred: Value
    pulse_end: Value
    q: Value
    relapse_pending: Value
    relapses: Value
    relapses_off_steroid: Value
    relapses_on_steroid: Value
    rescue: Value
    rescue_pulses: Value
    spar_on: Value
    spar_onset: Value
    spar_start: Value
    spar_stop: Value
    steroid_stopped: Value
    t: Value
    t_le: list[Value]
    taper_fast: Value
    taper_hold: Value
    taper_next: Value
    taper_not_before: Value
    unblind_day: Value
    unblind_pending: Value
    v: Value
    visit_k: Value
    w: Value
    xd: Value
    xl: Value
    xs: Value
    y: Value
    z: Value

    __slots__ = (
        "ae_hazard",
        "ae_time",
        "agent",
        "agent_effect",
        "b_cpkx",
        "b_ext",
        "b_haq",
        "b_mmt8",
        "b_myox",
        "b_phga",
        "b_ptga",
        "best_mmt8",
        "best_phga",
        "bio_ever_normal",
        "bio_relapses",
        "c",
        "ccr_day",
        "cpk_base",
        "cpk_prev",
        "cum_pred",
        "cycle_start",
        "damage_points",
        "death_cause",
        "death_day",
        "death_due",
        "death_due_cause",
        "death_next",
        "death_next_cause",
        "disc_at_t",
        "disc_infusions",
        "disc_ivig_g",
        "disc_pred",
        "disc_pulse_days",
        "drug_active",
        "e",
        "entry_day",
        "ever_normal",
        "f",
        "fe",
        "first_bio_relapse",
        "first_inactive",
        "first_normal",
        "first_relapse",
        "first_strength_normal",
        "first_tis20",
        "first_tis40",
        "flare_accept_u",
        "flare_k",
        "flare_level_u",
        "flare_next",
        "flare_time",
        "flares",
        "floor_since",
        "inactive_since",
        "ivig_ae_disc",
        "ivig_ae_n",
        "ivig_cycles",
        "ivig_day_in_cycle",
        "ivig_g",
        "ivig_given",
        "ivig_next",
        "ivig_planned",
        "ivig_rule_stopped",
        "ivig_start",
        "ivig_stopped",
        "j",
        "j_window",
        "l",
        "last_infusion",
        "last_relapse",
        "last_step",
        "le",
        "mort_bg",
        "mort_h",
        "mort_rate",
        "oral_mg",
        "pred",
        "pulse_end",
        "q",
        "relapse_pending",
        "relapses",
        "relapses_off_steroid",
        "relapses_on_steroid",
        "rescue",
        "rescue_pulses",
        "spar_on",
        "spar_onset",
        "spar_start",
        "spar_stop",
        "steroid_stopped",
        "t",
        "t_le",
        "taper_fast",
        "taper_hold",
        "taper_next",
        "taper_not_before",
        "unblind_day",
        "unblind_pending",
        "v",
        "visit_k",
        "w",
        "xd",
        "xl",
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

    def put_rows(self, idx: np.ndarray, src: State, rows: np.ndarray) -> None:
        """``put(idx, src.take(rows))`` without the intermediate copy."""
        for name in State.__slots__:
            v, s = getattr(self, name), getattr(src, name)
            if isinstance(v, list):
                for a, b in zip(v, s, strict=True):
                    a[idx] = b[rows]
            else:
                v[idx] = s[rows]

    def put(self, idx: np.ndarray, sub: State) -> None:
        for name in State.__slots__:
            v, s = getattr(self, name), getattr(sub, name)
            if isinstance(v, list):
                for a, b in zip(v, s, strict=True):
                    a[idx] = b
            else:
                v[idx] = s
