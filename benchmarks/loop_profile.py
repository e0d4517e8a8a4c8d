"""Where the compiled chunk loop spends its time, by event kind and by part of an event.

    python benchmarks/loop_profile.py                          # first_line, 20,000 patients
    python benchmarks/loop_profile.py scenarios/rescue.yaml --patients 50000
    python benchmarks/loop_profile.py --size toy               # the test suite runs this

cProfile sees the cohort engine's compiled loop (``engines/chunk_loop.py``) as one call:
about 60% of a first_line run, with nothing inside it named. This script writes the
loop's generated source out again with a cycle counter (``llvm.readcyclecounter``, the
CPU's time-stamp counter) read at the seams of each event, compiles that copy (not
cached: about 10-20 s), runs the scenario with it, and prints the cycles each part of an
event costs:

  * ``schedule``: picking the next event (``handlers.next_event``'s order);
  * ``propagator lookup``: finding the matrix exponential of the step (and computing it
    when the propagator's table lacks it);
  * ``closed-form step``: ``kernel/step_generated.py:step_one`` and its writes;
  * ``clocks``: ``handlers.advance_clocks`` (cumulative doses, discounting, hazards);
  * one row per event kind: its handler (``kernel/handlers.py``), the visit values and
    the event log.

The counter is read 6 times an event (25 cycles a read back to back on this project's
2.6 GHz machines; it does not wait for the instructions before it to finish, so
out-of-order work blurs the seams), so the parts are approximate and the instrumented
loop is slower than the plain one (6-11% on first_line, rescue and steroid_only); both
loop times are printed, measured in the same process. The instrumented copy computes the
same bits: the script checks that the run's summary.json is the plain run's, byte for
byte, and stops with an error otherwise. Figures go to JSON with ``--json`` (default:
results/loop_profile.json).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import jit  # noqa: E402
from simulator.engines import chunk_loop  # noqa: E402
from simulator.kernel.events import Event  # noqa: E402
from simulator.parallel import limit_native_threads  # noqa: E402
from simulator.runner import run  # noqa: E402
from simulator.scenario import load_scenario  # noqa: E402

# the module the instrumented source imports the counter from
_ALIAS = "simulator_loop_profile_counter"
SIZES = {"toy": 300, "quick": 5_000, "full": 20_000}
# counter slots: 0-7 the event kinds (Event values), then the parts every event runs
_KIND_SLOTS = {int(k): k.name.lower() for k in Event}
_PARTS = {8: "schedule", 9: "propagator lookup", 10: "closed-form step", 11: "clocks"}
_SLOTS = 16
# CPUs whose cycle counter user code may read (on ARM, llvm.readcyclecounter reads a
# register the kernel usually keeps from user space: the process would die of SIGILL)
X86 = ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _rdtsc(typingctx):  # type: ignore[no-untyped-def]
    """The CPU's cycle counter (``llvm.readcyclecounter``; 0 where a CPU has none)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter", fnty=fnty)
        return builder.call(fn, [])

    return types.int64(), codegen


@njit
def _now() -> int:  # type: ignore[no-untyped-def]
    return _rdtsc()


class LoopChanged(RuntimeError):
    """The generated loop no longer has a seam this script reads the counter at."""


def instrument(text: str) -> str:
    """The chunk loop's source ``text`` with the counter read at the seams of an event:
    ``fused_profiled(CYC, CNT, ...)`` adds the cycles of each part to ``CYC`` and counts
    it in ``CNT`` (slots as ``_KIND_SLOTS`` and ``_PARTS``); every other statement is
    unchanged, so it computes the same bits."""
    lines = text.split("\n")
    out: list[str] = []
    seen: set[str] = set()
    last_step_write = max(
        (i for i, ln in enumerate(lines) if ln.startswith("            s_") and "= res[" in ln),
        default=-1,
    )
    ind = " " * 12

    def mark(name: str, slot: int, prev: str, new: str) -> None:
        out.append(f"{ind}{new} = _rdtsc()")
        out.append(f"{ind}CYC[{slot}] += {new} - {prev}")
        out.append(f"{ind}CNT[{slot}] += 1")
        seen.add(name)

    for i, ln in enumerate(lines):
        if ln.startswith("def fused("):
            ln = ln.replace("def fused(", "def fused_profiled(CYC, CNT, ", 1)
            seen.add("def")
        elif ln.startswith("@numba.njit(") and "cache=True" in ln:
            ln = ln.replace("cache=True", "cache=False")
        elif ln == f"{ind}t = best" and "schedule" not in seen:
            mark("schedule", 8, "_c0", "_c1")
        elif ln.startswith(f"{ind}res = _step_one(") and "lookup" not in seen:
            mark("lookup", 9, "_c1", "_c2")
        elif ln == f"{ind}if kind == 7:" and "clocks" not in seen:
            mark("clocks", 11, "_c3", "_c4")
        elif ln == "    return nl, todo.shape[0], nev":
            out.append(f"{ind}_c5 = _rdtsc()")
            out.append(f"{ind}CYC[kind] += _c5 - _c4")
            out.append(f"{ind}CNT[kind] += 1")
            seen.add("handler")
        out.append(ln)
        if ln == "        while True:":
            out.append(f"{ind}_c0 = _rdtsc()")
            seen.add("while")
        if i == last_step_write:
            mark("step", 10, "_c2", "_c3")
    missing = {"def", "while", "schedule", "lookup", "step", "clocks", "handler"} - seen
    if missing:
        raise LoopChanged(
            "the generated chunk loop has changed: no seam for "
            + ", ".join(sorted(missing))
            + " (update benchmarks/loop_profile.py's instrument())"
        )
    src = "\n".join(out)
    return src.replace("import numba\n", f"import numba\nfrom {_ALIAS} import _rdtsc\n", 1)


class Profiler:
    """Replaces ``chunk_loop._compile`` (for loops made after it is installed): each
    loop runs plain or instrumented (``self.instrumented``), and every call's CPU time
    is added to ``self.loop_cpu_ns`` either way."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cyc = np.zeros(_SLOTS, dtype=np.int64)
        self.cnt = np.zeros(_SLOTS, dtype=np.int64)
        self.instrumented = False
        self.loop_cpu_ns = 0
        self.loops = 0
        self._original = chunk_loop._compile

    def install(self) -> None:
        sys.modules[_ALIAS] = sys.modules[__name__]
        chunk_loop._compile = self._compile

    def uninstall(self) -> None:
        chunk_loop._compile = self._original

    def reset(self) -> None:
        self.cyc[:] = 0
        self.cnt[:] = 0
        self.loop_cpu_ns = 0

    def _compile(self, text: str):  # type: ignore[no-untyped-def]
        plain = self._original(text)
        self.loops += 1
        path = self.folder / f"profiled_{self.loops}.py"
        path.write_text(instrument(text), encoding="utf-8")
        spec = importlib.util.spec_from_file_location(f"profiled_{self.loops}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        profiled = module.fused_profiled

        def fn(*args):  # type: ignore[no-untyped-def]
            t = time.thread_time_ns()
            try:
                if self.instrumented:
                    return profiled(self.cyc, self.cnt, *args)
                return plain(*args)
            finally:
                self.loop_cpu_ns += time.thread_time_ns() - t

        return fn


def counter_hz(seconds: float = 0.2) -> float:
    """Cycle counter ticks per second (measured against the wall clock)."""
    _now()
    c0, t0 = _now(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass
    return (_now() - c0) / (time.perf_counter() - t0)


def profile(scenario: Path, patients: int, seed: int) -> dict:
    """Run ``scenario`` plain, then instrumented, on the same patients (cohort engine,
    one worker, summary only, invariants off as in the benchmark's engine rates)."""
    scn = load_scenario(scenario)
    folder = Path(tempfile.mkdtemp(prefix="simulator-loop-profile-"))
    prof = Profiler(folder)
    prof.install()
    try:
        kw = dict(engine="cohort", workers=1, progress=False, check_invariants=False)
        warm = min(patients, 2000)
        for instrumented in (False, True):  # compile both copies before timing
            prof.instrumented = instrumented
            run(scn, patients=warm, seed=seed, **kw)
        if prof.loops == 0:
            raise RuntimeError("the cohort engine ran no compiled chunk loop (numba missing?)")
        figures: dict = {}
        summaries = {}
        for instrumented in (False, True):
            prof.instrumented = instrumented
            prof.reset()
            t = time.process_time()
            res = run(scn, patients=patients, seed=seed, **kw)
            cpu = time.process_time() - t
            summaries[instrumented] = json.dumps(res.summary_json(), sort_keys=True)
            figures["instrumented" if instrumented else "plain"] = {
                "run_cpu_us_per_patient": 1e6 * cpu / patients,
                "loop_cpu_us_per_patient": prof.loop_cpu_ns / 1e3 / patients,
            }
        if summaries[True] != summaries[False]:
            raise RuntimeError("the instrumented loop gave another summary.json than the plain one")
    finally:
        prof.uninstall()
        shutil.rmtree(folder, ignore_errors=True)
    hz = counter_hz()
    total = int(prof.cyc.sum())
    rows = []
    for slot, name in [*_PARTS.items(), *_KIND_SLOTS.items()]:
        n, c = int(prof.cnt[slot]), int(prof.cyc[slot])
        if n == 0:
            continue
        rows.append(
            {
                "part": name if slot in _PARTS else f"handler: {name}",
                "per_patient": n / patients,
                "cycles_each": c / n,
                "cycles_per_patient": c / patients,
                "share": c / total if total else 0.0,
            }
        )
    return {
        "scenario": str(scenario),
        "patients": patients,
        "seed": seed,
        "counter_hz": hz,
        "cycles_per_patient": total / patients,
        "events_per_patient": int(prof.cnt[11]) / patients,
        "rows": rows,
        **figures,
        "same_summary": True,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "scenario", nargs="?", type=Path, default=ROOT / "scenarios" / "first_line.yaml"
    )
    ap.add_argument("--patients", type=int, default=None)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=ROOT / "results" / "loop_profile.json")
    args = ap.parse_args()
    if not jit.available():
        sys.exit("numba is not installed: there is no compiled loop to profile")
    if platform.machine().lower() not in X86:
        sys.exit(f"this profile reads an x86 CPU's time-stamp counter, not {platform.machine()}'s")
    os.environ["SIMULATOR_JIT"] = "1"  # the compiled loop from the first chunk
    limit_native_threads()
    n = args.patients or SIZES[args.size]
    load = os.getloadavg()
    fig = profile(args.scenario, n, args.seed)
    fig["load_average"] = [load, os.getloadavg()]
    ghz = fig["counter_hz"] / 1e9
    print(
        f"{args.scenario.name}: {n:,} patients, seed {args.seed}, cohort engine, 1 worker; "
        f"load average {load[0]:.2f} -> {os.getloadavg()[0]:.2f}; counter {ghz:.2f} GHz"
    )
    print(f"events per patient (with the step to the end): {fig['events_per_patient']:.1f}\n")
    head = ("part of an event", "per patient", "cycles each", "cycles/patient", "share")
    print(f"{head[0]:28s}{head[1]:>12s}{head[2]:>13s}{head[3]:>16s}{head[4]:>8s}")
    for r in fig["rows"]:
        print(
            f"{r['part']:28s}{r['per_patient']:12.2f}{r['cycles_each']:13,.0f}"
            f"{r['cycles_per_patient']:16,.0f}{100 * r['share']:7.1f}%"
        )
    print(f"{'all':28s}{'':12s}{'':13s}{fig['cycles_per_patient']:16,.0f}{100:7.1f}%")
    p, q = fig["plain"], fig["instrumented"]
    print(
        f"\nCPU us per patient      whole run   compiled loop\n"
        f"  plain loop          {p['run_cpu_us_per_patient']:10.1f}"
        f"  {p['loop_cpu_us_per_patient']:14.1f}\n"
        f"  instrumented loop   {q['run_cpu_us_per_patient']:10.1f}"
        f"  {q['loop_cpu_us_per_patient']:14.1f}\n"
        f"counted cycles per patient at {ghz:.2f} GHz: "
        f"{fig['cycles_per_patient'] / fig['counter_hz'] * 1e6:.1f} us; "
        "summary.json of the two runs: identical"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(fig, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
