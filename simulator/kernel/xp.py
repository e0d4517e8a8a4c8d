"""Two namespaces with the same functions: one for a single patient, one for arrays.

Every kernel function takes ``xp`` as its first argument and uses only arithmetic
operators and the functions below, so one copy of the physics runs on plain floats
(the SimPy engine, one patient at a time, where numpy's per-call overhead would dominate)
and on numpy arrays (the cohort engine, whole cohorts at once). ``exp``, ``expm1`` and
``log`` are ``simulator.fmath``'s, which give the same bits for a float and for an array
and on every CPU (numpy's and the C library's do not).
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

from .. import fmath, jit, streams

__all__ = ["ARRAY", "SCALAR", "Ops", "Rows"]


class Ops:
    """The functions the kernel may call, besides +, -, *, / and comparisons."""

    exp: Any
    expm1: Any
    log: Any
    sqrt: Any
    minimum: Any
    maximum: Any
    where: Any
    logical_and: Any
    logical_or: Any
    logical_not: Any
    floor: Any
    pick: Any
    column: Any
    take: Any
    take2: Any
    ppf: Any
    stream: Any
    thin: Any
    inf: float = math.inf
    vector: bool
    traced: bool = False  # kernel.trace's namespace: values are symbols, not numbers


def _where(cond: bool, a: Any, b: Any) -> Any:
    return a if cond else b


def _and(a: bool, b: bool) -> bool:
    return bool(a and b)


def _or(a: bool, b: bool) -> bool:
    return bool(a or b)


def _not(a: bool) -> bool:
    return not a


def _pick_scalar(row: Any, k: int) -> Any:
    return row[k]


def _column_scalar(row: Any, j: int) -> Any:
    return row[j]


class Rows:
    """Rows ``idx`` of a per-patient table, not copied until an entry is picked."""

    __slots__ = ("idx", "table")

    def __init__(self, table: np.ndarray, idx: np.ndarray) -> None:
        self.table = table
        self.idx = idx


def _column_array(table: Any, j: int) -> Any:
    """Per-type tables are (patients, types, ...): type j for every patient."""
    if isinstance(table, Rows):
        if table.table.ndim == 2:
            return table.table[table.idx, j]
        return Rows(table.table[:, j], table.idx)
    return table[:, j]


def _pick_array(table: Any, k: np.ndarray) -> np.ndarray:
    """Entry k[i] of row i: each patient's own draw number k."""
    if isinstance(table, Rows):
        return cast(np.ndarray, table.table[table.idx, k])
    return cast(np.ndarray, table[np.arange(table.shape[0]), k])


def _take_scalar(values: Any, idx: Any) -> Any:
    return values[int(idx)]


def _take_array(values: Any, idx: Any) -> np.ndarray:
    """Entry idx[i] of a constant list (as float64) for each patient."""
    return cast(np.ndarray, np.asarray(values, dtype=np.float64)[np.asarray(idx, dtype=np.int64)])


def _take2_scalar(table: np.ndarray, i: Any, j: Any) -> float:
    return float(table[int(i), int(j)])


def _take2_array(table: np.ndarray, i: Any, j: Any) -> np.ndarray:
    """Entry (i[k], j[k]) of a constant 2-d table for each patient (indices truncated to
    integers)."""
    return table[np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)]


def _ppf_scalar(dist: Any, u: float) -> float:
    from .population import ppf

    return float(ppf(dist, np.array([u]))[0])


def _ppf_array(dist: Any, u: np.ndarray) -> np.ndarray:
    from .population import ppf

    return ppf(dist, u)


def _stream_scalar(kind: str, seed: int, patient: Any, purpose: str, index: Any) -> float:
    """Draw ``index`` of a patient's stream: ``kind`` "uniform" or "exponential"."""
    fn = streams.uniform_one if kind == "uniform" else streams.exponential_one
    return fn(seed, int(patient), purpose, int(index))


def _stream_array(kind: str, seed: int, patient: Any, purpose: str, index: Any) -> np.ndarray:
    fn = streams.uniform if kind == "uniform" else streams.exponential
    return fn(seed, patient, purpose, index)


# A thinned Poisson process (``handlers._next_flare_candidate``): from candidate ``k`` on,
# each candidate j comes ``gap_j / rate`` after the one before (``gap`` Exp(1) draws of
# stream ``gap_purpose``) on the day ``max(floor(time_j) + 1, day_(j-1) + 1)``; candidates
# whose draw of stream ``accept_purpose`` has ``u_j x rate >= bound`` are passed over
# (they would be rejected whatever the state, the hazard being at most ``bound``). Returns
# (j, time_j, day_j) of the first candidate kept, or of the first after ``last_day`` (the
# horizon: it is never run) or at time >= 1e9. The days grow by at least one a candidate,
# so the loop ends within ``last_day`` candidates.
THIN_HORIZON = 1e9


def _thin_scalar(
    seed: int,
    patient: Any,
    gap_purpose: str,
    accept_purpose: str,
    k: Any,
    time: Any,
    day: Any,
    rate: float,
    bound: Any,
    last_day: float,
) -> tuple[int, float, float]:
    k, patient = int(k), int(patient)
    while True:
        time = time + streams.exponential_one(seed, patient, gap_purpose, k) / rate
        due = min(time, THIN_HORIZON)
        day = max(math.floor(due) + 1.0, day + 1.0)
        if streams.uniform_one(seed, patient, accept_purpose, k) * rate < bound:
            return k, time, day
        if day > last_day or due >= THIN_HORIZON:
            return k, time, day
        k += 1


def _thin_array(
    seed: int,
    patient: Any,
    gap_purpose: str,
    accept_purpose: str,
    k: Any,
    time: Any,
    day: Any,
    rate: float,
    bound: Any,
    last_day: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_thin_scalar`` for every patient, ``_THIN_BLOCK`` candidates at a time: the
    times by ``np.add.accumulate`` (left to right, the scalar loop's additions), the
    days as ``day_j = j + max(day + 1, max_(i <= j) (floor(due_i) + 1 - i))`` (the
    recursion ``day_j = max(floor(due_j) + 1, day_(j-1) + 1)`` unrolled; whole numbers,
    so exact)."""
    patient = np.asarray(patient)
    n = patient.shape[0]
    k = np.array(np.broadcast_to(k, n), dtype=np.int64)
    time = np.array(np.broadcast_to(time, n), dtype=np.float64)
    day = np.array(np.broadcast_to(day, n), dtype=np.float64)
    bound = np.broadcast_to(bound, n)
    loops = jit.loops(n * _THIN_BLOCK, calls=12)
    if loops is not None and patient.dtype == np.int64:  # the same bits, one pass
        loops.thin_into(
            np.uint64(streams.stream_key(int(seed), gap_purpose)),
            np.uint64(streams.stream_key(int(seed), accept_purpose)),
            np.require(patient, np.int64, ["C", "W"]),
            k,
            time,
            day,
            float(rate),
            np.require(bound, np.float64, ["C", "W"]),
            float(last_day),
        )
        return k, time, day
    steps = np.arange(_THIN_BLOCK)
    todo = np.arange(n)
    while todo.size:
        ids, idx = patient[todo, None], k[todo, None] + steps
        parts = np.empty((todo.size, _THIN_BLOCK + 1))
        parts[:, 0] = time[todo]
        parts[:, 1:] = streams.exponential(seed, ids, gap_purpose, idx) / rate
        t = np.add.accumulate(parts, axis=1)[:, 1:]
        due = np.minimum(t, THIN_HORIZON)
        lead = np.maximum.accumulate(np.floor(due) + 1.0 - steps, axis=1)
        d = np.maximum(lead, (day[todo] + 1.0)[:, None]) + steps
        kept = streams.uniform(seed, ids, accept_purpose, idx) * rate < bound[todo, None]
        stop = kept | (d > last_day) | (due >= THIN_HORIZON)
        first = np.where(stop.any(axis=1), stop.argmax(axis=1), _THIN_BLOCK - 1)
        rows = np.arange(todo.size)
        time[todo], day[todo] = t[rows, first], d[rows, first]
        k[todo] += first
        going = ~stop[rows, first]
        todo = todo[going]
        k[todo] += 1
    return k, time, day


_THIN_BLOCK = 32


class _Scalar(Ops):
    exp = staticmethod(fmath.exp)
    expm1 = staticmethod(fmath.expm1)
    log = staticmethod(fmath.log)
    sqrt = staticmethod(math.sqrt)  # correctly rounded everywhere (IEEE 754)
    minimum = staticmethod(min)
    maximum = staticmethod(max)
    where = staticmethod(_where)
    logical_and = staticmethod(_and)
    logical_or = staticmethod(_or)
    logical_not = staticmethod(_not)
    floor = staticmethod(math.floor)
    pick = staticmethod(_pick_scalar)
    column = staticmethod(_column_scalar)
    take = staticmethod(_take_scalar)
    take2 = staticmethod(_take2_scalar)
    ppf = staticmethod(_ppf_scalar)
    stream = staticmethod(_stream_scalar)
    thin = staticmethod(_thin_scalar)
    vector = False


class _Array(Ops):
    exp = staticmethod(fmath.exp_array)
    expm1 = staticmethod(fmath.expm1_array)
    log = staticmethod(fmath.log_array)
    sqrt = staticmethod(np.sqrt)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    where = staticmethod(np.where)
    logical_and = staticmethod(np.logical_and)
    logical_or = staticmethod(np.logical_or)
    logical_not = staticmethod(np.logical_not)
    floor = staticmethod(np.floor)
    pick = staticmethod(_pick_array)
    column = staticmethod(_column_array)
    take = staticmethod(_take_array)
    take2 = staticmethod(_take2_array)
    ppf = staticmethod(_ppf_array)
    stream = staticmethod(_stream_array)
    thin = staticmethod(_thin_array)
    vector = True


SCALAR: Ops = _Scalar()
ARRAY: Ops = _Array()
