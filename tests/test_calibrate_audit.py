"""The scale of the calibration's intervals and what its reports claim (an audit of
`simulate calibrate`): Laplace intervals with the published intervals' standard errors,
ABC tolerances named for the posterior they sample, a warning when ABC stops before its
final tolerance, parameters without curvature not identified, the ABC loss named for
where it is evaluated, and the loss's relation to a normal likelihood.

The toys replace the simulation by one target whose simulated value is the parameter
theta itself, bounds (0, 1), published 0.5 (95% interval 0.4-0.6): the posterior of a
normal likelihood with the standard error that interval implies (SE = 0.1 / 1.96 = 0.051)
under the flat prior is N(0.5, 0.051^2) (truncation at 0 and 1 is ~10 SE away)."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, load_script

import simulator.calibrate as C
from simulator.errors import InputError
from simulator.stats import Z95
from simulator.studies import TargetResult

SE = 0.1 / Z95  # the standard error the published interval 0.4-0.6 implies
PARAM = "disease.steroid.emax_per_day"


class _Store:
    """A checkpoint store that keeps nothing."""

    def save(self, i: int, entry: dict[str, Any]) -> None:
        pass

    def discard_if_unused(self) -> None:
        pass


def _result(simulated: float) -> TargetResult:
    return TargetResult(
        "toy", "", "calibration", "toy", "m", "a", "proportion", 0.5, 0.4, 0.6, *[simulated] * 3, 1
    )


def _plan(tmp_path: Path, method: str = "optimize", **abc: Any) -> C.CalibrationPlan:
    """A calibration of one parameter (bounds 0-1, start 0.45) against one target."""
    study = tmp_path / "study.yaml"
    study.write_text(
        "study: toy\ncitation: none\nrole: calibration\n"
        f"arms:\n  a: {ROOT / 'scenarios' / 'steroid_only.yaml'}\n"
        "targets:\n  - metric: cpk_normal_month_3\n"
        "    published: {value: 0.5, ci95: [0.4, 0.6]}\n"
    )
    cal = tmp_path / "cal.yaml"
    cal.write_text(
        "name: toy\nstudies: [study.yaml]\npatients: 10\nseed: 1\n"
        f"parameters:\n  {PARAM}: {{low: 0.04, high: 0.3}}\n"
        f"method: {method}\noptimize: {{starts: 1, max_evaluations: 60}}\n"
    )
    plan = C.load_calibration(cal)
    settings = {"particles": 300, "max_generations": 20, "moves": 2, "early_rejection": False}
    settings.update(abc)
    spec = plan.spec.model_copy(update={"abc": plan.spec.abc.model_copy(update=settings)})
    return dataclasses.replace(
        plan, spec=spec, low=np.array([0.0]), high=np.array([1.0]), start=np.array([0.45])
    )


@pytest.fixture
def toy(monkeypatch):
    """Replace the simulation: the target's simulated value is ``sim(theta)``."""
    sim = {"f": lambda th: th}

    def fake(plan: Any, x: np.ndarray, workers: int = 1, dask: Any = None) -> list[Any]:
        return [_result(sim["f"](float(x[0])))]

    monkeypatch.setattr(C, "evaluate", fake)
    return sim


def _optimize(plan: C.CalibrationPlan) -> C.CalibrationResult:
    return C._optimize(plan, _Store(), {}, 1, None, False)


def _abc(plan: C.CalibrationPlan) -> C.CalibrationResult:
    return C._abc(plan, _Store(), {}, 1, None, False)


def _weighted_sd(res: C.CalibrationResult) -> float:
    x, w = res.posterior[:, 0], res.weights
    assert w is not None
    m = float(np.sum(w * x))
    return float(np.sqrt(np.sum(w * (x - m) ** 2)))


def _report(res: C.CalibrationResult, folder: Path) -> str:
    """report.html of a result, with placeholder figures (what is tested is the text)."""
    from simulator.report.atomic import json_roundtrip
    from simulator.report.calibration import _html

    for f in ("targets.png", "pairs.png", "convergence.png"):
        (folder / f).write_bytes(b"png")
    return _html(json_roundtrip(res.to_json()), folder)


# 1. Laplace intervals on the scale of the published standard errors


def test_the_laplace_interval_of_a_parameter_that_is_its_target_is_the_published_one(tmp_path, toy):
    res = _optimize(_plan(tmp_path))
    assert res.estimate[0] == pytest.approx(0.5, abs=0.01)
    lo, hi = res.intervals[0]
    # u +- sqrt(2 / c) around logit(0.5) = 0, c ~ 12.5: expit(+-0.40) = 0.401, 0.599 (the
    # old, 1.96 times too wide on the logit scale: 0.31, 0.69)
    assert lo == pytest.approx(0.4, abs=0.005) and hi == pytest.approx(0.6, abs=0.005)
    assert res.to_json()["parameters"][0]["ci95"] == [lo, hi]
    # posterior.csv's draws: 1,000 from the approximation, sd ~ SE (Monte Carlo sd of a
    # sample sd of 1,000 normal draws: SE / sqrt(2000) = 0.0011; 4 of them, plus the
    # logit's curvature, < 0.001 here)
    assert res.posterior[:, 0].std() == pytest.approx(SE, abs=0.0055)


def test_a_laplace_interval_is_the_estimate_plus_minus_sqrt_2_over_c_on_the_logit_scale():
    c = 8.0
    (lo, hi), why = C.laplace_interval(2.0, 6.0, 0.3, c)
    assert why is None
    half = math.sqrt(2 / c)  # = Z95 x laplace_sd
    assert C.laplace_sd(c) == pytest.approx(half / Z95, rel=1e-15)
    assert lo == pytest.approx(2 + 4 / (1 + math.exp(-(0.3 - half))), rel=1e-14)
    assert hi == pytest.approx(2 + 4 / (1 + math.exp(-(0.3 + half))), rel=1e-14)


def test_adopting_a_fit_records_the_intervals_of_its_curvature():
    """scripts/adopt_calibration.py computes the recorded intervals again from each
    parameter's curvature, so a fitted.json with the old, too wide intervals is adopted
    with the right ones."""
    adopt = load_script("adopt_calibration")
    est, low, high, c = 0.12, 0.04, 0.3, 100.0
    u = math.log((est - low) / (high - est))
    wide = [low + (high - low) / (1 + math.exp(-(u + s * Z95 * math.sqrt(2 / c)))) for s in (-1, 1)]
    p = {"estimate": est, "low": low, "high": high, "curvature_logit": c, "ci95": wide}
    got = adopt.ci95_of(p)
    want, _ = C.laplace_interval(low, high, u, c)
    assert got == pytest.approx(list(want), rel=1e-12)
    # on the logit scale, the old half-width / 1.96 around the same centre
    logit = [math.log((v - low) / (high - v)) for v in got]
    assert (logit[1] - logit[0]) / 2 == pytest.approx(math.sqrt(2 / c), rel=1e-9)
    assert (logit[1] + logit[0]) / 2 == pytest.approx(u, abs=1e-12)
    assert adopt.ci95_of({**p, "curvature_logit": 0.0}) is None


def test_the_adopted_intervals_are_symmetric_on_the_logit_scale_and_identified():
    from simulator.scenario.disease import CALIBRATED_DEFAULTS, FITTED

    record = __import__("json").loads(CALIBRATED_DEFAULTS.read_text())
    for name, ci in record["ci95"].items():
        low, high = FITTED[name]
        est = record["parameters"][name]
        lo, hi = (math.log((v - low) / (high - v)) for v in ci)
        assert low < ci[0] < est < ci[1] < high, name
        assert (lo + hi) / 2 == pytest.approx(math.log((est - low) / (high - est)), abs=1e-9)
        assert not C.spans_bounds((ci[0], ci[1]), low, high), name


# 2. What ABC's final tolerance targets


@pytest.mark.parametrize(
    ("tolerance", "sd", "power"),
    [("se", SE, 1.0), (1.0, 0.1, 1 / Z95**2)],
)
def test_abc_samples_the_posterior_its_final_tolerance_names(tmp_path, toy, tolerance, sd, power):
    """At final_tolerance se (1/1.96) the kernel's sd is the published standard error:
    posterior sd 0.051; at the default 1 it is the half-width (1.96 SE): sd 0.1.
    Tolerance: over 40 seeds (300 particles) the weighted sd's own sd was 0.0022 at se
    and 0.0041 at 1, about sd / sqrt(2 x 300); the test allows 4 x sd / sqrt(600)."""
    res = _abc(_plan(tmp_path, "abc", final_tolerance=tolerance))
    assert res.generations is not None
    assert res.generations[-1]["tolerance"] == pytest.approx(
        1 / Z95 if tolerance == "se" else 1.0, rel=1e-15
    )
    assert _weighted_sd(res) == pytest.approx(sd, abs=4 * sd / math.sqrt(600))
    data = res.to_json()
    tol = data["abc_tolerance"]
    assert tol["reached"] and tol["final_tolerance"] == tolerance
    if tolerance == "se":
        assert "with those standard errors" in tol["targets"]
        assert "raised to the power" not in tol["targets"]
    else:
        assert f"raised to the power {power:.3g}" in tol["targets"]  # 0.26
        assert "final_tolerance: se" in tol["targets"]
    assert tol["targets"] in data["interval_note"]
    assert tol["targets"] in _report(res, tmp_path).replace("&#x27;", "'")


def test_the_final_tolerance_takes_a_number_or_se(tmp_path):
    _plan(tmp_path)  # writes cal.yaml and study.yaml
    cal = tmp_path / "cal.yaml"
    base = cal.read_text()
    for value, ok in (("se", True), ("0.5", True), ("0", False), ("true", False), ("sd", False)):
        cal.write_text(base + f"abc: {{final_tolerance: {value}}}\n")
        if ok:
            plan = C.load_calibration(cal)
            want = 1 / Z95 if value == "se" else float(value)
            assert C.final_tolerance(plan.spec.abc) == pytest.approx(want, rel=1e-15)
        else:
            with pytest.raises(InputError, match="final_tolerance: must be a number > 0 or se"):
                C.load_calibration(cal)


# 3. ABC stopped by max_generations before its final tolerance


def test_abc_stopped_before_its_final_tolerance_warns_and_says_where_it_stopped(
    tmp_path, toy, caplog
):
    with caplog.at_level(logging.WARNING, logger="simulator.calibrate"):
        res = _abc(_plan(tmp_path, "abc", particles=100, max_generations=1))
    assert res.generations is not None
    reached = res.generations[-1]["tolerance"]
    assert reached > 1.0
    warnings = [r for r in caplog.records if r.name == C.log.name]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "max_generations" in warnings[0].getMessage()
    assert f"{reached:.4g}" in warnings[0].getMessage()
    data = res.to_json()
    tol = data["abc_tolerance"]
    assert not tol["reached"] and tol["tolerance_reached"] == reached
    assert f"tolerance {reached:.4g}" in data["interval_note"]
    assert "WARNING" in data["interval_note"]
    assert "published intervals" not in data["interval_note"]
    html = _report(res, tmp_path)
    assert "before reaching the final tolerance" in html and f"{reached:.4g}" in html


def test_abc_that_reaches_its_final_tolerance_does_not_warn(tmp_path, toy, caplog):
    with caplog.at_level(logging.WARNING, logger="simulator.calibrate"):
        res = _abc(_plan(tmp_path, "abc", particles=100))
    assert not [r for r in caplog.records if r.name == C.log.name]
    assert res.to_json()["abc_tolerance"]["reached"]
    assert "WARNING" not in res.to_json()["interval_note"]


# 4. A parameter the loss hardly constrains


def test_a_parameter_with_almost_no_curvature_is_not_identified(tmp_path, toy):
    # the target barely moves with theta: curvature ~ 1e-5 > 0, interval = the bounds
    toy["f"] = lambda th: 0.5 + 1e-3 * (th - 0.45)
    res = _optimize(_plan(tmp_path))
    assert 0 < res.curvature[0] < 1e-3
    assert res.intervals[0] is None
    (p,) = res.to_json()["parameters"]
    assert p["identified"] is False and p["ci95"] is None
    assert "reaches both bounds" in p["not_identified_because"]
    html = _report(res, tmp_path)
    assert "not identified" in html and "reaches both bounds" in html
    # posterior.csv: drawn uniformly between the bounds
    assert res.posterior[:, 0].min() < 0.05 and res.posterior[:, 0].max() > 0.95


def test_not_identified_only_when_the_interval_reaches_both_bounds():
    assert C.spans_bounds((0.0400000027, 0.29999934), 0.04, 0.3)
    assert not C.spans_bounds((0.0400000027, 0.25), 0.04, 0.3)  # one bound: still informs
    assert C.laplace_interval(0.04, 0.3, 0.0, 0.0) == (
        None,
        "the loss has no positive curvature along it (0)",
    )
    assert C.laplace_interval(0.04, 0.3, 0.0, -1.0)[0] is None
    assert C.laplace_interval(0.04, 0.3, 0.0, 1e-6)[0] is None  # sd 720 on the logit scale
    assert C.laplace_interval(0.04, 0.3, 0.0, 1.0)[0] is not None


# 5. The ABC loss is at the posterior median


def test_the_abc_report_names_the_loss_at_the_posterior_median(tmp_path, toy):
    res = _abc(_plan(tmp_path, "abc", particles=100))
    data = res.to_json()
    assert "posterior median" in data["loss_at"]
    assert res.particle_losses is not None
    assert data["lowest_particle_loss"] == float(np.min(res.particle_losses))
    # the least loss of the run is not above the loss at the median (itself evaluated)
    assert data["lowest_loss"] <= data["loss"]
    assert data["lowest_loss"] == min(e["loss"] for e in res.evaluations)
    html = _report(res, tmp_path)
    assert "Best loss" not in html
    assert f"Loss at the componentwise posterior median <b>{data['loss']:.4g}</b>" in html
    assert f"lowest loss of the final particles {data['lowest_particle_loss']:.4g}" in html


def test_the_optimize_report_gives_the_best_loss(tmp_path, toy):
    res = _optimize(_plan(tmp_path))
    data = res.to_json()
    assert data["abc_tolerance"] is None and "estimate" in data["loss_at"]
    assert f"Best loss <b>{data['loss']:.4g}</b>" in _report(res, tmp_path)


# 6. The loss is not -2 log-likelihood; Z95^2 x loss is, for symmetric intervals


def test_the_loss_is_minus_2_log_likelihood_over_z95_squared_for_a_symmetric_interval():
    r = _result(0.53)
    # published 0.5, interval 0.4-0.6: SE = 0.1 / Z95
    assert Z95**2 * C.target_loss(r) == pytest.approx(((0.53 - 0.5) / SE) ** 2, rel=1e-12)
    # an asymmetric (Wilson) interval: the miss is standardised by its half-width
    asym = dataclasses.replace(r, published_low=0.45, published_high=0.65)
    assert C.target_loss(asym) == pytest.approx((0.03 / 0.1) ** 2, rel=1e-12)
