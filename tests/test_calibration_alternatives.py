"""The alternative calibrations shipped in calibration/alternatives/ (refits with one
missed target weighted up, for reading the decision under each): each is a valid
--params overlay of exactly the fitted parameters within their bounds, made from the
current defaults (a refit of the defaults makes them stale, and this says so), and
documented in the folder's README."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, load_script

from simulator.scenario.disease import FITTED, calibrated_defaults_digest
from simulator.scenario.load import read_params

FOLDER = ROOT / "calibration" / "alternatives"
OVERLAYS = sorted(FOLDER.glob("*.yaml"))


def test_there_are_overlays_and_the_readme_lists_each():
    assert len(OVERLAYS) >= 2
    readme = (FOLDER / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z0-9_]+__[a-z0-9_]+\.yaml)`", readme))
    assert named == {p.name for p in OVERLAYS}


@pytest.mark.parametrize("path", OVERLAYS, ids=[p.stem for p in OVERLAYS])
def test_an_overlay_sets_the_fitted_parameters_within_their_bounds(path):
    overrides = read_params(path)
    values = {o.path: o.value for o in overrides}
    assert list(values) == list(FITTED)
    for name, value in values.items():
        lo, hi = FITTED[name]
        assert lo <= float(value) <= hi, name


@pytest.mark.parametrize("path", OVERLAYS, ids=[p.stem for p in OVERLAYS])
def test_an_overlay_was_refitted_from_the_current_defaults(path):
    digest = calibrated_defaults_digest()
    assert f"parameters' digest is {digest}" in path.read_text(encoding="utf-8"), (
        "the defaults were refitted since this overlay was made: run"
        " `python scripts/target_conflicts.py --keep calibration/alternatives` and"
        " `python scripts/calibration_alternatives.py`, and update the README's tables"
    )


def test_the_basin_calibration_is_the_shipped_one_started_from_the_dalakas_refit():
    """calibration/dalakas_basin.yaml must differ from default.yaml only in its name,
    description, budget and starting point (the Dalakas refit's end point): the same
    studies, targets, parameters, bounds, patients and seed, so its loss is the defaults'
    criterion and the two basins compare."""
    import yaml

    from simulator.calibrate import load_calibration

    shipped = load_calibration(ROOT / "calibration" / "default.yaml")
    basin = load_calibration(ROOT / "calibration" / "dalakas_basin.yaml")
    assert basin.names == shipped.names
    assert list(basin.low) == list(shipped.low) and list(basin.high) == list(shipped.high)
    assert [s.path.name for s in basin.studies] == [s.path.name for s in shipped.studies]
    assert basin.patients == shipped.patients and basin.spec.seed == shipped.spec.seed
    start = yaml.safe_load((FOLDER / "dalakas_1993__tis60_week_12_from_entry.yaml").read_text())
    raw = yaml.safe_load((ROOT / "calibration" / "dalakas_basin.yaml").read_text())
    assert {k: v["start"] for k, v in raw["parameters"].items()} == start


def test_the_seed_check_changes_only_the_seed_of_the_shipped_calibration(tmp_path):
    """scripts/calibration_seeds.py (docs/model.md section 6, "How settled the defaults
    are") refits the shipped calibration on other patients: its copy loads with the same
    parameters, bounds, targets and patients per arm, and only the seed (and, when asked,
    the Nelder-Mead budget) differs."""
    from simulator.calibrate import load_calibration

    seeds = load_script("calibration_seeds")
    shipped = load_calibration(ROOT / "calibration" / "default.yaml")
    copy = load_calibration(seeds.write_seeded(tmp_path, 3, evaluations=7))
    assert (copy.seed, shipped.seed) == (3, 1)
    assert copy.names == shipped.names
    assert copy.low.tolist() == shipped.low.tolist()
    assert copy.high.tolist() == shipped.high.tolist()
    assert copy.patients == shipped.patients
    assert [t.spec for t in copy.targets] == [t.spec for t in shipped.targets]
    assert copy.spec.optimize.max_evaluations == 7
    assert copy.inputs_sha256() != shipped.inputs_sha256()  # the seed is an input
