"""Compiled exp and log over arrays (numba, when installed), with ``simulator.fmath``'s bits.

The loops perform ``fmath``'s operations in the same order, written so that LLVM
vectorizes them (about 1.3 ns a value, as fast as numpy's own SIMD ``exp``):

* arguments outside the finite range are clamped, computed, and replaced afterwards by
  selects instead of early returns;
* ``ldexp(y, k)`` is two multiplications by exact powers of two, ``2**(k // 2)`` and
  ``2**(k - k // 2)``, built from their bits. The first product is exact (it stays far
  inside the normal range) and the second rounds once, so the result is the correctly
  rounded ``y * 2**k``, which is what ``ldexp`` returns, subnormal results included;
* ``frexp`` reads the exponent and mantissa bits of a positive normal number; zero,
  subnormal, negative, infinite and NaN arguments (none in a simulation) are redone by
  the compiled float function afterwards.

numba contracts ``a * b + c`` into a fused multiply-add only under ``fastmath``, which is
never used here. tests/test_fmath.py compares these loops with the numpy and float paths
bit for bit, on every special value and across the subnormal range. Imported only by
``fmath._compiled``, which falls back to numpy when numba is missing or fails.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import fmath
from .fmath import (
    _LG1,
    _LG2,
    _LG3,
    _LG4,
    _LG5,
    _LG6,
    _LG7,
    _LN2_HI,
    _LN2_LO,
    _O_THRESHOLD,
    _SQRT2_CUT,
    _U_THRESHOLD,
)

_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}
_EXPONENT_BITS = np.int64(1023) << 52
_MANTISSA = np.int64((1 << 52) - 1)
_HALF_EXPONENT = np.int64(1022) << 52  # a mantissa with this exponent lies in [0.5, 1)
_SMALLEST_NORMAL = 2.2250738585072014e-308

_log_one = numba.njit(**_JIT)(fmath.log)
_exp_reduced = numba.njit(inline="always", **_JIT)(fmath.exp_reduced)


@numba.njit(**_JIT)
def _exp_reduce(x, y, b1, b2):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        v = x[i]
        xc = v if v > _U_THRESHOLD else _U_THRESHOLD  # NaN -> the lower bound
        xc = xc if xc < _O_THRESHOLD else _O_THRESHOLD
        y[i], ki = _exp_reduced(xc)
        k1 = ki >> 1
        b1[i] = (k1 << 52) + _EXPONENT_BITS  # the bits of 2**k1
        b2[i] = ((ki - k1) << 52) + _EXPONENT_BITS


@numba.njit(**_JIT)
def _exp_scale(x, y, s1, s2, out):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        v = x[i]
        o = y[i] * s1[i] * s2[i]
        o = math.inf if v > _O_THRESHOLD else o
        o = 0.0 if v < _U_THRESHOLD else o
        out[i] = v if v != v else o


@numba.njit("void(float64[::1], float64[::1])", **_JIT)
def exp_into(x, out):  # type: ignore[no-untyped-def]
    """``out[:] = fmath.exp(x)`` for contiguous 1-d float64 arrays."""
    y = np.empty(x.size, dtype=np.float64)  # not ``out``: aliased arrays stop vectorizing
    b1 = np.empty(x.size, dtype=np.int64)
    b2 = np.empty(x.size, dtype=np.int64)
    _exp_reduce(x, y, b1, b2)
    _exp_scale(x, y, b1.view(np.float64), b2.view(np.float64), out)


@numba.njit(**_JIT)
def _log_split(bits, mant, dk):  # type: ignore[no-untyped-def]
    for i in range(bits.size):
        b = bits[i]
        mant[i] = (b & _MANTISSA) | _HALF_EXPONENT
        dk[i] = np.float64(((b >> 52) & 0x7FF) - 1022)


@numba.njit(**_JIT)
def _log_poly(x, m_in, dk_in, out):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        m = m_in[i]
        dk = dk_in[i]
        low = 2.0 * m < _SQRT2_CUT
        m = m * 2.0 if low else m
        dk = dk - 1.0 if low else dk
        f = m - 1.0
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
        hfsq = f * f * 0.5
        out[i] = dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)


@numba.njit(**_JIT)
def _log_specials(x, out):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        v = x[i]
        if not (_SMALLEST_NORMAL <= v < math.inf):  # NaN fails both tests
            out[i] = _log_one(v)


@numba.njit("void(float64[::1], float64[::1])", **_JIT)
def log_into(x, out):  # type: ignore[no-untyped-def]
    """``out[:] = fmath.log(x)`` for contiguous 1-d float64 arrays."""
    mant = np.empty(x.size, dtype=np.int64)
    dk = np.empty(x.size, dtype=np.float64)  # not ``out``: aliased arrays stop vectorizing
    _log_split(x.view(np.int64), mant, dk)
    _log_poly(x, mant.view(np.float64), dk, out)
    _log_specials(x, out)
