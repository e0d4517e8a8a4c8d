"""`simulate calibrate`: parameter recovery, input errors before anything runs, the
outputs, --params, and a resume after kill -9 giving the same bytes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from simulator.errors import InputError

SCEN = ROOT / "scenarios"
TRUE_EMAX = 0.09


def _targets(tmp_path: Path) -> Path:
    """A study whose published values are the simulator's own at a known steroid Emax
    (another seed and more patients than the fit uses; their 95% intervals are the Monte
    Carlo intervals of that run)."""
    from simulator.runner import run
    from simulator.scenario import load_scenario

    scn = load_scenario(SCEN / "steroid_only.yaml", [f"disease.steroid.emax_per_day={TRUE_EMAX}"])
    m = run(scn, patients=3000, seed=11, progress=False).metrics
    lines = [
        "study: synthetic",
        "citation: the simulator at a known parameter",
        "role: calibration",
        "arms:",
        f"  a: {SCEN / 'steroid_only.yaml'}",
        "targets:",
    ]
    for name in ("cpk_normal_month_3", "tis_week_24"):
        lo, hi = m[name]["ci95"]
        lines += [
            f"  - metric: {name}",
            f"    published: {{value: {m[name]['mean']!r}, ci95: [{lo!r}, {hi!r}]}}",
        ]
    study = tmp_path / "study.yaml"
    study.write_text("\n".join(lines) + "\n")
    cal = tmp_path / "cal.yaml"
    cal.write_text(
        "name: synthetic\nstudies: [study.yaml]\npatients: 1000\nseed: 3\n"
        "parameters:\n  disease.steroid.emax_per_day: {low: 0.04, high: 0.3}\n"
        "optimize: {starts: 1, max_evaluations: 20}\n"
    )
    return cal


def calibrate_cmd(*args, cwd):
    return [sys.executable, "-m", "simulator", "calibrate", *map(str, args)]


def test_a_known_parameter_is_recovered_within_its_interval(tmp_path):
    from simulator.calibrate import calibrate, load_calibration

    plan = load_calibration(_targets(tmp_path))
    assert plan.start[0] != TRUE_EMAX  # the start is the scenario's value, 0.132
    res = calibrate(plan, tmp_path / "out", progress=False)
    lo, hi = res.intervals[0]
    assert lo < res.estimate[0] < hi
    # The interval is the published values' uncertainty alone (their Monte Carlo error at
    # 3,000 patients); the estimate also carries the fit's own (1,000 patients: 3 times
    # that variance), so estimate - truth has twice the interval's sd: within 4 of those.
    sd = (hi - lo) / (2 * 1.959963984540054)
    assert abs(res.estimate[0] - TRUE_EMAX) < 4 * 2 * sd, (lo, res.estimate[0], hi)
    assert hi - lo < 0.05  # the targets identify it
    assert res.loss < 2 * len(res.targets)  # within about one half-width per target
    assert all(r.overlaps for r in res.targets)


def test_abc_smc_recovers_a_known_parameter_with_a_weighted_posterior(tmp_path):
    from simulator.calibrate import calibrate, load_calibration

    cal = _targets(tmp_path)
    cal.write_text(cal.read_text() + "method: abc\nabc: {particles: 40, max_generations: 10}\n")
    plan = load_calibration(cal, patients=300)
    res = calibrate(plan, tmp_path / "out", progress=False, workers=2)
    lo, hi = res.intervals[0]
    assert lo < TRUE_EMAX < hi, (lo, res.estimate[0], hi)
    assert res.generations[-1]["tolerance"] == 1.0  # reached the published intervals
    assert res.weights is not None and abs(res.weights.sum() - 1) < 1e-12
    # the posterior is much narrower than the prior (0.04-0.3)
    assert hi - lo < 0.1


def test_calibrate_command_outputs_and_params_overlay(tmp_path):
    cal = _targets(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.run(
        calibrate_cmd(cal, "--out", out, "--workers", "1", "--patients", "300", cwd=tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "disease.steroid.emax_per_day" in proc.stdout and "loss" in proc.stdout
    fitted = json.loads((out / "fitted.json").read_text())
    (p,) = fitted["parameters"]
    assert p["parameter"] == "disease.steroid.emax_per_day" and p["ci95"][0] < p["estimate"]
    rows = (out / "posterior.csv").read_text().splitlines()
    assert rows[0] == "disease.steroid.emax_per_day,weight" and len(rows) == 1001
    draws = [float(r.split(",")[0]) for r in rows[1:]]
    assert all(0.04 < d < 0.3 for d in draws)
    for f in ("calibrated.yaml", "targets.png", "convergence.png", "report.html"):
        assert (out / f).stat().st_size > 0
    assert not (tmp_path / "out.partial").exists()
    # the overlay works with --params (and --set still wins over it)
    overlay = out / "calibrated.yaml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            str(SCEN / "steroid_only.yaml"),
            "--params",
            str(overlay),
            "--patients",
            "20",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    got = summary["resolved_scenario"]["disease"]["steroid"]["emax_per_day"]
    assert got == p["estimate"]


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            lambda t: t.replace("disease.steroid.emax_per_day", "disease.steroid.nope"),
            "parameters.disease.steroid.nope",
        ),
        (
            lambda t: t.replace("{low: 0.04, high: 0.3}", "{low: 0.2, high: 0.3}"),
            "exclude the start",
        ),
        (lambda t: t.replace("[study.yaml]", "[missing.yaml]"), "study file not found"),
        (lambda t: t.replace("{low: 0.04, high: 0.3}", "{low: 0.3, high: 0.04}"), "low < high"),
    ],
)
def test_bad_calibration_files_are_input_errors_before_anything_runs(tmp_path, edit, fragment):
    from simulator.calibrate import load_calibration

    cal = _targets(tmp_path)
    cal.write_text(edit(cal.read_text()))
    with pytest.raises(InputError) as err:
        load_calibration(cal)
    assert fragment in str(err.value) and str(cal) in str(err.value)
    out = tmp_path / "out"
    proc = subprocess.run(
        calibrate_cmd(cal, "--out", out, cwd=tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and fragment in proc.stderr
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_a_study_without_calibration_targets_cannot_be_fitted(tmp_path):
    from simulator.calibrate import load_calibration

    cal = _targets(tmp_path)
    study = tmp_path / "study.yaml"
    study.write_text(study.read_text().replace("role: calibration", "role: validation"))
    with pytest.raises(InputError, match="none of the study files has a target tagged"):
        load_calibration(cal)


@pytest.mark.parametrize("method", ["optimize", "abc"])
def test_resume_after_kill_gives_the_same_bytes(tmp_path, method):
    cal = _targets(tmp_path)
    cal.write_text(cal.read_text() + "abc: {particles: 20, max_generations: 4, moves: 1}\n")
    args = ("--workers", "2", "--patients", "150", "--quiet", "--method", method)
    whole = tmp_path / "whole"
    proc = subprocess.run(
        calibrate_cmd(cal, "--out", whole, *args, cwd=tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    cut = tmp_path / "cut"
    points = tmp_path / "cut.partial" / "points"
    p = subprocess.Popen(
        calibrate_cmd(cal, "--out", cut, *args, cwd=tmp_path), stderr=subprocess.PIPE, cwd=tmp_path
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (
        points.exists() and len(list(points.glob("*.json"))) >= 4
    ):
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    saved = len(list(points.glob("*.json")))
    assert saved >= 4 and not cut.exists()
    proc = subprocess.run(
        calibrate_cmd(cal, "--out", cut, *args, cwd=tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    for f in ("fitted.json", "posterior.csv", "calibrated.yaml"):
        assert (cut / f).read_bytes() == (whole / f).read_bytes(), f
    assert json.loads((whole / "fitted.json").read_text())["method"] == method
    assert not (tmp_path / "cut.partial").exists()


def test_a_calibration_on_dask_gives_the_same_fit(tmp_path):
    pytest.importorskip("dask.distributed")
    from simulator.calibrate import calibrate, load_calibration

    cal = _targets(tmp_path)
    cal.write_text(cal.read_text().replace("max_evaluations: 20", "max_evaluations: 4"))
    plan = load_calibration(cal, patients=150)
    local = calibrate(plan, tmp_path / "a", progress=False, workers=1)
    dask = calibrate(plan, tmp_path / "b", progress=False, workers=2, dask="local")
    assert json.dumps(local.to_json(), sort_keys=True) == json.dumps(dask.to_json(), sort_keys=True)


def test_abc_early_rejection_gives_the_particles_of_full_evaluations(tmp_path):
    """A move whose loss so far already exceeds its acceptance limit is cut short: the
    particles, weights and generations are those of full evaluations, and some moves
    were in fact cut (a second arm gives the evaluation two simulations to stop
    between)."""
    from simulator.calibrate import calibrate, load_calibration

    cal = _targets(tmp_path)
    study = tmp_path / "study.yaml"
    text = study.read_text().replace("arms:\n", f"arms:\n  b: {SCEN / 'first_line.yaml'}\n")
    for metric, arm in (("cpk_normal_month_3", "b"), ("tis_week_24", "a")):
        text = text.replace(f"  - metric: {metric}\n", f"  - metric: {metric}\n    arm: {arm}\n")
    study.write_text(text)
    base = cal.read_text() + "method: abc\n"
    runs = {}
    for early in (True, False):
        abc = f"particles: 16, max_generations: 2, moves: 1, early_rejection: {early}"
        cal.write_text(base + f"abc: {{{abc}}}\n")
        plan = load_calibration(cal, patients=100)
        res = calibrate(plan, tmp_path / f"out{early}", progress=False, workers=2)
        runs[early] = res
    cut, full = runs[True], runs[False]
    assert cut.posterior.tobytes() == full.posterior.tobytes()
    assert cut.weights.tobytes() == full.weights.tobytes()
    assert [{**g, "stopped_early": 0} for g in cut.generations] == full.generations
    stopped = [e for e in cut.evaluations if not e.get("complete", True)]
    assert stopped, "no evaluation was cut short: the test checks nothing"
    assert all(e.get("complete", True) for e in full.evaluations)
    # a cut evaluation's loss so far is at most its full loss
    full_loss = {tuple(e["theta"]): e["loss"] for e in full.evaluations}
    assert all(e["loss"] <= full_loss[tuple(e["theta"])] for e in stopped)


def test_a_metric_read_at_one_day_is_the_same_for_any_horizon_from_that_day():
    """Calibration runs a task whose metrics are all read by one fixed day only to that
    day (outcomes.last_day_read): each such metric, in the first-line and the 10-year
    scenario, must come out bit for bit as over the whole horizon."""
    from simulator.outcomes import last_day_read, metric_specs
    from simulator.runner import _plan_for, run
    from simulator.scenario import load_scenario
    from simulator.sweeps import with_overrides

    checked = set()
    for path in (SCEN / "first_line.yaml", SCEN / "studies" / "danko_2004.yaml"):
        scn = load_scenario(path)
        full = run(scn, patients=300, seed=4, progress=False).metrics
        by_day: dict[int, list[str]] = {}
        for m in metric_specs(_plan_for(scn)):
            day = last_day_read(m.name)
            if day is not None and day + 1 < scn.horizon_days:
                by_day.setdefault(day + 1, []).append(m.name)
        for until, names in sorted(by_day.items()):
            short = with_overrides(scn, {"horizon_days": max(until, 28)}, "test")
            got = run(short, patients=300, seed=4, progress=False).metrics
            for name in names:
                assert got[name]["mean"] == full[name]["mean"], (path.name, name, until)
                assert got[name]["ci95"] == full[name]["ci95"], (path.name, name, until)
                checked.add(name)
    # every kind of fixed-day metric was compared at a shorter horizon at least once
    for name in (
        "cpk_ratio_month_3",
        "cpk_normal_month_5",
        "mmt8_month_12",
        "inactive_month_12",
        "tis60_week_16",
        "treatment_failure_week_24",
        "prednisone_5mg_by_month_6",
        "alive_year_5",
    ):
        assert name in checked, name


def test_calibration_tasks_run_to_the_last_day_their_targets_read():
    from simulator.calibrate import _tasks, load_calibration

    plan = load_calibration(ROOT / "calibration" / "default.yaml", patients=100)
    makers, _ = _tasks(plan, plan.start)
    horizon = {t[1][0]: t[0][0].horizon_days for t in (make() for make in makers)}
    assert horizon["first_line"] == 141  # cpk_normal_month_5 (day 140) and month 3
    assert horizon["danko"] == 1827  # alive_year_5 (day 1826), not the study's 10 years
    assert horizon["usual_care"] == 1820  # last-visit metrics: the whole horizon
    assert horizon["ivig"] == 1092  # counted from each patient's entry: the whole horizon
