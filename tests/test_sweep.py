"""Sweeps: designs, analyses against known answers, resume, and input errors."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SCENARIOS

from simulator.designs.common import global_indices as _global
from simulator.errors import InputError
from simulator.runner import run
from simulator.scenario.sweep_schema import PSA, Morris, Sobol
from simulator.sweeps import plan_sweep, points_of, psa_analysis

FIXTURES = ROOT / "tests" / "fixtures" / "sweeps"


def ishigami(p, a=7.0, b=0.1):
    x1, x2, x3 = p["x1"], p["x2"], p["x3"]
    return math.sin(x1) + a * math.sin(x2) ** 2 + b * x3**4 * math.sin(x1)


def test_sobol_path_recovers_the_ishigami_indices():
    """Ishigami & Homma (1990), a=7, b=0.1: S1 = (0.3139, 0.4424, 0),
    ST = (0.5576, 0.4424, 0.2437) (Sobol & Levitan 1999; SALib's Ishigami docstring).
    Tolerance: twice SALib's 95% bootstrap half-width (about 4 standard errors)."""
    bounds = {
        "x1": {"low": -math.pi, "high": math.pi},
        "x2": {"low": -math.pi, "high": math.pi},
        "x3": {"low": -math.pi, "high": math.pi},
    }
    design = Sobol.model_validate({"type": "sobol", "parameters": bounds, "n": 2048})
    pts = points_of(design, seed=7, base_values={})
    assert len(pts) == 2048 * (3 + 2)
    y = {"f": np.array([ishigami(p) for p in pts])}
    res = _global(design, pts, y, seed=7)["f"]
    for est, conf, true in zip(
        res["S1"], res["S1_ci95_halfwidth"], (0.3139, 0.4424, 0.0), strict=True
    ):
        assert abs(est - true) < 2 * conf + 1e-3
    for est, conf, true in zip(
        res["ST"], res["ST_ci95_halfwidth"], (0.5576, 0.4424, 0.2437), strict=True
    ):
        assert abs(est - true) < 2 * conf + 1e-3


def test_morris_ranks_a_linear_function_by_its_slopes():
    bounds = {n: {"low": 0.0, "high": 1.0} for n in ("a", "b", "c")}
    design = Morris.model_validate({"type": "morris", "parameters": bounds, "trajectories": 20})
    pts = points_of(design, seed=3, base_values={})
    y = {"f": np.array([3 * p["a"] + 0.5 * p["b"] + 0 * p["c"] for p in pts])}
    res = _global(design, pts, y, seed=3)["f"]
    np.testing.assert_allclose(res["mu_star"], [3.0, 0.5, 0.0], atol=1e-9)
    np.testing.assert_allclose(res["sigma"], [0.0, 0.0, 0.0], atol=1e-9)


def _psa(parameters, draws, seed, cost_a, cost_b, groups=None):
    """A PSA of arms A and B at a willingness to pay of 0 (net benefit = -cost) over
    ``parameters`` (distributions); costs are functions of a draw. Returns (draws,
    analysis)."""
    spec = {"type": "psa", "draws": draws, "parameters": parameters, "willingness_to_pay": [0.0]}
    if groups:
        spec["groups"] = groups
    design = PSA.model_validate(spec)
    pts = points_of(design, seed=seed, base_values={})
    outs = [
        {"A:cost_total": cost_a(p), "A:qaly": 0.0, "B:cost_total": cost_b(p), "B:qaly": 0.0}
        for p in pts
    ]
    return pts, psa_analysis(design, pts, outs, ["A", "B"], reference_wtp=0.0)


def _two_arm_psa(draws, theta, seed, cost_a, cost_b):
    """:func:`_psa` over ``theta`` (a distribution) and an irrelevant ``noise`` ~ U(0, 1)."""
    noise = {"dist": "uniform", "low": 0, "high": 1}
    return _psa({"theta": theta, "noise": noise}, draws, seed, cost_a, cost_b)


def test_evppi_of_a_group_sees_its_parameters_acting_together():
    """The net benefit is 1000 z1 z2: knowing z1 and z2 is knowing everything, so the
    EVPPI of any group holding both is the EVPI. An additive metamodel (one spline a
    parameter, used for groups of three or more until 2026-11-29) cannot represent a
    product and gave 85 for {z1, z2, z3} against an EVPI of 300 (statistics audit).
    No Monte Carlo noise here: the tolerance is the splines' approximation of the
    product (about 1% measured)."""
    n01 = {"dist": "normal", "mean": 0, "sd": 1}
    _, res = _psa(
        {"z1": n01, "z2": n01, "z3": n01, "z4": n01},
        1000,
        11,
        lambda p: 0.0,
        lambda p: -1000 * p["z1"] * p["z2"],
        groups={"z12": ["z1", "z2"], "z123": ["z1", "z2", "z3"], "z1234": ["z1", "z2", "z3", "z4"]},
    )
    evpi = res["evpi_at_reference"]
    assert evpi > 250  # E[max(0, 1000 z1 z2)] = 1000 / pi = 318, less the sample's max E
    for g, v in res["evppi_per_patient_at_reference"].items():
        assert v == pytest.approx(evpi, rel=0.05), g


def test_evppi_is_never_reported_above_the_evpi(caplog):
    """Knowing one parameter is worth no more than knowing all: an EVPPI estimate above
    the EVPI is the metamodel fitting noise (statistics audit: 0.0912 against 0.0898 on
    30 draws of a wiggly net benefit). It is reported as the EVPI, the group listed in
    ``evppi_capped_at_evpi``, with a warning giving the estimate."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, 30)
    y = np.sin(8 * x) + 0.3 + 0.1 * rng.standard_normal(30)
    capped = []
    for shift in np.linspace(-0.6, 0.6, 25):
        with caplog.at_level("WARNING", logger="simulator.designs.psa"):
            _, res = _psa(
                {"x": {"dist": "uniform", "low": 0, "high": 1}},
                30,
                int(1000 * (shift + 1)),
                lambda p: 0.0,
                lambda p, s=shift: -(np.interp(p["x"], np.sort(x), y[np.argsort(x)]) + s),
            )
        ev, evpi = res["evppi_per_patient_at_reference"]["x"], res["evpi_at_reference"]
        assert ev <= evpi
        if res.get("evppi_capped_at_evpi"):
            assert res["evppi_capped_at_evpi"] == ["x"] and ev == evpi
            capped.append(shift)
    assert capped, "no case above the EVPI among these: the test no longer tests the cap"
    assert "exceeds the EVPI" in caplog.text


def test_psa_value_of_information_on_a_known_decision():
    """Two arms whose net benefit differs by theta ~ N(0, 1000): EVPI = 1000/sqrt(2 pi);
    EVPPI for theta's group equals it, for an irrelevant parameter it is about 0."""
    pts, res = _two_arm_psa(
        4000, {"dist": "normal", "mean": 0, "sd": 1000}, 5, lambda p: 0.0, lambda p: -p["theta"]
    )
    theta = np.array([p["theta"] for p in pts])
    exact = np.mean(np.maximum(theta, 0)) - max(0.0, theta.mean())
    assert res["evpi_at_reference"] == pytest.approx(exact, rel=1e-12)
    se = theta.std() / math.sqrt(len(theta))
    assert abs(res["evpi_at_reference"] - 1000 / math.sqrt(2 * math.pi)) < 4 * se
    evppi = res["evppi_per_patient_at_reference"]
    assert evppi["theta"] == pytest.approx(res["evpi_at_reference"], rel=0.02)
    assert evppi["noise"] < 0.01 * res["evpi_at_reference"] + 4 * se
    assert res["ceac"]["B"][0] == pytest.approx(np.mean(theta > 0))


def test_psa_frontier_dominated_strategy_and_population_scaling():
    """Three arms: C costs more and gives less than A in every draw, so it is never
    optimal; the CEAF follows the arm with the highest expected NMB; EVPI and EVPPI are
    never negative, have standard errors, and scale to the population given."""
    design = PSA.model_validate(
        {
            "type": "psa",
            "draws": 500,
            "parameters": {
                "theta": {"dist": "normal", "mean": 0.05, "sd": 0.1},
                "noise": {"dist": "uniform", "low": 0, "high": 1},
            },
            "willingness_to_pay": [0.0, 10000.0, 50000.0],
        }
    )
    pts = points_of(design, seed=9, base_values={})
    outs = [
        {
            "A:cost_total": 1000.0,
            "A:qaly": 1.0,
            "B:cost_total": 3000.0,
            "B:qaly": 1.0 + p["theta"],
            "C:cost_total": 1500.0,
            "C:qaly": 0.9,
        }
        for p in pts
    ]
    res = psa_analysis(design, pts, outs, ["A", "B", "C"], reference_wtp=10000.0, population=1234.5)
    assert all(v == 0.0 for v in res["ceac"]["C"])
    assert "C" not in res["optimal_strategy"]
    theta = np.array([p["theta"] for p in pts])
    for k, w in enumerate(res["willingness_to_pay"]):
        mean_nmb = {"A": w - 1000, "B": w * (1 + theta.mean()) - 3000, "C": w * 0.9 - 1500}
        best = max(mean_nmb, key=mean_nmb.get)
        assert res["optimal_strategy"][k] == best
        assert res["ceaf"][k] == res["ceac"][best][k]
    assert res["optimal_strategy"][0] == "A" and res["optimal_strategy"][-1] == "B"
    assert min(res["evpi_per_patient"]) >= 0.0
    assert min(res["evppi_per_patient_at_reference"].values()) >= 0.0
    assert res["evpi_at_reference_se"] > 0
    assert res["evpi_population_at_reference"] == pytest.approx(1234.5 * res["evpi_at_reference"])
    # the metamodels fit the incremental NMB of B and of C against A: B - A is linear in
    # theta, C - A a constant (fitted exactly)
    assert res["evppi_metamodel_strategies"] == ["B - A", "C - A"]
    r2 = res["evppi_metamodel_r_squared"]
    assert r2["theta"][0] > 0.99 and r2["noise"][0] < 0.1
    assert r2["theta"][1] == r2["noise"][1] == 1.0


def test_psa_value_of_information_is_exactly_zero_when_one_arm_wins_every_draw():
    """B beats A by at least 100 in every draw: the decision never changes, so EVPI and
    every EVPPI are 0 exactly (E[max] and max E are then the same mean summed two ways;
    rounding once showed ~1e-11 as a partial EVPI bar), with standard errors of 0."""
    _, res = _two_arm_psa(
        300,
        {"dist": "uniform", "low": 100.0, "high": 5000.0},
        4,
        lambda p: 0.1 * p["noise"],
        lambda p: -p["theta"] / 3,
    )
    assert res["evpi_at_reference"] == 0.0 and res["evpi_at_reference_se"] == 0.0
    assert set(res["evppi_per_patient_at_reference"].values()) == {0.0}
    assert set(res["evppi_se"].values()) == {0.0}
    assert res["ceac"]["B"] == [1.0]


def test_psa_with_too_few_draws_for_a_metamodel_reports_evppi_as_not_computed(tmp_path, caplog):
    """Below 20 draws no GAM is fitted: EVPPI is null with a reason (it was reported as
    0 with an SE of 0, a value the decision cannot tell from 'no value of information');
    EVPI is still computed. The folder's report and figure say so."""
    _, res = _two_arm_psa(
        12, {"dist": "normal", "mean": 0, "sd": 1000}, 5, lambda p: 0.0, lambda p: -p["theta"]
    )
    assert res["evpi_at_reference"] > 0
    assert res["evppi_per_patient_at_reference"] == {"theta": None, "noise": None}
    assert res["evppi_se"] == {"theta": None, "noise": None}
    assert "at least 20 draws (this PSA has 12)" in res["evppi_unavailable"]
    assert "EVPPI not computed" in caplog.text
    # and at 20 draws it is computed
    _, res20 = _two_arm_psa(
        20, {"dist": "normal", "mean": 0, "sd": 1000}, 5, lambda p: 0.0, lambda p: -p["theta"]
    )
    assert "evppi_unavailable" not in res20
    assert res20["evppi_per_patient_at_reference"]["theta"] > 0

    from simulator.jobs import sweep_to_folder

    plan = plan_sweep(SCENARIOS / "sweeps" / "psa_first_line_vs_rescue.yaml", patients=6, draws=8)
    sweep_to_folder(plan, tmp_path / "s", workers=1, progress=False)
    psa = json.loads((tmp_path / "s" / "sweep.json").read_text())["analysis"]["psa"]
    assert set(psa["evppi_per_patient_at_reference"].values()) == {None}
    assert set(psa["evppi_population_at_reference"].values()) == {None}
    report = (tmp_path / "s" / "report.html").read_text()
    assert "EVPPI not computed" in report and "<td>n/a</td>" in report
    assert (tmp_path / "s" / "evppi.png").stat().st_size > 0


def test_psa_draws_follow_their_distributions_and_correlation():
    design = PSA.model_validate(
        {
            "type": "psa",
            "draws": 20000,
            "parameters": {
                "a": {"dist": "normal", "mean": 1, "sd": 2},
                "b": {"dist": "lognormal", "mean": 10, "sd": 3},
            },
            "correlation": [[1, 0.6], [0.6, 1]],
        }
    )
    pts = points_of(design, seed=1, base_values={})
    a = np.array([p["a"] for p in pts])
    b = np.array([p["b"] for p in pts])
    n = len(a)
    assert abs(a.mean() - 1) < 4 * 2 / math.sqrt(n)
    assert abs(b.mean() - 10) < 4 * 3 / math.sqrt(n)
    from scipy import stats

    rho = stats.spearmanr(a, b)[0]
    assert abs(rho - 6 / math.pi * math.asin(0.6 / 2)) < 0.03


def test_sweep_json_names_the_rows_of_the_correlation_matrix():
    """sweep.json is written with sorted keys: ``design_spec.parameters`` comes out in
    alphabetical order, the matrix in the sweep file's. ``correlation_parameters`` names
    its rows in the file's order; read with it, the matrix matches the draws (statistics
    audit: read with ``parameters``, 0.9 sat beside a pair whose draws were
    uncorrelated)."""
    from scipy import stats

    from simulator.report.atomic import json_text
    from simulator.sweeps import design_spec

    design = PSA.model_validate(
        {
            "type": "psa",
            "draws": 4000,
            "parameters": {
                "z_price": {"dist": "uniform", "low": 34, "high": 59},
                "m_effect": {"dist": "lognormal", "median": 0.008, "cv": 0.3},
                "a_slope": {"dist": "lognormal", "median": 3, "cv": 0.35},
            },
            "correlation": [[1, 0.9, 0], [0.9, 1, 0], [0, 0, 1]],
        }
    )
    spec = json.loads(json_text({"design_spec": design_spec(design)}))["design_spec"]
    assert list(spec["parameters"]) == ["a_slope", "m_effect", "z_price"]  # sorted
    names = spec["correlation_parameters"]
    assert names == ["z_price", "m_effect", "a_slope"]
    pts = points_of(design, seed=3, base_values={})
    x = np.array([[p[n] for n in names] for p in pts])
    rho = stats.spearmanr(x).statistic
    target = 6 / math.pi * np.arcsin(np.asarray(spec["correlation"]) / 2)
    # Spearman's SE at n = 4,000 is at most about 1/sqrt(n - 3) = 0.016
    assert np.max(np.abs(rho - target)) < 4 / math.sqrt(len(pts) - 3)


def test_one_way_base_point_equals_a_plain_run():
    plan = plan_sweep(FIXTURES / "one_way_small.yaml")
    from simulator.sweeps import evaluate_point

    engine = "cohort"
    outs = evaluate_point(
        (
            plan.scenarios,
            plan.arms,
            plan.points[0],
            plan.spec.patients,
            plan.seed,
            engine,
            False,
            plan.spec.outcomes,
            plan.applies,
        )
    )
    metrics = run(plan.scenarios[0], patients=60, seed=11, engine=engine).metrics
    for name in plan.spec.outcomes:
        assert outs[name] == metrics[name]["mean"], name
    assert plan.points[0] == {}
    assert len(plan.points) == 1 + 2 + 3


def sweep_cmd(*args, cwd=None):
    return [sys.executable, "-m", "simulator", "sweep", *map(str, args)]


def test_resume_after_kill_gives_the_same_results(tmp_path):
    sweep = FIXTURES / "one_way_small.yaml"
    whole = tmp_path / "whole"
    proc = subprocess.run(
        sweep_cmd(sweep, "--out", whole, "--quiet"), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "whole.partial").exists()
    cut = tmp_path / "cut"
    partial = tmp_path / "cut.partial" / "points"
    p = subprocess.Popen(sweep_cmd(sweep, "--out", cut, "--quiet"), stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (
        partial.exists() and len(list(partial.glob("*.json"))) >= 2
    ):
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    saved = len(list(partial.glob("*.json")))
    assert 2 <= saved < 6, "the run should have been killed part-way"
    assert not cut.exists()
    proc = subprocess.run(
        sweep_cmd(sweep, "--out", cut, "--quiet"), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.relative_to(whole).as_posix() for p in whole.rglob("*") if p.is_file())
    assert {"sweep.json", "sweep.csv", "report.html", ".simulate-manifest.json"} <= set(files)
    assert files == sorted(p.relative_to(cut).as_posix() for p in cut.rglob("*") if p.is_file())
    for f in files:  # every file, sweep.json (key order included) and the report too
        assert (cut / f).read_bytes() == (whole / f).read_bytes(), f
    assert not (tmp_path / "cut.partial").exists()
    assert sorted(os.listdir(tmp_path)) == ["cut", "whole"]


def _small_sweep_in(folder):
    """The small one-way sweep fixture copied to ``folder/s.yaml`` (scenario paths made
    absolute), and its text, for tests that edit it."""
    text = (
        (FIXTURES / "one_way_small.yaml")
        .read_text()
        .replace("../../../scenarios", str(ROOT / "scenarios"))
    )
    sweep = folder / "s.yaml"
    sweep.write_text(text)
    return sweep, text


def test_a_changed_sweep_file_is_refused_for_resuming(tmp_path):
    sweep, text = _small_sweep_in(tmp_path)
    out = tmp_path / "out"
    partial = tmp_path / "out.partial"
    plan = plan_sweep(sweep)
    from simulator.sweeps import checkpoint

    checkpoint(plan, out, paired=True).open()
    assert (partial / "manifest.json").is_file()
    sweep.write_text(text.replace("patients: 60", "patients: 61"))
    proc = subprocess.run(
        sweep_cmd(sweep, "--out", out), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "different sweep" in proc.stderr and "--fresh" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_checkpoint_of_a_finished_sweep_killed_before_removing_it_is_not_in_the_way(
    tmp_path, monkeypatch
):
    """A kill after the results are swapped in but before the checkpoint is removed leaves
    ``out.partial``; the output folder's manifest records whose checkpoint it was, so the
    next run into the folder (of another sweep) removes it instead of refusing it as an
    interrupted run of a different sweep."""
    from simulator import jobs

    sweep, text = _small_sweep_in(tmp_path)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(jobs, "_remove_checkpoint", lambda out: None)  # killed right there
        jobs.sweep_to_folder(plan_sweep(sweep), out, progress=False)
    assert (tmp_path / "out.partial" / "manifest.json").is_file() and out.is_dir()
    manifest = json.loads((out / ".simulate-manifest.json").read_text())
    assert manifest["checkpoint_fingerprint"] == plan_sweep(sweep).fingerprint()
    sweep.write_text(text.replace("patients: 60", "patients: 61"))
    proc = subprocess.run(
        sweep_cmd(sweep, "--out", out, "--quiet"), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "out.partial").exists()
    assert json.loads((out / "sweep.json").read_text())["patients_per_point"] == 61


BAD = {
    "unknown_path": (
        "design:\n  type: one_way\n  parameters:\n"
        "    regimen.ivig.dose_g_per_k: {low: 1, high: 2}\n",
        ["dose_g_per_k", "did you mean 'dose_g_per_kg'"],
    ),
    "range_excludes_base": (
        "design:\n  type: one_way\n  parameters:\n"
        "    regimen.ivig.dose_g_per_kg: {low: 2.5, high: 3}\n",
        ["excludes the base value 2", "bad.yaml:8:"],
    ),
    "bad_distribution": (
        "design:\n  type: psa\n  draws: 10\n  parameters:\n"
        "    regimen.ivig.dose_g_per_kg: {dist: lognormal, mean: 2}\n",
        ["lognormal needs", "dose_g_per_kg"],
    ),
    "sobol_not_power_of_two": (
        "design:\n  type: sobol\n  n: 100\n  parameters:\n"
        "    regimen.ivig.dose_g_per_kg: {low: 1, high: 3}\n"
        "    regimen.ivig.cycles: {low: 3, high: 8}\n",
        ["power of two", "64 or 128"],
    ),
    "invalid_value_in_range": (
        "design:\n  type: one_way\n  parameters:\n"
        "    regimen.ivig.dose_g_per_kg: {low: -1, high: 2}\n",
        ["not valid", "-1"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweep_input_is_refused_before_anything_runs(tmp_path, case):
    body, expected = BAD[case]
    head = (
        f"name: bad\nbase: {ROOT / 'scenarios' / 'first_line.yaml'}\npatients: 10\n"
        "outcomes: [ivig_g]\n"
    )
    if case == "bad_distribution":
        head = head.replace(
            f"base: {ROOT / 'scenarios' / 'first_line.yaml'}",
            f"strategies:\n  a: {ROOT / 'scenarios' / 'first_line.yaml'}\n"
            f"  b: {ROOT / 'scenarios' / 'rescue.yaml'}",
        )
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(head + body)
    with pytest.raises(InputError) as err:
        plan_sweep(sweep)
    for text in expected:
        assert text in str(err.value), str(err.value)
    proc = subprocess.run(
        sweep_cmd(sweep, "--out", tmp_path / "o"), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error:")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_shipped_sweep_files_are_valid():
    for path in sorted((ROOT / "scenarios" / "sweeps").glob("*.yaml")):
        plan = plan_sweep(path)
        assert plan.points, path


def test_sweep_outputs_and_report(tmp_path):
    out = tmp_path / "o"
    proc = subprocess.run(
        sweep_cmd(FIXTURES / "one_way_small.yaml", "--out", out, "--quiet"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "sweep.json").read_text())
    assert data["design"] == "one_way" and len(data["points"]) == 6
    bars = data["analysis"]["tornado"]["cpk_normal_month_6"]
    assert {b["parameter"] for b in bars[1:]} == {
        "regimen.ivig.dose_g_per_kg",
        "disease.steroid.emax_per_day",
    }
    import csv as csv_module

    rows = list(csv_module.DictReader((out / "sweep.csv").open()))
    # long and tidy: one row per point and outcome, parameters numeric at every point
    assert list(rows[0]) == [
        "point",
        "regimen.ivig.dose_g_per_kg",
        "disease.steroid.emax_per_day",
        "arm",
        "outcome",
        "estimator",
        "value",
        "mc_se",
        "difference_vs_base",
        "difference_ci95_low",
        "difference_ci95_high",
    ]
    assert len(rows) == 6 * 3
    # the base point has no difference from itself; every other point has one
    assert all(r["difference_vs_base"] == "" for r in rows if r["point"] == "0")
    assert all(r["difference_vs_base"] != "" for r in rows if r["point"] != "0")
    for r in rows:
        float(r["regimen.ivig.dose_g_per_kg"])
        float(r["disease.steroid.emax_per_day"])
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page
    assert "<h2>Points</h2>" in page and "steroid Emax (1/day)" in page
    # low/high: a tornado; listed values: a line plot per outcome
    assert Path(out / "tornado.png").is_file()
    assert Path(out / "values_cpk_normal_month_6.png").is_file()


def test_one_way_points_are_compared_with_the_base_patient_by_patient(tmp_path):
    """The paired difference of each point from the base case is the mean of per-patient
    differences between two plain runs on the same patients, with the interval of that
    mean; with common random numbers it is narrower than the unpaired interval."""
    from simulator.runner import run
    from simulator.sweeps import run_sweep, with_overrides

    plan = plan_sweep(FIXTURES / "one_way_small.yaml")
    res = run_sweep(plan, tmp_path / "o", progress=False)
    paired = res.analysis["paired_vs_base"]
    assert paired[0] == {} and len(paired) == len(plan.points)

    def per_patient(point, column):
        cols = []
        scn = with_overrides(plan.scenarios[0], point)
        run(
            scn,
            patients=plan.spec.patients,
            seed=plan.seed,
            engine="cohort",
            progress=False,
            sink=lambda t, _e: cols.append(t[column]),
        )
        return np.concatenate(cols).astype(float)

    base = per_patient(plan.points[0], "cumulative_prednisone_g")
    narrower = 0
    for i in range(1, len(plan.points)):
        d = per_patient(plan.points[i], "cumulative_prednisone_g") - base
        got = paired[i]["cumulative_prednisone_g"]
        assert got["n"] == d.size
        assert got["mean_difference"] == pytest.approx(d.mean(), rel=1e-12, abs=1e-12)
        half = 1.959963984540054 * d.std(ddof=1) / math.sqrt(d.size)
        assert got["ci95"] == pytest.approx([d.mean() - half, d.mean() + half], rel=1e-9, abs=1e-12)
        # a mean with no missing values: the paired mean difference is the difference of
        # the two points' estimates
        out_i, out_0 = res.outputs[i], res.outputs[0]
        assert got["mean_difference"] == pytest.approx(
            out_i["cumulative_prednisone_g"] - out_0["cumulative_prednisone_g"], abs=1e-9
        )
        unpaired = 1.96 * math.hypot(
            out_i["cumulative_prednisone_g_se"], out_0["cumulative_prednisone_g_se"]
        )
        narrower += half < unpaired
    assert narrower == len(plan.points) - 1
    # the tornado bars carry the same intervals, point by point
    bars = res.analysis["tornado"]["cumulative_prednisone_g"][1:]
    for b in bars:
        assert b["difference_vs_base"] == [
            paired[j]["cumulative_prednisone_g"] for j in b["points"]
        ]


def test_a_point_without_its_patient_values_is_evaluated_again(tmp_path):
    from simulator.sweeps import checkpoint, run_sweep

    plan = plan_sweep(FIXTURES / "one_way_small.yaml")
    whole = run_sweep(plan, tmp_path / "a", progress=False)
    store = checkpoint(plan, tmp_path / "b", paired=True)
    assert store.open() == {}
    # a checkpoint whose point 3 lost its per-patient values (say, copied without them)
    for i, out in enumerate(whole.outputs):
        store.save(i, out, None if i == 3 else {"x": np.zeros(1)})
    again = checkpoint(plan, tmp_path / "b", paired=True)
    assert sorted(again.open()) == [0, 1, 2, 4, 5]
    assert again.arrays(0)["x"].tolist() == [0.0]
    # a store that needs no arrays counts every point
    assert sorted(checkpoint(plan, tmp_path / "b", paired=False).open()) == list(range(6))


def test_sweep_command_takes_patients_draws_and_set(tmp_path):
    out = tmp_path / "psa"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "sweep",
            str(SCENARIOS / "sweeps" / "psa_first_line_vs_rescue.yaml"),
            "--patients",
            "20",
            "--draws",
            "3",
            "--set",
            "economics.cea_horizon=clinical",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["points"]) == 3
    assert data["patients_per_point"] == 20
    assert data["analysis"]["psa"]["cost"] == "cost_total"  # the --set reached every arm
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "sweep",
            str(SCENARIOS / "sweeps" / "tornado_first_line_vs_rescue.yaml"),
            "--draws",
            "3",
            "--out",
            str(tmp_path / "t"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "only a psa design has draws" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "t").exists()


def test_a_psa_on_two_workers_writes_the_bytes_of_one_worker(tmp_path):
    """Two workers draw the points, fit the EVPPI metamodels and draw the figures
    (parallel.session_map); the folder is byte for byte that of one worker. 24 draws:
    from 20 on the metamodels are fitted (below, EVPPI is not computed)."""
    from simulator.jobs import sweep_to_folder

    psa = SCENARIOS / "sweeps" / "psa_first_line_vs_rescue.yaml"
    plan = plan_sweep(psa, patients=12, draws=24)
    outs = {w: tmp_path / f"w{w}" for w in (1, 2)}
    for workers, out in outs.items():
        sweep_to_folder(plan, out, workers=workers, progress=False)
    psa_out = json.loads((outs[1] / "sweep.json").read_text())["analysis"]["psa"]
    r2 = [v for per_arm in psa_out["evppi_metamodel_r_squared"].values() for v in per_arm]
    # 7 groups x 2 strategies after the first, fitted
    assert len(r2) == 14 and max(r2) > 0.1
    names = sorted(p.name for p in outs[1].iterdir())
    assert {"psa_scatter.png", "ceac.png", "evppi.png", "sweep.json"} <= set(names)
    assert sorted(p.name for p in outs[2].iterdir()) == names
    for name in names:
        assert (outs[1] / name).read_bytes() == (outs[2] / name).read_bytes(), name


def test_a_parameter_only_one_arm_has_leaves_the_other_arms_figures_out():
    from simulator.report.sweep_figures import _key_label, _labels, _touches, param_label

    plan = plan_sweep(SCENARIOS / "sweeps" / "rescue_threshold.yaml")
    name = "regimen.ivig.start_when.any[0].all[1].below.tis"
    assert not _touches(plan, name, "first_line:qaly")  # first-line IVIG has no rule
    assert _touches(plan, name, "rescue:qaly")
    assert _touches(plan, name, "rescue-first_line:qaly")
    # labels from the registry and the parameter's own name, not the dotted path
    assert param_label(name) == "below tis"
    assert _key_label("rescue-first_line:qaly", _labels(plan)) == (
        "QALYs (discounted) [QALY], rescue - first_line"
    )


def test_every_design_is_a_module_with_points_analysis_and_figures():
    import typing

    from simulator.designs import DESIGNS
    from simulator.scenario.sweep_schema import SweepFile

    kinds = set()
    for t in typing.get_args(SweepFile.model_fields["design"].annotation):
        for u in typing.get_args(t) or (t,):
            if hasattr(u, "model_fields") and "type" in u.model_fields:
                kinds.update(typing.get_args(u.model_fields["type"].annotation))
    assert kinds == set(DESIGNS)
    for name, mod in DESIGNS.items():
        assert callable(mod.points) and callable(mod.analyse) and callable(mod.figures), name
        assert isinstance(mod.KEEPS_PATIENT_VALUES, bool)


def _posterior_sweep(tmp_path, csv_text, extra=""):
    (tmp_path / "posterior.csv").write_text(csv_text)
    sweep = tmp_path / "psa.yaml"
    sweep.write_text(
        "name: psa_posterior\nstrategies:\n"
        f"  rescue: {SCENARIOS / 'rescue.yaml'}\n  first_line: {SCENARIOS / 'first_line.yaml'}\n"
        "patients: 20\noutcomes: [qaly]\ndesign:\n  type: psa\n  draws: 40\n"
        "  from_posterior: posterior.csv\n" + extra
    )
    return sweep


def test_a_psa_draws_its_parameters_from_a_calibration_posterior(tmp_path):
    sweep = _posterior_sweep(
        tmp_path,
        "disease.steroid.emax_per_day,weight\n0.10,0\n0.12,1\n0.15,3\n",
        "  parameters:\n    economics.prices.ivig_per_g: {dist: uniform, low: 34, high: 59}\n",
    )
    plan = plan_sweep(sweep)
    assert plan.parameter_names == ["economics.prices.ivig_per_g", "disease.steroid.emax_per_day"]
    emax = [p["disease.steroid.emax_per_day"] for p in plan.points]
    assert set(emax) <= {0.12, 0.15}  # a row of weight 0 is never drawn
    share = emax.count(0.15) / len(emax)
    assert abs(share - 0.75) < 4 * math.sqrt(0.75 * 0.25 / len(emax))
    assert all(34 <= p["economics.prices.ivig_per_g"] <= 59 for p in plan.points)
    # the posterior is part of the sweep's identity (a resume never mixes two posteriors)
    before = plan.fingerprint()
    (tmp_path / "posterior.csv").write_text(
        "disease.steroid.emax_per_day,weight\n0.10,0\n0.12,1\n0.16,3\n"
    )
    assert plan_sweep(sweep).fingerprint() != before


@pytest.mark.parametrize(
    ("csv_text", "fragment"),
    [
        ("disease.steroid.emax_per_day\n0.1\n", "weight column"),
        ("disease.steroid.emax_per_day,weight\n-0.1,1\n", "cannot be set"),
        ("disease.steroid.nope,weight\n0.1,1\n", "cannot be set"),
        ("disease.steroid.emax_per_day,weight\n0.1,-1\n", "weights must be >= 0"),
        ("disease.steroid.emax_per_day,weight\nabc,1\n", "not a number"),
    ],
)
def test_a_bad_posterior_is_an_input_error(tmp_path, csv_text, fragment):
    with pytest.raises(InputError) as err:
        plan_sweep(_posterior_sweep(tmp_path, csv_text))
    assert fragment in str(err.value) and "from_posterior" in str(err.value)


def test_the_points_table_shows_numbers_as_people_read_them():
    """Report table of points: drawn inputs and estimates to 4 significant digits, from
    1,000 up as whole numbers with separators (sweep.csv keeps every digit)."""
    from simulator.report.sweep_report import _num, _short

    assert _short(0.004969634360294248) == "0.00497"
    assert _short(2.0) == "2" and _short("base") == "base"
    assert _num(20895.4, 4) == "20,895" and _num(1479.6, 3) == "1,480"
    assert _num(0.92581, 4) == "0.9258" and _num(-0.017912, 3, "+") == "-0.0179"
    assert _num(1234.5, 3, "+") == "+1,234" and _num(0.015, 3, "+") == "+0.015"


def test_the_shipped_psa_is_centred_on_the_current_defaults():
    """A refit moves the calibrated defaults; the PSA's centres (lognormal medians,
    normal means) must follow them (to the 4 digits written in the file), or the PSA
    analyses another base case than `simulate run` and `compare`."""
    import yaml

    from simulator.scenario import load_scenario

    psa = SCENARIOS / "sweeps" / "psa_first_line_vs_rescue.yaml"
    spec = yaml.safe_load(psa.read_text())
    scn = load_scenario(SCENARIOS / "first_line.yaml")
    centred = 0
    for path, dist in spec["design"]["parameters"].items():
        centre = dist.get("median", dist.get("mean"))
        if centre is None:  # a range (the price, a case fatality), not a centre
            continue
        value: object = scn
        for part in path.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        assert isinstance(value, float), path
        assert centre == pytest.approx(value, rel=5e-4), path
        centred += 1
    assert centred == 9


def test_a_sweep_of_strategies_reports_the_difference_of_a_rate_and_of_a_time(tmp_path):
    """A rate outcome with strategies stopped the sweep with an internal error (compare
    gave rates no difference); its B-A row is now the difference of the two arms' rates.
    A time to an event's B-A row is a difference of restricted means, not of medians."""
    from simulator.jobs import sweep_to_folder

    spec = tmp_path / "rate.yaml"
    spec.write_text(
        "name: rate\ndescription: a rate and a time across strategies\n"
        f"strategies:\n  rescue: {SCENARIOS / 'rescue.yaml'}\n"
        f"  first_line: {SCENARIOS / 'first_line.yaml'}\n"
        "patients: 40\n"
        "outcomes: [relapse_rate_per_100_patient_years, time_to_cpk_normal_days]\n"
        "design:\n  type: one_way\n  parameters:\n"
        "    regimen.ivig.cycles: {values: [4, 6]}\n"
    )
    plan = plan_sweep(spec)
    sweep_to_folder(plan, tmp_path / "out", workers=1, progress=False)
    rows = (tmp_path / "out" / "sweep.csv").read_text().splitlines()
    header = rows[0].split(",")
    table = [dict(zip(header, r.split(","), strict=True)) for r in rows[1:]]

    def value(arm, outcome):
        (row,) = [
            r for r in table if r["point"] == "0" and r["arm"] == arm and r["outcome"] == outcome
        ]
        return float(row["value"])

    rate = "relapse_rate_per_100_patient_years"
    assert value("first_line-rescue", rate) == pytest.approx(
        value("first_line", rate) - value("rescue", rate), abs=1e-9
    )
    rmst = {
        r["arm"]: r
        for r in table
        if r["point"] == "0" and r["outcome"] == "time_to_cpk_normal_days"
    }
    assert rmst["first_line-rescue"]["estimator"].startswith("rmst_difference_to_day_")
    assert rmst["first_line"]["estimator"] == "km_median"
    assert {r["estimator"] for r in table if r["outcome"] == rate} == {
        "ratio_of_sums",
        "paired_ratio_of_sums_difference",
    }


def test_a_one_way_change_of_a_between_arm_row_is_that_of_the_values_shown(tmp_path):
    """An outcome read at a visit counts the patients alive at it, in each arm and at
    each point. The change of a B-A row from the base case was the mean over the patients
    alive in both arms at both points, and disagreed with the B-A values shown beside it
    (3% on the shipped rescue_threshold sweep); it is now their difference, with an
    interval from the four partially overlapping samples (stats.combination_of_means)."""
    from simulator.sweeps import run_sweep

    spec = tmp_path / "deaths.yaml"
    spec.write_text(
        "name: deaths\ndescription: a visit outcome across strategies with deaths\n"
        f"strategies:\n  rescue: {SCENARIOS / 'rescue.yaml'}\n"
        f"  first_line: {SCENARIOS / 'first_line.yaml'}\n"
        "patients: 600\n"
        "outcomes: [tis_week_24, qaly]\n"
        "design:\n  type: one_way\n  parameters:\n"
        "    disease.mortality.excess_per_year: {values: [0.1, 3.0]}\n"
    )
    plan = plan_sweep(spec)
    res = run_sweep(plan, tmp_path / "out", progress=False)
    paired = res.analysis["paired_vs_base"]
    key = "first_line-rescue:tis_week_24"
    got = paired[2][key]
    shown = res.outputs[2][key] - res.outputs[0][key]
    assert got["mean_difference"] == pytest.approx(shown, abs=1e-9)
    lo, hi = got["ci95"]
    assert lo < got["mean_difference"] < hi
    # deaths before week 24 differ between the points, so fewer patients have all four
    # values than have each one
    assert got["n"] < plan.spec.patients
    # an arm's own row, and a row with no missing value, as before
    for k in ("rescue:tis_week_24", "first_line-rescue:qaly"):
        assert paired[2][k]["mean_difference"] == pytest.approx(
            res.outputs[2][k] - res.outputs[0][k], abs=1e-9
        )


def test_a_center_metric_keeps_its_own_standard_error_in_a_sweep():
    """Center metrics have a Student-t interval over few centers, cut at the scale's
    ends; a sweep took their SE as the interval's width / (2 x 1.96): 15% too large at 10
    centers, and 5x too large for a utilisation whose interval was cut at 1 (audit)."""
    from scipy import stats as sps

    from simulator.center_stats import _mean_ci
    from simulator.sweeps import _mean_se

    x = np.array([0.70, 0.74, 0.81, 0.77, 0.72, 0.79, 0.75, 0.73, 0.78, 0.77])
    mean, ci, n, se = _mean_ci(x)
    assert n == 10 and se == pytest.approx(x.std(ddof=1) / math.sqrt(10), rel=1e-12)
    assert (ci[1] - mean) / se == pytest.approx(sps.t.ppf(0.975, 9), rel=1e-12)
    assert _mean_se({"mean": mean, "ci95": ci, "se": se}) == (mean, se)
    # cut at 1: the interval no longer says anything about the SE
    assert _mean_se({"mean": 0.756, "ci95": [0.366, 1.0], "se": 0.0307}) == (0.756, 0.0307)
    # cohort metrics (normal intervals, no "se") as before
    assert _mean_se({"mean": 1.0, "ci95": [0.0, 2.0]})[1] == pytest.approx(1 / 1.959963984540054)


def test_the_standard_error_of_a_point_is_the_estimator_s_own():
    """It was back-calculated from the 95% interval's width: a Wilson interval gave 0/40
    a standard error of 0.022, a Kaplan-Meier median of 70 days with interval 56-70
    days was shown as "70 +- 7", and a mean whose lower limit was cut at 0 got too
    small an error (statistics audit)."""
    import math

    from simulator.stats import wilson_ci
    from simulator.sweeps import _mean_se

    lo, hi = wilson_ci(0, 40)
    assert _mean_se({"mean": 0.0, "ci95": [lo, hi], "n": 40, "estimator": "proportion"}) == (
        0.0,
        0.0,
    )
    lo, hi = wilson_ci(20, 40)
    _, se = _mean_se({"mean": 0.5, "ci95": [lo, hi], "n": 40}, "proportion")
    assert se == math.sqrt(0.25 / 40)
    _, se = _mean_se({"mean": 70.0, "ci95": [56, 70], "n": 500, "estimator": "km_median"})
    assert math.isnan(se)
    # a nonnegative mean 1.0 with standard error 0.8: its interval is cut to [0, 2.568]
    _, se = _mean_se({"mean": 1.0, "ci95": [0.0, 1.0 + 1.959963984540054 * 0.8], "n": 9})
    assert se == pytest.approx(0.8, rel=1e-12)
    # a center metric's own standard error is kept
    assert _mean_se({"mean": 3.0, "ci95": [1.0, 9.0], "se": 1.5}) == (3.0, 1.5)


def test_a_proportion_s_change_from_the_base_has_newcombe_s_interval():
    """The point-vs-base difference of a proportion had the Wald interval of the mean
    of per-patient differences: [0, 0] when no patient changed, under 95% coverage when
    few did. It has Newcombe's paired score interval now, as comparisons between arms."""
    import numpy as np

    from simulator.stats import PairedDifference
    from simulator.sweeps import paired_differences

    base = {"p": np.array([1.0, 0.0, 0.0, 1.0, 0.0] * 20), "m": np.arange(100.0)}
    point = {"p": base["p"].copy(), "m": np.arange(100.0) + 1.0}
    point["p"][1] = 1.0
    got = paired_differences(base, point)
    pd = PairedDifference(tol=1e-9)
    pd.add(base["p"], point["p"])
    assert got["p"]["ci95"] == list(pd.paired_proportion_ci())
    assert got["p"]["ci95"][0] < 0 < got["p"]["ci95"][1]  # one change of 100: not certain
    assert got["m"]["ci95"] == [1.0, 1.0]  # a mean: the paired interval, as before
