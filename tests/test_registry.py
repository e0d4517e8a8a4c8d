"""The metric registry: one place names every outcome, its estimator, unit, label, better
direction and headline status, and every consumer reads it from there."""

from __future__ import annotations

from conftest import SCENARIOS

from simulator.center_stats import CENTER_METRICS
from simulator.outcomes import BETTER, ESTIMATORS, HEADLINE, better_of, metric_specs
from simulator.runner import _plan_for
from simulator.scenario import load_scenario


def _all_specs():
    files = sorted(SCENARIOS.glob("*.yaml")) + sorted((SCENARIOS / "studies").glob("*.yaml"))
    specs = {}
    for f in files:
        for m in metric_specs(_plan_for(load_scenario(f))):
            specs.setdefault(m.name, m)
    return specs


def test_every_metric_has_a_label_unit_estimator_and_direction():
    specs = _all_specs()
    for m in specs.values():
        assert m.label and m.unit and m.kind in ESTIMATORS, m
        assert m.better in ("higher", "lower", None), m
    # the registry names no outcome that does not exist (a renamed metric would leave
    # its direction or headline behind)
    # an infusion center's metrics are per center, not per patient: their own registry
    # (center_stats.CENTER_METRICS: label, unit, better), read by better_of
    for name, (label, unit, better) in CENTER_METRICS.items():
        assert label and unit and better in ("higher", "lower", None), name
        assert better_of(name) == better and name not in specs
    known = set(specs) | set(CENTER_METRICS)
    assert set(BETTER) <= set(specs), sorted(set(BETTER) - set(specs))
    assert set(HEADLINE) <= known, sorted(set(HEADLINE) - known)
    assert specs["qaly"].better == "higher" and specs["cost_total"].better == "lower"
    assert specs["ivig_g"].better is None and specs["relapse"].headline


def test_compare_and_sweep_labels_come_from_the_registry(tmp_path):
    from simulator.comparison import compare

    specs = _all_specs()
    arms = [load_scenario(SCENARIOS / f"{n}.yaml") for n in ("first_line", "rescue")]
    out = compare(arms, patients=20, seed=1, progress=False).outcomes()
    for name, row in out.items():
        assert row["label"] == specs[name].label and row["better"] == specs[name].better
