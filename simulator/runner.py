"""One runner under every experiment: patient ids in chunks -> engine -> reducers.

:func:`arms_task` is the only place that simulates. :func:`arms_job` splits the patient
ids 0..N-1 into chunks; each chunk runs every arm (scenario) on the same ids with the
engine chosen here. Where the chunk ran, each :class:`Reducer` turns the arms' patient
tables into a small mergeable part (summaries, paired differences, per-patient values);
in this process the parts are merged in patient order. :func:`execute` runs a job's
chunks serially, in a process pool or on Dask. A single
run is one arm with the :class:`Summaries` (and :class:`Tables`) reducers; a comparison
adds paired differences (``comparison.py``); sweep points, PSA draws and calibration
evaluations are these jobs, and a sweep spreads the chunks of its points over its
workers.

Every random number is a function of the seed and the patient id, and the statistics
are exact sums, so the result does not depend on the number of workers or the chunk size.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from ._version import __version__
from .center_stats import CenterRecord, center_summary
from .engines import center, cohort, des
from .invariants import check_events
from .kernel.params import shared_noise
from .kernel.plan import Plan, make_plan
from .limits import check_patients, check_seed
from .outcomes import CohortSummary, patient_table
from .parallel import ordered_map
from .recent import Recent
from .records import ChunkResult, EventLog
from .scenario import Scenario, scenario_data, scenario_sha256

__all__ = [
    "ENGINES",
    "ArmsChunk",
    "ArmsJob",
    "Reducer",
    "RunResult",
    "Summaries",
    "Tables",
    "arms_job",
    "arms_task",
    "choose_engine",
    "execute",
    "run",
    "run_job",
]

log = logging.getLogger(__name__)

ENGINES = {"simpy": des.run_chunk, "cohort": cohort.run_chunk}
# Units of work per task, by kind of unit: patients for each engine, or center
# replications (one center is one unit; a few per task). MIN_SPLIT: the smallest task
# when the units are split between workers. A SimPy chunk runs its patients in
# environments of 50 (``des.ENV_PATIENTS``), so its size only spreads the chunk's fixed
# work (parameters, summary; ~5 ms): first_line, 6,000 patients, 1 worker, medians of 6
# interleaved runs: 5,897 patients/s at 500, 6,269 at 1,000, 6,236 at 2,000.
DEFAULT_CHUNK = {"simpy": 2_000, "cohort": 10_000, "center": 4}
MIN_SPLIT = {"simpy": 100, "cohort": 100, "center": 1}


def chunk_size_for(kind: str, n: int, workers: int, chunk_size: int | None) -> int:
    """Units per task (``kind``: an engine's patients, or ``"center"``): the default;
    with several workers smaller, so that every worker gets work (in one process, larger
    chunks only save per-step overhead)."""
    if chunk_size:
        return int(chunk_size)
    if workers <= 1:
        return max(1, min(DEFAULT_CHUNK[kind], n))
    per_worker = -(-n // max(1, 4 * workers))
    return max(1, min(DEFAULT_CHUNK[kind], max(MIN_SPLIT[kind], per_worker)))


def unit_kind(scns: Sequence[Scenario], engine: str = "auto") -> str:
    """What one unit of a run of these arms is, for :func:`chunk_size_for`: a center
    replication (``"center"``) or a patient of the engine chosen."""
    if any(s.center is not None for s in scns):
        return "center"
    return choose_engine(scns[0], engine)


ChunkSink = Callable[[dict[str, np.ndarray], EventLog | None], None]


def choose_engine(scn: Scenario, engine: str = "auto") -> str:
    """The engine to use: forced, or automatic.

    Without a ``center:`` patients share nothing, so ``auto`` picks the vectorized cohort
    engine, which gives the same per-patient results as the SimPy reference
    (tests/test_engines.py). With a center, patients share chairs and IVIG stock: only
    the SimPy engine can simulate it (``engines/center.py``, one center per unit of work),
    and ``auto`` picks it.
    """
    if engine not in ("auto", *ENGINES):
        raise ValueError(f"unknown engine {engine!r}; choose from auto, {', '.join(ENGINES)}")
    if scn.center is not None:
        if engine == "cohort":
            raise ValueError(
                "the cohort engine cannot simulate an infusion center (its patients share"
                " chairs and IVIG stock): use the simpy engine, or auto"
            )
        return "simpy"
    return "cohort" if engine == "auto" else engine


@dataclass
class RunResult:
    """A finished Monte Carlo run: the scenario, its provenance and its aggregates."""

    scenario: Scenario
    seed: int
    patients: int
    engine: str
    plan: Plan
    summary: CohortSummary

    @property
    def center(self) -> CenterRecord | None:
        """What the infusion center did (a scenario with a ``center:``), else None."""
        return self.summary.center

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        return self.summary.metrics()

    def to_frame(self) -> Any:
        """The metrics as a tidy pandas DataFrame (one row per metric)."""
        from .frames import run_frame

        return run_frame(self.metrics)

    def plot(self, ax: Any = None, which: str = "cpk") -> Any:
        """Median and 5-95% band by month of CPK (``which="cpk"``) or myoglobin, ULN
        marked, on ``ax`` (or a new Figure, returned)."""
        from .frames import new_axes

        fig, ax = new_axes(ax)
        rows = [r for r in self.summary.by_month(which) if r["median"] is not None]
        months = [r["month"] for r in rows]
        ax.fill_between(
            months,
            [r["p05"] for r in rows],
            [r["p95"] for r in rows],
            alpha=0.2,
            color="#0072B2",
            label="5-95% of patients",
        )
        ax.plot(months, [r["median"] for r in rows], color="#0072B2", label="median")
        uln = self.plan.cpk_uln if which == "cpk" else self.plan.myoglobin_uln
        ax.axhline(uln, color="black", linestyle=":", label="ULN")
        ax.set_yscale("log")
        ax.set_xlabel("month (4 weeks)")
        ax.set_ylabel("CPK (U/L)" if which == "cpk" else "myoglobin (ng/mL)")
        ax.set_title(self.scenario.name)
        ax.legend(fontsize=8)
        return fig

    def summary_json(self) -> dict[str, Any]:
        """The content of summary.json (deterministic: no timestamps, no paths)."""
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "patients": self.patients,
            "simulator_version": __version__,
            "scenario_sha256": scenario_sha256(self.scenario),
            "metrics": self.metrics,
            "cpk_by_month": self.summary.by_month("cpk"),
            "myoglobin_by_month": self.summary.by_month("myoglobin"),
            "prednisone_by_month": self.summary.prednisone_by_month(),
            "core_set_by_month": self.summary.core_set_by_month(),
            "kaplan_meier": self.summary.curves(),
            **({"center": center_summary(self.center)} if self.center is not None else {}),
            "resolved_scenario": scenario_data(self.scenario),
        }


_PLANS: Recent[str, Plan] = Recent(16)  # every arm of a comparison stays compiled


# the hash of the last few scenario objects (a scenario is frozen; hashing one costs
# ~0.5 ms and a chunk looks its plan up three times); an entry keeps its scenario alive,
# so no other object can have its id while the entry is kept
_HASHES: Recent[int, tuple[Scenario, str]] = Recent(16)


def _plan_for(scn: Scenario) -> Plan:
    """Compiled plan, cached per process (plans hold compiled rules: not picklable); the
    most recently used few are kept."""
    _, sha = _HASHES.get(id(scn), lambda: (scn, scenario_sha256(scn)))
    return _PLANS.get(sha, lambda: make_plan(scn))


def simulate_chunk(
    scn: Scenario, seed: int, start: int, stop: int, engine: str, events: bool = False
) -> tuple[ChunkResult, Plan]:
    """Run patients start..stop-1 with one engine (the unit the runner distributes)."""
    plan = _plan_for(scn)
    ids = np.arange(start, stop, dtype=np.int64)  # center replications when a center
    fn = center.run_chunk if scn.center is not None else ENGINES[engine]
    return fn(scn, plan, seed, ids, events=events), plan


def summarise_chunk(
    scn: Scenario,
    seed: int,
    start: int,
    stop: int,
    engine: str,
    events: bool,
    check: bool,
    metrics: frozenset[str] | None = None,
) -> tuple[ChunkResult, dict[str, np.ndarray], CohortSummary]:
    """Simulate a chunk, check its event log's invariants, and tabulate and summarise it
    (only ``metrics``, when given)."""
    chunk, plan = simulate_chunk(scn, seed, start, stop, engine, events or check)
    if check and chunk.events is not None:
        check_events(chunk.events, plan, center=scn.center is not None)
    table = patient_table(chunk, plan, scn)
    summary = CohortSummary(plan, scn.economics.currency, metrics)
    summary.add(table, chunk)
    return chunk, table, summary


@dataclass
class ArmsChunk:
    """One chunk of patients run in every arm: what reducers see, where the chunk ran."""

    start: int
    n: int
    scenarios: list[Scenario]
    plans: list[Plan]
    tables: list[dict[str, np.ndarray]]
    summaries: list[CohortSummary]
    events: list[EventLog | None]


class Reducer:
    """Folds the chunks of a run into one result. ``part`` runs where the chunk ran (a
    worker process) and returns something small and picklable; ``merge`` runs in this
    process, in patient order. Subclasses hold their result as attributes; only the
    attributes named in ``worker_state`` travel to the workers with each task."""

    worker_state: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.worker_state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def part(self, chunk: ArmsChunk) -> Any:
        raise NotImplementedError

    def merge(self, part: Any) -> None:
        raise NotImplementedError


class Summaries(Reducer):
    """Every arm's cohort summary (``self.summaries``, one per arm): the first chunk's
    summaries, with every later chunk's merged in (so they hold what the job's chunks
    summarise: every metric, or the few a sweep asked for)."""

    def __init__(self) -> None:
        self.summaries: list[CohortSummary] = []

    def part(self, chunk: ArmsChunk) -> list[CohortSummary]:
        return chunk.summaries

    def merge(self, part: list[CohortSummary]) -> None:
        if not self.summaries:
            self.summaries = list(part)
            return
        for total, p in zip(self.summaries, part, strict=True):
            total.merge(p)


class Tables(Reducer):
    """Streams every chunk's patient tables (and event logs, when the run keeps them) to
    ``sink(tables, events)`` in patient order: one table and one log per arm."""

    def __init__(
        self, sink: Callable[[list[dict[str, np.ndarray]], list[EventLog | None]], None]
    ) -> None:
        self.sink = sink

    def part(self, chunk: ArmsChunk) -> tuple[list[dict[str, np.ndarray]], list[EventLog | None]]:
        return chunk.tables, chunk.events

    def merge(self, part: tuple[list[dict[str, np.ndarray]], list[EventLog | None]]) -> None:
        self.sink(*part)


ArmsTask = tuple[
    list[Scenario], int, int, int, str, bool, bool, frozenset[str] | None, list[Reducer]
]


def arms_task(args: ArmsTask) -> tuple[int, list[Any]]:
    """Run one chunk of an :class:`ArmsJob` (``job.tasks[k]``) in every arm: returns the
    number of units and each reducer's part. Runs in a worker process or here."""
    scns, seed, start, stop, engine, events, check, metrics, reducers = args
    tables, summaries, logs = [], [], []
    # the arms draw the same visit noise (the same patients): drawn once for the chunk
    with shared_noise() if len(scns) > 1 else contextlib.nullcontext():
        for scn in scns:
            chunk, table, summary = summarise_chunk(
                scn, seed, start, stop, engine, events, check, metrics
            )
            tables.append(table)
            summaries.append(summary)
            logs.append(chunk.events if events else None)
    arms = ArmsChunk(
        start, stop - start, scns, [_plan_for(s) for s in scns], tables, summaries, logs
    )
    return stop - start, [r.part(arms) for r in reducers]


@dataclass
class ArmsJob:
    """Every arm on the same patient ids, cut into chunks: ``tasks[k]`` is the k-th
    chunk's argument to :func:`arms_task`, run anywhere; :meth:`merge` folds each chunk's
    parts into ``reducers`` here, in task (patient) order. :func:`execute` does both; a
    sweep spreads the chunks of several jobs over its workers and merges them itself."""

    scenarios: list[Scenario]
    n: int
    seed: int
    engine: str
    unit: str
    desc: str
    tasks: list[ArmsTask]
    reducers: list[Reducer]

    def merge(self, parts: list[Any]) -> None:
        for r, part in zip(self.reducers, parts, strict=True):
            r.merge(part)


def arms_job(
    scns: Sequence[Scenario],
    reducers: Sequence[Reducer],
    *,
    patients: int | None = None,
    seed: int | None = None,
    engine: str = "auto",
    workers: int = 1,
    chunk_size: int | None = None,
    events: bool = False,
    check_invariants: bool = True,
    desc: str | None = None,
    metrics: frozenset[str] | None = None,
) -> ArmsJob:
    """Every arm on the same patient ids 0..patients-1, in chunks sized for ``workers``
    (nothing runs yet). Patients and seed default to the first arm's. ``events`` keeps
    each chunk's event log for the reducers; each log is checked against the invariants
    of ``invariants.py`` unless ``check_invariants`` is false (benchmarks). ``metrics``
    limits each chunk's summaries to these metrics."""
    first = scns[0]
    n = first.patients if patients is None else check_patients(patients, "patients")
    seed = first.seed if seed is None else check_seed(seed, "seed")
    name = choose_engine(first, engine)
    kind = unit_kind(scns, engine)
    size = chunk_size_for(kind, n, workers, chunk_size)
    arms = list(scns)
    for s in arms:
        _plan_for(s)  # compile here: an invalid plan fails before any worker starts
    tasks: list[ArmsTask] = [
        (arms, seed, a, b, name, events, check_invariants, metrics, list(reducers))
        for a, b in _chunks(n, size)
    ]
    unit = "center" if kind == "center" else "patient"
    return ArmsJob(arms, n, seed, name, unit, desc or first.name, tasks, list(reducers))


def execute(
    job: ArmsJob, workers: int = 1, progress: bool | None = None, dask: str | None = None
) -> None:
    """Run a job's chunks (serially, in a process pool or on Dask) and merge them in
    order. ``progress`` shows a tqdm bar on stderr (default: only when stderr is a
    terminal)."""
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=job.n,
        unit=job.unit,
        disable=not show,
        file=sys.stderr,
        desc=job.desc[:30],
        leave=False,
    )
    log.info(
        "running %d %ss x %d arm(s) with the %s engine, %d worker(s)",
        job.n,
        job.unit,
        len(job.scenarios),
        job.engine,
        workers,
    )
    try:
        for count, parts in ordered_map(arms_task, job.tasks, workers, dask):
            job.merge(parts)
            bar.update(count)
    finally:
        bar.close()


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def run_job(
    scn: Scenario,
    *,
    patients: int | None = None,
    seed: int | None = None,
    engine: str = "auto",
    workers: int = 1,
    chunk_size: int | None = None,
    events: bool = False,
    sink: ChunkSink | None = None,
    check_invariants: bool = True,
    reducers: Sequence[Reducer] = (),
    metrics: frozenset[str] | None = None,
) -> tuple[ArmsJob, Callable[[], RunResult]]:
    """:func:`run` as a job and the function that gives its result once every chunk
    is merged (its summary holding only ``metrics``, when given)."""
    summaries = Summaries()
    every: list[Reducer] = [summaries, *reducers]
    if sink is not None:
        every.append(Tables(lambda tables, logs: sink(tables[0], logs[0])))
    job = arms_job(
        [scn],
        every,
        patients=patients,
        seed=seed,
        engine=engine,
        workers=workers,
        chunk_size=chunk_size,
        events=events,
        check_invariants=check_invariants,
        metrics=metrics,
    )

    def result() -> RunResult:
        return RunResult(
            scenario=scn,
            seed=job.seed,
            patients=job.n,
            engine=job.engine,
            plan=_plan_for(scn),
            summary=summaries.summaries[0],
        )

    return job, result


def run(
    scn: Scenario,
    *,
    patients: int | None = None,
    seed: int | None = None,
    engine: str = "auto",
    workers: int = 1,
    chunk_size: int | None = None,
    events: bool = False,
    sink: ChunkSink | None = None,
    progress: bool | None = None,
    check_invariants: bool = True,
    dask: str | None = None,
    reducers: Sequence[Reducer] = (),
    metrics: frozenset[str] | None = None,
) -> RunResult:
    """Simulate ``patients`` virtual patients (default: the scenario's) and aggregate.

    ``sink(table, events)`` receives each chunk's patient table (and event log when
    ``events``) in patient order; use it to stream patient-level files. ``progress``
    shows a tqdm bar on stderr (default: only when stderr is a terminal). Each chunk's
    event log is checked against the invariants of ``invariants.py`` unless
    ``check_invariants`` is false (benchmarks). Extra ``reducers`` see every chunk too.
    ``metrics``: summarise only these outcomes, each as in a full summary (a
    calibration's targets), and no monthly tables.
    """
    job, result = run_job(
        scn,
        patients=patients,
        seed=seed,
        engine=engine,
        workers=workers,
        chunk_size=chunk_size,
        events=events,
        sink=sink,
        check_invariants=check_invariants,
        reducers=reducers,
        metrics=metrics,
    )
    execute(job, workers, progress, dask)
    return result()
