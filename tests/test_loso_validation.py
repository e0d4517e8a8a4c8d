"""scripts/loso_validation.py: leave-one-study-out cross-validation by importance sampling
on the calibration's posterior (docs/model.md section 6)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import ROOT, load_script
from scipy import stats

script = load_script("loso_validation")


def _two_studies() -> list[dict]:
    """Two studies, "a" and "b", of one target each, published 0.5 (0.4-0.6)."""
    return [
        {"study": s, "label": s, "arm": "x", "metric": "m", "published": 0.5,
         "published_low": 0.4, "published_high": 0.6}
        for s in "ab"
    ]  # fmt: skip


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_pareto_khat_recovers_the_shape_of_generalized_pareto_weights(k):
    """Weights drawn from a generalized Pareto distribution of shape k: the tail estimate
    is k within 3 standard errors of a shape estimated from the M = 3 sqrt(S) largest
    values ((1 + k) / sqrt(M), the maximum-likelihood standard error)."""
    s = 4000
    w = stats.genpareto(c=k).rvs(size=s, random_state=np.random.default_rng(11))
    tail = 3 * math.sqrt(s)
    assert script.pareto_khat(np.log(w)) == pytest.approx(k, abs=3 * (1 + k) / math.sqrt(tail))


def test_pareto_khat_orders_light_and_heavy_tails_and_needs_a_tail():
    """Either side of the reliability limit 0.7, each more than 4 standard errors
    ((1 + k) / sqrt(3 sqrt(S))) away from it."""
    rng = np.random.default_rng(3)
    light = rng.normal(size=4000) * 0.1  # log weights: lognormal weights with a thin spread
    heavy = np.log(stats.genpareto(c=1.5).rvs(size=4000, random_state=rng))
    assert script.pareto_khat(light) < script.K_HAT_LIMIT < script.pareto_khat(heavy)
    assert script.pareto_khat(np.zeros(3)) == math.inf  # no tail to fit


def test_leaving_a_study_out_reweights_by_exp_half_its_loss():
    """Three particles, two studies of one target each. Leaving out a study reweights the
    particles by exp(+its loss / 2); a study whose loss is the same at every particle
    leaves the posterior as it is."""
    targets = _two_studies()
    sims = np.array([[0.5, 0.1], [0.7, 0.2], [0.9, 0.3]])
    losses = np.array([[0.0, 2.0], [4.0, 2.0], [16.0, 2.0]])
    weights = np.array([0.6, 0.3, 0.1])
    table = {s["study"]: s for s in script.cross_validate(targets, sims, losses, weights)}
    w_a = weights * np.exp(losses[:, 0] / 2)
    w_a /= w_a.sum()
    ess = w_a.sum() ** 2 / (w_a**2).sum()
    assert table["a"]["ess_left_out"] == pytest.approx(ess)
    assert table["a"]["ess_fitted"] == pytest.approx(1 / (weights**2).sum())
    # a's own target: in the fit the weight sits on 0.5, left out it moves up
    a = table["a"]["targets"][0]
    assert a["fitted"]["median"] == 0.5 and a["left_out"]["median"] == 0.9
    # how often a study reporting 0.5 (0.4-0.6) with its own normal error (SD 0.1 / 1.96)
    # would report less: the published value against each particle's value plus that error
    sd = 0.1 / 1.959963984540054
    below = stats.norm.cdf((0.5 - sims[:, 0]) / sd)
    assert a["fitted"]["below"] == pytest.approx(float(np.sum(weights * below)), rel=1e-12)
    assert a["left_out"]["below"] == pytest.approx(float(np.sum(w_a * below)), rel=1e-12)
    assert a["fitted"]["inside"] and not a["left_out"]["inside"]
    # b's loss is flat: left out, its prediction is the fitted one
    b = table["b"]["targets"][0]
    for key in ("median", "low", "high", "below"):
        assert b["left_out"][key] == pytest.approx(b["fitted"][key])
    assert table["b"]["ess_left_out"] == pytest.approx(table["b"]["ess_fitted"])


def test_the_script_runs_the_calibrations_own_evaluation_on_the_shipped_posterior(tmp_path):
    """Three particles of the shipped posterior: every calibration target of every study
    file of calibration/posterior.yaml, with the particles' values; the JSON holds them."""
    out = tmp_path / "loso.json"
    import sys

    argv = sys.argv
    sys.argv = ["loso_validation.py", "--particles", "3", "--workers", "1", "--json", str(out)]
    try:
        script.main()
    finally:
        sys.argv = argv
    data = json.loads(out.read_text())
    plan = script.load_calibration(script.CALIBRATION)
    assert data["particles"] == 3 and len(data["targets"]) == len(plan.targets) == 19
    assert len(data["simulated"]) == 3 and all(len(r) == 19 for r in data["simulated"])
    assert [s["study"] for s in data["studies"]] == list(
        dict.fromkeys(t["study"] for t in data["targets"])
    )
    assert sum(len(s["targets"]) for s in data["studies"]) == 19
    # each particle simulated with its own parameters: the same simulated day-84 CPK
    # ratio exactly where the particles are the same (SMC resampling repeats particles)
    assert not out.with_suffix(".png").exists()  # 3 particles: no reliable prediction
    raw = (ROOT / "calibration" / "posterior" / "posterior.csv").read_text().splitlines()
    params = [line.rsplit(",", 1)[0] for line in raw[1:4]]
    j = next(i for i, t in enumerate(data["targets"]) if t["metric"] == "cpk_ratio_month_3")
    for a in range(3):
        for b in range(a):
            same = params[a] == params[b]
            assert (data["simulated"][a][j] == data["simulated"][b][j]) == same
    assert len(set(params)) > 1
    assert data["weights"] == [float(line.rsplit(",", 1)[1]) for line in raw[1:4]]


def test_a_refit_posterior_adds_its_prediction_to_the_left_out_studys_rows(tmp_path):
    targets = _two_studies()
    sims = np.array([[0.5, 0.1], [0.7, 0.2]])
    table = script.cross_validate(targets, sims, np.zeros((2, 2)), np.array([1.0, 1.0]))
    refit_sims = np.array([[0.2, 0.9], [0.3, 0.9], [0.4, 0.9]])
    script.add_refit(table, "a", targets, refit_sims, np.array([1.0, 1.0, 2.0]))
    a = table[0]["targets"][0]
    assert a["refit"]["median"] == 0.3 and a["refit"]["high"] == 0.4
    sd = 0.1 / 1.959963984540054  # the published interval's normal error
    ref = np.sum(np.array([1, 1, 2]) / 4 * stats.norm.cdf((0.5 - np.array([0.2, 0.3, 0.4])) / sd))
    assert a["refit"]["below"] == pytest.approx(float(ref), rel=1e-12)
    assert ref > 0.975 and not a["refit"]["inside"]
    assert table[0]["ess_refit"] == pytest.approx(16 / 6)
    assert "refit" not in table[1]["targets"][0]
    # how each is predicted without its study: a's from the refit; b's from the
    # reweighting, reliable or not by its k-hat
    assert script.left_out_prediction(table[0], a) == ("refit", a["refit"])
    b = table[1]["targets"][0]
    table[1]["pareto_khat"] = 0.5
    assert script.left_out_prediction(table[1], b) == ("reweighted", b["left_out"])
    table[1]["pareto_khat"] = 0.9
    assert script.left_out_prediction(table[1], b) is None
    text = script.markdown(table, 3)
    assert "else from a reliable reweighting): 1 of 2 targets" in text
    assert "central 95% for 0 of them" in text  # a's refit puts 0.5 above its 97.5%
    script.figure(table, tmp_path / "loso.png")  # a from its refit, b not (k-hat 0.9)
    assert (tmp_path / "loso.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit, match="no calibration study named 'c'"):
        script.add_refit(table, "c", targets, refit_sims, np.ones(3))


@pytest.mark.parametrize("study", ["milano_2025", "clin_rheumatol_2006"])
def test_each_cross_validation_calibration_is_the_shipped_posterior_without_one_study(study):
    """calibration/cross_validation/without_STUDY.yaml: the shipped ABC calibration (the
    same parameters, bounds, patients, seed and method) with that study's targets left out
    and 500 particles."""
    shipped = script.load_calibration(script.CALIBRATION)
    cv = script.load_calibration(
        ROOT / "calibration" / "cross_validation" / f"without_{study}.yaml"
    )
    assert [s.path.resolve() for s in cv.studies] == [
        s.path.resolve() for s in shipped.studies if s.path.stem != study
    ]
    assert cv.names == shipped.names
    assert (cv.low == shipped.low).all() and (cv.high == shipped.high).all()
    assert (cv.patients, cv.seed) == (shipped.patients, shipped.seed)
    assert cv.spec.method == shipped.spec.method == "abc"
    assert cv.spec.abc.particles == 500
    assert cv.spec.abc.model_dump(exclude={"particles"}) == shipped.spec.abc.model_dump(
        exclude={"particles"}
    )
    assert len(cv.targets) == len(shipped.targets) - sum(
        ft.study.path.stem == study for ft in shipped.targets
    )


def test_a_refit_simulates_only_its_studys_arms_with_the_same_values():
    """``--refit`` evaluates a plan cut down to the study's targets: its values are those
    of the whole calibration's evaluation, bit for bit."""
    plan = script.load_calibration(script.CALIBRATION)
    thetas, _ = script.particles(plan, script.POSTERIOR, 2)
    full_targets, full, _ = script.simulate_particles(plan, thetas, 1)
    own_targets, mine, _ = script.simulate_particles(
        script.study_plan(plan, "milano_2025"), thetas, 1
    )
    cols = [j for j, t in enumerate(full_targets) if t["study"] == "milano_2025"]
    assert own_targets == [full_targets[j] for j in cols] and len(cols) == 3
    assert np.array_equal(mine, full[:, cols])
