"""The only kernel module that reads a Scenario: compiles it once into constants.

A :class:`Plan` holds everything that is the same for every patient of a scenario (rates,
the cached exact propagator, compiled decision rules, the visit grid, adverse-event
models). Per-patient values and random draws are in ``params.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import fmath
from ..scenario.schema import Scenario, lognormal_sigma
from . import mortality
from .disease import Propagator, rate_node_values, shared_propagator
from .rules import RuleFn, compile_rule
from .safety import IvigAE, SteroidAE
from .xp import Ops

__all__ = ["MONTH_DAYS", "THRESHOLDS_MG", "Plan", "TaperBand", "make_plan", "visit_days"]

MONTH_DAYS = 28  # a "month" is 4 weeks throughout: day 84 is month 3 (IVIG every 4 weeks)
THRESHOLDS_MG = (7.5, 5.0)  # time to prednisone at or below these is tracked


def _ln2_over(half_life_days: float) -> float:
    return fmath.log(2.0) / half_life_days


@dataclass(frozen=True)
class TaperBand:
    above_mg: float
    reduce_mg: float
    every_days: float


# Up to this many patients, steroid adverse-event rates are looked up by dose band
# (measured: 3x faster at 200 patients, 2.6x slower at 10,000).
_LOOKUP_MAX = 4096


@dataclass(frozen=True)
class Plan:
    """Scenario-level constants, compiled once: the same for every patient."""

    horizon_days: float
    propagator: Propagator
    rate_per_day: np.ndarray
    cpk_uln: float
    myoglobin_uln: float
    cpk_sigma_log: float
    myoglobin_sigma_log: float
    core: Any
    mmt8_sd: float
    damage_threshold_log: float
    damage_rate: float
    damage_max: float
    ext_weights: tuple[float, float, float]
    inactive_phga: float
    inactive_ext: float
    inactive_cpk_x_uln: float
    relapse_cpk_x_uln: float
    relapse_mmt8_drop_pct: float
    relapse_phga_rise: float
    relapse_confirm: bool
    biochemical_x_uln: float
    flare_rate_per_day: float
    flare_factor: float
    flare_shortfall_cap: float
    flare_max_rate_per_day: float
    flare_dist: Any
    control_log: float
    emax: float
    ed50: float
    mp_to_pred: float
    igg_fast_fraction: float
    ivig_potency: float
    ivig_ed50: float
    ivig_reference_dose: float
    steroid_on: bool
    induction_days: float
    taper_bands: tuple[TaperBand, ...]
    floor_mg: float
    hold_rule: RuleFn | None
    fast_rule: RuleFn | None
    fast_factor: float
    stop_rule: RuleFn | None
    relapse_factor: float
    round_to_mg: float
    relapse_min_mg: float
    relapse_hold_days: float
    pulse_days: float
    pulse_mg: float
    rescue_pulse_rule: RuleFn | None
    ivig_on: bool
    ivig_placebo: bool
    ivig_days_per_cycle: int
    ivig_interval_days: float
    ivig_cycles: int
    ivig_max_cycles: int
    cycle_doses: tuple[float, ...]
    ivig_start_day: float
    rescue_rule: RuleFn | None
    rescue_delay_days: float
    ivig_stop_rule: RuleFn | None
    unblind_rule: RuleFn | None
    unblind_confirm: bool
    entry_rule: RuleFn | None
    entry_from_day: float
    entry_until_day: float
    ivig_extend_rule: RuleFn | None
    ivig_retreat_rule: RuleFn | None
    agents: tuple[str, ...]
    agent_onset_days: tuple[float, ...]
    agent_effect: tuple[float, ...]
    on_relapse_agent: int
    visit_days: np.ndarray
    visit_days_list: tuple[float, ...] = field(repr=False)
    steroid_aes: tuple[SteroidAE, ...]
    ivig_aes: tuple[IvigAE, ...]
    sparing_rule: RuleFn | None
    sparing_stop_rule: RuleFn | None
    discount_per_day: float
    complete_response_days: float
    course_type_days: float
    mortality_on: bool
    background_per_day: np.ndarray
    excess_per_day: float
    excess_lasting_fraction: float
    excess_log_hr_per_year_of_age: float
    excess_reference_age: float
    _ae_rate_cache: dict[float, tuple[float, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def steroid_ae_rates(self, xp: Ops, dose: Any) -> tuple[Any, ...]:
        """Hazard per day of each steroid adverse event at a dose (cached for one patient:
        a patient takes only a handful of distinct doses)."""
        if xp.vector and not xp.traced and np.size(dose) <= _LOOKUP_MAX:
            # Over a small cohort: each event's rate from its table by the number of
            # thresholds the dose reaches, counted once per set of thresholds (the same
            # bits). Over a large one the formula's few array operations are cheaper
            # than the search and the gather.
            out = []
            reached: dict[tuple[tuple[float, ...], bool], np.ndarray] = {}
            for ae in self.steroid_aes:
                table = ae.band_rates
                if table is None:
                    out.append(ae.rate(xp, dose))
                    continue
                key = (ae.thresholds_mg, ae.inclusive)
                m = reached.get(key)
                if m is None:
                    m = reached[key] = np.searchsorted(
                        np.asarray(ae.thresholds_mg),
                        dose,
                        side="right" if ae.inclusive else "left",
                    )
                    m[dose != dose] = 0  # NaN reaches no threshold
                out.append(table[m])
            return tuple(out)
        if xp.vector:
            return tuple(ae.rate(xp, dose) for ae in self.steroid_aes)
        cache = self._ae_rate_cache
        hit = cache.get(dose)
        if hit is None:
            hit = cache[dose] = tuple(ae.rate(xp, dose) for ae in self.steroid_aes)
        return hit

    @property
    def max_infusions(self) -> int:
        return self.ivig_max_cycles * self.ivig_days_per_cycle if self.ivig_on else 0


def visit_days(scn: Scenario) -> np.ndarray:
    """Lab visit days: the schedule plus every 4-week month day, up to the horizon."""
    v = scn.visits
    h = scn.horizon_days
    days = set(range(0, min(v.until_day, h) + 1, v.every_days))
    last = max(days)
    days.update(range(last + v.then_every_days, h + 1, v.then_every_days))
    days.update(range(0, h + 1, MONTH_DAYS))
    return np.array(sorted(days), dtype=np.float64)


def _rule(r: Any) -> RuleFn | None:
    """The compiled rule, carrying the scenario's rule it was compiled from (two plans'
    rules behave alike when those are equal: ``plan_symbols`` compares them)."""
    if r is None:
        return None
    fn = compile_rule(r)
    fn.rule = r  # type: ignore[attr-defined]
    return fn


def make_plan(scn: Scenario) -> Plan:
    dis, reg = scn.disease, scn.regimen
    act = dis.activity
    rates = rate_node_values(act.reversion_rate_per_day, act.reversion_rate_cv)
    ext = dis.extramuscular
    domains = (ext.skin, ext.lung, ext.dysphagia)  # the order of disease.DOMAINS
    propagator = Propagator(
        rates_per_day=rates,
        k_ck=_ln2_over(dis.enzymes.cpk_half_life_days),
        k_w=_ln2_over(dis.function.weakness_half_life_days),
        k_x=tuple(d.rate_per_day for d in domains),  # type: ignore[arg-type]
        k_b=_ln2_over(act.burnout_half_life_days),
        a_f=_ln2_over(dis.igg.fast_half_life_days),
        a_s=_ln2_over(dis.igg.slow_half_life_days),
        k_e=_ln2_over(dis.ivig.effect_half_life_days),
        k_c=_ln2_over(dis.steroid.onset_half_life_days),
        rho_f=dis.ivig.function_relative_effect,
        rho_x=tuple(d.ivig_relative_effect for d in domains),  # type: ignore[arg-type]
        sigma_x=tuple(d.steroid_relative_effect for d in domains),  # type: ignore[arg-type]
    )
    propagator = shared_propagator(propagator)  # the arms of a comparison share one
    agents = tuple(dis.sparing_agents)
    ivig = reg.ivig
    st = reg.steroid
    tp = reg.taper
    days = visit_days(scn)
    out = scn.outcomes
    return Plan(
        horizon_days=float(scn.horizon_days),
        propagator=propagator,
        rate_per_day=rates,
        cpk_uln=dis.enzymes.cpk_uln_u_per_l,
        myoglobin_uln=dis.enzymes.myoglobin_uln_ng_per_ml,
        cpk_sigma_log=lognormal_sigma(dis.enzymes.cpk_assay_cv),
        myoglobin_sigma_log=lognormal_sigma(dis.enzymes.myoglobin_assay_cv),
        core=dis.core_set,
        mmt8_sd=dis.function.mmt8_sd_points,
        damage_threshold_log=dis.function.damage_threshold_log,
        damage_rate=dis.function.damage_rate_per_log_day,
        damage_max=dis.function.max_damage_points,
        ext_weights=(ext.skin.weight, ext.lung.weight, ext.dysphagia.weight),
        inactive_phga=out.inactive.max_physician_global_cm,
        inactive_ext=out.inactive.max_extramuscular_cm,
        inactive_cpk_x_uln=out.inactive.max_cpk_x_uln,
        relapse_cpk_x_uln=out.relapse.cpk_x_uln,
        relapse_mmt8_drop_pct=out.relapse.mmt8_drop_pct_best,
        relapse_phga_rise=out.relapse.physician_global_rise_cm,
        relapse_confirm=out.relapse.confirm_at_next_visit,
        biochemical_x_uln=dis.enzymes.biochemical_relapse_x_uln,
        flare_rate_per_day=act.flare_rate_per_year / 365.25,
        flare_factor=act.flare_shortfall_factor,
        flare_shortfall_cap=act.flare_shortfall_cap_log,
        flare_max_rate_per_day=act.flare_rate_per_year
        / 365.25
        * fmath.exp(act.flare_shortfall_factor * act.flare_shortfall_cap_log),
        flare_dist=act.flare_setpoint_log,
        control_log=act.control_log_activity,
        emax=dis.steroid.emax_per_day,
        ed50=dis.steroid.ed50_mg_per_day,
        mp_to_pred=dis.steroid.methylprednisolone_to_prednisone,
        igg_fast_fraction=dis.igg.fast_fraction,
        ivig_potency=dis.ivig.effect_per_g_per_l_per_day,
        ivig_ed50=dis.ivig.ed50_g_per_kg_per_cycle,
        ivig_reference_dose=dis.ivig.reference_dose_g_per_kg,
        steroid_on=st is not None,
        induction_days=float(st.induction_days) if st else 0.0,
        taper_bands=tuple(
            TaperBand(s.above_mg_per_day, s.reduce_mg_per_day, float(s.every_days))
            for s in tp.steps
        ),
        floor_mg=tp.floor_mg_per_day if st else 0.0,
        hold_rule=_rule(tp.hold_when),
        fast_rule=_rule(tp.fast_when),
        fast_factor=tp.fast_factor,
        stop_rule=_rule(tp.stop_when),
        relapse_factor=tp.relapse.dose_factor,
        round_to_mg=st.round_to_mg if st else 5.0,
        relapse_min_mg=tp.relapse.min_mg_per_day,
        relapse_hold_days=float(tp.relapse.hold_days),
        pulse_days=float(st.pulse.days) if st and st.pulse else 3.0,
        pulse_mg=(st.pulse.methylprednisolone_mg_per_day if st and st.pulse else 1000.0)
        * dis.steroid.methylprednisolone_to_prednisone,
        rescue_pulse_rule=_rule(st.rescue_pulse_when) if st else None,
        ivig_on=ivig is not None,
        ivig_placebo=bool(ivig.placebo) if ivig else False,
        ivig_days_per_cycle=ivig.days_per_cycle if ivig else 1,
        ivig_interval_days=float(ivig.interval_days) if ivig else 0.0,
        ivig_cycles=ivig.cycles if ivig else 0,
        ivig_max_cycles=ivig.possible_cycles() if ivig else 0,
        cycle_doses=ivig.cycle_doses() if ivig else (),
        ivig_start_day=(
            float(ivig.start_day) if ivig is not None and ivig.start_day is not None else math.inf
        ),
        rescue_rule=_rule(ivig.start_when) if ivig else None,
        rescue_delay_days=ivig.start_delay_days if ivig else 0.0,
        ivig_stop_rule=_rule(ivig.stop_when) if ivig else None,
        unblind_rule=_rule(ivig.unblind_when) if ivig and ivig.placebo else None,
        unblind_confirm=bool(ivig and ivig.placebo and ivig.unblind_confirm_at_next_visit),
        entry_rule=_rule(scn.entry.when) if scn.entry else None,
        entry_from_day=float(scn.entry.from_day) if scn.entry else 0.0,
        entry_until_day=float(scn.entry.until_day) if scn.entry else -1.0,
        ivig_extend_rule=_rule(ivig.extend_when) if ivig else None,
        ivig_retreat_rule=_rule(ivig.retreat_when) if ivig else None,
        agents=agents,
        agent_onset_days=tuple(dis.sparing_agents[a].onset_delay_days for a in agents),
        agent_effect=tuple(dis.sparing_agents[a].effect_per_day for a in agents),
        on_relapse_agent=(agents.index(reg.sparing_on_relapse) if reg.sparing_on_relapse else -1),
        visit_days=days,
        visit_days_list=(*tuple(float(d) for d in days), math.inf),
        steroid_aes=tuple(
            SteroidAE(
                name,
                ae.baseline_per_year / 365.25,
                tuple(ae.dose_thresholds_mg_per_day),
                tuple(ae.relative_risk),
                ae.case_fatality,
                ae.thresholds_inclusive,
            )
            for name, ae in scn.safety.steroid.items()
        ),
        ivig_aes=tuple(
            IvigAE(
                name,
                hazard_per_g_per_kg=-fmath.log1p(-min(ae.p_per_cycle, 1 - 1e-15))
                / ae.reference_dose_g_per_kg,
                daily_dose_exponent=ae.daily_dose_exponent,
                reference_daily_dose_g_per_kg=ae.reference_daily_dose_g_per_kg,
                risk_factor_multiplier=ae.risk_factor_multiplier,
                stops_ivig=ae.stops_ivig,
                case_fatality=ae.case_fatality,
            )
            for name, ae in scn.safety.ivig.items()
        ),
        sparing_rule=_rule(reg.sparing_start_when),
        sparing_stop_rule=_rule(reg.sparing_stop_when),
        discount_per_day=fmath.log1p(scn.economics.discount_rate_per_year) / 365.25,
        complete_response_days=float(out.complete_response_days),
        course_type_days=float(out.course_type_days),
        **_mortality(scn),
    )


def _mortality(scn: Scenario) -> dict[str, Any]:
    mo = scn.disease.mortality
    table = mo.life_table
    if table is None:
        bg = mortality.background_table([0.0], [0.0])
    elif isinstance(table, str):
        bg = mortality.background_table(*mortality.load_life_table(table))
    else:
        bg = mortality.background_table(table.male_mx, table.female_mx)
    fatal_aes = any(ae.case_fatality > 0 for ae in scn.safety.ivig.values()) or any(
        ae.case_fatality > 0 for ae in scn.safety.steroid.values()
    )
    return dict(
        mortality_on=bool(bg.any() or mo.excess_per_year > 0 or fatal_aes),
        background_per_day=bg,
        excess_per_day=mo.excess_per_year / 365.25,
        excess_lasting_fraction=mo.lasting_fraction,
        excess_log_hr_per_year_of_age=mortality.excess_log_age_factor(mo.hazard_ratio_per_decade),
        excess_reference_age=mo.reference_age_years,
    )
