"""Metamorphic tests of the clinical model on common random numbers.

Each test runs two versions of a strategy on the same virtual patients (same seed, same
patient ids, so the same baselines and luck) and checks a relation that must hold whatever
the parameters: more treatment never makes the cohort worse on average. Cohort relations
are judged on the paired difference with a tolerance of 4 paired standard errors (Monte
Carlo error), so they hold for almost any seed.

Deaths are switched off (``NO_DEATHS``): death ends follow-up at different times in the
two versions, and these relations are about the course of the disease under treatment;
tests/test_mortality.py checks the relations of deaths on common random numbers.
"""

from __future__ import annotations

import numpy as np
from conftest import NO_DEATHS, SCENARIOS

from simulator.comparison import compare
from simulator.engines import cohort
from simulator.kernel.plan import make_plan
from simulator.scenario import load_scenario

N = 1500
SEED = 17
Z = 1.959963984540054


def scn(path: str, *sets: str):
    return load_scenario(SCENARIOS / path, [*NO_DEATHS, *sets])


def paired(a, b, outcome: str, n: int = N) -> tuple[float, float]:
    """(mean of b - a, its standard error) over the same patients."""
    d = compare(
        [a, b], names=["a", "b"], patients=n, seed=SEED, engine="cohort", progress=False
    ).outcomes()[outcome]["differences"]["b"]
    lo, hi = d["ci95"]
    return d["mean_difference"], (hi - lo) / (2 * Z)


def visits(s, n=N):
    plan = make_plan(s)
    return cohort.run_chunk(s, plan, SEED, np.arange(n))


def test_removing_ivig_never_lowers_the_mean_activity_of_the_cohort():
    """Mean physician global activity over every visit: without IVIG >= with IVIG."""
    with_ivig = visits(scn("first_line.yaml"))
    without = visits(scn("first_line.yaml", "regimen.ivig=null"))
    a = np.nanmean(with_ivig.visits["physician_global"], axis=1)
    b = np.nanmean(without.visits["physician_global"], axis=1)
    d = b - a
    assert d.mean() > -4 * d.std(ddof=1) / np.sqrt(d.size)
    assert d.mean() > 0  # and IVIG does lower it here


def test_a_faster_taper_never_lowers_relapse():
    slow = scn("steroid_only.yaml", "regimen.taper.fast_when=null")
    fast = scn("steroid_only.yaml", "regimen.taper.fast_factor=0.25")
    diff, se = paired(slow, fast, "relapse")
    assert diff > -4 * se


def test_adding_an_immunosuppressant_never_raises_relapse():
    without = scn("steroid_only.yaml")
    with_mtx = scn(
        "steroid_only.yaml",
        "regimen.sparing_agents=[{agent: methotrexate, share: 1.0, start_day: 0}]",
    )
    diff, se = paired(without, with_mtx, "relapse")
    assert diff < 4 * se


def test_a_higher_ivig_dose_never_raises_relapse():
    a = scn("first_line.yaml", "regimen.ivig.dose_g_per_kg=2.0")
    b = scn("first_line.yaml", "regimen.ivig.dose_g_per_kg=4.0")
    diff, se = paired(a, b, "relapse")
    assert diff < 4 * se


# The relation fails from 1 to 2 g/kg (docs/model.md section 6, "A metamorphic relation
# not met"): relapse rises by 1.1 points (SE 0.23; 4,000 patients, seed 17). A strict
# expected failure of the 4-SE check above was not a test of that: the rise sits only ~1
# SE above the 4-SE line, so the check passed, and the strict xfail failed, at 6 of 41
# seeds (seed 17 and 100-139: rises of 0.37-1.82 points, mean 1.19, sd 0.29).
DOCUMENTED_RISE, DOCUMENTED_SE = 0.011, 0.0023


def test_one_to_two_g_per_kg_raises_relapse_as_documented():
    """The documented violation is still there, and of the documented size: the rise is
    above 0 (it is ~5 SE above it, so this holds for almost any seed; a change that
    removes the violation fails here, and docs/model.md must then say so), and within 4
    standard errors of the difference between this estimate and the documented one."""
    a = scn("first_line.yaml", "regimen.ivig.dose_g_per_kg=1.0")
    b = scn("first_line.yaml", "regimen.ivig.dose_g_per_kg=2.0")
    diff, se = paired(a, b, "relapse", 4000)
    assert diff > 0, f"1 -> 2 g/kg no longer raises relapse ({diff:+.4f}): update the docs"
    assert abs(diff - DOCUMENTED_RISE) < 4 * np.hypot(se, DOCUMENTED_SE), (diff, se)


def test_a_patient_under_full_treatment_never_ends_above_the_same_patient_untreated():
    """Full treatment: induction dose for the whole horizon, IVIG and methotrexate from
    day 0. Each patient's last CPK (same assay luck in both arms) is at most the untreated
    value, patient by patient."""
    full = scn(
        "first_line.yaml",
        "regimen.steroid.induction_days=728",
        "regimen.sparing_agents=[{agent: methotrexate, share: 1.0, start_day: 0}]",
    )
    untreated = scn("studies/untreated.yaml")
    a = visits(full).visits["cpk"][:, -1]
    b = visits(untreated).visits["cpk"][:, -1]
    assert np.all(a <= b * (1 + 1e-12)), np.flatnonzero(a > b)[:10]


def test_remission_off_therapy_counts_only_time_after_the_last_infusion():
    """IVIG every 4 weeks for 24 cycles from day 0, no steroids: the last infusion is on
    day 648, so no patient can be 6 months off all therapy within 728 days."""
    from simulator.outcomes import patient_table

    s = scn("ivig_monotherapy.yaml", "regimen.ivig.cycles=24")
    plan = make_plan(s)
    res = cohort.run_chunk(s, plan, SEED, np.arange(300))
    table = patient_table(res, plan, s)
    full_course = res.outcomes["ivig_stopped"] == 0  # not stopped by an adverse event
    assert np.all(res.outcomes["last_infusion_day"][full_course] >= 644)
    assert table["remission_off_therapy"][full_course].sum() == 0
    # and the same patients without IVIG after the sixth cycle can get there
    short = scn("ivig_monotherapy.yaml", "regimen.sparing_on_relapse=null")
    plan = make_plan(short)
    res = cohort.run_chunk(short, plan, SEED, np.arange(300))
    assert patient_table(res, plan, short)["remission_off_therapy"].sum() > 0
