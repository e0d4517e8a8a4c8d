"""Do the calibration targets the defaults miss conflict with the others? Refit with one
of them weighted up and see what the others do.

For each calibration target the defaults miss (found by a validation of the defaults
at the same size and seed, so the list cannot go stale; ``--only`` narrows it), this
script writes a copy of the shipped calibration in a temporary folder in which that
target's published interval is narrowed around the same value (half-widths divided by
sqrt(WEIGHT), so its term of the loss weighs WEIGHT times more), runs
``simulate calibrate`` on it from the shipped defaults (Nelder-Mead, the shipped
settings otherwise) and then ``simulate validate`` on the *unmodified* study files with
the parameters found. It prints, for the defaults and for each refit, every calibration
target's simulated value, whether its Monte Carlo 95% interval overlaps the published
one, and the loss with the published weights; and writes the table as CSV.

If a missed target can be met by weighting it up without others failing, the defaults
are a poor optimum and should be refitted; if meeting it (or approaching it) costs other
targets, the targets conflict under the model's structure. Nothing here changes the
defaults, and nothing is fitted to a target tagged validation.

    python scripts/target_conflicts.py                      # ~15-20 min on 2 cores
    python scripts/target_conflicts.py --weight 25 --evaluations 250 --patients 2000

The figures of docs/model.md section 6 ("Do the missed targets conflict with the
others?") come from the first command. ``--keep DIR`` also keeps each refit's parameters
as a ``--params`` overlay (``DIR/<study>__<metric>.yaml``, with its fitted.json), for
running the strategies under each alternative calibration (calibration/alternatives/).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT / "calibration" / "default.yaml"


def simulate_command() -> list[str]:
    """The simulate command of this interpreter's environment (the console script, or
    ``python -m simulator``)."""
    exe = Path(sys.executable).with_name("simulate")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "simulator"]


def _published_interval(target: dict) -> tuple[float, float, float]:
    """(value, low, high) of a target's published figure, as the simulator reads it."""
    from simulator.scenario.study_schema import Published
    from simulator.studies import published_interval

    return published_interval(Published.model_validate(target["published"]))


def _arm(study: dict, target: dict) -> str:
    return target.get("arm") or next(iter(study["arms"]))


def write_weighted(tmp: Path, emphasised: tuple[str, str, str] | None, weight: float) -> Path:
    """A copy of the shipped calibration in ``tmp`` (scenario paths made absolute), with
    the ``emphasised`` target's interval narrowed by sqrt(weight). Returns its file."""
    cal = yaml.safe_load(CALIBRATION.read_text())
    studies = []
    found = emphasised is None
    for rel in cal["studies"]:
        src = (CALIBRATION.parent / rel).resolve()
        study = yaml.safe_load(src.read_text())
        study["arms"] = {k: str((src.parent / v).resolve()) for k, v in study["arms"].items()}
        for target in study["targets"]:
            key = (src.stem, target["metric"], _arm(study, target))
            if key == emphasised:
                value, lo, hi = _published_interval(target)
                shrink = 1.0 / math.sqrt(weight)
                target["published"] = {
                    "value": value,
                    "ci95": [value - (value - lo) * shrink, value + (hi - value) * shrink],
                }
                found = True
        out = tmp / src.name
        out.write_text(yaml.safe_dump(study, sort_keys=False))
        studies.append(str(out))
    if not found:
        raise SystemExit(f"no calibration target {emphasised}")
    cal["studies"] = studies
    path = tmp / "calibration.yaml"
    path.write_text(yaml.safe_dump(cal, sort_keys=False))
    return path


def validate(params: Path | None, out: Path, patients: int, seed: int, workers: int) -> list:
    studies = [str((CALIBRATION.parent / rel).resolve()) for rel in _studies()]
    cmd = [*simulate_command(), "validate", *studies, "--patients", str(patients)]
    cmd += ["--seed", str(seed)]
    cmd += ["--out", str(out), "--quiet", "--workers", str(workers)]
    if params is not None:
        cmd += ["--params", str(params)]
    subprocess.run(cmd, check=True)
    with open(out / "validation.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r.get("role", "calibration") == "calibration"]


def _studies() -> list[str]:
    return yaml.safe_load(CALIBRATION.read_text())["studies"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weight", type=float, default=25.0)
    ap.add_argument("--evaluations", type=int, default=250, help="Nelder-Mead budget a refit")
    ap.add_argument("--patients", type=int, default=2000, help="per arm, for the validation")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--csv", type=Path, default=ROOT / "results" / "target_conflicts.csv")
    ap.add_argument("--only", nargs="*", help="metric names to emphasise (default: all missed)")
    ap.add_argument(
        "--keep", type=Path, help="folder to keep each refit's --params overlay and fitted.json"
    )
    args = ap.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list] = {}
    losses: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        runs["defaults"] = validate(
            None, tmp / "v_defaults", args.patients, args.seed, args.workers
        )
        # (study file stem, metric, arm) of every calibration target the defaults miss
        missed = [
            (r["study"], r["metric"], r["arm"]) for r in runs["defaults"] if r["overlaps"] != "yes"
        ]
        sys.stderr.write(f"missed at the defaults: {', '.join(m for _, m, _ in missed)}\n")
        for key in missed:
            if args.only and key[1] not in args.only:
                continue
            name = f"{key[0]}:{key[1]}"
            work = tmp / name.replace(":", "_")
            work.mkdir()
            cal = write_weighted(work, key, args.weight)
            spec = yaml.safe_load(cal.read_text())
            spec["optimize"] = {"starts": 1, "max_evaluations": args.evaluations}
            cal.write_text(yaml.safe_dump(spec, sort_keys=False))
            t0 = time.perf_counter()
            subprocess.run(
                [
                    *simulate_command(),
                    *("calibrate", str(cal), "--out", str(work / "fit"), "--quiet"),
                    *("--workers", str(args.workers)),
                ],
                check=True,
            )
            fitted = json.loads((work / "fit" / "fitted.json").read_text())
            losses[name] = fitted["loss"]
            sys.stderr.write(f"{name}: refit in {time.perf_counter() - t0:.0f} s\n")
            runs[name] = validate(
                work / "fit" / "calibrated.yaml", work / "v", args.patients, args.seed, args.workers
            )
            if args.keep is not None:
                stem = f"{key[0]}__{key[1]}"
                (args.keep / f"{stem}.yaml").write_text(
                    overlay(work / "fit" / "calibrated.yaml", key, runs, name, args)
                )
    _report(runs, args)


def overlay(
    fitted: Path, key: tuple[str, str, str], runs: dict, name: str, args: argparse.Namespace
) -> str:
    """The refit's parameters as a --params file, with a header saying how it was made
    and how it validates."""
    from simulator.scenario.disease import calibrated_defaults_digest

    rows = runs[name]
    target = next(r for r in rows if (r["study"], r["metric"], r["arm"]) == key)
    met = targets_met(rows)
    met0 = targets_met(runs["defaults"])
    body = [ln for ln in fitted.read_text().splitlines() if not ln.startswith("#")]
    head = [
        "An alternative calibration (not the defaults): the shipped calibration refitted",
        f"with one target the defaults miss weighted {args.weight:g} times: {key[0]},",
        f"{target['label']} ({key[2]}; published {float(target['published']):.3f}).",
        "Made by `python scripts/target_conflicts.py --keep calibration/alternatives`",
        f"({args.evaluations} Nelder-Mead evaluations from the defaults; the calibration's",
        "own patients and seed). Validated on the unmodified study files"
        f" ({args.patients:,} patients",
        f"per arm, seed {args.seed}): that target {float(target['simulated']):.3f}; loss with"
        f" the published weights {_loss(rows):.2f}",
        f"(defaults {_loss(runs['defaults']):.2f}); {met} of {len(rows)} calibration targets"
        f" met (defaults {met0}).",
        f"Refitted from the defaults whose parameters' digest is {calibrated_defaults_digest()}",
        '(sha256 of simulator/data/calibrated_defaults.json\'s "parameters", sorted JSON).',
        "Use with: simulate SCENARIO.yaml --params this file."
        " See calibration/alternatives/README.md.",
    ]
    return "".join(f"# {h}\n" for h in head) + "\n".join(body) + "\n"


def targets_met(rows: list) -> int:
    """The validation.csv rows whose Monte Carlo interval overlaps the published one."""
    return sum(r["overlaps"] == "yes" for r in rows)


def _loss(rows: list) -> float:
    """The calibration's loss (``calibrate.loss``) of validation.csv rows."""
    from dataclasses import fields

    from simulator.calibrate import loss
    from simulator.studies import TargetResult

    def value(name: str, text: str) -> object:
        if name in ("published", "published_low", "published_high"):
            return float(text)
        if name in ("simulated", "simulated_low", "simulated_high"):
            return float(text) if text else None
        return int(text) if name == "patients" else text

    return loss(
        [
            TargetResult(**{f.name: value(f.name, r[f.name]) for f in fields(TargetResult)})
            for r in rows
        ]
    )


def _report(runs: dict[str, list], args: argparse.Namespace) -> None:
    names = list(runs)
    base = runs["defaults"]
    labels = [f"{r['study']}: {r['label']}" for r in base]
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["target", "published", *names])
        for i, label in enumerate(labels):
            w.writerow([label, base[i]["published"], *(runs[n][i]["simulated"] for n in names)])
        w.writerow(["loss (published weights)", "", *(f"{_loss(runs[n]):.2f}" for n in names)])
        w.writerow(["targets met", "", *(targets_met(runs[n]) for n in names)])
    out = sys.stdout
    out.write(
        f"\n{args.patients:,} patients per arm, seed {args.seed}; refits weight one target "
        f"x{args.weight:g} ({args.evaluations} Nelder-Mead evaluations from the defaults)\n"
        "value (* = its 95% interval misses the published one)\n\n"
    )
    short = ["defaults", *(n.split(":")[1] for n in names[1:])]
    out.write(
        f"{'target':58s} {'published':>9s}" + "".join(f" {s[:14]:>14s}" for s in short) + "\n"
    )
    for i, label in enumerate(labels):
        cells = []
        for n in names:
            r = runs[n][i]
            cells.append(f"{float(r['simulated']):13.3f}{' ' if r['overlaps'] == 'yes' else '*'}")
        out.write(f"{label[:58]:58s} {float(base[i]['published']):9.3f} " + " ".join(cells) + "\n")
    out.write(
        f"{'loss (published weights)':58s} {'':9s} "
        + " ".join(f"{_loss(runs[n]):14.2f}" for n in names)
        + "\n"
    )
    out.write(
        f"{'targets met':58s} {'':9s} "
        + " ".join(f"{sum(r['overlaps'] == 'yes' for r in runs[n]):14d}" for n in names)
        + "\n"
    )
    out.write(f"\nwritten: {args.csv}\n")


if __name__ == "__main__":
    main()
