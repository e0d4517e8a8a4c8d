"""The cohort engine's compiled handlers (simulator/engines/fused.py, kernel/trace.py).

A handler is traced into a graph of numpy operations and written out as one numba loop.
tests/test_engines.py compares whole runs with and without the loops on every shipped
scenario; the tests here check the pieces: each operation and conversion against numpy
on awkward values (NaN, signed zeros, infinities, mixed int/float/bool), that every
event kind of every shipped scenario compiles instead of silently falling back, and that
the fallback to numpy works when tracing or compiling fails.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import SCENARIOS, scenario_files

from simulator import jit
from simulator.engines import cohort, fused
from simulator.kernel import trace
from simulator.kernel.plan import make_plan
from simulator.kernel.xp import ARRAY
from simulator.records import EventLog
from simulator.scenario import load_scenario
from simulator.scenario.schema import Dist, fixed, lognormal, normal


@pytest.fixture(autouse=True)
def _traced_afresh(monkeypatch):
    """Every plan of these tests is traced and its loop built (not taken from an earlier
    test's plan of the same structure, ``chunk_loop.build``): they patch the tracer,
    the compiler or the loop's sizes."""
    from simulator.engines import chunk_loop

    monkeypatch.setattr(chunk_loop, "_REUSABLE", [])
    monkeypatch.setattr(chunk_loop, "_NOT_REUSABLE", set())


numba = pytest.importorskip("numba")

NAN, INF = math.nan, math.inf
NO_KEYS = np.zeros(0, dtype=np.uint64)  # the loop's stream keys (none here)
F = np.array([0.0, -0.0, 1.5, -2.25, NAN, INF, -INF, 1e-310, 3.0, 2.0, -0.0, 0.0])
G = np.array([-0.0, 0.0, 1.5, 3.0, 1.0, INF, 5.0, -1e-310, NAN, 2.0, 0.0, -0.0])
I_ = np.array([0, -3, 7, 2, 1, 0, 5, -1, 4, 2, 9, 1], dtype=np.int64)
B = np.array([True, False, True, True, False, True, False, False, True, False, True, False])


def _expressions(xp, s):
    """Every operation and mix of types the handlers use, on the state fields f, g (float),
    i (int) and b (bool). Returns the outputs in a fixed order."""
    return [
        xp.minimum(s.f, s.g),
        xp.maximum(s.f, s.g),
        xp.minimum(s.g, s.f),
        xp.maximum(s.i, 2),
        xp.minimum(s.i, s.f),
        xp.where(s.b, s.f, s.i),
        xp.where(s.f, 1, 0.5),  # a float condition: nonzero (NaN too) is true
        xp.where(s.b, 0, s.i),
        s.b + s.b,  # numpy: logical or
        s.b * s.b,  # numpy: logical and
        s.b * 3,
        s.b * 2.5,
        s.i + s.b,
        s.i * 1.0,
        s.i / 2,
        s.i / s.i,  # 0 / 0 is NaN, not an error
        s.f / s.g,  # 1 / 0 is inf
        1.0 / s.f,
        -s.f,
        -s.i,
        s.f - s.i,
        2 - s.i,
        s.f > s.i,
        s.i >= 2.5,
        s.i == 2,
        s.f != s.f,  # NaN test
        s.b == 0.0,
        xp.logical_and(s.b, s.f),
        xp.logical_or(s.b, s.f > 1),
        xp.logical_not(s.f),
        xp.floor(s.f),
        xp.floor(s.i),
        xp.exp(s.f),
        xp.exp(s.i * 0.5),
        xp.log(xp.maximum(s.f, 0.0)),
        xp.log(s.f),  # negative: NaN
        xp.take((1.5, -2.0, 7.25, 0.0), xp.minimum(xp.maximum(s.i, 0), 3)),
        (s.i < 3) * 4 + s.b * (1 << 5),
        # inverse CDFs of every form of scenario distribution (scipy's own ndtri)
        *(xp.ppf(d, _unit(xp, s)) for d in _DISTS),
        *(xp.ppf(d, xp.exp(-xp.maximum(_unit(xp, s), 0.0) - 0.25)) for d in _DISTS),
    ]


_DISTS = (
    normal(-0.5, 0.7, None, 1.0),  # truncated above (the flare level)
    normal(1.0, 2.0),
    normal(0.0, 1.0, 0.5, None),  # truncated below in the upper tail
    normal(2.0, 0.5, 1.0, 3.0),
    lognormal(median=2.0, cv=0.5),
    lognormal(median=2.0, cv=0.5, high=5.0),
    Dist(dist="uniform", low=1, high=4.5),
    fixed(2.5),
)


def _unit(xp, s):
    """Values in [0, 1], both ends and a denormal included, and no NaN: a probability is a
    stream draw in (0, 1), and through ``ndtri`` of a NaN the compiled path and numpy's
    may set the NaN's sign bit differently (the only difference known)."""
    return xp.where(s.f != s.f, 0.5, xp.minimum(xp.maximum(s.f, 0.0), 1.0))


def _run_both():
    real = SimpleNamespace(f=F.copy(), g=G.copy(), i=I_.copy(), b=B.copy())
    graph = trace.Graph()
    sym = SimpleNamespace(
        **{
            name: graph.input(("st", name), getattr(real, name).dtype)
            for name in ("f", "g", "i", "b")
        }
    )
    outs = _expressions(trace.TRACE, sym)
    outputs = [("flags", outs[0]), ("grams", outs[1])]
    outputs += [(f"value{k}", trace._operand(graph, o)) for k, o in enumerate(outs)]
    # also write back: a float into the int field, a bool into the float field
    writes = [(("st", "i"), trace._operand(graph, sym.i * 0.5 + 0.75)), (("st", "g"), sym.b)]
    tr = trace.Traced(graph, outputs, writes, len(outs))
    kernel = fused._Kernel(tr, real)
    sel = np.arange(len(F), dtype=np.int64)
    out = kernel(real, SimpleNamespace(), sel)
    values = [out[f"value{k}"] for k in range(len(outs))]
    with np.errstate(all="ignore"):
        expected = _expressions(ARRAY, SimpleNamespace(f=F, g=G, i=I_, b=B))
    return real, values, expected


def test_every_operation_gives_numpys_bits_and_type():
    real, values, expected = _run_both()
    for k, (got, want) in enumerate(zip(values, expected, strict=True)):
        want = np.asarray(want)
        assert got.dtype == want.dtype, (k, got.dtype, want.dtype)
        assert got.tobytes() == want.tobytes(), (k, got, want)
    # the writes convert as numpy's assignment does
    want_i = I_.copy()
    want_i[:] = I_ * 0.5 + 0.75  # truncated towards zero
    assert real.i.tobytes() == want_i.tobytes()
    assert real.g.tobytes() == B.astype(np.float64).tobytes()


def test_numpy_scalars_of_the_plan_combine_with_traced_values_as_python_numbers_do():
    graph = trace.Graph()
    x = graph.input(("st", "x"), np.dtype(np.int64))
    for made in (np.float64(2.5) * x, x * np.float64(2.5), np.int64(3) + x, np.bool_(True) * x):
        assert isinstance(made, trace.Node)
    assert (np.float64(2.5) * x).dtype == trace.FLOAT
    assert (np.int64(3) + x).dtype == trace.INT
    # an array of the plan in a handler's arithmetic is refused, not turned into an
    # object array holding a node (the loop has no per-patient arrays of the plan)
    with pytest.raises(TypeError):
        np.array([2.0, 3.0]) * x


def test_a_branch_on_a_traced_value_is_refused():
    graph = trace.Graph()
    x = graph.input(("st", "x"), np.dtype(np.float64))
    with pytest.raises(trace.TraceError):
        if x > 0:  # the handlers must use xp.where
            pass
    with pytest.raises(trace.TraceError):
        int(x)


def _loop_of(scn, plan, monkeypatch):
    """The chunk loop a run of ``plan`` used (None: the numpy path ran)."""
    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    cohort.run_chunk(scn, plan, 3, np.arange(200))
    loop = fused.for_plan(plan)._chunk
    return None if loop is None or loop.failed else loop


def _numpy_run(scn, seed, ids, monkeypatch, events=True):
    monkeypatch.setenv("SIMULATOR_JIT", "0")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    return cohort.run_chunk(scn, make_plan(scn), seed, ids, events=events)


def _assert_same_bytes(want, got):
    for part in ("outcomes", "visits"):
        for name, value in getattr(want, part).items():
            assert value.tobytes() == getattr(got, part)[name].tobytes(), (part, name)
    assert want.visit_prednisone.tobytes() == got.visit_prednisone.tobytes()
    assert want.visit_flags.tobytes() == got.visit_flags.tobytes()
    if want.events is not None:
        for name in EventLog.FIELDS:
            a, b = getattr(want.events, name), getattr(got.events, name)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.stem)
def test_every_shipped_scenario_runs_as_one_compiled_loop(path, monkeypatch):
    scn = load_scenario(path)
    if scn.center is not None:
        pytest.skip("an infusion center runs on the SimPy engine")
    loop = _loop_of(scn, make_plan(scn), monkeypatch)
    assert loop is not None and loop.ready, "the chunk ran on numpy"


def test_one_plan_serves_runs_of_any_seed_and_chunk(monkeypatch):
    """A plan's loop is compiled once and reused by every later chunk of the process
    (plans are cached, ``recent.py``): nothing of the first chunk (its seed, its
    patients) may be baked into it."""
    scn = load_scenario(SCENARIOS / "first_line.yaml")
    plan = make_plan(scn)
    runs = [(3, np.arange(150)), (99, np.arange(150)), (99, np.arange(1000, 1200))]
    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    got = [cohort.run_chunk(scn, plan, seed, ids, events=True) for seed, ids in runs]
    # the later chunks ran on the loop after its traces gave up their nodes
    loop = fused.for_plan(plan)._chunk
    assert loop.ready and all(not s.tr.graph.nodes for s in loop.sources.values())
    for (seed, ids), g in zip(runs, got, strict=True):
        _assert_same_bytes(_numpy_run(scn, seed, ids, monkeypatch), g)


def test_a_fresh_process_loads_the_loops_for_its_first_1000_patient_chunk(monkeypatch):
    """Numpy takes ~0.3 s a chunk plus ~0.11 ms a patient more than the compiled loop
    (``cohort.numpy_loss_s``): by default (auto) a process's first 1,000-patient chunk
    already loses more than loading numba costs, so it runs compiled; a 200-patient
    chunk does not. The bytes are numpy's either way."""
    scn = load_scenario(SCENARIOS / "rescue.yaml")
    plan = make_plan(scn)
    monkeypatch.delenv("SIMULATOR_JIT", raising=False)
    settled = []
    for n in (200, 1000):
        want = _numpy_run(scn, 5, np.arange(n), monkeypatch)
        monkeypatch.delenv("SIMULATOR_JIT", raising=False)
        dispatch = jit.Dispatch()
        monkeypatch.setattr(jit, "_DISPATCH", dispatch)
        _assert_same_bytes(want, cohort.run_chunk(scn, plan, 5, np.arange(n), events=True))
        settled.append(dispatch.settled)
    assert settled == [False, True]


def test_missing_matrix_exponentials_and_a_full_event_log_give_numpys_bytes(monkeypatch):
    """The loop computes the matrix exponentials its propagator's table lacks (every step
    at first, on a fresh table; a death between whole days each time) into a table of
    its own, which it hands to the propagator when full (2 rows here) and at the end; a
    propagator table that fills up (16 rows here) is replaced meanwhile; a full
    event-log buffer stops the pass and the next goes on from that patient. The bytes
    are the numpy path's."""
    from simulator.engines import chunk_loop

    scn = load_scenario(
        SCENARIOS / "first_line.yaml", ["disease.mortality.excess_per_year=2", "horizon_days=400"]
    )
    ids = np.arange(400)
    want = _numpy_run(scn, 5, ids, monkeypatch)
    assert np.isfinite(want.outcomes["death_day"]).sum() > 100  # many fractional steps
    plan = make_plan(scn)
    prop = _fresh_propagator(plan.propagator, 16)
    plan = dataclasses.replace(plan, propagator=prop)
    passes = []  # (rows in the loop's own table, where the pass stopped, patients given)
    added = []  # rows handed to the propagator, each time
    real_compile = chunk_loop._compile
    real_add = type(prop).add_computed

    def counting(text):
        fn = real_compile(text)

        def run(*args):
            nl, stop, nev = fn(*args)
            passes.append((nl, stop, args[0].size))
            return nl, stop, nev

        return run

    def adding(self, keys, rows):
        added.append(keys.size)
        real_add(self, keys, rows)

    monkeypatch.setattr(chunk_loop, "_compile", counting)
    monkeypatch.setattr(type(prop), "add_computed", adding)
    monkeypatch.setattr(chunk_loop, "_LOCAL_ROWS", 2)
    monkeypatch.setattr(chunk_loop, "_EVENTS_PER_PATIENT", 1)  # the buffer fills
    monkeypatch.setattr(chunk_loop, "_EVENTS_MIN", 0)
    monkeypatch.setattr(chunk_loop, "_EVENT_RATE", {})  # (no earlier chunk's size)
    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    got = cohort.run_chunk(scn, plan, 5, ids, events=True)
    assert fused.for_plan(plan)._chunk is not None
    assert passes[0][0] == 2 and passes[0][1] == 0  # the loop's table was full at once
    assert any(p[0] < 2 and p[1] < p[2] for p in passes)  # the buffer was full
    assert len(added) > 20 and max(added) == 2
    assert prop._rows <= 16
    _assert_same_bytes(want, got)


def _fresh_propagator(prop, rows):
    """The same matrices with an empty table of at most ``rows`` rows (a copy: the
    process shares ``prop`` between plans)."""
    fresh = copy.copy(prop)
    fresh._table = np.empty((0, prop._table.shape[1]))
    fresh._rows = 0
    fresh._dense = np.full(0, -1, dtype=np.int64)
    fresh._frac = {}
    fresh._max = rows
    fresh._lock = threading.Lock()
    return fresh


def test_a_plan_that_cannot_be_traced_runs_on_numpy_with_the_same_bits(monkeypatch):
    from simulator.engines import chunk_loop

    scn = load_scenario(SCENARIOS / "first_line.yaml")
    want = _numpy_run(scn, 3, np.arange(200), monkeypatch)

    def refuse(*args, **kwargs):
        raise trace.TraceError("refused for the test")

    plan = make_plan(scn)
    monkeypatch.setattr(chunk_loop, "trace_handle", refuse)
    assert _loop_of(scn, plan, monkeypatch) is None
    got = cohort.run_chunk(scn, plan, 3, np.arange(200), events=True)
    _assert_same_bytes(want, got)


def test_a_loop_numba_cannot_compile_falls_back_to_numpy(monkeypatch, caplog):
    from simulator.engines import chunk_loop

    scn = load_scenario(SCENARIOS / "steroid_only.yaml")
    want = _numpy_run(scn, 3, np.arange(100), monkeypatch)

    def broken(text):
        def fn(*args):
            raise numba.core.errors.TypingError("broken for the test")

        return fn

    monkeypatch.setattr(chunk_loop, "_compile", broken)
    plan = make_plan(scn)
    assert _loop_of(scn, plan, monkeypatch) is None  # failed at its first call
    assert "numba failed" in caplog.text
    got = cohort.run_chunk(scn, plan, 3, np.arange(100), events=True)
    _assert_same_bytes(want, got)


def test_plans_that_differ_only_in_numbers_share_one_compiled_loop(monkeypatch):
    """The numbers of a plan are arguments of the loop, not part of its source: a PSA's
    draws compile nothing new."""
    a = load_scenario(SCENARIOS / "first_line.yaml")
    b = load_scenario(
        SCENARIOS / "first_line.yaml",
        ["disease.steroid.emax_per_day=0.1", "disease.activity.flare_rate_per_year=2.5"],
    )
    la = _loop_of(a, make_plan(a), monkeypatch)
    lb = _loop_of(b, make_plan(b), monkeypatch)
    assert la.fn is lb.fn
    assert la.kf["3"].tobytes() != lb.kf["3"].tobytes()  # the visit's numbers differ


def test_a_compiled_loop_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMULATOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fused, "_COMPILED", {})
    text = fused._Source(*_tiny_trace()).text
    f1 = fused._compile(text)
    files = sorted(tmp_path.rglob("k_*.py"))
    assert len(files) == 1 and files[0].read_text(encoding="utf-8") == text
    stamp = files[0].stat().st_mtime_ns
    monkeypatch.setattr(fused, "_COMPILED", {})
    f2 = fused._compile(text)  # a new process: the file is there, not rewritten
    assert files[0].stat().st_mtime_ns == stamp
    x = np.array([1.0, 2.0])
    o1, o2 = np.empty(2), np.empty(2)
    f1(np.arange(2), np.array([3.0]), np.zeros(0, dtype=np.int64), NO_KEYS, x, o1, o1.copy())
    f2(np.arange(2), np.array([3.0]), np.zeros(0, dtype=np.int64), NO_KEYS, x, o2, o2.copy())
    assert o1.tolist() == o2.tolist() == [3.0, 6.0]


def test_an_unwritable_cache_folder_falls_back_to_a_temporary_one(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be", encoding="utf-8")
    monkeypatch.setenv("SIMULATOR_CACHE_DIR", str(blocker))
    monkeypatch.setattr(fused, "_COMPILED", {})
    fn = fused._compile(fused._Source(*_tiny_trace()).text)
    out, out2 = np.empty(1), np.empty(1)
    no_ints = np.zeros(0, dtype=np.int64)
    fn(np.arange(1), np.array([2.0]), no_ints, NO_KEYS, np.array([4.0]), out, out2)
    assert out.tolist() == [8.0]
    assert blocker.read_text(encoding="utf-8").startswith("a file")  # not touched


def _tiny_trace():
    graph = trace.Graph()
    x = graph.input(("st", "x"), np.dtype(np.float64))
    y = x * 3.0
    tr = trace.Traced(graph, [("flags", y), ("grams", y)], [], 0)
    return tr, {}


def test_a_new_loop_is_compiled_once_numpy_has_lost_what_compiling_costs(tmp_path, monkeypatch):
    """Rent or buy: in the default mode a loop that is not compiled yet (not in this
    process, not in numba's cache) waits until the plans with its source have lost, on
    numpy, what compiling it costs; the results are the same bytes either way."""
    from simulator.engines import chunk_loop

    monkeypatch.setattr(chunk_loop, "_on_disk", lambda fn: False)  # as if never compiled
    monkeypatch.setattr(chunk_loop, "_OWED", {})
    loss = cohort.numpy_loss_s(200)
    monkeypatch.setattr(chunk_loop, "COMPILE_SECONDS", 2.5 * loss)
    scn = load_scenario(SCENARIOS / "steroid_only.yaml")
    want = [_numpy_run(scn, seed, np.arange(200), monkeypatch) for seed in (1, 2, 3)]
    monkeypatch.delenv("SIMULATOR_JIT", raising=False)  # the default: auto
    dispatch = jit.Dispatch()
    dispatch.lost_s = jit.SWITCH_AFTER_SECONDS  # numba itself is loaded
    monkeypatch.setattr(jit, "_DISPATCH", dispatch)
    plan = make_plan(scn)
    ready = []
    for seed, w in zip((1, 2, 3), want, strict=True):
        got = cohort.run_chunk(scn, plan, seed, np.arange(200), events=True)
        ready.append(fused.for_plan(plan)._chunk.ready)
        _assert_same_bytes(w, got)
    assert ready == [False, False, True]


def test_state_fields_sharing_memory_or_read_only_get_their_own_before_the_loop():
    """The loop writes state fields in place; the numpy path may leave fields that
    share a buffer or are read-only broadcasts. Those (and only those) are copied."""
    from simulator.engines.chunk_loop import _own_arrays

    class S:
        __slots__ = ("a", "b", "c", "lst", "own")

    buf = np.arange(100.0)
    s = S()
    s.a, s.b, s.c = buf[:100], buf[10:20], buf[30:40]  # a covers b and c
    s.lst = [np.zeros(3), np.broadcast_to(np.ones(1), (3,))]
    s.own = np.zeros(4)
    own, first = s.own, s.lst[0]
    _own_arrays(s)
    arrays = [s.a, s.b, s.c, *s.lst, s.own]
    spans = sorted(
        (a.__array_interface__["data"][0], a.__array_interface__["data"][0] + a.nbytes)
        for a in arrays
    )
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    assert all(a.flags.writeable and a.flags.c_contiguous for a in arrays)
    assert s.own is own and s.lst[0] is first  # nothing shared: not copied
    assert s.b.tolist() == list(range(10, 20)) and s.lst[1].tolist() == [1.0] * 3


def test_threads_sharing_a_plan_and_its_propagator_give_the_serial_bytes(monkeypatch):
    """Dask runs chunks in threads of one process: the loop runs without the GIL, and
    the threads share the plan's propagator, whose table they grow (and replace when
    full: 64 rows here) while others read their snapshots."""
    scn = load_scenario(SCENARIOS / "rescue.yaml")
    chunks = [np.arange(k * 150, (k + 1) * 150) for k in range(6)]
    want = [_numpy_run(scn, 9, ids, monkeypatch) for ids in chunks]
    plan = make_plan(scn)
    plan = dataclasses.replace(plan, propagator=_fresh_propagator(plan.propagator, 64))
    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    cohort.run_chunk(scn, plan, 9, np.arange(2))  # compile before the threads start
    got: dict[int, object] = {}

    def work(k):
        got[k] = cohort.run_chunk(scn, plan, 9, chunks[k], events=True)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(chunks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, w in enumerate(want):
        _assert_same_bytes(w, got[k])


@pytest.mark.parametrize("jit_mode", ["0", "1"])
def test_an_undefined_event_time_stops_the_cohort_engine(monkeypatch, jit_mode):
    """A NaN event time (from a bug, or from inputs no check refuses: an age hazard ratio
    of 1e-300 made 0 x inf hazards) made both cohort paths spin for ever, since no time
    compares below NaN; they now stop with an internal error naming the patient."""
    from simulator.invariants import InvariantError
    from simulator.kernel import handlers

    monkeypatch.setenv("SIMULATOR_JIT", jit_mode)
    scn = load_scenario(SCENARIOS / "first_line.yaml")
    plan = make_plan(scn)
    init = handlers.init_state

    def poisoned(xp, plan_, prm):
        st = init(xp, plan_, prm)
        st.flare_next[7] = math.nan  # the chunk's patient 7 (id 107)
        return st

    monkeypatch.setattr(handlers, "init_state", poisoned)
    with pytest.raises(InvariantError, match=r"undefined \(NaN\): patient 107, after day 0"):
        cohort.run_chunk(scn, plan, 1, np.arange(100, 400))
