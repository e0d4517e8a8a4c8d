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
from ..kernel.xp import ARRAY, Rows
from ..records import ChunkResult, state_outcomes
from ..scenario.schema import Scenario

__all__ = ["run_chunk"]


class _ParamsView:
    """Rows ``idx`` of a Params, gathered only for the fields a handler reads."""

    def __init__(self, prm: course.Params, idx: np.ndarray) -> None:
        self._prm = prm
        self._idx = idx

    def __getattr__(self, name: str) -> Any:
        full = getattr(self._prm, name)
        # tables (patients x draws) are picked from in place, never copied whole
        value = Rows(full, self._idx) if full.ndim > 1 else full[self._idx]
        setattr(self, name, value)
        return value


class _StateView:
    """Rows ``idx`` of a State: gathers a field when a handler reads it and scatters back
    only what the handler changed (handlers touch a few of the state's ~45 fields)."""

    def __init__(self, st: course.State, idx: np.ndarray) -> None:
        object.__setattr__(self, "_st", st)
        object.__setattr__(self, "_idx", idx)
        object.__setattr__(self, "_cache", {})
        object.__setattr__(self, "_dirty", set())

    def __getattr__(self, name: str) -> Any:
        cache = self._cache
        if name in cache:
            return cache[name]
        full = getattr(self._st, name)
        if isinstance(full, list):
            value = [a[self._idx] for a in full]
            self._dirty.add(name)  # lists are updated in place by the handlers
        else:
            value = full[self._idx]
        cache[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        self._cache[name] = value
        self._dirty.add(name)

    def write_back(self) -> None:
        idx = self._idx
        for name in self._dirty:
            full = getattr(self._st, name)
            value = self._cache[name]
            if isinstance(full, list):
                for a, b in zip(full, value, strict=True):
                    a[idx] = b
            else:
                full[idx] = value


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
        everyone = active.size == n
        sub = st if everyone else st.take(active)
        sub_prm = prm if everyone else _ParamsView(prm, active)
        t, kind = course.next_event(xp, plan, sub_prm, sub)  # type: ignore[arg-type]
        course.advance(xp, plan, sub_prm, sub, t)  # type: ignore[arg-type]
        if not everyone:
            st.put(active, sub)
        for k in np.unique(kind):
            sel = np.flatnonzero(kind == k)
            idx = active[sel]
            if k == course.END:
                continue
            part = _StateView(st, idx)
            visit_k = part.visit_k
            before = part.pred
            flags, a, b, c = course.handle(xp, plan, _ParamsView(prm, idx), part, int(k))  # type: ignore[arg-type]
            part.write_back()
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
