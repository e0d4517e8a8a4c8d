"""The SimPy engine: one process per patient, the reference implementation.

Each patient is a SimPy process that asks the kernel for its next event
(``handlers.next_event``), waits until then, moves the state in closed form
(``handlers.advance``) and lets the kernel handle the event (``handlers.handle``). SimPy owns
time and the interleaving of patients; the kernel owns everything else, so the cohort
engine, which calls the same functions on arrays, gives the same per-patient results.
Same-time events of one patient run in the kernel's fixed order (``kernel.events``);
across patients SimPy runs them in (time, insertion) order, which cannot matter here
because patients share nothing. For the same reason a chunk's patients run in
environments of ``ENV_PATIENTS``, one after the other (see there).

With numba, a long run takes the compiled path (``des_loop``): the same process per
patient, each event run by one compiled function built from the cohort engine's traced
statements, with the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import simpy

from .. import jit
from ..kernel import handlers
from ..kernel.events import Event
from ..kernel.handlers import VISIT_VALUES
from ..kernel.params import Params, make_params
from ..kernel.plan import Plan
from ..kernel.population import Baseline
from ..kernel.state import State
from ..kernel.xp import ARRAY, SCALAR
from ..records import ChunkResult, EventLog, state_outcomes
from ..scenario.schema import Scenario
from . import cohort, des_loop, fused

__all__ = ["ENV_PATIENTS", "environments", "record", "run_chunk", "run_processes"]

#: Patients per SimPy environment. A chunk's patients (``runner.DEFAULT_CHUNK``, the unit
#: of its parameters, arrays and summary) share nothing, so they run in environments of this
#: many, one after the other, with the same results (``tests/test_engines.py``). With
#: fewer processes alive at once, an event finds more of its patient's state still in
#: the CPU's caches: first_line, 4,000 patients, compiled path, medians of 6 interleaved
#: runs: 4,563 patients/s with one environment per 500-patient chunk, 5,561 with
#: environments of 50 (bare SimPy, ``benchmarks/run.py``'s floor: 11,236 and 12,671, so
#: the benchmark's floor uses the same size).
ENV_PATIENTS = 50


def record(
    res: ChunkResult,
    log: EventLog | None,
    i: int,
    pid: int,
    st: State,
    kind: int,
    flags: Any,
    values: tuple[Any, ...] | None,
    grams: Any,
    before: float,
) -> None:
    """Store what one event of patient ``i`` measured (a visit's values) and log it."""
    if values is not None:
        k = st.visit_k - 1  # the visit has moved the counter on
        for name, value in zip(VISIT_VALUES, values, strict=True):
            res.visits[name][i, k] = value
        res.visit_prednisone[i, k], res.visit_flags[i, k] = st.pred, flags
    if log is not None:
        cpk, myo, third = (
            (values[0], values[1], values[2]) if values is not None else (math.nan, math.nan, grams)
        )
        log.append(pid, st.t, kind, flags, cpk, myo, third, st.pred, before)


def _patient(
    env: simpy.Environment,
    plan: Plan,
    prm: Params,
    i: int,
    res: ChunkResult,
    log: EventLog | None,
) -> Generator[simpy.Event, Any, None]:
    xp = SCALAR
    st = handlers.init_state(xp, plan, prm)
    while True:
        t, kind = handlers.next_event(xp, plan, prm, st)
        if t > env.now:
            yield env.timeout(t - env.now)
        handlers.advance(xp, plan, prm, st, t)
        if kind == Event.END:
            break
        before = st.pred
        flags, values, grams = handlers.handle(xp, plan, prm, st, kind)
        record(res, log, i, prm.patient, st, kind, flags, values, grams, before)
    for name, value in state_outcomes(plan, st).items():
        res.outcomes[name][i] = value


def environments(n: int, size: int = ENV_PATIENTS) -> Iterator[tuple[simpy.Environment, range]]:
    """A fresh SimPy environment for each ``size`` rows of ``0..n-1``, and those rows."""
    for start in range(0, n, size):
        yield simpy.Environment(), range(start, min(n, start + size))


def run_processes(
    n: int, process: Callable[[simpy.Environment, int], Generator[Any, Any, None]]
) -> None:
    """Run the process ``process(env, r)`` of every row ``r`` of ``0..n-1`` to its end,
    in the environments of :func:`environments`, one after the other."""
    for env, rows in environments(n):
        for r in rows:
            env.process(process(env, r))
        env.run()


def run_chunk(
    scn: Scenario,
    plan: Plan,
    seed: int,
    patients: np.ndarray,
    events: bool = False,
    params: tuple[Params, Baseline] | None = None,
    compiled: bool = True,
) -> ChunkResult:
    """Simulate the given patient ids, in SimPy environments of ``ENV_PATIENTS``. With
    ``compiled`` (the default) the events run compiled when that pays (``des_loop``);
    ``compiled=False`` keeps the Python path, the reference the tests compare it with."""
    prm, base = params if params is not None else make_params(scn, plan, seed, patients)
    n = len(prm.patient)
    res = ChunkResult.empty(plan, prm, base, events)
    if compiled and _run_compiled(plan, prm, res):
        return res
    run_processes(n, lambda env, i: _patient(env, plan, prm.row(i), i, res, res.events))
    if res.events is not None:
        res.events.finish()
    return res


# what the Python path costs a patient more than the compiled one (first_line: ~3.7 ms
# against ~0.35 ms, SimPy's own work included in both)
_PYTHON_LOSS_PER_PATIENT_S = 3e-3


def compiled_events(
    plan: Plan, prm: Params, res: ChunkResult, loss_s: float, center: bool = False
) -> tuple[des_loop.Stepper, State] | None:
    """The chunk's compiled event functions (``des_loop``; ``center``: an infusion
    center's) and the state arrays they run on, made by ``init_state``; None when the
    Python path runs (numba not worth loading or compiling yet for work it does
    ``loss_s`` slower, or failed)."""
    if not len(prm.patient) or jit.loops_for(loss_s) is None:
        return None
    st = handlers.init_state(ARRAY, plan, prm)
    loop = fused.for_plan(plan).chunk_loop(plan, st, prm)
    if loop is None:
        return None
    s = des_loop.stepper(loop, plan, st, prm, res, loss_s, center)
    return None if s is None else (s, st)


def _run_compiled(plan: Plan, prm: Params, res: ChunkResult) -> bool:
    """Run the chunk's patients as SimPy processes whose events run compiled
    (``des_loop``); False (nothing written) when that path is not taken."""
    n = len(prm.patient)
    got = compiled_events(plan, prm, res, n * _PYTHON_LOSS_PER_PATIENT_S)
    if got is None:
        return False
    stepper, st = got
    run_processes(n, lambda env, r: des_loop.patient(env, stepper, r))
    stepper.finish()
    cohort.finish_chunk(plan, st, res)
    return True
