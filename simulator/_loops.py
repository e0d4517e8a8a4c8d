"""numba's compiled loops, with the bits of the numpy and float code they stand in for.

Loaded by ``simulator.jit`` when numba is installed and the process has made enough
calls to pay for it; tests/test_fmath.py and tests/test_streams.py compare every loop
with the numpy path bit for bit.

**exp and log** (``simulator.fmath``) run ``fmath.exp_reduced`` and ``fmath.log_reduced``,
inlined, one value at a time (``exp_one``, ``log_one``, which the fused handlers of
``engines/fused.py`` call too) in loops that LLVM vectorizes (about 1 ns a value, as fast
as numpy's own SIMD ``exp``):

* arguments outside the finite range are clamped, computed, and replaced afterwards by
  selects instead of early returns;
* ``ldexp(y, k)`` is two multiplications by exact powers of two, ``2**(k // 2)`` and
  ``2**(k - k // 2)``, built from their bits by an LLVM bitcast (a call to ``ldexp``
  would stop vectorization). The first product is exact (it stays far inside the normal
  range) and the second rounds once, so the result is the correctly rounded ``y * 2**k``,
  which is what ``ldexp`` returns, subnormal results included;
* ``frexp`` reads the exponent and mantissa bits of a positive normal number; zero,
  subnormal, negative, infinite and NaN arguments (none in a simulation) are redone by
  a second loop afterwards, as ``fmath.log`` does.

numba contracts ``a * b + c`` into a fused multiply-add only under ``fastmath``, which is
never used here.

**Uniform draws** (``simulator.streams``): the same 64-bit mixing as the numpy code, in
unsigned integers that wrap as numpy's do (``uniform_draw``, one pair at a time).

**The closed-form step** (``kernel/step_generated.py``): ``step_rows`` calls the SimPy
engine's unrolled one-patient step ``step_one`` (generated from the coefficient pattern
of ``kernel.disease``, and checked against the array step bit for bit by the engines'
agreement) in a loop over patients; ``register_jitable`` lets numba compile the plain
function where the loop calls it.
"""

from __future__ import annotations

import math
from typing import Any

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.datamodel.models import ArrayModel
from numba.extending import (
    get_cython_function_address,
    intrinsic,
    lower_cast,
    register_jitable,
    register_model,
)

from . import fmath, stats, streams
from .fmath import _O_THRESHOLD, _SMALLEST_NORMAL, _U_THRESHOLD
from .kernel import disease, step_generated
from .kernel.xp import THIN_HORIZON

_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}
_EXPONENT_BITS = np.int64(1023) << 52
_MANTISSA = np.int64((1 << 52) - 1)
_HALF_EXPONENT = np.int64(1022) << 52  # a mantissa with this exponent lies in [0.5, 1)

_exp_reduced = numba.njit(inline="always", **_JIT)(fmath.exp_reduced)
_log_reduced = numba.njit(inline="always", **_JIT)(fmath.log_reduced)
_two_square = numba.njit(inline="always", **_JIT)(stats._two_square)
_squarings_for = numba.njit(inline="always", **_JIT)(disease.squarings_for)


def _bitcast(src, dst):  # type: ignore[no-untyped-def]
    """An intrinsic reading the bits of a ``src`` value as a ``dst`` (an LLVM bitcast,
    no call: loops that use it still vectorize)."""

    @intrinsic
    def cast(typingctx, x):  # type: ignore[no-untyped-def]
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return builder.bitcast(args[0], context.get_value_type(dst))

        return dst(src), codegen

    return cast


_as_float = _bitcast(types.int64, types.float64)  # the float64 with these int64 bits
_as_bits = _bitcast(types.float64, types.int64)


class BorrowedArray(types.Array):
    """An array numba counts no references of: the arrays of the SimPy engine's struct
    (``engines/des_loop.py``), whose owner, the ``Stepper``, keeps them alive while the
    struct is used. Reading an ordinary array from a struct costs a call to ``NRT_incref``
    and one to ``NRT_decref`` on its meminfo (null here: the call only tests it), some
    100 calls per event; with this type numba emits none. The layout of the value is
    an ordinary array's, so everything numba does with arrays works on it; a view of it
    (``copy``) is an ordinary array with a null meminfo."""

    def __init__(
        self, dtype: Any, ndim: int, layout: str, readonly: bool = False, aligned: bool = True
    ) -> None:
        ro = ", readonly" if readonly else ""
        super().__init__(
            dtype,
            ndim,
            layout,
            readonly=readonly,
            aligned=aligned,
            name=f"borrowed(array({dtype}, {ndim}d, {layout}{ro}))",
        )


@register_model(BorrowedArray)
class _BorrowedArrayModel(ArrayModel):  # type: ignore[misc]
    """An array's data model that counts no references (no meminfo to traverse)."""

    def has_nrt_meminfo(self) -> bool:
        return False

    def traverse(self, builder: Any) -> list[Any]:
        return []


@lower_cast(BorrowedArray, types.Array)
def _borrowed_to_array(context, builder, fromty, toty, val):  # type: ignore[no-untyped-def]
    """A borrowed array where an ordinary one is expected (one variable holding a view
    or a borrowed array): the same value, its meminfo null."""
    return val


@intrinsic
def borrowed(typingctx, arr):  # type: ignore[no-untyped-def]
    """The array ``arr`` as a :class:`BorrowedArray` (its meminfo and parent null), so
    that numba counts no references when it is read from a struct. The caller keeps
    ``arr`` alive while the copy is used (the SimPy engine's compiled path,
    ``engines/des_loop.py``)."""
    if not isinstance(arr, types.Array):
        return None
    out = BorrowedArray(arr.dtype, arr.ndim, arr.layout, readonly=not arr.mutable)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        from numba.np.arrayobj import make_array

        ary = make_array(signature.args[0])(context, builder, value=args[0])
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()

    return out(arr), codegen


@intrinsic
def struct_address(typingctx, ctx):  # type: ignore[no-untyped-def]
    """The address of a ``StructRef``'s meminfo, as an int64, for :func:`struct_at`."""
    if not isinstance(ctx, types.StructRef):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        value = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0])
        return builder.ptrtoint(value.meminfo, cgutils.intp_t)

    return types.int64(ctx), codegen


@intrinsic
def struct_at(typingctx, address, struct_type):  # type: ignore[no-untyped-def]
    """The ``StructRef`` of type ``struct_type`` whose meminfo is at ``address`` (from
    :func:`struct_address`), as a new reference. Calling a compiled function with this
    int64 instead of the struct's Python proxy saves unboxing the proxy (reading its
    ``_meminfo`` attribute), ~0.15 us a call: the SimPy engine's compiled path makes
    some 70 calls a patient (``engines/des_loop.py``). The caller keeps the struct
    alive while the address is used."""
    if not isinstance(address, types.Integer) or not isinstance(struct_type, types.TypeRef):
        return None
    target = struct_type.instance_type

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        value = cgutils.create_struct_proxy(target)(context, builder)
        value.meminfo = builder.inttoptr(args[0], value.meminfo.type)
        out = value._getvalue()
        context.nrt.incref(builder, target, out)  # the caller's reference, dropped by numba
        return out

    return target(address, struct_type), codegen


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


# scipy's own ndtri (scipy.special.cython_special, the C function behind the ufunc
# ``scipy.special.ndtri``): registered under a name of ours, so that compiled code that
# calls it by that name is cached on disk and relinked in a later process.
_NDTRI_SYMBOL = "simulator_scipy_special_ndtri"
llvm.add_symbol(_NDTRI_SYMBOL, get_cython_function_address("scipy.special.cython_special", "ndtri"))


@intrinsic
def ndtri(typingctx, x):  # type: ignore[no-untyped-def]
    """``scipy.special.ndtri`` of one float: a call to scipy's function, so the same
    bits (``population.ppf``'s inverse normal CDF, in the compiled loops)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _NDTRI_SYMBOL)
        return builder.call(fn, args)

    return types.float64(types.float64), codegen


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


@numba.njit("void(float64[::1], float64[::1])", **_JIT)
def exp_into(x, out):  # type: ignore[no-untyped-def]
    """``out[:] = fmath.exp(x)`` for contiguous 1-d float64 arrays (LLVM vectorizes the
    loop: about 1 ns a value)."""
    for i in range(x.size):
        out[i] = exp_one(x[i])


@numba.njit(inline="always", **_JIT)
def _log_normal(v):  # type: ignore[no-untyped-def]
    """``fmath.log`` of a positive normal float: ``frexp`` read from the bits."""
    b = _as_bits(v)
    mant = _as_float((b & _MANTISSA) | _HALF_EXPONENT)
    return _log_reduced(mant, np.float64(((b >> 52) & 0x7FF) - 1022))


@numba.njit(**_JIT)
def log_one(v):  # type: ignore[no-untyped-def]
    """``fmath.log`` of one float, any value."""
    if _SMALLEST_NORMAL <= v < math.inf:
        return _log_normal(v)
    if v != v or v == math.inf:
        return v
    if v == 0.0:
        return -math.inf
    if v < 0.0:
        return math.nan
    m, e = math.frexp(v)  # subnormal
    return _log_reduced(m, np.float64(e))


@numba.njit("void(float64[::1], float64[::1])", **_JIT)
def log_into(x, out):  # type: ignore[no-untyped-def]
    """``out[:] = fmath.log(x)`` for contiguous 1-d float64 arrays: every value as a
    positive normal one in a loop LLVM vectorizes, then the others (none in a
    simulation) redone."""
    for i in range(x.size):
        out[i] = _log_normal(x[i])
    for i in range(x.size):
        v = x[i]
        if not (_SMALLEST_NORMAL <= v < math.inf):  # NaN fails both tests
            out[i] = log_one(v)


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
_BELOW_ONE = streams._BELOW_ONE


@numba.njit(inline="always", **_JIT)
def _mix(x):  # type: ignore[no-untyped-def]
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@numba.njit(**_JIT)
def uniform_draw(key, patient, index):  # type: ignore[no-untyped-def]
    """``streams.uniform``'s draw for one (patient, index) pair: the same 64-bit mixing
    in unsigned integers that wrap as numpy's do."""
    h = _mix(key + np.uint64(patient) * _G)
    h = _mix(h ^ (np.uint64(index) * _M2 + _G))
    u = (np.float64(h >> _S11) + 0.5) * _TWO_M53
    return u if u < _BELOW_ONE else _BELOW_ONE  # streams._BELOW_ONE: never exactly 1


@numba.njit(**_JIT)
def thin(key_gap, key_accept, patient, k, time, day, rate, bound, last_day):  # type: ignore[no-untyped-def]
    """``kernel.xp``'s ``thin`` for one patient, the same operations in the same order:
    (the index kept, as a float; its time; its day)."""
    while True:
        time = time + (-log_one(uniform_draw(key_gap, patient, k))) / rate
        due = fmin(time, THIN_HORIZON)
        day = fmax(np.floor(due) + 1.0, day + 1.0)
        if uniform_draw(key_accept, patient, k) * rate < bound:
            break
        if day > last_day or due >= THIN_HORIZON:
            break
        k += 1
    return np.float64(k), time, day


@numba.njit(
    "void(uint64, uint64, int64[::1], int64[::1], float64[::1], float64[::1], float64,"
    " float64[::1], float64)",
    **_JIT,
)
def thin_into(key_gap, key_accept, patients, k, time, day, rate, bound, last_day):  # type: ignore[no-untyped-def]
    """``thin`` for every row, in place: ``k``, ``time`` and ``day`` become the kept
    candidate's."""
    for i in range(patients.size):
        kk, t, d = thin(
            key_gap, key_accept, patients[i], k[i], time[i], day[i], rate, bound[i], last_day
        )
        k[i], time[i], day[i] = np.int64(kk), t, d


@numba.njit("void(uint64, int64[::1], int64[::1], float64[::1])", **_JIT)
def uniform_into(key, patients, index, out):  # type: ignore[no-untyped-def]
    """``out[i]`` = ``streams.uniform``'s draw for (patients[i], index[i])."""
    for i in range(out.size):
        out[i] = uniform_draw(key, patients[i], index[i])


@numba.njit("void(uint64, int64[::1], int64, float64[::1])", **_JIT)
def uniform_one_index_into(key, patients, index, out):  # type: ignore[no-untyped-def]
    """``out[i]`` = ``streams.uniform``'s draw for (patients[i], index)."""
    for i in range(out.size):
        out[i] = uniform_draw(key, patients[i], index)


@numba.njit("void(uint64, int64[::1], int64[::1], float64[:, ::1])", **_JIT)
def uniform_grid_into(key, patients, index, out):  # type: ignore[no-untyped-def]
    """``out[i, j]`` = ``streams.uniform``'s draw for (patients[i], index[j]) (LLVM
    vectorizes it: ``streams.normal_grid`` then applies scipy's ``ndtri`` ufunc in
    place, faster than one call of it per value from here)."""
    for i in range(patients.size):
        for j in range(index.size):
            out[i, j] = uniform_draw(key, patients[i], index[j])


# ``step_one`` (a plain function, the SimPy engine's) compiled wherever numba code calls it
register_jitable(inline="always", **_JIT)(step_generated.step_one)

#: ``step_rows(table, rows, y, ..., j, s, c, g)``: see ``kernel/step_generated.py``; bounds
#: checked, so that a wrong row index raises instead of reading past the table.
step_rows = numba.njit(boundscheck=True, **_JIT)(step_generated.step_rows)


@numba.njit(inline="always", **_JIT)
def _bin_one(v, hi, lo, first, last):  # type: ignore[no-untyped-def]
    b = _as_bits(v)
    if (b << 1) == 0:  # +0 or -0: adds nothing (and would widen the span to bin 0)
        return first, last
    biased = (b >> 52) & 0x7FF
    m = b & _MANTISSA
    if biased == 0:
        k = 0  # zero or subnormal: M * 2**-1074
    else:
        m = m | (np.int64(1) << 52)
        k = biased - 1
    if b < 0:
        m = -m
    hi[k] += m >> 27
    lo[k] += m & ((np.int64(1) << 27) - 1)
    return min(first, k), max(last, k)


@numba.njit(inline="always", **_JIT)
def _drain(hi, lo, first, last, out, used, r):  # type: ignore[no-untyped-def]
    """Bins ``first..last`` that are not zero into ``out`` as (k, hi, lo); zero them."""
    c = 0
    for k in range(first, last + 1):
        h, low = hi[k], lo[k]
        if h != 0 or low != 0:
            out[c, 0], out[c, 1], out[c, 2] = k, h, low
            c += 1
            hi[k] = 0
            lo[k] = 0
    used[r] = c


@numba.njit(
    "int64(float64[::1], int64[:, ::1], int64[:, ::1], int64[::1], int64[:, :, ::1])", **_JIT
)
def moment_bins(x, hi, lo, used, out):  # type: ignore[no-untyped-def]
    """``stats.Moments.add`` in one pass: the exact sums, per binary exponent, of the
    values (row 0) and of Dekker's exact square ``x*x = p + err`` (rows 1 and 2,
    ``stats._two_square`` compiled), NaNs skipped. Value ``v`` is ``M * 2**(k - 1074)``
    with the integer ``M`` signed, ``|M| < 2**53`` and ``k`` its bin; ``hi[r, k]`` and
    ``lo[r, k]`` add up ``M >> 27`` and ``M & (2**27 - 1)`` (exact in int64 for fewer
    than 2**35 values). Row r's bins that are not zero go to ``out[r, :used[r]]`` as
    (k, hi, lo), in increasing k, and every bin is zero again on return (``hi`` and
    ``lo`` are scratch, zero on entry). Returns the number of NaNs, or -1 if a value
    is not below ``stats._MAX_ABS`` in magnitude."""
    n_nan = 0
    f0, l0, f1, l1, f2, l2 = hi.shape[1], -1, hi.shape[1], -1, hi.shape[1], -1
    for i in range(x.size):
        v = x[i]
        if v != v:
            n_nan += 1
            continue
        if not abs(v) < stats._MAX_ABS:
            n_nan = -1
            break
        p, err = _two_square(v)
        f0, l0 = _bin_one(v, hi[0], lo[0], f0, l0)
        f1, l1 = _bin_one(p, hi[1], lo[1], f1, l1)
        f2, l2 = _bin_one(err, hi[2], lo[2], f2, l2)
    _drain(hi[0], lo[0], f0, l0, out[0], used, 0)
    _drain(hi[1], lo[1], f1, l1, out[1], used, 1)
    _drain(hi[2], lo[2], f2, l2, out[2], used, 2)
    return n_nan


@numba.njit(
    "int64(float64[:, ::1], int64[:, ::1], int64[:, ::1], int64[:, ::1], int64[:, :, :, ::1],"
    " int64[::1])",
    **_JIT,
)
def moment_bins_rows(x, hi, lo, used, out, nans):  # type: ignore[no-untyped-def]
    """``moment_bins`` of each row ``x[j]`` in one call (``stats.Moments.add_many``):
    its bins to ``out[j]`` and ``used[j]``, its NaNs to ``nans[j]``. Returns -1, or the
    first row with a value not below ``stats._MAX_ABS`` in magnitude (the rows after it
    are not done). ``out[j]`` has room for all 2047 bins of each of its 3 sums."""
    for j in range(x.shape[0]):
        n_nan = moment_bins(x[j], hi, lo, used[j], out[j])
        if n_nan < 0:
            return j
        nans[j] = n_nan
    return -1


@numba.njit(inline="always", **_JIT)
def _matmul_into(a, b, out, divisor):  # type: ignore[no-untyped-def]
    """``out = (a @ b) / divisor``, each entry summed over j in order from 0, as
    ``np.einsum`` without optimisation sums it (``disease._matmul``)."""
    n = a.shape[0]
    for i in range(n):  # row i of the product, its n sums advanced together (SIMD)
        for c in range(n):
            out[i, c] = 0.0
        for j in range(n):
            aij = a[i, j]
            for c in range(n):
                out[i, c] += aij * b[j, c]
        for c in range(n):
            out[i, c] = out[i, c] / divisor


@numba.njit(inline="always", **_JIT)
def _taylor_into(b, squarings, term, tmp, res):  # type: ignore[no-untyped-def]
    """``res`` = the 24-term series of the scaled matrix ``b``, squared ``squarings``
    times (``term`` and ``tmp`` are scratch)."""
    n = b.shape[0]
    for i in range(n):
        for c in range(n):
            one = 1.0 if i == c else 0.0
            term[i, c] = one
            res[i, c] = one
    for k in range(1, 25):
        _matmul_into(term, b, tmp, np.float64(k))
        for i in range(n):
            for c in range(n):
                term[i, c] = tmp[i, c]
                res[i, c] = res[i, c] + tmp[i, c]
    for _ in range(squarings):
        _matmul_into(res, res, tmp, 1.0)
        for i in range(n):
            for c in range(n):
                res[i, c] = tmp[i, c]


@numba.njit("void(float64[:, :, ::1], int64[::1], float64[:, :, ::1])", **_JIT)
def expm_taylor(b, squarings, out):  # type: ignore[no-untyped-def]
    """The series and squarings of ``disease.expm_many`` for each scaled matrix ``b[s]``:
    the same operations in the same order, so the same bits."""
    m, n, _ = b.shape
    term = np.empty((n, n))
    tmp = np.empty((n, n))
    for s in range(m):
        _taylor_into(b[s], squarings[s], term, tmp, out[s])


@numba.njit(**_JIT)
def expm_entries(a, tau, rows, cols, out):  # type: ignore[no-untyped-def]
    """``out[k]`` = entry (rows[k], cols[k]) of the matrix exponential of ``a * tau``, as
    ``disease.Propagator`` computes it (``disease.expm_many``: the infinity norm summed
    in ``norms_inf``'s order, the squarings of ``squarings_for``, the scaling, then
    ``expm_taylor``'s operations): the same bits, one matrix at a time, for the chunk
    loop's steps that its table does not hold."""
    n = a.shape[0]
    b = np.empty((n, n))
    norm = 0.0
    for i in range(n):
        acc = 0.0
        for j in range(n):
            v = a[i, j] * tau
            b[i, j] = v
            acc = abs(v) if j == 0 else acc + abs(v)
        norm = acc if (i == 0 or acc > norm) else norm
    squarings = _squarings_for(norm)
    scale = 2.0**squarings
    for i in range(n):
        for j in range(n):
            b[i, j] = b[i, j] / scale
    term = np.empty((n, n))
    tmp = np.empty((n, n))
    res = np.empty((n, n))
    _taylor_into(b, squarings, term, tmp, res)
    for k in range(rows.size):
        out[k] = res[rows[k], cols[k]]


@numba.njit(inline="always", **_JIT)
def _expm1_from(x, u):  # type: ignore[no-untyped-def]
    """``fmath.expm1(x)`` given ``u = exp_one(x)``, without branches (the cases as
    selects, so loops that call it still vectorize): a non-normal ``u`` is one of them
    (0 or subnormal: ``u - 1`` is -1; inf; NaN from a NaN ``x``), so ``_log_normal``
    serves for the rest."""
    um1 = u - 1.0
    r = um1 * (x / _log_normal(u))
    r = select(um1 == -1.0, -1.0, r)
    r = select(u == math.inf, math.inf, r)
    return select((u == 1.0) | (x != x), x, r)


@numba.njit(
    "void(boolean[::1], float64[::1], int64[::1], float64[::1], float64[:, ::1], float64,"
    " float64, float64, int64, float64[::1], float64[::1])",
    **_JIT,
)
def lifetime_into(
    alive, age, female, excess, bg_per_year, slope, delta, disc0, max_age, disc_ly, ly
):  # type: ignore[no-untyped-def]
    """``outcomes._lifetime_years``: for each year of age, the life table's hazard plus
    the excess one (its age term following age), the discounted and undiscounted years
    lived in it in closed form, until age ``max_age + 1`` or survival 0. The numpy
    loop's operations in its order, every patient a year at a time (one who is done
    adds ``0.0`` and keeps its values), with selects for its ``where``s so that LLVM
    vectorizes the loop over patients: the same bits."""
    n = age.size
    top = np.float64(max_age + 1)
    a = age.copy()
    surv = np.empty(n)
    disc = np.empty(n)
    bg = np.empty(n)
    for i in range(n):
        surv[i] = 1.0 if alive[i] else 0.0
        disc[i] = disc0
        disc_ly[i] = 0.0
        ly[i] = 0.0
    while True:
        # the life table's rates first: a gather, which would keep LLVM from
        # vectorizing the loop below
        n_live = 0
        for i in range(n):
            ai = a[i]
            if ai < top and surv[i] > 0:
                n_live += 1
                row = fmin(fmax(math.floor(ai), 0.0), np.float64(max_age))
                bg[i] = bg_per_year[female[i], np.int64(row)]
            else:
                bg[i] = 0.0
        if n_live == 0:
            break
        for i in range(n):
            ai = a[i]
            s = surv[i]
            live = (ai < top) & (s > 0)
            length = select(live, fmin(math.floor(ai) + 1.0, top) - ai, 0.0)
            hz = bg[i] + excess[i] * 365.25 * exp_one(slope * (ai - age[i]))
            rate = hz + delta
            xr = -rate * length
            xh = -hz * length
            uh = exp_one(xh)
            part = select(rate > 0, -_expm1_from(xr, exp_one(xr)) / rate, length)
            part_ly = select(hz > 0, -_expm1_from(xh, uh) / hz, length)
            d = disc[i]
            disc_ly[i] = disc_ly[i] + select(live, s * d * part, 0.0)
            ly[i] = ly[i] + select(live, s * part_ly, 0.0)
            surv[i] = select(live, s * uh, s)
            disc[i] = select(live, d * exp_one(-delta * length), d)
            a[i] = select(live, ai + length, ai)
