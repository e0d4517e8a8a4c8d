"""Compiled loops over ``simulator.fmath``'s float functions (numba, when installed).

numba compiles the very functions that ``fmath`` runs on Python floats: the same IEEE
operations in the same order, with no fused multiply-adds (numba contracts ``a * b + c``
only under ``fastmath``), so the loops give the bits of the pure path (tests/test_fmath.py
compares them on a million values and every special value). Imported only by
``fmath._compiled``, which falls back to numpy when numba is missing or fails.
"""

from __future__ import annotations

import numba

from . import fmath

_SIGNATURE = "void(float64[::1], float64[::1])"
_exp_one = numba.njit(cache=True, nogil=True)(fmath.exp)
_log_one = numba.njit(cache=True, nogil=True)(fmath.log)


@numba.njit(_SIGNATURE, cache=True, nogil=True)
def exp_into(x, out):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        out[i] = _exp_one(x[i])


@numba.njit(_SIGNATURE, cache=True, nogil=True)
def log_into(x, out):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        out[i] = _log_one(x[i])
