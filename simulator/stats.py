"""Streaming, mergeable summary statistics with order-independent, bit-exact results.

This module owns every number the simulator reports about a cohort: means with normal
confidence intervals, proportions with Wilson intervals, quantiles of skewed outcomes
(costs, cumulative doses), Kaplan-Meier curves with medians, and paired (common random
number) differences between two strategies.

Patients are simulated in chunks by several workers and the partial summaries are merged
in whatever order they finish. Every class here therefore keeps only state whose merge is
exactly associative and commutative -- integer counts, exact minima and maxima, and exact
sums -- and computes floating-point results from that state only when asked. The
reported JSON is then byte-identical for any worker count, chunk size and merge order.

* Sums of float64 values are accumulated *exactly*: each value is split into an integer
  mantissa and a binary exponent (``np.frexp``), mantissas are summed per exponent in
  integer-valued float64 bins small enough never to round, and the bins are folded into
  one Python integer counting units of 2**-1126 (the smallest possible contribution).
  Squares are made exact first with Dekker's (1971) two-product, so the sum of squares is
  the exact sum of exact squares, and the variance is one correctly rounded rational.
* ``Proportion`` uses the Wilson (1927) score interval.
* ``LogHistogram`` bins values on a fixed log-spaced grid (2000 bins per decade by
  default, i.e. a relative bin width of about 0.115 %) and estimates quantiles from it.
* ``KaplanMeier`` keeps event and censoring counts per integer day; the survival curve is
  the Kaplan-Meier product-limit estimate, with Greenwood's (1926) variance on the
  log(-log S) scale (Kalbfleisch & Prentice 1980, "exponential Greenwood"), and the
  median's confidence interval is obtained by inverting that pointwise band
  (Brookmeyer & Crowley 1982).
* ``PairedDifference`` summarises per-patient differences between two arms run on the
  same virtual patients.

Memory does not grow with the number of values added: ``Moments``, ``Proportion`` and
``PairedDifference`` are O(1), ``LogHistogram`` is O(number of bins) and ``KaplanMeier`` is
O(horizon in days). Nothing here prints, does I/O or draws random numbers.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from . import fmath, jit

__all__ = [
    "Z95",
    "KaplanMeier",
    "LogHistogram",
    "Moments",
    "PairedDifference",
    "Proportion",
    "combination_of_means",
    "normal_ci",
    "wilson_ci",
]

Z95 = 1.959963984540054
"""Two-sided 95 % standard normal quantile, ``scipy.special.ndtri(0.975)``."""

# Exact summation of float64 values.
#
# np.frexp(x) = (m, e) with x = m * 2**e, 0.5 <= |m| < 1 (m = e = 0 for x = 0). The
# mantissa M = m * 2**53 is an integer with |M| < 2**53, so x = M * 2**(e - 53). The
# smallest e is -1073 (for 2**-1074), hence every finite x is an integer multiple of
# 2**-1126 and its contribution is M << (e + 1073) in those units.
#
# M is split as M = hi * 2**27 + lo with -2**26 <= hi < 2**26 and 0 <= lo < 2**27. Both
# halves are summed per exponent with np.bincount (float64 weights): in blocks of at most
# 2**25 values every partial sum is an integer below 2**53 in magnitude, so it is exact
# whatever order bincount adds in.
_UNIT_SHIFT = 1126  # the exact sums count units of 2**-1126
_EXP_OFFSET = 1073  # bin index = frexp exponent + 1073 >= 0
_SPLIT_BITS = 27
_LO_MASK = (1 << _SPLIT_BITS) - 1
_BLOCK = 1 << 25
_MAX_ABS = 2.0**500  # |x| below this: x*x and Dekker's split cannot overflow
_VELTKAMP = 134217729.0  # 2**27 + 1


def _exact_sum_units(x: np.ndarray) -> int:
    """Return the exact sum of the finite float64 values ``x`` in units of 2**-1126."""
    total = 0
    for start in range(0, x.size, _BLOCK):
        block = x[start : start + _BLOCK]
        mant, expo = np.frexp(block)
        m_int = (mant * 2.0**53).astype(np.int64)
        hi = (m_int >> _SPLIT_BITS).astype(np.float64)
        lo = (m_int & _LO_MASK).astype(np.float64)
        key = (expo + _EXP_OFFSET).astype(np.intp)
        sum_hi = np.bincount(key, weights=hi)
        sum_lo = np.bincount(key, weights=lo)
        for k in np.flatnonzero((sum_hi != 0.0) | (sum_lo != 0.0)).tolist():
            total += ((int(sum_hi[k]) << _SPLIT_BITS) + int(sum_lo[k])) << k
    return total


_SCRATCH = threading.local()


def _scratch() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """This thread's zeroed bins for ``_loops.moment_bins`` (which zeroes them again:
    allocating and zeroing 2 x 49 KB a call cost more than the sums of 250 values) and
    the arrays it reports the bins in use through."""
    got = getattr(_SCRATCH, "bins", None)
    if got is None:
        got = _SCRATCH.bins = (
            np.zeros((3, 2047), dtype=np.int64),
            np.zeros((3, 2047), dtype=np.int64),
            np.zeros(3, dtype=np.int64),
            np.zeros((3, 2047, 3), dtype=np.int64),
        )
    return got  # type: ignore[no-any-return]


_ROWS = 32  # rows per call of ``_loops.moment_bins_rows``


def _rows_scratch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's outputs for ``_loops.moment_bins_rows`` (bins in use, their list,
    NaN counts) for ``_ROWS`` rows a call; only the bins in use are written, so a few
    pages of the list are touched."""
    got = getattr(_SCRATCH, "rows", None)
    if got is None:
        got = _SCRATCH.rows = (
            np.zeros((_ROWS, 3), dtype=np.int64),
            np.zeros((_ROWS, 3, 2047, 3), dtype=np.int64),
            np.zeros(_ROWS, dtype=np.int64),
        )
    return got  # type: ignore[no-any-return]


def _bins_total(used: list[list[int]]) -> int:
    """The sum, in units of 2**-1126, of bins reported by ``_loops.moment_bins`` as
    (k, hi, lo): the value ``M * 2**(k - 1074)`` is ``M << (k + 52)`` units, with
    ``M = hi * 2**27 + lo``."""
    if not used:
        return 0
    first = used[0][0]  # the lowest bin: shift by the distance from it, then once
    total = 0
    for k, h, low in used:
        total += ((h << _SPLIT_BITS) + low) << (k - first)
    return total << (first + 52)


def _two_square(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's (1971) exact product: ``x*x == p + err`` exactly, both float64.

    Exact for ``2**-480 < |x| < 2**500`` (outside the lower bound ``err`` may underflow; the
    result is still a deterministic per-value function, so order independence holds).
    """
    p = x * x
    c = _VELTKAMP * x
    xh = c - (c - x)
    xl = x - xh
    err = ((xh * xh - p) + 2.0 * (xh * xl)) + xl * xl
    return p, err


def _units_to_float(num: int, den: int) -> float:
    """Correctly rounded ``num / den`` (Python's integer true division rounds correctly)."""
    return num / den


def _json_float(x: float | None) -> float | None:
    """Plain Python float, or None for missing/NaN/infinite (not representable in JSON)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _as_float_array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def normal_ci(mean: float, se: float, z: float = Z95) -> tuple[float, float]:
    """Normal-approximation interval ``mean -/+ z * se`` (NaN if either input is NaN)."""
    half = z * se
    return mean - half, mean + half


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson (1927) score interval for a binomial proportion ``k / n``.

    ``center = (p + z^2/2n) / (1 + z^2/n)``,
    ``half = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2)``. The limits are exactly 0 for
    ``k == 0`` and exactly 1 for ``k == n``. Returns ``(nan, nan)`` for ``n == 0``.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return math.nan, math.nan
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    lo = 0.0 if k == 0 else max(0.0, center - half)
    hi = 1.0 if k == n else min(1.0, center + half)
    return lo, hi


class Moments:
    """Count, exact sum and exact sum of squares of float64 values; NaNs are skipped.

    Mean and sample variance are single correctly rounded roundings of exact rationals,
    so they do not depend on the order or chunking in which values were added. Values
    must be finite with ``|x| < 2**500`` (about 3.3e150); infinities raise ``ValueError``.
    """

    def __init__(self) -> None:
        self.count = 0
        self.n_missing = 0
        self._sum = 0  # exact, units of 2**-1126
        self._sumsq = 0  # exact, units of 2**-1126

    def add(self, values: Any) -> None:
        """Add an array of values; NaN entries are counted in ``n_missing`` and ignored."""
        x = _as_float_array(values)
        loops = jit.loops(x.size, 20)
        if loops is not None and x.size < 1 << 35:  # one compiled pass, the same sums
            hi, lo, used, bins = _scratch()
            n_nan = loops.moment_bins(np.ascontiguousarray(x), hi, lo, used, bins)
            if n_nan < 0:
                raise ValueError("Moments needs finite values with |x| < 2**500 (NaN allowed)")
            self._add_bins(int(x.size), n_nan, used.tolist(), bins)
            return
        nan = np.isnan(x)
        n_nan = int(np.count_nonzero(nan))
        if n_nan:
            x = x[~nan]
        if x.size and not bool(np.all(np.abs(x) < _MAX_ABS)):
            raise ValueError("Moments needs finite values with |x| < 2**500 (NaN allowed)")
        p, err = _two_square(x)
        self.n_missing += n_nan
        self.count += int(x.size)
        self._sum += _exact_sum_units(x)
        self._sumsq += _exact_sum_units(p) + _exact_sum_units(err)

    def _add_bins(self, size: int, n_nan: int, used: list[int], bins: np.ndarray) -> None:
        """Add ``size`` values (``n_nan`` of them NaN) from their bins as
        ``_loops.moment_bins`` reports them: ``bins[r, :used[r]]`` for the values (r 0)
        and the two parts of their squares (r 1 and 2)."""
        self.n_missing += n_nan
        self.count += size - n_nan
        self._sum += _bins_total(bins[0, : used[0]].tolist())
        self._sumsq += _bins_total(bins[1, : used[1]].tolist()) + _bins_total(
            bins[2, : used[2]].tolist()
        )

    @staticmethod
    def add_many(accs: Sequence[Moments], rows: Sequence[np.ndarray] | np.ndarray) -> None:
        """``accs[j].add(rows[j])`` for every j (rows of one length), the same sums, in
        one compiled call per 32 rows instead of one each (a cohort summary adds hundreds
        of columns a chunk); the rows are copied 32 at a time into one buffer."""
        if len(rows) != len(accs):
            raise ValueError("add_many needs one row of values per accumulator")
        if not len(rows):
            return
        n = int(np.shape(rows[0])[-1]) if np.ndim(rows[0]) else 1
        k = len(rows)
        loops = jit.loops(k * n, 20 * k)
        if loops is None or n >= 1 << 35:
            for acc, row in zip(accs, rows, strict=True):
                acc.add(row)
            return
        hi, lo, _, _ = _scratch()
        used, out, nans = _rows_scratch()
        buffer = np.empty((min(k, _ROWS), n))
        for start in range(0, k, _ROWS):
            block = buffer[: min(_ROWS, k - start)]
            for j in range(block.shape[0]):
                block[j] = rows[start + j]  # one length: a row of another raises here
            bad = loops.moment_bins_rows(block, hi, lo, used, out, nans)
            done = block.shape[0] if bad < 0 else bad
            counts, missing = used[:done].tolist(), nans[:done].tolist()
            for j in range(done):
                accs[start + j]._add_bins(n, missing[j], counts[j], out[j])
            if bad >= 0:
                raise ValueError("Moments needs finite values with |x| < 2**500 (NaN allowed)")

    def merge(self, other: Moments) -> None:
        """Add the state of ``other`` into this one (exact, so order does not matter)."""
        if not isinstance(other, Moments):
            raise TypeError(f"cannot merge {type(other).__name__} into Moments")
        self.count += other.count
        self.n_missing += other.n_missing
        self._sum += other._sum
        self._sumsq += other._sumsq

    @property
    def n(self) -> int:
        return self.count

    @property
    def total(self) -> float:
        """The exact sum of the values, correctly rounded to float64."""
        return _units_to_float(self._sum, 1 << _UNIT_SHIFT)

    @property
    def mean(self) -> float:
        if self.count == 0:
            return math.nan
        return _units_to_float(self._sum, self.count << _UNIT_SHIFT)

    @property
    def var(self) -> float:
        """Sample variance (ddof=1), ``(n*Q - S^2) / (n(n-1))`` evaluated exactly."""
        n = self.count
        if n < 2:
            return math.nan
        num = (self._sumsq * n << _UNIT_SHIFT) - self._sum * self._sum
        # num >= 0 when the squares are exact; guard against the documented tiny-|x| case
        return _units_to_float(max(num, 0), (n * (n - 1)) << (2 * _UNIT_SHIFT))

    @property
    def sd(self) -> float:
        return math.sqrt(self.var)

    @property
    def se(self) -> float:
        if self.count < 2:
            return math.nan
        return self.sd / math.sqrt(self.count)

    @property
    def ci95(self) -> tuple[float, float]:
        """Normal approximation ``mean -/+ 1.96 se`` (NaN when n < 2)."""
        return normal_ci(self.mean, self.se)

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.ci95
        return {
            "mean": _json_float(self.mean),
            "ci95": [_json_float(lo), _json_float(hi)],
            "n": self.count,
            "sd": _json_float(self.sd),
        }


class Proportion:
    """Count of successes ``k`` among ``n`` valid trials, with a Wilson (1927) interval."""

    def __init__(self) -> None:
        self.k = 0
        self.n = 0

    def add(self, flags: Any, valid: Any | None = None) -> None:
        """Add boolean outcomes. ``valid`` (bool mask) excludes entries from ``n``.

        Floating-point ``flags`` are accepted: NaN entries are treated as invalid, and any
        other nonzero value as a success.
        """
        f = np.asarray(flags).ravel()
        ok = np.ones(f.shape, dtype=bool)
        if f.dtype.kind == "f":
            ok &= ~np.isnan(f)
        if valid is not None:
            v = np.asarray(valid, dtype=bool).ravel()
            if v.shape != f.shape:
                raise ValueError("flags and valid must have the same length")
            ok &= v
        self.n += int(np.count_nonzero(ok))
        self.k += int(np.count_nonzero(ok & (f != 0)))

    def add_counts(self, k: int, n: int) -> None:
        """Add ``k`` successes among ``n`` valid trials counted elsewhere (a cohort
        summary counts all its proportions in one pass)."""
        if not 0 <= k <= n:
            raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
        self.k += k
        self.n += n

    def merge(self, other: Proportion) -> None:
        if not isinstance(other, Proportion):
            raise TypeError(f"cannot merge {type(other).__name__} into Proportion")
        self.k += other.k
        self.n += other.n

    @property
    def mean(self) -> float:
        return self.k / self.n if self.n else math.nan

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_ci(self.k, self.n)

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.ci95
        return {
            "mean": _json_float(self.mean),
            "ci95": [_json_float(lo), _json_float(hi)],
            "n": self.n,
            "k": self.k,
        }


@functools.lru_cache(maxsize=8)
def _log_edges(lo: float, bins_per_decade: int, n_bins: int) -> np.ndarray:
    """Bin edges of a LogHistogram (shared, read-only: every histogram of a run has the
    same grid, and a cohort summary holds hundreds of them)."""
    i = np.arange(n_bins + 1, dtype=np.float64)
    # fmath, not np.power: numpy's power has CPU-specific SIMD code, and the edges set the
    # quantiles' bits.
    edges = fmath.exp_array(fmath.log(lo) + i * (fmath.log(10.0) / bins_per_decade))
    edges[0] = lo
    edges.flags.writeable = False
    return edges


class LogHistogram:
    """Fixed log-spaced histogram for quantiles of positive, skewed outcomes.

    Bin ``i`` is ``[edges[i], edges[i+1])`` with ``edges[i] = lo * 10**(i / bins_per_decade)``.
    Values ``<= 0``, values in ``(0, lo)`` and values ``>= hi`` are counted in three extra
    regions (zero, underflow, overflow) whose exact minima and maxima are kept. The exact
    overall minimum and maximum and a ``Moments`` of all values (for the mean) are kept
    too. NaNs are skipped. Quantiles are accurate to about one bin width inside
    ``[lo, hi)``.
    """

    def __init__(self, lo: float = 1e-2, hi: float = 1e7, bins_per_decade: int = 2000) -> None:
        if not (lo > 0.0 and hi > lo and math.isfinite(hi)):
            raise ValueError("need 0 < lo < hi < inf")
        if bins_per_decade < 1:
            raise ValueError("bins_per_decade must be >= 1")
        self.lo = float(lo)
        self.bins_per_decade = int(bins_per_decade)
        self.n_bins = round((math.log10(hi) - math.log10(lo)) * self.bins_per_decade)
        if self.n_bins < 1:
            raise ValueError("lo and hi are less than one bin apart")
        self._edges = self._make_edges()
        self.hi = float(self._edges[-1])
        # values per bin (``counts``): made on first use, the bins of added values kept
        # as indices until then (a chunk's histograms hold a few hundred values in
        # 18,000 bins), at most about ``n_bins`` of them
        self._counts: np.ndarray | None = None
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        # regions outside the grid: 0 = (<= 0), 1 = (0, lo), 2 = [hi, inf)
        self.region_counts = [0, 0, 0]
        self.region_min = [math.inf, math.inf, math.inf]
        self.region_max = [-math.inf, -math.inf, -math.inf]
        self.min = math.inf
        self.max = -math.inf
        self.moments = Moments()

    def _make_edges(self) -> np.ndarray:
        return _log_edges(self.lo, self.bins_per_decade, self.n_bins)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_edges"]  # recomputed on unpickling, keeps worker payloads small
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._edges = self._make_edges()

    @property
    def n(self) -> int:
        return self.moments.count

    @property
    def counts(self) -> np.ndarray:
        """The number of values in each bin of the grid."""
        return self._tally()

    def _tally(self) -> np.ndarray:
        """Count the pending indices into the bins; return the bins."""
        if self._counts is None:
            self._counts = np.zeros(self.n_bins, dtype=np.int64)
        if self._pending:
            idx = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
            self._counts += np.bincount(idx, minlength=self.n_bins)
            self._pending, self._n_pending = [], 0
        return self._counts

    def _count(self, idx: np.ndarray) -> None:
        """Count values in bins ``idx`` (kept as indices while there are few)."""
        self._pending.append(idx)
        self._n_pending += int(idx.size)
        if self._n_pending > self.n_bins:
            self._tally()  # memory stays O(n_bins)

    def add(self, values: Any, moments: bool = True) -> None:
        """Add an array of values (NaN skipped; infinities raise ``ValueError``).
        ``moments=False``: the caller has added them to ``self.moments`` already
        (``Moments.add_many``, for many histograms at once)."""
        x = _as_float_array(values)
        if moments:
            self.moments.add(x)  # validates and counts NaNs
        x = x[~np.isnan(x)]
        if x.size == 0:
            return
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        masks = (x <= 0.0, (x > 0.0) & (x < self.lo), x >= self.hi)
        for r, mask in enumerate(masks):
            if mask.any():
                sel = x[mask]
                self.region_counts[r] += int(sel.size)
                self.region_min[r] = min(self.region_min[r], float(sel.min()))
                self.region_max[r] = max(self.region_max[r], float(sel.max()))
        inside = x[(x >= self.lo) & (x < self.hi)]
        if inside.size:
            self._count(self._bin_index(inside))

    def _bin_index(self, x: np.ndarray) -> np.ndarray:
        """Bin of each ``x`` in [lo, hi), defined by comparisons with the stored edges."""
        last = self.n_bins - 1
        raw = np.floor((np.log10(x) - math.log10(self.lo)) * self.bins_per_decade)
        idx = np.clip(raw, 0, last).astype(np.intp)
        edges = self._edges
        idx -= x < edges[idx]  # correct a rounding error in log10 near an edge (any CPU's)
        idx += x >= edges[idx + 1]
        return np.clip(idx, 0, last)

    def merge(self, other: LogHistogram) -> None:
        if not isinstance(other, LogHistogram):
            raise TypeError(f"cannot merge {type(other).__name__} into LogHistogram")
        if (other.lo, other.hi, other.bins_per_decade) != (
            self.lo,
            self.hi,
            self.bins_per_decade,
        ):
            raise ValueError("cannot merge LogHistograms with different grids")
        if other._counts is not None:
            if self._counts is None:
                self._counts = other._counts.copy()
            else:
                self._counts += other._counts
        for idx in other._pending:  # never changed once made: shared, not copied
            self._count(idx)
        for r in range(3):
            self.region_counts[r] += other.region_counts[r]
            self.region_min[r] = min(self.region_min[r], other.region_min[r])
            self.region_max[r] = max(self.region_max[r], other.region_max[r])
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.moments.merge(other.moments)

    @property
    def mean(self) -> float:
        return self.moments.mean

    def _order_statistic(self, j: int, cum: np.ndarray, all_counts: np.ndarray) -> float:
        """Estimate of the ``j``-th (0-based) smallest value.

        The smallest and largest values are the exact min and max. Inside grid bins the
        ``c`` values of a bin are placed at the geometric positions ``(i + 0.5) / c`` across
        the bin (narrowed to [min, max]); in the zero region they are spread linearly and in
        the under/overflow regions geometrically between that region's exact min and max.
        """
        if j == 0:
            return self.min
        if j == int(cum[-1]) - 1:
            return self.max
        b = int(np.searchsorted(cum, j, side="right"))
        c = int(all_counts[b])
        rank = j - (int(cum[b]) - c)  # 0-based rank within the region/bin
        if b == 0 or b == 1 or b == len(all_counts) - 1:
            r = 0 if b == 0 else (1 if b == 1 else 2)
            lo_v, hi_v = self.region_min[r], self.region_max[r]
            f = rank / (c - 1) if c > 1 else 0.0
            if r == 0:
                return lo_v + f * (hi_v - lo_v)
            return lo_v * (hi_v / lo_v) ** f
        i = b - 2
        lo_e = max(float(self._edges[i]), self.min)
        hi_e = min(float(self._edges[i + 1]), self.max)
        return lo_e * (hi_e / lo_e) ** ((rank + 0.5) / c)

    def quantile(self, q: float) -> float:
        """q-quantile with numpy's default ('linear') definition, from the histogram.

        The value at rank ``h = q (n - 1)`` of the sorted data is interpolated linearly
        between the estimated order statistics ``floor(h)`` and ``floor(h) + 1``, then
        clamped to the exact ``[min, max]``. NaN if empty.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError("q must be in [0, 1]")
        n = self.n
        if n == 0:
            return math.nan
        all_counts = np.concatenate(
            (self.region_counts[:2], self.counts, self.region_counts[2:])
        ).astype(np.int64)
        cum = np.cumsum(all_counts)
        h = q * (n - 1)
        j = min(math.floor(h), n - 1)
        frac = h - j
        v = self._order_statistic(j, cum, all_counts)
        if frac > 0.0 and j + 1 < n:
            v_next = self._order_statistic(j + 1, cum, all_counts)
            v = v + frac * (v_next - v)
        return min(max(v, self.min), self.max)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": _json_float(self.quantile(0.5)),
            "p05": _json_float(self.quantile(0.05)),
            "p95": _json_float(self.quantile(0.95)),
            "mean": _json_float(self.mean),
            "n": self.n,
        }


class KaplanMeier:
    """Kaplan-Meier product-limit estimate for integer-day times ``0..horizon_days``.

    Only two count arrays are kept (events and censorings per day), so memory is
    O(horizon). At an event day ``t_j`` with ``d_j`` events and ``n_j`` at risk (time >= t_j;
    censored at ``t_j`` counts as at risk), ``S(t) = prod_{t_j <= t} (n_j - d_j) / n_j``.
    Pointwise 95 % limits use Greenwood's (1926) variance on the log(-log S) scale
    (Kalbfleisch & Prentice 1980), exactly as
    ``scipy.stats.ecdf(...).sf.confidence_interval(method='log-log')``; they are NaN where
    that formula is undefined (S = 0).
    """

    def __init__(self, horizon_days: int) -> None:
        if int(horizon_days) != horizon_days or horizon_days < 0:
            raise ValueError("horizon_days must be a non-negative integer")
        self.horizon_days = int(horizon_days)
        self.events = np.zeros(self.horizon_days + 1, dtype=np.int64)
        self.censored = np.zeros(self.horizon_days + 1, dtype=np.int64)
        # the censorings that are a competing event (a death): counted among ``censored``
        # too, so the Kaplan-Meier curve is unchanged; they give the cumulative incidence
        self.competing = np.zeros(self.horizon_days + 1, dtype=np.int64)

    def add(self, times: Any, observed: Any, competing: Any = None) -> None:
        """Add subjects: event (``observed`` True) or censoring (False) at day ``times``;
        ``competing`` marks the censorings that are a competing event (a death before
        the event), for :meth:`cumulative_incidence`."""
        t = np.asarray(times).ravel()
        obs = np.asarray(observed, dtype=bool).ravel()
        if t.shape != obs.shape:
            raise ValueError("times and observed must have the same length")
        comp = None
        if competing is not None:
            comp = np.asarray(competing, dtype=bool).ravel()
            if comp.shape != obs.shape:
                raise ValueError("competing must have the length of times")
            if bool(np.any(comp & obs)):
                raise ValueError("a subject with the event cannot also have a competing event")
        if t.size == 0:
            return
        if t.dtype.kind == "f":
            if not bool(np.all(np.floor(t) == t)):
                raise ValueError("times must be whole days")
        elif t.dtype.kind not in "iu":
            raise ValueError("times must be integers")
        if not bool(np.all((t >= 0) & (t <= self.horizon_days))):
            raise ValueError(f"times must lie in [0, {self.horizon_days}]")
        ti = t.astype(np.intp)
        size = self.horizon_days + 1
        self.events += np.bincount(ti[obs], minlength=size)
        self.censored += np.bincount(ti[~obs], minlength=size)
        if comp is not None:
            self.competing += np.bincount(ti[comp], minlength=size)

    def merge(self, other: KaplanMeier) -> None:
        if not isinstance(other, KaplanMeier):
            raise TypeError(f"cannot merge {type(other).__name__} into KaplanMeier")
        if other.horizon_days != self.horizon_days:
            raise ValueError("cannot merge KaplanMeier estimators with different horizons")
        self.events += other.events
        self.censored += other.censored
        self.competing += other.competing

    @property
    def n(self) -> int:
        return int(self.events.sum() + self.censored.sum())

    def _at_risk(self) -> np.ndarray:
        """The number at risk (time >= day) on each day ``0..horizon``."""
        total = self.events + self.censored
        return int(total.sum()) - np.concatenate(([0], np.cumsum(total)[:-1]))

    def survival(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(days, S, lo, hi)`` at the distinct event days (empty arrays if no events)."""
        at_risk = self._at_risk()
        days = np.flatnonzero(self.events)
        d = self.events[days].astype(np.float64)
        n = at_risk[days].astype(np.float64)
        s = np.cumprod((n - d) / n)
        with np.errstate(divide="ignore", invalid="ignore"):
            greenwood = np.cumsum(d / (n * (n - d)))
            log_s = fmath.log_array(s)
            se = np.sqrt(1.0 / log_s**2 * greenwood)
            lnl = fmath.log_array(-log_s)
            z_se = Z95 * se
            lo = fmath.exp_array(-fmath.exp_array(lnl + z_se))
            hi = fmath.exp_array(-fmath.exp_array(lnl - z_se))
        lo = np.clip(lo, 0.0, 1.0)
        hi = np.clip(hi, 0.0, 1.0)
        return days, s, lo, hi

    def cumulative_incidence(self) -> tuple[np.ndarray, np.ndarray]:
        """``(days, F)``: the Aalen-Johansen cumulative incidence of the event with the
        competing event (a death) as such, not as a censoring, at the event days:
        ``F(t) = sum_{t_j <= t} S(t_j-) d_j / n_j`` with ``S`` the Kaplan-Meier curve of
        either event (Aalen & Johansen 1978; Putter et al., Stat Med 2007;26:2389-430).
        It is the share of patients who reach the event by day ``t``; ``1 - S_KM`` of
        :meth:`survival` treats deaths as censorings and is the share who would have,
        had nobody died, always at least ``F``. Without competing events the two are
        equal."""
        at_risk = self._at_risk()
        days = np.flatnonzero(self.events | self.competing)
        n = at_risk[days].astype(np.float64)
        d = self.events[days].astype(np.float64)
        c = self.competing[days].astype(np.float64)
        before = np.concatenate(([1.0], np.cumprod(1.0 - (d + c) / n)[:-1]))
        cif = np.cumsum(before * d / n)
        keep = self.events[days] > 0
        return days[keep], cif[keep]

    @staticmethod
    def _first_at_or_below(days: np.ndarray, curve: np.ndarray, level: float) -> int | None:
        hit = np.flatnonzero(curve <= level)  # NaN compares False
        return int(days[hit[0]]) if hit.size else None

    def median(self) -> int | None:
        """First day with ``S(t) <= 0.5``; None if the curve never gets there."""
        days, s, _, _ = self.survival()
        return self._first_at_or_below(days, s, 0.5)

    def median_ci(self) -> tuple[int | None, int | None]:
        """95 % interval for the median by inverting the pointwise log-log band.

        Brookmeyer & Crowley (1982): the lower limit is the first day on which the lower
        band is <= 0.5, the upper limit the first day on which the upper band is <= 0.5
        (None if never).
        """
        days, _, lo, hi = self.survival()
        return self._first_at_or_below(days, lo, 0.5), self._first_at_or_below(days, hi, 0.5)

    def proportion_by(self, t: int) -> tuple[float, float, float]:
        """Cumulative incidence ``1 - S(t)`` by day ``t`` with its 95 % interval."""
        days, s, lo, hi = self.survival()
        i = int(np.searchsorted(days, t, side="right")) - 1
        if i < 0:
            return 0.0, 0.0, 0.0
        return 1.0 - float(s[i]), 1.0 - float(hi[i]), 1.0 - float(lo[i])

    def at_risk(self, day: int) -> int:
        """Subjects still at risk on ``day`` (time >= day)."""
        total = self.events + self.censored
        return int(total[int(day) :].sum())

    def _areas(
        self, tau: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(days, d, n, pieces, tail)`` up to ``tau`` (default: the horizon): the event
        days, their events and numbers at risk, the area under the curve between
        successive edges ``0, days..., tau`` (S is 1 before the first event day and
        ``s_j`` from ``days[j]`` to the next), and ``A_j``, the area from ``days[j]`` to
        ``tau`` (the pieces after the j-th edge)."""
        tau = self.horizon_days if tau is None else int(tau)
        days, s, _, _ = self.survival()
        keep = days <= tau
        days, s = days[keep], s[keep]
        at_risk = self._at_risk()
        d = self.events[days].astype(np.float64)
        n = at_risk[days].astype(np.float64)
        edges = np.concatenate(([0], days, [tau])).astype(np.float64)
        pieces = np.concatenate(([1.0], s)) * np.diff(edges)
        tail = np.cumsum(pieces[::-1])[::-1][1:]
        return days, d, n, pieces, tail

    def rmst(self, tau: int | None = None) -> tuple[float, float]:
        """Restricted mean time to the event up to day ``tau`` (default: the horizon), the
        area under the Kaplan-Meier curve, and its variance (Klein & Moeschberger 2003,
        eq. 4.5.1, as survRM2): ``sum_j A_j^2 d_j / (n_j (n_j - d_j))`` with ``A_j`` the
        area under the curve from event day ``t_j`` to ``tau``. Without censoring it is the
        mean of min(T, tau) and the variance that of that mean (with divisor n)."""
        _, d, n, pieces, tail = self._areas(tau)
        area = float(pieces.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = tail**2 * d / (n * (n - d))
        var = float(np.sum(terms[np.isfinite(terms)])) if terms.size else 0.0
        return area, var

    def rmst_influence(self, tau: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each subject's influence on :meth:`rmst` to ``tau``: ``(censored, event)``,
        two arrays over days ``0..horizon``, the value for a subject censored (or with its
        event) on that day. From the martingale representation of the Kaplan-Meier
        estimator (Andersen et al. 1993, IV.3), ``RMST - rmst ~ -sum_i int_0^tau A(u) /
        Y(u) dM_i(u)``, ``A(u)`` the area under the curve from ``u`` to ``tau``, ``Y`` the
        number at risk; with tied days the exact derivative of the product-limit curve in
        each day's hazard ``d_j / n_j`` replaces ``A_j`` by ``A_j n_j / (n_j - d_j)``, so a
        subject with time ``T`` contributes ``sum_{t_j <= min(T, tau)} A_j d_j / (n_j (n_j
        - d_j)) - [event at T <= tau] A(T) / (n(T) - d(T))``. The contributions sum to 0,
        their squares' expectation is the Klein-Moeschberger variance of :meth:`rmst`, and
        without censoring each is ``(min(T, tau) - mean) / n`` exactly. They make a paired
        difference of two curves computable (:meth:`PairedDifference.rmst_difference`)."""
        days, d, n, _, tail = self._areas(tau)
        # the derivative of S(t) in the hazard d_j / n_j is -S(t) / (1 - d_j / n_j) for
        # t >= t_j; where the curve drops to 0 (d_j = n_j) the area after is 0 too
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(n > d, tail / (n - d), 0.0)
        step = np.zeros(self.horizon_days + 1)
        step[days] = weight * d / n
        compensator = np.cumsum(step)
        jump = np.zeros(self.horizon_days + 1)
        jump[days] = weight
        return compensator, compensator - jump

    def to_dict(self) -> dict[str, Any]:
        days, s, lo, hi = self.survival()
        med_lo, med_hi = self.median_ci()
        rmst, var = self.rmst()
        half = Z95 * math.sqrt(var)
        return {
            "mean": self.median(),
            "ci95": [med_lo, med_hi],
            "estimator": "km_median",
            "rmst": rmst,
            "rmst_ci95": [max(0.0, rmst - half), min(float(self.horizon_days), rmst + half)],
            "rmst_variance": var,
            "rmst_to_day": self.horizon_days,
            "n": self.n,
            "events": int(self.events.sum()),
            "censored": int(self.censored.sum()),
            "curve": {
                "day": [int(v) for v in days],
                "survival": [_json_float(v) for v in s.tolist()],
                "lo": [_json_float(v) for v in lo.tolist()],
                "hi": [_json_float(v) for v in hi.tolist()],
                # deaths as a competing event (Aalen-Johansen), at the same days
                "cumulative_incidence": [
                    _json_float(v) for v in self.cumulative_incidence()[1].tolist()
                ],
                # days on which someone was censored before the end (marks on figures)
                "censored_day": [int(v) for v in np.flatnonzero(self.censored[:-1])],
                # numbers at risk (time >= day) at every 28th day
                "at_risk_day": list(range(0, self.horizon_days + 1, 28)),
                "at_risk": [self.at_risk(t) for t in range(0, self.horizon_days + 1, 28)],
            },
        }


class PairedDifference:
    """The difference ``mean(b) - mean(a)`` between two arms run on the same patients.

    Each arm's mean is over its own patients with a value (a NaN is a value missing in
    that arm: a visit after the patient's death). When every patient has a value in both
    arms or in neither, this is the mean of the per-patient differences ``b - a`` over
    the pairs, with the paired interval (much narrower, under common random numbers, than
    that of two independent means). When some patients have a value in one arm only
    (they died in one arm before the visit), it is still the difference of the two arms'
    own means, the values shown beside it, not the mean over the patients alive in both;
    its variance is the linearised (delta-method) variance of a difference of two means
    over partially overlapping samples: ``SS_a / (n_a (n_a - 1)) + SS_b / (n_b (n_b - 1))
    - 2 C n_p / ((n_p - 1) n_a n_b)``, ``SS`` the sums of squared deviations from each
    arm's mean, ``C`` the co-deviation over the ``n_p`` pairs; with ``n_a = n_b = n_p``
    it is the paired variance. Every sum is exact, so the result does not depend on the
    chunking.

    Counts of ``b - a > tol`` ("higher"), ``b - a < -tol`` ("lower") and ``|b - a| <=
    tol`` ("same") are over the pairs. For times to an event (``censored``: each value is
    the time to the event or to censoring, ``add`` given whether the event was seen), a
    pair is ordered only when the earlier time is an event: "lower" if b's event comes
    before a's time, "higher" if a's before b's, "same" if both are events at the same
    time or both censored at the same time; any other pair (the earlier time is a
    censoring: a death, the end of follow-up) cannot be ordered ("undetermined").
    Such a difference also keeps the joint counts of each pair's (time, event seen) in
    a and in b, from which :meth:`rmst_difference` gives the difference of the two
    Kaplan-Meier restricted means with its paired interval.
    """

    def __init__(self, tol: float = 0.0, censored: bool = False) -> None:
        if not tol >= 0.0:
            raise ValueError("tol must be >= 0")
        self.tol = float(tol)
        self.censored = bool(censored)
        self.undetermined = 0
        self.diff = Moments()  # b - a over the pairs
        self.a_pair = Moments()  # a over the pairs
        self.b_pair = Moments()
        self.a_only = Moments()  # a where b is missing
        self.b_only = Moments()
        self.higher = 0
        self.lower = 0
        self.same = 0
        # censored: the pairs' (time, seen) in a and b, packed in one int64 key
        # ((t_a * 2 + seen_a) << 32 | t_b * 2 + seen_b), sorted, with their counts
        self._joint_keys = np.empty(0, dtype=np.int64)
        self._joint_counts = np.empty(0, dtype=np.int64)
        self._joint_ok = True  # False once a time is not a whole day in [0, 2^30)

    def add(self, a: Any, b: Any, observed: tuple[Any, Any] | None = None) -> None:
        """``observed``: for times to an event (``censored``), whether each patient's
        event was seen in a and in b."""
        xa = _as_float_array(a)
        xb = _as_float_array(b)
        if xa.shape != xb.shape:
            raise ValueError("a and b must have the same length")
        if self.censored != (observed is not None):
            raise ValueError("give observed for times to an event (censored=True), only then")
        d = xb - xa
        self.diff.add(d)  # NaN pairs give NaN differences and are skipped
        na, nb = np.isnan(xa), np.isnan(xb)
        if not (na.any() or nb.any()):
            self.a_pair.add(xa)
            self.b_pair.add(xb)
        else:
            pair = ~(na | nb)
            self.a_pair.add(xa[pair])
            self.b_pair.add(xb[pair])
            self.a_only.add(xa[nb & ~na])
            self.b_only.add(xb[na & ~nb])
            d = d[pair]
            if observed is not None:
                observed = (np.asarray(observed[0])[pair], np.asarray(observed[1])[pair])
        if observed is None:
            self.higher += int(np.count_nonzero(d > self.tol))
            self.lower += int(np.count_nonzero(d < -self.tol))
            self.same += int(np.count_nonzero(np.abs(d) <= self.tol))
            return
        oa = np.asarray(observed[0], dtype=bool)
        ob = np.asarray(observed[1], dtype=bool)
        both = ~(na | nb)
        self._add_joint(xa[both], oa, xb[both], ob)
        higher = np.count_nonzero((d > self.tol) & oa)
        lower = np.count_nonzero((d < -self.tol) & ob)
        same = np.count_nonzero((np.abs(d) <= self.tol) & (oa == ob))
        self.higher += int(higher)
        self.lower += int(lower)
        self.same += int(same)
        self.undetermined += int(d.size - higher - lower - same)

    def _add_joint(self, ta: np.ndarray, oa: np.ndarray, tb: np.ndarray, ob: np.ndarray) -> None:
        if not self._joint_ok or ta.size == 0:
            return
        whole = (np.floor(ta) == ta) & (np.floor(tb) == tb)
        if not bool(np.all(whole & (ta >= 0) & (tb >= 0) & (ta < 2**30) & (tb < 2**30))):
            self._joint_ok = False
            return
        code_a = ta.astype(np.int64) * 2 + oa.astype(np.int64)
        code_b = tb.astype(np.int64) * 2 + ob.astype(np.int64)
        keys, counts = np.unique((code_a << 32) | code_b, return_counts=True)
        self._merge_joint(keys, counts.astype(np.int64))

    def _merge_joint(self, keys: np.ndarray, counts: np.ndarray) -> None:
        if self._joint_keys.size:
            keys = np.concatenate((self._joint_keys, keys))
            counts = np.concatenate((self._joint_counts, counts))
            keys, where = np.unique(keys, return_inverse=True)
            counts = np.bincount(where, weights=counts, minlength=keys.size).astype(np.int64)
        self._joint_keys, self._joint_counts = keys, counts

    def paired_proportion_ci(self) -> tuple[float, float] | None:
        """For 0/1 values: Newcombe's (1998, method 10) hybrid score interval for the
        difference ``p_b - p_a`` of the two arms' proportions, each over its own patients
        with a value (the values shown beside the difference), from the Wilson interval
        of each and the correlation of the two estimates. That correlation is the phi of
        the pairs (its numerator continuity-corrected, as the paper's) times ``n_p /
        sqrt(n_a n_b)``, the share of the two samples the ``n_p`` pairs make, as the
        MOVER construction of Zou & Donner (2008) asks. With every patient in both arms
        it is Newcombe's paired method 10 exactly; with no pair, his method 10 for
        independent proportions. Unlike the Wald interval of the mean difference, it
        does not collapse to zero width when few or no patients differ (Newcombe RG,
        Improved confidence intervals for the difference between binomial proportions
        based on paired data, Stat Med 1998;17:2635-50; Zou GY, Donner A, Construction
        of confidence limits about effect measures: a general approach, Stat Med
        2008;27:1693-702). None when an arm has no value or some value is not 0 or 1."""
        if self.censored or self.tol >= 1.0 or self.n_a == 0 or self.n_b == 0:
            return None
        parts = (self.a_pair, self.b_pair, self.a_only, self.b_only)
        if any(m._sumsq != m._sum for m in parts):
            return None  # some value is not 0 or 1 (0 and 1 are their own squares)
        unit = 1 << _UNIT_SHIFT

        def ones(*ms: Moments) -> int:
            # 0/1 values sum exactly to a whole number of units of 2**-1126
            return sum(m._sum for m in ms) // unit

        n, n_a, n_b = self.n, self.n_a, self.n_b
        k_a, k_b = ones(self.a_pair, self.a_only), ones(self.b_pair, self.b_only)
        n01, n10 = self.higher, self.lower  # pairs with (a, b) = (0, 1) and (1, 0)
        pair_a1, pair_b1 = ones(self.a_pair), ones(self.b_pair)
        n11 = pair_a1 - n10
        n00 = n - n11 - n10 - n01
        if self.same + n01 + n10 != n or n11 < 0 or n00 < 0 or n11 + n01 != pair_b1:
            return None
        p_b, p_a = k_b / n_b, k_a / n_a
        lb, ub = wilson_ci(k_b, n_b)
        la, ua = wilson_ci(k_a, n_a)
        phi = 0.0
        cells = pair_b1 * (n - pair_b1) * pair_a1 * (n - pair_a1)
        if cells > 0:
            num = n11 * n00 - n01 * n10
            corrected = num - n / 2 if num > n / 2 else (num if num < 0 else 0.0)
            phi = corrected / math.sqrt(cells) * (n / math.sqrt(n_a * n_b))
        diff = p_b - p_a
        down = (p_b - lb) ** 2 - 2 * phi * (p_b - lb) * (ua - p_a) + (ua - p_a) ** 2
        up = (ub - p_b) ** 2 - 2 * phi * (ub - p_b) * (p_a - la) + (p_a - la) ** 2
        return max(-1.0, diff - math.sqrt(max(0.0, down))), min(1.0, diff + math.sqrt(max(0.0, up)))

    def rmst_difference(self, horizon_days: int) -> tuple[float, float] | None:
        """For times to an event: the difference b - a of the Kaplan-Meier restricted
        mean times to ``horizon_days`` (each curve from the pairs' own times, so equal to
        each arm's curve when every patient has a time in both arms) and its standard
        error from the pairs: ``sqrt(n / (n - 1) sum_i (phi_b,i - phi_a,i)^2)``, ``phi``
        each patient's influence on his arm's restricted mean
        (:meth:`KaplanMeier.rmst_influence`). Without censoring this is exactly the
        paired interval of the mean of the min(T, horizon) differences. None when some
        time was not a whole day in range, or with fewer than two pairs."""
        if not self.censored or not self._joint_ok:
            return None
        n = int(self._joint_counts.sum())
        if n < 2:
            return None
        code_a = self._joint_keys >> 32
        code_b = self._joint_keys & 0xFFFFFFFF
        if int(max(code_a.max(), code_b.max())) >> 1 > horizon_days:
            return None
        counts = self._joint_counts
        size = horizon_days + 1
        phi = []
        rmst = []
        for code in (code_a, code_b):
            t, e = code >> 1, (code & 1).astype(bool)
            km = KaplanMeier(horizon_days)
            km.events = np.bincount(t[e], weights=counts[e], minlength=size).astype(np.int64)
            km.censored = np.bincount(t[~e], weights=counts[~e], minlength=size).astype(np.int64)
            rmst.append(km.rmst(horizon_days)[0])
            if_censored, if_event = km.rmst_influence(horizon_days)
            phi.append(np.where(e, if_event[t], if_censored[t]))
        var = n / (n - 1) * float(np.sum(counts * (phi[1] - phi[0]) ** 2))
        return rmst[1] - rmst[0], math.sqrt(var)

    def merge(self, other: PairedDifference) -> None:
        if not isinstance(other, PairedDifference):
            raise TypeError(f"cannot merge {type(other).__name__} into PairedDifference")
        if other.tol != self.tol or other.censored != self.censored:
            raise ValueError("cannot merge PairedDifference objects with different tol")
        for mine, theirs in zip(self._parts(), other._parts(), strict=True):
            mine.merge(theirs)
        self._joint_ok = self._joint_ok and other._joint_ok
        if other._joint_keys.size:
            self._merge_joint(other._joint_keys, other._joint_counts)
        self.higher += other.higher
        self.lower += other.lower
        self.same += other.same
        self.undetermined += other.undetermined

    def _parts(self) -> tuple[Moments, ...]:
        return (self.diff, self.a_pair, self.b_pair, self.a_only, self.b_only)

    @property
    def n(self) -> int:
        """Patients with a value in both arms."""
        return self.diff.count

    @property
    def n_a(self) -> int:
        return self.a_pair.count + self.a_only.count

    @property
    def n_b(self) -> int:
        return self.b_pair.count + self.b_only.count

    @property
    def partial(self) -> bool:
        """Some patients have a value in one arm only."""
        return bool(self.a_only.count or self.b_only.count)

    def estimate(self) -> tuple[float, float]:
        """The difference of the arms' means and its standard error (NaN if undefined)."""
        if not self.partial:
            return self.diff.mean, self.diff.se
        na, nb, npair = self.n_a, self.n_b, self.n
        if na == 0 or nb == 0:
            return math.nan, math.nan
        unit = 1 << _UNIT_SHIFT
        sa = Fraction(self.a_pair._sum + self.a_only._sum, unit)
        sb = Fraction(self.b_pair._sum + self.b_only._sum, unit)
        ma, mb = sa / na, sb / nb
        mean = _units_to_float((mb - ma).numerator, (mb - ma).denominator)
        if na < 2 or nb < 2:
            return mean, math.nan
        ss_a = Fraction(self.a_pair._sumsq + self.a_only._sumsq, unit) - sa * ma
        ss_b = Fraction(self.b_pair._sumsq + self.b_only._sumsq, unit) - sb * mb
        var = ss_a / (na * (na - 1)) + ss_b / (nb * (nb - 1))
        if npair >= 2:
            # the co-deviation over the pairs from the arms' means, from the exact sums
            # of a, b and b - a over the pairs: 2 C = SS'_a + SS'_b - SS'_(b-a)
            def dev2(m: Moments, centre: Fraction) -> Fraction:
                s, q = Fraction(m._sum, unit), Fraction(m._sumsq, unit)
                return q - 2 * centre * s + npair * centre * centre

            two_c = dev2(self.a_pair, ma) + dev2(self.b_pair, mb) - dev2(self.diff, mb - ma)
            var -= two_c * npair / ((npair - 1) * na * nb)
        v = _units_to_float(var.numerator, var.denominator)
        return mean, math.sqrt(max(0.0, v))

    def _pct(self, k: int) -> float | None:
        return 100.0 * k / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        mean, se = self.estimate()
        lo, hi = normal_ci(mean, se)
        return {
            "mean_difference": _json_float(mean),
            "ci95": [_json_float(lo), _json_float(hi)],
            "n": self.n,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "higher_pct": self._pct(self.higher),
            "lower_pct": self._pct(self.lower),
            "same_pct": self._pct(self.same),
            **({"undetermined_pct": self._pct(self.undetermined)} if self.censored else {}),
        }


def combination_of_means(
    samples: Sequence[Any], coefs: Sequence[float]
) -> tuple[float, float, int]:
    """``sum_j c_j mean(x_j)`` over samples of the same patients, each mean over its own
    patients with a value (NaN: missing in that sample), its standard error and the
    number of patients with a value in every sample.

    The variance is the linearised (delta-method) variance of a linear combination of
    means over partially overlapping samples, ``sum_jk c_j c_k C_jk n_jk / ((n_jk - 1)
    n_j n_k)``, ``C_jk`` the co-deviation from the two samples' means over the ``n_jk``
    patients in both (``C_jj`` the sum of squared deviations), a pair with ``n_jk < 2``
    adding nothing. With two samples and coefficients (-1, 1) it is
    :class:`PairedDifference`'s; when every patient has a value in all samples or in
    none, the paired variance of the per-patient combination. Sums are correctly rounded
    (``math.fsum``), so the result depends on the values only, not on how they were
    computed or chunked.
    """
    xs = [_as_float_array(x) for x in samples]
    if len(xs) != len(coefs) or not xs:
        raise ValueError("one coefficient per sample")
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError("the samples must have the same length")
    has = [~np.isnan(x) for x in xs]
    n = [int(np.count_nonzero(h)) for h in has]
    complete = int(np.count_nonzero(np.logical_and.reduce(has)))
    if any(k == 0 for k in n):
        return math.nan, math.nan, complete
    means = [math.fsum(x[h]) / k for x, h, k in zip(xs, has, n, strict=True)]
    mean = math.fsum(c * m for c, m in zip(coefs, means, strict=True))
    if any(k < 2 for k in n):
        return mean, math.nan, complete
    dev = [np.where(h, x - m, 0.0) for x, h, m in zip(xs, has, means, strict=True)]
    terms = []
    for j in range(len(xs)):
        for k in range(j, len(xs)):
            both = has[j] & has[k]
            n_jk = int(np.count_nonzero(both))
            if n_jk < 2 or coefs[j] == 0 or coefs[k] == 0:
                continue
            c_jk = math.fsum((dev[j][both] * dev[k][both]).tolist())
            w = (1 if j == k else 2) * coefs[j] * coefs[k]
            terms.append(w * c_jk * n_jk / ((n_jk - 1) * n[j] * n[k]))
    var = math.fsum(terms)
    return mean, math.sqrt(max(0.0, var)), complete
