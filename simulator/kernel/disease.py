"""The disease between events: an exact, linear state (docs/model.md §2).

State (all per patient; ``a = exp(y)`` is muscle inflammation, 1 at diagnosis):

    dy/dt  = k (s + z - y) - e - g v                     log muscle inflammation
    dq/dt  = k_ck (y - q)                                log CPK excess (CPK turnover)
    dw/dt  = k_w (y - w) - rho_f g v                     log reversible weakness
    dx_d/dt = k_d (s + z - x_d) - sigma_d e - rho_d g v  log activity of extramuscular
                                                         domain d (skin, lung, swallowing)
    dz/dt  = -k_b z                                      fading acute drive (and flares)
    df/dt  = -a_f f,   dl/dt = -a_s l                    serum IgG excess, fast / slow, g/L
    dF/dt  = -a_f F,   dL/dt = -a_s L                    effective (dose-saturated) IgG
    dv/dt  = k_e (F + L - v)                             IVIG effect compartment
    de/dt  = k_c (c - e)                                 steroid + sparing effect, 1/day
    dJ/dt  = y                                           integral of log inflammation

``s`` (the patient's lasting drive) and ``c`` (the effect the current doses would reach)
are constant between events. The rates k_ck, k_w, k_d, k_b, a_f, a_s, k_e, k_c are the
same for every patient; the reversion rate k varies between patients and is represented
by ``RATE_NODES`` equiprobable quantile nodes of its distribution, so the exact solution
over a step tau, x(tau) = expm(A_k tau) x(0), needs one 16x16 matrix exponential per
(node, tau) pair: cached, and events fall on whole days. The IVIG sensitivity g enters
only through the couplings from v, and every state downstream of v depends on them
linearly, so its entries of the transition are those of g = 1 scaled by g.

Nonlinear parts stay exact by construction: IVIG saturates in the dose of each cycle
(the effective IgG bolus is scaled once per cycle), and damage accrues once per 4-week
window from the exact integral of y over the window (``damage_step``, applied at the
month-day visits), so no other event changes it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from scipy import special

from .. import fmath, jit
from ..recent import Recent
from ..scenario.schema import lognormal_sigma
from . import step_generated
from .xp import Ops

T = TypeVar("T")

__all__ = [
    "DOMAINS",
    "RATE_NODES",
    "Propagator",
    "damage_step",
    "enzyme_level",
    "measured",
    "rate_node_values",
    "step",
    "step_one",
]

Y, Q, W, XS, XL, XD, Z, F, L, FE, LE, V, E, J, S, C = range(16)
N_STATES = 16
RATE_NODES = 7
# Extramuscular domains, in this order everywhere: skin (DM), lung (ILD), swallowing.
DOMAINS = ("skin", "lung", "dysphagia")
X_DOMAINS = (XS, XL, XD)

# Rows fed by the rest of the system (the "downstream" states) and their sources.
_DOWNSTREAM = (Y, Q, W, XS, XL, XD, J)
_SOURCES = (Y, Q, W, XS, XL, XD, Z, E, S, C, FE, LE, V)
_G_SCALED = (FE, LE, V)
_OWN_ONLY = (Q, W, XS, XL, XD)  # states that feed only themselves
PATTERN: tuple[tuple[int, int], ...] = tuple(
    (r, c)
    for r in _DOWNSTREAM
    for c in _SOURCES
    if not (c in _OWN_ONLY and c != r) and not (r == Y and c == J)
)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix products of two stacks (m, n, n), matrix by matrix."""
    # einsum without optimisation runs numpy's own loop, never BLAS: the same bits whatever
    # the BLAS build or its number of threads (a Dask worker runs BLAS single-threaded,
    # and BLAS blocking changes the last bits of a matrix product with the thread count).
    # Its loop computes each matrix of a stack as it computes that matrix alone.
    return cast(np.ndarray, np.einsum("mij,mjk->mik", a, b))


def expm(a: np.ndarray) -> np.ndarray:
    """Matrix exponential by scaling and squaring of a 24-term Taylor series.

    The scaled matrix has norm <= 1/4, where the truncation error (1/4)^25 / 25! is far
    below double precision; tests/test_kinetics.py checks it against solve_ivp. Written
    here rather than scipy.linalg.expm so that the result does not depend on BLAS threads.
    """
    return cast(np.ndarray, expm_many(a[None])[0])


def norms_inf(mats: np.ndarray) -> np.ndarray:
    """The infinity norm (largest row sum of absolute values) of each matrix of a stack,
    each row summed from its first column on (the order ``_loops.expm_entries`` sums in,
    so the compiled chunk loop scales a matrix as this does)."""
    a = np.abs(mats)
    acc = a[:, :, 0].copy()
    for j in range(1, a.shape[2]):
        acc += a[:, :, j]
    return cast(np.ndarray, acc.max(axis=1))


def squarings_for(norm: float) -> int:
    """The squarings that bring a matrix of this norm to 1/4 or less: ``ceil(log2(norm /
    0.25))``, at least 0, computed exactly from the binary exponent (``frexp``, no
    ``log2``: the same on every C library and in numba)."""
    if not norm > 0.25:  # (and 0, NaN)
        return 0
    m, e = math.frexp(norm * 4.0)  # norm * 4 = m * 2**e, m in [0.5, 1): exact
    return e - 1 if m == 0.5 else e


def expm_many(mats: np.ndarray) -> np.ndarray:
    """``expm`` of each matrix of a stack (m, n, n), batched: each matrix has its own
    scaling and squarings, and each result has the bits of that matrix alone, whatever
    else is in the batch (tests/test_kinetics.py)."""
    squarings = np.array([squarings_for(x) for x in norms_inf(mats).tolist()], dtype=np.int64)
    b = mats / (2.0**squarings)[:, None, None]
    loops = jit.loops(len(mats), 24 * 2 + 2 * int(squarings.max(initial=0)))
    if loops is not None:  # numba's loop: the same operations in the same order
        out = np.empty(mats.shape, dtype=np.float64)
        loops.expm_taylor(np.ascontiguousarray(b, dtype=np.float64), squarings, out)
        return out
    result = np.broadcast_to(np.eye(mats.shape[1]), mats.shape).copy()
    term = result.copy()
    for k in range(1, 25):
        term = _matmul(term, b) / k
        result = result + term
    for r in range(int(squarings.max(initial=0))):
        sel = np.flatnonzero(squarings > r)
        result[sel] = _matmul(result[sel], result[sel])
    return result


def rate_node_values(median_per_day: float, cv: float) -> np.ndarray:
    """The reversion rate at each of ``RATE_NODES`` equiprobable quantile nodes of a
    lognormal with this median and CV (the node mid-quantiles (i + 0.5) / K)."""
    sigma = lognormal_sigma(cv)
    z = special.ndtri((np.arange(RATE_NODES) + 0.5) / RATE_NODES)
    return cast(np.ndarray, median_per_day * fmath.exp_array(sigma * z))


# The entries of the transition matrix a step needs: PATTERN, then the diagonal and
# IVIG-effect entries (z, f, l, fe, le, v<-fe, v<-le, v<-v, e<-e), as index arrays.
_ENTRIES = (*PATTERN, (Z, Z), (F, F), (L, L), (FE, FE), (LE, LE), (V, FE), (V, LE), (V, V), (E, E))
ENTRY_ROWS = np.array([r for r, _ in _ENTRIES], dtype=np.int64)
ENTRY_COLS = np.array([c for _, c in _ENTRIES], dtype=np.int64)


class Propagator:
    """Exact transition coefficients of the linear state over a time step."""

    def __init__(
        self,
        rates_per_day: np.ndarray,
        k_ck: float,
        k_w: float,
        k_x: tuple[float, float, float],
        k_b: float,
        a_f: float,
        a_s: float,
        k_e: float,
        k_c: float,
        rho_f: float,
        rho_x: tuple[float, float, float],
        sigma_x: tuple[float, float, float],
        cache_size: int = 16384,
    ) -> None:
        self.rates = np.asarray(rates_per_day, dtype=np.float64)
        mats = []
        for k in self.rates:
            a = np.zeros((N_STATES, N_STATES))
            a[Y, Y], a[Y, S], a[Y, Z], a[Y, E], a[Y, V] = -k, k, k, -1.0, -1.0
            a[Q, Q], a[Q, Y] = -k_ck, k_ck
            a[W, W], a[W, Y], a[W, V] = -k_w, k_w, -rho_f
            for x, kx, sx, rx in zip(X_DOMAINS, k_x, sigma_x, rho_x, strict=True):
                a[x, x], a[x, S], a[x, Z], a[x, E], a[x, V] = -kx, kx, kx, -sx, -rx
            a[Z, Z] = -k_b
            a[F, F] = a[FE, FE] = -a_f
            a[L, L] = a[LE, LE] = -a_s
            a[V, FE], a[V, LE], a[V, V] = k_e, k_e, -k_e
            a[E, E], a[E, C] = -k_c, k_c
            a[J, Y] = 1.0
            mats.append(a)
        #: the rate matrix of each node, (node, row, col), contiguous (the chunk loop's)
        self.matrices = np.stack(mats)
        self._cache: OrderedDict[tuple[int, float], tuple[float, ...]] = OrderedDict()
        self._max = cache_size
        # The vector path's cache: one row of coefficients per (node, tau) pair in a
        # table, found through a dense index for whole days (tau * RATE_NODES + node).
        self._table = np.empty((0, len(PATTERN) + 9))
        self._rows = 0
        self._dense = np.full(0, -1, dtype=np.int64)
        self._frac: dict[tuple[int, float], int] = {}
        self._lock = threading.Lock()

    def matrix(self, node: int) -> np.ndarray:
        return cast(np.ndarray, self.matrices[node])

    def _compute(self, node: int, tau: float) -> tuple[float, ...]:
        return tuple(float(x) for x in self._compute_many([(node, tau)])[0])

    def _compute_many(self, pairs: list[tuple[int, float]]) -> np.ndarray:
        """``_compute`` for several (node, tau) pairs at once, as rows (the same bits)."""
        mats = np.stack([self.matrices[node] * tau for node, tau in pairs])
        return expm_many(mats)[:, ENTRY_ROWS, ENTRY_COLS]

    def coefficients(self, node: int, tau: float) -> tuple[float, ...]:
        """(pattern entries..., z, f, l, fe, le, v<-fe, v<-le, v<-v, e<-e) for one step."""
        key = (node, tau)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out = self._compute(node, tau)
        self._cache[key] = out
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return out

    def _append(self, rows: np.ndarray) -> int:
        """Add rows to the table; returns the index of the first."""
        need = self._rows + len(rows)
        if need > self._table.shape[0]:
            grown = np.empty((max(need, 2 * self._table.shape[0], 256), self._table.shape[1]))
            grown[: self._rows] = self._table[: self._rows]
            self._table = grown
        first = self._rows
        self._table[first:need] = rows
        self._rows = need
        return first

    def __call__(self, xp: Ops, node: Any, tau: Any) -> tuple[Any, ...]:
        if not xp.vector:
            return self.coefficients(node, tau)
        # The table is shared by every plan with these rates (shared_propagator); a Dask
        # worker running several threads must not see it half-grown.
        with self._lock:
            return self._vector(node, tau)

    def _vector(self, node: Any, tau: Any) -> tuple[Any, ...]:
        rows = self._row_index(node, tau)  # first: it may grow (replace) the table
        table = self._table[rows]
        return tuple(table[:, j] for j in range(table.shape[1]))

    def with_rows(self, node: Any, tau: Any, fn: Callable[[np.ndarray, np.ndarray], T]) -> T:
        """``fn(table, rows)``: row ``rows[i]`` of ``table`` holds patient i's
        coefficients (as :meth:`__call__` returns them), under the table's lock, which a
        full table's refill would otherwise overwrite."""
        with self._lock:
            rows = self._row_index(node, tau)  # first: it may grow (replace) the table
            return fn(self._table, rows)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(table, dense index) as they stand, for a compiled loop that looks rows up
        itself (``engines/chunk_loop.py``). The arrays stay valid while the table grows:
        rows are only ever appended (a dense entry may then point past the snapshot's
        table: the loop treats it as missing), and a full table is replaced, never
        overwritten."""
        with self._lock:
            return self._table, self._dense

    def add_computed(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Add rows computed elsewhere with this propagator's bits (the chunk loop's,
        ``_loops.expm_entries``) for whole-day keys ``tau * RATE_NODES + node``; keys
        already in the table are skipped."""
        keys = np.asarray(keys, dtype=np.int64)
        if not keys.size:
            return
        with self._lock:
            self._grow_dense(int(keys.max()) + 1)
            new = np.flatnonzero(self._dense[keys] < 0)
            if not new.size:
                return
            if self._rows + new.size > self._max:
                self._start_afresh()
            first = self._append(rows[new])
            self._dense[keys[new]] = np.arange(first, first + new.size)

    def _grow_dense(self, top: int) -> None:
        """Make the dense index hold keys below ``top`` (a new array, doubling at least:
        a compiled chunk loop may still read the old one)."""
        if top > self._dense.size:
            dense = np.full(max(top, 2 * self._dense.size), -1, dtype=np.int64)
            dense[: self._dense.size] = self._dense
            self._dense = dense

    def _start_afresh(self) -> None:
        """A new, empty table (new arrays: a compiled chunk loop may still read the old
        ones, ``snapshot``)."""
        self._table = np.empty_like(self._table)
        self._rows = 0
        self._dense = np.full(self._dense.size, -1, dtype=np.int64)
        self._frac = {}

    def _row_index(self, node: Any, tau: Any) -> np.ndarray:
        """Each patient's row of the table, computing the pairs not in it yet."""
        node = np.asarray(node, dtype=np.int64)
        tau = np.asarray(tau, dtype=np.float64)
        whole = tau == np.floor(tau)
        # Almost every step is a whole number of days: one int64 key per (node, tau) and
        # a dense key -> row index (np.unique over rows sorts, slowly). Deaths fall
        # between days: few, kept in a dict.
        keys = tau[whole].astype(np.int64) * RATE_NODES + node[whole]
        part = np.flatnonzero(~whole)
        frac = [(int(node[i]), float(tau[i])) for i in part]
        self._grow_dense(int(keys.max()) + 1 if keys.size else 0)
        new = np.unique(keys[self._dense[keys] < 0])
        new_frac = sorted({k for k in frac if k not in self._frac})
        if self._rows + new.size + len(new_frac) > self._max:
            # full: start a new table and compute this step's pairs afresh
            self._start_afresh()
            new = np.unique(keys)
            new_frac = sorted(set(frac))
        if new.size or new_frac:
            first = self._append(
                self._compute_many(
                    [(int(k % RATE_NODES), float(k // RATE_NODES)) for k in new] + new_frac
                )
            )
            self._dense[new] = np.arange(first, first + new.size)
            for j, k in enumerate(new_frac, start=first + new.size):
                self._frac[k] = j
        rows = np.empty(tau.shape[0], dtype=np.int64)
        rows[whole] = self._dense[keys]
        rows[part] = [self._frac[k] for k in frac]
        return rows


# The propagators of the last few distinct sets of rate matrices in this process.
_SHARED: Recent[bytes, Propagator] = Recent(4)


def shared_propagator(new: Propagator) -> Propagator:
    """The propagator already made in this process with the same rate matrices (the same
    bits) as ``new``, else ``new``: every plan with these rates (the arms of a comparison,
    the points of a sweep that vary no rate) shares one, so their matrix exponentials are
    computed once. A coefficient depends only on the matrix, the node and the step, so
    sharing changes no result."""
    key = b"".join(m.tobytes() for m in new.matrices) + repr(new._max).encode()
    return _SHARED.get(key, lambda: new)


def step(xp: Ops, coef: tuple[Any, ...], x: dict[int, Any], g: Any) -> dict[int, Any]:
    """Apply one step's coefficients to the state ``x`` (state index -> value)."""
    out: dict[int, Any] = {}
    for r in _DOWNSTREAM:
        out[r] = x[r] * 0.0 if r != J else x[J] * 1.0
    for j, (r, c) in enumerate(PATTERN):
        term = coef[j] * x[c]
        out[r] = out[r] + (g * term if c in _G_SCALED else term)
    n = len(PATTERN)
    zz, ff, ll, fefe, lele, vfe, vle, vv, ee = coef[n : n + 9]
    out[Z] = zz * x[Z]
    out[F] = ff * x[F]
    out[L] = ll * x[L]
    out[FE] = fefe * x[FE]
    out[LE] = lele * x[LE]
    out[V] = vfe * x[FE] + vle * x[LE] + vv * x[V]
    out[E] = ee * x[E] + (1.0 - ee) * x[C]
    out[S] = x[S]
    out[C] = x[C]
    return out


# The state names of the scalar step's arguments and results, in index order.
_NAMES = ("y", "q", "w", "xs", "xl", "xd", "z", "f", "l", "fe", "le", "v", "e", "j", "s", "c")
STEPPED = (Y, Q, W, XS, XL, XD, Z, F, L, FE, LE, V, E, J)


def _step_body(pad: str) -> tuple[list[str], str]:
    """Lines of :func:`step` for one patient, unrolled (the same operations in the same
    order on floats: the same bits as the array path, which numpy evaluates operation by
    operation without fused multiply-adds), and the expression of its result in
    ``STEPPED`` order. Inputs are named as in ``_NAMES``, coefficients ``coef[k]``."""
    lines = [
        f"{pad}o_{_NAMES[r]} = " + (f"{_NAMES[r]} * 0.0" if r != J else "j * 1.0")
        for r in _DOWNSTREAM
    ]
    for k, (r, c) in enumerate(PATTERN):
        term = f"coef[{k}] * {_NAMES[c]}"
        term = f"g * ({term})" if c in _G_SCALED else term
        lines.append(f"{pad}o_{_NAMES[r]} = o_{_NAMES[r]} + {term}")
    n = len(PATTERN)
    result = (
        f"(o_y, o_q, o_w, o_xs, o_xl, o_xd, coef[{n}] * z, coef[{n + 1}] * f, "
        f"coef[{n + 2}] * l, coef[{n + 3}] * fe, coef[{n + 4}] * le, "
        f"coef[{n + 5}] * fe + coef[{n + 6}] * le + coef[{n + 7}] * v, "
        f"coef[{n + 8}] * e + (1.0 - coef[{n + 8}]) * c, o_j)"
    )
    return lines, result


def generated_step_module() -> str:
    """The text of ``kernel/step_generated.py`` (written by scripts/generate_step.py;
    tests/test_kinetics.py checks that the file is up to date): the step unrolled for
    one patient (``step_one``, the SimPy engine's) and a loop of it over patients
    (``step_rows``, which ``simulator._loops`` compiles with numba and caches on disk)."""
    typed = ", ".join(f"{a}: Any" for a in _NAMES)
    arrays = ", ".join(f"a_{a}: Any" for a in (*_NAMES, "g"))
    body, result = _step_body("    ")
    outs = [f"r_{_NAMES[r]}" for r in STEPPED]
    row = ", ".join(f"a_{a}[i]" for a in (*_NAMES, "g"))
    out = [
        '"""The closed-form step, unrolled: generated from kernel/disease.py\'s coefficient',
        "pattern by scripts/generate_step.py. Do not edit; regenerate.",
        '"""',
        "",
        "from typing import Any",
        "",
        "import numpy as np",
        "",
        "",
        f"def step_one(coef: Any, {typed}, g: Any) -> tuple[Any, ...]:",
        '    """One patient: the stepped states in ``disease.STEPPED`` order."""',
        *body,
        f"    return {result}",
        "",
        "",
        f"def step_rows(table: Any, rows: Any, {arrays}) -> tuple[np.ndarray, ...]:",
        '    """Patient i steps with coefficients ``table[rows[i]]``: arrays in ``STEPPED``',
        "    order (compiled by numba in ``simulator._loops``, which makes ``step_one``",
        '    callable from it)."""',
        "    n = rows.size",
        *(f"    {o} = np.empty(n)" for o in outs),
        "    for i in range(n):",
        f"        res = step_one(table[rows[i]], {row})",
        *(f"        {o}[i] = res[{k}]" for k, o in enumerate(outs)),
        f"    return ({', '.join(outs)})",
    ]
    return "\n".join(out) + "\n"


#: ``step_one(coef, y, q, ..., s, c, g)`` -> the stepped states in ``STEPPED`` order.
step_one: Callable[..., tuple[Any, ...]] = step_generated.step_one


def damage_step(
    xp: Ops,
    damage: Any,
    delta_j: Any,
    tau: Any,
    threshold_log: float,
    rate: float,
    max_points: float,
) -> Any:
    """Damage after a window of ``tau`` days: the net integral of log inflammation above
    the threshold over the window, ``max(0, ΔJ - threshold tau)``, takes a fraction
    ``1 - exp(-rate x excess)`` of the strength damage can still take."""
    excess = xp.maximum(delta_j - threshold_log * tau, 0.0)
    return damage + (max_points - damage) * (1.0 - xp.exp(-rate * excess))


def enzyme_level(xp: Ops, log_excess: Any, baseline: Any, background: Any) -> Any:
    """True enzyme level: background plus the disease-driven excess scaled by exp(log)."""
    excess = xp.maximum(baseline - background, 0.0)
    return background + excess * xp.exp(log_excess)


def measured(xp: Ops, true_value: Any, sigma_log: float, z: Any) -> Any:
    """A lab result: lognormal assay noise with mean 1 (sigma_log = sqrt(log(1 + CV^2)))."""
    return true_value * xp.exp(sigma_log * z - 0.5 * sigma_log * sigma_log)
