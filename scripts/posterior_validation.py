"""Posterior predictive check of every shipped study target: each target simulated at
draws of the calibration's ABC-SMC posterior, so that the simulated interval carries the
calibration's uncertainty as well as the Monte Carlo error.

    python scripts/posterior_validation.py                 # 40 draws x 1,000 patients
    python scripts/posterior_validation.py --draws 100 --patients 2000

Draws ``--draws`` rows of calibration/posterior/posterior.csv by systematic resampling on
their weights (the positions from ``--seed``), and for each runs every study file in
studies/ with the 13 fitted parameters set to the row, exactly as
``simulate validate studies/*.yaml --set PATH=VALUE ...`` would, on the same virtual
patients at every draw (``--patients`` per arm, seed ``--seed``: common random numbers,
so the spread over draws is the parameters', not the patients'). For each target it
reports the published value and 95% interval, the posterior predictive median and
2.5-97.5% range of the simulated value over the draws, the predicted share of studies
like the published one that would report less than it did, each draw's value with the
study's own sampling error (``studies.share_predicted_below``: a predictive tail area;
near 0 or 1, the published figure is where the model seldom puts such a study), and
whether that range overlaps the published
interval (the criterion of docs/model.md section 6, with the posterior's spread in place
of the Monte Carlo interval at one parameter set: a wide posterior meets it more easily,
so read it with the tail area). Prints a markdown
table and the share met by role, writes every draw's values to ``--json`` (default
results/posterior_validation.json) and the validation forest plot with the posterior
ranges beside it (the same name, .png).

The draws are few: the 2.5% and 97.5% points of 40 draws are their 1st and 40th values
interpolated, so the range is a rough one (stated in docs/model.md section 6, "The
decision under calibration uncertainty").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.parallel import limit_native_threads, pool_session  # noqa: E402
from simulator.studies import evaluate, load_studies, share_predicted_below  # noqa: E402
from simulator.sweeps import read_posterior, rows_by_weight  # noqa: E402

POSTERIOR = ROOT / "calibration" / "posterior" / "posterior.csv"
STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


def posterior_rows(path: Path, draws: int, seed: int) -> list[dict[str, float]]:
    """``draws`` rows of a posterior.csv, systematically resampled on their weights: row i
    appears about draws x weight_i times, in the file's order."""
    names, table, weights = read_posterior(path)
    start = np.random.default_rng(seed).uniform()
    idx = rows_by_weight(weights, (start + np.arange(draws)) / draws)
    return [{n: float(table[i, j]) for j, n in enumerate(names)} for i in idx]


def simulate_draws(
    rows: list[dict[str, float]],
    studies: list[Path],
    patients: int,
    seed: int,
    workers: int,
) -> tuple[list[dict[str, Any]], list[list[float | None]]]:
    """The targets (their description from the first draw) and, per draw, every target's
    simulated value, in the same order."""
    targets: list[dict[str, Any]] = []
    values: list[list[float | None]] = []
    with pool_session(workers):
        for k, row in enumerate(rows):
            sets = tuple(f"{n}={v!r}" for n, v in row.items())
            out: list[float | None] = []
            for study in load_studies(studies, sets):
                for r in evaluate(study, patients=patients, seed=seed, workers=workers):
                    out.append(r.simulated)
                    if k == 0:
                        targets.append(
                            {
                                "study": r.study,
                                "label": r.label,
                                "role": r.role,
                                "arm": r.arm,
                                "metric": r.metric,
                                "published": r.published,
                                "published_low": r.published_low,
                                "published_high": r.published_high,
                                "published_events": r.published_events,
                                "published_n": r.published_n,
                            }
                        )
            values.append(out)
            sys.stderr.write(f"draw {k + 1}/{len(rows)} done\n")
    return targets, values


def summarise(targets: list[dict[str, Any]], values: list[list[float | None]]) -> list[dict]:
    """Each target with the median and 2.5-97.5% range of its simulated value over draws
    (draws without a value left out) and whether that range overlaps the published one."""
    rows = []
    for j, t in enumerate(targets):
        col = np.array([v[j] for v in values if v[j] is not None], dtype=float)
        if col.size == 0:
            rows.append(
                {
                    **t,
                    "median": None,
                    "low": None,
                    "high": None,
                    "overlaps": False,
                    "share_below_published": None,
                    "published_inside": False,
                }
            )
            continue
        lo, med, hi = np.quantile(col, [0.025, 0.5, 0.975])
        overlaps = bool(lo <= t["published_high"] and hi >= t["published_low"])
        # the predictive tail: how often a study like the published one, run on the
        # model at these draws, reports less than it did (its own sampling error added)
        below = share_predicted_below(col, np.ones(col.size), t)
        rows.append(
            {
                **t,
                "median": float(med),
                "low": float(lo),
                "high": float(hi),
                "overlaps": overlaps,
                "share_below_published": below,
                # the published value inside the central 95% of its prediction
                "published_inside": below is not None and 0.025 <= below <= 0.975,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| role | target | published (95% CI) | posterior predictive median"
        " (2.5-97.5%) | predicted studies below published | overlap |",
        "|---|---|---|---|---|---|",
    ]
    for role in ("calibration", "validation"):
        for r in (r for r in rows if r["role"] == role):
            sim, below = (
                ("n/a", "n/a")
                if r["median"] is None
                else (
                    f"{r['median']:.3f} ({r['low']:.3f}-{r['high']:.3f})",
                    f"{r['share_below_published']:.2f}",
                )
            )
            lines.append(
                f"| {role} | {r['study']}: {r['label']} | {r['published']:.3f}"
                f" ({r['published_low']:.3f}-{r['published_high']:.3f}) | {sim} | {below} |"
                f" {'yes' if r['overlaps'] else '**no**'} |"
            )
    for role in ("calibration", "validation"):
        mine = [r for r in rows if r["role"] == role]
        met = sum(r["overlaps"] for r in mine)
        inside = sum(r["published_inside"] for r in mine)
        lines.append(
            f"\n{role}: {met} of {len(mine)} overlap; the published value lies within the"
            f" central 95% of its prediction for {inside} of {len(mine)}"
        )
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    """The validation forest plot (simulator.report.validation.forest) with each target's
    range over the posterior draws in place of a Monte Carlo interval."""
    from simulator.report.validation import forest_of_ranges

    forest_of_ranges(
        rows,
        path,
        interval="posterior predictive 2.5-97.5%",
        title="Posterior predictive vs published",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=40)
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--posterior", type=Path, default=POSTERIOR)
    ap.add_argument("--studies", type=Path, nargs="*", default=STUDIES)
    ap.add_argument("--json", type=Path, default=ROOT / "results" / "posterior_validation.json")
    args = ap.parse_args()
    limit_native_threads()
    rows = posterior_rows(args.posterior, args.draws, args.seed)
    targets, values = simulate_draws(rows, args.studies, args.patients, args.seed, args.workers)
    summary = summarise(targets, values)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "draws": args.draws,
                "patients": args.patients,
                "seed": args.seed,
                "posterior": str(args.posterior),
                "parameters": rows,
                "targets": summary,
                "values": values,
            },
            indent=2,
            sort_keys=True,
        )
    )
    figure(summary, args.json.with_suffix(".png"))
    print(markdown(summary))


if __name__ == "__main__":
    main()
