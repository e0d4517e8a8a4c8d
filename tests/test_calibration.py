"""The packaged defaults meet the calibration targets of docs/model.md §6.

A target is met when the simulated 95% Monte Carlo interval overlaps the published 95%
interval (Wilson from the counts where counts are published): the criterion of the
clinical model issue. The simulated interval comes from the run itself, so the test
passes for almost any seed; the seed is fixed so a failure is reproducible.

Targets the fitted model does not meet are kept as strict expected failures with the
figures of the fit in their reason (docs/model.md §6 explains them): if a change makes
one of them pass, the strict xfail fails and the documentation must be updated. The
external validation targets (never fitted to) are checked the same way, so the page's
account of what the model predicts and misses stays true.
"""

from __future__ import annotations

import pytest

from simulator.calibration import TARGETS, VALIDATION, simulate

N = 1500

NOT_MET = {
    "cpk_ratio_month_3@first_line": (
        "mean CPK day 84 / baseline 0.088 (0.085-0.091) against 0.30 (0.20-0.40), 4000 pts"
    ),
    "last_visit_worsened@usual_care_long_term": (
        "0.008 (0.006-0.011) against 0.169 (0.101-0.268), 4000 pts"
    ),
    "treatment_failure_week_24@steroid_only": (
        "TIS < 20 (or dead) at week 24 in 0.038 (0.033-0.045) against ~0.25 (0.15-0.35), 4000 pts"
    ),
    "tis60_week_12_from_entry@dalakas_1993_ivig": (
        "TIS >= 60 at week 12 from entry in 0.161 (0.144-0.181) against 9/12, 0.75"
        " (0.47-0.91), 4000 pts"
    ),
}


@pytest.fixture(scope="module")
def simulated():
    return simulate({}, N, 2015)


def _params():
    for t in TARGETS:
        key = f"{t.metric}@{t.scenario}"
        marks = (
            [pytest.mark.xfail(strict=True, reason="not met: " + NOT_MET[key])]
            if key in NOT_MET
            else []
        )
        yield pytest.param(t, id=key, marks=marks)


@pytest.mark.parametrize("target", list(_params()))
def test_simulated_interval_overlaps_the_published_interval(simulated, target):
    key = f"{target.metric}@{target.scenario}"
    value = simulated[key]
    lo, hi = simulated[key + ":ci"]
    assert lo is not None and hi is not None, key
    assert lo <= target.high and hi >= target.low, (
        f"{target.source}: simulated {value:.3f} ({lo:.3f}-{hi:.3f}), published"
        f" {target.value:.3f} ({target.low:.3f}-{target.high:.3f})"
    )


# The external validation targets (never fitted to) the model misses, as docs/model.md §6
# reports them at 4,000 patients; the same verdicts hold here. A change that meets one
# (or misses a met one) fails its strict expected failure (or the test), and the page
# must then be updated.
VALIDATION_NOT_MET = {
    "last_visit_remission_off_therapy@bronner_2006": "0.017 against 0.20: sparing agents"
    " are never stopped in the usual-care regimen",
    "tis20_week_12_from_entry@dalakas_1993_placebo": "0.722 against 3/11",
    "died@usual_care_long_term": "Henriksson 1982: 0.087 against 0.234",
    "alive_year_5@danko_2004=0.769": "Michigan 2012: 0.912 against 0.769",
    "alive_year_10@danko_2004=0.619": "Michigan 2012: 0.839 against 0.619",
    "physician_global_at_entry_mild@proderm_placebo": "0.732 against 0.274",
    "physician_global_at_entry_moderate@proderm_placebo": "0.248 against 0.589",
    "physician_global_at_entry_severe@proderm_placebo": "0.020 against 0.137",
    "prednisone_at_entry@proderm_placebo": "1.000 against 0.884",
    "sparing_agent_at_entry@proderm_placebo": "0.233 against 0.568",
}


def _validation_params():
    for t in VALIDATION:
        key = f"{t.metric}@{t.scenario}"
        # two studies read the same metric of the same emulation (Danko's and the
        # Michigan cohort's survival): the published value tells them apart
        full = f"{key}={t.value:.3f}"
        reason = VALIDATION_NOT_MET.get(full) or VALIDATION_NOT_MET.get(key)
        marks = [pytest.mark.xfail(strict=True, reason="not met: " + reason)] if reason else []
        yield pytest.param(t, id=full, marks=marks)


@pytest.mark.parametrize("target", list(_validation_params()))
def test_validation_target_verdicts_are_those_documented(simulated, target):
    test_simulated_interval_overlaps_the_published_interval(simulated, target)


def test_every_documented_validation_miss_is_a_validation_target():
    keys = {f"{t.metric}@{t.scenario}" for t in VALIDATION}
    keys |= {f"{t.metric}@{t.scenario}={t.value:.3f}" for t in VALIDATION}
    assert set(VALIDATION_NOT_MET) <= keys


def test_no_fixed_untreatable_class_first_line_ratio_is_not_bimodal(simulated):
    """The founding abstract's decline must not come from mixing fast responders with a
    class that never responds: with continuous heterogeneity, CPK normal after 5 cycles
    in most patients (above) and hardly anyone still at or above baseline at day 84."""
    from simulator.calibration import SCENARIOS
    from simulator.runner import run
    from simulator.scenario import load_scenario

    rows = []
    run(
        load_scenario(SCENARIOS["first_line"]),
        patients=N,
        seed=2015,
        engine="cohort",
        sink=lambda t, _e: rows.append(t["cpk_ratio_month_3"]),
    )
    import numpy as np

    ratio = np.concatenate(rows)
    assert np.mean(ratio >= 1.0) < 0.05
