"""Treatment-strategy simulator for acute polymyositis/dermatomyositis.

Public API (what the ``simulate`` command calls)::

    from simulator import load_scenario, run, run_to_folder
    scn = load_scenario("scenarios/first_line.yaml", overrides=["regimen.ivig.cycles=3"])
    result = run(scn, patients=2000, seed=1)          # in memory, aggregates only
    result.metrics["cpk_ratio_month_3"]                # {"mean": ..., "ci95": [lo, hi], ...}
    run_to_folder(scn, "results/first_line")           # summary.json, patients.csv, figures

Nothing runs at import time, and the heavy modules (numpy, scipy, SimPy, matplotlib) load
only when a name that needs them is first used, so `simulate` answers bad input at once.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .errors import InputError

__all__ = [
    "ComparisonResult",
    "InputError",
    "RunResult",
    "Scenario",
    "__version__",
    "compare",
    "load_scenario",
    "run",
    "run_to_folder",
    "scenario_from_dict",
    "sweep",
    "write_outputs",
]

_LAZY = {
    "RunResult": "simulator.runner",
    "ComparisonResult": "simulator.comparison",
    "compare": "simulator.comparison",
    "run": "simulator.runner",
    "Scenario": "simulator.scenario",
    "load_scenario": "simulator.scenario",
    "scenario_from_dict": "simulator.scenario",
    "run_to_folder": "simulator.jobs",
    "write_outputs": "simulator.report.outputs",
}


def sweep(path: str, out: str | None = None, **kwargs: Any) -> Any:
    """Run a sweep file (``plan_sweep`` options: ``patients``, ``draws``, ``sets``,
    ``yes``; ``sweep_to_folder`` options: ``workers``, ``fresh``, ``progress``) and return
    its SweepResult; the output folder defaults to a new temporary folder."""
    import inspect
    import tempfile

    from .jobs import sweep_to_folder
    from .sweeps import plan_sweep

    plan_keys = set(inspect.signature(plan_sweep).parameters) - {"path"}
    plan = plan_sweep(path, **{k: kwargs.pop(k) for k in list(kwargs) if k in plan_keys})
    folder = out if out is not None else tempfile.mkdtemp(prefix="sweep_")
    return sweep_to_folder(plan, folder, **kwargs)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
