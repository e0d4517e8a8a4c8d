"""A sweep point's scenario (``sweeps.with_overrides``) validates only the blocks the point
changes; it must be the scenario validated from the whole dump, and fail the same way."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, SCENARIOS, leaves

from simulator.errors import InputError
from simulator.scenario import Scenario, check_scenario, load_scenario, scenario_sha256
from simulator.scenario.load import LineMap, apply_overrides, validate
from simulator.sweeps import plan_sweep, with_overrides


def _whole(scn, point, where="sweep"):
    """The reference: the whole scenario dumped, overridden and validated again."""
    sets = [f"{path}={json.dumps(value)}" for path, value in point.items()]
    data = apply_overrides(scn.model_dump(mode="python", by_alias=True), sets, Scenario)
    new = validate(data, Scenario, LineMap(), where)
    check_scenario(new, LineMap(), where)
    return new


def _same(scn, point):
    got, want = with_overrides(scn, point), _whole(scn, point)
    assert got == want
    assert got.model_dump(mode="json") == want.model_dump(mode="json")
    assert scenario_sha256(got) == scenario_sha256(want)
    return got


@pytest.mark.parametrize("name", ["first_line", "rescue", "studies/trial_ivig"])
def test_every_number_changed_alone(name):
    """Every number of the scenario changed alone gives the whole dump's scenario (the
    correlation matrix changes as a whole: one entry alone is refused, the same way)."""
    scn = load_scenario(SCENARIOS / f"{name}.yaml")
    data = scn.model_dump(mode="python", by_alias=True)
    changed = 0
    for path, value in leaves(data, (float, int)):
        if "correlation" in path:
            continue
        new = value * 1.03 if isinstance(value, float) and value else value + 1
        try:
            want = _whole(scn, {path: new})
        except InputError as exc:  # out of its range: the same message
            with pytest.raises(InputError) as got:
                with_overrides(scn, {path: new})
            assert str(got.value) == str(exc)
            continue
        assert with_overrides(scn, {path: new}) == want
        changed += 1
    assert changed > 150


def test_every_shipped_sweeps_points():
    small = ROOT / "tests" / "fixtures" / "sweeps" / "one_way_small.yaml"
    for path in [*sorted((SCENARIOS / "sweeps").glob("*.yaml")), small]:
        plan = (
            plan_sweep(path, yes=True, draws=6)
            if "psa" in path.stem
            else plan_sweep(path, yes=True)
        )
        for point in plan.points[:12]:
            for j, scn in enumerate(plan.scenarios):
                _same(scn, {k: v for k, v in point.items() if j in plan.applies[k]})


@pytest.mark.parametrize(
    "point",
    [
        {"disease.activity.lasting_drive_log": {"dist": "normal", "mean": -4.0, "sd": 1.0}},
        {"regimen.ivig.cycles": 4, "regimen.ivig.dose_g_per_kg": [2, 1, 1, 1]},
        {"regimen.taper.hold_when": None},
        {"disease.steroid.emax_per_day": 0.1, "disease.steroid.sensitivity_cv": 0.5},
        {"horizon_days": 365},
    ],
    ids=["a distribution", "a list", "a rule removed", "two in one block", "top level"],
)
def test_blocks_and_lists(point):
    _same(load_scenario(SCENARIOS / "first_line.yaml"), point)


@pytest.mark.parametrize(
    "point",
    [
        {"disease.steroid.emax_per_day": -1.0},
        {"disease.steroid.no_such_key": 1.0},
        {"regimen.ivig.dose_g_per_kg": "lots"},
        {"disease.heterogeneity.correlation[0][1]": 0.5},
        {"regimen.ivig.cycles": 0, "regimen.ivig.dose_g_per_kg": [2, 1]},
    ],
    ids=["out of range", "unknown key", "text", "asymmetric", "inconsistent"],
)
def test_bad_points_fail_the_same_way(point):
    scn = load_scenario(SCENARIOS / "first_line.yaml")
    with pytest.raises(InputError) as want:
        _whole(scn, point)
    with pytest.raises(InputError) as got:
        with_overrides(scn, point)
    assert str(got.value) == str(want.value)
    assert got.value.__dict__ == want.value.__dict__
