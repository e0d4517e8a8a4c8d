"""Disability (HAQ-DI) of the survivors years after diagnosis, against Ponyi 2005, and
at a given strength, against a cross-sectional cohort.

    python scripts/long_term_haq.py                          # the Danko emulation, 4,000
    python scripts/long_term_haq.py --set disease.core_set.haq_slope=1.5
    python scripts/long_term_haq.py SCENARIO.yaml --patients 1000 --day 1826

Ponyi A et al., Rheumatology 2005;44:83-8 (docs/sources/other_sources.md section 4):
105 adults with PM/DM at the Debrecen centre (Danko 2004's), 15 died, 87 survivors
answered the HAQ after a median 107.1 months (36.4-273.3): median HAQ-DI 0.875 (range
0-2.875). Not fitted to (external validation of the level the lifetime extrapolation
carries forward; docs/model.md section 6, "Published figures without an interval").

By default the Danko 2004 emulation (``scenarios/studies/danko_2004.yaml``: conventional
therapy for 10 years, the base population) is read at the visit nearest day 3,260 (107.1
months of 30.44 days), among the patients alive then: the median HAQ with its 95%
interval from the order statistics (distribution-free), the quartiles, the mean, and the
same at earlier years for the course. The published median is of 87 patients, so it is
compared with the spread of the median of 87 patients drawn from the simulated survivors
(20,000 draws without replacement, fixed seed): the 2.5-97.5% range and the share of draws
at or below the published value.

The cross-sectional check (docs/sources/other_sources.md section 7: 277 patients a median
1.7 years (IQR 0.6-5.9) from diagnosis, MMT-8 a median 81% (IQR 69-93%) of its maximum,
HAQ a median 0.9 (IQR 0.3-1.5)): the HAQ at the visits between 0.6 and 5.9 years whose
MMT-8 lies within 69-93% of 150, and within 77-87% (115-130) around the median strength.

``--set PATH=VALUE`` (repeatable) changes the scenario as ``simulate --set`` does, e.g.
the weakness-to-HAQ slope. Prints a table and writes it to ``--json`` (default
results/long_term_haq.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.runner import simulate_chunk  # noqa: E402
from simulator.scenario import load_scenario  # noqa: E402

PONYI_DAY = round(107.1 * 30.44)  # median follow-up of the 87 survivors
PONYI_MEDIAN = 0.875
PONYI_N = 87
# the cross-sectional cohort: years from diagnosis and MMT-8 (of 80) interquartile ranges
CROSS_YEARS = (0.6, 5.9)
CROSS_MMT8_OF_80 = (55.0, 74.0)
CROSS_MEDIAN_HAQ = 0.9


def median_interval(values: np.ndarray) -> tuple[float, float, float]:
    """The sample median and its distribution-free 95% interval: the order statistics of
    ranks n/2 -/+ 1.96 sqrt(n)/2 (normal approximation to the binomial)."""
    v = np.sort(values)
    n = v.size
    half = 1.96 * math.sqrt(n) / 2.0
    lo = max(math.floor(n / 2.0 - half), 0)
    hi = min(math.ceil(n / 2.0 + half), n - 1)
    return float(np.median(v)), float(v[lo]), float(v[hi])


def small_cohort_medians(values: np.ndarray, n: int, draws: int = 20_000) -> np.ndarray:
    """Medians of ``draws`` cohorts of ``n`` patients drawn without replacement from
    ``values`` (a fixed seed: the same numbers every run)."""
    rng = np.random.default_rng(20050101)
    return np.array([np.median(rng.choice(values, n, replace=False)) for _ in range(draws)])


def _quantiles(v: np.ndarray) -> dict:
    return {
        "visits": int(v.size),
        "median": float(np.median(v)),
        "quartiles": [float(np.percentile(v, 25)), float(np.percentile(v, 75))],
    }


def haq_at_strength(mmt8: np.ndarray, haq: np.ndarray, visit_days: np.ndarray) -> dict:
    """HAQ at the visits of the cross-sectional cohort's years from diagnosis, whose MMT-8
    (of 150) lies in its interquartile band, and near its median strength (77-87%)."""
    years = visit_days / 365.25
    when = (years >= CROSS_YEARS[0]) & (years <= CROSS_YEARS[1])
    seen = when[None, :] & ~np.isnan(haq)
    lo, hi = (150.0 * x / 80.0 for x in CROSS_MMT8_OF_80)
    band = seen & (mmt8 >= lo) & (mmt8 <= hi)
    near = seen & (mmt8 >= 115.0) & (mmt8 <= 130.0)
    return {
        "mmt8_median_all_visits": float(np.median(mmt8[seen])),
        "band_69_93_pct": _quantiles(haq[band]),
        "near_median_77_87_pct": _quantiles(haq[near]),
    }


def haq_by_day(
    scenario: Path, patients: int, seed: int, days: list[int], sets: list[str] | None = None
) -> tuple[list[dict], dict]:
    """Per requested day, the HAQ of the patients alive at the visit nearest it, and for
    the last day the spread of the median of Ponyi's 87; and the HAQ at a given strength
    (``haq_at_strength``)."""
    scn = load_scenario(scenario, list(sets or []))
    if max(days) > scn.horizon_days:
        raise SystemExit(f"{scenario}: horizon_days {scn.horizon_days} ends before day {max(days)}")
    res, plan = simulate_chunk(scn, seed, 0, patients, "cohort")
    haq, visit_days = res.visits["haq"], plan.visit_days
    rows = []
    for day in days:
        j = int(np.argmin(np.abs(visit_days - day)))
        v = haq[:, j]
        v = v[~np.isnan(v)]
        med, lo, hi = median_interval(v)
        rows.append(
            {
                "day": int(visit_days[j]),
                "alive": int(v.size),
                "median": med,
                "median_ci95": [lo, hi],
                "quartiles": [float(np.percentile(v, 25)), float(np.percentile(v, 75))],
                "mean": float(v.mean()),
            }
        )
    last = rows[-1]
    meds = small_cohort_medians(v, PONYI_N)  # v: the survivors' HAQ on the last day
    last["median_of_87"] = [float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))]
    last["share_of_87_medians_at_or_below_published"] = float(np.mean(meds <= PONYI_MEDIAN))
    return rows, haq_at_strength(res.visits["mmt8"], haq, visit_days)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenario", nargs="?", default=ROOT / "scenarios/studies/danko_2004.yaml")
    ap.add_argument("--patients", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--day", type=int, default=PONYI_DAY, help="the day to compare")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    ap.add_argument("--json", type=Path, default=ROOT / "results" / "long_term_haq.json")
    a = ap.parse_args(argv)
    days = sorted({d for d in (0, 365, 730, 1826, a.day) if d <= a.day})
    rows, strength = haq_by_day(Path(a.scenario), a.patients, a.seed, days, a.set)
    sys.stdout.write(
        f"{Path(a.scenario).name}: {a.patients} patients, seed {a.seed}; HAQ-DI (0-3) of "
        "the patients alive at the visit\n"
        f"{'day':>6} {'alive':>6} {'median (95% CI)':>22} {'quartiles':>12} {'mean':>6}\n"
    )
    for r in rows:
        lo, hi = r["median_ci95"]
        q1, q3 = r["quartiles"]
        sys.stdout.write(
            f"{r['day']:>6} {r['alive']:>6} {r['median']:>8.3f} ({lo:.3f}-{hi:.3f})"
            f" {q1:>5.2f}-{q3:<5.2f} {r['mean']:>6.3f}\n"
        )
    lo87, hi87 = rows[-1]["median_of_87"]
    below = rows[-1]["share_of_87_medians_at_or_below_published"]
    sys.stdout.write(
        f"Ponyi 2005: median {PONYI_MEDIAN} (range 0-2.875) in {PONYI_N} survivors after a"
        " median 107.1 months (not fitted to)\n"
        f"the median of {PONYI_N} simulated survivors on day {rows[-1]['day']}: 95% of draws"
        f" {lo87:.3f}-{hi87:.3f}; at or below {PONYI_MEDIAN} in {100 * below:.1f}%\n"
    )
    band, near = strength["band_69_93_pct"], strength["near_median_77_87_pct"]
    sys.stdout.write(
        f"HAQ at visits {CROSS_YEARS[0]}-{CROSS_YEARS[1]} years from diagnosis (MMT-8 median"
        f" {strength['mmt8_median_all_visits']:.0f} of 150 at all of them): with MMT-8 69-93%"
        f" of its maximum, median {band['median']:.2f} (IQR {band['quartiles'][0]:.2f}-"
        f"{band['quartiles'][1]:.2f}; {band['visits']} visits); 77-87%, median"
        f" {near['median']:.2f}\n"
        f"cross-sectional cohort (other_sources.md section 7): MMT-8 81% (69-93%), HAQ median"
        f" {CROSS_MEDIAN_HAQ} (IQR 0.3-1.5)\n"
    )
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(
        json.dumps(
            {
                "scenario": str(a.scenario),
                "patients": a.patients,
                "seed": a.seed,
                "set": a.set,
                "rows": rows,
                "haq_at_strength": strength,
                "published": {"median": PONYI_MEDIAN, "day": PONYI_DAY, "n": PONYI_N},
            },
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
