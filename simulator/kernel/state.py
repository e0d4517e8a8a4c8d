"""A patient's (or a cohort's) state between events: every field a float or an array.

Latent disease (``disease.py``): ``y`` log muscle inflammation, ``q`` log CPK excess,
``w`` log reversible weakness, ``x`` log extramuscular activity, ``z`` fading drive,
``f``/``l`` serum IgG excess (g/L), ``fe``/``le`` effective IgG, ``v`` IVIG effect
compartment, ``e`` steroid + sparing effect (1/day), ``j`` integral of ``y`` (log x day),
``c`` drug input (1/day); ``damage_points`` irreversible loss of MMT-8.
Treatment, clinic memory and outcome trackers follow; times are days, ``inf`` = never.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LIST_FIELDS", "State"]

LIST_FIELDS = ("t_le", "ae_hazard", "ae_time", "ivig_ae_n", "ivig_ae_disc")


class State:
    __slots__ = (
        # time and latent disease
        "t", "y", "q", "w", "x", "z", "f", "l", "fe", "le", "v", "e", "j", "c",
        "j_window", "damage_points",
        # treatment
        "pred", "oral_mg", "pulse_end", "rescue_pulses", "agent", "agent_effect",
        "spar_start", "spar_onset", "spar_on", "taper_next", "taper_hold", "taper_fast",
        "taper_not_before", "last_step", "steroid_stopped", "floor_since",
        "ivig_start", "ivig_next", "ivig_given", "ivig_day_in_cycle", "ivig_cycles",
        "ivig_planned", "cycle_start", "ivig_stopped", "ivig_rule_stopped", "ivig_g",
        "rescue",
        # flares
        "flare_k", "flare_time", "flare_level_u", "flare_accept_u", "flare_next",
        "flares",
        # what the clinic remembers
        "visit_k", "cpk_base", "cpk_prev", "ever_normal", "bio_ever_normal",
        "b_phga", "b_ptga", "b_mmt8", "b_haq", "b_cpkx", "b_myox", "b_ext",
        "best_mmt8", "best_phga", "inactive_since",
        # outcome trackers
        "first_normal", "first_relapse", "relapses", "relapses_on_steroid",
        "relapses_off_steroid", "last_relapse", "bio_relapses", "first_bio_relapse",
        "first_inactive", "ccr_day", "first_tis20", "first_tis40", "first_strength_normal",
        "cum_pred", "disc_pred", "disc_ivig_g", "disc_infusions",
        "t_le", "ae_hazard", "ae_time", "ivig_ae_n", "ivig_ae_disc",
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
