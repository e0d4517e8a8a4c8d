"""The SimPy engine: one process per patient, the reference implementation.

Each patient is a SimPy process that asks the kernel for its next event
(``course.next_event``), waits until then, moves the state in closed form
(``course.advance``) and lets the kernel handle the event (``course.handle``). SimPy owns
time and the interleaving of patients; the kernel owns everything else, so the cohort
engine, which calls the same functions on arrays, gives the same per-patient results.
Same-time events of one patient run in the kernel's fixed order (see ``kernel.course``);
across patients SimPy runs them in (time, insertion) order, which cannot matter here
because patients share nothing.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from ..kernel import course
from ..kernel.population import Baseline
from ..kernel.xp import SCALAR
from ..records import ChunkResult, EventLog, state_outcomes
from ..scenario.schema import Scenario

__all__ = ["run_chunk"]


def _patient(
    env: simpy.Environment,
    plan: course.Plan,
    prm: course.Params,
    i: int,
    res: ChunkResult,
    log: EventLog | None,
) -> Generator[simpy.Event, Any, None]:
    xp = SCALAR
    st = course.init_state(xp, plan, prm)
    vcpk, vmyo, vmmt, vpred, vflags = (res.visit_cpk[i], res.visit_myoglobin[i],
                                       res.visit_mmt8[i], res.visit_prednisone[i],
                                       res.visit_flags[i])
    pid = prm.patient
    while True:
        t, kind = course.next_event(xp, plan, prm, st)
        if t > env.now:
            yield env.timeout(t - env.now)
        course.advance(xp, plan, prm, st, t)
        if kind == course.END:
            break
        k = st.visit_k
        before = st.pred
        flags, a, b, c = course.handle(xp, plan, prm, st, kind)
        if kind == course.VISIT:
            vcpk[k], vmyo[k], vmmt[k], vpred[k], vflags[k] = a, b, c, st.pred, flags
        if log is not None:
            log.append(pid, t, kind, flags, a, b, c, st.pred, before)
    for name, value in state_outcomes(plan, st).items():
        res.outcomes[name][i] = value


def run_chunk(scn: Scenario, plan: course.Plan, seed: int, patients: np.ndarray,
              events: bool = False,
              params: tuple[course.Params, Baseline] | None = None) -> ChunkResult:
    """Simulate the given patient ids; one SimPy environment for the chunk."""
    prm, base = params if params is not None else course.make_params(scn, plan, seed, patients)
    n = len(prm.patient)
    res = ChunkResult.empty(plan, prm, base, events)
    env = simpy.Environment()
    for i in range(n):
        env.process(_patient(env, plan, prm.row(i), i, res, res.events))
    env.run()
    if res.events is not None:
        res.events.finish()
    return res
