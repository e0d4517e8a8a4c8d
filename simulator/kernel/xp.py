"""Two namespaces with the same functions: one for a single patient, one for arrays.

Every kernel function takes ``xp`` as its first argument and uses only arithmetic
operators and the functions below, so one copy of the physics runs on plain floats
(the SimPy engine, one patient at a time, where numpy's per-call overhead would dominate)
and on numpy arrays (the cohort engine, whole cohorts at once).
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

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
    inf: float = math.inf
    vector: bool


def _np_scalar(fn: Any) -> Any:
    """A numpy ufunc on one float, returned as a float.

    numpy's float64 ``exp``, ``log`` and ``expm1`` use their own SIMD implementations on
    CPUs with AVX-512 (and libm elsewhere), which can differ from ``math.exp`` in the last
    bit. Both engines must compute the same bits, so the scalar namespace calls the same
    ufunc as the array namespace (one element at a time gives the same bits as a whole
    array, whatever the CPU).
    """

    def one(x: float) -> float:
        return float(fn(x))

    one.__name__ = fn.__name__
    return one


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


class _Scalar(Ops):
    exp = staticmethod(_np_scalar(np.exp))
    expm1 = staticmethod(_np_scalar(np.expm1))
    log = staticmethod(_np_scalar(np.log))
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
    vector = False


class _Array(Ops):
    exp = staticmethod(np.exp)
    expm1 = staticmethod(np.expm1)
    log = staticmethod(np.log)
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
    vector = True


SCALAR: Ops = _Scalar()
ARRAY: Ops = _Array()
