"""The calibration targets of the clinical model (docs/model.md §6) and how to simulate them.

Each target is a metric of a study emulation (a scenario in scenarios/ or
scenarios/studies/) with a published value and its 95% interval (Wilson from the counts
where counts are published). These, and only these, informed the fitted defaults
(``scenario.disease.FITTED``); ``scripts/calibrate_v2.py`` redoes the fit and prints the
table. Studies the model was not fitted to belong to external validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .stats import wilson_ci

__all__ = ["SCENARIOS", "TARGETS", "VALIDATION", "Target", "loss", "simulate"]

_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    source: str
    scenario: str
    metric: str
    value: float
    low: float
    high: float

    @classmethod
    def counts(cls, source: str, scenario: str, metric: str, k: int, n: int) -> Target:
        lo, hi = wilson_ci(k, n)
        return cls(source, scenario, metric, k / n, lo, hi)


TARGETS = (
    Target(
        "Faggioli 2015: mean CPK ~30% of baseline after 3 cycles",
        "first_line",
        "cpk_ratio_month_3",
        0.30,
        0.20,
        0.40,
    ),
    Target(
        "Faggioli 2015: CPK normal after 5 cycles in most (day 140)",
        "first_line",
        "cpk_normal_month_5",
        0.80,
        0.60,
        0.95,
    ),
    Target.counts(
        "Clin Rheumatol 2006: CK normalised with initial therapy 51/53",
        "usual_care_long_term",
        "cpk_ever_normal",
        51,
        53,
    ),
    Target.counts(
        "Clin Rheumatol 2006: strength normalised 43/53",
        "usual_care_long_term",
        "strength_ever_normal",
        43,
        53,
    ),
    Target.counts(
        "Clin Rheumatol 2006: CK-defined relapse 33/53 (33/51 normalised)",
        "usual_care_long_term",
        "biochemical_relapse",
        33,
        53,
    ),
    Target.counts(
        "Clin Rheumatol 2006: several CK-defined relapses 17/53",
        "usual_care_long_term",
        "biochemical_relapses_2_or_more",
        17,
        53,
    ),
    Target.counts(
        "Marie 2001: relapse during the taper 36/77",
        "usual_care_long_term",
        "relapse_during_taper",
        36,
        77,
    ),
    Target.counts(
        "Marie 2001: relapse after stopping 9/77",
        "usual_care_long_term",
        "relapse_after_stopping",
        9,
        77,
    ),
    Target.counts(
        "Marie 2001: remission at last follow-up 31/77",
        "usual_care_long_term",
        "last_visit_remission",
        31,
        77,
    ),
    Target.counts(
        "Marie 2001: worsened at last follow-up 13/77",
        "usual_care_long_term",
        "last_visit_worsened",
        13,
        77,
    ),
    Target.counts(
        "Milano 2025: monophasic course over 2 years 84/206",
        "steroid_only",
        "course_monophasic",
        84,
        206,
    ),
    Target.counts(
        "Milano 2025: polycyclic course over 2 years 67/206",
        "steroid_only",
        "course_polycyclic",
        67,
        206,
    ),
    Target.counts(
        "Milano 2025: chronic continuous course over 2 years 55/206",
        "steroid_only",
        "course_chronic",
        55,
        206,
    ),
    Target(
        "Review (PMC2563757): non-response to conventional therapy ~25%",
        "steroid_only",
        "treatment_failure_week_24",
        0.25,
        0.15,
        0.35,
    ),
    Target.counts(
        "Dalakas 1993: major improvement with IVIG 9/12 (TIS >= 60, week 16)",
        "dalakas_1993_ivig",
        "tis60_week_16_from_entry",
        9,
        12,
    ),
    Target.counts(
        "Dalakas 1993: major improvement with placebo 0/11",
        "dalakas_1993_placebo",
        "tis60_week_16_from_entry",
        0,
        11,
    ),
    Target.counts(
        "Hara 2003: improved by physician assessment 7/8 (TIS >= 20, week 16)",
        "hara_2003",
        "tis20_week_16_from_entry",
        7,
        8,
    ),
    Target.counts(
        "Danko 2004: 5-year survival 92% of 162 (149/162)", "danko_2004", "alive_year_5", 149, 162
    ),
    Target(
        "Constraint (no source): untreated disease does not remit in most within 2 years",
        "untreated",
        "inactive_month_24",
        0.15,
        0.0,
        0.30,
    ),
)


SCENARIOS = {
    "first_line": _ROOT / "scenarios" / "first_line.yaml",
    "steroid_only": _ROOT / "scenarios" / "steroid_only.yaml",
    "usual_care_long_term": _ROOT / "scenarios" / "studies" / "usual_care_long_term.yaml",
    "untreated": _ROOT / "scenarios" / "studies" / "untreated.yaml",
    "dalakas_1993_ivig": _ROOT / "scenarios" / "studies" / "dalakas_1993_ivig.yaml",
    "dalakas_1993_placebo": _ROOT / "scenarios" / "studies" / "dalakas_1993_placebo.yaml",
    "hara_2003": _ROOT / "scenarios" / "studies" / "hara_2003.yaml",
    "danko_2004": _ROOT / "scenarios" / "studies" / "danko_2004.yaml",
}

# Published figures the model was NOT fitted to (external validation, docs/model.md §7):
# scripts/calibrate_v2.py prints them next to the targets, and nothing tunes to them.
VALIDATION = (
    Target.counts(
        "Danko 2004: 1-year survival 95% of 162 (154/162)", "danko_2004", "alive_year_1", 154, 162
    ),
    Target.counts(
        "Danko 2004: 10-year survival 89% of 162 (KM; 144/162 as counts)",
        "danko_2004",
        "alive_year_10",
        144,
        162,
    ),
)


def simulate(overrides: dict[str, Any], patients: int, seed: int) -> dict[str, Any]:
    """Every target's simulated value (``metric@scenario``) and its Monte Carlo 95% CI
    (``metric@scenario:ci``), on the same patients for any overrides."""
    from .runner import run
    from .scenario import load_scenario

    sets = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    out: dict[str, Any] = {}
    for name, path in SCENARIOS.items():
        scn = load_scenario(path, sets)
        metrics = run(
            scn,
            patients=patients,
            seed=seed,
            engine="cohort",
            progress=False,
            check_invariants=False,
        ).metrics
        for t in TARGETS + VALIDATION:
            if t.scenario == name:
                out[t.metric + "@" + name] = metrics[t.metric]["mean"]
                out[t.metric + "@" + name + ":ci"] = metrics[t.metric]["ci95"]
    return out


def loss(sim: dict[str, Any]) -> float:
    """Sum over targets of ((simulated - published) / half-width of the published CI)^2."""
    total = 0.0
    for t in TARGETS:
        v = sim[t.metric + "@" + t.scenario]
        half = (t.high - t.low) / 2
        total += ((v - t.value) / half) ** 2 if v is not None else 1e6
    return total
