"""The SimPy engine and the cohort engine give the same per-patient results, bit for bit.

Both call the same kernel functions (``kernel.handlers``) with the same per-patient random
streams; the scalar namespace calls the same numpy ufuncs as the array one
(``kernel/xp.py``), so every patient's event sequence, visit values, prednisone and
outcomes must be identical, not merely close. ``assert_array_equal`` treats NaN as equal
to NaN (an outcome that never happened, a visit that was not reached).
"""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest
from conftest import SCENARIOS, leaves, scenario_files
from test_fused import _fresh_propagator

from simulator.engines import cohort, des
from simulator.kernel.plan import make_plan
from simulator.records import EventLog
from simulator.scenario import load_scenario


def assert_same(a, b, idx_b=None):
    """Every per-patient array of two ChunkResults equal (b's rows ``idx_b`` if given)."""

    def rows(x):
        return x if idx_b is None else x[idx_b]

    assert a.outcomes.keys() == b.outcomes.keys()
    for name in a.outcomes:
        np.testing.assert_array_equal(a.outcomes[name], rows(b.outcomes[name]), err_msg=name)
    assert a.visits.keys() == b.visits.keys()
    for name in a.visits:
        np.testing.assert_array_equal(a.visits[name], rows(b.visits[name]), err_msg=name)
    np.testing.assert_array_equal(
        a.visit_prednisone, rows(b.visit_prednisone), err_msg="visit_prednisone"
    )
    np.testing.assert_array_equal(a.visit_flags, rows(b.visit_flags), err_msg="visit_flags")


def assert_same_events(a, b):
    assert len(a) == len(b) > 0
    for name in EventLog.FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def assert_same_bytes(a, b):
    """Two ChunkResults of the same patients byte for byte: every outcome, visit value,
    visit prednisone and flag, and every event-log field."""
    for part in ("outcomes", "visits"):
        for name, value in getattr(a, part).items():
            assert value.tobytes() == getattr(b, part)[name].tobytes(), (part, name)
    assert a.visit_prednisone.tobytes() == b.visit_prednisone.tobytes()
    assert a.visit_flags.tobytes() == b.visit_flags.tobytes()
    for name in EventLog.FIELDS:
        assert getattr(a.events, name).tobytes() == getattr(b.events, name).tobytes(), name


def run_both(scn, ids, seed=11):
    plan = make_plan(scn)
    a = des.run_chunk(scn, plan, seed, ids, events=True)
    b = cohort.run_chunk(scn, plan, seed, ids, events=True)
    return a, b


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.stem)
def test_engines_agree_exactly_patient_by_patient(path):
    a, b = run_both(load_scenario(path), np.arange(1000, 1150))
    assert_same(a, b)
    assert_same_events(a.events, b.events)


# Decision paths the shipped scenarios rarely or never take: each must also be computed
# identically by both engines.
VARIANTS = {
    "per_cycle_doses": ["regimen.ivig.dose_g_per_kg=[2, 1, 1]"],
    "ivig_stop_and_extend": [
        'regimen.ivig.stop_when={"all": [{"inactive": true}, {"above": {"ivig_cycles": 2}}]}',
        'regimen.ivig.extend_when={"above": {"physician_global_cm": 1}}',
    ],
    "placebo": ["regimen.ivig.placebo=true"],
    "taper_stop": ['regimen.taper.stop_when={"above": {"days_on_floor": 55}}'],
    "rescue_pulse_often": [
        'regimen.steroid.rescue_pulse_when={"relapse": true}',
        "disease.activity.flare_rate_per_year=2",
    ],
    "no_rules": [
        "regimen.taper.hold_when=null",
        "regimen.taper.fast_when=null",
        "regimen.steroid.rescue_pulse_when=null",
    ],
    "retreat_at_relapse": [
        'regimen.ivig.retreat_when={"relapse": true}',
        "regimen.ivig.max_courses=3",
        "regimen.ivig.dose_g_per_kg=[2, 1, 1]",
        "disease.activity.flare_rate_per_year=2",
    ],
}
RETREAT = VARIANTS["retreat_at_relapse"]
DEATHS = ["disease.mortality.excess_per_year=5", "horizon_days=364"]  # between days


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=list(VARIANTS))
def test_engines_agree_exactly_on_rule_variants(overrides):
    scn = load_scenario(SCENARIOS / "first_line.yaml", overrides)
    a, b = run_both(scn, np.arange(40), seed=5)
    assert_same(a, b)
    assert_same_events(a.events, b.events)


def _perturbed(path, case):
    """The scenario at ``path`` with 3 of its numbers or switches moved (numbers times
    0.25-4, switches flipped), drawn from ``case``: the first draw the schema accepts."""
    from simulator.errors import InputError
    from simulator.scenario import scenario_data

    rng = random.Random(case)
    values = [
        (key, v)
        for key, v in leaves(scenario_data(load_scenario(path)), (bool, int, float))
        if key not in ("seed", "patients")
    ]
    for _ in range(50):
        sets = []
        for key, v in rng.sample(values, 3):
            if isinstance(v, bool):
                new = not v
            else:
                new = v * rng.choice([0.25, 0.5, 0.8, 1.25, 2, 4]) if v else rng.choice([1, 5])
                new = round(new) if isinstance(v, int) else new
            sets.append(f"{key}={json.dumps(new)}")
        try:
            return load_scenario(path, sets), sets
        except InputError:
            continue
    raise AssertionError(f"no accepted perturbation of {path} in 50 draws")


@pytest.mark.parametrize("case", range(16))
def test_engines_agree_exactly_on_perturbed_scenarios(case, monkeypatch):
    """Away from the shipped values too: each case moves 3 values of first_line or rescue,
    and both engines, and the cohort engine on a third of the patients, give the same
    bytes (an audit of 1,386 such engine comparisons over 11 scenarios and 270 chunk
    splits, on the compiled and the Python paths, found no difference); the Python/numpy
    paths here, so no loop is compiled."""
    from simulator import jit

    monkeypatch.setenv("SIMULATOR_JIT", "0")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    path = SCENARIOS / ("first_line.yaml" if case % 2 else "rescue.yaml")
    scn, sets = _perturbed(path, case)
    ids = np.arange(30)
    a, b = run_both(scn, ids, seed=case)
    try:
        assert_same(a, b)
        assert_same_events(a.events, b.events)
        # and a patient's results do not depend on the others in its chunk
        part = cohort.run_chunk(scn, make_plan(scn), case, ids[1::3])
        assert_same(part, b, ids[1::3])
    except AssertionError as exc:
        raise AssertionError(f"{path.name} with {sets}: {exc}") from exc


def test_patient_results_do_not_depend_on_the_other_patients(first_line):
    """Patient k is the same whether it runs alone (SimPy) or in a big chunk (cohort)."""
    plan = make_plan(first_line)
    big = cohort.run_chunk(first_line, plan, 3, np.arange(0, 400))
    for ids in (np.array([123, 7]), np.array([399])):
        small = des.run_chunk(first_line, plan, 3, ids)
        assert_same(small, big, ids)
        alone = cohort.run_chunk(first_line, plan, 3, ids)
        assert_same(alone, big, ids)


def test_engines_agree_when_most_of_a_cohort_dies_at_scattered_times():
    """The cohort engine compacts its working arrays once a quarter of them have ended
    (engines/cohort.py): with deaths at many different steps, patients run on as ended
    rows and then in compacted copies, more than once. Every patient must still be
    the SimPy engine's, bit for bit, and the run must not depend on the chunk."""
    scn = load_scenario(
        SCENARIOS / "first_line.yaml", ["disease.mortality.excess_per_year=5", "horizon_days=364"]
    )
    plan = make_plan(scn)
    ids = np.arange(300)
    a, b = run_both(scn, ids, seed=7)
    dead = np.isfinite(b.outcomes["death_day"])
    assert dead.mean() > 0.5  # compacted at least twice (at 25% and 44% ended)
    assert np.unique(b.outcomes["death_day"][dead]).size > 50  # at many different steps
    assert_same(a, b)
    assert_same_events(a.events, b.events)
    half = cohort.run_chunk(scn, plan, 7, ids[::2])
    assert_same(half, b, ids[::2])


def on_numba_and_numpy(scn, ids, seed, monkeypatch):
    """The cohort engine's results on numba's compiled loops, then on numpy alone (the
    test is skipped without numba)."""
    from simulator import jit

    def run(mode):
        monkeypatch.setenv("SIMULATOR_JIT", mode)
        monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
        if mode == "1" and jit.loops(1) is None:
            pytest.skip("numba is not installed")
        return cohort.run_chunk(scn, make_plan(scn), seed, ids, events=True)

    return run("1"), run("0")


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.stem)
def test_numbas_loops_give_the_numpy_paths_bits(path, monkeypatch):
    """The cohort engine on numba's compiled loops (exp, log, draws, the closed-form step;
    simulator/_loops.py) against numpy alone: every per-patient array, byte for byte."""
    scn = load_scenario(path)
    if scn.center is not None:
        pytest.skip("an infusion center runs on the SimPy engine")
    a, b = on_numba_and_numpy(scn, np.arange(300), 11, monkeypatch)
    assert_same_bytes(a, b)


def test_numbas_loops_give_the_numpy_paths_bits_with_retreatment(monkeypatch):
    """The cohort engine's compiled chunk loop against numpy on re-treatment courses
    (regimen.ivig.retreat_when), which no shipped scenario has."""
    scn = load_scenario(SCENARIOS / "first_line.yaml", RETREAT)
    a, b = on_numba_and_numpy(scn, np.arange(200), 11, monkeypatch)
    assert (a.outcomes["ivig_cycles"] > 6).any()  # some patients had a second course
    assert_same_bytes(a, b)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        DEATHS,
        RETREAT,
    ],
    ids=["first_line", "deaths", "retreat"],
)
def test_the_simpy_engines_compiled_events_give_its_python_paths_bytes(overrides, monkeypatch):
    """The SimPy engine with each event run by one compiled call (engines/des_loop.py,
    built from the chunk loop's traced statements) against its Python path: every
    outcome, visit value and event-log field, byte for byte. The buffers are made small
    (the event log's 8 rows a patient + 512, the loop's own table of matrix
    exponentials 16 rows), so both fill mid-run, more than once."""
    from simulator import jit
    from simulator.engines import des_loop

    scn = load_scenario(SCENARIOS / "first_line.yaml", overrides)
    ids = np.arange(150)
    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    if jit.loops(1) is None:
        pytest.skip("numba is not installed")
    codes = small_buffers(monkeypatch, 512)
    runs = []
    monkeypatch.setattr(des_loop, "patient", _counting(des_loop.patient, runs))
    plan = make_plan(scn)  # with an empty table of matrix exponentials (shared otherwise)
    plan = dataclasses.replace(plan, propagator=_fresh_propagator(plan.propagator, 10**6))
    a = des.run_chunk(scn, plan, 11, ids, events=True)
    b = des.run_chunk(scn, make_plan(scn), 11, ids, events=True, compiled=False)
    assert len(runs) == ids.size  # the compiled path ran every patient
    assert des_loop._LOG_FULL in codes
    assert codes.count(des_loop._TABLE_FULL) > 1
    if overrides is DEATHS:
        dead = np.isfinite(a.outcomes["death_day"])
        assert (a.outcomes["death_day"][dead] % 1 != 0).any()  # some between whole days
    assert_same_bytes(a, b)


def small_buffers(monkeypatch, log_rows):
    """The compiled SimPy paths' buffers made small, so that they fill mid-run: the event
    log's (8 rows a patient + ``log_rows``) and the loop's own table of matrix
    exponentials (16 rows). Returns the list of the codes the steppers were serviced
    for (``des_loop._LOG_FULL``, ``_TABLE_FULL``)."""
    from simulator.engines import chunk_loop, des_loop

    codes = []
    service = des_loop.Stepper.service

    def counted(self, code):
        codes.append(code)
        return service(self, code)

    monkeypatch.setattr(des_loop.Stepper, "service", counted)
    monkeypatch.setattr(des_loop, "_EVENTS_PER_PATIENT", 8)
    monkeypatch.setattr(des_loop, "_EVENTS_MIN", log_rows)
    monkeypatch.setattr(chunk_loop, "_LOCAL_ROWS", 16)
    return codes


def _counting(fn, calls):
    def wrapped(env, stepper, r):
        calls.append(r)
        return fn(env, stepper, r)

    return wrapped


def test_the_simpy_engine_falls_back_to_python_when_numba_fails(monkeypatch, caplog):
    """A compiler error (here: making the struct of arrays fails) leaves nothing written
    and the Python path runs the chunk, with the same bytes and one warning."""
    from simulator import jit
    from simulator.engines import des_loop

    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    if jit.loops(1) is None:
        pytest.skip("numba is not installed")

    def broken(self):
        raise RuntimeError("numba failed here")

    monkeypatch.setattr(des_loop.Stepper, "start", broken)
    scn = load_scenario(SCENARIOS / "first_line.yaml")
    ids = np.arange(40)
    with caplog.at_level("WARNING", logger="simulator.engines.des_loop"):
        a = des.run_chunk(scn, make_plan(scn), 11, ids, events=True)
    assert any("numba failed here" in r.getMessage() for r in caplog.records)
    b = des.run_chunk(scn, make_plan(scn), 11, ids, events=True, compiled=False)
    assert_same(a, b)
    assert_same_events(a.events, b.events)


def test_the_simpy_engines_generated_sources_are_kept_within_a_bound(monkeypatch):
    """des_loop remembers the source of each plan structure it made, the oldest dropped
    beyond ``_SOURCES_KEPT``; a dropped one is made again, the same text."""
    from simulator.engines import chunk_loop, des_loop
    from simulator.kernel import handlers
    from simulator.kernel.params import make_params
    from simulator.kernel.xp import ARRAY
    from simulator.records import ChunkResult

    pytest.importorskip("numba")
    monkeypatch.setattr(des_loop, "_SOURCES", {})
    monkeypatch.setattr(des_loop, "_SOURCES_KEPT", 1)

    def text(name):
        scn = load_scenario(SCENARIOS / name)
        plan = make_plan(scn)
        prm, base = make_params(scn, plan, 1, np.arange(5))
        st = handlers.init_state(ARRAY, plan, prm)
        loop = chunk_loop.build(plan, st, prm)
        return des_loop.Stepper(loop, plan, st, prm, ChunkResult.empty(plan, prm, base, False)).text

    first = text("first_line.yaml")
    other = text("steroid_only.yaml")
    assert other != first and len(des_loop._SOURCES) == 1
    assert text("first_line.yaml") == first and len(des_loop._SOURCES) == 1


def test_environments_cut_the_rows_in_order():
    got = [(type(env).__name__, list(rows)) for env, rows in des.environments(7, 3)]
    assert got == [("Environment", [0, 1, 2]), ("Environment", [3, 4, 5]), ("Environment", [6])]
    envs = [env for env, _ in des.environments(120)]
    assert len(envs) == -(-120 // des.ENV_PATIENTS) and len({id(e) for e in envs}) == len(envs)


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_simpy_results_do_not_depend_on_the_environments_size(compiled, monkeypatch):
    """A chunk's patients run in SimPy environments of ``des.ENV_PATIENTS``, one after
    the other: every outcome, visit value and event-log field is the same byte for byte
    with one patient per environment, a size that does not divide the chunk, and one
    environment for the whole chunk."""
    from simulator import jit
    from simulator.engines import des_loop

    scn = load_scenario(SCENARIOS / "rescue.yaml")
    ids = np.arange(500, 560)
    compiled_runs: list[int] = []
    if compiled:
        monkeypatch.setenv("SIMULATOR_JIT", "1")
        monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
        if jit.loops(1) is None:
            pytest.skip("numba is not installed")
        monkeypatch.setattr(des_loop, "patient", _counting(des_loop.patient, compiled_runs))
    cut = des.environments
    runs = []
    for size in (1, 7, 10_000):
        monkeypatch.setattr(des, "environments", lambda n, size=size: cut(n, size))
        runs.append(des.run_chunk(scn, make_plan(scn), 3, ids, events=True, compiled=compiled))
    assert len(compiled_runs) == (3 * ids.size if compiled else 0)
    for other in runs[1:]:
        assert_same_bytes(runs[0], other)
