"""Flare candidates passed over without an event (``xp.thin``, kernel/handlers.py).

Flares are drawn by thinning a Poisson process at the largest hazard; a candidate whose
uniform puts it above the patient's untreated hazard would be rejected whatever the
treatment, so it is passed over in a loop instead of being run as an event. These tests
check that the loop gives the candidate, time and day that running every candidate
gives (scalar, array and compiled forms, against a candidate-by-candidate reference),
and that whole runs are the same as with every candidate run as an event.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import SCENARIOS

from simulator import jit, streams
from simulator.engines import cohort, fused
from simulator.kernel.params import FLARE_ACCEPT, FLARE_GAP, make_params
from simulator.kernel.plan import make_plan
from simulator.kernel.xp import ARRAY, SCALAR
from simulator.scenario import load_scenario

SEED = 20150610


LAST = 730.0  # the horizon: a candidate after it is never run


def _reference(patient, k, time, day, rate, bound):
    """Every candidate from ``k`` on, one at a time, as the handler ran them before the
    loop: its time, its day (one a day at most) and whether it could be accepted; the
    first after the horizon ends the course."""
    while True:
        time = time + streams.exponential_one(SEED, patient, FLARE_GAP, k) / rate
        due = min(time, 1e9)
        day = max(math.floor(due) + 1.0, math.floor(day) + 1.0)
        if streams.uniform_one(SEED, patient, FLARE_ACCEPT, k) * rate < bound:
            return k, time, day
        if day > LAST or due >= 1e9:
            return k, time, day
        k += 1


def _cases():
    rng = np.random.default_rng(7)
    n = 400
    return (
        np.arange(n, dtype=np.int64) * 7919,
        rng.integers(0, 60, n).astype(np.int64),
        rng.uniform(0, 300, n),
        np.floor(rng.uniform(0, 300, n)),
        rng.choice([1e-3, 0.02, 0.09, 1.0], n),  # the bound's share of the rate
    )


@pytest.mark.parametrize("compiled", ["0", "1"])
def test_the_loop_gives_the_candidate_time_and_day_of_running_each_candidate(compiled, monkeypatch):
    """Scalar and array forms (the array form on numpy, blockwise, or by the compiled
    loop) against the reference."""
    monkeypatch.setenv("SIMULATOR_JIT", compiled)
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    if compiled == "1" and jit.loops(1) is None:
        pytest.skip("numba is not installed")
    patients, ks, times, days, shares = _cases()
    rate = 0.09
    bound = rate * shares
    want = [
        _reference(int(p), int(k), float(t), float(d), rate, float(b))
        for p, k, t, d, b in zip(patients, ks, times, days, bound, strict=True)
    ]
    got_scalar = [
        SCALAR.thin(SEED, int(p), FLARE_GAP, FLARE_ACCEPT, int(k), t, d, rate, b, LAST)
        for p, k, t, d, b in zip(patients, ks, times.tolist(), days.tolist(), bound, strict=True)
    ]
    assert got_scalar == want  # floats compared exactly
    k, t, d = ARRAY.thin(
        SEED, patients, FLARE_GAP, FLARE_ACCEPT, ks, times, days, rate, bound, LAST
    )
    assert k.tolist() == [w[0] for w in want]
    assert t.tobytes() == np.array([w[1] for w in want]).tobytes()
    assert d.tobytes() == np.array([w[2] for w in want]).tobytes()
    # candidates were passed over (a share of 1e-3 keeps about one in a thousand, so most
    # of those run to the horizon, about 0.09 x 500 candidates on)
    skipped = np.array([w[0] for w in want]) - ks
    assert skipped[shares == 1e-3].mean() > 25 and (skipped[shares == 1.0] == 0).all()
    assert (np.array([w[2] for w in want])[shares == 1e-3] > LAST).mean() > 0.9


def test_the_compiled_loop_gives_the_same_bits(monkeypatch):
    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    loops = jit.loops(1)
    if loops is None:
        pytest.skip("numba is not installed")
    patients, ks, times, days, shares = _cases()
    rate = 0.09
    kg = np.uint64(streams.stream_key(SEED, FLARE_GAP))
    ka = np.uint64(streams.stream_key(SEED, FLARE_ACCEPT))
    for p, k, t, d, s in zip(patients, ks, times, days, shares, strict=True):
        b = rate * s
        want = SCALAR.thin(SEED, int(p), FLARE_GAP, FLARE_ACCEPT, int(k), t, d, rate, b, LAST)
        got = loops.thin(kg, ka, p, k, t, d, rate, b, LAST)
        assert (int(got[0]), got[1], got[2]) == want


def test_a_patient_whose_candidates_are_all_passed_over_stops_at_the_horizon():
    """A bound of 0 keeps nothing (no flare hazard at any treatment): the loop stops at
    the first candidate after the horizon, about 0.09 x 730 candidates on, not at 1e9
    days (9e7 candidates)."""
    for ops in (SCALAR, ARRAY):
        ids = 3 if ops is SCALAR else np.array([3, 4])
        k, time, day = ops.thin(SEED, ids, FLARE_GAP, FLARE_ACCEPT, 0, 0.0, 0.0, 0.09, 0.0, LAST)
        assert np.all(day > LAST) and np.all(day <= LAST + 60) and np.all(k < 150)
        assert np.all(time < day)
    # with a rate so high that candidates come one a day, the days still end it
    k, _, day = SCALAR.thin(SEED, 3, FLARE_GAP, FLARE_ACCEPT, 0, 0.0, 0.0, 1e6, 1e-9, LAST)
    assert day == LAST + 1 and k == LAST


@pytest.mark.parametrize("compiled", ["0", "1"])
@pytest.mark.parametrize("name", ["first_line", "steroid_only"])
def test_passing_over_candidates_changes_no_outcome(name, compiled, monkeypatch):
    """The same patients with every candidate run as an event (a bound that keeps all)
    and with the loop: every outcome and visit value the same, integers and flags exactly,
    values within rounding (the state is moved in fewer steps)."""
    monkeypatch.setenv("SIMULATOR_JIT", compiled)
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    if compiled == "1" and jit.loops(1) is None:
        pytest.skip("numba is not installed")
    scn = load_scenario(SCENARIOS / f"{name}.yaml")
    plan = make_plan(scn)
    ids = np.arange(600)
    prm, base = make_params(scn, plan, 11, ids)
    every = make_params(scn, plan, 11, ids)[0]
    every.flare_bound_per_day = np.full(ids.size, np.inf)
    a = cohort.run_chunk(scn, plan, 11, ids, events=True, params=(prm, base))
    b = cohort.run_chunk(scn, plan, 11, ids, events=True, params=(every, base))
    if compiled == "1":
        loop = fused.for_plan(plan)._chunk
        assert loop is not None and loop.ready, "the chunk ran on numpy"
    flare = 2  # Event.FLARE
    run_a = (a.events.kind == flare).sum()
    run_b = (b.events.kind == flare).sum()
    assert run_a < run_b / 4  # most candidates were passed over
    accepted = [(r.events.flags[r.events.kind == flare] != 0).sum() for r in (a, b)]
    assert accepted[0] == accepted[1] > 0
    assert a.visit_flags.tobytes() == b.visit_flags.tobytes()
    for part in ("outcomes", "visits"):
        for key, want in getattr(b, part).items():
            got = getattr(a, part)[key]
            if want.dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12, err_msg=key)
            else:
                assert got.tobytes() == want.tobytes(), key
