"""Core set measures, Total Improvement Score and HAQ -> EQ-5D (simulator/kernel/measures.py).

Expected points and TIS are written by hand from the ACR/EULAR 2016 table (Aggarwal 2017;
Rider 2017 Table 3), never computed by the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from simulator.kernel import measures as m
from simulator.kernel.xp import ARRAY, SCALAR

# A visit with nothing changed: every measure at a mid value, so a case below varies one
# measure and the others score 0 points.
NEUTRAL = {
    "physician_global_cm": 5.0,
    "patient_global_cm": 5.0,
    "mmt8": 100.0,
    "haq": 1.5,
    "cpk_x_uln": 2.0,
    "myoglobin_x_uln": 1.0,
    "extramuscular_cm": 5.0,
}


def core(**changes: float) -> m.CoreSet:
    return m.CoreSet(**{**NEUTRAL, **changes})


def tis_one(field: str, baseline: float, followup: float) -> float:
    return m.total_improvement_score(SCALAR, core(**{field: baseline}), core(**{field: followup}))


# ---------------------------------------------------------------------------------------
# Band edges, measure by measure: (field, baseline, followup, decimal %, points, TIS).
# VAS 10 -> 9.5 is exactly 5 % (0.5 / 10); other decimal edges (HAQ 3 -> 2.55, CPK 2 -> 1.9)
# are not exact in binary and must still score as on the edge.
# ---------------------------------------------------------------------------------------
VAS_EDGES = [
    # baseline 10 cm; followup; % of range; points per band for (phys, pat, extra)
    (10.0, 11.0, -10.0, (0.0, 0.0, 0.0)),
    (10.0, 10.0, 0.0, (0.0, 0.0, 0.0)),
    (10.0, 9.5, 5.0, (0.0, 0.0, 0.0)),
    (10.0, 9.49, 5.1, (7.5, 2.5, 7.5)),
    (10.0, 8.5, 15.0, (7.5, 2.5, 7.5)),
    (10.0, 8.49, 15.1, (15.0, 5.0, 12.5)),
    (10.0, 7.5, 25.0, (15.0, 5.0, 12.5)),
    (10.0, 7.49, 25.1, (17.5, 7.5, 15.0)),
    (10.0, 6.0, 40.0, (17.5, 7.5, 15.0)),
    (10.0, 5.99, 40.1, (20.0, 10.0, 20.0)),
    (10.0, 0.0, 100.0, (20.0, 10.0, 20.0)),
]

CASES = [
    (field, b, f, pts[k], pts[k])  # one measure moves, others score 0: TIS = its points
    for b, f, _pct, pts in VAS_EDGES
    for k, field in enumerate(("physician_global_cm", "patient_global_cm", "extramuscular_cm"))
] + [
    # HAQ, range 3: 0.15 = 5 %, 0.45 = 15 %, 0.75 = 25 %, 1.2 = 40 %
    ("haq", 3.0, 3.3, 0.0, 0.0),
    ("haq", 3.0, 2.85, 0.0, 0.0),
    ("haq", 3.0, 2.84, 5.0, 5.0),
    ("haq", 3.0, 2.55, 5.0, 5.0),
    ("haq", 3.0, 2.54, 7.5, 7.5),
    ("haq", 3.0, 2.25, 7.5, 7.5),
    ("haq", 3.0, 2.24, 7.5, 7.5),
    ("haq", 3.0, 1.8, 7.5, 7.5),
    ("haq", 3.0, 1.79, 10.0, 10.0),
    # CPK (most abnormal: 2.0 x ULN vs myoglobin 1.0), relative change from 2.0
    ("cpk_x_uln", 2.0, 4.0, 0.0, 0.0),
    ("cpk_x_uln", 2.0, 1.9, 0.0, 0.0),
    ("cpk_x_uln", 2.0, 1.89, 2.5, 2.5),
    ("cpk_x_uln", 2.0, 1.7, 2.5, 2.5),
    ("cpk_x_uln", 2.0, 1.69, 5.0, 5.0),
    ("cpk_x_uln", 2.0, 1.5, 5.0, 5.0),
    ("cpk_x_uln", 2.0, 1.49, 7.5, 7.5),
    ("cpk_x_uln", 2.0, 1.2, 7.5, 7.5),
    ("cpk_x_uln", 2.0, 1.19, 7.5, 7.5),
    # MMT-8, max 150: 3 points = 2 %, 15 = 10 %, 30 = 20 %, 45 = 30 %
    ("mmt8", 100.0, 90.0, 0.0, 0.0),
    ("mmt8", 100.0, 103.0, 0.0, 0.0),
    ("mmt8", 100.0, 104.0, 10.0, 10.0),
    ("mmt8", 100.0, 115.0, 10.0, 10.0),
    ("mmt8", 100.0, 116.0, 20.0, 20.0),
    ("mmt8", 100.0, 130.0, 20.0, 20.0),
    ("mmt8", 100.0, 131.0, 27.5, 27.5),
    ("mmt8", 100.0, 145.0, 27.5, 27.5),
    ("mmt8", 100.0, 146.0, 32.5, 32.5),
]

MEASURE_OF_FIELD = {
    "physician_global_cm": "physician_global",
    "patient_global_cm": "patient_global",
    "extramuscular_cm": "extramuscular",
    "haq": "haq",
    "cpk_x_uln": "enzyme",
    "mmt8": "mmt8",
}


@pytest.mark.parametrize(("field", "baseline", "followup", "pts", "tis"), CASES)
def test_band_edges(field, baseline, followup, pts, tis):
    if field == "mmt8":
        pct = 100.0 * (followup - baseline) / 150.0
    elif field == "cpk_x_uln":
        pct = m.enzyme_percent_improvement(SCALAR, baseline, followup)
    else:
        rng = 3.0 if field == "haq" else 10.0
        pct = m.percent_improvement(SCALAR, baseline, followup, rng)
    assert m.points(SCALAR, MEASURE_OF_FIELD[field], pct) == pts
    assert tis_one(field, baseline, followup) == tis


@pytest.mark.parametrize(
    ("baseline", "followup", "pct"),
    [(10.0, 9.5, 5.0), (10.0, 8.5, 15.0), (10.0, 7.5, 25.0), (10.0, 6.0, 40.0), (5.0, 6.0, -10.0)],
)
def test_vas_percent_is_exact(baseline, followup, pct):
    assert m.percent_improvement(SCALAR, baseline, followup, 10.0) == pct


@pytest.mark.parametrize(
    ("name", "pct", "pts"),
    [
        ("physician_global", -50.0, 0.0),
        ("physician_global", 5.0, 0.0),
        ("physician_global", 5.001, 7.5),
        ("physician_global", 15.0, 7.5),
        ("physician_global", 15.001, 15.0),
        ("physician_global", 25.0, 15.0),
        ("physician_global", 25.001, 17.5),
        ("physician_global", 40.0, 17.5),
        ("physician_global", 40.001, 20.0),
        ("patient_global", 40.001, 10.0),
        ("haq", 25.001, 7.5),
        ("enzyme", 40.001, 7.5),
        ("extramuscular", 15.001, 12.5),
        ("mmt8", 2.0, 0.0),
        ("mmt8", 2.001, 10.0),
        ("mmt8", 10.0, 10.0),
        ("mmt8", 10.001, 20.0),
        ("mmt8", 20.0, 20.0),
        ("mmt8", 20.001, 27.5),
        ("mmt8", 30.0, 27.5),
        ("mmt8", 30.001, 32.5),
        ("mmt8", -3.0, 0.0),
    ],
)
def test_points_direct(name, pct, pts):
    assert m.points(SCALAR, name, pct) == pts


def test_table_has_every_measure_and_max_100():
    assert set(m.TIS_TABLE) == set(m.CSM_NAMES)
    assert sum(b.points[-1] for b in m.TIS_TABLE.values()) == 100.0


def test_worked_example():
    # PhGA 6 -> 3 cm:          3/10   = 30 %  (25, 40]  17.5
    # PtGA 5 -> 4 cm:          1/10   = 10 %  (5, 15]    2.5
    # MMT-8 120 -> 132:       12/150  =  8 %  (2, 10]   10.0
    # HAQ 1.5 -> 1.2:        0.3/3    = 10 %  (5, 15]    5.0
    # CPK 2000/200 = 10 x ULN, myoglobin 300/120 = 2.5 x ULN -> CPK is scored:
    #   2000 -> 300: 1700/2000 = 85 %  > 40            7.5
    # extramuscular 4 -> 2:    2/10   = 20 %  (15, 25]  12.5
    # TIS = 17.5 + 2.5 + 10 + 5 + 7.5 + 12.5 = 55 -> moderate
    base = m.CoreSet(6.0, 5.0, 120.0, 1.5, 2000 / 200, 300 / 120, 4.0)
    now = m.CoreSet(3.0, 4.0, 132.0, 1.2, 300 / 200, 100 / 120, 2.0)
    tis = m.total_improvement_score(SCALAR, base, now)
    assert tis == 55.0
    assert m.response_category(SCALAR, tis) == 2


@pytest.mark.parametrize(
    ("tis", "category"),
    [(0.0, 0), (19.99, 0), (20.0, 1), (39.99, 1), (40.0, 2), (59.99, 2), (60.0, 3), (100.0, 3)],
)
def test_category_thresholds(tis, category):
    assert m.response_category(SCALAR, tis) == category
    assert m.response_category(ARRAY, np.array([tis]))[0] == category


@pytest.mark.parametrize(
    ("cpk", "myo", "enzyme_points"),
    [
        # CPK 4 x ULN is most abnormal: 4 -> 3.5 = 12.5 % -> 2.5, though myoglobin fell 75 %
        ((4.0, 3.5), (2.0, 0.5), 2.5),
        # myoglobin 4 x ULN is most abnormal: 4 -> 3.5 -> 2.5, though CPK fell 75 %
        ((2.0, 0.5), (4.0, 3.5), 2.5),
        # CPK most abnormal and worsened; myoglobin normalised: 0
        ((3.0, 6.0), (2.9, 0.1), 0.0),
        # tie at 2 x ULN: CPK is scored (2 -> 1 = 50 % -> 7.5), not myoglobin (0 %)
        ((2.0, 1.0), (2.0, 2.0), 7.5),
        ((2.0, 2.0), (2.0, 1.0), 0.0),
    ],
)
def test_enzyme_most_abnormal_at_baseline(cpk, myo, enzyme_points):
    base = core(cpk_x_uln=cpk[0], myoglobin_x_uln=myo[0])
    now = core(cpk_x_uln=cpk[1], myoglobin_x_uln=myo[1])
    assert m.total_improvement_score(SCALAR, base, now) == enzyme_points


@pytest.mark.parametrize("field", list(NEUTRAL))
def test_nan_input_gives_nan_tis(field):
    # including the enzyme that is not scored (myoglobin here)
    assert math.isnan(m.total_improvement_score(SCALAR, core(**{field: math.nan}), core()))
    assert math.isnan(m.total_improvement_score(SCALAR, core(), core(**{field: math.nan})))
    arr = m.total_improvement_score(
        ARRAY,
        m.CoreSet(**{k: np.array([v, v]) for k, v in NEUTRAL.items()}),
        m.CoreSet(**{k: np.array([v, math.nan if k == field else v]) for k, v in NEUTRAL.items()}),
    )
    assert arr[0] == 0.0 and math.isnan(arr[1])


def test_mmt8_max_is_a_parameter():
    # 100 -> 103: with max 80, 3/80 = 3.75 % -> (2, 10] -> 10; with 150, 3/150 = 2 % -> 0.
    assert m.total_improvement_score(SCALAR, core(), core(mmt8=103.0), mmt8_max=80.0) == 10.0
    assert m.total_improvement_score(SCALAR, core(), core(mmt8=103.0)) == 0.0


# ---------------------------------------------------------------------------------------
# Measures from latent states
# ---------------------------------------------------------------------------------------


def test_measures_at_known_points():
    # No disease, no noise: all zero; deficit 0 gives HAQ ~ 3 * 3 * 1e-12^0.8 ~ 2e-9
    assert m.physician_global_cm(SCALAR, 0.0, 0.0, 0.8, 0.4, 0.7, 0.0) == 0.0
    assert m.patient_global_cm(SCALAR, 0.0, 0.0, 0.0, 0.6, 0.3, 4.0, 1.0, 0.0) == 0.0
    assert m.haq(SCALAR, 0.0, 0.0, 3.0, 0.8, 0.1, 0.15, 0.0) < 1e-8
    assert m.extramuscular_cm(SCALAR, 2.0, 0.6, 0.6, 0.0, False) == 0.0
    # Full weakness saturates HAQ at 3
    assert m.haq(SCALAR, 1.0, 0.0, 3.0, 0.8, 0.1, 0.15, 0.0) == 3.0
    # Physician global at diagnosis (a = 1, ax = 0): 10 (1 - e^-0.8) = 5.5067...
    assert m.physician_global_cm(SCALAR, 1.0, 0.0, 0.8, 0.4, 0.0, 0.0) == pytest.approx(
        10 * (1 - math.exp(-0.8)), rel=1e-15
    )
    assert m.deficit_fraction(SCALAR, 120.0) == 0.2
    assert m.deficit_fraction(SCALAR, 151.0) == 0.0


@pytest.mark.parametrize(
    ("true", "z", "measured"),
    [(100.4, 0.0, 100.0), (100.5, 0.0, 101.0), (149.0, 10.0, 150.0), (2.0, -1.0, 0.0)],
)
def test_mmt8_is_whole_and_clipped(true, z, measured):
    got = m.mmt8_measured(SCALAR, true, 3.0, z)
    assert got == measured and isinstance(got, float)


@pytest.mark.parametrize(
    ("phys", "extra", "cpk", "expected"),
    [
        (1.0, 1.0, 0.99, True),
        (1.01, 0.0, 0.5, False),
        (0.0, 1.01, 0.5, False),
        (0.0, 0.0, 1.0, False),
    ],
)
def test_inactive(phys, extra, cpk, expected):
    cs = core(physician_global_cm=phys, extramuscular_cm=extra, cpk_x_uln=cpk)
    assert m.inactive(SCALAR, cs) is expected


def test_eq5d_carreno():
    # Carreno 2011: 0.9567 - 0.309 HAQ; HAQ 0 -> 0.9567, HAQ 1 -> 0.6477, HAQ 3 -> 0.0297
    args = (m.EQ5D_CARRENO2011_INTERCEPT, m.EQ5D_CARRENO2011_SLOPE_PER_HAQ)
    assert m.eq5d_from_haq(SCALAR, 0.0, 1.0, *args, 0.0) == 0.9567
    assert m.eq5d_from_haq(SCALAR, 1.0, 0.0, *args, 0.0) == pytest.approx(0.6477, abs=1e-12)
    assert m.eq5d_from_haq(SCALAR, 3.0, 0.0, *args, 0.0) == pytest.approx(0.0297, abs=1e-12)
    # clipping to the UK EQ-5D-3L range
    assert m.eq5d_from_haq(SCALAR, 3.0, 0.0, 0.0, -1.0, 0.0) == -0.594
    assert m.eq5d_from_haq(SCALAR, 0.0, 1.0, 0.96, -0.3, 0.05) == 1.0


# ---------------------------------------------------------------------------------------
# SCALAR and ARRAY give the same bits
# ---------------------------------------------------------------------------------------

N = 400


def _same(fn, arrays, params=()):
    """fn on whole arrays vs element by element on floats: equal with ==."""
    vec = fn(ARRAY, *arrays, *params)
    for i in range(N):
        one = fn(SCALAR, *(float(a[i]) for a in arrays), *params)
        assert one == vec[i], (i, one, vec[i])


def _rng():
    return np.random.default_rng(20260101)


def test_bit_identity_latent_measures():
    r = _rng()
    a = np.exp(r.normal(-1.0, 1.5, N))
    ax = np.exp(r.normal(-1.5, 1.5, N)) * (r.random(N) < 0.7)
    z = r.normal(size=N)
    mmt = r.uniform(40.0, 150.0, N)
    d = m.deficit_fraction(ARRAY, mmt)
    present = (r.random(N) < 0.6) * 1.0
    _same(m.deficit_fraction, (mmt,))
    _same(lambda xp, a_, ax_, z_: m.physician_global_cm(xp, a_, ax_, 0.8, 0.4, 0.7, z_), (a, ax, z))
    _same(
        lambda xp, a_, ax_, d_, z_: m.patient_global_cm(xp, a_, ax_, d_, 0.6, 0.3, 4.0, 1.0, z_),
        (a, ax, d, z),
    )
    _same(lambda xp, d_, ax_, z_: m.haq(xp, d_, ax_, 3.0, 0.8, 0.1, 0.15, z_), (d, ax, z))
    _same(lambda xp, ax_, z_, p_: m.extramuscular_cm(xp, ax_, 0.6, 0.6, z_, p_), (ax, z, present))
    _same(lambda xp, t_, z_: m.mmt8_measured(xp, t_, 3.0, z_), (mmt, z * 5))
    hq = r.uniform(0.0, 3.0, N)
    female = (r.random(N) < 0.7) * 1.0
    _same(lambda xp, h_, f_: m.eq5d_from_haq(xp, h_, f_, 0.76, -0.28, 0.05), (hq, female))
    _same(lambda xp, h_, f_: m.eq5d_from_haq(xp, h_, f_, 0.0, -1.0, 0.0), (hq, female))


def _random_coreset(r):
    return m.CoreSet(
        r.uniform(0, 10, N),
        r.uniform(0, 10, N),
        np.floor(r.uniform(40, 150, N)),
        np.round(r.uniform(0, 3, N) * 8) / 8,
        np.exp(r.normal(1.0, 1.2, N)),
        np.exp(r.normal(0.8, 1.2, N)),
        r.uniform(0, 10, N),
    )


def _row(cs, i):
    return m.CoreSet(*(float(getattr(cs, f)[i]) for f in m.CoreSet.__slots__))


def test_bit_identity_scores():
    r = _rng()
    base, now = _random_coreset(r), _random_coreset(r)
    tis = m.total_improvement_score(ARRAY, base, now)
    cat = m.response_category(ARRAY, tis)
    inact = m.inactive(ARRAY, now)
    pct = r.uniform(-60, 120, N)
    assert len(set(cat.tolist())) == 4  # all categories exercised
    for i in range(N):
        b, n = _row(base, i), _row(now, i)
        one = m.total_improvement_score(SCALAR, b, n)
        assert one == tis[i]
        assert m.response_category(SCALAR, one) == cat[i]
        assert m.inactive(SCALAR, n) == inact[i]
        for name in m.CSM_NAMES:
            assert m.points(SCALAR, name, float(pct[i])) == m.points(ARRAY, name, pct)[i]
        assert (
            m.percent_improvement(SCALAR, b.haq, n.haq, 3.0)
            == m.percent_improvement(ARRAY, base.haq, now.haq, 3.0)[i]
        )
        assert (
            m.enzyme_percent_improvement(SCALAR, b.cpk_x_uln, n.cpk_x_uln)
            == m.enzyme_percent_improvement(ARRAY, base.cpk_x_uln, now.cpk_x_uln)[i]
        )


# ---------------------------------------------------------------------------------------
# Bounds on extreme inputs
# ---------------------------------------------------------------------------------------

activity = hs.floats(0.0, 1e6)
noise = hs.floats(-1e3, 1e3)
positive = hs.floats(0.0, 1e3)


@settings(max_examples=300, deadline=None)
@given(
    a=activity,
    ax=activity,
    z=noise,
    mmt=hs.floats(-50.0, 300.0),
    s1=positive,
    s2=positive,
    s3=positive,
    sd=positive,
    present=hs.booleans(),
    exponent=hs.floats(0.01, 5.0),
)
def test_measures_stay_in_range(a, ax, z, mmt, s1, s2, s3, sd, present, exponent):
    d = m.deficit_fraction(SCALAR, mmt)
    assert 0.0 <= d <= 1.0
    assert 0.0 <= m.physician_global_cm(SCALAR, a, ax, s1, s2, sd, z) <= 10.0
    assert 0.0 <= m.patient_global_cm(SCALAR, a, ax, d, s1, s2, s3, sd, z) <= 10.0
    h = m.haq(SCALAR, d, ax, s1, exponent, s2, sd, z)
    assert 0.0 <= h <= 3.0
    assert 0.0 <= m.extramuscular_cm(SCALAR, ax, s1, sd, z, present) <= 10.0
    mm = m.mmt8_measured(SCALAR, mmt, sd, z)
    assert 0.0 <= mm <= 150.0 and mm == math.floor(mm)
    female = 1.0 if present else 0.0
    assert -0.594 <= m.eq5d_from_haq(SCALAR, h, female, 0.9567, -0.309, 0.0) <= 1.0
    assert -0.594 <= m.eq5d_from_haq(SCALAR, h, female, s1, -s2, s3) <= 1.0


vas = hs.floats(0.0, 10.0)
enzyme = hs.floats(1e-3, 1e3)


@settings(max_examples=300, deadline=None)
@given(
    b=hs.tuples(vas, vas, hs.floats(0.0, 150.0), hs.floats(0.0, 3.0), enzyme, enzyme, vas),
    n=hs.tuples(vas, vas, hs.floats(0.0, 150.0), hs.floats(0.0, 3.0), enzyme, enzyme, vas),
)
def test_tis_stays_in_range(b, n):
    tis = m.total_improvement_score(SCALAR, m.CoreSet(*b), m.CoreSet(*n))
    assert 0.0 <= tis <= 100.0
    assert m.response_category(SCALAR, tis) in (0, 1, 2, 3)


def test_array_points_match_the_scalar_bands_on_and_around_every_edge():
    """The cohort and the single-patient paths give the same points exactly on an edge,
    on a cut (edge + tolerance), one ulp either side of it, at +-inf and for NaN."""
    cuts = np.array(sorted({e for b in m.TIS_TABLE.values() for e in b.edges_pct}))
    cuts = cuts + m._EDGE_TOLERANCE_PCT
    pct = np.concatenate(
        [
            cuts - m._EDGE_TOLERANCE_PCT,
            cuts,
            np.nextafter(cuts, -np.inf),
            np.nextafter(cuts, np.inf),
            _rng().uniform(-100.0, 150.0, 200),
            [np.nan, np.inf, -np.inf, 0.0, -0.0],
        ]
    )
    for name in m.TIS_TABLE:
        got = m.points(ARRAY, name, pct)
        want = np.array([m.points(SCALAR, name, float(p)) for p in pct])
        np.testing.assert_array_equal(got, want)
