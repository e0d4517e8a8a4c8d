"""Random numbers are a pure function of (seed, patient, purpose, index)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from simulator import streams

GOLDEN_FIRST_DRAW = 0.4809226987537109


def test_same_key_same_number_whatever_the_batch():
    ids = np.arange(1000)
    all_at_once = streams.uniform(5, ids, "lab.cpk", 14)
    one_by_one = np.array([streams.uniform(5, i, "lab.cpk", 14)[0] for i in ids[::97]])
    np.testing.assert_array_equal(all_at_once[::97], one_by_one)
    shuffled = np.random.default_rng(0).permutation(ids)
    np.testing.assert_array_equal(
        streams.uniform(5, shuffled, "lab.cpk", 14), all_at_once[shuffled]
    )


def test_values_lie_strictly_inside_the_unit_interval():
    u = streams.uniform(1, np.arange(200_000), "x", 0)
    assert u.min() > 0.0 and u.max() < 1.0


def test_uniform_passes_kolmogorov_smirnov():
    u = streams.uniform(2026, np.arange(100_000), "population.age_years", 0)
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_normal_and_exponential_have_their_moments():
    n = 200_000
    z = streams.normal(3, np.arange(n), "a", 0)
    e = streams.exponential(3, np.arange(n), "b", 0)
    se = 1 / np.sqrt(n)
    assert abs(z.mean()) < 4 * se and abs(z.std() - 1) < 4 * se * np.sqrt(0.5) * 1.5
    assert abs(e.mean() - 1) < 4 * se


def test_purposes_indices_seeds_and_patients_are_independent():
    n = 100_000
    ids = np.arange(n)
    base = streams.uniform(1, ids, "lab.cpk", 0)
    others = [
        streams.uniform(1, ids, "lab.myoglobin", 0),  # another purpose
        streams.uniform(1, ids, "lab.cpk", 1),  # another index
        streams.uniform(2, ids, "lab.cpk", 0),  # another seed
        streams.uniform(1, ids + 1, "lab.cpk", 0),  # the neighbouring patient
    ]
    for other in others:
        # correlation of independent uniforms: sd 1/sqrt(n); 5 sd is a generous bound
        assert abs(np.corrcoef(base, other)[0, 1]) < 5 / np.sqrt(n)
        assert not np.array_equal(base, other)


def test_broadcasting_patients_by_indices():
    table = streams.uniform(9, np.arange(5)[:, None], "t", np.arange(4)[None, :])
    assert table.shape == (5, 4)
    assert table[3, 2] == streams.uniform(9, 3, "t", 2)[0]


def test_streams_are_stable_across_versions():
    """Golden values: a change here changes every published result, so it must be deliberate."""
    assert streams.purpose_id("lab.cpk") == 0x0E036D6F
    assert streams.uniform(1, 0, "lab.cpk", 0)[0] == GOLDEN_FIRST_DRAW


def test_numbas_loops_draw_the_bits_of_numpy(monkeypatch):
    """The compiled uniform (simulator._loops) against numpy's: one index for all ids,
    one index per id, ids and indices up to 2**62, and the derived exponential draws."""
    import pytest

    from simulator import jit

    rng = np.random.default_rng(3)
    ids = np.concatenate([np.arange(5000), rng.integers(0, 2**62, 5000)]).astype(np.int64)
    per_id = rng.integers(0, 2**62, ids.size).astype(np.int64)

    def draws():
        return [
            streams.uniform(12345, ids, "disease.flare_level", 7),
            streams.uniform(12345, ids, "disease.flare_level", np.int64(2**40)),
            streams.uniform(2**62, ids, "lab.cpk", per_id),
            streams.exponential(99, ids, "death.threshold"),
            streams.uniform(5, ids[::2], "lab.cpk", 3),  # not contiguous: numpy's path
            # every (id, day) pair of a grid: ndtri of the uniform, tails included
            streams.normal_grid(8, ids[::7], "lab.cpk", np.array([0, 14, 28, 2**40])),
        ]

    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    if jit.loops(1) is None:
        pytest.skip("numba is not installed")
    compiled = draws()
    monkeypatch.setenv("SIMULATOR_JIT", "0")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    for a, b in zip(compiled, draws(), strict=True):
        assert a.tobytes() == b.tobytes()


def test_a_grid_of_normal_draws_is_the_broadcast_of_ids_by_indices():
    ids = np.arange(40, dtype=np.int64)
    days = np.array([0, 7, 84, 730], dtype=np.int64)
    grid = streams.normal_grid(3, ids, "lab.myoglobin", days)
    want = streams.normal(3, ids[:, None], "lab.myoglobin", days[None, :])
    assert grid.shape == (40, 4) and grid.tobytes() == want.tobytes()


def test_the_visit_noise_of_a_chunk_run_again_is_the_same_and_not_shared():
    """make_params remembers the noise grids of recent chunks: a second chunk of the same
    patients gets equal arrays that it may write without touching the first's."""
    from simulator.kernel import params as P

    ids = np.arange(40, 90, dtype=np.int64)
    days = np.array([0, 14, 28, 84], dtype=np.int64)
    P._MEMO.clear()
    first = P._noise_grids(5, ids, days)
    again = P._noise_grids(5, ids, days)
    other = P._noise_grids(6, ids, days)
    for name in P.NOISE:
        fresh = streams.normal_grid(5, ids, "lab." + name, days)
        assert first[name].tobytes() == fresh.tobytes() == again[name].tobytes()
        assert not np.shares_memory(first[name], again[name])
        assert other[name].tobytes() != fresh.tobytes()
    again["cpk"][:] = 0.0
    assert P._noise_grids(5, ids, days)["cpk"].tobytes() == first["cpk"].tobytes()


def test_the_one_draw_that_rounded_to_one_stays_below_one(monkeypatch):
    """(k + 0.5) 2^-53 rounds to exactly 1.0 for k = 2^53 - 1, which a patient id built by
    inverting the mixing reaches (audit): uniform gave 1.0 and normal +inf. It is now the
    largest double below 1 in every path (numpy, Python integers, numba), and every other
    draw keeps its bits (the golden draw above; a draw >= 0.5 is a multiple of 2^-53)."""
    import pytest

    from simulator import jit

    seed, patient, purpose = 1, 1587672040120395746, "lab.cpk"
    below_one = np.nextafter(1.0, 0.0)

    def draws():
        ids = np.array([patient, 0], dtype=np.int64)
        return (
            streams.uniform(seed, ids, purpose, 0),
            streams.normal_grid(seed, ids, purpose, np.array([0, 1])),
        )

    monkeypatch.setenv("SIMULATOR_JIT", "0")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    u, z = draws()
    assert u[0] == below_one and np.isfinite(z).all() and z[0, 0] > 8
    assert streams.uniform_one(seed, patient, purpose, 0) == below_one
    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    if jit.loops(1) is None:
        pytest.skip("numba is not installed")
    u2, z2 = draws()
    assert u2.tobytes() == u.tobytes() and z2.tobytes() == z.tobytes()


def test_the_arms_of_a_chunk_share_its_large_visit_noise_only_within_the_block(monkeypatch):
    """Noise too large for the memo is drawn once for all arms of a chunk
    (``shared_noise``, as runner.arms_task uses it): every arm gets equal arrays of its
    own, and nothing is kept after the block."""
    from simulator.kernel import params as P

    monkeypatch.setattr(P, "_MEMO_ENTRY_BYTES", 0)  # every chunk is 'too large'
    ids = np.arange(100, 160, dtype=np.int64)
    days = np.array([0, 14, 28, 84], dtype=np.int64)
    drawn = []
    real = streams.normal_grid

    def counting(*args):
        drawn.append(args[2])
        return real(*args)

    monkeypatch.setattr(P.streams, "normal_grid", counting)
    with P.shared_noise():
        first = P._noise_grids(5, ids, days)
        second = P._noise_grids(5, ids, days)
        other = P._noise_grids(6, ids, days)
    assert len(drawn) == 2 * len(P.NOISE)  # seed 5 once, seed 6 once
    for name in P.NOISE:
        assert first[name].tobytes() == second[name].tobytes()
        assert first[name].tobytes() == real(5, ids, "lab." + name, days).tobytes()
        assert not np.shares_memory(first[name], second[name])
        assert other[name].tobytes() != first[name].tobytes()
    assert P._SHARED.grids is None
    P._noise_grids(5, ids, days)  # outside the block: drawn again
    assert len(drawn) == 3 * len(P.NOISE)
