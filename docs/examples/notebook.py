"""A worked example of the Python API, as one would run it in a notebook.

Run it as a script (``python docs/examples/notebook.py``) or cell by cell in Jupyter; the
tests run it with a small number of patients (``EXAMPLE_PATIENTS``). Figures are drawn
on Axes you own: nothing changes matplotlib's global state.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from matplotlib.figure import Figure

import simulator

ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("EXAMPLE_PATIENTS", "2000"))

# 1. One strategy: aggregates in memory, as a tidy table.
first_line = simulator.load_scenario(ROOT / "scenarios" / "first_line.yaml")
result = simulator.run(first_line, patients=N, seed=1, progress=False)
table = result.to_frame()
print(
    table.loc[
        table.metric.isin(["cpk_ratio_month_3", "tis_week_24", "died"]),
        ["label", "estimate", "ci95_low", "ci95_high", "estimator"],
    ]
)

# 2. Three strategies on the same patients: differences, the incremental analysis and
#    the cost-effectiveness plane.
arms = [
    simulator.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    for name in ("first_line", "rescue", "steroid_only")
]
comparison = simulator.compare(arms, patients=N, seed=1, progress=False)
frame = comparison.to_frame()
print(
    frame.loc[
        frame.metric == "qaly_lifetime",
        ["arm", "estimate", "difference", "difference_ci95_low", "difference_ci95_high"],
    ]
)
analysis = comparison.incremental_analysis()
print(
    "optimal at", analysis["willingness_to_pay_per_qaly"], "per QALY:", analysis["optimal_strategy"]
)

fig = Figure(figsize=(12, 4.5))
left, right = fig.subplots(1, 2)
result.plot(ax=left)  # CPK by month, median and 5-95% band
comparison.plot(ax=right)  # CE plane: frontier, dominated arms, WTP line
out = Path(tempfile.mkdtemp(prefix="example_"))
fig.savefig(out / "example.png", dpi=80)

# 3. A sweep from a file, smaller than shipped: every point on the same patients.
sweep = simulator.sweep(
    ROOT / "scenarios" / "sweeps" / "tornado_first_line_vs_rescue.yaml",
    out=str(out / "tornado"),
    patients=max(N // 10, 20),
    progress=False,
)
long = sweep.to_frame()
print(long.loc[(long.outcome == "qaly") & (long.arm == "first_line-rescue")].head())
print("figures and outputs in", out)
