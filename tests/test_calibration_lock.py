"""The package's fitted defaults are the output of `simulate calibrate` on the shipped
calibration file (calibration/default.yaml), adopted by scripts/adopt_calibration.py into
simulator/data/calibrated_defaults.json together with a checksum of the calibration's
inputs. These tests fail when the defaults and that record disagree, or when an input of
the calibration (a study, a target, a scenario, any non-fitted default) changed since the
fit: then run the calibration again and adopt it (see the script's docstring)."""

from __future__ import annotations

import json

from conftest import ROOT

from simulator.calibrate import load_calibration
from simulator.scenario import load_scenario
from simulator.scenario.disease import CALIBRATED_DEFAULTS, FITTED
from simulator.sweeps import _get

SHIPPED = ROOT / "calibration" / "default.yaml"
RECORD = json.loads(CALIBRATED_DEFAULTS.read_text())


def test_the_shipped_calibration_fits_the_parameters_of_fitted_within_their_bounds():
    plan = load_calibration(SHIPPED)
    assert plan.names == list(FITTED)
    assert [(float(lo), float(hi)) for lo, hi in zip(plan.low, plan.high, strict=True)] == [
        FITTED[n] for n in plan.names
    ]
    assert set(RECORD["parameters"]) == set(FITTED)


def test_the_defaults_are_the_recorded_calibration_result():
    scn = load_scenario(ROOT / "scenarios" / "base.yaml")
    data = scn.model_dump(mode="python", by_alias=True)
    for name, value in RECORD["parameters"].items():
        assert _get(data, name) == value, name
        lo, hi = FITTED[name]
        assert lo < value < hi, name


def test_the_calibration_inputs_are_those_the_defaults_were_fitted_on():
    plan = load_calibration(SHIPPED)
    assert plan.inputs_sha256() == RECORD["inputs_sha256"], (
        "an input of the calibration changed since the defaults were fitted: run "
        "`simulate calibrate calibration/default.yaml --out results/calibration`, then "
        "`python scripts/adopt_calibration.py results/calibration/fitted.json`"
    )
