"""Audit of the health-economic arithmetic by independent recomputation.

Each test recomputes a result from the definitions in docs/model.md section 5 (Outcomes,
Lifetime, Incremental analysis) without the code under test: per-patient discounted costs
and QALYs by numerical integration over cells of at most a day, the lifetime
extrapolation by integrating survival from the life table's CSV, the incremental analysis
against a literal transcription of dampack's R code (DARTH-git/dampack R/icers.R), and
the comparison's net monetary benefit from the per-patient tables.

Integration cells have their edges at every event, visit, death and birthday, so the
integrand is c x exp(-delta t) (c constant) inside each cell; the midpoint rule's
relative error there is at most (delta x width)^2 / 24, below 1e-9 for one-day cells
(delta = ln(1.035) / 365.25), hence the tolerances of 1e-8 relative.
"""

from __future__ import annotations

import csv
import io
import math
import random

import numpy as np
import pytest
from conftest import SCENARIOS

from simulator.economics import calculate_icers, optimal_strategy
from simulator.engines import cohort
from simulator.kernel.events import IVIG_AE_SHIFT, Event
from simulator.kernel.plan import make_plan
from simulator.outcomes import decision_population, patient_table
from simulator.scenario import load_scenario

RTOL = 1e-8
STOP_RULE = (
    'regimen.sparing_stop_when={"all": [{"at_most": {"prednisone_mg_per_day": 0}},'
    ' {"above": {"days_inactive": 90}}]}'
)
CASES = {
    # deaths mid-follow-up, rescue pulses (some cut by death), IVIG and its adverse events
    "first_line": (
        SCENARIOS / "first_line.yaml",
        [
            "disease.mortality.excess_per_year=0.3",
            "regimen.steroid.rescue_pulse_when={relapse: true}",
        ],
        120,
    ),
    # a horizon off the visit grid and 10 years long, a 2-day IVIG cycle
    "first_line_2day_10y": (
        SCENARIOS / "first_line_2day.yaml",
        ["horizon_days=3653", "disease.mortality.excess_per_year=0.2"],
        60,
    ),
    # sparing agents stopped by a rule, steroids stopped
    "usual_care_stop": (SCENARIOS / "studies" / "usual_care_long_term.yaml", [STOP_RULE], 80),
}


@pytest.fixture(scope="module", params=list(CASES))
def run(request):
    path, overrides, n = CASES[request.param]
    scn = load_scenario(path, overrides)
    plan = make_plan(scn)
    res = cohort.run_chunk(scn, plan, 7, np.arange(n), events=True)
    return scn, plan, res, patient_table(res, plan, scn)


def _life_table():
    """(male_mx, female_mx) read straight from the packaged CSV."""
    from importlib import resources

    text = (
        resources.files("simulator")
        .joinpath("data", "life_tables", "hmd_usa_2019.csv")
        .read_text(encoding="utf-8")
    )
    lines = [x for x in text.splitlines() if not x.startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    return (
        np.array([float(r["male_mx"]) for r in rows]),
        np.array([float(r["female_mx"]) for r in rows]),
    )


def _cells(edges, end):
    e = np.unique(np.concatenate([np.arange(0.0, end, 1.0), np.asarray(edges, float), [end]]))
    e = e[(e >= 0) & (e <= end)]
    return e[:-1], np.diff(e)


def _within_horizon(scn, plan, res, i):
    """Discounted costs by component and QALYs of patient ``i`` from the event log and
    the visits, by the definitions of docs/model.md section 5."""
    econ, price, u = scn.economics, scn.economics.prices, scn.economics.utilities
    delta = math.log1p(econ.discount_rate_per_year) / 365.25
    H = plan.horizon_days
    o, ev = res.outcomes, res.events
    sel = ev.patient == res.baseline.patient[i]
    days, kinds, after, grams, flags = (
        ev.day[sel],
        ev.kind[sel],
        ev.prednisone[sel],
        ev.value[sel],
        ev.flags[sel],
    )
    death = o["death_day"][i]
    end = min(death, H)
    s0, s1 = o["sparing_start_day"][i], o["sparing_stop_day"][i]
    vd = plan.visit_days
    spar_days = [s for s in (s0, s1) if np.isfinite(s)]
    lo, width = _cells([*days, *vd, *spar_days], end)
    mid = lo + width / 2
    w = np.exp(-delta * mid) * width  # discounted days of each cell
    k = np.searchsorted(days, mid, side="right") - 1
    dose = np.where(k >= 0, after[np.maximum(k, 0)], ev.prednisone_before[sel][0])
    pulse = dose == plan.pulse_mg
    out = {
        "cost_prednisone": price.prednisone_per_mg * float((dose * ~pulse * w).sum()),
        "cost_methylprednisolone_pulse": price.methylprednisolone_pulse_day * float(w[pulse].sum()),
    }
    inf = (kinds == Event.INFUSION) & (days <= end)
    at = np.exp(-delta * days[inf])
    out["cost_ivig"] = price.ivig_per_g * float((grams[inf] * at).sum())
    out["cost_infusion_days"] = price.infusion_day * float(at.sum())
    out["cost_visits"] = price.visit * float(np.exp(-delta * vd[(vd <= H) & (vd < death)]).sum())
    spar = 0.0
    if np.isfinite(s0) and s0 <= H:
        on = (mid >= s0) & (mid < s1)
        agent = plan.agents[int(o["sparing_agent"][i])]
        spar = price.sparing_agent_per_day.get(agent, 0.0) * float(w[on].sum())
    out["cost_sparing_agents"] = spar
    ae_cost = ae_loss = 0.0
    for ae in plan.steroid_aes:
        day = o[f"ae_{ae.name}_day"][i]
        if day <= end:
            ae_cost += econ.adverse_event_cost.get(ae.name, 0.0) * math.exp(-delta * day)
            ae_loss += econ.adverse_event_qaly_loss.get(ae.name, 0.0) * math.exp(-delta * day)
    for j, ae in enumerate(plan.ivig_aes):
        hit = inf & (((flags >> (IVIG_AE_SHIFT + j)) & 1) == 1)
        disc = float(np.exp(-delta * days[hit]).sum())
        ae_cost += econ.adverse_event_cost.get(ae.name, 0.0) * disc
        ae_loss += econ.adverse_event_qaly_loss.get(ae.name, 0.0) * disc
    out["cost_adverse_events"] = ae_cost
    out["cost_total"] = sum(v for key, v in out.items() if key.startswith("cost_"))
    util = (
        u.haq_intercept
        + u.haq_slope * res.visits["haq"][i]
        - u.active_disease_decrement * (res.visits["inactive"][i] < 0.5)
        - u.high_dose_steroid_decrement * (res.visit_prednisone[i] > u.high_dose_steroid_mg_per_day)
    )
    util = np.clip(util, -0.594, 1.0)  # the EQ-5D-3L range
    uk = util[np.searchsorted(vd, mid, side="right") - 1]
    assert not np.isnan(uk).any()
    out["qaly"] = float((uk * w).sum()) / 365.25 - ae_loss
    out["discounted_life_years"] = float(w.sum()) / 365.25
    out["_last_utility"] = util[-1]
    return out


def test_within_horizon_costs_and_qalys_match_numerical_integration(run):
    scn, plan, res, t = run
    assert (res.outcomes["death_day"] <= plan.horizon_days).any()
    for i in range(res.n):
        want = _within_horizon(scn, plan, res, i)
        for col, v in want.items():
            if col.startswith("_"):
                continue
            assert t[col][i] == pytest.approx(v, rel=RTOL, abs=1e-9), (col, i)


def test_lifetime_matches_integrated_survival_from_the_life_table(run):
    """After the horizon: the life table (read from the CSV, by sex and whole year of
    age) plus the last window's excess hazard, its age term constant within each year of
    age; the last visit's utility, the final prednisone dose, the sparing agent if still
    taken and visits every ``then_every_days``; discounted from day 0; to age 111."""
    scn, plan, res, t = run
    econ, price = scn.economics, scn.economics.prices
    delta = math.log1p(econ.discount_rate_per_year) / 365.25
    H = plan.horizon_days
    o = res.outcomes
    tables = _life_table()
    slope = math.log(scn.disease.mortality.hazard_ratio_per_decade) / 10
    alive = o["death_day"] > H
    assert alive.sum() > 10
    for i in range(res.n):
        within = _within_horizon(scn, plan, res, i)
        if not alive[i]:
            for col, short in (("cost_lifetime", "cost_total"), ("qaly_lifetime", "qaly")):
                assert t[col][i] == t[short][i]
            continue
        age_h = res.baseline.age_years[i] + H / 365.25
        mx = tables[int(res.baseline.female[i])]
        excess = o["final_death_hazard_per_day"][i] - o["final_background_hazard_per_day"][i]
        span = (111 - age_h) * 365.25
        birthdays = (np.arange(math.floor(age_h) + 1, 111) - age_h) * 365.25
        lo, width = _cells(birthdays, span)
        mid = lo + width / 2
        age = np.floor(age_h + mid / 365.25)
        piece = np.maximum(age, age_h)
        hz = mx[np.minimum(age, len(mx) - 1).astype(int)] / 365.25 + excess * np.exp(
            slope * (piece - age_h)
        )
        cum = np.concatenate([[0.0], np.cumsum(hz * width)])[:-1]
        surv = np.exp(-(cum + hz * width / 2))  # exact at the midpoint
        ly = float((surv * width).sum()) / 365.25
        dly = float((surv * np.exp(-delta * (H + mid)) * width).sum()) / 365.25
        s0, s1 = o["sparing_start_day"][i], o["sparing_stop_day"][i]
        spar = 0.0
        if np.isfinite(s0) and s0 <= H and not s1 <= H:
            spar = price.sparing_agent_per_day.get(plan.agents[int(o["sparing_agent"][i])], 0.0)
        # the oral dose (a pulse decided at the last visit is not carried for life: the
        # test below checks that dose from the pulse's end in a longer run)
        oral = o["final_oral_prednisone_mg_per_day"][i]
        per_day = oral * price.prednisone_per_mg + spar + price.visit / scn.visits.then_every_days
        last_utility = within["_last_utility"]
        if oral != o["final_prednisone_mg_per_day"][i]:
            u = econ.utilities
            last_utility = min(
                1.0,
                max(
                    -0.594,
                    u.haq_intercept
                    + u.haq_slope * res.visits["haq"][i, -1]
                    - u.active_disease_decrement * (res.visits["inactive"][i, -1] < 0.5)
                    - u.high_dose_steroid_decrement * (oral > u.high_dose_steroid_mg_per_day),
                ),
            )
        assert t["life_years_lifetime"][i] == pytest.approx(H / 365.25 + ly, rel=1e-7)
        assert t["discounted_life_years_lifetime"][i] == pytest.approx(
            within["discounted_life_years"] + dly, rel=1e-7
        )
        assert t["qaly_lifetime"][i] == pytest.approx(
            within["qaly"] + last_utility * dly, rel=1e-7, abs=1e-9
        )
        assert t["cost_lifetime"][i] == pytest.approx(
            within["cost_total"] + per_day * 365.25 * dly, rel=1e-7
        )


def test_a_pulse_started_at_the_last_visit_is_not_carried_for_life_as_oral_prednisone():
    """A methylprednisolone pulse lasts ``pulse_days`` and is costed as pulse days, never
    as prednisone mg (docs/model.md section 5, Costs). A pulse that starts at the visit
    on the horizon day must not make its 1,250 mg/day prednisone equivalent "the final
    prednisone dose" charged every day for life: the dose carried forward is the oral
    dose the patient returns to when the pulse ends, read here from the same patients
    simulated ``pulse_days`` longer (the pulse's end event logs it)."""
    sets = ["regimen.steroid.rescue_pulse_when={relapse: true}"]
    scn = load_scenario(SCENARIOS / "first_line.yaml", sets)
    plan = make_plan(scn)
    res = cohort.run_chunk(scn, plan, 5, np.arange(600))
    t = patient_table(res, plan, scn)
    H = plan.horizon_days
    o = res.outcomes
    hit = np.where((o["death_day"] > H) & (o["final_prednisone_mg_per_day"] == plan.pulse_mg))[0]
    assert len(hit) >= 3  # rescue pulses decided at the day-728 visit
    longer = load_scenario(
        SCENARIOS / "first_line.yaml", [*sets, f"horizon_days={int(H + plan.pulse_days)}"]
    )
    res2 = cohort.run_chunk(longer, make_plan(longer), 5, np.arange(600), events=True)
    ev = res2.events
    price = scn.economics.prices
    dly = t["discounted_life_years_lifetime"] - t["discounted_life_years"]
    for i in hit:
        sel = (ev.patient == i) & (ev.kind == Event.PULSE_END) & (ev.day > H)
        (oral,) = ev.prednisone[sel]
        assert oral < plan.pulse_mg
        spar = 0.0
        s0, s1 = o["sparing_start_day"][i], o["sparing_stop_day"][i]
        if np.isfinite(s0) and s0 <= H and not s1 <= H:
            spar = price.sparing_agent_per_day.get(plan.agents[int(o["sparing_agent"][i])], 0.0)
        per_day = oral * price.prednisone_per_mg + spar + price.visit / scn.visits.then_every_days
        assert t["cost_lifetime"][i] == pytest.approx(
            t["cost_total"][i] + per_day * 365.25 * dly[i], rel=1e-9
        ), (i, oral)


def test_lifetime_life_years_follow_the_life_table_of_each_sex():
    """Background deaths only: for every patient alive at the horizon, the life-years
    after it are the life table's life expectancy at their exact age and sex (hazard
    constant within each year of age, to 111), computed from the CSV in closed form."""
    scn = load_scenario(
        SCENARIOS / "first_line.yaml",
        [
            "disease.mortality.excess_per_year=0",
            "safety.steroid.serious_infection.case_fatality=0",
            "safety.ivig.thromboembolism.case_fatality=0",
        ],
    )
    plan = make_plan(scn)
    res = cohort.run_chunk(scn, plan, 3, np.arange(300))
    t = patient_table(res, plan, scn)
    tables = _life_table()
    H = plan.horizon_days
    alive = res.outcomes["death_day"] > H
    sexes = res.baseline.female[alive]
    assert 0 < sexes.sum() < len(sexes)  # both sexes
    for i in np.where(alive)[0]:
        mx = tables[int(res.baseline.female[i])]
        a = res.baseline.age_years[i] + H / 365.25
        surv, e = 1.0, 0.0
        while a < 111:
            length = min(math.floor(a) + 1, 111) - a
            m = mx[min(math.floor(a), len(mx) - 1)]
            e += surv * -math.expm1(-m * length) / m
            surv *= math.exp(-m * length)
            a += length
        assert t["life_years_lifetime"][i] - H / 365.25 == pytest.approx(e, rel=1e-9)


# --- the incremental analysis ----------------------------------------------------------


def _dampack(cost, effect, strategies):
    """dampack's calculate_icers (R/icers.R), transcribed line by line."""
    df = sorted(
        ({"s": s, "c": c, "e": e} for s, c, e in zip(strategies, cost, effect, strict=True)),
        key=lambda r: (r["c"], -r["e"]),  # arrange(Cost, desc(Effect)); stable
    )
    n = len(df)
    if n == 1:
        return [(df[0]["s"], df[0]["c"], df[0]["e"], None, None, None, "")]

    def compute_icers(nd):
        out = []
        for k, r in enumerate(nd):
            if k == 0:
                out.append(dict(r, ic=None, ie=None, icer=None))
            else:
                ic, ie = r["c"] - nd[k - 1]["c"], r["e"] - nd[k - 1]["e"]
                out.append(dict(r, ic=ic, ie=ie, icer=ic / ie))  # ie > 0 after dominance
        return out

    d = [df[j]["s"] for i in range(n - 1) for j in range(i + 1, n) if df[j]["e"] <= df[i]["e"]]
    ed: list[str] = []
    while True:
        dom = set(d) | set(ed)
        nd_df = compute_icers([r for r in df if r["s"] not in dom])
        if len(nd_df) <= 2:
            break
        new = 0
        for i in range(1, len(nd_df) - 1):
            if nd_df[i]["icer"] > nd_df[i + 1]["icer"]:
                ed.append(nd_df[i]["s"])
                new += 1
        if new == 0:
            break
    dom = set(d) | set(ed)
    nd = [dict(r, st="ND") for r in compute_icers([r for r in nd_df if r["s"] not in dom])]
    rest = [
        dict(r, ic=None, ie=None, icer=None, st="ED" if r["s"] in ed else "D")
        for r in df
        if r["s"] in dom
    ]
    rank = {"ND": 0, "ED": 1, "D": 2}  # arrange(desc(Status), Cost, desc(Effect))
    rows = sorted(nd + rest, key=lambda r: (rank[r["st"]], r["c"], -r["e"]))
    return [(r["s"], r["c"], r["e"], r["ic"], r["ie"], r["icer"], r["st"]) for r in rows]


def test_calculate_icers_is_dampacks_on_random_inputs_with_ties():
    rng = random.Random(20150610)
    for _ in range(4000):
        k = rng.randint(1, 8)
        grid = rng.choice([2, 4, 10, 10_000])  # small grids: many ties in cost and effect
        cost = [float(rng.randint(0, grid) * 1000) for _ in range(k)]
        effect = [rng.randint(0, grid) / 7 for _ in range(k)]
        names = [f"s{j}" for j in range(k)]
        rng.shuffle(names)
        rows = calculate_icers(cost, effect, names)
        got = [
            (r.strategy, r.cost, r.effect, r.inc_cost, r.inc_effect, r.icer, r.status) for r in rows
        ]
        assert got == _dampack(cost, effect, names), (cost, effect, names)
        for wtp in (0.0, 1.0, 7000.0, 20_000.0, 1e9, rng.uniform(0, 1e5)):
            nmb = {s: wtp * e - c for s, c, e in zip(names, cost, effect, strict=True)}
            best = optimal_strategy(rows, wtp)
            assert nmb[best] == max(nmb.values())
            assert {r.strategy: r.status for r in rows}[best] in ("ND", "")


def test_decision_population_discounts_each_years_cohort_once():
    scn = load_scenario(SCENARIOS / "first_line.yaml")
    # docs/model.md: 740 a year over 10 years at 3.5% gives 6,369.7 patients
    assert decision_population(scn) == pytest.approx(
        740 * (1 - 1.035**-10) / (1 - 1 / 1.035), rel=1e-12
    )
    assert round(decision_population(scn), 1) == 6369.7
    other = load_scenario(
        SCENARIOS / "first_line.yaml",
        ["economics.discount_rate_per_year=0", "economics.decision_horizon_years=3"],
    )
    assert decision_population(other) == pytest.approx(3 * 740)


@pytest.fixture(scope="module")
def three_arms():
    from simulator.comparison import compare

    scns = [
        load_scenario(SCENARIOS / f)
        for f in ("steroid_only.yaml", "first_line.yaml", "rescue.yaml")
    ]
    chunks = []
    res = compare(scns, patients=300, seed=11, engine="cohort", sink=chunks.append, progress=False)
    tables = [
        {k: np.concatenate([c[a][k] for c in chunks]) for k in chunks[0][a]} for a in range(3)
    ]
    return res, tables


def test_comparison_net_benefit_and_icers_from_the_per_patient_values(three_arms):
    res, tables = three_arms
    wtp = 20_000.0
    nmb = [wtp * tb["qaly_lifetime"] - tb["cost_lifetime"] for tb in tables]
    for tb, v in zip(tables, nmb, strict=True):
        np.testing.assert_allclose(tb["net_monetary_benefit"], v, rtol=1e-12, atol=1e-6)
    ia = res.incremental_analysis()
    b = res.names.index(ia["optimal_strategy"])
    means = [float(v.mean()) for v in nmb]
    assert means[b] == max(means)
    for r in ia["rows"]:
        i = res.names.index(r["strategy"])
        assert r["cost"] == pytest.approx(tables[i]["cost_lifetime"].mean(), rel=1e-12)
        assert r["effect"] == pytest.approx(tables[i]["qaly_lifetime"].mean(), rel=1e-12)
        d = r["net_monetary_benefit_vs_optimal"]
        if i == b:
            assert d is None
            continue
        x = nmb[i] - nmb[b]  # this arm minus the optimal one, per patient
        half = 1.959964 * x.std(ddof=1) / math.sqrt(x.size)
        assert d["mean_difference"] == pytest.approx(x.mean(), rel=1e-9)
        assert d["ci95"][0] == pytest.approx(x.mean() - half, rel=1e-6)
        assert d["ci95"][1] == pytest.approx(x.mean() + half, rel=1e-6)
        assert d["better_pct"] == pytest.approx(100 * np.mean(x > 1e-9))
    # against the first arm
    econ = res.economics()
    for j, arm in enumerate(res.names[1:], start=1):
        e = econ["arms"][arm]
        dc = tables[j]["cost_lifetime"].mean() - tables[0]["cost_lifetime"].mean()
        dq = tables[j]["qaly_lifetime"].mean() - tables[0]["qaly_lifetime"].mean()
        assert e["incremental_cost"] == pytest.approx(dc, rel=1e-9)
        assert e["incremental_qaly"] == pytest.approx(dq, rel=1e-9)
        assert e["icer_per_qaly"] == pytest.approx(dc / dq, rel=1e-9)
        inmb = e["incremental_net_monetary_benefit"]["mean_difference"]
        assert inmb == pytest.approx(wtp * dq - dc, rel=1e-9)
    # each frontier arm is optimal over its range of willingness to pay
    rows = calculate_icers(
        [r["cost"] for r in ia["rows"]],
        [r["effect"] for r in ia["rows"]],
        [r["strategy"] for r in ia["rows"]],
    )
    for r in ia["rows"]:
        if r["optimal_for_wtp"] is None:
            continue
        lo, hi = r["optimal_for_wtp"]
        for w in (lo * 1.001 + 1, (lo + hi) / 2 if hi is not None else lo * 2 + 1):
            assert optimal_strategy(rows, w) == r["strategy"]


def test_a_one_patient_comparison_renders_its_incremental_analysis():
    """`simulate compare --patients 1` is accepted; its net-benefit difference then has
    no interval (ci95 [None, None]) and the tables must say so rather than stop with an
    internal error."""
    from simulator.cli import format_incremental
    from simulator.comparison import compare
    from simulator.report.comparison import incremental_html

    scns = [load_scenario(SCENARIOS / f) for f in ("first_line.yaml", "steroid_only.yaml")]
    res = compare(scns, patients=1, seed=3, engine="cohort", progress=False)
    ia = res.incremental_analysis()
    assert "optimal" in format_incremental(ia)
    assert "<table>" in incremental_html(ia)


def test_simulate_compare_with_one_patient_writes_its_report(tmp_path, capsys):
    """The whole command: exit 0, the terminal table and report.html (both of its
    net-benefit tables) say "n/a" for the interval instead of an internal error."""
    from simulator import cli

    out = tmp_path / "one"
    arms = [str(SCENARIOS / f) for f in ("first_line.yaml", "steroid_only.yaml")]
    status = cli.main(["compare", *arms, "--patients", "1", "--out", str(out), "--workers", "1"])
    assert status == 0
    assert "(n/a)" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert html.count("(n/a)") >= 2, "incremental analysis and each arm against the first"
