"""The cohort engine: the same kernel, vectorized over all patients of a chunk.

Every patient keeps its own event sequence. At each step the engine asks the kernel for
every active patient's next event (``handlers.next_event`` on arrays), advances each
patient to its own event time in closed form, and runs each event kind on the patients
whose next event is of that kind, with the same kernel functions the SimPy engine calls
one patient at a time. Random numbers come from the same per-patient streams, so both
engines give the same per-patient results; ``tests/test_engines.py`` checks that on every
scenario. Once a process uses numba's loops (``simulator.jit``), a whole chunk runs
instead as one compiled loop over its patients, generated from a trace of the same kernel
functions (``engines/chunk_loop.py``), with the same bits. It cannot model patients
competing for shared resources (infusion chairs): those scenarios run on the SimPy engine.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from .. import jit
from ..invariants import undefined_time
from ..kernel import handlers
from ..kernel.events import Event
from ..kernel.handlers import VISIT_VALUES
from ..kernel.params import Params, make_params
from ..kernel.plan import Plan
from ..kernel.population import Baseline
from ..kernel.state import State
from ..kernel.xp import ARRAY, Rows
from ..records import ChunkResult, state_outcomes
from ..scenario.schema import Scenario
from . import fused

_END = int(Event.END)  # a plain int: numpy compares it without probing the enum class

__all__ = ["run_chunk"]


class _ParamsView:
    """Rows ``idx`` of a Params, gathered only for the fields a handler reads."""

    def __init__(self, prm: Params, idx: np.ndarray) -> None:
        self._prm = prm
        self._idx = idx

    def __getattr__(self, name: str) -> Any:
        full = getattr(self._prm, name)
        if not isinstance(full, np.ndarray):  # the seed
            return full
        # tables (patients x draws) are picked from in place, never copied whole
        value = Rows(full, self._idx) if full.ndim > 1 else full[self._idx]
        setattr(self, name, value)
        return value


class _StateView:
    """Rows ``idx`` of a State: gathers a field when a handler reads it and scatters back
    only what the handler changed (handlers touch a few of the state's ~45 fields). A
    gathered field becomes an instance attribute, so later reads are plain lookups."""

    def __init__(self, st: State, idx: np.ndarray) -> None:
        object.__setattr__(self, "_st", st)
        object.__setattr__(self, "_idx", idx)
        object.__setattr__(self, "_dirty", set())

    def __getattr__(self, name: str) -> Any:  # only for fields not read yet
        full = getattr(self._st, name)
        if isinstance(full, list):
            value: Any = [a[self._idx] for a in full]
            self._dirty.add(name)  # lists are updated in place by the handlers
        else:
            value = full[self._idx]
        object.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        self._dirty.add(name)

    def write_back(self) -> None:
        idx = self._idx
        values = self.__dict__
        for name in self._dirty:
            full = getattr(self._st, name)
            value = values[name]
            if isinstance(full, list):
                for a, b in zip(full, value, strict=True):
                    a[idx] = b
            else:
                full[idx] = value


# What numpy takes more than the compiled chunk loop (CPU, events logged, first_line and
# rescue, 2026-11-27): ~0.3 s a chunk (its ~135 steps of Python and numpy calls) plus
# ~0.11 ms a patient: 0.36 s at 250 patients, 0.46 s at 1,000, 0.75 s at 4,000, 1.4 s at
# 10,000. (Counting 0.1 ms a patient alone, as before, made a PSA worker run its first
# two 1,000-patient cohorts on numpy, ~0.9 s lost a worker.)
_NUMPY_LOSS_PER_CHUNK_S = 0.3
_NUMPY_LOSS_PER_PATIENT_S = 1.1e-4


def numpy_loss_s(n: int) -> float:
    """Seconds numpy takes more than the compiled chunk loop for a chunk of ``n``
    patients (the estimate the rent-or-buy rules of ``jit`` and ``chunk_loop`` add up)."""
    return _NUMPY_LOSS_PER_CHUNK_S + n * _NUMPY_LOSS_PER_PATIENT_S if n else 0.0


def run_chunk(
    scn: Scenario,
    plan: Plan,
    seed: int,
    patients: np.ndarray,
    events: bool = False,
    params: tuple[Params, Baseline] | None = None,
) -> ChunkResult:
    """Simulate the given patient ids, all at once."""
    xp = ARRAY
    prm, base = params if params is not None else make_params(scn, plan, seed, patients)
    n = len(prm.patient)
    res = ChunkResult.empty(plan, prm, base, events)
    st = handlers.init_state(xp, plan, prm)
    # Patients do not interact: with numba, the whole chunk is one compiled loop over
    # them (``chunk_loop``); numpy's loss against it decides when to load numba.
    loss = numpy_loss_s(n)
    loop = fused.for_plan(plan).chunk_loop(plan, st, prm) if jit.loops_for(loss) else None
    if loop is not None and loop.worth_it(loss) and loop.run(plan, st, prm, res):
        return finish_chunk(plan, st, res)
    # The working arrays: state and parameters of the patients still running (the whole
    # chunk until the first patient ends, then compacted copies) and their rows in the
    # chunk. Each step works on them in place, gathering and scattering nothing. A patient
    # who ends is written back to ``st`` at once and stays in the working arrays until a
    # quarter of them have ended: each later step finds it at its end again (END is the
    # last kind, and its time is the patient's own clock), and nothing it does there is
    # kept. Compacting only then keeps deaths scattered over many steps from copying the
    # whole chunk each time.
    work, wprm, rows = st, prm, np.arange(n)
    running = np.ones(n, dtype=bool)  # over the working rows
    while running.any():
        t, kind = handlers.next_event(xp, plan, wprm, work)
        if np.isnan(t).any():  # no time: stop here, never spin on it
            i = int(np.flatnonzero(np.isnan(t))[0])
            raise undefined_time(int(wprm.patient[i]), float(work.t[i]))
        handlers.advance(xp, plan, wprm, work, t)
        for k in np.flatnonzero(np.bincount(kind, minlength=len(Event))):  # kinds present
            if k == _END:
                continue
            sel = np.flatnonzero(kind == k)
            idx = rows[sel]
            visit_k = work.visit_k[sel]
            before = work.pred[sel]
            part = _StateView(work, sel)
            flags, values, grams = handlers.handle(
                xp, plan, cast(Params, _ParamsView(wprm, sel)), cast(State, part), int(k)
            )
            part.write_back()
            after = work.pred[sel]
            if values is not None:
                for name, value in zip(VISIT_VALUES, values, strict=True):
                    res.visits[name][idx, visit_k] = value
                res.visit_prednisone[idx, visit_k] = after
                res.visit_flags[idx, visit_k] = flags
            if res.events is not None:
                nan = np.full(idx.size, np.nan)
                cpk, myo, third = (
                    (values[0], values[1], values[2]) if values is not None else (nan, nan, grams)
                )
                res.events.extend_arrays(
                    prm.patient[idx],
                    t[sel],
                    np.full(idx.size, k),
                    np.asarray(flags),
                    cpk,
                    myo,
                    third,
                    after,
                    before,
                )
        ended = np.logical_and(kind == _END, running)
        if ended.any():
            if work is st:  # from now on st holds the ended patients as they ended
                work = st.take(rows)
            else:
                gone = np.flatnonzero(ended)
                st.put_rows(rows[gone], work, gone)
            running[ended] = False
            alive = np.flatnonzero(running)
            if alive.size and alive.size <= 0.75 * running.size:
                rows, running = rows[alive], running[alive]
                work, wprm = work.take(alive), wprm.take(alive)
    return finish_chunk(plan, st, res)


def finish_chunk(plan: Plan, st: State, res: ChunkResult) -> ChunkResult:
    """Write the outcomes of a chunk whose final state is in arrays (``st``) and put its
    event log in order (the cohort engine, and the SimPy engine's compiled path)."""
    for name, value in state_outcomes(plan, st).items():
        res.outcomes[name][:] = value
    if res.events is not None:
        res.events.finish()
    return res
