"""Random numbers as a pure function of (seed, patient, purpose, draw index).

Every random number in the simulator comes from here. A draw is the output of a
counter-based generator: a 64-bit hash of the key ``(seed, patient id, purpose, index)``
mapped to a uniform in (0, 1). Nothing is stateful, so

* patient *k* gets the same numbers whether 10 or 10 million patients run, in any order,
  chunking or worker;
* two strategies run on the same seed see the same virtual patients with the same luck
  for the same purpose (common random numbers), which is what paired comparisons and
  sensitivity sweeps rely on;
* the DES engine and the vectorized cohort engine draw identical numbers.

Purposes are named by strings (``"population.age_years"``, ``"lab.cpk"``). The purpose
id is the CRC-32 of the name, so adding a new purpose never shifts the numbers of an
existing one. Indices distinguish repeated draws for one purpose (the day of a lab
visit, the number of an infusion).

The hash is SplitMix64's finaliser (Steele, Lea & Flood 2014, "Fast splittable
pseudorandom number generators", OOPSLA) applied in a chain over the key words, the same
construction as counter-based generators built on strong mixing functions (Salmon et al.
2011, "Parallel random numbers: as easy as 1, 2, 3", SC'11). ``tests/test_streams.py``
checks uniformity, independence between purposes, patients and indices.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
from scipy import special

from . import fmath, jit

__all__ = [
    "exponential",
    "exponential_one",
    "normal",
    "normal_grid",
    "purpose_id",
    "stream_key",
    "uniform",
    "uniform_one",
]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 2.0**-53
# The largest double below 1. (k + 0.5) 2^-53 rounds to exactly 1.0 for the one 53-bit
# k = 2^53 - 1 (k + 0.5 needs 54 bits), so every draw is capped here: it changes that
# draw alone, which would otherwise break the open interval (0, 1).
_BELOW_ONE = 1.0 - 2.0**-53


def purpose_id(name: str) -> int:
    """Stable 32-bit id of a purpose name."""
    return zlib.crc32(name.encode("utf-8"))


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def _as_u64(values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    return np.atleast_1d(arr).astype(np.uint64)


def uniform(seed: int, patients: object, purpose: str, index: object = 0) -> np.ndarray:
    """Uniform(0, 1) draws, one per (patient, index) pair after broadcasting.

    ``patients`` and ``index`` are integer arrays (or scalars) that broadcast together;
    the result has their broadcast shape (at least one dimension). Values are in the
    open interval (0, 1): never exactly 0 or 1, so inverse-CDF transforms are safe.
    """
    # the (seed, purpose) key: the same two mixes on Python integers, cached
    key = np.uint64(stream_key(int(seed), purpose))
    done = _compiled_uniform(key, patients, index)
    if done is not None:
        return done
    with np.errstate(over="ignore"):
        h = _mix(key + _as_u64(patients) * _GOLDEN)
        h = _mix(h ^ (_as_u64(index) * _M2 + _GOLDEN))
    return np.minimum(((h >> _S11).astype(np.float64) + 0.5) * _TWO_M53, _BELOW_ONE)


def _compiled_uniform(key: np.uint64, patients: object, index: object) -> np.ndarray | None:
    """:func:`uniform` by numba's loop (``simulator._loops``, the same bits) for the
    kernel's calls: one id array, contiguous int64, with one index or one per id. None
    when the loops are off or the arguments take numpy's broadcasting."""
    if type(patients) is not np.ndarray or patients.dtype != np.int64:
        return None
    loops = jit.loops(patients.size)
    if loops is None:
        return None
    if patients.ndim != 1 or not patients.flags.c_contiguous:
        return None
    out = np.empty(patients.size, dtype=np.float64)
    if isinstance(index, int | np.integer):
        loops.uniform_one_index_into(key, patients, int(index), out)
        return out
    if (
        type(index) is np.ndarray
        and index.dtype == np.int64
        and index.shape == patients.shape
        and index.flags.c_contiguous
    ):
        loops.uniform_into(key, patients, index, out)
        return out
    return None


_MASK = (1 << 64) - 1
_G_INT, _M1_INT, _M2_INT = int(_GOLDEN), int(_M1), int(_M2)


def _mix_int(x: int) -> int:
    x = ((x ^ (x >> 30)) * _M1_INT) & _MASK
    x = ((x ^ (x >> 27)) * _M2_INT) & _MASK
    return x ^ (x >> 31)


@functools.lru_cache(maxsize=1024)
def stream_key(seed: int, purpose: str) -> int:
    """The 64-bit key of a (seed, purpose) stream, which :func:`uniform` mixes with each
    patient id and index (compiled loops take it as an argument)."""
    key = _mix_int(((int(seed) & _MASK) + _G_INT) & _MASK)
    return _mix_int(key ^ purpose_id(purpose))


def uniform_one(seed: int, patient: int, purpose: str, index: int = 0) -> float:
    """One draw of :func:`uniform` for one patient and index, as a Python float: the same
    bits, computed with Python integers (the SimPy engine draws one number at a time,
    where numpy's per-call overhead would dominate)."""
    h = _mix_int((stream_key(seed, purpose) + (int(patient) & _MASK) * _G_INT) & _MASK)
    h = _mix_int(h ^ (((int(index) & _MASK) * _M2_INT + _G_INT) & _MASK))
    return min(((h >> 11) + 0.5) * _TWO_M53, _BELOW_ONE)


def exponential_one(seed: int, patient: int, purpose: str, index: int = 0) -> float:
    """One draw of :func:`exponential`, with the bits of the array form."""
    return -fmath.log(uniform_one(seed, patient, purpose, index))


def normal(seed: int, patients: object, purpose: str, index: object = 0) -> np.ndarray:
    """Standard normal draws by inverse CDF of :func:`uniform`."""
    return special.ndtri(uniform(seed, patients, purpose, index))


def normal_grid(seed: int, patients: np.ndarray, purpose: str, index: np.ndarray) -> np.ndarray:
    """:func:`normal` for every pair of a patient id and an index: ``out[i, j]`` is the
    draw of (patients[i], index[j]) (the uniforms in one numba loop when loaded: the same
    bits)."""
    ids = np.ascontiguousarray(patients, dtype=np.int64).reshape(-1)
    idx = np.ascontiguousarray(index, dtype=np.int64).reshape(-1)
    loops = jit.loops(ids.size * idx.size, calls=20)
    if loops is None:
        return normal(seed, ids[:, None], purpose, idx[None, :])
    out = np.empty((ids.size, idx.size), dtype=np.float64)
    loops.uniform_grid_into(np.uint64(stream_key(int(seed), purpose)), ids, idx, out)
    return special.ndtri(out, out=out)  # type: ignore[no-any-return]


def exponential(seed: int, patients: object, purpose: str, index: object = 0) -> np.ndarray:
    """Unit-rate exponential draws by inverse CDF of :func:`uniform`."""
    return -fmath.log_array(uniform(seed, patients, purpose, index))
