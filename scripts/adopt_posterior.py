"""Ship the ABC-SMC posterior of the shipped calibration targets as the parameter
distribution of the calibration-uncertainty PSA.

    simulate calibrate calibration/posterior.yaml --out results/posterior --workers 2
    python scripts/adopt_posterior.py results/posterior/fitted.json

Checks that the run is an ABC-SMC run of calibration/posterior.yaml made on exactly the
current inputs (its fingerprint: the calibration file, the study files, every resolved
scenario, patients, seed, simulator version) and that it reached its final tolerance,
then copies its posterior.csv to calibration/posterior/posterior.csv and writes
calibration/posterior/record.json: the checksum of the calibration's inputs
(``CalibrationPlan.inputs_sha256``, which leaves out the fitted values, so a refit of the
defaults does not make the posterior stale), the CSV's checksum, the generations and the
posterior medians and 95% intervals. tests/test_calibration_posterior.py checks the
record against the inputs and the CSV. The PSA that reads it is
scenarios/sweeps/psa_calibration_posterior.yaml (docs/model.md section 6, "The decision
under calibration uncertainty").
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adopt_calibration import checked_plan  # noqa: E402  (scripts/ is on the path)

SHIPPED = ROOT / "calibration" / "posterior.yaml"
FOLDER = ROOT / "calibration" / "posterior"


def record_of(fitted: dict[str, Any], plan: Any, csv: bytes) -> dict[str, Any]:
    """The record of calibration/posterior/record.json for an ABC run (fitted.json)."""
    tol = fitted["abc_tolerance"]
    return {
        "source": "simulate calibrate calibration/posterior.yaml (method abc)",
        "inputs_sha256": plan.inputs_sha256(),
        "posterior_sha256": hashlib.sha256(csv).hexdigest(),
        "particles": plan.spec.abc.particles,
        "patients": fitted["patients"],
        "seed": fitted["seed"],
        "simulator_version": fitted["simulator_version"],
        "evaluations": fitted["evaluations"],
        "tolerance": tol,
        "generations": fitted["generations"],
        "loss_at_posterior_median": fitted["loss"],
        "lowest_loss": fitted["lowest_loss"],
        "parameters": {
            p["parameter"]: {"median": p["estimate"], "ci95": p["ci95"]}
            for p in fitted["parameters"]
        },
        "targets_at_posterior_median": fitted["targets"],
    }


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = Path(sys.argv[1])
    fitted = json.loads(path.read_text())
    if fitted["method"] != "abc":
        sys.exit(f"{path}: a fit by method {fitted['method']}, not abc")
    plan = checked_plan(str(path), fitted, SHIPPED)
    if not fitted["abc_tolerance"]["reached"]:
        sys.exit(f"{path}: the run stopped before its final tolerance; raise max_generations")
    csv = (path.parent / "posterior.csv").read_bytes()
    FOLDER.mkdir(exist_ok=True)
    (FOLDER / "posterior.csv").write_bytes(csv)
    record = record_of(fitted, plan, csv)
    (FOLDER / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"wrote {FOLDER / 'posterior.csv'} and {FOLDER / 'record.json'}")


if __name__ == "__main__":
    main()
