"""Treatment-strategy simulator for acute polymyositis/dermatomyositis.

Public API (what the ``simulate`` command calls)::

    from simulator import load_scenario, run
    scn = load_scenario("scenarios/first_line.yaml", overrides=["regimen.ivig.cycles=3"])
    result = run(scn, patients=2000, seed=1)
    result.metrics["cpk_ratio_month_3"]      # {"mean": ..., "ci95": [lo, hi], ...}
    write_outputs(result, "results/first_line")  # summary.json, patients.csv, figures

Nothing runs at import time.
"""

from ._version import __version__
from .errors import InputError
from .report.outputs import run_to_folder, write_outputs
from .runner import RunResult, run
from .scenario import Scenario, load_scenario, scenario_from_dict

__all__ = [
    "InputError",
    "RunResult",
    "Scenario",
    "__version__",
    "load_scenario",
    "run",
    "run_to_folder",
    "scenario_from_dict",
    "write_outputs",
]
