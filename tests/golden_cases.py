"""Golden summaries: every shipped scenario, a comparison and a sweep at small size
(a scenario with an infusion center: one replication of one year of arrivals).

``tests/test_golden.py`` checks that these give the same bytes as the files in
``tests/golden/``; ``python scripts/refresh_golden.py`` rewrites the files, and only a
deliberate change to the model (its git diff shows what moved) should ever need that.
Refactors and speed work must leave them unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
PATIENTS = 200
SEED = 20260101


def _scenario_files() -> list[Path]:
    return sorted((ROOT / "scenarios").glob("*.yaml")) + sorted(
        (ROOT / "scenarios" / "studies").glob("*.yaml")
    )


def _run(path: Path) -> dict[str, Any]:
    from simulator.runner import run
    from simulator.scenario import load_scenario

    scn = load_scenario(path)
    if scn.center is not None:
        # an infusion center (SimPy engine): one replication of one year of arrivals
        scn = load_scenario(path, ["center.arrivals.years=1"])
        res = run(scn, patients=1, seed=SEED, progress=False)
    else:
        res = run(scn, patients=PATIENTS, seed=SEED, engine="cohort", progress=False)
    data = res.summary_json()
    for key in ("simulator_version", "resolved_scenario"):
        data.pop(key)
    return data


def _compare() -> dict[str, Any]:
    from simulator.comparison import compare
    from simulator.scenario import load_scenario

    scns = [
        load_scenario(ROOT / "scenarios" / f"{n}.yaml")
        for n in ("first_line", "rescue", "steroid_only")
    ]
    res = compare(scns, patients=PATIENTS, seed=SEED, engine="cohort", progress=False)
    return {
        "outcomes": res.outcomes(),
        "economics": res.economics(),
        "incremental_analysis": res.incremental_analysis(),
    }


def _sweep(tmp: Path) -> dict[str, Any]:
    from simulator.sweeps import plan_sweep, run_sweep

    plan = plan_sweep(ROOT / "tests" / "fixtures" / "sweeps" / "one_way_small.yaml")
    data = run_sweep(plan, tmp / "sweep", progress=False).to_json()
    for key in ("simulator_version", "fingerprint"):
        data.pop(key)
    return data


def cases() -> dict[str, Callable[[Path], dict[str, Any]]]:
    """Case name -> function of a scratch folder giving the case's JSON content."""
    out: dict[str, Callable[[Path], dict[str, Any]]] = {}
    for path in _scenario_files():
        name = path.relative_to(ROOT / "scenarios").with_suffix("").as_posix()
        out["run_" + name.replace("/", "_")] = lambda _tmp, p=path: _run(p)
    out["compare_first_line_rescue_steroid_only"] = lambda _tmp: _compare()
    out["sweep_one_way_small"] = _sweep
    return out


def dumps(data: dict[str, Any]) -> str:
    """The bytes kept: sorted keys, one key per line (readable diffs), exact floats."""
    return json.dumps(data, sort_keys=True, indent=1, allow_nan=True) + "\n"
