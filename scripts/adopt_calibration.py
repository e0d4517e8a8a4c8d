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
defaults from (tests/test_calibration_lock.py checks both). The 95% intervals it records
are computed again from each parameter's loss curvature in fitted.json
(``calibrate.laplace_interval``: sd = sqrt(2 / c) / 1.96 on the logit scale of the bounds;
null when not identified), so a fitted.json written before that scale was corrected (its
intervals 1.96 times too wide on the logit scale) is adopted with the right intervals.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.calibrate import laplace_interval, load_calibration, logit_between  # noqa: E402
from simulator.scenario.disease import CALIBRATED_DEFAULTS  # noqa: E402

SHIPPED = ROOT / "calibration" / "default.yaml"


def ci95_of(p: dict[str, Any]) -> list[float] | None:
    """A fitted parameter's Laplace 95% interval from its loss curvature (logit scale),
    or None (not identified)."""
    low, high = float(p["low"]), float(p["high"])
    u = float(logit_between(np.array([float(p["estimate"])]), low, high)[0])
    ci, _ = laplace_interval(low, high, u, p["curvature_logit"])
    return None if ci is None else [ci[0], ci[1]]


def record_of(fitted: dict[str, Any], plan: Any) -> dict[str, Any]:
    """The record of calibrated_defaults.json for a fit (fitted.json) of ``plan``."""
    if fitted["method"] != "optimize":
        sys.exit(f"a fit by method {fitted['method']}: the defaults are fitted by optimize")
    return {
        "parameters": {p["parameter"]: p["estimate"] for p in fitted["parameters"]},
        "ci95": {p["parameter"]: ci95_of(p) for p in fitted["parameters"]},
        "inputs_sha256": plan.inputs_sha256(),
        "loss": fitted["loss"],
        "evaluations": fitted["evaluations"],
        "patients": fitted["patients"],
        "seed": fitted["seed"],
        "simulator_version": fitted["simulator_version"],
        "source": "simulate calibrate calibration/default.yaml (method optimize)",
    }


def checked_plan(path: str, fitted: dict[str, Any], shipped: Path) -> Any:
    """The calibration plan of ``shipped``, if ``fitted`` (the fitted.json at ``path``) is
    a fit of that file made on exactly the current inputs; else exit saying why (also
    scripts/adopt_posterior.py)."""
    if Path(fitted["calibration_file"]).resolve() != shipped.resolve():
        sys.exit(f"{path}: a fit of {fitted['calibration_file']}, not of {shipped}")
    plan = load_calibration(shipped)
    # the fit's fingerprint covers the calibration file, the study files, every resolved
    # scenario (the current defaults included: the fit's starts), patients, seed and
    # simulator version: equal, the fit was made on exactly what is here now
    if fitted["fingerprint"] != plan.fingerprint():
        sys.exit(
            "the calibration inputs or the defaults changed since this fit (or it was"
            " made by another simulator version): run simulate calibrate again"
        )
    return plan


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    fitted = json.loads(Path(sys.argv[1]).read_text())
    plan = checked_plan(sys.argv[1], fitted, SHIPPED)
    CALIBRATED_DEFAULTS.write_text(
        json.dumps(record_of(fitted, plan), indent=2, sort_keys=True) + "\n"
    )
    sys.stdout.write(f"wrote {CALIBRATED_DEFAULTS}; now run scripts/refresh_golden.py\n")


if __name__ == "__main__":
    main()
