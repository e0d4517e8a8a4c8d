"""The runner: results depend on the seed and the patients, never on how the work is cut."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.report.atomic import json_text
from simulator.runner import run


def tables(scn, **kw):
    out = []
    result = run(scn, sink=lambda table, _events: out.append(table), **kw)
    merged = {k: np.concatenate([t[k] for t in out]) for k in out[0]}
    return result, merged


@pytest.mark.parametrize("engine", ["simpy", "cohort"])
def test_patient_k_is_unchanged_when_more_patients_are_added(first_line, engine):
    _, few = tables(first_line, patients=25, seed=9, engine=engine)
    _, many = tables(first_line, patients=70, seed=9, engine=engine, chunk_size=16)
    for name, col in few.items():
        np.testing.assert_array_equal(col, many[name][:25], err_msg=name)


def test_summary_does_not_depend_on_chunk_size(first_line):
    a, _ = tables(first_line, patients=90, seed=4, engine="cohort", chunk_size=90)
    b, _ = tables(first_line, patients=90, seed=4, engine="cohort", chunk_size=13)
    assert json_text(a.summary_json()) == json_text(b.summary_json())


def test_engines_give_the_same_summary_up_to_rounding(first_line):
    a = run(first_line, patients=60, seed=5, engine="simpy").metrics
    b = run(first_line, patients=60, seed=5, engine="cohort").metrics
    for name in a:
        x, y = a[name]["mean"], b[name]["mean"]
        if x is None:
            assert y is None, name
        else:
            assert y == pytest.approx(x, rel=1e-9, abs=1e-12), name


def test_different_seeds_give_different_patients(first_line):
    _, a = tables(first_line, patients=20, seed=1, engine="cohort")
    _, b = tables(first_line, patients=20, seed=2, engine="cohort")
    assert not np.array_equal(a["cpk_baseline_u_per_l"], b["cpk_baseline_u_per_l"])


def test_summary_json_is_plain_json(first_line):
    result = run(first_line, patients=30, seed=1, engine="cohort")
    data = json.loads(json_text(result.summary_json()))
    assert data["patients"] == 30 and data["seed"] == 1
    assert set(data["metrics"]["cpk_ratio_month_3"]) >= {"mean", "ci95"}


def test_a_summary_of_a_few_metrics_has_their_bits_of_the_full_summary(first_line):
    """A sweep summarises and pairs only its outcomes; each must be exactly what the full
    run and comparison report for it (the same estimate, interval and n), and nothing
    else is computed."""
    from conftest import SCENARIOS

    from simulator.comparison import compare_job
    from simulator.runner import execute, run_job
    from simulator.scenario import load_scenario

    rescue = load_scenario(SCENARIOS / "rescue.yaml")

    few = frozenset({"cost_total", "qaly", "tis_week_24", "time_to_cpk_normal_days"})
    kw = {"patients": 300, "seed": 11}
    job, full = run_job(first_line, **kw)
    execute(job)
    job, part = run_job(first_line, metrics=few, **kw)
    execute(job)
    got = part().summary
    assert set(got.metrics()) == few
    assert not got.months and not got.cpk_months
    want = full().metrics
    for name, value in got.metrics().items():
        assert json_text(value) == json_text(want[name])
    job, cfull = compare_job([first_line, rescue], **kw)
    execute(job)
    job, cpart = compare_job([first_line, rescue], metrics=few, **kw)
    execute(job)
    got_c, want_c = cpart().outcomes(), cfull().outcomes()
    assert set(got_c) == few
    for name in few:
        assert json_text(got_c[name]) == json_text(want_c[name])


def test_chunks_run_in_threads_give_the_bytes_of_one_thread(first_line):
    """A Dask worker started with several threads runs chunks concurrently in one
    process, sharing its compiled plans and their propagators: a comparison whose chunks
    run on 4 threads merges to the same summaries as the chunks run one after another."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import SCENARIOS

    from simulator import runner
    from simulator.comparison import compare_job
    from simulator.runner import arms_task, execute
    from simulator.scenario import load_scenario
    from simulator.sweeps import with_overrides

    arms = [
        first_line,
        load_scenario(SCENARIOS / "rescue.yaml"),
        with_overrides(first_line, {"disease.ivig.effect_half_life_days": 12.0}),
    ]
    kw = {"patients": 120, "seed": 5, "chunk_size": 15}
    job, serial = compare_job(arms, allow_different_populations=True, **kw)
    execute(job)
    want = json_text(serial().outcomes())
    runner._PLANS.clear()  # compile the plans in the threads, concurrently
    job, threaded = compare_job(arms, allow_different_populations=True, **kw)
    with ThreadPoolExecutor(4) as pool:
        for _count, parts in pool.map(arms_task, job.tasks):
            job.merge(parts)
    assert json_text(threaded().outcomes()) == want


def test_recent_keeps_the_most_recently_used_values_and_makes_each_once():
    from simulator.recent import Recent

    made: list[str] = []

    def make(k: str):
        return lambda: made.append(k) or k.upper()

    cache: Recent[str, str] = Recent(2)
    assert cache.get("a", make("a")) == "A"
    assert cache.get("b", make("b")) == "B"
    assert cache.get("a", make("a")) == "A"  # kept: not made again, now the most recent
    assert cache.get("c", make("c")) == "C"  # evicts b, the least recently used
    assert len(cache) == 2
    assert cache.get("a", make("a")) == "A"
    assert cache.get("b", make("b")) == "B"
    assert made == ["a", "b", "c", "b"]
