"""Leave-one-study-out cross-validation of the calibration, by importance sampling on
its ABC-SMC posterior: how well the model predicts each calibration study when that
study is left out of the fit.

    python scripts/loso_validation.py                   # every particle (about 5 min)
    python scripts/loso_validation.py --particles 100   # the first 100 (a quick look)
    python scripts/loso_validation.py --refit milano_2025=results/cv/posterior.csv

The shipped posterior (calibration/posterior/posterior.csv) samples, with its weights,
prior x exp(-loss / 2): calibration/posterior.yaml is an ABC-SMC down to tolerance 1,
whose Gaussian kernel on each target's distance in half-widths of its published interval
is exactly that (docs/model.md section 6). The loss is a sum over targets, and each
particle's simulation is deterministic (the calibration's patients and seed), so the
posterior without study s, prior x exp(-(loss - loss_s) / 2), is the same particles
reweighted by exp(+loss_s / 2): no refit. For each particle the script runs the
calibration's own evaluation (``simulator.calibrate.evaluate``: every target, 1,000
patients per arm, seed 1, the same bits the fit saw) and then, for each study file of
the calibration, reports each of its targets:

* in the fit: the posterior predictive median and 2.5-97.5% of the simulated value, and
  the share of the posterior below the published value;
* left out: the same under the reweighted particles, the prediction of a model that was
  not fitted to the study.

Importance sampling is reliable only while the new weights are not dominated by a few
particles. Each study gets the effective sample size of its weights (Kish) and the
Pareto k-hat of their upper tail (Vehtari et al., "Pareto smoothed importance sampling",
JMLR 2024;25(72):1-58, with the generalized Pareto fit of Zhang and Stephens,
Technometrics 2009;51:316-25, as the loo and ArviZ packages compute it): above 0.7 the
estimate is unreliable, which is itself a finding: the study moved the posterior far,
so the other studies do not determine what it measures.

Where the reweighting is unreliable, the study's prediction needs a posterior sampled
without it: ``--refit STUDY=POSTERIOR.csv`` (repeatable) takes the posterior.csv of such a
run (calibration/cross_validation/without_STUDY.yaml, run with ``simulate calibrate``),
simulates the study's targets at its particles the same way and adds that prediction to
the study's rows.

Writes every particle's simulated values and the table to ``--json`` (default
results/loso_validation.json), the forest plot of each target predicted without its study
beside the published interval (the same name, .png: from the refit where there is one,
else from the reweighting where it is reliable; a study with neither is left out of the
plot) and prints the table as markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.calibrate import (  # noqa: E402
    effective_sample_size,
    evaluate,
    load_calibration,
    target_loss,
    weighted_quantile,
)
from simulator.parallel import limit_native_threads, pool_session  # noqa: E402
from simulator.studies import share_predicted_below  # noqa: E402
from simulator.sweeps import read_posterior  # noqa: E402

CALIBRATION = ROOT / "calibration" / "posterior.yaml"
POSTERIOR = ROOT / "calibration" / "posterior" / "posterior.csv"
#: above this Pareto k-hat an importance-sampling estimate is unreliable (Vehtari 2024)
K_HAT_LIMIT = 0.7


def gpd_fit(x: np.ndarray) -> tuple[float, float]:
    """Shape k and scale sigma of a generalized Pareto distribution fitted to the sorted
    (ascending), positive exceedances ``x``: the empirical Bayes estimate of Zhang and
    Stephens (2009) with the weak prior on k of Vehtari et al. (2024), as the loo and
    ArviZ packages compute it."""
    n = len(x)
    prior_bs, prior_k = 3.0, 10.0
    m = 30 + int(math.sqrt(n))
    b = 1.0 - np.sqrt(m / (np.arange(1, m + 1, dtype=float) - 0.5))
    b /= prior_bs * x[int(n / 4 + 0.5) - 1]
    b += 1.0 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    len_scale = n * (np.log(-(b / k)) - k - 1.0)
    weights = 1.0 / np.exp(len_scale - len_scale[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    weights, b = weights[keep], b[keep]
    weights /= weights.sum()
    b_post = float(np.sum(b * weights))
    k_post = float(np.log1p(-b_post * x).mean())
    sigma = -k_post / b_post
    k_post = (n * k_post + prior_k * 0.5) / (n + prior_k)
    return k_post, sigma


def pareto_khat(log_weights: np.ndarray) -> float:
    """The Pareto k-hat of importance weights given as logs: the generalized Pareto shape
    of their largest min(20%, 3 sqrt(S)) values above the cut (inf with 4 or fewer)."""
    lw = np.asarray(log_weights, dtype=float)
    lw = lw[np.isfinite(lw)]
    s = lw.size
    x = lw - lw.max()
    tail = math.ceil(min(0.2 * s, 3.0 * math.sqrt(s)))
    order = np.sort(x)
    cut = max(order[-tail - 1], math.log(np.finfo(float).tiny))
    upper = np.sort(x[x > cut])
    if upper.size <= 4:
        return math.inf
    return gpd_fit(np.exp(upper) - math.exp(cut))[0]


def simulate_particles(
    plan: Any, thetas: np.ndarray, workers: int
) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Every calibration target at each particle: the targets' descriptions, the
    simulated values (particle x target, NaN where none) and each target's loss term."""
    targets: list[dict[str, Any]] = []
    sims = np.full((len(thetas), len(plan.targets)), np.nan)
    losses = np.zeros_like(sims)
    with pool_session(workers):
        for i, theta in enumerate(thetas):
            results = evaluate(plan, theta, workers=workers)
            for j, r in enumerate(results):
                if r.simulated is not None:
                    sims[i, j] = r.simulated
                losses[i, j] = target_loss(r)
                if i == 0:
                    targets.append(
                        {
                            "study": r.study,
                            "label": r.label,
                            "arm": r.arm,
                            "metric": r.metric,
                            "published": r.published,
                            "published_low": r.published_low,
                            "published_high": r.published_high,
                            "published_events": r.published_events,
                            "published_n": r.published_n,
                        }
                    )
            if (i + 1) % 50 == 0 or i + 1 == len(thetas):
                sys.stderr.write(f"particle {i + 1}/{len(thetas)} done\n")
    return targets, sims, losses


def predictive(col: np.ndarray, w: np.ndarray, t: dict[str, Any]) -> dict[str, Any]:
    """Weighted median and 2.5-97.5% of a target's simulated (expected) values, the
    predicted probability that a study like the published one reports less than it did
    (ties half; its sampling error included) and whether the published value lies within
    the central 95% of that prediction."""
    ok = np.isfinite(col)
    x, ww = col[ok], w[ok]
    if x.size == 0 or ww.sum() <= 0:
        return {"median": None, "low": None, "high": None, "below": None, "inside": False}
    ww = ww / ww.sum()
    # how often a study like the published one reports less than it did, at these
    # weights (the study's own sampling error added: studies.share_predicted_below)
    below = share_predicted_below(x, ww, t)
    return {
        "median": weighted_quantile(x, ww, 0.5),
        "low": weighted_quantile(x, ww, 0.025),
        "high": weighted_quantile(x, ww, 0.975),
        "below": below,
        "inside": below is not None and 0.025 <= below <= 0.975,
    }


def cross_validate(
    targets: list[dict[str, Any]], sims: np.ndarray, losses: np.ndarray, weights: np.ndarray
) -> list[dict[str, Any]]:
    """For each study: its weights' diagnostics when left out and each of its targets
    predicted in the fit and left out."""
    w = weights / weights.sum()
    log_w = np.log(np.where(w > 0, w, np.finfo(float).tiny))
    studies = list(dict.fromkeys(t["study"] for t in targets))
    out = []
    for study in studies:
        cols = [j for j, t in enumerate(targets) if t["study"] == study]
        log_new = log_w + 0.5 * losses[:, cols].sum(axis=1)
        new = np.exp(log_new - log_new.max())
        new /= new.sum()
        rows = []
        for j in cols:
            t = targets[j]
            rows.append(
                {
                    **t,
                    "fitted": predictive(sims[:, j], w, t),
                    "left_out": predictive(sims[:, j], new, t),
                }
            )
        out.append(
            {
                "study": study,
                "ess_left_out": effective_sample_size(new),
                "ess_fitted": effective_sample_size(w),
                "pareto_khat": pareto_khat(log_new),
                "targets": rows,
            }
        )
    return out


def add_refit(
    table: list[dict[str, Any]],
    study: str,
    targets: list[dict[str, Any]],
    sims: np.ndarray,
    weights: np.ndarray,
) -> None:
    """Add to ``study``'s rows of ``table`` the prediction of each of its targets under a
    posterior sampled without it (``sims``: that posterior's particles x the targets)."""
    entry = next((s for s in table if s["study"] == study), None)
    if entry is None:
        raise SystemExit(f"--refit: no calibration study named {study!r}")
    w = weights / weights.sum()
    entry["ess_refit"] = effective_sample_size(w)
    for row in entry["targets"]:
        j = next(
            i
            for i, t in enumerate(targets)
            if (t["study"], t["arm"], t["metric"]) == (study, row["arm"], row["metric"])
        )
        row["refit"] = predictive(sims[:, j], w, row)


def _cell(p: dict[str, Any] | None) -> str:
    if p is None:
        return ""
    if p["median"] is None:
        return "n/a"
    return f"{p['median']:.3f} ({p['low']:.3f}-{p['high']:.3f}); {p['below']:.2f}"


def markdown(table: list[dict[str, Any]], particles: int) -> str:
    lines = [
        f"| study left out (ESS of {particles:,}, k-hat) | target | published (95% CI) |"
        " in the fit: median (2.5-97.5%); share below published | left out: the same |"
        " left out, refitted without it: the same |",
        "|---|---|---|---|---|---|",
    ]
    for s in table:
        k = s["pareto_khat"]
        flag = "" if k <= K_HAT_LIMIT else " **unreliable**"
        head = f"{s['study']} ({s['ess_left_out']:.0f}, {k:.2f}{flag})"
        for i, t in enumerate(s["targets"]):
            lines.append(
                f"| {head if i == 0 else ''} | {t['label']} | {t['published']:.3f}"
                f" ({t['published_low']:.3f}-{t['published_high']:.3f}) |"
                f" {_cell(t['fitted'])} | {_cell(t['left_out'])} | {_cell(t.get('refit'))} |"
            )
    n = sum(len(s["targets"]) for s in table)
    reliable = [s for s in table if s["pareto_khat"] <= K_HAT_LIMIT]
    fitted = sum(t["fitted"]["inside"] for s in table for t in s["targets"])
    left = sum(t["left_out"]["inside"] for s in reliable for t in s["targets"])
    n_rel = sum(len(s["targets"]) for s in reliable)
    fitted_rel = sum(t["fitted"]["inside"] for s in reliable for t in s["targets"])
    lines.append(
        f"\nThe published value lies within the central 95% of the prediction for"
        f" {fitted} of {n} targets in the fit; for the {len(reliable)} of {len(table)}"
        f" studies whose left-out weights are reliable (k-hat <= {K_HAT_LIMIT}), for"
        f" {fitted_rel} of their {n_rel} targets in the fit and {left} left out."
    )
    got = [
        left_out_prediction(s, t) for s in table for t in s["targets"]
    ]  # refit, else a reliable reweighting
    known = [g for g in got if g is not None]
    lines.append(
        f"Predicted without its study (from a refit where there is one, else from a"
        f" reliable reweighting): {len(known)} of {n} targets, the published value within"
        f" the central 95% for {sum(g[1]['inside'] for g in known)} of them."
    )
    return "\n".join(lines)


def particles(plan: Any, path: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A posterior.csv's particles as rows of the plan's parameters (in its order), and
    their weights; only the first ``limit`` when given."""
    names, table, weights = read_posterior(path)
    if sorted(names) != sorted(plan.names):
        raise SystemExit(f"{path}: its columns are not the parameters of {plan.path}")
    thetas = table[:, [names.index(n) for n in plan.names]]
    if limit is not None:
        thetas, weights = thetas[:limit], weights[:limit]
    return thetas, weights


def left_out_prediction(study: dict[str, Any], row: dict[str, Any]) -> tuple[str, Any] | None:
    """How a target is predicted without its study: ("refit", ...) from a posterior
    sampled without it, else ("reweighted", ...) when the reweighting is reliable, else
    None."""
    if row.get("refit") is not None:
        return "refit", row["refit"]
    if study["pareto_khat"] <= K_HAT_LIMIT:
        return "reweighted", row["left_out"]
    return None


def figure(table: list[dict[str, Any]], path: Path) -> None:
    """The validation forest plot (simulator.report.validation.forest) of every target
    predicted without its study: the left-out median and 2.5-97.5% beside the published
    interval (none written when no target has such a prediction)."""
    from simulator.report.validation import forest_of_ranges

    rows = []
    for s in table:
        for row in s["targets"]:
            got = left_out_prediction(s, row)
            if got is None or got[1]["median"] is None:
                continue
            how, p = got
            rows.append(
                {
                    **row,
                    **{k: p[k] for k in ("median", "low", "high")},
                    "role": "calibration",
                    "label": f"{row['label']} [{how}]",
                }
            )
    if not rows:  # nothing predicted reliably (e.g. a handful of particles)
        sys.stderr.write(f"no target is predicted reliably without its study: no {path}\n")
        return
    forest_of_ranges(
        rows,
        path,
        interval="predicted without the study, 2.5-97.5%",
        title="Each calibration study predicted without it",
    )


def study_plan(plan: Any, study: str) -> Any:
    """The calibration plan cut down to one study's targets: an evaluation then runs only
    that study's arms, whose patients and values are the same whatever else runs."""
    return dataclasses.replace(plan, targets=[t for t in plan.targets if t.study.name == study])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--particles", type=int, default=None, help="only the first N particles (default all)"
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--json", type=Path, default=ROOT / "results" / "loso_validation.json", help="output"
    )
    ap.add_argument("--posterior", type=Path, default=POSTERIOR)
    ap.add_argument(
        "--refit",
        action="append",
        default=[],
        metavar="STUDY=POSTERIOR.csv",
        help="a posterior sampled without STUDY: predict its targets from it (repeatable)",
    )
    ap.add_argument("--calibration", type=Path, default=CALIBRATION)
    args = ap.parse_args()
    limit_native_threads()
    plan = load_calibration(args.calibration)
    thetas, weights = particles(plan, args.posterior, args.particles)
    targets, sims, losses = simulate_particles(plan, thetas, args.workers)
    result = cross_validate(targets, sims, losses, weights)
    refits = {}
    for spec in args.refit:
        study, sep, csv = spec.partition("=")
        if not sep:
            raise SystemExit(f"--refit {spec!r}: expected STUDY=POSTERIOR.csv")
        r_thetas, r_weights = particles(plan, Path(csv), args.particles)
        r_targets, r_sims, _ = simulate_particles(study_plan(plan, study), r_thetas, args.workers)
        add_refit(result, study, r_targets, r_sims, r_weights)
        refits[study] = csv
    text = markdown(result, len(thetas))
    sys.stdout.write(text + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    figure(result, args.json.with_suffix(".png"))
    args.json.write_text(
        json.dumps(
            {
                "calibration": str(args.calibration),
                "posterior": str(args.posterior),
                "particles": len(thetas),
                "targets": targets,
                "simulated": [[None if np.isnan(v) else float(v) for v in r] for r in sims],
                "weights": [float(v) for v in weights],
                "refits": refits,
                "studies": result,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
