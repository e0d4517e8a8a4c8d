"""ABC-SMC on the shipped calibration targets: wall time of a real run, and what a run
with more particles would take.

Runs ``simulate calibrate calibration/default.yaml --method abc`` (in process) with the
shipped ABC settings (``calibration/default.yaml``, or the schema's defaults: 15
generations at most, 2 Metropolis-Hastings moves per particle and generation) and
``--particles`` particles, on ``--workers`` processes, and prints:

- the whole run's wall time, evaluations, and simulations run against those a run
  without early rejection would have run;
- each generation's tolerance, ESS, move acceptance and share of moves rejected early;
- the wall time of a run with ``--project`` particles (default 1,000), scaled linearly
  from this run. Every generation evaluates each particle the same number of times, so
  evaluations scale with particles; the generations and the share of moves rejected early
  depend on the targets and the tolerance schedule, not on the particle count, so the
  projection holds them at this run's values (stated as a projection, not a measurement).

    python benchmarks/abc.py                    # 100 particles (~15-30 minutes on 2 cores)
    python benchmarks/abc.py --particles 1000   # the real thing (hours)

Writes the figures to ``--json`` (default results/benchmark_abc.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from simulator.calibrate import calibrate, load_calibration, task_of_target
    from simulator.parallel import limit_native_threads

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--particles", type=int, default=100)
    ap.add_argument("--project", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--patients", type=int, default=None, help="default: the file's (1,000)")
    ap.add_argument("--json", type=Path, default=ROOT / "results" / "benchmark_abc.json")
    args = ap.parse_args()
    limit_native_threads()
    source = ROOT / "calibration" / "default.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        cal = Path(tmp) / "abc.yaml"
        text = source.read_text().replace("../studies/", f"{ROOT / 'studies'}/")
        text = text.replace("method: optimize", "method: abc")
        cal.write_text(text + f"abc: {{particles: {args.particles}}}\n")
        plan = load_calibration(cal, patients=args.patients)
        a = plan.spec.abc
        load_before = os.getloadavg()
        print(
            f"ABC-SMC on {source.relative_to(ROOT)}: {len(plan.names)} parameters, "
            f"{len(plan.targets)} targets, {plan.patients:,} patients per arm, "
            f"{a.particles} particles, at most {a.max_generations} generations x {a.moves} "
            f"moves, {args.workers} workers; load average {load_before}",
            flush=True,
        )
        t = time.perf_counter()
        res = calibrate(plan, Path(tmp) / "out", workers=args.workers, progress=True)
        wall = time.perf_counter() - t
    load_after = os.getloadavg()
    tasks = max(task_of_target(plan)) + 1
    evals = res.evaluations
    sims = sum(e.get("simulations", tasks) for e in evals)
    full = tasks * len(evals)
    print(f"\nwall {wall:.0f} s ({wall / 60:.1f} min); load average after {load_after}")
    print(
        f"evaluations {len(evals):,}; simulations run {sims:,} of {full:,} "
        f"({sims / full:.1%}; early rejection saved {1 - sims / full:.1%})"
    )
    print(f"\n{'gen':>4} {'tolerance':>10} {'ESS':>7} {'acceptance':>11} {'rejected early':>15}")
    for g in res.generations or []:
        print(
            f"{g['generation']:>4} {g['tolerance']:>10.3g} {g['ess']:>7.1f} "
            f"{g['acceptance']:>11.2f} {g.get('stopped_early', 0):>15.2f}"
        )
    scale = args.project / args.particles
    projected = wall * scale
    print(
        f"\nprojected: {args.project:,} particles ~ {projected / 60:.0f} min "
        f"({scale:g} x this run; target < 60 min: {'met' if projected < 3600 else 'NOT met'})"
    )
    fig = {
        "particles": args.particles,
        "patients": plan.patients,
        "workers": args.workers,
        "generations": res.generations,
        "evaluations": len(evals),
        "simulations_run": sims,
        "simulations_without_early_rejection": full,
        "wall_s": wall,
        "projected_particles": args.project,
        "projected_wall_s": projected,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(fig, indent=2, sort_keys=True) + "\n")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
