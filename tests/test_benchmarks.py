"""The benchmark script runs at toy size, so it cannot rot (no timing is asserted: speed
goals are read from its output, never tested)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
from conftest import ROOT, load_script


def _toy_run(script: str, tmp_path):
    """benchmarks/<script> at toy size: its stdout and the figures of its JSON."""
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--size=toy", f"--json={out}"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_benchmark_runs_at_toy_size_and_writes_every_figure(tmp_path):
    proc, fig = _toy_run("run.py", tmp_path)
    assert fig["size"] == "toy" and len(fig["load_average_before"]) == 3
    assert set(fig["rates_cpu_per_s"]) == {
        "cohort",
        "cohort_checked",
        "compare_pairs",
        "simpy",
        "simpy_python",
        "floor",
        "naive_daily",
    }
    assert all(v > 0 for v in fig["rates_cpu_per_s"].values())
    assert fig["native_threads_per_worker"] == 1
    assert fig["psa"]["seconds"] > 0 and fig["sweep_point_overhead_s"] > 0
    assert fig["calibration_evaluation_s"]["seconds"] > 0
    assert fig["center_run"]["median_s"] > 0 and fig["center_run"]["patients_mean"] > 0
    assert fig["center_run"]["python_path_median_s"] > 0
    assert fig["center_sweep"]["seconds"] > 0 and fig["center_sweep"]["chairs"] == [2, 4]
    assert {t["target"] for t in fig["targets"]} >= {
        "cohort engine >= 100,000 patients/s",
        "compare >= 50,000 pairs/s",
        "SimPy engine >= 0.5x bare-SimPy floor",
        "sweep overhead per point < 5 ms",
    }
    assert "targets (figures from this run)" in proc.stdout


def test_loop_profile_runs_at_toy_size_and_accounts_for_every_event(tmp_path):
    """The per-event-kind profile of the compiled chunk loop runs, its instrumented loop
    gives the plain loop's summary.json (the script stops otherwise), and its counts are
    the run's events: one lookup, step and clocks per event, one handler per event but
    the step to the end (a pass that stops for a full table of matrix exponentials picks
    its event again, so the schedule may count a few more)."""
    pytest.importorskip("numba")
    if platform.machine().lower() not in load_script("loop_profile", "benchmarks").X86:
        pytest.skip("the loop profile reads an x86 time-stamp counter")
    proc, fig = _toy_run("loop_profile.py", tmp_path)
    assert fig["same_summary"] is True and fig["patients"] == 300
    rows = {r["part"]: r for r in fig["rows"]}
    parts = ("propagator lookup", "closed-form step", "clocks")
    assert all(rows[p]["per_patient"] == fig["events_per_patient"] for p in parts)
    assert 1 <= rows["schedule"]["per_patient"] / fig["events_per_patient"] < 1.01
    handlers = [r for name, r in rows.items() if name.startswith("handler: ")]
    # every patient's last step is to its end (no handler): one a patient
    assert sum(r["per_patient"] for r in handlers) == pytest.approx(fig["events_per_patient"] - 1)
    assert {"handler: visit", "handler: infusion", "handler: taper"} <= set(rows)
    assert sum(r["share"] for r in fig["rows"]) == pytest.approx(1.0)
    assert fig["cycles_per_patient"] > 0
    assert "handler: visit" in proc.stdout and "identical" in proc.stdout


def test_loop_profile_refuses_a_loop_it_cannot_read():
    """A generated loop without the seams the profile reads the counter at is an error
    naming what is missing, not a profile with parts silently left out."""
    pytest.importorskip("numba")
    lp = load_script("loop_profile", "benchmarks")
    with pytest.raises(lp.LoopChanged, match="schedule"):
        lp.instrument("def fused(a):\n        while True:\n            x = 1\n")
