"""Deaths (docs/model.md §2.8): background mortality from the life table, the
disease-related excess hazard, fatal adverse events, and what death does to the rest."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import SCENARIOS

from simulator.engines import cohort, des
from simulator.kernel import mortality
from simulator.kernel.events import Event
from simulator.kernel.plan import MONTH_DAYS, make_plan
from simulator.outcomes import patient_table
from simulator.runner import run
from simulator.scenario import load_scenario
from simulator.scenario.disease import LIFE_TABLES

UNTREATED = SCENARIOS / "studies" / "untreated.yaml"
NO_FATAL_AES = [
    "safety.steroid.serious_infection.case_fatality=0",
    "safety.ivig.thromboembolism.case_fatality=0",
]


def test_packaged_life_table_is_whole_and_plausible():
    for name in LIFE_TABLES:
        male, female = mortality.load_life_table(name)
        assert len(male) == len(female) == mortality.MAX_AGE + 1
        assert all(0 < v < 2 for v in male + female)
        # the shape every human life table has: lowest around age 10, rising after 30,
        # men above women in middle age
        assert min(male) == min(male[5:15])
        assert all(male[a + 10] > male[a] for a in range(30, 100, 10))
        assert male[50] > female[50]


def test_a_short_inline_table_holds_its_last_rate_for_older_ages():
    table = mortality.background_table([0.01, 0.02], [0.03])
    assert table.shape == (2, mortality.MAX_AGE + 1)
    assert table[0, 0] == pytest.approx(0.01 / 365.25)
    assert table[0, 90] == pytest.approx(0.02 / 365.25)
    assert table[1, 5] == pytest.approx(0.03 / 365.25)


def test_background_survival_follows_the_life_table():
    """Background deaths only, everyone 80 years old and female: the proportion alive at
    each year is the life table's survival over 4-week windows (the hazard is set for each
    window from the age at its start), within Monte Carlo error."""
    n = 6000
    scn = load_scenario(
        UNTREATED,
        [
            "disease.mortality.excess_per_year=0",
            *NO_FATAL_AES,
            "horizon_days=1100",
            "population.age_years=80",
            "population.female=1",
        ],
    )
    res = run(scn, patients=n, seed=3, engine="cohort", progress=False)
    _, female = mortality.load_life_table("hmd_usa_2019")
    for k, day in ((1, 365), (2, 731), (3, 1096)):
        hazard = 0.0
        for start in range(0, day, MONTH_DAYS):
            age = 80 + start / 365.25
            hazard += female[math.floor(age)] / 365.25 * min(MONTH_DAYS, day - start)
        expected = math.exp(-hazard)
        got = res.metrics[f"alive_year_{k}"]["mean"]
        se = math.sqrt(expected * (1 - expected) / n)
        assert abs(got - expected) < 4 * se, (k, got, expected, se)
    assert res.metrics["death_disease"]["mean"] == 0.0
    assert res.metrics["death_background"]["mean"] == res.metrics["died"]["mean"] > 0.1


def test_no_life_table_no_excess_no_fatal_events_nobody_dies():
    scn = load_scenario(
        SCENARIOS / "first_line.yaml",
        ["disease.mortality.life_table=null", "disease.mortality.excess_per_year=0", *NO_FATAL_AES],
    )
    assert not make_plan(scn).mortality_on
    res = run(scn, patients=300, seed=1, engine="cohort", progress=False)
    assert res.metrics["died"]["mean"] == 0.0
    assert res.metrics["life_years"]["mean"] == pytest.approx(728 / 365.25)


def _chunk(overrides, n=300, seed=2, engine=cohort, path=SCENARIOS / "first_line.yaml"):
    scn = load_scenario(path, overrides)
    plan = make_plan(scn)
    return scn, plan, engine.run_chunk(scn, plan, seed, np.arange(n), events=True)


def test_nothing_happens_after_death_and_follow_up_stops_there():
    scn, plan, res = _chunk(["disease.mortality.excess_per_year=3"])
    death = res.outcomes["death_day"]
    dead = np.flatnonzero(death <= plan.horizon_days)
    assert dead.size > 30
    log = res.events
    for i in dead:
        mine = log.patient == i
        assert log.kind[mine][-1] == Event.DEATH
        assert log.day[mine][-1] == death[i]
        assert np.all(log.day[mine] <= death[i])
        # visits after death were never made
        after = plan.visit_days > death[i]
        assert np.all(np.isnan(res.visits["cpk"][i, after]))
        assert not np.any(np.isnan(res.visits["cpk"][i, ~after]))
    table = patient_table(res, plan, scn)
    d = plan.discount_per_day
    price = scn.economics.prices.visit
    for i in dead[:10]:
        seen = plan.visit_days[plan.visit_days <= death[i]]
        assert table["cost_visits"][i] == pytest.approx(price * np.exp(-d * seen).sum())
        assert table["life_years"][i] == pytest.approx(death[i] / 365.25)
        # QALYs accrue only while alive: at most one per year lived
        assert table["qaly"][i] <= death[i] / 365.25 + 1e-9
        assert np.isnan(table["last_visit_remission"][i])
    # time-to-event outcomes of the dead are censored at their last whole day alive
    for col, seen in (
        ("time_to_inactive_days", "inactive_reached"),
        ("time_to_first_relapse_days", "relapse_observed"),
    ):
        open_ = table[seen][dead] == 0
        assert np.all(table[col][dead][open_] <= np.floor(death[dead][open_]))


def test_engines_agree_with_many_deaths_of_every_cause():
    overrides = [
        "disease.mortality.excess_per_year=2",
        "safety.ivig.thromboembolism.p_per_cycle=0.3",
        "safety.steroid.serious_infection.baseline_per_year=0.5",
    ]
    _, _, a = _chunk(overrides, n=120, engine=des)
    _, plan, b = _chunk(overrides, n=120, engine=cohort)
    for name in a.outcomes:
        np.testing.assert_array_equal(a.outcomes[name], b.outcomes[name], err_msg=name)
    for name in a.visits:
        np.testing.assert_array_equal(a.visits[name], b.visits[name], err_msg=name)
    causes = set(np.unique(a.outcomes["death_cause"][a.outcomes["death_day"] < math.inf]))
    n_steroid = len(plan.steroid_aes)
    te = 3 + n_steroid + [ae.name for ae in plan.ivig_aes].index("thromboembolism")
    infection = 3 + [ae.name for ae in plan.steroid_aes].index("serious_infection")
    assert {mortality.CAUSE_DISEASE, te, infection} <= causes


def test_a_fatal_ivig_thromboembolism_kills_on_its_infusion_day():
    _, plan, res = _chunk(
        [
            "safety.ivig.thromboembolism.p_per_cycle=0.5",
            "safety.ivig.thromboembolism.case_fatality=1",
            "disease.mortality.life_table=null",
            "disease.mortality.excess_per_year=0",
            "safety.steroid.serious_infection.case_fatality=0",
        ]
    )
    j = [ae.name for ae in plan.ivig_aes].index("thromboembolism")
    had = res.outcomes["ae_thromboembolism_n"] > 0
    died = res.outcomes["death_day"] < math.inf
    np.testing.assert_array_equal(had, died)  # every event fatal, no other cause
    assert np.all(res.outcomes["death_cause"][died] == 3 + len(plan.steroid_aes) + j)
    log = res.events
    for i in np.flatnonzero(died)[:20]:
        mine = log.patient == i
        last_infusion = log.day[mine & (log.kind == Event.INFUSION)][-1]
        assert res.outcomes["death_day"][i] == last_infusion


def test_a_higher_excess_hazard_brings_each_death_forward():
    """Common random numbers: the same thresholds against a higher hazard. Death changes
    nothing before it, so every patient dies no later."""
    _, _, low = _chunk(["disease.mortality.excess_per_year=0.2"], n=400)
    _, _, high = _chunk(["disease.mortality.excess_per_year=0.6"], n=400)
    a, b = low.outcomes["death_day"], high.outcomes["death_day"]
    background = low.outcomes["death_cause"] == mortality.CAUSE_BACKGROUND
    assert np.all(b[~background] <= a[~background])
    assert np.sum(b < math.inf) > np.sum(a < math.inf)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("disease.mortality.life_table=nowhere", "unknown life table 'nowhere'"),
        ("disease.mortality.excess_per_year=-1", "excess_per_year"),
        (
            'disease.mortality.life_table={"male_mx": [0.1, -2], "female_mx": [0.1]}',
            "male_mx holds -2",
        ),
        ("safety.ivig.thromboembolism.case_fatality=1.5", "case_fatality"),
        ("disease.mortality.hazard_ratio_per_decade=0", "hazard_ratio_per_decade"),
    ],
)
def test_bad_mortality_input_is_a_clear_error(override, needle, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            str(SCENARIOS / "first_line.yaml"),
            "--patients",
            "10",
            "--out",
            str(out),
            "--set",
            override,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def _table(overrides, n=400, seed=4, path=UNTREATED):
    scn, plan, res = _chunk(overrides, n=n, seed=seed, path=path)
    return scn, plan, res, patient_table(res, plan, scn)


def test_without_any_death_hazard_everyone_lives_to_111():
    """No life table, no excess, no fatal events: the lifetime extrapolation keeps every
    patient alive to the end of the table (age 111), and discounts exactly."""
    _, plan, _, t = _table(
        [
            "disease.mortality.life_table=null",
            "disease.mortality.excess_per_year=0",
            *NO_FATAL_AES,
            "population.age_years=50",
        ],
        n=50,
    )
    np.testing.assert_allclose(t["life_years_lifetime"], 111 - 50, rtol=1e-12)
    delta = plan.discount_per_day * 365.25
    expected = -np.expm1(-delta * 61) / delta  # discounted years from diagnosis to 111
    np.testing.assert_allclose(t["discounted_life_years_lifetime"], expected, rtol=1e-9)


def test_lifetime_life_expectancy_follows_the_life_table():
    """Background deaths only, women aged 60: mean life-years from diagnosis equal the
    life table's life expectancy at 60 (piecewise constant by year of age, to 111),
    within Monte Carlo error of the simulated first two years."""
    n = 3000
    _, _, _, t = _table(
        [
            "disease.mortality.excess_per_year=0",
            *NO_FATAL_AES,
            "population.age_years=60",
            "population.female=1",
        ],
        n=n,
    )
    _, female = mortality.load_life_table("hmd_usa_2019")
    surv, expect = 1.0, 0.0
    for age in range(60, 111):
        m = female[age]
        expect += surv * -math.expm1(-m) / m
        surv *= math.exp(-m)
    got = t["life_years_lifetime"]
    se = got.std(ddof=1) / math.sqrt(n)
    assert abs(got.mean() - expect) < 4 * se + 0.02, (got.mean(), expect, se)


def test_lifetime_adds_to_the_horizon_and_nothing_after_death():
    _, plan, res, t = _table(
        ["disease.mortality.excess_per_year=2"], path=SCENARIOS / "first_line.yaml"
    )
    dead = res.outcomes["death_day"] <= plan.horizon_days
    assert dead.sum() > 20 and (~dead).sum() > 20
    for col, short in (
        ("cost_lifetime", "cost_total"),
        ("qaly_lifetime", "qaly"),
        ("discounted_life_years_lifetime", "discounted_life_years"),
        ("life_years_lifetime", "life_years"),
    ):
        np.testing.assert_array_equal(t[col][dead], t[short][dead])
        if col != "qaly_lifetime":  # (a utility may be negative: EQ-5D goes below 0)
            assert np.all(t[col][~dead] > t[short][~dead]), col


@pytest.mark.parametrize("delta", [0.035, 0.0])
def test_lifetime_years_compiled_give_numpys_bits(delta):
    """``_loops.lifetime_into`` (one patient at a time) gives the bits of the numpy loop
    over years of age: patients dead at the horizon, no hazard at all (hz = 0, and with
    no discounting rate = 0), ages past the table's end, fractional ages and a steep
    age term."""
    from simulator import jit
    from simulator.outcomes import _lifetime_years

    loops = jit._load()
    if loops is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(11)
    n = 600
    alive = rng.random(n) < 0.9
    age = rng.uniform(-0.5, mortality.MAX_AGE + 3, n)
    age[:5] = [20.0, 50.25, mortality.MAX_AGE, mortality.MAX_AGE + 1, 0.0]
    female = rng.integers(0, 2, n).astype(np.int64)
    excess = np.where(rng.random(n) < 0.3, 0.0, rng.exponential(1e-4, n))
    bg = rng.exponential(0.01, (2, mortality.MAX_AGE + 1)) * np.arange(mortality.MAX_AGE + 1)
    bg[:, :3] = 0.0  # no background hazard in the first years: hz = 0 there
    disc0 = math.exp(-delta * 2)
    want = (np.zeros(n), np.zeros(n))
    _lifetime_years(alive, age, female, excess, bg, 0.08, delta, disc0, *want)
    got = (np.zeros(n), np.zeros(n))
    loops.lifetime_into(alive, age, female, excess, bg, 0.08, delta, disc0, mortality.MAX_AGE, *got)
    for w, g in zip(want, got, strict=True):
        assert w.tobytes() == g.tobytes()
    assert (got[1][~alive] == 0).all() and (got[1][alive & (age < 100)] > 0).all()
