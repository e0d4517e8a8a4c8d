"""The Python API a notebook uses: the worked example runs, and its tables are tidy."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SCENARIOS

pd = pytest.importorskip("pandas")


def test_the_worked_example_runs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "notebook.py")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "EXAMPLE_PATIENTS": "60"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "optimal at" in proc.stdout


def test_frames_hold_the_same_numbers_as_the_results():
    import simulator

    scn = simulator.load_scenario(SCENARIOS / "first_line.yaml")
    res = simulator.run(scn, patients=80, seed=2, progress=False)
    frame = res.to_frame()
    assert list(frame.metric) == list(res.metrics)
    row = frame.set_index("metric").loc["qaly"]
    assert row.estimate == res.metrics["qaly"]["mean"]
    assert row.estimator == "mean"
    arms = [simulator.load_scenario(SCENARIOS / f"{n}.yaml") for n in ("first_line", "rescue")]
    cmp = simulator.compare(arms, patients=80, seed=2, progress=False)
    f = cmp.to_frame()
    outs = cmp.outcomes()
    assert len(f) == 2 * len(outs)
    r = f[(f.metric == "relapse") & (f.arm == "rescue")].iloc[0]
    assert r.difference == outs["relapse"]["differences"]["rescue"]["mean_difference"]
    assert np.isnan(f[(f.metric == "relapse") & (f.arm == "first_line")].iloc[0].difference)
    fig = cmp.plot()
    assert fig.axes and fig.axes[0].get_title() == "Cost-effectiveness plane"


def test_api_names_stay_functions_after_every_module_is_imported():
    import importlib
    import pkgutil

    import simulator

    for mod in pkgutil.walk_packages(simulator.__path__, "simulator."):
        if not mod.name.endswith("__main__"):  # (runs the command line)
            importlib.import_module(mod.name)
    for name in ("run", "compare", "sweep", "load_scenario", "run_to_folder"):
        assert callable(getattr(simulator, name)), name
        assert not isinstance(getattr(simulator, name), type(simulator)), name
