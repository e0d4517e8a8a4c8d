"""Print the calibration table of docs/model.md section 6 (targets vs simulated values).

    python scripts/calibration_table.py [--patients 20000] [--seed 1]

Runs the default first-line scenario, the same patients on steroids alone (usual care
without IVIG: no IVIG, no planned sparing agent), and untreated (no drug effect), with
the cohort engine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from simulator.runner import run
from simulator.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
ARMS = {
    "first-line": [],
    "steroids alone": ["regimen.ivig=null", "regimen.sparing_agents=[]"],
    "untreated": ["regimen.ivig=null", "regimen.sparing_agents=[]",
                  "regimen.sparing_on_relapse=null", "disease.steroid.emax_per_day=0"],
}
ROWS = [
    ("cpk_ratio_month_3", "mean CPK day 84 / baseline"),
    ("myoglobin_ratio_month_3", "mean myoglobin day 84 / baseline"),
    ("cpk_normal_month_3", "CPK normal, month 3"),
    ("cpk_normal_month_5", "CPK normal, day 140 (after cycle 5)"),
    ("cpk_normal_month_6", "CPK normal, month 6"),
    ("cpk_normal_month_12", "CPK normal, month 12"),
    ("myoglobin_normal_month_6", "myoglobin normal, month 6"),
    ("time_to_cpk_normal_days", "median days to CPK normal"),
    ("relapse", ">= 1 relapse in 2 years"),
    ("prednisone_5mg_by_month_6", "prednisone <= 5 mg/day, month 6"),
    ("cumulative_prednisone_g", "cumulative prednisone, g"),
    ("mmt8_month_6", "MMT-8 at month 6"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    results = {}
    for arm, sets in ARMS.items():
        scn = load_scenario(ROOT / "scenarios" / "first_line.yaml", sets)
        results[arm] = run(scn, patients=args.patients, seed=args.seed, engine="cohort").metrics
    print(f"| outcome ({args.patients} patients, seed {args.seed}) | " + " | ".join(ARMS) + " |")
    print("|---" * (len(ARMS) + 1) + "|")
    for key, label in ROWS:
        cells = []
        for arm in ARMS:
            m = results[arm][key]
            v = m["mean"]
            cells.append("n/a" if v is None else (f"{v:.3f}" if m["unit"] != "days" else f"{v}"))
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
