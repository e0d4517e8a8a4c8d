"""The benchmark script runs at toy size, so it cannot rot (no timing is asserted: speed
goals are read from its output, never tested)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_benchmark_runs_at_toy_size_and_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--size", "toy", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    fig = json.loads(out.read_text())
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
