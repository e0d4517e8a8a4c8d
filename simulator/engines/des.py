"""The SimPy engine: one process per patient, the reference implementation.

Each patient is a SimPy process that asks the kernel for its next event
(``handlers.next_event``), waits until then, moves the state in closed form
(``handlers.advance``) and lets the kernel handle the event (``handlers.handle``). SimPy owns
time and the interleaving of patients; the kernel owns everything else, so the cohort
engine, which calls the same functions on arrays, gives the same per-patient results.
Same-time events of one patient run in the kernel's fixed order (``kernel.events``);
across patients SimPy runs them in (time, insertion) order, which cannot matter here
because patients share nothing.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from ..kernel import handlers
from ..kernel.events import Event
from ..kernel.handlers import VISIT_VALUES
from ..kernel.params import Params, make_params
from ..kernel.plan import Plan
from ..kernel.population import Baseline
from ..kernel.xp import SCALAR
from ..records import ChunkResult, EventLog, state_outcomes
from ..scenario.schema import Scenario

__all__ = ["run_chunk"]


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
    rows = [res.visits[name][i] for name in VISIT_VALUES]
    vpred, vflags = res.visit_prednisone[i], res.visit_flags[i]
    pid = prm.patient
    while True:
        t, kind = handlers.next_event(xp, plan, prm, st)
        if t > env.now:
            yield env.timeout(t - env.now)
        handlers.advance(xp, plan, prm, st, t)
        if kind == Event.END:
            break
        k = st.visit_k
        before = st.pred
        flags, values, grams = handlers.handle(xp, plan, prm, st, kind)
        if values is not None:
            for row, value in zip(rows, values, strict=True):
                row[k] = value
            vpred[k], vflags[k] = st.pred, flags
        if log is not None:
            cpk, myo, mmt8 = (
                (values[0], values[1], values[2])
                if values is not None
                else (math.nan, math.nan, math.nan)
            )
            log.append(
                pid,
                t,
                kind,
                flags,
                cpk,
                myo,
                mmt8 if values is not None else grams,
                st.pred,
                before,
            )
    for name, value in state_outcomes(plan, st).items():
        res.outcomes[name][i] = value


def run_chunk(
    scn: Scenario,
    plan: Plan,
    seed: int,
    patients: np.ndarray,
    events: bool = False,
    params: tuple[Params, Baseline] | None = None,
) -> ChunkResult:
    """Simulate the given patient ids; one SimPy environment for the chunk."""
    prm, base = params if params is not None else make_params(scn, plan, seed, patients)
    n = len(prm.patient)
    res = ChunkResult.empty(plan, prm, base, events)
    env = simpy.Environment()
    for i in range(n):
        env.process(_patient(env, plan, prm.row(i), i, res, res.events))
    env.run()
    if res.events is not None:
        res.events.finish()
    return res
