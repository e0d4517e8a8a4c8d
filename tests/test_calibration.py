"""The packaged defaults meet the calibration targets of docs/model.md §6.

A target is met when the simulated 95% Monte Carlo interval overlaps the published 95%
interval (Wilson from the counts where counts are published): the criterion of the
clinical model issue. The simulated interval comes from the run itself, so the test
passes for almost any seed; the seed is fixed so a failure is reproducible.

Targets the fitted model does not meet are kept as strict expected failures with the
figures of the fit in their reason (docs/model.md §6 explains them): if a change makes
one of them pass, the strict xfail fails and the documentation must be updated.
"""

from __future__ import annotations

import pytest

from simulator.calibration import TARGETS, simulate

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
