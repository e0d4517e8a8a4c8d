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
import pytest
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


@pytest.mark.parametrize(
    "low, high, n",
    [
        # 4,000 patients: the known violation is then ~5 SE, so the strict xfail is not a
        # coin toss at the 4-SE tolerance (at 1,500 it sits at ~3.4 SE)
        pytest.param(
            1.0,
            2.0,
            4000,
            marks=pytest.mark.xfail(
                strict=True,
                reason=(
                    "not met: 1 -> 2 g/kg raises clinical relapse by 1.1 points (SE 0.23,"
                    " 4000 pts): more IVIG brings more patients to a normal CPK, which a"
                    " relapse requires, and to a faster taper, and the IVIG effect wears off"
                    " after the sixth cycle"
                ),
            ),
        ),
        (2.0, 4.0, N),
    ],
)
def test_a_higher_ivig_dose_never_raises_relapse(low, high, n):
    a = scn("first_line.yaml", f"regimen.ivig.dose_g_per_kg={low}")
    b = scn("first_line.yaml", f"regimen.ivig.dose_g_per_kg={high}")
    diff, se = paired(a, b, "relapse", n)
    assert diff < 4 * se


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
