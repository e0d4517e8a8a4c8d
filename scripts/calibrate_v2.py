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
from pathlib import Path

import numpy as np
from scipy import optimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.calibration import SCENARIOS, TARGETS, VALIDATION, loss, simulate  # noqa: E402
from simulator.scenario import load_scenario  # noqa: E402
from simulator.scenario.disease import FITTED  # noqa: E402

FIT = tuple(FITTED)  # the fitted parameters and their bounds: one place


def table(sim: dict[str, float], targets: tuple = TARGETS) -> str:
    rows = [
        "| target | scenario | published (95% CI) | simulated (MC 95% CI) | overlap |",
        "|---|---|---|---|---|",
    ]
    for t in targets:
        v = sim[t.metric + "@" + t.scenario]
        lo, hi = sim[t.metric + "@" + t.scenario + ":ci"]
        overlap = lo is not None and hi is not None and lo <= t.high and hi >= t.low
        rows.append(
            f"| {t.source} | {t.scenario} | {t.value:.3f} ({t.low:.3f}-{t.high:.3f})"
            f" | {v:.3f} ({lo:.3f}-{hi:.3f}) | {'yes' if overlap else '**no**'} |"
        )
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
            print(
                f"{value:10.2f} "
                + " ".join(f"{k.split('.')[-1]}={v:.4g}" for k, v in pars.items()),
                flush=True,
            )
            return value

        # Steps of 0.6 on the logit scale (about 15% of each parameter's range) start the
        # simplex wide enough to see past Monte Carlo noise.
        simplex = np.vstack([u0] + [u0 + 0.6 * np.eye(len(u0))[i] for i in range(len(u0))])
        res = optimize.minimize(
            objective,
            u0,
            method="Nelder-Mead",
            options={"maxfev": args.fit, "xatol": 1e-3, "fatol": 0.05, "initial_simplex": simplex},
        )
        best = to_params(res.x)
        print("best:", json.dumps(best, indent=1))
    sim = simulate(best, args.patients, args.seed)
    print(f"loss {loss(sim):.2f}")
    print(table(sim))
    print("\nNot fitted (external validation):")
    print(table(sim, VALIDATION))
    if not math.isfinite(loss(sim)):
        sys.exit(1)


if __name__ == "__main__":
    main()
