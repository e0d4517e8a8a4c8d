"""Disease and drug-response parameters: the physics of the model (docs/model.md §2).

Every default carries its unit and source (a citation from docs/sources/parameters.md,
the founding abstract, or "assumption" with the reasoning). "Calibrated" marks a value
fitted to the calibration targets of docs/model.md §6; the fitted parameters are listed,
with their bounds, in ``FITTED`` so that a calibration can find them in one place.
"""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from .. import fmath
from .schema import (
    FAGGIOLI,
    MAX_ENZYME,
    AnyDist,
    Frozen,
    P,
    PositiveDist,
    _at_most,
    lognormal,
    normal,
)

__all__ = ["FITTED", "LIFE_TABLES", "Disease", "LifeTable", "Mortality", "calibration_note"]

# The fitted parameters' defaults are the output of `simulate calibrate
# calibration/default.yaml`, adopted by scripts/adopt_calibration.py into this file
# (with a checksum of the calibration's inputs; tests/test_calibration_lock.py checks both).
CALIBRATED_DEFAULTS = Path(__file__).resolve().parents[1] / "data" / "calibrated_defaults.json"
_CALIBRATED: dict[str, float] = json.loads(CALIBRATED_DEFAULTS.read_text(encoding="utf-8"))[
    "parameters"
]


def calibrated_defaults_digest() -> str:
    """A short digest of the fitted defaults (the ``parameters`` of
    calibrated_defaults.json as sorted JSON): a calibration overlay made from them records
    it (scripts/target_conflicts.py), so a test can tell when a refit made it stale."""
    import hashlib

    digest = hashlib.sha256(json.dumps(_CALIBRATED, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _fit(path: str) -> float:
    """The calibrated default of a fitted parameter (``FITTED``)."""
    return float(_CALIBRATED[path])


CLIN_RHEUM_2006 = (
    "Characterization of relapses in adult idiopathic inflammatory myopathies,"
    " Clin Rheumatol 2006, doi:10.1007/s10067-005-0075-3"
)
MARIE_2001 = "Marie I et al., J Rheumatol 2001;28:2230-7"
MILANO_2025 = "Milano cohort, ACR Convergence 2025 abstract (206 IIM)"


class Activity(Frozen):
    """Latent muscle inflammation a = exp(y), a = 1 at diagnosis (docs/model.md §2).

    dy/dt = k (s + z - y) - e - g v: log-activity relaxes at the patient's rate k towards
    its untreated level s + z (lasting drive plus a fading acute drive), and treatment
    pushes it down at rate e (steroids and sparing agents) plus g v (IVIG).
    """

    reversion_rate_per_day: float = P(
        _fit("disease.activity.reversion_rate_per_day"),
        "1/day",
        "assumption (calibrated): median rate at which log-activity moves towards its"
        " untreated level; sets how fast a taper below need shows as a relapse",
        gt=0,
    )
    reversion_rate_cv: float = P(
        0.3,
        "CV",
        "assumption: between-patient variation of the rate (7 quantile nodes)",
        ge=0,
        le=2,
    )
    lasting_drive_log: AnyDist = P(
        normal(
            _fit("disease.activity.lasting_drive_log.mean"),
            _fit("disease.activity.lasting_drive_log.sd"),
            -9.0,
            0.7,
        ),
        "log activity",
        "assumption (calibrated): each patient's persistent disease drive, relative to"
        " activity at diagnosis. Untreated, activity settles at exp(lasting drive): capped"
        " at 0.7 (2x diagnosis) so untreated or treated disease plateaus at a bounded level;"
        " most patients stay active without treatment (course over 2 years: monophasic"
        f" 41%, polycyclic 33%, chronic continuous 27%, {MILANO_2025})",
    )
    acute_setpoint_log: AnyDist = P(
        normal(0.6, 0.3, None, 1.2),
        "log activity",
        "assumption (set by hand): untreated, the acute disease at presentation climbs"
        " towards this level (mostly above its activity at diagnosis: 2.3% draw a level"
        " below it), capped at 1.2 (3.3x) so untreated CPK stays within the ~50x ULN seen in"
        " active PM (parameters.md section 3)",
    )
    burnout_half_life_days: float = P(
        _fit("disease.activity.burnout_half_life_days"),
        "days",
        "assumption (calibrated): the acute drive fades towards the lasting drive over months",
        gt=0,
    )
    polymyositis_shift_log: float = P(
        0.3,
        "log activity",
        f"relapses are commoner in PM than DM ({CLIN_RHEUM_2006}); the size is an assumption",
        # 20x activity either way; exp of an unbounded shift overflowed and the run hung
        ge=-3,
        le=3,
    )
    flare_rate_per_year: float = P(
        _fit("disease.activity.flare_rate_per_year"),
        "1/year",
        "assumption (calibrated): flare hazard when treatment covers the disease's need;"
        f" relapses during taper 47% ({MARIE_2001}), CK-defined 65% mostly within 2 years"
        f" ({CLIN_RHEUM_2006})",
        ge=0,
        le=50,
    )
    flare_shortfall_factor: float = P(
        _fit("disease.activity.flare_shortfall_factor"),
        "per log unit",
        "assumption (calibrated): the flare hazard is multiplied by exp(factor x shortfall),"
        " the shortfall being how far (in log activity) the current treatment leaves the"
        " lasting drive above the control level: flares come when treatment falls below"
        " the patient's need (model brief)",
        ge=0,
        le=5,
    )
    flare_shortfall_cap_log: float = P(
        1.5,
        "log activity",
        "assumption: the shortfall stops raising the flare hazard beyond 1.5 log units"
        " (4.5x the control level); flares are drawn by thinning a Poisson process at the"
        " capped hazard, so the cap also bounds the number of flare candidates",
        ge=0,
        le=4,
    )
    control_log_activity: float = P(
        fmath.log(0.04),
        "log activity",
        "assumption: activity at which CPK is about at the ULN (4% of diagnosis: CPK 2980"
        " -> ~200 U/L, founding abstract); the level treatment must hold the drive below",
    )
    flare_setpoint_log: AnyDist = P(
        normal(-0.5, 0.7, None, 1.0),
        "log activity",
        "assumption (set by hand): at a flare the fading drive jumps back up to this level"
        " (relative to activity at diagnosis, never below where it already is)",
    )


class Heterogeneity(Frozen):
    """Correlation of the between-patient variation (Gaussian copula on the normal scores).

    Order: lasting drive, steroid sensitivity, IVIG sensitivity, reversion rate.
    """

    correlation: list[list[float]] = Field(
        default_factory=lambda: [
            [1.0, -0.3, -0.2, 0.0],
            [-0.3, 1.0, 0.3, 0.0],
            [-0.2, 0.3, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ],
        json_schema_extra={
            "unit": "correlation",
            "source": "assumption: patients with a stronger lasting drive respond less to"
            " steroids and IVIG (steroid-resistant disease also responds less to IVIG,"
            " Dalakas 1993; Hara 2003); steroid and IVIG sensitivity positively correlated",
        },
    )

    @model_validator(mode="after")
    def _valid(self) -> Heterogeneity:
        c = self.correlation
        if len(c) != 4 or any(len(row) != 4 for row in c):
            raise ValueError(
                "correlation must be a 4 x 4 matrix (lasting drive, steroid"
                " sensitivity, IVIG sensitivity, reversion rate)"
            )
        import numpy as np

        m = np.asarray(c, dtype=float)
        if not np.all(np.isfinite(m)) or not np.allclose(m, m.T) or not np.all(np.diag(m) == 1):
            raise ValueError("correlation must be symmetric with 1 on the diagonal")
        if np.linalg.eigvalsh(m).min() <= 1e-10:
            raise ValueError("correlation must be positive definite")
        return self


class Enzymes(Frozen):
    """How muscle inflammation shows in the blood: CPK, myoglobin, and the assays."""

    cpk_uln_u_per_l: float = P(200.0, "U/L", f"{FAGGIOLI}: normal value <200 U/L", gt=0)
    cpk_half_life_days: float = P(
        1.5,
        "days",
        "CK plasma half-life ~1.5 days (parameters.md section 3, secondary): CPK follows"
        " inflammation with this lag (on the log scale)",
        gt=0,
    )
    cpk_background_u_per_l: Annotated[PositiveDist, _at_most(MAX_ENZYME, "U/L")] = P(
        lognormal(median=90.0, cv=0.3),
        "U/L",
        "assumption: a patient's CPK with inactive disease, inside the 20-200 U/L reference"
        " range (Unbound Medicine, parameters.md section 3)",
    )
    cpk_assay_cv: float = P(
        0.10,
        "coefficient of variation",
        "assumption: analytical plus within-day biological variation of CPK",
        ge=0,
        le=1,
    )
    myoglobin_uln_ng_per_ml: float = P(120.0, "ng/mL", f"{FAGGIOLI}: normal value <120 ng/mL", gt=0)
    myoglobin_background_ng_per_ml: Annotated[PositiveDist, _at_most(MAX_ENZYME, "ng/mL")] = P(
        lognormal(median=45.0, cv=0.3),
        "ng/mL",
        "assumption: inside the reference range",
    )
    myoglobin_assay_cv: float = P(0.15, "coefficient of variation", "assumption", ge=0, le=1)
    biochemical_relapse_x_uln: float = P(
        1.5,
        "x ULN",
        "assumption: a measured CPK above 1.5x ULN after normalisation is a CK-defined"
        f" relapse ({CLIN_RHEUM_2006}); the margin keeps assay noise near the ULN out",
        gt=0,
    )

    @model_validator(mode="after")
    def _backgrounds_below_uln(self) -> Enzymes:
        if self.cpk_background_u_per_l.min_value() >= self.cpk_uln_u_per_l:
            raise ValueError("cpk_background_u_per_l must be able to lie below cpk_uln_u_per_l")
        return self


class Function(Frozen):
    """Muscle function: reversible weakness that lags inflammation, and damage that stays."""

    weakness_half_life_days: float = P(
        30.0,
        "days",
        "assumption (set by hand): reversible weakness follows inflammation more slowly than"
        " enzymes (Faggioli: mild leg weakness persisted until month 6 with normal CPK)",
        gt=0,
    )
    damage_threshold_log: float = P(
        fmath.log(0.25),
        "log activity",
        "assumption: inflammation above a quarter of its level at diagnosis damages muscle",
    )
    damage_rate_per_log_day: float = P(
        _fit("disease.function.damage_rate_per_log_day"),
        "1/(log activity x day)",
        "assumption (calibrated): damage accrues with the depth and duration of"
        " uncontrolled activity (strength normalised in 43/53 against CK in 51/53,"
        f" {CLIN_RHEUM_2006})",
        ge=0,
    )
    max_damage_points: float = P(
        60.0,
        "MMT-8 points",
        "assumption: the most strength that damage can take (of 150)",
        ge=0,
        le=150,
    )
    mmt8_sd_points: float = P(3.0, "MMT-8 points", "assumption: rater variation", ge=0)


class ExtramuscularDomain(Frozen):
    """One extramuscular domain: its own log activity x, which relaxes towards the same
    untreated level as muscle (s + z) at its own rate, and its own response to steroids
    and IVIG, relative to muscle."""

    rate_per_day: float = P(0.03, "1/day", "assumption: pace of the domain's activity", gt=0)
    steroid_relative_effect: float = P(
        1.0, "ratio", "assumption: steroid effect relative to muscle", ge=0, le=3
    )
    ivig_relative_effect: float = P(
        1.5, "ratio", "assumption: IVIG effect relative to muscle", ge=0, le=5
    )
    weight: float = P(
        1.0,
        "-",
        "assumption: the domain's share of extramuscular activity (MDAAT) at diagnosis",
        ge=0,
    )


WANG_2012 = (
    "IVIG effective for lung and oesophageal involvement (Wang 2012, Clin Rheumatol"
    " 31:801, 14 studies, 308 adults)"
)


def _skin() -> ExtramuscularDomain:
    return ExtramuscularDomain(
        rate_per_day=0.03, steroid_relative_effect=0.6, ivig_relative_effect=1.5, weight=1.0
    )


def _lung() -> ExtramuscularDomain:
    return ExtramuscularDomain(
        rate_per_day=0.01, steroid_relative_effect=0.8, ivig_relative_effect=1.5, weight=0.8
    )


def _dysphagia() -> ExtramuscularDomain:
    return ExtramuscularDomain(
        rate_per_day=0.03, steroid_relative_effect=1.0, ivig_relative_effect=2.0, weight=0.6
    )


class Extramuscular(Frozen):
    """Skin (in every DM patient), lung (with lung involvement) and swallowing (with
    dysphagia): each present domain has its own activity and response (docs/model.md §2);
    the extramuscular global activity sums them."""

    skin: ExtramuscularDomain = Field(
        default_factory=_skin,
        json_schema_extra={
            "unit": "-",
            "source": "assumption: cutaneous DM answers steroids less than muscle (relative"
            " effect 0.6) and IVIG well (1.5); rate 0.03/day; weight 1.0",
        },
    )
    lung: ExtramuscularDomain = Field(
        default_factory=_lung,
        json_schema_extra={
            "unit": "-",
            "source": "assumption: interstitial lung disease changes slowly (rate 0.01/day),"
            " answers steroids less than muscle (0.8); IVIG 1.5: " + WANG_2012 + "; weight 0.8",
        },
    )
    dysphagia: ExtramuscularDomain = Field(
        default_factory=_dysphagia,
        json_schema_extra={
            "unit": "-",
            "source": "assumption: swallowing follows muscle (rate 0.03/day, steroid 1.0); IVIG"
            " 2.0: " + WANG_2012 + "; weight 0.6",
        },
    )


class CoreSetMeasures(Frozen):
    """How the six IMACS core set measures arise from the states (docs/model.md §2)."""

    activity_exponent: float = P(
        _fit("disease.core_set.activity_exponent"),
        "-",
        "assumption (calibrated): the global activity ratings (physician, patient,"
        " extramuscular) see inflammation as a^p, concave like most perceived magnitudes,"
        " so small returns of activity register on the 10 cm scales",
        gt=0,
        le=1,
    )
    physician_scale_muscle: float = P(
        1.0, "-", "assumption: PhGA from muscle activity: 10 (1 - exp(-(m a + x ax)))", ge=0
    )
    physician_scale_extra: float = P(0.5, "-", "assumption", ge=0)
    physician_sd_cm: float = P(0.7, "cm", "assumption: rater variation", ge=0)
    patient_weight_activity: float = P(0.6, "-", "assumption", ge=0)
    patient_weight_extra: float = P(0.3, "-", "assumption", ge=0)
    patient_weight_deficit: float = P(
        4.0, "-", "assumption: weakness dominates how patients rate their disease", ge=0
    )
    patient_sd_cm: float = P(1.0, "cm", "assumption", ge=0)
    haq_slope: float = P(3.0, "-", "assumption: HAQ rises with the fraction of strength lost", ge=0)
    haq_exponent: float = P(0.8, "-", "assumption", gt=0)
    haq_weight_extra: float = P(0.1, "-", "assumption", ge=0)
    haq_sd: float = P(0.15, "HAQ units", "assumption", ge=0)
    extramuscular_scale: float = P(0.6, "-", "assumption", ge=0)
    extramuscular_sd_cm: float = P(0.6, "cm", "assumption", ge=0)


class SteroidResponse(Frozen):
    """Emax dose-response of prednisone-equivalent dose on the fall of activity."""

    emax_per_day: float = P(
        _fit("disease.steroid.emax_per_day"),
        "1/day",
        "assumption (calibrated): maximal rate at which steroids push log-activity down",
        ge=0,
    )
    ed50_mg_per_day: float = P(
        20.0,
        "mg/day prednisone",
        "assumption: half the maximal effect at 20 mg/day, so 60-80 mg/day induction is"
        " near-maximal and 5 mg/day gives a fifth of it",
        gt=0,
    )
    onset_half_life_days: float = P(
        14.0,
        "days",
        "assumption (set by hand): the steroid and sparing-agent effect builds up, and wears"
        " off after a dose cut, with this half-life; response to steroids takes weeks",
        gt=0,
    )
    sensitivity_cv: float = P(
        _fit("disease.steroid.sensitivity_cv"),
        "CV",
        "assumption (calibrated): wide between-patient variability of the steroid response:"
        " a continuous tail of slow responders instead of a fixed refractory class",
        ge=0,
    )
    methylprednisolone_to_prednisone: float = P(
        1.25,
        "mg prednisone per mg",
        "standard glucocorticoid equivalence (4 mg MP = 5 mg prednisone; BNF,"
        " other_sources.md section 4)",
        gt=0,
        le=5,  # the accepted ratio is 1.25; 5 leaves room for any sensitivity analysis
    )


class IgGKinetics(Frozen):
    """Serum IgG excess after IVIG: two exponentials per infusion, closed form."""

    rise_g_per_l_per_g_per_kg: float = P(
        25.0,
        "g/L per g/kg",
        "derived: 1 g/kg into a plasma volume of ~40 mL/kg; matches 22 g/L above baseline at"
        " day 7 after 2 g/kg (Galnares-Olalde, GBS, n=42) with the kinetics below",
        gt=0,
    )
    rise_cv: float = P(
        0.7,
        "CV",
        "derived: rise in IgG 2 weeks after 2 g/kg 7.8 (SD 5.6) g/L (Kuitwaard 2009, Ann"
        " Neurol 66:597, n=174)",
        ge=0,
    )
    fast_fraction: float = P(
        0.87,
        "fraction",
        "derived: fit to 3053 mg/dL at day 7 and 1092 at day 30 from 832 at baseline"
        " (Galnares-Olalde) and 7.8 g/L at 2 weeks (Kuitwaard)",
        ge=0,
        le=1,
    )
    fast_half_life_days: float = P(
        3.5,
        "days",
        "derived (same fit): redistribution and FcRn saturation after high doses;"
        " equilibrium after 3-5 days (immunoglobulin SmPC)",
        gt=0,
    )
    slow_half_life_days: float = P(
        21.0,
        "days",
        "IgG half-life 17-21 days (Immunodeficiency UK) to 32.5 days at replacement doses"
        " (SmPC); high doses shorten it (FcRn saturation)",
        gt=0,
    )


class IVIGResponse(Frozen):
    """IVIG lowers inflammation through an IgG-driven effect compartment, saturating in
    the dose of each cycle, and improves function and extramuscular disease."""

    effect_per_g_per_l_per_day: float = P(
        _fit("disease.ivig.effect_per_g_per_l_per_day"),
        "1/day per g/L",
        "assumption (calibrated to Faggioli 2015: mean CPK ~30% of baseline after 3 cycles);"
        " no PK/PD model of IVIG in myositis exists (parameters.md section 2)",
        ge=0,
    )
    effect_half_life_days: float = P(
        10.0,
        "days",
        "assumption (set by hand): immunomodulation builds and fades more slowly than serum"
        " IgG: the benefit grows over cycles and shows on function within days to weeks",
        gt=0,
    )
    ed50_g_per_kg_per_cycle: float = P(
        1.0,
        "g/kg per cycle",
        "assumption: the effect saturates in the cycle dose (Emax); 1 g/kg maintenance"
        " cycles are used when stable (ProDERM extension; Lim 2021), so half the standard"
        " dose keeps most of the effect",
        gt=0,
    )
    reference_dose_g_per_kg: float = P(
        2.0,
        "g/kg per cycle",
        "the standard cycle dose (Wang 2012) at which the potency above applies",
        gt=0,
    )
    sensitivity_cv: float = P(
        _fit("disease.ivig.sensitivity_cv"),
        "CV",
        "assumption (calibrated): between-patient variability",
        ge=0,
    )
    function_relative_effect: float = P(
        0.5,
        "ratio",
        "assumption: IVIG also improves strength directly, beyond lowering inflammation"
        " (Dalakas 1993: strength 74.5 -> 84.7 in treatment-resistant DM)",
        ge=0,
        le=5,
    )


class SparingAgent(Frozen):
    """A steroid-sparing immunosuppressant: a constant effect after an onset delay."""

    onset_delay_days: float = P(
        90.0,
        "days",
        "assumption: onset delay NOT FOUND in primary sources (parameters.md section 5);"
        " azathioprine added to prednisone made no difference at 3 months (Bunch 1980)",
        # the onset is an event after the visit that starts the agent: a delay under a day
        # could fall on that visit's instant, before it in the order of events
        ge=1,
    )
    effect_per_day: float = P(
        0.02,
        "1/day",
        "assumption: about the effect of 4 mg/day prednisone at the mean steroid"
        " sensitivity, 6.5 mg/day at the median (with the calibrated steroid Emax and ED50"
        " 20 mg/day); an immunosuppressant during the initial taper halves relapse (HR"
        " 0.50, parameters.md section 5 [low-quality])",
        ge=0,
    )


def _default_agents() -> dict[str, SparingAgent]:
    return {
        "azathioprine": SparingAgent(onset_delay_days=90.0, effect_per_day=0.02),
        "methotrexate": SparingAgent(onset_delay_days=60.0, effect_per_day=0.02),
        "mycophenolate": SparingAgent(onset_delay_days=75.0, effect_per_day=0.02),
        "ciclosporin": SparingAgent(onset_delay_days=45.0, effect_per_day=0.02),
    }


DANKO_2004 = "Danko K et al., Medicine 2004;83:35-42 (162 PM/DM, Hungary)"
LIFE_TABLES = ("hmd_usa_2019",)


class LifeTable(Frozen):
    """A period life table given inline: central death rates per person-year by single
    year of age from 0, one list per sex; the last value holds for every older age."""

    male_mx: list[float] = Field(min_length=1)
    female_mx: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _rates(self) -> LifeTable:
        for name in ("male_mx", "female_mx"):
            bad = [v for v in getattr(self, name) if not 0 <= v <= 10]
            if bad:
                raise ValueError(
                    f"{name} holds {bad[0]!r}: death rates per person-year must lie in [0, 10]"
                )
        return self


def _life_table_kind(value: Any) -> str:
    return "inline" if isinstance(value, dict | LifeTable) else "name"


class Mortality(Frozen):
    """Deaths: background mortality from a life table by age and sex, plus a
    disease-related excess hazard, plus fatal adverse events (``case_fatality`` of each
    adverse event under ``safety``). The excess hazard over each 4-week window is

        excess_per_year x HR_lung^ILD x HR_dysphagia^dysphagia x HR_age^((age - 50) / 10)
                        x (lasting_fraction + (1 - lasting_fraction) x a_window)

    where a_window is the geometric mean muscle inflammation exp(mean y) over the window
    before (1 at diagnosis), so uncontrolled disease raises it and controlled disease
    leaves the lasting part (lung, cancer-associated and other disease-related deaths)."""

    # a mapping is an inline table, anything else a table's name: only the matching
    # branch's errors are reported (not also "should be a valid string")
    life_table: (
        Annotated[
            Annotated[str, Tag("name")] | Annotated[LifeTable, Tag("inline")],
            Discriminator(_life_table_kind),
        ]
        | None
    ) = P(
        "hmd_usa_2019",
        "-",
        "Human Mortality Database, United States 2019 period life table by sex (1x1), CC BY"
        " 4.0 (simulator/data/life_tables/); a scenario may give its own country's table"
        " inline ({male_mx: [...], female_mx: [...]}) or null for no background deaths",
    )
    excess_per_year: float = P(
        _fit("disease.mortality.excess_per_year"),
        "1/year",
        "assumption (calibrated to 5-year survival 92%, " + DANKO_2004 + "): disease-related"
        " death hazard at diagnosis activity, reference patient (age 50, no lung"
        " involvement, no dysphagia)",
        ge=0,
        le=10,
    )
    lasting_fraction: float = P(
        0.02,
        "fraction",
        "assumption: share of the excess hazard that does not fall with muscle activity"
        " (lung disease, cancer-associated myositis); sets late against early deaths",
        ge=0,
        le=1,
    )
    hazard_ratio_lung: float = P(
        2.0,
        "HR",
        "assumption: pulmonary involvement is one of the 'poor prognostic factors common"
        " to several studies' (review PMC2563757, other_sources.md section 5); lung"
        " complications are a leading cause of death (Marie 2001, parameters.md section"
        " 9); its size is NOT FOUND in the shipped sources",
        ge=0,
    )
    hazard_ratio_dysphagia: float = P(
        2.0,
        "HR",
        "assumption: bulbar involvement (dysphagia) is one of the 'poor prognostic factors"
        " common to several studies' (review PMC2563757, other_sources.md section 5); its"
        " size is NOT FOUND in the shipped sources",
        ge=0,
    )
    hazard_ratio_per_decade: float = P(
        1.5,
        "HR per 10 years",
        "assumption: old age is one of the 'poor prognostic factors common to several"
        " studies' (review PMC2563757, other_sources.md section 5); size NOT FOUND; applies"
        " to the disease-related excess only (the life table carries age itself)",
        # beyond these the age factor over- or underflowed at some ages (0 x inf: a NaN
        # hazard, and the run hung)
        ge=0.1,
        le=10,
    )
    reference_age_years: float = P(50.0, "years", "the age at which the age HR is 1", ge=0, le=120)

    @field_validator("life_table")
    @classmethod
    def _known_table(cls, value: str | LifeTable | None) -> str | LifeTable | None:
        if isinstance(value, str) and value not in LIFE_TABLES:
            raise ValueError(
                f"unknown life table {value!r}: use one of"
                f" {', '.join(LIFE_TABLES)}, a table given inline"
                " ({male_mx: [...], female_mx: [...]}) or null"
            )
        return value


class Disease(Frozen):
    activity: Activity = Activity()
    heterogeneity: Heterogeneity = Heterogeneity()
    enzymes: Enzymes = Enzymes()
    function: Function = Function()
    extramuscular: Extramuscular = Extramuscular()
    core_set: CoreSetMeasures = CoreSetMeasures()
    steroid: SteroidResponse = SteroidResponse()
    igg: IgGKinetics = IgGKinetics()
    ivig: IVIGResponse = IVIGResponse()
    mortality: Mortality = Mortality()
    sparing_agents: dict[str, SparingAgent] = Field(
        default_factory=_default_agents,
        json_schema_extra={
            "unit": "-",
            "source": "onset delays are assumptions (NOT FOUND, parameters.md section 5):"
            " ciclosporin 45, methotrexate 60, mycophenolate 75, azathioprine 90 days",
        },
    )


# The parameters the calibration (docs/model.md §6, calibration/default.yaml) fits, with
# the bounds it searched; every other "calibrated" default would say so.
FITTED: dict[str, tuple[float, float]] = {
    "disease.steroid.sensitivity_cv": (0.2, 3.0),
    "disease.ivig.sensitivity_cv": (0.2, 3.0),
    "disease.core_set.activity_exponent": (0.2, 1.0),
    "disease.activity.reversion_rate_per_day": (0.01, 0.08),
    "disease.activity.lasting_drive_log.mean": (-6.0, 0.0),
    "disease.activity.lasting_drive_log.sd": (0.3, 2.5),
    "disease.activity.burnout_half_life_days": (30.0, 365.0),
    "disease.activity.flare_rate_per_year": (0.0, 2.0),
    "disease.activity.flare_shortfall_factor": (0.0, 3.0),
    "disease.steroid.emax_per_day": (0.04, 0.3),
    "disease.ivig.effect_per_g_per_l_per_day": (0.0005, 0.02),
    "disease.function.damage_rate_per_log_day": (0.0, 0.02),
    "disease.mortality.excess_per_year": (0.0, 5.0),
}


def fitted_changed(scenario: Any) -> list[str]:
    """The fitted parameters (``FITTED``) whose value in ``scenario`` is not the
    calibrated default (a ``--params`` overlay, ``--set`` or a scenario's own value). Each
    path is also the scenario's attribute path (no aliases among them)."""
    return [p for p in FITTED if float(operator.attrgetter(p)(scenario)) != _fit(p)]


def calibration_note(scenario: Any) -> str:
    """One sentence on which calibration a result rests on, for every comparison: the
    answer to the founding question changes with it (docs/model.md section 6)."""
    changed = fitted_changed(scenario)
    if not changed:
        return (
            "Disease parameters: the calibrated defaults (docs/model.md section 6), which"
            " miss some of their calibration targets; calibrations that meet them change"
            " first-line IVIG's QALY gain several-fold: see the same comparison with"
            " --params calibration/alternatives/*.yaml."
        )
    verb = "differs" if len(changed) == 1 else "differ"
    return (
        f"Disease parameters: {len(changed)} of the {len(FITTED)} fitted values {verb} from"
        " the calibrated defaults (a --params overlay, --set or the scenario's own): "
        + ", ".join(p.removeprefix("disease.") for p in changed)
        + "."
    )
