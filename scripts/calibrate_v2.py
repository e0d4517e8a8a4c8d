"""Calibration of the clinical model v2 to the targets of docs/model.md §6.

    python scripts/calibrate_v2.py                 # the table at the packaged defaults
    python scripts/calibrate_v2.py --fit 60        # Nelder-Mead, 60 evaluations, then the table
    python scripts/calibrate_v2.py --patients 20000 --seed 7

Each target is a metric of a study emulation (a scenario in scenarios/ or
scenarios/studies/) and a published value with its 95% interval (Wilson from the counts
where counts are published). The fit minimises the sum over targets of
((simulated - published) / half-width of the published interval)^2, on common random
numbers (the same patients at every evaluation), over the parameters of ``FIT`` within
their bounds (simulator.scenario.disease.FITTED). Only the calibration targets listed
here are used; nothing else informs the fit.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.runner import run  # noqa: E402
from simulator.scenario import load_scenario  # noqa: E402
from simulator.scenario.disease import FITTED  # noqa: E402
from simulator.stats import wilson_ci  # noqa: E402


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
    Target("Faggioli 2015: mean CPK ~30% of baseline after 3 cycles", "first_line",
           "cpk_ratio_month_3", 0.30, 0.20, 0.40),
    Target("Faggioli 2015: CPK normal after 5 cycles in most (day 140)", "first_line",
           "cpk_normal_month_5", 0.80, 0.60, 0.95),
    Target.counts("Clin Rheumatol 2006: CK normalised with initial therapy 51/53",
                  "usual_care_long_term", "cpk_ever_normal", 51, 53),
    Target.counts("Clin Rheumatol 2006: strength normalised 43/53", "usual_care_long_term",
                  "strength_ever_normal", 43, 53),
    Target.counts("Clin Rheumatol 2006: CK-defined relapse 33/53 (33/51 normalised)",
                  "usual_care_long_term", "biochemical_relapse", 33, 53),
    Target.counts("Clin Rheumatol 2006: several CK-defined relapses 17/53",
                  "usual_care_long_term", "biochemical_relapses_2_or_more", 17, 53),
    Target.counts("Marie 2001: relapse during the taper 36/77", "usual_care_long_term",
                  "relapse_during_taper", 36, 77),
    Target.counts("Marie 2001: relapse after stopping 9/77", "usual_care_long_term",
                  "relapse_after_stopping", 9, 77),
    Target.counts("Marie 2001: remission at last follow-up 31/77", "usual_care_long_term",
                  "last_visit_remission", 31, 77),
    Target.counts("Marie 2001: worsened at last follow-up 13/77", "usual_care_long_term",
                  "last_visit_worsened", 13, 77),
    Target.counts("Milano 2025: monophasic course over 2 years 84/206", "steroid_only",
                  "course_monophasic", 84, 206),
    Target.counts("Milano 2025: polycyclic course over 2 years 67/206", "steroid_only",
                  "course_polycyclic", 67, 206),
    Target.counts("Milano 2025: chronic continuous course over 2 years 55/206",
                  "steroid_only", "course_chronic", 55, 206),
    Target("Review (PMC2563757): non-response to conventional therapy ~25%", "steroid_only",
           "treatment_failure_week_24", 0.25, 0.15, 0.35),
    Target("Constraint (no source): untreated disease does not remit in most within 2"
           " years", "untreated", "inactive_month_24", 0.15, 0.0, 0.30),
)

SCENARIOS = {
    "first_line": ROOT / "scenarios" / "first_line.yaml",
    "steroid_only": ROOT / "scenarios" / "steroid_only.yaml",
    "usual_care_long_term": ROOT / "scenarios" / "studies" / "usual_care_long_term.yaml",
    "untreated": ROOT / "scenarios" / "studies" / "untreated.yaml",
}

FIT = (
    "disease.steroid.sensitivity_cv",
    "disease.ivig.sensitivity_cv",
    "disease.core_set.activity_exponent",
    "disease.activity.burnout_half_life_days",
    "disease.activity.lasting_drive_log.mean",
    "disease.activity.lasting_drive_log.sd",
    "disease.activity.reversion_rate_per_day",
    "disease.activity.flare_rate_per_year",
    "disease.activity.flare_shortfall_factor",
    "disease.steroid.emax_per_day",
    "disease.ivig.effect_per_g_per_l_per_day",
    "disease.function.damage_rate_per_log_day",
)


def simulate(overrides: dict[str, float], patients: int, seed: int) -> dict[str, float]:
    sets = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    out: dict[str, float] = {}
    for name, path in SCENARIOS.items():
        scn = load_scenario(path, sets)
        metrics = run(scn, patients=patients, seed=seed, engine="cohort", progress=False,
                      check_invariants=False).metrics
        for t in TARGETS:
            if t.scenario == name:
                out[t.metric + "@" + name] = metrics[t.metric]["mean"]
                out[t.metric + "@" + name + ":ci"] = metrics[t.metric]["ci95"]
    return out


def loss(sim: dict[str, float]) -> float:
    total = 0.0
    for t in TARGETS:
        v = sim[t.metric + "@" + t.scenario]
        half = (t.high - t.low) / 2
        total += ((v - t.value) / half) ** 2 if v is not None else 1e6
    return total


def table(sim: dict[str, float]) -> str:
    rows = ["| target | scenario | published (95% CI) | simulated (MC 95% CI) | overlap |",
            "|---|---|---|---|---|"]
    for t in TARGETS:
        v = sim[t.metric + "@" + t.scenario]
        lo, hi = sim[t.metric + "@" + t.scenario + ":ci"]
        overlap = lo is not None and hi is not None and lo <= t.high and hi >= t.low
        rows.append(f"| {t.source} | {t.scenario} | {t.value:.3f} ({t.low:.3f}-{t.high:.3f})"
                    f" | {v:.3f} ({lo:.3f}-{hi:.3f}) | {'yes' if overlap else '**no**'} |")
    return "\n".join(rows)


def _current(path: str) -> float:
    scn = load_scenario(SCENARIOS["first_line"])
    cur: object = scn.model_dump()
    for part in path.split("."):
        cur = cur[part]  # type: ignore[index]
    return float(cur)  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fit", type=int, default=0, help="Nelder-Mead evaluations (0: none)")
    args = ap.parse_args()
    start = {p: _current(p) for p in FIT}
    best = dict(start)
    if args.fit:
        lo = np.array([FITTED[p][0] for p in FIT])
        hi = np.array([FITTED[p][1] for p in FIT])
        x0 = np.array([start[p] for p in FIT])

        def to_params(u: np.ndarray) -> dict[str, float]:
            x = lo + (hi - lo) / (1 + np.exp(-u))
            return {p: float(v) for p, v in zip(FIT, x, strict=True)}

        u0 = -np.log((hi - lo) / (x0 - lo) - 1)

        def objective(u: np.ndarray) -> float:
            pars = to_params(u)
            value = loss(simulate(pars, args.patients, args.seed))
            print(f"{value:10.2f} " + " ".join(f"{k.split('.')[-1]}={v:.4g}"
                                               for k, v in pars.items()), flush=True)
            return value

        # Steps of 0.6 on the logit scale (about 15% of each parameter's range) start the
        # simplex wide enough to see past Monte Carlo noise.
        simplex = np.vstack([u0] + [u0 + 0.6 * np.eye(len(u0))[i] for i in range(len(u0))])
        res = optimize.minimize(objective, u0, method="Nelder-Mead",
                                options={"maxfev": args.fit, "xatol": 1e-3, "fatol": 0.05,
                                         "initial_simplex": simplex})
        best = to_params(res.x)
        print("best:", json.dumps(best, indent=1))
    sim = simulate(best, args.patients, args.seed)
    print(f"loss {loss(sim):.2f}")
    print(table(sim))
    if not math.isfinite(loss(sim)):
        sys.exit(1)


if __name__ == "__main__":
    main()
