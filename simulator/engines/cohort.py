"""The cohort engine: the same kernel, vectorized over all patients of a chunk.

Every patient keeps its own event sequence. At each step the engine asks the kernel for
every active patient's next event (``course.next_event`` on arrays), advances each
patient to its own event time in closed form, and runs each event kind on the patients
whose next event is of that kind, with the same kernel functions the SimPy engine calls
one patient at a time. Random numbers come from the same per-patient streams, so both
engines give the same per-patient results; ``tests/test_engines.py`` checks that on every
scenario. It cannot model patients competing for shared resources (infusion chairs):
those scenarios run on the SimPy engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernel import course
from ..kernel.population import Baseline
from ..kernel.xp import ARRAY
from ..records import ChunkResult, state_outcomes
from ..scenario.schema import Scenario

__all__ = ["run_chunk"]


class _ParamsView:
    """Rows ``idx`` of a Params, gathered only for the fields a handler reads."""

    def __init__(self, prm: course.Params, idx: np.ndarray) -> None:
        self._prm = prm
        self._idx = idx

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._prm, name)[self._idx]
        setattr(self, name, value)
        return value


def run_chunk(scn: Scenario, plan: course.Plan, seed: int, patients: np.ndarray,
              events: bool = False,
              params: tuple[course.Params, Baseline] | None = None) -> ChunkResult:
    """Simulate the given patient ids, all at once."""
    xp = ARRAY
    prm, base = params if params is not None else course.make_params(scn, plan, seed, patients)
    n = len(prm.patient)
    res = ChunkResult.empty(plan, prm, base, events)
    st = course.init_state(xp, plan, prm)
    active = np.arange(n)
    while active.size:
        sub = st.take(active)
        sub_prm = _ParamsView(prm, active)
        t, kind = course.next_event(xp, plan, sub_prm, sub)  # type: ignore[arg-type]
        course.advance(xp, plan, sub_prm, sub, t)  # type: ignore[arg-type]
        st.put(active, sub)
        for k in np.unique(kind):
            sel = np.flatnonzero(kind == k)
            idx = active[sel]
            if k == course.END:
                continue
            part = st.take(idx)
            visit_k = part.visit_k
            before = part.pred
            flags, a, b, c = course.handle(xp, plan, _ParamsView(prm, idx), part, int(k))  # type: ignore[arg-type]
            st.put(idx, part)
            if k == course.VISIT:
                res.visit_cpk[idx, visit_k] = a
                res.visit_myoglobin[idx, visit_k] = b
                res.visit_mmt8[idx, visit_k] = c
                res.visit_prednisone[idx, visit_k] = part.pred
                res.visit_flags[idx, visit_k] = flags
            if res.events is not None:
                res.events.extend_arrays(prm.patient[idx], t[sel], np.full(idx.size, k),
                                         np.asarray(flags), a, b, c, part.pred, before)
        active = active[kind != course.END]
    for name, value in state_outcomes(plan, st).items():
        res.outcomes[name][:] = value
    if res.events is not None:
        res.events.finish()
    return res
