"""Adopt the result of `simulate calibrate calibration/default.yaml` as the package's
default parameters.

    simulate calibrate calibration/default.yaml --out results/calibration
    python scripts/adopt_calibration.py results/calibration/fitted.json
    python scripts/refresh_golden.py        # the defaults changed: so do the golden files

Checks that the fit was made on exactly the current inputs (its fingerprint: the
calibration file, the study files, every resolved scenario, patients, seed, simulator
version), then writes the fitted values and a checksum of the inputs other than the
fitted values themselves (``CalibrationPlan.inputs_sha256``) to
simulator/data/calibrated_defaults.json, which the scenario schema reads its fitted
defaults from (tests/test_calibration_lock.py checks both).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.calibrate import load_calibration  # noqa: E402
from simulator.scenario.disease import CALIBRATED_DEFAULTS  # noqa: E402

SHIPPED = ROOT / "calibration" / "default.yaml"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    fitted = json.loads(Path(sys.argv[1]).read_text())
    if Path(fitted["calibration_file"]).resolve() != SHIPPED.resolve():
        sys.exit(f"{sys.argv[1]}: a fit of {fitted['calibration_file']}, not of {SHIPPED}")
    plan = load_calibration(SHIPPED)
    # the fit's fingerprint covers the calibration file, the study files, every resolved
    # scenario (the current defaults included: the fit's starts), patients, seed and
    # simulator version: equal, the fit was made on exactly what is here now
    if fitted["fingerprint"] != plan.fingerprint():
        sys.exit(
            "the calibration inputs or the defaults changed since this fit (or it was"
            " made by another simulator version): run simulate calibrate again"
        )
    record = {
        "parameters": {p["parameter"]: p["estimate"] for p in fitted["parameters"]},
        "ci95": {p["parameter"]: p["ci95"] for p in fitted["parameters"]},
        "inputs_sha256": plan.inputs_sha256(),
        "loss": fitted["loss"],
        "evaluations": fitted["evaluations"],
        "patients": fitted["patients"],
        "seed": fitted["seed"],
        "simulator_version": fitted["simulator_version"],
        "source": "simulate calibrate calibration/default.yaml (method optimize)",
    }
    CALIBRATED_DEFAULTS.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {CALIBRATED_DEFAULTS}; now run scripts/refresh_golden.py\n")


if __name__ == "__main__":
    main()
