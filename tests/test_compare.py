"""Strategy comparison: common random numbers, rule firing, metamorphic checks."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import SCENARIOS

from simulator.comparison import compare
from simulator.engines import cohort
from simulator.errors import InputError
from simulator.invariants import InvariantError, check_events
from simulator.kernel.events import Event, Flag
from simulator.kernel.params import make_params
from simulator.kernel.plan import make_plan
from simulator.runner import run
from simulator.scenario import load_scenario

NEVER = {"day_before": 0}  # a rule that can never fire: no visit happens before day 0


def scn(name, *sets):
    return load_scenario(SCENARIOS / f"{name}.yaml", list(sets))


def tables_of(scenario, n=120, seed=3):
    out = []
    run(scenario, patients=n, seed=seed, engine="cohort", sink=lambda t, _e: out.append(t))
    return {k: np.concatenate([t[k] for t in out]) for k in out[0]}


def test_a_scenario_compared_with_itself_differs_by_exactly_zero():
    a = scn("first_line")
    result = compare([a, a], patients=150, seed=5, engine="cohort")
    arm = result.names[1]
    for name, o in result.outcomes().items():
        d = o["differences"][arm]
        assert d["mean_difference"] == 0.0, name
        if o["estimator"] == "ratio_of_sums":  # a rate: no per-patient shares
            assert d["ci95"] == [0.0, 0.0] and d["same_pct"] is None, name
            continue
        if o["estimator"] == "proportion":
            # Newcombe's paired score interval: symmetric about 0 and never of zero width
            # (the Wald interval claimed certainty, [0, 0], whenever no patient differed)
            assert d["interval"] == "newcombe_paired_score", name
            assert d["ci95"][0] == pytest.approx(-d["ci95"][1], abs=1e-12), name
            assert d["ci95"][1] > 0, name
        else:
            # restricted means of a time to an event too: paired, so exactly [0, 0] (the
            # interval from the two curves' variances was +-28 days for time to CPK normal)
            assert d["ci95"] == [0.0, 0.0], name
        assert d["same_pct"] == 100.0, name
    e = result.economics()["arms"][arm]
    assert e["incremental_cost"] == 0.0 and e["incremental_qaly"] == 0.0


def test_a_time_to_an_event_neither_arm_has_orders_no_patient():
    """No arm starts IVIG by a rule (first_line gives it from the start, steroid_only
    never): every patient's time to rescue is a censoring in both arms, so nobody is
    earlier or later; those who die at different times in the two arms cannot be told
    apart (before, they counted as earlier or later)."""
    result = compare(
        [scn("first_line"), scn("steroid_only")],
        patients=400,
        seed=5,
        engine="cohort",
    )
    d = result.outcomes()["time_to_rescue_days"]["differences"]["steroid_only"]
    assert d["higher_pct"] == 0.0 and d["lower_pct"] == 0.0
    assert d["undetermined_pct"] > 0  # deaths at different days
    assert d["same_pct"] + d["undetermined_pct"] == pytest.approx(100.0)


def test_every_arm_sees_the_same_patients():
    baseline = [
        "age_years",
        "female",
        "weight_kg",
        "dermatomyositis",
        "lung_involvement",
        "lasting_drive_log",
        "cpk_baseline_u_per_l",
        "myoglobin_baseline_ng_per_ml",
        "mmt8_baseline",
        "methylprednisolone_pulse",
    ]
    tables = [
        tables_of(scn(name)) for name in ("first_line", "rescue", "steroid_only", "first_line_2day")
    ]
    for t in tables[1:]:
        for col in baseline:
            np.testing.assert_array_equal(t[col], tables[0][col], err_msg=col)


def test_rescue_rule_that_never_fires_is_the_same_as_no_ivig_patient_by_patient():
    never = scn("rescue", f"regimen.ivig.start_when={json.dumps(NEVER)}")
    without = scn("rescue", "regimen.ivig=null")
    a, b = tables_of(never), tables_of(without)
    assert a.keys() == b.keys()
    for col in a:
        np.testing.assert_array_equal(a[col], b[col], err_msg=col)
    assert a["rescue_started"].sum() == 0


def test_more_ivig_cycles_never_delay_cpk_normalisation_on_average():
    """Same patients with 3 or 6 cycles: the paired difference in restricted mean time to
    a normal CPK is not positive beyond Monte Carlo error (4 paired standard errors)."""
    three = scn("first_line", "regimen.ivig.cycles=3")
    six = scn("first_line")
    result = compare([three, six], patients=1500, seed=8, engine="cohort")
    d = result.outcomes()["time_to_cpk_normal_days"]["differences"][result.names[1]]
    lo, hi = d["ci95"]
    se = (hi - lo) / (2 * 1.959963984540054)
    assert d["mean_difference"] < 4 * se
    normal12 = result.outcomes()["cpk_normal_month_12"]["differences"][result.names[1]]
    assert normal12["mean_difference"] > -4 * (normal12["ci95"][1] - normal12["ci95"][0]) / 3.92


def test_results_do_not_depend_on_the_order_of_the_other_arms():
    a, b, c = scn("first_line"), scn("rescue"), scn("steroid_only")
    r1 = compare([a, b, c], patients=80, seed=2, engine="cohort").outcomes()
    r2 = compare([a, c, b], patients=80, seed=2, engine="cohort").outcomes()
    for name in r1:
        assert r1[name]["differences"].get("rescue") == r2[name]["differences"].get("rescue"), name


# ---- rules firing on hand-built patients ------------------------------------------------


def one(scenario, drive, acute, sens=1.0, noise=0.0):
    """One hand-built patient: lasting drive, acute set point, steroid sensitivity, no
    flares and fixed measurement noise."""
    plan = make_plan(scenario)
    plan = dataclasses.replace(plan, flare_rate_per_day=0.0)
    prm, base = make_params(scenario, plan, 1, np.array([0]))
    prm.drive = np.array([drive])
    prm.z0 = np.array([max(acute - drive, 0.0)])
    prm.steroid_sens = np.array([sens])
    for name in (
        "noise_cpk",
        "noise_myoglobin",
        "noise_mmt8",
        "noise_physician_global",
        "noise_patient_global",
        "noise_haq",
        "noise_extramuscular",
    ):
        setattr(prm, name, np.full_like(getattr(prm, name), noise))
    res = cohort.run_chunk(scenario, plan, 1, np.array([0]), events=True, params=(prm, base))
    return res, plan


def visits(res):
    ev = res.events
    m = ev.kind == Event.VISIT
    return ev.day[m], ev.cpk[m], ev.flags[m]


def test_rescue_fires_without_a_minimal_response_by_week_12():
    res, plan = one(scn("rescue"), drive=0.5, acute=1.0, sens=0.02)
    days, _cpk, flags = visits(res)
    fired = np.flatnonzero(flags & Flag.RESCUE_IVIG)
    assert fired.size == 1
    i = int(fired[0])
    assert days[i] == 84
    assert res.visits["tis"][0, i] < 20
    assert not np.any(flags[:i] & Flag.RESCUE_IVIG)
    infusions = res.events.day[res.events.kind == Event.INFUSION]
    assert infusions[0] == 84 + plan.rescue_delay_days


def test_rescue_fires_on_a_clinical_relapse_and_the_log_shows_what_was_seen():
    """A steroid-dependent patient: normal on induction, relapses as a calendar taper (no
    hold rule) goes below what the disease needs."""
    only_relapse = scn(
        "rescue", 'regimen.ivig.start_when={"relapse": true}', "regimen.taper.hold_when=null"
    )
    res, plan = one(only_relapse, drive=-0.5, acute=-0.5, sens=1.5)
    _days, cpk, flags = visits(res)
    relapse = np.flatnonzero(flags & Flag.RELAPSE)
    fired = np.flatnonzero(flags & Flag.RESCUE_IVIG)
    assert relapse.size >= 1 and fired.size == 1
    assert fired[0] == relapse[0]
    assert cpk[fired[0]] > plan.relapse_cpk_x_uln * plan.cpk_uln


def test_rescue_does_not_fire_in_a_fast_responder():
    res, _ = one(scn("rescue"), drive=-8.0, acute=0.0, sens=3.0)
    assert res.outcomes["rescue_day"][0] == np.inf
    assert res.outcomes["ivig_g"][0] == 0


def test_sparing_start_rule_starts_an_agent_when_steroids_cannot_be_tapered():
    rule = {"all": [{"day_at_least": 84}, {"prednisone_above_mg_per_day": 20}]}
    s = scn("steroid_only", f"regimen.sparing_start_when={json.dumps(rule)}")
    res, _ = one(s, drive=1.0, acute=1.2, sens=0.05)
    days, _, flags = visits(res)
    started = np.flatnonzero(flags & Flag.SPARING_START)
    assert started.size == 1 and days[started[0]] >= 84


# ---- invariants -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["first_line", "rescue", "steroid_only", "first_line_2day", "ivig_monotherapy"]
)
def test_event_logs_of_every_strategy_satisfy_the_invariants(name):
    s = scn(name)
    plan = make_plan(s)
    res = cohort.run_chunk(s, plan, 4, np.arange(300), events=True)
    check_events(res.events, plan)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda ev, i: ev.columns["prednisone"].__setitem__(i, -5.0), "negative"),
        (lambda ev, i: ev.columns["prednisone"].__setitem__(i, 1e4), "went up"),
    ],
)
def test_invariant_checks_catch_a_corrupted_log(corrupt, message):
    s = scn("first_line")
    plan = make_plan(s)
    res = cohort.run_chunk(s, plan, 4, np.arange(5), events=True)
    i = int(np.flatnonzero(res.events.kind == Event.TAPER)[0])
    corrupt(res.events, i)
    with pytest.raises(InvariantError, match=message):
        check_events(res.events, plan)


def test_an_engine_that_logs_a_patients_events_out_of_order_is_caught():
    """The finished log keeps each patient's events in the order they were logged (it
    only groups patients), so the order check sees what the engine did."""
    from simulator.records import EventLog

    s = scn("first_line")
    plan = make_plan(s)
    res = cohort.run_chunk(s, plan, 4, np.arange(3), events=True)
    cols = res.events.columns
    rows = list(zip(*(cols[f].tolist() for f in EventLog.FIELDS), strict=True))
    check_events(_relogged(rows), plan)  # logged again as they were: fine
    mine = [i for i, r in enumerate(rows) if r[0] == 1]
    a, b = mine[3], mine[4]  # two events of patient 1, with their doses
    rows[a], rows[b] = rows[b], rows[a]
    with pytest.raises(InvariantError, match="out of order: patient 1"):
        check_events(_relogged(rows), plan)


def _relogged(rows):
    from simulator.records import EventLog

    log = EventLog()
    for r in rows:
        log.append(*r)
    return log.finish()


def test_overlapping_ivig_cycles_are_caught():
    s = scn("first_line")
    plan = make_plan(s)
    res = cohort.run_chunk(s, plan, 4, np.arange(3), events=True)
    ev = res.events
    inf = np.flatnonzero((ev.kind == Event.INFUSION) & (ev.patient == 0))
    ev.columns["day"][inf[5:10]] -= 10  # cycle 2 starts 18 days after cycle 1, not 28
    order = np.lexsort((ev.kind, ev.day, ev.patient))
    ev.columns = {k: v[order] for k, v in ev.columns.items()}
    ev.columns["prednisone"][:] = ev.columns["prednisone_before"][:] = 10.0  # doses stay valid
    with pytest.raises(InvariantError, match="overlap"):
        check_events(res.events, plan)


# ---- command line ------------------------------------------------------------------------


def test_compare_command_writes_every_output(tmp_path):
    out = tmp_path / "cmp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "compare",
            str(SCENARIOS / "first_line.yaml"),
            str(SCENARIOS / "rescue.yaml"),
            "--patients",
            "60",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    from simulator.report.comparison import COMPARISON_FILES

    for f in COMPARISON_FILES:
        assert (out / f).is_file(), f
    assert "incremental_analysis.csv" in COMPARISON_FILES and "ce_plane.png" in COMPARISON_FILES
    data = json.loads((out / "comparison.json").read_text())
    assert data["arms"] == ["first_line", "rescue"] and data["patients"] == 60
    assert {
        "cost_total",
        "qaly",
        "tis_week_24",
        "complete_clinical_response",
        "time_to_prednisone_le_7_5mg_days",
        "relapses",
        "rescue_started",
        "time_to_rescue_days",
        "adverse_event_thromboembolism",
    } <= set(data["outcomes"])
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5  # the CE plane and four figures
    assert "http://" not in page and "https://" not in page and "<script" not in page
    rows = (out / "comparison.csv").read_text().splitlines()
    assert rows[0].startswith("outcome,label,unit,better,arm,estimator,estimate,")
    assert len(rows) == 1 + 2 * len(data["outcomes"])


def test_compare_needs_two_scenarios_and_reports_bad_input(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "compare",
            str(SCENARIOS / "first_line.yaml"),
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "at least two" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x").exists()


# --------------------------------------------------------------------------------------
# Arms that are not the same patients (issue: "compare says when arms differ")
# --------------------------------------------------------------------------------------


def _differing_arm(tmp_path, body):
    path = tmp_path / "other.yaml"
    path.write_text(f"extends: {SCENARIOS / 'steroid_only.yaml'}\nname: other\n{body}")
    return path


@pytest.mark.parametrize(
    "body, path",
    [
        ("population: {female: 0.5}\n", "population.female"),
        ("horizon_days: 364\n", "horizon_days"),
        ("economics: {currency: EUR}\n", "economics.currency"),
        ("visits: {every_days: 7}\n", "visits.every_days"),
        ("seed: 7\n", "seed"),
        ("disease: {steroid: {emax_per_day: 0.2}}\n", "disease.steroid.emax_per_day"),
    ],
)
def test_compare_refuses_arms_that_differ_naming_the_path(tmp_path, body, path):
    other = _differing_arm(tmp_path, body)
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "compare",
            str(SCENARIOS / "first_line.yaml"),
            str(other),
            "--patients",
            "10",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"  - {path}: first_line" in proc.stderr
    assert "--allow-different-populations" in proc.stderr
    assert not out.exists()


def test_an_explicit_seed_makes_scenario_seeds_irrelevant(tmp_path):
    other = load_scenario(_differing_arm(tmp_path, "seed: 7\n"))
    a = scn("first_line")
    with pytest.raises(InputError):
        compare([a, other], patients=5, engine="cohort")
    result = compare([a, other], patients=5, seed=3, engine="cohort")
    assert result.same_patients and result.arm_differences == []


def test_allowed_differences_are_stated_and_no_same_patients_claim_is_made(tmp_path):
    other = _differing_arm(tmp_path, "population: {female: 0.5}\nhorizon_days: 364\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "compare",
            str(SCENARIOS / "first_line.yaml"),
            str(other),
            "--patients",
            "10",
            "--out",
            str(out),
            "--allow-different-populations",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "same patients in every arm" not in proc.stdout
    assert "NOT the same patients" in proc.stdout
    data = json.loads((out / "comparison.json").read_text())
    assert data["same_patients"] is False
    assert any(d.startswith("horizon_days:") for d in data["arm_differences"])
    report = (out / "report.html").read_text()
    assert "not the same patients" in report
    assert "the same patients in every arm" not in report
    assert report.index("not the same patients") < report.index("<h2>")


def test_shipped_strategies_share_their_patients():
    scns = [scn(n) for n in ("first_line", "rescue", "steroid_only", "first_line_2day")]
    from simulator.comparison import arm_differences

    assert arm_differences(scns, ["a", "b", "c", "d"]) == []


def test_incremental_analysis_of_every_arm(tmp_path):
    """The compare output carries dampack's incremental analysis on the arms' mean costs
    and QALYs, names the strategy with the highest net monetary benefit, and gives each
    arm's paired NMB difference from it; the CSV and the CE plane are written."""
    from simulator.economics import calculate_icers
    from simulator.jobs import compare_to_folder

    scns = [
        load_scenario(SCENARIOS / f"{n}.yaml") for n in ("first_line", "rescue", "steroid_only")
    ]
    out = tmp_path / "cmp"
    result = compare_to_folder(scns, out, patients=300, progress=False)
    ia = result.incremental_analysis()
    outs = result.outcomes()
    # the lifetime horizon by default (economics.cea_horizon)
    assert (ia["cost"], ia["effect"], ia["horizon"]) == (
        "cost_lifetime",
        "qaly_lifetime",
        "lifetime",
    )
    cost = [outs["cost_lifetime"]["arms"][n]["mean"] for n in result.names]
    qaly = [outs["qaly_lifetime"]["arms"][n]["mean"] for n in result.names]
    expected = calculate_icers(cost, qaly, result.names)
    assert [r["strategy"] for r in ia["rows"]] == [r.strategy for r in expected]
    assert [r["status"] for r in ia["rows"]] == [r.status for r in expected]
    wtp = ia["willingness_to_pay_per_qaly"]
    nmb = {n: wtp * q - c for n, c, q in zip(result.names, cost, qaly, strict=True)}
    assert ia["optimal_strategy"] == max(nmb, key=nmb.get)
    for r in ia["rows"]:
        d = r["net_monetary_benefit_vs_optimal"]
        if r["strategy"] == ia["optimal_strategy"]:
            assert d is None
            continue
        # the paired mean difference is the difference of the arms' mean NMBs
        assert d["mean_difference"] == pytest.approx(
            nmb[r["strategy"]] - nmb[ia["optimal_strategy"]], rel=1e-9, abs=1e-6
        )
        assert d["ci95"][0] <= d["mean_difference"] <= d["ci95"][1]
    data = json.loads((out / "comparison.json").read_text())
    assert data["economics"]["incremental_analysis"]["optimal_strategy"] == ia["optimal_strategy"]
    rows = list(csv.DictReader((out / "incremental_analysis.csv").open()))
    assert [r["strategy"] for r in rows] == [r["strategy"] for r in ia["rows"]]
    assert sum(r["optimal"] == "1" for r in rows) == 1
    assert (out / "ce_plane.png").stat().st_size > 10_000
    assert "Incremental analysis" in (out / "report.html").read_text()


def test_time_rows_say_their_estimators_and_differ_in_restricted_means():
    scns = [load_scenario(SCENARIOS / f"{n}.yaml") for n in ("first_line", "rescue")]
    result = compare(scns, patients=300, progress=False)
    outs = result.outcomes()
    o = outs["time_to_prednisone_le_5mg_days"]
    assert o["estimator"] == "km_median"
    assert o["difference_estimator"] == "rmst_difference_to_day_728"
    arms = o["arms"]
    d = o["differences"]["rescue"]
    assert d["estimator"] == o["difference_estimator"]
    assert d["mean_difference"] == pytest.approx(
        arms["rescue"]["rmst"] - arms["first_line"]["rmst"]
    )
    assert d["ci95"][0] < d["mean_difference"] < d["ci95"][1]
    # every other row: the arms' estimator and a paired difference of it
    assert outs["qaly"]["estimator"] == "mean"
    assert outs["qaly"]["difference_estimator"] == "paired_mean_difference"
    assert outs["relapse"]["difference_estimator"] == "paired_proportion_difference"


def test_net_monetary_benefit_is_an_outcome_on_the_cea_columns():
    scns = [load_scenario(SCENARIOS / f"{n}.yaml") for n in ("first_line", "rescue")]
    result = compare(scns, patients=200, progress=False)
    outs = result.outcomes()
    wtp = result.willingness_to_pay
    for arm in result.names:
        expected = (
            wtp * outs["qaly_lifetime"]["arms"][arm]["mean"]
            - outs["cost_lifetime"]["arms"][arm]["mean"]
        )
        assert outs["net_monetary_benefit"]["arms"][arm]["mean"] == pytest.approx(expected)
    d = outs["net_monetary_benefit"]["differences"]["rescue"]
    ia = result.economics()["arms"]["rescue"]["incremental_net_monetary_benefit"]
    assert d["mean_difference"] == pytest.approx(ia["mean_difference"])
    assert outs["net_monetary_benefit"]["better"] == "higher"


def test_the_paired_difference_of_two_rates_has_a_calibrated_interval():
    """Relapse-like counts in two arms sharing each patient's frailty (gamma, mean 1,
    variance 2) and time at risk: the difference of the ratio-of-sums rates, over 600
    replicates, has a reported SE matching the spread of the estimates (relative MC error
    of an SD of 600: 2.9%; tolerance 4 of those), 95% coverage of the truth within 4
    binomial SEs, and an interval narrower than that of the two rates taken as
    independent."""
    from simulator.outcomes import PairedRatioDifference, RatioEstimate

    rng = np.random.default_rng(31)
    reps, n, lam_a, lam_b = 600, 500, 0.30, 0.22
    est, se, covered, unpaired = [], [], 0, []
    for _ in range(reps):
        t = rng.uniform(0.5, 2.0, n)
        frailty = rng.gamma(0.5, 2.0, n)
        xa = rng.poisson(lam_a * frailty * t).astype(float)
        xb = rng.poisson(lam_b * frailty * t).astype(float)
        rd = PairedRatioDifference(scale=1.0)
        # two chunks, merged: the sums do not depend on the chunking
        rd.add(xa[:200], t[:200], xb[:200], t[:200])
        rest = PairedRatioDifference(scale=1.0)
        rest.add(xa[200:], t[200:], xb[200:], t[200:])
        rd.merge(rest)
        d = rd.to_dict()
        assert d["mean_difference"] == pytest.approx(xb.sum() / t.sum() - xa.sum() / t.sum())
        lo, hi = d["ci95"]
        est.append(d["mean_difference"])
        se.append((hi - lo) / (2 * 1.959963984540054))
        covered += lo <= lam_b - lam_a <= hi
        ra, rb = RatioEstimate(1.0), RatioEstimate(1.0)
        ra.add(xa, t)
        rb.add(xb, t)
        half = [(r.to_dict()["ci95"][1] - r.to_dict()["ci95"][0]) / 2 for r in (ra, rb)]
        unpaired.append(math.hypot(*half) / 1.959963984540054)
    spread = float(np.std(est, ddof=1))
    assert float(np.sqrt(np.mean(np.square(se)))) == pytest.approx(spread, rel=4 * 0.029)
    assert abs(covered / reps - 0.95) < 4 * math.sqrt(0.95 * 0.05 / reps)
    assert np.mean(se) < 0.8 * np.mean(unpaired)


@pytest.mark.parametrize(
    "override",
    ["economics.cea_horizon=clinical", "economics.willingness_to_pay_per_qaly=30000"],
)
def test_arms_valued_differently_are_refused_even_when_populations_may_differ(override):
    """The incremental analysis values every arm with the first arm's willingness to pay
    and horizon, while each arm's net monetary benefit row used its own: compare gave
    -165,080 in the NMB row against -2,567 in the economics section (audit). Such arms
    are refused, with --allow-different-populations too, before anything runs."""
    a = load_scenario(SCENARIOS / "first_line.yaml")
    b = load_scenario(SCENARIOS / "rescue.yaml", [override])
    for allow in (False, True):
        with pytest.raises(InputError, match="how the decision is valued") as err:
            compare([a, b], patients=10, allow_different_populations=allow, progress=False)
        assert override.split("=")[0] in str(err.value)


def test_comparison_json_holds_every_arm_as_run_enough_to_run_it_again():
    from simulator.scenario import scenario_from_dict, scenario_sha256

    arms = [scn("first_line", "regimen.ivig.cycles=3"), scn("rescue")]
    result = compare(arms, patients=60, seed=4, engine="cohort")
    data = json.loads(json.dumps(result.to_json()))
    assert data["horizon_days"] == {"first_line": 728, "rescue": 728}
    again = [scenario_from_dict(data["resolved_scenarios"][n]) for n in result.names]
    for s, a in zip(arms, again, strict=True):
        assert scenario_sha256(a) == scenario_sha256(s) == data["scenario_sha256"][s.name]
    rerun = compare(again, patients=60, seed=4, engine="cohort")
    assert rerun.outcomes() == result.outcomes()


def test_the_comparison_report_says_what_its_colours_mean(tmp_path):
    from simulator.jobs import compare_to_folder

    compare_to_folder(
        [scn("first_line"), scn("rescue")], tmp_path / "c", patients=40, seed=2, engine="cohort"
    )
    page = (tmp_path / "c" / "report.html").read_text()
    assert "<span class='better'>blue</span> has its whole 95% CI on the better side" in page
    assert "class='better'" in page.split("<h2>Outcomes</h2>")[1].split("</table>")[0]


def test_the_incremental_analysis_says_which_calibration_it_rests_on():
    """The answer to the founding question changes with the calibration (docs/model.md
    section 6, "Two basins"); a comparison did not say which one it used. It does now,
    in comparison.json, the terminal and the report, and names what an overlay or
    --set changed."""
    from simulator.cli import format_incremental

    ia = compare(
        [scn("first_line"), scn("steroid_only")], patients=60, seed=5, engine="cohort"
    ).incremental_analysis()
    assert ia["disease_parameters"].startswith("Disease parameters: the calibrated defaults")
    assert "calibration/alternatives" in ia["disease_parameters"]
    assert ia["disease_parameters"] in format_incremental(ia)
    sets = ("disease.ivig.effect_per_g_per_l_per_day=0.01",)
    ia = compare(
        [scn("first_line", *sets), scn("steroid_only", *sets)], patients=60, seed=5
    ).incremental_analysis()
    assert ia["disease_parameters"] == (
        "Disease parameters: 1 of the 13 fitted values differs from the calibrated defaults"
        " (a --params overlay, --set or the scenario's own): ivig.effect_per_g_per_l_per_day."
    )


@pytest.mark.parametrize("horizon", [728, 300])
def test_rescue_started_final_year_counts_the_starts_of_the_horizons_last_year(horizon):
    """The share of an arm's patients whose IVIG start rule fired in the horizon's last
    365 days (the whole horizon when it is shorter), from each patient's start day."""
    from simulator.outcomes import FINAL_YEAR_DAYS

    s = scn("rescue", f"horizon_days={horizon}")
    t = tables_of(s, n=300, seed=11)
    day = t["rescue_day"]
    w0 = max(horizon - FINAL_YEAR_DAYS, 0.0)
    expected = np.mean((day > w0) & (day <= horizon))  # NaN (never started) compares False
    assert expected > 0
    if horizon < FINAL_YEAR_DAYS:
        assert expected == np.mean(t["rescue_started"])
    else:
        assert expected < np.mean(t["rescue_started"])  # some started in the first year
    m = run(s, patients=300, seed=11, engine="cohort", progress=False).metrics
    assert m["rescue_started_final_year"]["mean"] == pytest.approx(expected, abs=1e-12)


def test_ivig_given_final_year_counts_patients_infused_in_the_horizons_last_year():
    """The share of an arm's patients with an IVIG infusion in the horizon's last 365
    days, from each patient's last infusion day; under rescue it includes courses the
    rule started late in year 1, so it is at least the share started in year 2."""
    s = scn("rescue")
    last = cohort.run_chunk(s, make_plan(s), 11, np.arange(300)).outcomes["last_infusion_day"]
    m = run(s, patients=300, seed=11, engine="cohort", progress=False).metrics
    expected = np.mean(last > 728 - 365)  # -inf (never infused) compares False
    assert m["ivig_given_final_year"]["mean"] == pytest.approx(expected, abs=1e-12)
    assert m["ivig_given_final_year"]["mean"] >= m["rescue_started_final_year"]["mean"] > 0
    first = run(scn("first_line"), patients=100, seed=11, engine="cohort", progress=False)
    assert first.metrics["ivig_given_final_year"]["mean"] == 0  # 6 cycles end by day 150


def _ia_metrics(**shares):
    return [{"ivig_given_final_year": {"mean": v}} for v in shares.values()]


def test_the_extrapolation_note_names_each_arm_still_giving_ivig_at_the_horizon():
    """The lifetime extrapolation gives no IVIG after the horizon (docs/model.md section 5,
    Lifetime); an arm that gave IVIG to >= 2% of its patients in the horizon's last year
    is named, with the share, placebo arms and the clinical horizon aside."""
    from simulator.comparison import extrapolation_note

    first, rescue = scn("first_line"), scn("rescue")
    names = ["first_line", "rescue"]
    note = extrapolation_note(names, [first, rescue], _ia_metrics(a=0.0, b=0.32), "cost_lifetime")
    assert note is not None
    assert note.startswith("Extrapolation: rescue gave IVIG to 32.0% of its patients")
    assert "no IVIG after day 728" in note and "the courses this arm would go on" in note
    assert "first_line" not in note.split("scenarios/sweeps/")[0]
    assert "scenarios/sweeps/horizon_first_line_vs_rescue.yaml" in note
    # the threshold: 2% of the arm's patients
    assert (
        extrapolation_note(names, [first, rescue], _ia_metrics(a=0, b=0.0199), "cost_lifetime")
        is None
    )
    assert extrapolation_note(names, [first, rescue], _ia_metrics(a=0, b=0.02), "cost_lifetime")
    # over the simulated horizon only, nothing is extrapolated
    assert (
        extrapolation_note(names, [first, rescue], _ia_metrics(a=0, b=0.32), "cost_total") is None
    )
    # two arms: both named, in arm order, with their shares
    two = extrapolation_note(
        ["rescue", "rescue2"], [rescue, rescue], _ia_metrics(a=0.32, b=0.05), "cost_lifetime"
    )
    assert two.startswith("Extrapolation: rescue, rescue2 gave IVIG to 32.0%, 5.0% of their")
    assert "the courses these arms would go on" in two
    # a placebo arm's infusions are not IVIG
    placebo = scn("rescue", "regimen.ivig.placebo=true")
    assert (
        extrapolation_note(
            ["p"], [placebo], [{"ivig_given_final_year": {"mean": 0.3}}], "cost_lifetime"
        )
        is None
    )


def test_a_comparison_with_a_rescue_arm_says_the_extrapolation_cuts_it_off(tmp_path):
    """With the shipped 2-year horizon the rescue arm still gives IVIG to about a third
    of its patients in year 2 (docs/model.md section 5, Lifetime): the terminal,
    comparison.json and the report say so; without a rescue arm nothing is said."""
    from simulator.cli import format_incremental
    from simulator.jobs import compare_to_folder

    res = compare_to_folder(
        [scn("first_line"), scn("rescue")], tmp_path / "c", patients=200, seed=5
    )
    ia = res.incremental_analysis()
    assert ia["extrapolation"] and "rescue gave IVIG to" in ia["extrapolation"]
    assert ia["extrapolation"] in format_incremental(ia)
    data = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert data["economics"]["incremental_analysis"]["extrapolation"] == ia["extrapolation"]
    assert "Extrapolation: rescue gave IVIG to" in (tmp_path / "c" / "report.html").read_text()
    none = compare([scn("first_line"), scn("steroid_only")], patients=60, seed=5, engine="cohort")
    assert none.incremental_analysis()["extrapolation"] is None


def test_a_single_run_of_a_rescue_scenario_says_the_extrapolation_cuts_it_off(tmp_path):
    """`simulate run` of rescue.yaml shows lifetime rows too: its report and terminal
    carry the same note; a first-line run, whose IVIG ends by day 150, does not."""
    from simulator.jobs import run_to_folder
    from simulator.report.outputs import run_extrapolation_note

    res = run_to_folder(scn("rescue"), tmp_path / "r", patients=200, seed=5, progress=False)
    note = run_extrapolation_note(res.scenario, res.metrics)
    assert note and note.startswith("Extrapolation: rescue gave IVIG to")
    assert note in (tmp_path / "r" / "report.html").read_text().replace("&#x27;", "'")
    res = run_to_folder(scn("first_line"), tmp_path / "f", patients=200, seed=5, progress=False)
    assert run_extrapolation_note(res.scenario, res.metrics) is None
    assert "Extrapolation:" not in (tmp_path / "f" / "report.html").read_text()
