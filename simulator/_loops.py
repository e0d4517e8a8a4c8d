"""numba's compiled loops, with the bits of the numpy and float code they stand in for.

Loaded by ``simulator.jit`` when numba is installed and the process has made enough
calls to pay for it; tests/test_fmath.py and tests/test_streams.py compare every loop
with the numpy path bit for bit.

**exp and log** (``simulator.fmath``) run ``fmath.exp_reduced`` and ``fmath.log_reduced``,
inlined, in loops that LLVM vectorizes (about 1 ns a value, as fast as numpy's own SIMD
``exp``):

* arguments outside the finite range are clamped, computed, and replaced afterwards by
  selects instead of early returns;
* ``ldexp(y, k)`` is two multiplications by exact powers of two, ``2**(k // 2)`` and
  ``2**(k - k // 2)``, built from their bits. The first product is exact (it stays far
  inside the normal range) and the second rounds once, so the result is the correctly
  rounded ``y * 2**k``, which is what ``ldexp`` returns, subnormal results included;
* ``frexp`` reads the exponent and mantissa bits of a positive normal number; zero,
  subnormal, negative, infinite and NaN arguments (none in a simulation) are redone by
  a second loop afterwards, as ``fmath.log`` does;
* no buffer is both read and written by one loop (aliasing stops LLVM vectorizing).

numba contracts ``a * b + c`` into a fused multiply-add only under ``fastmath``, which is
never used here.

**Uniform draws** (``simulator.streams``): the same 64-bit mixing as the numpy code, in
unsigned integers that wrap as numpy's do.

**The closed-form step** (``kernel/step_generated.py``): ``step_rows`` is the SimPy
engine's unrolled one-patient step (generated from the coefficient pattern of
``kernel.disease``, and checked against the array step bit for bit by the engines'
agreement) in a loop over patients.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from . import fmath, streams
from .fmath import _O_THRESHOLD, _SMALLEST_NORMAL, _U_THRESHOLD
from .kernel import step_generated

_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}
_EXPONENT_BITS = np.int64(1023) << 52
_MANTISSA = np.int64((1 << 52) - 1)
_HALF_EXPONENT = np.int64(1022) << 52  # a mantissa with this exponent lies in [0.5, 1)

_exp_reduced = numba.njit(inline="always", **_JIT)(fmath.exp_reduced)
_log_reduced = numba.njit(inline="always", **_JIT)(fmath.log_reduced)


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
def _log_poly(m_in, dk_in, out):  # type: ignore[no-untyped-def]
    for i in range(out.size):
        out[i] = _log_reduced(m_in[i], dk_in[i])


@numba.njit(**_JIT)
def _log_specials(x, out):  # type: ignore[no-untyped-def]
    """What ``fmath.log`` returns for arguments that are not positive normal numbers."""
    for i in range(x.size):
        v = x[i]
        if not (_SMALLEST_NORMAL <= v < math.inf):  # NaN fails both tests
            if v != v or v == math.inf:
                out[i] = v
            elif v == 0.0:
                out[i] = -math.inf
            elif v < 0.0:
                out[i] = math.nan
            else:  # subnormal: frexp normalises it
                m, e = math.frexp(v)
                out[i] = _log_reduced(m, np.float64(e))


@numba.njit("void(float64[::1], float64[::1])", **_JIT)
def log_into(x, out):  # type: ignore[no-untyped-def]
    """``out[:] = fmath.log(x)`` for contiguous 1-d float64 arrays."""
    mant = np.empty(x.size, dtype=np.int64)
    dk = np.empty(x.size, dtype=np.float64)  # not ``out``: aliased arrays stop vectorizing
    _log_split(x.view(np.int64), mant, dk)
    _log_poly(mant.view(np.float64), dk, out)
    _log_specials(x, out)


@intrinsic
def _as_float(typingctx, bits):  # type: ignore[no-untyped-def]
    """The float64 whose bits are the int64 ``bits`` (an LLVM bitcast, no call)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@intrinsic
def _as_bits(typingctx, x):  # type: ignore[no-untyped-def]
    """The int64 bits of the float64 ``x``."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@intrinsic
def select(typingctx, cond, a, b):  # type: ignore[no-untyped-def]
    """``a if cond else b`` as one LLVM ``select`` (both already computed): no branch, so
    no extra blocks in numba's IR, whose SSA pass is slow on the fused loops' hundreds
    of conditional expressions."""
    if a != b or not isinstance(cond, types.Boolean):
        return None
    sig = a(types.boolean, a, b)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.select(args[0], args[1], args[2])

    return sig, codegen


@numba.njit(**_JIT)
def exp_one(v):  # type: ignore[no-untyped-def]
    """``fmath.exp`` of one float, for the fused handlers (``engines/fused.py``): the
    steps of ``exp_into`` for one value, the powers of two built from their bits."""
    xc = v if v > _U_THRESHOLD else _U_THRESHOLD
    xc = xc if xc < _O_THRESHOLD else _O_THRESHOLD
    y, ki = _exp_reduced(xc)
    k1 = ki >> 1
    o = y * _as_float((k1 << 52) + _EXPONENT_BITS) * _as_float(((ki - k1) << 52) + _EXPONENT_BITS)
    o = math.inf if v > _O_THRESHOLD else o
    o = 0.0 if v < _U_THRESHOLD else o
    return v if v != v else o


@numba.njit(**_JIT)
def log_one(v):  # type: ignore[no-untyped-def]
    """``fmath.log`` of one float: ``log_into``'s steps for one value."""
    if _SMALLEST_NORMAL <= v < math.inf:
        b = _as_bits(v)
        mant = _as_float((b & _MANTISSA) | _HALF_EXPONENT)
        return _log_reduced(mant, np.float64(((b >> 52) & 0x7FF) - 1022))
    if v != v or v == math.inf:
        return v
    if v == 0.0:
        return -math.inf
    if v < 0.0:
        return math.nan
    m, e = math.frexp(v)  # subnormal
    return _log_reduced(m, np.float64(e))


@numba.njit(**_JIT)
def fmin(a, b):  # type: ignore[no-untyped-def]
    """``np.minimum`` of two floats: NaN from either side, and of two equal values
    (+0 and -0) the second, as numpy returns them."""
    return a if (a < b or a != a) else b


@numba.njit(**_JIT)
def fmax(a, b):  # type: ignore[no-untyped-def]
    """``np.maximum`` of two floats (see ``fmin``)."""
    return a if (a > b or a != a) else b


@numba.njit(**_JIT)
def imin(a, b):  # type: ignore[no-untyped-def]
    return a if a < b else b


@numba.njit(**_JIT)
def imax(a, b):  # type: ignore[no-untyped-def]
    return a if a > b else b


_G, _M1, _M2 = streams._GOLDEN, streams._M1, streams._M2
_S30, _S27, _S31, _S11 = streams._S30, streams._S27, streams._S31, streams._S11
_TWO_M53 = streams._TWO_M53


@numba.njit(inline="always", **_JIT)
def _mix(x):  # type: ignore[no-untyped-def]
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@numba.njit("void(uint64, int64[::1], int64[::1], float64[::1])", **_JIT)
def uniform_into(key, patients, index, out):  # type: ignore[no-untyped-def]
    """``out[i]`` = ``streams.uniform``'s draw for (patients[i], index[i])."""
    for i in range(out.size):
        h = _mix(key + np.uint64(patients[i]) * _G)
        h = _mix(h ^ (np.uint64(index[i]) * _M2 + _G))
        out[i] = (np.float64(h >> _S11) + 0.5) * _TWO_M53


@numba.njit("void(uint64, int64[::1], int64, float64[::1])", **_JIT)
def uniform_one_index_into(key, patients, index, out):  # type: ignore[no-untyped-def]
    """``out[i]`` = ``streams.uniform``'s draw for (patients[i], index)."""
    salt = np.uint64(index) * _M2 + _G
    for i in range(out.size):
        h = _mix(key + np.uint64(patients[i]) * _G)
        out[i] = (np.float64(_mix(h ^ salt) >> _S11) + 0.5) * _TWO_M53


@numba.njit(**_JIT)
def uniform_draw(key, patient, index):  # type: ignore[no-untyped-def]
    """``streams.uniform``'s draw for one (patient, index) pair (``uniform_into``'s
    steps), for the fused handlers."""
    h = _mix(key + np.uint64(patient) * _G)
    h = _mix(h ^ (np.uint64(index) * _M2 + _G))
    return (np.float64(h >> _S11) + 0.5) * _TWO_M53


#: ``step_rows(table, rows, y, ..., j, s, c, g)``: see ``kernel/step_generated.py``; bounds
#: checked, so that a wrong row index raises instead of reading past the table.
step_rows = numba.njit(boundscheck=True, **_JIT)(step_generated.step_rows)
