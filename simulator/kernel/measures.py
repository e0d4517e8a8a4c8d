"""Core set measures of myositis activity, the ACR/EULAR 2016 Total Improvement Score, and
a HAQ -> EQ-5D utility mapping.

1. Total Improvement Score (TIS), adult DM/PM.
   Aggarwal R et al., 2016 ACR/EULAR criteria for minimal, moderate and major clinical
   response in adult dermatomyositis and polymyositis, Ann Rheum Dis 2017;76:792-801
   (doi:10.1136/annrheumdis-2017-211400), also Arthritis Rheumatol 2017;69:898-910
   (Rider LG et al., PMC5577002, Table 3: the conjoint-analysis points); methods in Rider LG
   et al., Rheumatology 2017;56:1884-93. Each of six core set measures (CSMs) earns points
   by its "absolute percent change" band; the TIS is their sum (0-100). Adult thresholds:
   minimal >= 20, moderate >= 40, major >= 60.

   Our reading of "absolute percent change" (improvement positive, worsening negative and
   scored as the first band):
   - visual analogue scales (physician global, patient global, extramuscular; 0-10 cm) and
     HAQ (0-3): the change as a percentage of the scale's range,
     ``100 * (baseline - followup) / range`` (higher is worse on these scales);
   - MMT-8 (0 to its maximum, 150 by default): ``100 * (followup - baseline) / max``;
   - muscle enzymes: the relative change of the enzyme most abnormal at baseline,
     ``100 * (baseline - followup) / baseline``, "most abnormal" meaning the largest
     multiple of its upper limit of normal (ULN); here CPK and myoglobin.
   This is our reading, not a quotation: the IMACS online calculators
   (niehs.nih.gov/research/resources/imacs/response_criteria) ask for the MMT maximum and
   the enzymes' ULN, which is consistent with it.

   Band edges (upper edge inclusive): <= 5 | (5, 15] | (15, 25] | (25, 40] | > 40 %;
   MMT-8: <= 2 | (2, 10] | (10, 20] | (20, 30] | > 30 %.

2. Core set measures derived from the disease model's latent states plus measurement
   noise. The functional forms and their parameters are our assumptions (module constants
   below are suggested defaults, to be calibrated); the caller passes the values.

3. EQ-5D utility from HAQ: Carreno A et al., Using HAQ-DI to estimate HUI-3 and EQ-5D
   utility values for patients with rheumatoid arthritis in Spain, Value Health
   2011;14:192-200 (doi:10.1016/j.jval.2010.11.001). Rheumatoid arthritis, not myositis:
   an assumption that utility depends on disability the same way.

Every function takes ``xp`` (``kernel.xp.SCALAR`` or ``ARRAY``) and works elementwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .xp import Ops

__all__ = [
    "CSM_NAMES",
    "EQ5D_UK_3L_MAX",
    "EQ5D_UK_3L_MIN",
    "TIS_MAJOR",
    "TIS_MINIMAL",
    "TIS_MODERATE",
    "TIS_TABLE",
    "Bands",
    "CoreSet",
    "deficit_fraction",
    "enzyme_percent_improvement",
    "eq5d_from_haq",
    "extramuscular_cm",
    "haq",
    "inactive",
    "mmt8_measured",
    "patient_global_cm",
    "percent_improvement",
    "physician_global_cm",
    "points",
    "response_category",
    "total_improvement_score",
]

# ---------------------------------------------------------------------------------------
# 1. Total Improvement Score
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bands:
    """Upper edges (inclusive, percent) of the first four bands and the points of all five."""

    edges_pct: tuple[float, float, float, float]
    points: tuple[float, float, float, float, float]


CSM_NAMES: tuple[str, ...] = (
    "physician_global",
    "patient_global",
    "haq",
    "enzyme",
    "extramuscular",
    "mmt8",
)

_EDGES_PCT = (5.0, 15.0, 25.0, 40.0)
_MMT8_EDGES_PCT = (2.0, 10.0, 20.0, 30.0)

# Rider 2017 Table 3 / Aggarwal 2017: conjoint-analysis points per band.
TIS_TABLE = MappingProxyType(
    {
        "physician_global": Bands(_EDGES_PCT, (0.0, 7.5, 15.0, 17.5, 20.0)),
        "patient_global": Bands(_EDGES_PCT, (0.0, 2.5, 5.0, 7.5, 10.0)),
        "haq": Bands(_EDGES_PCT, (0.0, 5.0, 7.5, 7.5, 10.0)),
        "enzyme": Bands(_EDGES_PCT, (0.0, 2.5, 5.0, 7.5, 7.5)),
        "extramuscular": Bands(_EDGES_PCT, (0.0, 7.5, 12.5, 15.0, 20.0)),
        "mmt8": Bands(_MMT8_EDGES_PCT, (0.0, 10.0, 20.0, 27.5, 32.5)),
    }
)

TIS_MINIMAL = 20.0
TIS_MODERATE = 40.0
TIS_MAJOR = 60.0

VAS_RANGE_CM = 10.0
HAQ_RANGE = 3.0
MMT8_MAX_DEFAULT = 150.0

# Inputs are decimals (HAQ 2.85, CPK 0.95 x ULN) that binary floats cannot hold, so a
# change lying exactly on a band edge in decimal can compute a few 1e-15 % above it and
# jump a band. A change must exceed an edge by more than this to reach the next band;
# 1e-9 percentage points is far below any measurable change.
_EDGE_TOLERANCE_PCT = 1e-9


def percent_improvement(xp: Ops, baseline: Any, followup: Any, range_: Any) -> Any:
    """Change as a percentage of the scale's range, positive when the score fell.

    For measures where higher is worse (VAS 0-10 cm, HAQ 0-3); Aggarwal 2017, our reading.
    """
    return 100.0 * (baseline - followup) / range_


def enzyme_percent_improvement(xp: Ops, baseline: Any, followup: Any) -> Any:
    """Relative change of a muscle enzyme from baseline, positive when it fell.

    Baseline enzymes are > 0 (they are the most abnormal values at entry); Aggarwal 2017,
    our reading.
    """
    return 100.0 * (baseline - followup) / baseline


def points(xp: Ops, measure_name: str, pct: Any) -> Any:
    """TIS points of one core set measure for a percent improvement ``pct`` (TIS_TABLE).

    Worsening (pct < 0) scores as the first band (0 points); NaN gives NaN.
    """
    bands = TIS_TABLE[measure_name]
    result: Any = bands.points[0]
    for edge, band_points in zip(bands.edges_pct, bands.points[1:], strict=True):
        result = xp.where(pct > edge + _EDGE_TOLERANCE_PCT, band_points, result)
    return xp.where(pct != pct, pct, result)  # pct != pct only for NaN


@dataclass(slots=True)
class CoreSet:
    """The six IMACS core set measures at one visit (floats, or arrays over a cohort).

    Enzymes are multiples of their upper limit of normal; VAS in cm (0-10); MMT-8 in points
    (0-150); HAQ disability index 0-3.
    """

    physician_global_cm: Any
    patient_global_cm: Any
    mmt8: Any
    haq: Any
    cpk_x_uln: Any
    myoglobin_x_uln: Any
    extramuscular_cm: Any


def total_improvement_score(
    xp: Ops, base: CoreSet, now: CoreSet, mmt8_max: float = MMT8_MAX_DEFAULT
) -> Any:
    """ACR/EULAR 2016 Total Improvement Score (0-100) from baseline ``base`` to ``now``.

    Aggarwal 2017; Rider 2017 Table 3. The enzyme scored is the one most abnormal at
    baseline (larger multiple of ULN; CPK on ties). NaN in any input gives NaN.
    """
    pct_cpk = enzyme_percent_improvement(xp, base.cpk_x_uln, now.cpk_x_uln)
    pct_myo = enzyme_percent_improvement(xp, base.myoglobin_x_uln, now.myoglobin_x_uln)
    use_cpk = base.cpk_x_uln >= base.myoglobin_x_uln
    enzyme_points = xp.where(use_cpk, points(xp, "enzyme", pct_cpk), points(xp, "enzyme", pct_myo))
    # The enzyme not chosen is still an input: NaN there must not pass silently.
    enzyme_nan = xp.logical_or(pct_cpk != pct_cpk, pct_myo != pct_myo)
    enzyme_points = xp.where(enzyme_nan, pct_cpk + pct_myo, enzyme_points)

    phys = percent_improvement(xp, base.physician_global_cm, now.physician_global_cm, VAS_RANGE_CM)
    pat = percent_improvement(xp, base.patient_global_cm, now.patient_global_cm, VAS_RANGE_CM)
    func = percent_improvement(xp, base.haq, now.haq, HAQ_RANGE)
    extra = percent_improvement(xp, base.extramuscular_cm, now.extramuscular_cm, VAS_RANGE_CM)
    # Higher MMT-8 is better, so the change is followup - baseline.
    strength = 100.0 * (now.mmt8 - base.mmt8) / mmt8_max
    return (
        points(xp, "physician_global", phys)
        + points(xp, "patient_global", pat)
        + points(xp, "haq", func)
        + enzyme_points
        + points(xp, "extramuscular", extra)
        + points(xp, "mmt8", strength)
    )


def response_category(xp: Ops, tis: Any) -> Any:
    """0 none, 1 minimal (TIS >= 20), 2 moderate (>= 40), 3 major (>= 60); Aggarwal 2017.

    NaN TIS gives 0: a patient without a score counts as a non-responder.
    """
    # Multiply by 1 before adding: numpy adds boolean arrays as logical or.
    return (tis >= TIS_MINIMAL) * 1 + (tis >= TIS_MODERATE) * 1 + (tis >= TIS_MAJOR) * 1


# ---------------------------------------------------------------------------------------
# 2. Core set measures from latent states, with measurement noise
# ---------------------------------------------------------------------------------------
# The parameters of the measures below are the scenario's (``disease.core_set``, with
# their sources and units in simulator/scenario/disease.py): no second set of defaults
# here. Activity a = exp(y): 1.0 at diagnosis, ~0.01-0.05 when controlled, up to ~3 when
# worse; ax on the same scale, 0 without extramuscular disease.

INACTIVE_PHYSICIAN_MAX_CM = 1.0
INACTIVE_EXTRAMUSCULAR_MAX_CM = 1.0
INACTIVE_CPK_BELOW_X_ULN = 1.0


def _clip(xp: Ops, x: Any, low: float, high: float) -> Any:
    # x first: the scalar max/min keep their first argument when it is NaN, like numpy.
    return xp.minimum(xp.maximum(x, low), high)


def _saturating_cm(xp: Ops, drive: Any) -> Any:
    """10 cm * (1 - exp(-drive)): 0 without disease, approaching 10 cm as drive grows."""
    return VAS_RANGE_CM * (1.0 - xp.exp(-drive))


def deficit_fraction(xp: Ops, mmt8_true: Any, mmt8_max: float = MMT8_MAX_DEFAULT) -> Any:
    """Fraction of full strength lost, (max - MMT-8) / max, in [0, 1]."""
    return _clip(xp, (mmt8_max - mmt8_true) / mmt8_max, 0.0, 1.0)


def physician_global_cm(
    xp: Ops, a: Any, ax: Any, scale_muscle: float, scale_extra: float, sd_cm: float, z: Any
) -> Any:
    """Physician global activity VAS (0-10 cm): saturating in activity, plus rater noise.

    10 (1 - exp(-(scale_muscle a + scale_extra ax))) + sd z, clipped to [0, 10]. Form and
    parameters are assumptions (see module constants).
    """
    drive = scale_muscle * a + scale_extra * ax
    return _clip(xp, _saturating_cm(xp, drive) + sd_cm * z, 0.0, VAS_RANGE_CM)


def patient_global_cm(
    xp: Ops,
    a: Any,
    ax: Any,
    deficit_fraction: Any,
    w_activity: float,
    w_extra: float,
    w_deficit: float,
    sd_cm: float,
    z: Any,
) -> Any:
    """Patient global activity VAS (0-10 cm): activity and residual weakness, plus noise.

    10 (1 - exp(-(w_activity a + w_extra ax + w_deficit deficit))) + sd z, clipped to
    [0, 10]. Patients rate how they feel, so weakness from damage also raises it: an
    assumption, as are the parameters.
    """
    drive = w_activity * a + w_extra * ax + w_deficit * deficit_fraction
    return _clip(xp, _saturating_cm(xp, drive) + sd_cm * z, 0.0, VAS_RANGE_CM)


def haq(
    xp: Ops,
    deficit_fraction: Any,
    ax: Any,
    slope: float,
    exponent: float,
    w_extra: float,
    sd: float,
    z: Any,
) -> Any:
    """HAQ disability index (0-3): rises with weakness as a power law, plus noise.

    3 min(1, slope deficit^exponent + w_extra ax) + sd z, clipped to [0, 3]. That HAQ
    follows weakness this way is an assumption, as are the parameters.
    """
    # log(0) is -inf: a floor keeps the power finite (1e-12^0.8 ~ 2.5e-10, i.e. nothing).
    power = xp.exp(exponent * xp.log(xp.maximum(deficit_fraction, 1e-12)))
    level = xp.minimum(slope * power + w_extra * ax, 1.0)
    return _clip(xp, HAQ_RANGE * level + sd * z, 0.0, HAQ_RANGE)


def extramuscular_cm(xp: Ops, ax: Any, scale: float, sd_cm: float, z: Any, present: Any) -> Any:
    """Extramuscular global activity VAS (0-10 cm); 0 where the patient has no such domain.

    present * clip(10 (1 - exp(-scale ax)) + sd z, 0, 10). Form and parameters are
    assumptions.
    """
    measured = _clip(xp, _saturating_cm(xp, scale * ax) + sd_cm * z, 0.0, VAS_RANGE_CM)
    return present * measured


def mmt8_measured(xp: Ops, mmt8_true: Any, sd_points: float, z: Any) -> Any:
    """Measured MMT-8 (whole points, 0-150): the true score plus examiner noise, rounded.

    MMT-8 is a sum of integer grades, so the measured score is whole; rounding is half up
    (floor(x + 0.5)). The noise size is an assumption.
    """
    noisy = _clip(xp, mmt8_true + sd_points * z, 0.0, MMT8_MAX_DEFAULT)
    # math.floor returns an int; * 1.0 gives a float like numpy's floor.
    return xp.floor(noisy + 0.5) * 1.0


def inactive(
    xp: Ops,
    cs: CoreSet,
    physician_max_cm: float = INACTIVE_PHYSICIAN_MAX_CM,
    extramuscular_max_cm: float = INACTIVE_EXTRAMUSCULAR_MAX_CM,
    cpk_below_x_uln: float = INACTIVE_CPK_BELOW_X_ULN,
) -> Any:
    """Disease inactive at this visit: physician global <= 1 cm, extramuscular <= 1 cm and
    CPK below its ULN.

    Our assumption: the IMACS definition's exact wording was not retrieved. Most published
    definitions also require inactivity sustained >= 6 months (Pongtarakulpanit 2025 review,
    Autoimmun Rev, doi:10.1016/j.autrev.2025.103879); that duration is left to the caller,
    which sees the visits.
    """
    return xp.logical_and(
        xp.logical_and(
            cs.physician_global_cm <= physician_max_cm,
            cs.extramuscular_cm <= extramuscular_max_cm,
        ),
        cs.cpk_x_uln < cpk_below_x_uln,
    )


# ---------------------------------------------------------------------------------------
# 3. HAQ -> EQ-5D utility
# ---------------------------------------------------------------------------------------
# Carreno et al. 2011 (Value Health 14:192-200), 244 Spanish RA patients: "TTO = 0.9567 -
# (0.309 x HAQ-DI) + e (R2 = 0.54)"; "Age and gender were found to have no bearing on the
# utility functions", hence no sex term. The abstract calls the outcome TTO: the EQ-5D
# index with the Spanish time trade-off value set, not the UK one.
EQ5D_CARRENO2011_INTERCEPT = 0.9567
EQ5D_CARRENO2011_SLOPE_PER_HAQ = -0.309
EQ5D_CARRENO2011_FEMALE = 0.0

# UK EQ-5D-3L tariff (Dolan 1997; docs/sources/other_sources.md section 2): worst state
# -0.594, full health 1.
EQ5D_UK_3L_MIN = -0.594
EQ5D_UK_3L_MAX = 1.0


def eq5d_from_haq(
    xp: Ops, haq: Any, female: Any, intercept: float, slope: float, female_coef: float
) -> Any:
    """EQ-5D utility = intercept + slope HAQ + female_coef female, clipped to [-0.594, 1].

    A linear mapping; ``slope`` is the signed coefficient (negative). Defaults: Carreno
    et al., Value Health 2011;14:192-200 (EQ5D_CARRENO2011_* constants).
    """
    utility = intercept + slope * haq + female_coef * female
    return _clip(xp, utility, EQ5D_UK_3L_MIN, EQ5D_UK_3L_MAX)
