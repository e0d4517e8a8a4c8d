"""exp, log, expm1 and log1p with the same bits on every CPU, for arrays and for floats.

numpy's float64 ``exp`` and ``log`` use their own SIMD code on CPUs with AVX-512 and the C
library's elsewhere, and the two disagree in the last bit of about one value in twenty
(``exp``) on this project's test machine. A scenario run with the same seed then gave
other bytes on a laptop than on the server that produced a report. ``math.exp`` and
``math.log`` are the C library's, which differs between glibc, macOS and Windows.

The functions here are computed from +, -, *, /, ``floor``, ``frexp`` and ``ldexp`` only,
each of which IEEE 754 defines to the bit (numpy never fuses a multiply and an add across
two ufunc calls, and CPython's float operators do not either). So every CPU and operating
system, the array and the float versions, and a compiled loop that performs the same
operations in the same order give the same bits.

``exp`` and ``log`` are the algorithms and coefficients of fdlibm's ``e_exp.c`` and
``e_log.c`` (Sun Microsystems 1993, as kept in FreeBSD's msun; error below 1 ulp), each
written without branches on the argument; ``expm1`` and ``log1p`` are Kahan's and
Goldberg's corrections on top of them (within a few ulp; Goldberg 1991, "What every
computer scientist should know about floating-point arithmetic", theorem 4).
``cholesky`` and ``correlate`` replace numpy's LAPACK and BLAS calls for the small
correlation matrices of a scenario, whose kernels are chosen by CPU (and use fused
multiply-adds on some). tests/test_fmath.py checks every function against 50-digit mpmath
values and the array and float versions against each other bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np

from . import jit

__all__ = [
    "cholesky",
    "correlate",
    "exp",
    "exp_array",
    "expm1",
    "expm1_array",
    "log",
    "log1p",
    "log_array",
]

# fdlibm e_exp.c
_O_THRESHOLD = 7.09782712893383973096e02  # above: overflow to inf
_U_THRESHOLD = -7.45133219101941108420e02  # below: underflow to 0
_LN2_HI = 6.93147180369123816490e-01  # 0x3fe62e42 fee00000: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08

# fdlibm e_log.c
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
# A mantissa 1.f at or above this (fdlibm's high-word test 0x6a09c, exact as a double)
# is halved, so that f lies in [sqrt(2)/2 - 1, sqrt(2) - 1).
_SQRT2_CUT = 1.0 + 0x6A09C / 2.0**20
_SMALLEST_NORMAL = 2.2250738585072014e-308

_MIN = np.minimum.reduce
_MAX = np.maximum.reduce
_FEW = 4  # up to this many values, one float at a time is faster than ~25 numpy calls


def _fast(x: np.ndarray, fn: Callable[[float], float], loop: str) -> np.ndarray | None:
    """``fn`` of an array by the compiled loop, or one float at a time for a 0-d array or
    a few values; None when neither applies (no numba and more than a few values)."""
    if x.ndim == 0:
        return cast(np.ndarray, np.float64(fn(float(x))))
    loops = jit.loops(x.size)  # numba's (1 ns a value, 1 us a call; numpy: 3 ns, 10 us)
    if loops is not None:
        out = np.empty(x.shape, dtype=np.float64)
        if x.ndim == 1 and x.flags.c_contiguous:  # the usual case, without copies
            getattr(loops, loop)(x, out)
        else:
            getattr(loops, loop)(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
        return out
    if x.size <= _FEW:
        return np.array([fn(v) for v in x.ravel().tolist()], dtype=np.float64).reshape(x.shape)
    return None


def exp(x: float) -> float:
    """e**x for one float, with the bits of :func:`exp_array`."""
    if x != x:
        return x
    if x > _O_THRESHOLD:
        return math.inf
    if x < _U_THRESHOLD:
        return 0.0
    y, k = exp_reduced(x)
    return math.ldexp(y, k)


def exp_reduced(x: float) -> tuple[float, int]:
    """(y, k) with e**x = y * 2**k, for x within the thresholds: fdlibm's argument
    reduction and rational approximation (numba compiles this same function into the
    array loops of ``_loops``)."""
    k = math.floor(x * _INV_LN2 + 0.5)
    hi = x - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    return 1.0 - ((lo - (r * c) / (2.0 - c)) - hi), k


def exp_array(x: np.ndarray) -> np.ndarray:
    """e**x elementwise (float64).

    Written for small arrays too (a cohort step calls it on a few hundred patients, where
    numpy's cost per call dominates): in-place operations, and the clipping and
    special-value fix-ups only when some argument is outside [-745.13, 709.78] or NaN."""
    x = np.asarray(x, dtype=np.float64)
    done = _fast(x, exp, "exp_into")
    if done is not None:
        return done
    if _MIN(x, axis=None) >= _U_THRESHOLD and _MAX(x, axis=None) <= _O_THRESHOLD:
        return _exp_core(x)
    with np.errstate(invalid="ignore"):
        out = _exp_core(np.fmin(np.fmax(x, _U_THRESHOLD), _O_THRESHOLD))  # NaN -> a bound
        out = np.where(x > _O_THRESHOLD, math.inf, np.where(x < _U_THRESHOLD, 0.0, out))
    return cast(np.ndarray, np.where(x == x, out, x))


def _horner(t: np.ndarray, coefs: tuple[float, ...]) -> np.ndarray:
    """A new array c0 + t * (c1 + t * (... + t * cn)), built in place in the order of
    the float functions' nested expressions (so with their bits)."""
    p = t * coefs[-1]
    for c in coefs[-2:0:-1]:
        p += c
        p *= t
    p += coefs[0]
    return p


def _exp_core(x: np.ndarray) -> np.ndarray:
    """exp of arguments within the thresholds, in the operation order of :func:`exp`."""
    k = x * _INV_LN2
    k += 0.5
    np.floor(k, out=k)
    hi = k * _LN2_HI
    np.subtract(x, hi, out=hi)
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    p = _horner(t, (_P1, _P2, _P3, _P4, _P5))
    p *= t
    np.subtract(r, p, out=p)  # c
    r *= p  # r * c
    np.subtract(2.0, p, out=p)  # 2 - c
    r /= p
    np.subtract(lo, r, out=lo)
    lo -= hi
    np.subtract(1.0, lo, out=lo)
    return cast(np.ndarray, np.ldexp(lo, k.astype(np.int32)))


def log(x: float) -> float:
    """Natural logarithm of one float, with the bits of :func:`log_array`."""
    if x != x or x == math.inf:
        return x
    if x == 0.0:
        return -math.inf
    if x < 0.0:
        return math.nan
    m, e = math.frexp(x)  # x = m * 2**e, m in [0.5, 1)
    return log_reduced(m, float(e))


def log_reduced(m: float, dk: float) -> float:
    """log(m * 2**dk) for m in [0.5, 1) and a whole dk: fdlibm's reduction to
    [sqrt(2)/2, sqrt(2)) and its polynomial (numba compiles this same function into the
    array loops of ``_loops``)."""
    if 2.0 * m < _SQRT2_CUT:
        m *= 2.0
        dk -= 1.0
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    hfsq = f * f * 0.5
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)


def log_array(x: np.ndarray) -> np.ndarray:
    """Natural logarithm elementwise (float64); special values fixed up only when some
    argument is not a positive finite number."""
    x = np.asarray(x, dtype=np.float64)
    done = _fast(x, log, "log_into")
    if done is not None:
        return done
    if _MIN(x, axis=None) > 0.0 and _MAX(x, axis=None) < math.inf:
        return _log_core(x)
    with np.errstate(all="ignore"):
        out = _log_core(x)
        out = np.where(x == 0.0, -math.inf, out)
        out = np.where(x < 0.0, math.nan, out)
    return cast(np.ndarray, np.where((x == math.inf) | (x != x), x, out))


def _log_core(x: np.ndarray) -> np.ndarray:
    """log of positive finite arguments, in the operation order of :func:`log`."""
    m, e = np.frexp(x)
    dk = e.astype(np.float64)
    low = m * 2.0  # 2m is exact
    low = low < _SQRT2_CUT
    m *= low + 1.0  # doubled where 2m is below the cut (exact)
    dk -= low
    f = m - 1.0
    s = 2.0 + f
    np.divide(f, s, out=s)
    z = s * s
    w = z * z
    r = _horner(w, (_LG1, _LG3, _LG5, _LG7))
    r *= z
    q = _horner(w, (_LG2, _LG4, _LG6))
    q *= w
    r += q
    hfsq = f * f
    hfsq *= 0.5
    r += hfsq  # hfsq + r
    r *= s
    q = dk * _LN2_LO
    r += q  # s * (hfsq + r) + dk * ln2_lo
    np.subtract(hfsq, r, out=r)
    r -= f
    dk *= _LN2_HI
    dk -= r
    return dk


def expm1(x: float) -> float:
    """e**x - 1 for one float, accurate near 0 (Kahan), with the bits of the array form."""
    u = exp(x)
    if u == 1.0 or x != x:
        return x
    um1 = u - 1.0
    if um1 == -1.0:
        return -1.0
    if u == math.inf:
        return math.inf
    return um1 * (x / log(u))


def expm1_array(x: np.ndarray) -> np.ndarray:
    """e**x - 1 elementwise, accurate near 0."""
    x = np.asarray(x, dtype=np.float64)
    u = exp_array(x)
    um1 = u - 1.0
    with np.errstate(all="ignore"):
        out = um1 * (x / log_array(u))
    out = np.where(um1 == -1.0, -1.0, out)
    out = np.where(u == math.inf, math.inf, out)
    return cast(np.ndarray, np.where((u == 1.0) | (x != x), x, out))


def log1p(x: float) -> float:
    """log(1 + x) for one float, accurate near 0 (Goldberg), with the array form's bits."""
    u = 1.0 + x
    if u == 1.0 or x != x or x == math.inf:
        return x
    if u == 0.0:
        return -math.inf
    if u < 0.0:
        return math.nan
    return log(u) * x / (u - 1.0)


def cholesky(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a small symmetric positive-definite matrix, computed in a
    fixed order with Python floats (the Cholesky-Banachiewicz loop)."""
    m = [[float(v) for v in row] for row in np.asarray(a, dtype=np.float64)]
    n = len(m)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            acc = m[i][j]
            for k in range(j):
                acc -= low[i][k] * low[j][k]
            if i == j:
                if not acc > 0.0:
                    raise np.linalg.LinAlgError("Matrix is not positive definite")
                low[i][j] = math.sqrt(acc)
            else:
                low[i][j] = acc / low[j][j]
    return np.array(low, dtype=np.float64).reshape(n, n)


def correlate(z: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``z @ chol.T`` for rows of independent scores ``z`` (n, k) and a lower factor
    ``chol`` (k, k): column i is sum_j chol[i, j] * z[:, j], added in order of j."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    for i in range(chol.shape[0]):
        acc = chol[i, 0] * z[:, 0]
        for j in range(1, i + 1):
            acc = acc + chol[i, j] * z[:, j]
        out[:, i] = acc
    return out
