"""Benchmarks: one command, all figures from one run on this machine.

    python benchmarks/run.py            # full: up to 10^6 patients (several minutes)
    python benchmarks/run.py --quick    # smaller sizes, for a smoke run

Prints patients per second of
  * the SimPy engine (the reference);
  * the engine floor: a bare SimPy loop with the same number of events per patient;
  * a naive daily-step SimPy implementation of the same model (what a user would write
    first: one timeout per day, the ODEs integrated by forward Euler with hourly steps);
  * the cohort engine;
then scaling from 10^3 to 10^6 patients (cohort engine, summary output only, each size in
its own process: wall time and peak RSS), and 1 vs 2 worker processes. Ratios are
computed from figures measured in this same run; targets are those of the project's
scale issue.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import simpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.engines import des  # noqa: E402
from simulator.kernel import handlers  # noqa: E402
from simulator.kernel.events import Event  # noqa: E402
from simulator.kernel.params import make_params  # noqa: E402
from simulator.kernel.plan import make_plan  # noqa: E402
from simulator.kernel.xp import SCALAR  # noqa: E402
from simulator.runner import run  # noqa: E402
from simulator.scenario import load_scenario  # noqa: E402

SCENARIO = ROOT / "scenarios" / "first_line.yaml"


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def events_per_patient(scn, plan, n=200) -> float:
    res = des.run_chunk(scn, plan, 1, np.arange(n), events=True)
    return len(res.events) / n + 1  # + the end event


def engine_floor(n: int, events: int, chunk: int = 500) -> float:
    """A bare SimPy loop: one process per patient, `events` timeouts, nothing else."""

    def patient(env):
        for _ in range(events):
            yield env.timeout(1.0)

    def go():
        for start in range(0, n, chunk):
            env = simpy.Environment()
            for _ in range(min(chunk, n - start)):
                env.process(patient(env))
            env.run()

    dt, _ = timed(go)
    return n / dt


def naive_daily(scn, plan, n: int, chunk: int = 100) -> tuple[float, np.ndarray]:
    """The same model stepped one day at a time, ODEs by forward Euler (24 steps a day).

    Decisions reuse the kernel's event handlers; only the state update between events is
    replaced by numerical integration, as a first implementation would do. Returns
    patients/s and each patient's CPK ratio at day 84 (to check agreement).
    """
    from simulator.kernel.disease import (
        FE,
        LE,
        N_STATES,
        XD,
        XL,
        XS,
        C,
        E,
        F,
        J,
        L,
        Q,
        S,
        V,
        W,
        Y,
        Z,
    )

    steps = 24
    h = 1.0 / steps
    ratios = np.full(n, math.nan)
    names = {Y: "y", Q: "q", W: "w", XS: "xs", XL: "xl", XD: "xd", Z: "z", F: "f", L: "l",
             FE: "fe", LE: "le", V: "v", E: "e", J: "j", C: "c"}

    def euler(st, prm, t_to):
        # dx/dt = A x with the patient's rate node and IVIG gain, forward Euler.
        a = plan.propagator.matrix(prm.node).copy()
        a[(Y, W, XS, XL, XD), V] *= prm.ivig_gain
        x = np.array([getattr(st, names[i]) if i != S else prm.drive
                      for i in range(N_STATES)])
        while st.t < t_to - 1e-12:
            dt = min(h, t_to - st.t)
            x = x + dt * (a @ x)
            st.cum_pred += dt * st.pred
            st.mort_h += dt * st.mort_rate
            st.t += dt
        for i, name in names.items():
            setattr(st, name, float(x[i]))
        st.t = t_to

    def patient(env, prm, i, res):
        st = handlers.init_state(SCALAR, plan, prm)
        while True:
            day = env.now
            while True:
                t, kind = handlers.next_event(SCALAR, plan, prm, st)
                if t > day:
                    break
                euler(st, prm, t)
                if kind == Event.END:
                    return
                kk = st.visit_k
                _, values, _ = handlers.handle(SCALAR, plan, prm, st, kind)
                if values is not None:
                    res[kk] = values[0]
            euler(st, prm, day + 1)
            yield env.timeout(1)

    def go():
        for start in range(0, n, chunk):
            ids = np.arange(start, min(n, start + chunk))
            prm, _ = make_params(scn, plan, 1, ids)
            env = simpy.Environment()
            out = np.full((len(ids), len(plan.visit_days)), math.nan)
            for i in range(len(ids)):
                env.process(patient(env, prm.row(i), i, out[i]))
            env.run()
            d84 = list(plan.visit_days).index(84)
            ratios[ids] = out[:, d84] / out[:, 0]

    dt, _ = timed(go)
    return n / dt, ratios


def child(n: int, workers: int, engine: str) -> dict:
    """Run in a fresh process; report wall time and this process tree's peak RSS."""
    code = (
        "import json, resource, sys, time\n"
        "from simulator.scenario import load_scenario\n"
        "from simulator.runner import run\n"
        f"scn = load_scenario({str(SCENARIO)!r})\n"
        "t = time.perf_counter()\n"
        f"r = run(scn, patients={n}, seed=1, engine={engine!r}, workers={workers},"
        " progress=False)\n"
        "dt = time.perf_counter() - t\n"
        "me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'seconds': dt, 'rss_mb': max(me, kids) / 1024,"
        " 'ratio': r.metrics['cpk_ratio_month_3']['mean']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    scn = load_scenario(SCENARIO)
    plan = make_plan(scn)
    n_des = 300 if args.quick else 2000
    n_naive = 30 if args.quick else 200
    n_cohort = 20_000 if args.quick else 100_000

    print(f"machine: {sys.platform}, python {sys.version.split()[0]}; scenario first_line "
          f"(horizon {scn.horizon_days} days)")
    ev = events_per_patient(scn, plan)
    print(f"events per patient (mean): {ev:.1f}")
    run(scn, patients=200, engine="simpy", workers=1, progress=False)  # warm caches
    dt, _ = timed(run, scn, patients=n_des, seed=1, engine="simpy", workers=1, progress=False,
                  check_invariants=False)
    simpy_rate = n_des / dt
    floor_rate = engine_floor(n_des, round(ev))
    naive_rate, naive_ratio = naive_daily(scn, plan, n_naive)
    res = des.run_chunk(scn, plan, 1, np.arange(n_naive))
    d84 = list(plan.visit_days).index(84)
    exact_ratio = res.visit_cpk[:, d84] / res.visit_cpk[:, 0]
    run(scn, patients=2000, engine="cohort", workers=1, progress=False)
    dt, _ = timed(run, scn, patients=n_cohort, seed=1, engine="cohort", workers=1,
                  progress=False, check_invariants=False)
    cohort_rate = n_cohort / dt
    dt, _ = timed(run, scn, patients=n_cohort, seed=1, engine="cohort", workers=1,
                  progress=False)
    cohort_checked = n_cohort / dt

    print("\npatients per second (1 process)")
    print(f"  SimPy engine                        {simpy_rate:10,.0f}")
    print(f"  engine floor (bare SimPy, {round(ev)} events) {floor_rate:10,.0f}")
    print(f"  naive daily-step SimPy (Euler 1 h)  {naive_rate:10,.1f}")
    print(f"  cohort engine                       {cohort_rate:10,.0f}")
    print(f"  cohort engine, invariants checked   {cohort_checked:10,.0f}")
    print(f"  naive vs exact CPK ratio at day 84: max |difference| "
          f"{np.nanmax(np.abs(naive_ratio - exact_ratio)):.4f}")

    sizes = [1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    print("\nscaling (cohort engine, summary output only, 1 worker, fresh process each)")
    print(f"  {'patients':>10} {'seconds':>9} {'patients/s':>11} {'peak RSS MB':>12}")
    scaling = {}
    for n in sizes:
        r = child(n, 1, "cohort")
        scaling[n] = r
        print(f"  {n:>10,} {r['seconds']:>9.1f} {n / r['seconds']:>11,.0f} {r['rss_mb']:>12.0f}")

    n_w = 50_000 if args.quick else 200_000
    one = child(n_w, 1, "cohort")
    two = child(n_w, 2, "cohort")
    speedup = one["seconds"] / two["seconds"]
    print(f"\nworkers ({n_w:,} patients, cohort): 1 worker {one['seconds']:.1f} s, "
          f"2 workers {two['seconds']:.1f} s: speed-up {speedup:.2f}x")
    assert one["ratio"] == two["ratio"], "results must not depend on workers"

    big = max(scaling)
    targets = [
        ("SimPy engine >= 0.5x engine floor", simpy_rate / floor_rate, 0.5),
        ("SimPy engine >= 20x naive daily-step", simpy_rate / naive_rate, 20.0),
        ("cohort engine >= 20x SimPy engine", cohort_rate / simpy_rate, 20.0),
        ("2 workers >= 1.7x 1 worker", speedup, 1.7),
    ]
    print("\ntargets (ratios from this run)")
    for label, value, goal in targets:
        print(f"  {label:<38} {value:8.2f}x  {'met' if value >= goal else 'NOT met'}")
    rss = scaling[big]["rss_mb"]
    label = f"peak RSS, {big:,} patients, summary < 1 GB"
    print(f"  {label:<38} {rss:8.0f} MB "
          f"{'met' if rss < 1024 else 'NOT met'}")


if __name__ == "__main__":
    main()
