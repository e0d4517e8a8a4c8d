"""Decision rules on hand-made visits (``Seen``): every atom, the generic ``above``/``below``
comparisons on every measure, ``any``/``all``/``not``; the scalar (SimPy) and array
(cohort) namespaces give the same answers; the schema rejects unknown measure names.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from simulator.errors import InputError
from simulator.kernel.rules import Seen, compile_rule, describe_rule
from simulator.kernel.xp import ARRAY, SCALAR
from simulator.scenario import scenario_from_dict
from simulator.scenario.regimen import MEASURES, RULE_ATOMS, Rule

FLAGS = ("relapse", "ever_normal", "inactive", "entered")

# Six patients' visits, chosen to sit on both sides of (and exactly on) the thresholds.
VALUES = {
    "day": [0.0, 41.0, 42.0, 84.0, 168.0, 364.0],
    "cpk_x_uln": [15.0, 1.0, 0.99, 1.01, 0.4, 2.5],
    "cpk_pct_baseline": [100.0, 50.0, 50.1, 20.0, 5.0, 120.0],
    "cpk_rise_pct": [math.nan, -10.0, -9.9, -50.0, 0.0, 30.0],
    "myoglobin_x_uln": [3.5, 1.0, 0.8, 1.2, 0.5, 2.0],
    "mmt8": [110.0, 142.0, 141.0, 150.0, 120.0, 0.0],
    "mmt8_drop_pct_best": [0.0, 0.0, 5.0, 0.0, 20.0, 100.0],
    "physician_global_cm": [6.5, 6.0, 1.0, 0.0, 3.0, 10.0],
    "physician_global_rise_cm": [0.0, 2.0, 0.0, 0.0, 2.5, 9.0],
    "patient_global_cm": [7.0, 4.0, 2.0, 0.5, 3.0, 10.0],
    "haq": [1.5, 0.5, 0.25, 0.0, 1.0, 3.0],
    "extramuscular_cm": [4.0, 0.0, 1.0, 0.0, 2.0, 10.0],
    "skin_activity_cm": [3.0, math.nan, 1.0, 0.0, 2.0, 10.0],
    "lung_activity_cm": [math.nan, 0.0, 1.0, 0.5, math.nan, 8.0],
    "dysphagia_activity_cm": [2.0, 0.0, math.nan, 0.0, 1.5, 9.0],
    "tis": [0.0, 20.0, 40.0, 72.5, 10.0, 0.0],
    "prednisone_mg_per_day": [1250.0, 70.0, 10.0, 5.0, 0.0, 40.0],
    "relapses": [0.0, 0.0, 1.0, 2.0, 0.0, 3.0],
    "days_since_relapse": [math.inf, math.inf, 14.0, 28.0, math.inf, 0.0],
    "days_inactive": [0.0, 0.0, 0.0, 168.0, 0.0, 0.0],
    "ivig_cycles": [0.0, 1.0, 2.0, 3.0, 6.0, 0.0],
    "days_on_floor": [0.0, 0.0, 0.0, 56.0, 180.0, 0.0],
    "days_since_entry": [-math.inf, -math.inf, 0.0, 28.0, 112.0, -math.inf],
    "physician_global_above_baseline_cm": [0.0, -0.5, 2.0, -6.5, 1.99, 4.0],
    "mmt8_below_baseline_pct": [0.0, -29.0, 20.0, 0.0, 19.5, 100.0],
    "extramuscular_above_baseline_cm": [0.0, -4.0, 2.0, math.nan, 0.5, 6.0],
    "core_set_worse_30pct": [0.0, 0.0, 3.0, 1.0, 2.0, 5.0],
    "relapse": [False, False, True, False, False, True],
    "ever_normal": [False, False, True, True, True, False],
    "inactive": [False, False, False, True, False, False],
    "entered": [False, False, True, True, True, False],
}
N = 6


def seen_array():
    return Seen(**{name: np.array(v) for name, v in VALUES.items()})


def seen_scalar(i):
    return Seen(**{name: v[i] for name, v in VALUES.items()})


def evaluate(data):
    """The rule on the array namespace, and on each patient with the scalar namespace;
    the two must agree. Returns a bool array."""
    fn = compile_rule(Rule.model_validate(data))
    arr = np.broadcast_to(np.asarray(fn(ARRAY, seen_array()), dtype=bool), (N,))
    one = np.array([bool(fn(SCALAR, seen_scalar(i))) for i in range(N)])
    np.testing.assert_array_equal(arr, one, err_msg=str(data))
    return arr


def col(name):
    return np.array(VALUES[name])


def test_seen_has_every_measure_and_the_flags():
    assert set(Seen.__dataclass_fields__) == set(MEASURES) | set(FLAGS)
    assert set(VALUES) == set(Seen.__dataclass_fields__)


ATOMS = [
    ("cpk_above_x_uln", 1.0, lambda: col("cpk_x_uln") > 1.0),
    ("cpk_above_pct_baseline", 50.0, lambda: col("cpk_pct_baseline") > 50.0),
    ("cpk_rise_pct", -10.0, lambda: col("cpk_rise_pct") > -10.0),
    ("day_at_least", 42, lambda: col("day") >= 42),
    ("day_before", 42, lambda: col("day") < 42),
    ("relapse", True, lambda: col("relapse")),
    ("relapse", False, lambda: ~col("relapse")),
    ("relapses_at_least", 2, lambda: col("relapses") >= 2),
    ("prednisone_above_mg_per_day", 10.0, lambda: col("prednisone_mg_per_day") > 10.0),
    ("ever_normal", True, lambda: col("ever_normal")),
    ("ever_normal", False, lambda: ~col("ever_normal")),
    ("inactive", True, lambda: col("inactive")),
    ("inactive", False, lambda: ~col("inactive")),
    ("entered", True, lambda: col("entered")),
    ("entered", False, lambda: ~col("entered")),
]


@pytest.mark.parametrize(("atom", "value", "want"), ATOMS, ids=[f"{a}={v}" for a, v, _ in ATOMS])
def test_atom(atom, value, want):
    np.testing.assert_array_equal(evaluate({atom: value}), want())


def test_every_named_atom_is_tested():
    assert {a for a, _, _ in ATOMS} | {"above", "below", "at_least", "at_most"} == set(RULE_ATOMS)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_above_below_at_least_and_at_most_on_every_measure(name):
    values = col(name)
    finite = values[np.isfinite(values)]
    for threshold in (float(np.median(finite)), float(finite.min()), float(finite.max())):
        np.testing.assert_array_equal(evaluate({"above": {name: threshold}}), values > threshold)
        np.testing.assert_array_equal(evaluate({"below": {name: threshold}}), values < threshold)
        np.testing.assert_array_equal(
            evaluate({"at_least": {name: threshold}}), values >= threshold
        )
        np.testing.assert_array_equal(evaluate({"at_most": {name: threshold}}), values <= threshold)


def test_at_least_and_at_most_include_the_value_and_nan_compares_false():
    # ProDERM's ">= 2 cm" and ">= 3 of 5": the value itself counts, NaN never does
    np.testing.assert_array_equal(
        evaluate({"at_least": {"physician_global_above_baseline_cm": 2}}),
        [False, False, True, False, False, True],
    )
    np.testing.assert_array_equal(
        evaluate({"at_least": {"core_set_worse_30pct": 3}}),
        [False, False, True, False, False, True],
    )
    ext = "extramuscular_above_baseline_cm"
    assert not evaluate({"at_least": {ext: -1e9}})[3]
    assert not evaluate({"at_most": {ext: 1e9}})[3]
    text = describe_rule(Rule.model_validate({"at_least": {"mmt8_below_baseline_pct": 20}}))
    assert text == "mmt8 below baseline pct >= 20"
    assert describe_rule(Rule.model_validate({"at_most": {"haq": 0.5}})) == "haq <= 0.5"
    with pytest.raises(ValidationError, match="did you mean 'core_set_worse_30pct'"):
        Rule.model_validate({"at_least": {"core_set_worse_30": 3}})


def test_above_is_strict_and_nan_compares_false():
    # cpk_rise_pct is NaN at the first visit (no previous CPK): neither above nor below
    assert not evaluate({"above": {"cpk_rise_pct": -100}})[0]
    assert not evaluate({"below": {"cpk_rise_pct": 1e9}})[0]
    assert not evaluate({"above": {"cpk_x_uln": 1.0}})[1]  # exactly 1 x ULN is not above
    # days_since_relapse is inf without a relapse: above any number
    np.testing.assert_array_equal(
        evaluate({"above": {"days_since_relapse": 1e6}}), [True, True, False, False, True, False]
    )


def test_several_measures_in_one_comparison_must_all_hold():
    got = evaluate({"above": {"cpk_x_uln": 1.0, "physician_global_cm": 5.0}})
    np.testing.assert_array_equal(got, (col("cpk_x_uln") > 1) & (col("physician_global_cm") > 5))
    got = evaluate({"below": {"mmt8": 142, "haq": 1.0}})
    np.testing.assert_array_equal(got, (col("mmt8") < 142) & (col("haq") < 1.0))


def test_any_all_not_combine():
    a = {"above": {"cpk_x_uln": 1.0}}
    b = {"above": {"cpk_rise_pct": -10.0}}
    c = {"above": {"physician_global_rise_cm": 2.0}}
    ca, cb, cc = (
        (col("cpk_x_uln") > 1),
        (col("cpk_rise_pct") > -10),
        (col("physician_global_rise_cm") > 2),
    )
    np.testing.assert_array_equal(evaluate({"all": [a, b]}), ca & cb)
    np.testing.assert_array_equal(evaluate({"any": [a, c]}), ca | cc)
    np.testing.assert_array_equal(evaluate({"not": a}), ~ca)
    # the default taper hold rule
    np.testing.assert_array_equal(evaluate({"any": [{"all": [a, b]}, c]}), (ca & cb) | cc)
    np.testing.assert_array_equal(evaluate({"not": {"not": {"relapse": True}}}), col("relapse"))
    np.testing.assert_array_equal(evaluate({"any": [a]}), ca)


def test_describe_rule_reads_every_atom():
    assert describe_rule(Rule.model_validate({"above": {"cpk_x_uln": 1}})) == "cpk x uln > 1"
    text = describe_rule(
        Rule.model_validate({"all": [{"relapse": True}, {"below": {"mmt8": 142, "haq": 0.5}}]})
    )
    assert text == "(relapse at this visit and (haq < 0.5 and mmt8 < 142))"
    for atom, value, _ in ATOMS:
        assert describe_rule(Rule.model_validate({atom: value}))


def test_unknown_measure_is_rejected_with_a_suggestion():
    with pytest.raises(ValidationError, match="did you mean 'cpk_x_uln'"):
        Rule.model_validate({"above": {"cpk_xuln": 1.0}})
    with pytest.raises(ValidationError, match="did you mean 'physician_global_cm'"):
        Rule.model_validate({"below": {"physician_global": 2.0}})
    with pytest.raises(ValidationError, match="unknown measure 'zzz'"):
        Rule.model_validate({"above": {"zzz": 1.0}})


def test_unknown_measure_in_a_scenario_names_the_path_and_suggests():
    data = {"regimen": {"taper": {"hold_when": {"above": {"mmt_8": 140}}}}}
    with pytest.raises(InputError, match="did you mean 'mmt8'") as err:
        scenario_from_dict(data)
    assert "hold_when" in str(err.value)
    with pytest.raises(InputError, match="did you mean 'tis'"):
        scenario_from_dict({}, ['regimen.ivig.stop_when={"above": {"tiss": 40}}'])


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"above": {}},
        {"above": {"cpk_x_uln": float("nan")}},
        {"above": {"cpk_x_uln": 1}, "relapse": True},
        {"any": []},
    ],
)
def test_malformed_rules_are_rejected(bad):
    with pytest.raises(ValidationError):
        Rule.model_validate(bad)
