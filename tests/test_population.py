"""Distributions as users write them, and the baseline of the founding cohort."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simulator.kernel.population import ppf, sample_baseline
from simulator.scenario.schema import Dist

U = (np.arange(1, 2000) - 0.5) / 2000


def test_lognormal_from_mean_and_sd_has_that_mean_and_sd():
    d = Dist(dist="lognormal", mean=2980, sd=1300)
    s2 = math.log1p((1300 / 2980) ** 2)
    ref = stats.lognorm(s=math.sqrt(s2), scale=math.exp(math.log(2980) - s2 / 2))
    np.testing.assert_allclose(ppf(d, U), ref.ppf(U), rtol=1e-12)
    assert ref.mean() == pytest.approx(2980) and ref.std() == pytest.approx(1300)


def test_lognormal_from_median_and_range_covers_the_range():
    d = Dist(dist="lognormal", median=2600, range=[1000, 9100])
    lo, mid, hi = ppf(d, np.array([0.025, 0.5, 0.975]))
    assert mid == pytest.approx(2600)
    assert math.log(hi / lo) == pytest.approx(math.log(9100 / 1000))


def test_lognormal_median_and_range_that_no_lognormal_has_are_named_in_a_warning(caplog):
    """A median is the geometric mean of a lognormal's central interval: median 380 with
    [150, 900] (367.4) cannot both hold. The median is kept and the range's width sets
    the spread, so the central 95% drawn is [155.1, 930.8], and the warning says so
    (statistics audit: the README's own example drew it silently). A centred range is
    drawn as written, without a warning."""
    with caplog.at_level("WARNING", logger="simulator.scenario.schema"):
        d = Dist(dist="lognormal", median=381, range=[150, 900])
    lo, mid, hi = ppf(d, np.array([0.025, 0.5, 0.975]))
    k = math.sqrt(900 / 150)
    assert (lo, mid, hi) == pytest.approx((381 / k, 381, 381 * k), rel=1e-12)
    assert f"[{381 / k:.4g}, {381 * k:.4g}]" in caplog.text
    assert "367.4" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="simulator.scenario.schema"):
        centred = Dist(dist="lognormal", median=math.sqrt(160 * 910), range=[160, 910])
    assert ppf(centred, np.array([0.025, 0.975])) == pytest.approx([160, 910], rel=1e-12)
    assert caplog.text == ""


def test_truncated_normal_matches_scipy():
    d = Dist(dist="normal", mean=39.8, sd=11, low=28, high=72)
    a, b = (28 - 39.8) / 11, (72 - 39.8) / 11
    np.testing.assert_allclose(
        ppf(d, U), stats.truncnorm(a, b, loc=39.8, scale=11).ppf(U), rtol=1e-10
    )


def test_truncation_far_in_the_upper_tail_stays_accurate():
    # 4.7 sd: the bounds hold 1.3e-6 of the mass, just above the 1e-6 the schema allows
    d = Dist(dist="truncnormal", mean=0, sd=1, low=4.7)
    x = ppf(d, U)
    assert np.all(x >= 4.7) and np.all(np.isfinite(x))
    np.testing.assert_allclose(x, stats.truncnorm(4.7, np.inf).ppf(U), rtol=1e-8)


def test_truncation_holding_almost_none_of_the_mass_is_refused_with_the_share():
    with pytest.raises(ValueError, match=r"hold only 9\.87e-10 of this truncnormal"):
        Dist(dist="truncnormal", mean=0, sd=1, low=6)
    with pytest.raises(ValueError, match="hold only about 1e-"):
        Dist(dist="lognormal", median=100, cv=0.01, low=1e6)


def test_fixed_and_uniform():
    assert np.all(ppf(Dist(dist="fixed", value=3.5), U) == 3.5)
    np.testing.assert_allclose(ppf(Dist(dist="uniform", low=2, high=4), U), 2 + 2 * U)


def test_founding_cohort_baseline(first_line):
    """Faggioli 2015: 11/15 female, mean age 42.6 (28-72), CPK 2980 U/L, myoglobin 420 ng/mL.

    Tolerances are 4 Monte Carlo standard errors of the sample mean.
    """
    n = 20_000
    b = sample_baseline(first_line, 1, np.arange(n))
    p = b.female.mean()
    assert abs(p - 11 / 15) < 4 * math.sqrt(p * (1 - p) / n)
    for values, target in (
        (b.age_years, 42.6),
        (b.cpk_u_per_l, 2980.0),
        (b.myoglobin_ng_per_ml, 420.0),
    ):
        assert abs(values.mean() - target) < 4 * values.std() / math.sqrt(n)
    assert b.age_years.min() >= 28 and b.age_years.max() <= 72
    assert np.corrcoef(np.log(b.cpk_u_per_l), np.log(b.myoglobin_ng_per_ml))[0, 1] > 0.6
