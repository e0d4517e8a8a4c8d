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

import numpy as np

__all__ = ["LIST_FIELDS", "State"]

LIST_FIELDS = ("t_le", "ae_hazard", "ae_time", "ivig_ae_n", "ivig_ae_disc")


class State:
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
        "disc_infusions",
        "disc_ivig_g",
        "disc_pred",
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
        "steroid_stopped",
        "t",
        "t_le",
        "taper_fast",
        "taper_hold",
        "taper_next",
        "taper_not_before",
        "unblind_day",
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

    def put(self, idx: np.ndarray, sub: State) -> None:
        for name in State.__slots__:
            v, s = getattr(self, name), getattr(sub, name)
            if isinstance(v, list):
                for a, b in zip(v, s, strict=True):
                    a[idx] = b
            else:
                v[idx] = s
