"""A plan's trace reused for another plan of the same structure (``kernel.plan_symbols``,
``chunk_loop.build``): the loop it gives is the one a fresh trace gives, bit for bit."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from conftest import SCENARIOS, leaves, scenario_files

from simulator.engines import chunk_loop
from simulator.kernel import handlers
from simulator.kernel.params import make_params
from simulator.kernel.plan import make_plan
from simulator.kernel.plan_symbols import Num, PlanProxy, Recording, evaluate
from simulator.kernel.xp import ARRAY
from simulator.scenario import load_scenario
from simulator.scenario.disease import FITTED
from simulator.sweeps import with_overrides

# the sections of a scenario the kernel's plan is made from
_KERNEL = ("disease", "regimen", "safety", "entry")


@pytest.fixture(autouse=True)
def _empty_cache(monkeypatch):
    """Each test starts with no reusable loop (and leaves the process's cache as it was)."""
    monkeypatch.setattr(chunk_loop, "_REUSABLE", [])
    monkeypatch.setattr(chunk_loop, "_NOT_REUSABLE", set())


def _arrays(scn, plan, n=20):
    prm, _ = make_params(scn, plan, 1, np.arange(n, dtype=np.int64))
    return handlers.init_state(ARRAY, plan, prm), prm


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def _assert_same_loop(got, fresh) -> None:
    assert got.text == fresh.text
    assert got.keys == fresh.keys
    assert list(got.kf) == list(fresh.kf)
    for label in fresh.kf:
        assert _bits(got.kf[label]) == _bits(fresh.kf[label]), label
        assert _bits(got.ki[label]) == _bits(fresh.ki[label]), label


def _build(scn):
    """(the loop ``build`` gives, whether it reused an earlier plan's, a fresh trace)."""
    plan = make_plan(scn)
    st, prm = _arrays(scn, plan)
    before = {id(loop) for _, loop in chunk_loop._REUSABLE}
    got = chunk_loop.build(plan, st, prm)
    reused = bool(before) and before == {id(loop) for _, loop in chunk_loop._REUSABLE}
    return got, reused, chunk_loop.ChunkLoop(plan, st, prm)


def _kernel_floats(scn) -> list[tuple[str, float]]:
    data = scn.model_dump(mode="python", by_alias=True)
    return [
        (p, v)
        for p, v in leaves(data)
        if p.split(".")[0] in _KERNEL and "correlation" not in p  # symmetric as a whole
    ]


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.stem)
def test_every_shipped_scenario_records_a_reusable_trace(path):
    """The trace through the plan's symbols is the plain trace for every shipped
    scenario (else its plans would be traced every time, correctly but slowly), and a
    second plan of the same scenario reuses it."""
    scn = load_scenario(path)
    got, reused, fresh = _build(scn)
    assert got is not None and got.recording is not None and not reused
    again, reused, fresh = _build(scn)
    assert reused
    _assert_same_loop(again, fresh)


@pytest.mark.parametrize("name", ["first_line", "rescue"])
def test_each_number_changed_alone_gives_a_fresh_traces_loop(name):
    """Every float of the kernel's sections changed alone (x 1.03, or 0 -> 0.01): the
    loop ``build`` gives, reused or traced, is the one a fresh trace gives, bit for bit.
    Most are reused; those the handlers decide on (a case fatality of 0 turns deaths off,
    an exponent of exactly 1 skips a power) or use whole (a rule's threshold, a
    distribution, a lookup table) are traced again."""
    base = load_scenario(SCENARIOS / f"{name}.yaml")
    _build(base)
    reused_paths, traced_paths = [], []
    for path, value in _kernel_floats(base):
        del chunk_loop._REUSABLE[1:]  # only the base plan's
        scn = with_overrides(base, {path: value * 1.03 if value else 0.01})
        got, reused, fresh = _build(scn)
        _assert_same_loop(got, fresh)
        (reused_paths if reused else traced_paths).append(path)
    assert len(reused_paths) > len(traced_paths)
    assert any(p.endswith("case_fatality") for p in traced_paths)  # 0 -> 0.01: deaths on
    # what a calibration and the shipped PSA vary is reused
    for path in FITTED:
        if path.endswith("_cv") or "lasting_drive" in path:  # patients' draws, not the plan
            continue
        assert path in reused_paths, path


def test_a_psa_of_other_scenarios_reuses_and_matches():
    """Random draws of several numbers at once, on the shipped study scenarios."""
    rng = np.random.default_rng(11)
    for path in sorted((SCENARIOS / "studies").glob("*.yaml")):
        base = load_scenario(path)
        _build(base)
        hits = 0
        for _ in range(4):
            point = {
                "disease.steroid.emax_per_day": float(rng.uniform(0.06, 0.2)),
                "disease.ivig.effect_per_g_per_l_per_day": float(rng.uniform(0.003, 0.02)),
                "disease.activity.flare_rate_per_year": float(rng.uniform(0.2, 2.0)),
                "disease.mortality.excess_per_year": float(rng.uniform(0.01, 0.3)),
                "disease.core_set.activity_exponent": float(rng.uniform(0.3, 0.9)),
                "disease.function.damage_rate_per_log_day": float(rng.uniform(0.001, 0.01)),
            }
            got, reused, fresh = _build(with_overrides(base, point))
            _assert_same_loop(got, fresh)
            hits += reused
        assert hits == 4, path.stem


def test_a_sweep_gives_the_same_bytes_with_and_without_reuse(tmp_path, monkeypatch):
    """A small PSA through the runner: the same summaries whether each point's plan is
    traced or takes an earlier point's loop with its own numbers."""
    import json

    from simulator.sweeps import plan_sweep, run_sweep

    sweep = plan_sweep(SCENARIOS / "sweeps" / "psa_first_line_vs_rescue.yaml", draws=4, patients=60)

    def result(out):
        data = run_sweep(sweep, tmp_path / out, progress=False, fresh=True).to_json()
        data.pop("simulator_version")
        return json.dumps(data, sort_keys=True)

    monkeypatch.setenv("SIMULATOR_JIT", "1")  # the compiled loop from the first chunk
    reused = result("reused")
    assert chunk_loop._REUSABLE  # the points' plans were recorded
    monkeypatch.setattr(chunk_loop, "_REUSABLE_MAX", 0)
    monkeypatch.setattr(chunk_loop, "_REUSABLE", [])
    traced = result("traced")
    assert not chunk_loop._REUSABLE
    assert reused == traced


# -- the symbols themselves ---------------------------------------------------------------


class _Plan:
    """A stand-in plan: two floats, an int, a tuple."""

    def __init__(self, a: float, b: float, n: int = 2, pair: tuple = (1.5, 2.5)) -> None:
        self.a, self.b, self.n, self.pair = a, b, n, pair

    def scaled(self) -> float:
        return self.a * 7.0


def _record(plan, fn):
    rec = Recording()
    return rec, fn(PlanProxy(plan, rec))


def test_an_expression_replays_the_same_operations_bit_for_bit():
    def fn(p):
        return (p.a - 0.1) / (p.b * 3.0) + (-p.a) ** 2.0 + 1.0 / p.b + abs(p.pair[1] - 4.0)

    rec, num = _record(_Plan(0.3, 0.7), fn)
    assert isinstance(num, Num)
    for a, b in [(0.3, 0.7), (0.1 + 0.2, 1e-300), (-2.5, 3.0), (1e150, 7e-3)]:
        other = _Plan(a, b)
        floats = rec.inputs(other)
        assert floats is not None
        want = fn(other)
        got = evaluate(num, floats, {})
        assert struct.pack("<d", got) == struct.pack("<d", want)


def test_a_decision_on_a_number_is_a_guard():
    def fn(p):
        return p.a * 2.0 if p.a > p.b else p.b

    rec, _ = _record(_Plan(1.0, 0.5), fn)
    assert rec.inputs(_Plan(2.0, 1.0)) is not None  # the same branch
    assert rec.inputs(_Plan(0.2, 1.0)) is None  # the other branch
    assert rec.inputs(_Plan(1.0, 1.0)) is None  # equal: not greater


def test_a_number_leaving_the_arithmetic_is_pinned_to_its_bits():
    rec, _ = _record(_Plan(0.5, 2.0), lambda p: math.exp(p.a) + int(p.b))
    assert rec.inputs(_Plan(0.5, 2.0)) is not None
    assert rec.inputs(_Plan(0.5000000000000001, 2.0)) is None  # exp read the exact value
    assert rec.inputs(_Plan(0.5, 2.5)) is None  # int() read it too
    rec, _ = _record(_Plan(0.0, 1.0), lambda p: float(p.a))
    assert rec.inputs(_Plan(-0.0, 1.0)) is None  # -0.0 has other bits


def test_everything_else_read_must_be_equal():
    rec, _ = _record(_Plan(1.0, 2.0, n=3), lambda p: p.a * p.n + len(p.pair))
    assert rec.inputs(_Plan(5.0, 2.0, n=3)) is not None
    assert rec.inputs(_Plan(5.0, 2.0, n=4)) is None  # an int is read as it is
    assert rec.inputs(_Plan(5.0, 2.0, n=3, pair=(1.0, 2.0, 3.0))) is None  # a length
    assert rec.inputs(_Plan(5.0, 2.0, n=3, pair=(1, 2.5))) is None  # int for a float
    rec, num = _record(_Plan(1.0, 2.0), lambda p: p.scaled())  # a method runs on the proxy
    assert evaluate(num, rec.inputs(_Plan(3.0, 2.0)), {}) == 21.0


def test_a_handler_a_symbol_cannot_follow_is_traced_for_every_plan(monkeypatch):
    """A handler that does with a plan number what a Num cannot follow (here numpy's
    sqrt of it) fails the symbolic trace: that structure's plans are traced every time,
    each with its own constants, as before the reuse."""
    real = handlers.handle

    def numpy_on_a_plan_number(xp, plan, prm, st, kind, *rest):
        np.sqrt(plan.emax)
        return real(xp, plan, prm, st, kind, *rest)

    monkeypatch.setattr(handlers, "handle", numpy_on_a_plan_number)
    base = load_scenario(SCENARIOS / "steroid_only.yaml")
    first, reused, _ = _build(base)
    assert first is not None and first.recording is None and not reused
    assert first.text in chunk_loop._NOT_REUSABLE and not chunk_loop._REUSABLE
    other = with_overrides(base, {"disease.steroid.emax_per_day": 0.2})
    got, reused, fresh = _build(other)
    assert not reused and got.recording is None
    _assert_same_loop(got, fresh)
    assert _bits(got.kf["3"]) != _bits(first.kf["3"])  # its own numbers
