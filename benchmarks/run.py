"""Benchmarks: one command, all figures from one run on this machine.

    python benchmarks/run.py                 # full (about 10 minutes on 2 cores)
    python benchmarks/run.py --size quick    # smaller sizes (about 2 minutes)
    python benchmarks/run.py --size toy      # seconds: the test suite runs this so the
                                             # script cannot rot (no timing asserted)

Prints a table, and writes every figure to JSON (``--json``, default
results/benchmark.json), with the machine's load average before and after. Engine rates
are CPU time of the timed region (median of 3 repetitions, interleaved between the
engines compared), so a loaded machine moves them less than wall time:

  * the cohort engine (first_line, summary only) and first_line/rescue pairs through
    ``compare``;
  * the SimPy engine (each event run compiled, and on its Python path) against the
    bare-SimPy floor at the same number of events per patient, and a naive daily-step
    SimPy model (what a user would write first);
  * a PSA through the whole ``simulate sweep`` command (wall time, 2 workers);
  * an infusion center (3 years, 60 new patients a year) and a sweep of 100 center
    replications over its chairs (whole command, 2 workers);
  * the per-point overhead of a sweep (overrides, validation, plan compilation);
  * scaling to 10^6 patients in flat memory (``--huge``: 10^7), 1 vs 2 workers, and the
    number of native (BLAS) threads a worker process runs.

Targets are those of the project's performance issue; each row says met or NOT met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import simpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import jit  # noqa: E402
from simulator.engines import des  # noqa: E402
from simulator.kernel import handlers  # noqa: E402
from simulator.kernel.events import Event  # noqa: E402
from simulator.kernel.params import make_params  # noqa: E402
from simulator.kernel.plan import make_plan  # noqa: E402
from simulator.kernel.xp import SCALAR  # noqa: E402
from simulator.runner import run  # noqa: E402
from simulator.scenario import load_scenario  # noqa: E402

SCENARIO = ROOT / "scenarios" / "first_line.yaml"


@contextlib.contextmanager
def _jit_env(mode):
    """``SIMULATOR_JIT`` set to ``mode`` (None: left as it is) for the block."""
    old = os.environ.get("SIMULATOR_JIT")
    if mode is not None:
        os.environ["SIMULATOR_JIT"] = mode
    try:
        yield
    finally:
        if mode is not None:
            if old is None:
                os.environ.pop("SIMULATOR_JIT")
            else:
                os.environ["SIMULATOR_JIT"] = old


def _python_path(fn, *args, **kw):
    """``fn`` with the SimPy engine on its Python path (each event run by the kernel's
    Python functions; ``des.run_chunk(compiled=False)``)."""
    keep = des._run_compiled
    des._run_compiled = lambda *a: False
    try:
        return fn(*args, **kw)
    finally:
        des._run_compiled = keep


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def events_per_patient(scn, plan, n=200) -> float:
    res = des.run_chunk(scn, plan, 1, np.arange(n), events=True)
    return len(res.events) / n + 1  # + the end event


def engine_floor(n: int, events: int) -> float:
    """A bare SimPy loop: one process per patient, `events` timeouts, nothing else, in
    environments of as many patients as the SimPy engine's (`des.run_processes`): bare
    SimPy too is faster with fewer live processes (~13% from 500 to 50), and the ratio
    should measure the engine's own work."""

    def patient(env, _row):
        for _ in range(events):
            yield env.timeout(1.0)

    def go():
        des.run_processes(n, patient)

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
    names = {
        Y: "y",
        Q: "q",
        W: "w",
        XS: "xs",
        XL: "xl",
        XD: "xd",
        Z: "z",
        F: "f",
        L: "l",
        FE: "fe",
        LE: "le",
        V: "v",
        E: "e",
        J: "j",
        C: "c",
    }

    def euler(st, prm, t_to):
        # dx/dt = A x with the patient's rate node and IVIG gain, forward Euler.
        a = plan.propagator.matrix(prm.node).copy()
        a[(Y, W, XS, XL, XD), V] *= prm.ivig_gain
        x = np.array([getattr(st, names[i]) if i != S else prm.drive for i in range(N_STATES)])
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
        "try:\n"
        "    # Linux keeps ru_maxrss across exec (it would show the benchmark's own peak);\n"
        "    # VmHWM is this process image's peak\n"
        "    me = [int(x.split()[1]) for x in open('/proc/self/status')\n"
        "          if x.startswith('VmHWM')][0]\n"
        "except (OSError, IndexError):\n"
        "    pass\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'seconds': dt, 'rss_mb': max(me, kids) / 1024,"
        " 'ratio': r.metrics['cpk_ratio_month_3']['mean']}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_rate(fn, n: int, reps: int = 3) -> float:
    """n / median CPU seconds of fn()."""
    times = []
    for _ in range(reps):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return n / statistics.median(times)


def interleaved(fns: dict, n: dict, reps: int = 3) -> dict:
    """CPU rates of several functions measured in turn, rep by rep (load hits each)."""
    times: dict = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.process_time()
            fn()
            times[k].append(time.process_time() - t)
    return {k: n[k] / statistics.median(v) for k, v in times.items()}


def psa_command(draws: int, patients: int, workers: int, folder: Path) -> float:
    """Wall seconds of `simulate sweep` on the shipped PSA restricted to first_line vs
    rescue (two strategies), in a fresh process."""
    import yaml

    src = ROOT / "scenarios" / "sweeps" / "psa_first_line_vs_rescue.yaml"
    spec = yaml.safe_load(src.read_text())
    spec["strategies"] = {
        k: str((src.parent / v).resolve())
        for k, v in spec["strategies"].items()
        if k != "steroid_only"
    }
    path = folder / "psa_two_strategies.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    extra = ["--draws", str(draws), "--patients", str(patients)]
    return sweep_wall_seconds(path, folder / "psa", workers, extra)


def sweep_wall_seconds(path: Path, out: Path, workers: int, extra: list[str]) -> float:
    """Wall seconds of `simulate sweep PATH` in a fresh process."""
    cmd = [sys.executable, "-m", "simulator", "sweep", str(path), *extra]
    cmd += ["--workers", str(workers), "--out", str(out), "--quiet", "--fresh"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - t


CENTER = ROOT / "scenarios" / "center_capacity.yaml"


def center_run_seconds(reps: int, compile_events: bool) -> dict:
    """Wall seconds of one 3-year center (60 new patients a year, 2 chairs, first-line
    IVIG) through ``run``: median over ``reps`` replications, after one warm-up (which
    compiles the center's events with ``compile_events``, or loads them), and the same
    replications with the kernel's events on the Python path, interleaved."""
    from simulator.engines import center

    scn = load_scenario(CENTER)
    with _jit_env("1" if compile_events else None):
        run(scn, patients=1, seed=999, progress=False)  # warm: plan, caches
    keep = center._compiled
    out, python = [], []
    for r in range(reps):
        t = time.perf_counter()
        res = run(scn, patients=1, seed=1000 + r, progress=False)
        out.append((time.perf_counter() - t, res.summary.n))
        center._compiled = lambda *a: None  # the Python path
        try:
            t = time.perf_counter()
            run(scn, patients=1, seed=1000 + r, progress=False)
            python.append(time.perf_counter() - t)
        finally:
            center._compiled = keep
    return {
        "median_s": statistics.median(s for s, _ in out),
        "max_s": max(s for s, _ in out),
        "python_path_median_s": statistics.median(python),
        "patients_mean": statistics.mean(n for _, n in out),
        "replications": reps,
    }


def center_sweep_command(reps: int, chairs: list[int], workers: int, folder: Path) -> float:
    """Wall seconds of `simulate sweep` over the center's chairs (first-line IVIG,
    ``reps`` center replications per point), in a fresh process."""
    import yaml

    spec = {
        "name": "center_chairs",
        "base": str(CENTER),
        "patients": reps,
        "outcomes": ["center_wait_mean_days", "center_chair_utilisation"],
        "design": {"type": "grid", "parameters": {"center.chairs": chairs}},
    }
    path = folder / "center_chairs.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return sweep_wall_seconds(path, folder / "center_sweep", workers, [])


def sweep_point_overhead(points: int = 20) -> float:
    """Median seconds per point spent outside simulation: applying the point's overrides
    (with validation), fingerprinting and compiling the plan, and getting its compiled
    chunk loop (traced, or an earlier point's with the point's numbers), for PSA draws."""
    from simulator.engines import fused
    from simulator.kernel import handlers
    from simulator.kernel.params import make_params
    from simulator.kernel.plan import make_plan as compile_plan
    from simulator.kernel.xp import ARRAY
    from simulator.scenario import scenario_sha256
    from simulator.sweeps import plan_sweep, with_overrides

    plan = plan_sweep(
        ROOT / "scenarios" / "sweeps" / "psa_first_line_vs_rescue.yaml",
        draws=points + 1,
        patients=10,
    )
    arrays = []  # a chunk's arrays per strategy (the loop reads only their types)
    for scn_arm in plan.scenarios:
        plan_0 = compile_plan(scn_arm)
        prm, _ = make_params(scn_arm, plan_0, 1, np.arange(10, dtype=np.int64))
        arrays.append((handlers.init_state(ARRAY, plan_0, prm), prm))
        fused.for_plan(plan_0).chunk_loop(plan_0, *arrays[-1])
    times = []
    for i in range(1, points + 1):
        t = time.perf_counter()
        for j, scn_arm in enumerate(plan.scenarios):
            scn_i = with_overrides(
                scn_arm, {k: v for k, v in plan.points[i].items() if j in plan.applies[k]}
            )
            scenario_sha256(scn_i)
            plan_i = compile_plan(scn_i)
            fused.for_plan(plan_i).chunk_loop(plan_i, *arrays[j])
        times.append((time.perf_counter() - t) / len(plan.scenarios))
    return statistics.median(times)


def _threads(_):
    from threadpoolctl import threadpool_info

    return max((p["num_threads"] for p in threadpool_info()), default=1)


def calibration_evaluation(patients: int, reps: int = 3) -> float:
    """Median wall seconds of one evaluation of the shipped calibration (every study arm at
    ``patients``, 2 workers), each at a new point near the start (as a fit's are: new
    scenarios and plans; the same point again would reuse the last one's plans)."""
    from simulator.calibrate import evaluate, load_calibration
    from simulator.parallel import pool_session

    plan = load_calibration(ROOT / "calibration" / "default.yaml", patients=patients)
    rng = np.random.default_rng(1)
    times = []
    with pool_session(2):  # as `simulate calibrate` runs them: one pool for every evaluation
        evaluate(plan, plan.start, workers=2)  # the workers load the loops once
        for _ in range(reps):
            point = plan.start * np.exp(rng.normal(0.0, 0.02, plan.start.size))
            point = np.clip(point, plan.low, plan.high)
            t = time.perf_counter()
            evaluate(plan, point, workers=2)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def worker_threads() -> int:
    from simulator.parallel import completed_map

    return max(dict(completed_map(_threads, [(0, 0), (1, 1)], workers=2)).values())


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


SIZES = {
    "toy": {
        "des": 20,
        "naive": 5,
        "cohort": 500,
        "pairs": 300,
        "scale": [1_000],
        "workers": 2_000,
        "psa": (2, 50),
        "points": 3,
        "center_reps": 1,
        "center_sweep_reps": 1,
    },
    "quick": {
        "des": 300,
        "naive": 30,
        "cohort": 10_000,
        "pairs": 5_000,
        "scale": [1_000, 10_000, 100_000],
        "workers": 50_000,
        "psa": (20, 1000),
        "points": 20,
        "center_reps": 3,
        "center_sweep_reps": 20,
    },
    "full": {
        "des": 2000,
        "naive": 200,
        "cohort": 50_000,
        "pairs": 20_000,
        "scale": [1_000, 10_000, 100_000, 1_000_000],
        "workers": 200_000,
        "psa": (100, 1000),
        "points": 20,
        "center_reps": 5,
        "center_sweep_reps": 100,
    },
}


def main() -> None:
    import tempfile

    from simulator.comparison import compare
    from simulator.parallel import limit_native_threads

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--quick", action="store_true", help="same as --size quick")
    ap.add_argument("--huge", action="store_true", help="also 10^7 patients (long)")
    ap.add_argument("--json", type=Path, default=ROOT / "results" / "benchmark.json")
    args = ap.parse_args()
    size = "quick" if args.quick else args.size
    z = SIZES[size]
    limit_native_threads()  # as the simulator does while it runs tasks
    fig: dict = {
        "size": size,
        "load_average_before": load(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "compiled_loops": jit.available(),
    }
    scn = load_scenario(SCENARIO)
    rescue = load_scenario(ROOT / "scenarios" / "rescue.yaml")
    plan = make_plan(scn)
    print(
        f"machine: {sys.platform}, python {fig['python']}, load average "
        f"{fig['load_average_before']}; scenario first_line (horizon {scn.horizon_days} days);"
        f" size {size}; numba loops: "
        + ("once a process has lost 0.4 s to numpy" if fig["compiled_loops"] else "not used")
    )
    ev = events_per_patient(scn, plan)
    fig["events_per_patient"] = ev
    print(f"events per patient (mean): {ev:.1f}")

    # warm caches: every loop the rates below use is compiled here (or loaded), so that
    # they measure the compiled engines whatever numba's cache holds (right after a
    # change to the compiled code, rent-or-buy would otherwise switch a scenario's loop
    # on in the middle of the timed runs); not at toy size (the suite runs it; compiling
    # costs ~20 s a loop)
    with _jit_env("1" if size != "toy" else None):
        run(scn, patients=200, engine="simpy", workers=1, progress=False)
        run(scn, patients=2000, engine="cohort", workers=1, progress=False)
        compare([scn, rescue], patients=200, engine="cohort", progress=False)
    n_c, n_p, n_d = z["cohort"], z["pairs"], z["des"]
    rates = interleaved(
        {
            "cohort": lambda: run(
                scn, patients=n_c, seed=1, engine="cohort", progress=False, check_invariants=False
            ),
            "cohort_checked": lambda: run(
                scn, patients=n_c, seed=1, engine="cohort", progress=False
            ),
            "compare_pairs": lambda: compare(
                [scn, rescue],
                patients=n_p,
                seed=1,
                engine="cohort",
                progress=False,
                check_invariants=False,
            ),
            "simpy": lambda: run(
                scn, patients=n_d, seed=1, engine="simpy", progress=False, check_invariants=False
            ),
            "simpy_python": lambda: _python_path(
                run,
                scn,
                patients=n_d,
                seed=1,
                engine="simpy",
                progress=False,
                check_invariants=False,
            ),
            "floor": lambda: engine_floor(n_d, round(ev)),
        },
        {
            "cohort": n_c,
            "cohort_checked": n_c,
            "compare_pairs": n_p,
            "simpy": n_d,
            "simpy_python": n_d,
            "floor": n_d,
        },
    )
    naive_rate, naive_ratio = naive_daily(scn, plan, z["naive"])
    res = des.run_chunk(scn, plan, 1, np.arange(z["naive"]))
    d84 = list(plan.visit_days).index(84)
    exact_ratio = res.visit_cpk[:, d84] / res.visit_cpk[:, 0]
    fig["rates_cpu_per_s"] = {**rates, "naive_daily": naive_rate}
    print("\nCPU rates, 1 process (median of 3, interleaved)")
    print(f"  cohort engine, patients/s                  {rates['cohort']:10,.0f}")
    print(f"  cohort engine, invariants checked          {rates['cohort_checked']:10,.0f}")
    print(f"  compare first_line/rescue, pairs/s         {rates['compare_pairs']:10,.0f}")
    print(f"  SimPy engine, patients/s                   {rates['simpy']:10,.0f}")
    print(f"  SimPy engine, Python path (compiled=False) {rates['simpy_python']:10,.0f}")
    print(f"  bare-SimPy floor ({round(ev)} events), patients/s   {rates['floor']:10,.0f}")
    print(f"  naive daily-step SimPy (Euler 1 h)         {naive_rate:10,.1f}")
    diff = float(np.nanmax(np.abs(naive_ratio - exact_ratio)))
    print(f"  naive vs exact CPK ratio at day 84: max |difference| {diff:.4f}")

    overhead = sweep_point_overhead(z["points"])
    fig["sweep_point_overhead_s"] = overhead
    print(
        "\nsweep overhead per point (overrides, validation, plan, chunk loop):"
        f" {1000 * overhead:.1f} ms"
    )
    draws, pts = z["psa"]
    psa_reps = 1 if size == "toy" else 3
    with tempfile.TemporaryDirectory() as tmp:
        psa_runs = [psa_command(draws, pts, 2, Path(tmp)) for _ in range(psa_reps)]
    psa_s = statistics.median(psa_runs)
    fig["psa"] = {
        "draws": draws,
        "patients": pts,
        "strategies": 2,
        "workers": 2,
        "seconds": psa_s,
        "runs_s": psa_runs,
    }
    print(
        f"PSA {draws} draws x {pts:,} patients x 2 strategies, 2 workers, whole command: "
        f"{psa_s:.1f} s (median of {psa_reps}: {', '.join(f'{x:.1f}' for x in psa_runs)})"
    )
    cal_patients = 100 if size == "toy" else 1000
    cal_s = calibration_evaluation(cal_patients, reps=1 if size == "toy" else 3)
    fig["calibration_evaluation_s"] = {"patients": cal_patients, "seconds": cal_s}
    print(
        f"calibration: one evaluation of calibration/default.yaml ({cal_patients:,} patients"
        f" per arm, 2 workers): {cal_s:.2f} s; the shipped fit (13 parameters, up to 227"
        f" evaluations) about {227 * cal_s / 60:.1f} min"
    )
    center = center_run_seconds(z["center_reps"], size != "toy")
    fig["center_run"] = center
    print(
        f"infusion center: one 3-year center, 60 new patients/year (mean"
        f" {center['patients_mean']:.0f} patients), 2 chairs: median {center['median_s']:.2f} s"
        f" (max {center['max_s']:.2f} s over {center['replications']} replications);"
        f" kernel events on the Python path: median {center['python_path_median_s']:.2f} s"
    )
    c_reps = z["center_sweep_reps"]
    with tempfile.TemporaryDirectory() as tmp:
        c_sweep = center_sweep_command(c_reps, [2, 4], 2, Path(tmp))
    fig["center_sweep"] = {
        "replications": c_reps,
        "chairs": [2, 4],
        "workers": 2,
        "seconds": c_sweep,
    }
    print(
        f"center sweep over chairs (2, 4) x {c_reps} replications, 2 workers, whole command:"
        f" {c_sweep:.1f} s"
    )
    threads = worker_threads()
    fig["native_threads_per_worker"] = threads
    print(f"native (BLAS) threads in a worker process: {threads}")

    sizes = z["scale"] + ([10_000_000] if args.huge else [])
    print("\nscaling (cohort engine, summary output only, 1 worker, fresh process each)")
    print(f"  {'patients':>10} {'seconds':>9} {'patients/s':>11} {'peak RSS MB':>12}")
    scaling = {}
    for n in sizes:
        r = child(n, 1, "cohort")
        scaling[n] = r
        print(f"  {n:>10,} {r['seconds']:>9.1f} {n / r['seconds']:>11,.0f} {r['rss_mb']:>12.0f}")
    fig["scaling"] = {str(k): v for k, v in scaling.items()}
    n_w = z["workers"]
    # 1 and 2 workers in turn, 3 times (once at toy size): the median of the ratios of
    # each pair (one pair alone moved by +-0.15 between runs here)
    reps = 1 if size == "toy" else 3
    pairs = [(child(n_w, 1, "cohort"), child(n_w, 2, "cohort")) for _ in range(reps)]
    ratios = [o["seconds"] / t["seconds"] for o, t in pairs]
    speedup = statistics.median(ratios)
    one_s = statistics.median(o["seconds"] for o, _ in pairs)
    two_s = statistics.median(t["seconds"] for _, t in pairs)
    fig["workers"] = {"patients": n_w, "one_s": one_s, "two_s": two_s, "speedups": ratios}
    print(
        f"\nworkers ({n_w:,} patients, cohort, median of {reps} interleaved pairs): 1 worker "
        f"{one_s:.1f} s, 2 workers {two_s:.1f} s: speed-up {speedup:.2f}x"
        f" ({', '.join(f'{r:.2f}' for r in ratios)})"
    )
    for o, t in pairs:
        assert o["ratio"] == t["ratio"], "results must not depend on workers"

    big = max(scaling)
    full_psa = (draws, pts) == (100, 1000)
    targets = [
        ("cohort engine >= 100,000 patients/s", rates["cohort"], 100_000, ">="),
        ("compare >= 50,000 pairs/s", rates["compare_pairs"], 50_000, ">="),
        ("SimPy engine >= 0.5x bare-SimPy floor", rates["simpy"] / rates["floor"], 0.5, ">="),
        ("sweep overhead per point < 5 ms", 1000 * overhead, 5.0, "<"),
        ("2 workers >= 1.7x 1 worker", speedup, 1.7, ">="),
        ("native threads per worker == 1", threads, 1, "=="),
        (f"peak RSS at {big:,} patients < 1 GB (MB)", scaling[big]["rss_mb"], 1024, "<"),
    ]
    if full_psa:
        targets.append(("PSA 100 x 1,000 x 2 < 10 s (2 cores)", psa_s, 10.0, "<"))
    targets.append(("one 3-year center (60/year) < 2 s", center["median_s"], 2.0, "<"))
    if c_reps == 100:
        targets.append(("center sweep, 100 replications x chairs < 120 s", c_sweep, 120.0, "<"))
    if cal_patients == 1000:
        targets.append(
            ("shipped calibration (227 evaluations) < 15 min", 227 * cal_s / 60, 15.0, "<")
        )
    ops = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "==": lambda a, b: a == b}
    fig["targets"] = []
    print("\ntargets (figures from this run)")
    for label, value, goal, op in targets:
        met = ops[op](value, goal)
        fig["targets"].append(
            {"target": label, "value": value, "goal": goal, "op": op, "met": bool(met)}
        )
        print(f"  {label:<44} {value:12,.2f}  {'met' if met else 'NOT met'}")
    fig["load_average_after"] = load()
    print(f"load average after: {fig['load_average_after']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(fig, indent=2, sort_keys=True) + "\n")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
