"""The default first-line scenario reproduces the founding abstract.

Faggioli P et al., Ann Rheum Dis 2015;74(Suppl 2):1139 (EULAR abstract AB0721): 15
patients with acute PM/DM on steroids plus IVIG 2 g/kg over 5 days every 4 weeks. "After
3 infusions the CPK and MG levels were reduced to 70% compared to baseline and
normalized after 5 infusions." docs/model.md (section 6) reads "reduced to 70%" as a 70%
fall, i.e. mean CPK at day 84 about 30% of baseline, and explains why.

Tolerances are Monte Carlo errors: 4 standard errors of the simulated estimate, so the
tests pass for almost any seed; the seed is fixed so a failure is reproducible.
"""

from __future__ import annotations

import math

import pytest

from simulator.runner import run

N = 4000


@pytest.fixture(scope="module")
def metrics(first_line_module):
    return run(first_line_module, patients=N, seed=2015, engine="cohort").metrics


@pytest.fixture(scope="module")
def first_line_module():
    from conftest import SCENARIOS

    from simulator.scenario import load_scenario

    return load_scenario(SCENARIOS / "first_line.yaml")


def se_of(m):
    lo, hi = m["ci95"]
    return (hi - lo) / (2 * 1.959963984540054)


def test_baseline_cpk_is_the_abstracts_mean(metrics):
    m = metrics["cpk_baseline_u_per_l"]
    assert abs(m["mean"] - 2980) < 4 * se_of(m)


def test_mean_cpk_after_three_cycles_is_thirty_percent_of_baseline(metrics):
    m = metrics["cpk_ratio_month_3"]
    assert abs(m["mean"] - 0.30) < 4 * se_of(m)


def test_cpk_is_normal_after_five_cycles_in_most_patients(metrics):
    """After the 5th cycle (days 119-123), at the day-140 visit: more than half normal."""
    m = metrics["cpk_normal_month_5"]
    p, n = m["mean"], m["n"]
    assert p - 4 * math.sqrt(p * (1 - p) / n) > 0.5


def test_myoglobin_falls_and_normalises_alike(metrics):
    """Myoglobin: well below baseline at day 84 and normal in most at month 6."""
    ratio = metrics["myoglobin_ratio_month_3"]
    assert ratio["mean"] + 4 * se_of(ratio) < 0.5
    m = metrics["myoglobin_normal_month_6"]
    p, n = m["mean"], m["n"]
    assert p - 4 * math.sqrt(p * (1 - p) / n) > 0.5


def test_taper_reaches_the_five_mg_floor_in_most_by_month_6(metrics):
    """Faggioli: steroids tapered to a 5 mg/day maintenance dose."""
    m = metrics["prednisone_5mg_by_month_6"]
    p, n = m["mean"], m["n"]
    assert p - 4 * math.sqrt(p * (1 - p) / n) > 0.5


def test_ivig_cycles_are_six_unless_an_adverse_event_stops_them(metrics, first_line_module):
    """Six cycles each, minus those lost after a thromboembolism, aseptic meningitis or
    kidney injury (per-cycle risks from the scenario; risk-factor carriers weighted)."""
    scn = first_line_module
    stops = [ae for ae in scn.safety.ivig.values() if ae.stops_ivig]
    share = scn.population.thrombosis_risk_factor
    expected = 0.0
    for weight, factor in ((1 - share, False), (share, True)):
        hazard = sum(-math.log1p(-ae.p_per_cycle)
                     * (ae.risk_factor_multiplier if factor else 1.0) for ae in stops)
        keep = math.exp(-hazard)
        expected += weight * sum(keep**c for c in range(scn.regimen.ivig.cycles))
    m = metrics["ivig_cycles"]
    assert abs(m["mean"] - expected) < 4 * se_of(m)
