"""How settled are the calibrated defaults? Run the shipped fit again, from the defaults,
on other patients (other seeds), and compare the end points on patients none was fitted
on.

For each seed, this script writes a copy of the shipped calibration
(calibration/default.yaml) that differs only in its ``seed`` (the same seed as the
shipped one continues the shipped fit on the same patients), runs ``simulate calibrate``
on it from the current defaults, and validates the end point with ``simulate validate``
on the unmodified study files at another size and seed. It prints, for the defaults and
each end point, the loss at the end of the fit, the loss and the number of calibration
targets met on the independent patients, and the fitted parameters that moved most; and
keeps each end point as a ``--params`` overlay in ``--out``/overlays, so that

    python scripts/calibration_alternatives.py --folder results/calibration_seeds/overlays

shows what each does to the founding comparison. Nothing here changes the defaults, and
nothing is fitted to a target tagged validation. docs/model.md section 6 ("How settled
the defaults are") gives the table of the first command:

    python scripts/calibration_seeds.py --seeds 1 2 3 4 --workers 1   # ~10 min, 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from target_conflicts import _loss, simulate_command, targets_met, validate, write_weighted

ROOT = Path(__file__).resolve().parents[1]


def write_seeded(tmp: Path, seed: int, evaluations: int | None = None) -> Path:
    """A copy of the shipped calibration in ``tmp`` (paths made absolute) with ``seed``
    (and, if given, a Nelder-Mead budget of ``evaluations``)."""
    path = write_weighted(tmp, None, 1.0)
    spec = yaml.safe_load(path.read_text())
    spec["seed"] = int(seed)
    spec["name"] = f"{spec['name']}_seed_{seed}"
    if evaluations is not None:
        spec["optimize"] = {**spec.get("optimize", {}), "max_evaluations": int(evaluations)}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _fitted_values(overlay: Path | None) -> dict[str, float]:
    from simulator.scenario.disease import FITTED, _fit

    values = {name: _fit(name) for name in FITTED}
    if overlay is not None:
        values.update({k: float(v) for k, v in yaml.safe_load(overlay.read_text()).items()})
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--patients", type=int, default=4000, help="per arm, for the validation")
    ap.add_argument("--seed", type=int, default=7, help="of the validation (not a fit seed)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "calibration_seeds")
    ap.add_argument(
        "--evaluations", type=int, help="Nelder-Mead budget (default: the shipped one, 200)"
    )
    args = ap.parse_args()
    if args.seed in args.seeds:
        raise SystemExit(f"--seed {args.seed} is one of the fits' seeds: choose another")
    overlays = args.out / "overlays"
    overlays.mkdir(parents=True, exist_ok=True)
    columns: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        rows = validate(None, tmp / "v_defaults", args.patients, args.seed, args.workers)
        columns["defaults"] = {"fit_loss": math.nan, "rows": rows, "values": _fitted_values(None)}
        for seed in args.seeds:
            work = tmp / f"seed_{seed}"
            work.mkdir()
            cal = write_seeded(work, seed, args.evaluations)
            cmd = [*simulate_command(), "calibrate", str(cal), "--out", str(work / "fit")]
            subprocess.run([*cmd, "--quiet", "--workers", str(args.workers)], check=True)
            fitted = json.loads((work / "fit" / "fitted.json").read_text())
            overlay = overlays / f"seed_{seed}.yaml"
            shutil.copyfile(work / "fit" / "calibrated.yaml", overlay)
            rows = validate(overlay, work / "v", args.patients, args.seed, args.workers)
            columns[f"seed {seed}"] = {
                "fit_loss": fitted["loss"],
                "rows": rows,
                "values": _fitted_values(overlay),
            }
            sys.stderr.write(f"seed {seed}: loss {fitted['loss']:.2f} at the end of the fit\n")
    report(columns, args)


def report(columns: dict[str, dict], args: argparse.Namespace) -> None:
    names = list(columns)
    base = columns["defaults"]["values"]
    # the IVIG effect (the parameter the founding question turns on), then those that
    # moved most
    ivig = "disease.ivig.effect_per_g_per_l_per_day"
    others = sorted(
        (p for p in base if p != ivig),
        key=lambda p: -max(abs(c["values"][p] / base[p] - 1) for c in columns.values()),
    )
    moved = [ivig, *others[:4]]
    lines = [
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| loss at the end of the fit (its own patients) | "
        + " | ".join(
            "" if math.isnan(c["fit_loss"]) else f"{c['fit_loss']:.2f}" for c in columns.values()
        )
        + " |",
        f"| loss on other patients ({args.patients:,}/arm, seed {args.seed}) | "
        + " | ".join(f"{_loss(c['rows']):.2f}" for c in columns.values())
        + " |",
        f"| calibration targets met there (of {len(columns['defaults']['rows'])}) | "
        + " | ".join(str(targets_met(c["rows"])) for c in columns.values())
        + " |",
    ]
    for p in moved:
        lines.append(
            f"| `{p}` | " + " | ".join(f"{c['values'][p]:.4g}" for c in columns.values()) + " |"
        )
    text = "\n".join(lines)
    print(text)
    (args.out / "table.md").write_text(text + "\n")
    print(f"\noverlays in {args.out / 'overlays'}; the decision under each:")
    print(f"  python scripts/calibration_alternatives.py --folder {args.out / 'overlays'}")


if __name__ == "__main__":
    main()
