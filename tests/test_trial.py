"""Study entry, placebo and the switch to open-label IVIG (scenario ``entry``,
``regimen.ivig.placebo`` and ``unblind_when``), on the trial-like pair of
scenarios/studies/trial_ivig.yaml and trial_placebo.yaml."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import SCENARIOS

from simulator.engines import cohort
from simulator.kernel.events import Event, Flag
from simulator.kernel.plan import MONTH_DAYS, make_plan
from simulator.outcomes import patient_table
from simulator.scenario import load_scenario

N = 400
TRIAL = SCENARIOS / "studies" / "trial_ivig.yaml"
PLACEBO = SCENARIOS / "studies" / "trial_placebo.yaml"


@pytest.fixture(scope="module")
def arms():
    out = {}
    for name, path in (("ivig", TRIAL), ("placebo", PLACEBO)):
        scn = load_scenario(path)
        plan = make_plan(scn)
        res = cohort.run_chunk(scn, plan, 3, np.arange(N), events=True)
        out[name] = (scn, plan, res, patient_table(res, plan, scn))
    return out


def test_entry_is_at_a_4_weekly_visit_in_the_window_where_the_rule_fires(arms):
    scn, plan, res, _table = arms["ivig"]
    entry = res.outcomes["entry_day"]
    entered = np.isfinite(entry)
    assert 0.2 < entered.mean() < 1.0
    assert np.all(entry[entered] % MONTH_DAYS == 0)
    assert np.all((entry[entered] >= scn.entry.from_day) & (entry[entered] <= scn.entry.until_day))
    days = plan.visit_days
    for i in np.flatnonzero(entered)[:50]:
        j = int(np.flatnonzero(days == entry[i])[0])
        assert res.visits["tis"][i, j] == 0.0  # the entry visit is the TIS baseline
        assert res.visits["mmt8"][i, j] < 142
        assert res.visit_prednisone[i, j] <= 20
        assert res.visits["inactive"][i, j] == 0
        assert res.visit_flags[i, j] & Flag.ENTRY
        assert not np.any(res.visit_flags[i, :j] & Flag.ENTRY)


def test_both_arms_enter_the_same_patients_on_the_same_day(arms):
    a = arms["ivig"][2].outcomes["entry_day"]
    b = arms["placebo"][2].outcomes["entry_day"]
    np.testing.assert_array_equal(a, b)


def test_ivig_starts_at_entry_and_placebo_infusions_carry_no_drug(arms):
    _, _, res, _ = arms["ivig"]
    ev = res.events
    for i in np.flatnonzero(np.isfinite(res.outcomes["entry_day"]))[:30]:
        inf = ev.day[(ev.patient == i) & (ev.kind == Event.INFUSION)]
        assert inf[0] == res.outcomes["entry_day"][i]
        assert inf.size == 4 * 5 or res.outcomes["ivig_stopped"][i]
    _, _, pres, _ = arms["placebo"]
    pev = pres.events
    never = ~np.isfinite(pres.outcomes["unblind_day"])
    grams = pev.value[pev.kind == Event.INFUSION]
    assert np.all(
        grams[np.isin(pev.patient[pev.kind == Event.INFUSION], np.flatnonzero(never))] == 0
    )


def test_tis_from_entry_is_higher_with_ivig_than_with_placebo(arms):
    a = arms["ivig"][3]["tis_week_16_from_entry"]
    b = arms["placebo"][3]["tis_week_16_from_entry"]
    # the same patients enter in both arms; a few die before week 16 in one arm only
    ok = ~np.isnan(a) & ~np.isnan(b)
    assert ok.sum() >= 0.9 * max((~np.isnan(a)).sum(), (~np.isnan(b)).sum())
    d = a[ok] - b[ok]
    assert d.mean() > 4 * d.std(ddof=1) / np.sqrt(d.size)


def test_unblinding_switches_a_placebo_patient_to_real_ivig():
    """An always-firing unblind rule: from the first visit after entry, infusions carry
    drug."""
    scn = load_scenario(PLACEBO, ['regimen.ivig.unblind_when={"above": {"days_since_entry": 0}}'])
    plan = make_plan(scn)
    res = cohort.run_chunk(scn, plan, 3, np.arange(60), events=True)
    ev = res.events
    switched = np.flatnonzero(np.isfinite(res.outcomes["unblind_day"]))
    assert switched.size > 0
    for i in switched[:10]:
        m = (ev.patient == i) & (ev.kind == Event.INFUSION)
        days, grams = ev.day[m], ev.value[m]
        u = res.outcomes["unblind_day"][i]
        assert np.all(grams[days < u] == 0) and np.all(grams[days >= u] > 0)


@pytest.mark.parametrize(
    "sets, message",
    [
        (["entry.until_day=2000"], "entry.until_day (2000) is after the horizon"),
        (["entry.from_day=700", "entry.until_day=600"], "until_day (600) is before from_day"),
        (['entry.when={"above": {"days_since_entri": 1}}'], "did you mean 'days_since_entry'"),
    ],
)
def test_bad_entry_is_an_input_error(tmp_path, sets, message):
    args = [x for s in sets for x in ("--set", s)]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            str(TRIAL),
            *args,
            "--patients",
            "5",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_confirmed_relapses_need_the_criteria_at_two_visits_in_a_row():
    scn = load_scenario(
        SCENARIOS / "steroid_only.yaml", ["outcomes.relapse.confirm_at_next_visit=true"]
    )
    plan = make_plan(scn)
    res = cohort.run_chunk(scn, plan, 5, np.arange(N))
    flags = res.visit_flags
    rel = (flags & Flag.RELAPSE) > 0
    i, j = np.nonzero(rel)
    assert i.size > 0
    assert np.all(j > 0)
    cpkx_prev = res.visits["cpk"][i, j - 1] / plan.cpk_uln
    assert np.all(cpkx_prev > plan.relapse_cpk_x_uln)
    plain = load_scenario(SCENARIOS / "steroid_only.yaml")
    res0 = cohort.run_chunk(plain, make_plan(plain), 5, np.arange(N))
    assert rel.any(axis=1).mean() < ((res0.visit_flags & Flag.RELAPSE) > 0).any(axis=1).mean()


def _first_firing_after_entry(res, plan, fires, confirmed):
    """The day of the first visit after entry where ``fires`` (patients x visits) holds,
    or holds at that visit and the one before it (confirmed); inf where never."""
    days = plan.visit_days
    out = np.full(fires.shape[0], np.inf)
    entry = res.outcomes["entry_day"]
    for i in np.flatnonzero(np.isfinite(entry)):
        e = int(np.flatnonzero(days == entry[i])[0])
        for j in range(e + 1, days.size):
            if fires[i, j] and (not confirmed or (j - 1 > e and fires[i, j - 1])):
                out[i] = days[j]
                break
    return out


def _at_entry(res, plan, name):
    days = plan.visit_days
    base = np.full(res.n, np.nan)
    entry = res.outcomes["entry_day"]
    ok = np.isfinite(entry)
    base[ok] = res.visits[name][ok, np.searchsorted(days, entry[ok])]
    return base[:, None]


WORSE = {
    # each rule, and the same condition recomputed from the recorded visits against the
    # entry visit
    "physician_global_above_baseline_cm": lambda v, b: (
        v["physician_global"] - b("physician_global") >= 2
    ),
    "mmt8_below_baseline_pct": lambda v, b: 100 * (b("mmt8") - v["mmt8"]) / b("mmt8") >= 20,
    "extramuscular_above_baseline_cm": lambda v, b: v["extramuscular"] - b("extramuscular") >= 2,
    "core_set_worse_30pct": lambda v, b: (
        sum(
            ((v[m] - b(m)) * sign >= 0.3 * b(m)) & ((v[m] - b(m)) * sign > 0)
            for m, sign in (
                ("physician_global", 1),
                ("patient_global", 1),
                ("extramuscular", 1),
                ("haq", 1),
                ("mmt8", -1),
            )
        )
        >= 2
    ),
}


@pytest.mark.parametrize("confirmed", [False, True])
@pytest.mark.parametrize("measure", sorted(WORSE))
def test_deterioration_measures_read_the_core_set_against_the_entry_visit(measure, confirmed):
    """A switch rule on one of ProDERM's deterioration measures switches each placebo
    patient at the first visit after entry where the condition, recomputed from the
    recorded visits against the entry visit, holds (at two visits in a row if
    confirmed)."""
    threshold = 2 if measure != "mmt8_below_baseline_pct" else 20
    scn = load_scenario(
        PLACEBO,
        [
            f'regimen.ivig.unblind_when={{"at_least": {{"{measure}": {threshold}}}}}',
            f"regimen.ivig.unblind_confirm_at_next_visit={str(confirmed).lower()}",
        ],
    )
    plan = make_plan(scn)
    res = cohort.run_chunk(scn, plan, 5, np.arange(N))
    with np.errstate(invalid="ignore", divide="ignore"):
        fires = WORSE[measure](res.visits, lambda name: _at_entry(res, plan, name))
    want = _first_firing_after_entry(res, plan, np.asarray(fires, dtype=bool), confirmed)
    np.testing.assert_array_equal(res.outcomes["unblind_day"], want)
    assert np.isfinite(want).sum() >= 5  # the rule fires for some patients


def test_a_confirmed_switch_is_made_at_the_second_of_two_visits_in_a_row():
    scn = load_scenario(
        PLACEBO,
        [
            'regimen.ivig.unblind_when={"above": {"days_since_entry": 0}}',
            "regimen.ivig.unblind_confirm_at_next_visit=true",
        ],
    )
    plan = make_plan(scn)
    res = cohort.run_chunk(scn, plan, 3, np.arange(60))
    switched = np.isfinite(res.outcomes["unblind_day"])
    assert switched.sum() > 0
    entry = res.outcomes["entry_day"][switched]
    np.testing.assert_array_equal(res.outcomes["unblind_day"][switched], entry + 56)
