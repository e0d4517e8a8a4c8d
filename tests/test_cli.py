"""End-to-end tests of the installed ``simulate`` command.

Most tests run the command in a fresh interpreter (``python -m simulator`` or the
``simulate`` console script next to ``sys.executable``) and look only at what a user sees:
the exit status, stdout, stderr and the output folder. Every run happens in a temporary
folder (``tmp_path`` / ``tmp_path_factory``) with an explicit ``--out`` or ``cwd``, so
nothing is written into the repository. Simulations are tiny (20-40 patients).

Each run costs a fresh interpreter (about 1.3 s of imports even to reject a bad file), so
the runs of first_line.yaml (``VARIANTS``) and the bad-input cases (``BAD_CASES``) are each
started together in a small thread pool and shared by module-scoped fixtures; the tests
only look at the results.

The last tests run in-process to inject a Ctrl-C (KeyboardInterrupt) while the output
folder is being written.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRST_LINE = REPO / "scenarios" / "first_line.yaml"
SIMULATE_SCRIPT = Path(sys.executable).parent / "simulate"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVENTS_HEADER = (
    "patient,day,event,prednisone_mg_per_day,cpk_u_per_l,myoglobin_ng_per_ml,mmt8,ivig_g,"
    "decision,adverse_events"
)
RESULT_FILES = ("summary.json", "patients.csv")  # the files that must be reproducible
TIMEOUT_S = 180


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def cap_memory() -> None:  # pragma: no cover - runs in the child
    # a regression must fail by running out of (capped) memory, not take the machine down
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4_000_000_000, 4_000_000_000))


def simulate(
    *args: str | Path,
    cwd: Path,
    script: bool = False,
    timeout: float = TIMEOUT_S,
    memory_cap: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the installed command: ``python -m simulator ARGS`` or the ``simulate`` script;
    ``memory_cap``: the child's address space limited to 4 GB."""
    command = [str(SIMULATE_SCRIPT)] if script else [sys.executable, "-m", "simulator"]
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=cap_memory if memory_cap else None,
    )


def refused(proc: subprocess.CompletedProcess[str] | tuple[int, str], *fragments: str) -> str:
    """Exit 2, one ``error:`` line on stderr naming every fragment, no traceback (``proc``
    a finished command, or ``(exit status, stderr)`` of an in-process run); the line."""
    code, err = (proc.returncode, proc.stderr) if not isinstance(proc, tuple) else proc
    assert code == 2, f"exit status {code}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Assert the command succeeded, showing its stderr if not."""
    assert proc.returncode == 0, f"exit status {proc.returncode}\nstderr:\n{proc.stderr}"
    return proc


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def listing(folder: Path) -> list[str]:
    """Names in ``folder``, hidden ones included (temporary siblings start with a dot)."""
    return sorted(os.listdir(folder))


def leftovers(out: Path) -> list[str]:
    """Temporary siblings of an output folder (``.NAME.tmp-*``, ``.NAME.old-*``)."""
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def assert_same_results(a: Path, b: Path) -> None:
    for name in RESULT_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    out: Path


# --------------------------------------------------------------------------------------
# Shared runs (module scope: each costs a fresh interpreter)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """``simulate [run] first_line.yaml --patients N --out DIR ARGS`` (cwd: DIR's parent)."""

    args: tuple[str, ...] = ()
    patients: int = 40
    script: bool = False  # the console script instead of ``python -m simulator``
    subcommand: bool = False  # ``simulate run X.yaml`` instead of ``simulate X.yaml``


VARIANTS = {
    "reference": Variant(),
    "again": Variant(),
    "events_quiet_script": Variant(("--events", "--quiet"), script=True),
    "run_subcommand": Variant(subcommand=True),
    "simpy_chunk_7": Variant(
        ("--engine", "simpy", "--workers", "1", "--chunk-size", "7", "--quiet")
    ),
    "workers_2_chunk_7": Variant(("--workers", "2", "--chunk-size", "7", "--quiet")),
    "cohort": Variant(("--engine", "cohort"), patients=20),
    "seed_7_ivig_3_cycles": Variant(
        ("--seed", "7", "--set", "regimen.ivig.cycles=3", "--quiet"), patients=20
    ),
}
PARALLEL = max(2, os.cpu_count() or 1)


def _run_variant(variant: Variant, tmp: Path) -> Run:
    out = tmp / "out"
    command = ["run"] if variant.subcommand else []
    proc = simulate(
        *command,
        FIRST_LINE,
        "--patients",
        str(variant.patients),
        "--out",
        out,
        *variant.args,
        cwd=tmp,
        script=variant.script,
    )
    return Run(proc, out)


class _Started:
    """Runs started together (they overlap on a multi-core machine); ``[name]`` waits."""

    def __init__(self, futures: dict[str, Future[Run]]) -> None:
        self._futures = futures

    def __getitem__(self, name: str) -> Run:
        return self._futures[name].result()


@pytest.fixture(scope="module")
def first_line_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Started]:
    """Every variant of first_line.yaml in :data:`VARIANTS`, each in its own folder."""
    pool = ThreadPoolExecutor(max_workers=PARALLEL)
    futures = {
        name: pool.submit(_run_variant, v, tmp_path_factory.mktemp(name))
        for name, v in VARIANTS.items()
    }
    yield _Started(futures)
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def reference(first_line_runs: _Started) -> Run:
    """``python -m simulator first_line.yaml --patients 40 --out DIR``."""
    run = first_line_runs["reference"]
    ok(run.proc)
    return run


@pytest.fixture(scope="module")
def script_with_events(first_line_runs: _Started) -> Run:
    """The console script with ``--events --quiet`` (otherwise the same as the reference)."""
    run = first_line_runs["events_quiet_script"]
    ok(run.proc)
    return run


@pytest.fixture(scope="module")
def first_line_scenario():
    from simulator.scenario import load_scenario

    return load_scenario(FIRST_LINE)


# --------------------------------------------------------------------------------------
# 1. End to end
# --------------------------------------------------------------------------------------


def test_console_script_is_installed_next_to_the_interpreter() -> None:
    assert SIMULATE_SCRIPT.is_file(), f"no console script at {SIMULATE_SCRIPT}"
    assert os.access(SIMULATE_SCRIPT, os.X_OK)


def test_run_writes_summary_patients_and_figures_but_no_events_by_default(
    reference: Run,
) -> None:
    out = reference.out
    for name in ("summary.json", "patients.csv", "cpk.png", "time_to_normal.png"):
        assert (out / name).is_file(), f"{name} missing; folder has {listing(out)}"
    for name in ("cpk.png", "time_to_normal.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, f"{name} is not a PNG"
    assert not (out / "events.csv").exists()
    assert leftovers(out) == []


def test_summary_json_has_provenance_metrics_and_monthly_cpk(
    reference: Run, first_line_scenario
) -> None:
    from simulator import __version__
    from simulator.scenario import scenario_sha256

    summary = read_summary(reference.out)
    for key in (
        "scenario",
        "seed",
        "patients",
        "simulator_version",
        "scenario_sha256",
        "metrics",
        "cpk_by_month",
    ):
        assert key in summary, f"summary.json has no {key!r}"
    assert summary["scenario"] == "first_line"
    assert summary["seed"] == first_line_scenario.seed == 20150610
    assert summary["patients"] == 40
    assert summary["simulator_version"] == __version__
    assert re.fullmatch(r"[0-9a-f]{64}", summary["scenario_sha256"])
    assert summary["scenario_sha256"] == scenario_sha256(first_line_scenario)

    metrics = summary["metrics"]
    required = {
        "cpk_baseline_u_per_l",
        "cpk_ratio_month_3",
        "cpk_normal_month_6",
        "time_to_cpk_normal_days",
        "relapse",
        "cumulative_prednisone_g",
        "prednisone_5mg_by_month_6",
        "ivig_g",
    }
    assert required <= set(metrics), f"missing metrics: {sorted(required - set(metrics))}"
    safety = first_line_scenario.safety
    expected_aes = {f"adverse_event_{name}" for name in (*safety.ivig, *safety.steroid)}
    assert len(expected_aes) == 8
    assert {k for k in metrics if k.startswith("adverse_event_")} == expected_aes
    for name, metric in metrics.items():
        assert "mean" in metric, name
        assert isinstance(metric["ci95"], list) and len(metric["ci95"]) == 2, name

    months = summary["cpk_by_month"]
    assert months, "cpk_by_month is empty"
    for entry in months:
        assert {"month", "median", "p05", "p95", "mean"} <= set(entry), entry
    assert [e["month"] for e in months] == sorted(e["month"] for e in months)


def test_patients_csv_has_one_row_per_patient_with_ids_0_to_39(reference: Run) -> None:
    with (reference.out / "patients.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40
    assert [int(r["patient"]) for r in rows] == list(range(40))


def test_stdout_shows_an_outcome_table_with_every_metric(reference: Run) -> None:
    stdout = reference.proc.stdout
    assert "first_line: 40 patients, seed 20150610" in stdout
    header = next(line for line in stdout.splitlines() if line.startswith("outcome"))
    assert "estimate" in header and "95% CI" in header
    for name, metric in read_summary(reference.out)["metrics"].items():
        assert metric["label"] in stdout, f"{name} ({metric['label']!r}) not in the table"
    assert str(reference.out) in stdout


def test_console_script_events_flag_writes_events_csv_and_quiet_prints_nothing(
    script_with_events: Run,
) -> None:
    out = script_with_events.out
    assert script_with_events.proc.stdout == ""
    with (out / "events.csv").open(newline="", encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n")
        rows = list(csv.reader(fh))
    assert header == EVENTS_HEADER
    assert rows, "events.csv has no events"
    assert {int(r[0]) for r in rows} == set(range(40))


def test_events_quiet_and_console_script_do_not_change_the_results(
    reference: Run, script_with_events: Run
) -> None:
    assert_same_results(reference.out, script_with_events.out)


def test_default_output_folder_is_results_scenario_stem_under_cwd(tmp_path: Path) -> None:
    shutil.copy(FIRST_LINE, tmp_path / "my_strategy.yaml")
    shutil.copy(FIRST_LINE.parent / "base.yaml", tmp_path / "base.yaml")  # it extends base
    ok(simulate("my_strategy.yaml", "--patients", "20", "--quiet", cwd=tmp_path))
    out = tmp_path / "results" / "my_strategy"
    assert (out / "summary.json").is_file()
    assert (out / "patients.csv").is_file()
    assert listing(tmp_path) == ["base.yaml", "my_strategy.yaml", "results"]
    assert listing(tmp_path / "results") == ["my_strategy"]


def test_seed_and_set_overrides_are_honoured(first_line_runs: _Started) -> None:
    from simulator.scenario import load_scenario, scenario_sha256

    run = first_line_runs["seed_7_ivig_3_cycles"]
    ok(run.proc)
    summary = read_summary(run.out)
    assert summary["seed"] == 7
    assert summary["patients"] == 20
    assert summary["metrics"]["ivig_cycles"]["mean"] <= 3
    assert summary["resolved_scenario"]["regimen"]["ivig"]["cycles"] == 3
    expected = load_scenario(FIRST_LINE, ["regimen.ivig.cycles=3"])
    assert summary["scenario_sha256"] == scenario_sha256(expected)


def test_version_option_prints_the_version(tmp_path: Path) -> None:
    from simulator import __version__

    proc = ok(simulate("--version", cwd=tmp_path))
    assert proc.stdout.strip() == f"simulate {__version__}"
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", __version__)
    assert listing(tmp_path) == []


def test_run_subcommand_gives_the_same_results_as_the_bare_form(
    first_line_runs: _Started, reference: Run
) -> None:
    run = first_line_runs["run_subcommand"]
    ok(run.proc)
    assert "first_line: 40 patients" in run.proc.stdout
    assert_same_results(reference.out, run.out)


def test_output_folder_permissions_follow_the_umask(reference: Run) -> None:
    umask = os.umask(0)
    os.umask(umask)
    assert reference.out.stat().st_mode & 0o777 == 0o777 & ~umask


def test_options_before_the_scenario_are_accepted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(simulate("--quiet", FIRST_LINE, "--patients", "20", "--out", out, cwd=tmp_path))
    assert (out / "summary.json").is_file()


# --------------------------------------------------------------------------------------
# 2. Reproducibility
# --------------------------------------------------------------------------------------


def test_same_scenario_and_seed_give_byte_identical_results(
    first_line_runs: _Started, reference: Run
) -> None:
    again = first_line_runs["again"]
    ok(again.proc)
    assert_same_results(reference.out, again.out)


def test_simpy_engine_with_small_chunks_gives_the_default_results(
    first_line_runs: _Started, reference: Run
) -> None:
    """``--engine simpy`` (what auto picks) and 7-patient chunks: the same bytes."""
    run = first_line_runs["simpy_chunk_7"]
    ok(run.proc)
    assert_same_results(reference.out, run.out)


def test_two_workers_give_the_same_bytes_as_one_worker(
    first_line_runs: _Started, reference: Run
) -> None:
    run = first_line_runs["workers_2_chunk_7"]
    ok(run.proc)
    assert_same_results(reference.out, run.out)


def test_cohort_engine_runs(first_line_runs: _Started) -> None:
    run = first_line_runs["cohort"]
    ok(run.proc)
    assert "cohort engine" in run.proc.stdout
    assert read_summary(run.out)["patients"] == 20


# --------------------------------------------------------------------------------------
# 3. Bad input: exit 2, one message naming the problem, nothing written
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadCase:
    """A bad-input run. ``files`` are created in an empty folder (None: a sub-folder),
    which is also the working directory; ``{first_line}`` in ``args`` is the repository
    scenario. ``--out OUT`` is always added. ``expect``: fragments of the message."""

    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    files: dict[str, bytes | None] = field(default_factory=dict)


def _case(id: str, text: str | bytes, *expect: str) -> BadCase:
    """A scenario file ``{id}.yaml`` with ``text``, run as ``simulate {id}.yaml``."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return BadCase(id, (f"{id}.yaml",), expect, {f"{id}.yaml": data})


def _cli_case(id: str, args: Sequence[str], *expect: str) -> BadCase:
    """The repository scenario with bad command-line options."""
    return BadCase(id, ("{first_line}", *args), expect)


BAD_CASES = [
    BadCase("missing_file", ("no_such.yaml",), ("no_such.yaml", "not found")),
    BadCase("directory", ("adir.yaml",), ("adir.yaml", "directory"), {"adir.yaml": None}),
    _case("empty", b"", "empty.yaml", "empty"),
    _case("only_comments", "# a scenario\n# with nothing in it\n", "only_comments.yaml", "empty"),
    _case(
        "yaml_syntax",
        "name: x\npatients: 10\n  seed: 3\n",
        "yaml_syntax.yaml",
        "syntax error",
        "line 3",
    ),
    _case(
        "top_level_list",
        "- name: x\n- patients: 10\n",
        "top_level_list.yaml:1:",
        "top level",
        "a list",
    ),
    _case(
        "top_level_scalar",
        "just a string\n",
        "top_level_scalar.yaml:1:",
        "top level",
        "not a scenario (a mapping of keys)",
        "a text string",
    ),
    _case(
        "duplicate_top",
        "name: a\npatients: 10\nseed: 1\npatients: 20\n",
        "duplicate_top.yaml",
        "duplicate key 'patients'",
        "line 2",
        "line 4",
    ),
    _case(
        "duplicate_nested",
        "name: a\nregimen:\n  ivig:\n    cycles: 3\n    cycles: 4\n",
        "duplicate_nested.yaml",
        "duplicate key 'cycles'",
        "regimen.ivig",
        "line 4",
        "line 5",
    ),
    _case(
        "unknown_key_near_miss",
        "name: a\npatiens: 10\n",
        "unknown_key_near_miss.yaml:2:",
        "'patiens'",
        "did you mean 'patients'",
    ),
    _case(
        "unknown_nested_key",
        "name: a\nregimen:\n  ivig:\n    dose_g_per_k: 1\n",
        "unknown_nested_key.yaml:4:",
        "regimen.ivig.dose_g_per_k",
        "did you mean 'dose_g_per_kg'",
    ),
    _case("wrong_type", "name: a\npatients: many\n", "wrong_type.yaml:2:", "patients", "'many'"),
    _case(
        "negative_dose",
        "name: a\nregimen:\n  ivig:\n    dose_g_per_kg: -2\n",
        "negative_dose.yaml:4:",
        "regimen.ivig.dose_g_per_kg",
        "-2",
    ),
    _case(
        "probability_above_1",
        "name: a\npopulation:\n  female: 1.5\n",
        "probability_above_1.yaml:3:",
        "population.female",
        "1.5",
    ),
    _case(
        "taper_floor_above_cap",
        "name: a\nregimen:\n  taper:\n    floor_mg_per_day: 90\n",
        "taper_floor_above_cap.yaml:4:",
        "regimen.taper.floor_mg_per_day",
        "90",
        "cap_mg_per_day",
    ),
    _case(
        "zero_patients_in_file",
        "name: a\npatients: 0\n",
        "zero_patients_in_file.yaml:2:",
        "patients",
        "got 0",
    ),
    _cli_case("zero_patients_option", ["--patients", "0"], "--patients", "got 0"),
    _cli_case(
        "set_unknown_path",
        ["--set", "regimen.ivig.dose_g_per_k=1"],
        "--set",
        "regimen.ivig.dose_g_per_k",
        "did you mean 'dose_g_per_kg'",
    ),
    _cli_case(
        "set_invalid_value",
        ["--set", "regimen.ivig.dose_g_per_kg=-1"],
        "--set",
        "regimen.ivig.dose_g_per_kg",
        "-1",
    ),
    _cli_case(
        "set_without_equals",
        ["--set", "regimen.ivig.dose_g_per_kg"],
        "--set",
        "regimen.ivig.dose_g_per_kg",
        "KEY=VALUE",
    ),
    _case(
        "unknown_sparing_agent",
        "name: a\nregimen:\n  sparing_agents:\n"
        "    - agent: azathioprine\n      share: 0.2\n      start_day: 84\n"
        "    - agent: rituximab\n      share: 0.2\n      start_day: 84\n",
        "unknown_sparing_agent.yaml:7:",
        "regimen.sparing_agents[1].agent",
        "'rituximab'",
    ),
    _case(
        "lognormal_without_sd",
        "name: a\npopulation:\n  cpk_u_per_l:\n    dist: lognormal\n    mean: 3000\n",
        "lognormal_without_sd.yaml:3:",
        "population.cpk_u_per_l",
        "lognormal",
        "sd",
    ),
    _case(
        "not_utf8",
        b"name: a\ndescription: caf\xe9 au lait\n",
        "not_utf8.yaml",
        "UTF-8",
        "0xe9",
        "line 2",
    ),
    _case(
        "extends_missing_base",
        "name: a\nextends: no_such_base.yaml\n",
        "extends_missing_base.yaml:2:",
        "extends",
        "'no_such_base.yaml'",
    ),
]


@dataclass
class BadRun:
    proc: subprocess.CompletedProcess[str]
    workdir: Path
    out: Path


def _run_bad_case(case: BadCase, workdir: Path) -> BadRun:
    for name, data in case.files.items():
        if data is None:
            (workdir / name).mkdir()
        else:
            (workdir / name).write_bytes(data)
    out = workdir / "out"
    args = [a.replace("{first_line}", str(FIRST_LINE)) for a in case.args]
    return BadRun(simulate(*args, "--out", out, cwd=workdir), workdir, out)


@pytest.fixture(scope="module")
def bad_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, BadRun]:
    """Run the selected bad-input cases, a few at a time (each is a fresh interpreter)."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if isinstance(getattr(item, "callspec", None) and item.callspec.params.get("case"), BadCase)
    ]
    workdirs = [tmp_path_factory.mktemp(case.id) for case in selected]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        runs = list(pool.map(_run_bad_case, selected, workdirs))
    return {case.id: run for case, run in zip(selected, runs, strict=True)}


def assert_rejected(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, nothing on stdout, one ``error:`` message and no traceback; the message."""
    assert proc.returncode == 2, f"exit status {proc.returncode}\nstderr:\n{proc.stderr}"
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and lines[0].startswith("error: "), proc.stderr
    # one message: a multi-problem message continues on lines indented "  - "
    assert all(line.startswith("  - ") for line in lines[1:]), proc.stderr
    return proc.stderr


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.id for c in BAD_CASES])
def test_bad_input_exits_2_with_one_message_naming_the_problem_and_writes_nothing(
    case: BadCase, bad_runs: dict[str, BadRun]
) -> None:
    run = bad_runs[case.id]
    message = assert_rejected(run.proc)
    for fragment in case.expect:
        assert fragment in message, f"{fragment!r} not in the message: {message!r}"
    assert not run.out.exists()
    assert leftovers(run.out) == []
    # nothing else either (no results/ folder in the working directory)
    assert listing(run.workdir) == sorted(case.files)


def test_bad_input_leaves_a_previous_output_folder_byte_for_byte_unchanged(
    tmp_path: Path, reference: Run
) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference.out, out)
    before = snapshot(out)
    # the latest possible check: a cross-field check on a value given with --set
    proc = simulate(
        FIRST_LINE,
        "--patients",
        "20",
        "--set",
        "regimen.taper.floor_mg_per_day=90",
        "--out",
        out,
        cwd=tmp_path,
    )
    message = assert_rejected(proc)
    assert "regimen.taper.floor_mg_per_day" in message and "--set" in message
    assert snapshot(out) == before
    assert listing(tmp_path) == ["out"]


def test_out_inside_a_regular_file_is_reported_as_bad_input(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder\n")
    proc = simulate(
        FIRST_LINE, "--patients", "20", "--out", tmp_path / "afile" / "out", cwd=tmp_path
    )
    message = assert_rejected(proc)
    assert "afile" in message
    assert listing(tmp_path) == ["afile"]


def test_out_that_is_a_regular_file_is_reported_as_bad_input(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder\n")
    proc = simulate(FIRST_LINE, "--patients", "20", "--out", tmp_path / "afile", cwd=tmp_path)
    message = assert_rejected(proc)
    assert "--out" in message and "afile" in message
    assert (tmp_path / "afile").read_text() == "not a folder\n"
    assert listing(tmp_path) == ["afile"]


# --------------------------------------------------------------------------------------
# 4. Atomic output: an interrupted run writes nothing (in-process)
# --------------------------------------------------------------------------------------


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("previous", [False, True], ids=["no_previous_folder", "previous_folder"])
def test_interrupted_run_to_folder_leaves_no_partial_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_line_scenario, previous: bool
) -> None:
    from simulator import jobs

    out = tmp_path / "out"
    if previous:  # earlier results of the simulator (its manifest lists them)
        out.mkdir()
        (out / "summary.json").write_text('{"old": true}\n')
        (out / "notes.txt").write_bytes(b"old results\n")
        (out / ".simulate-manifest.json").write_text(
            json.dumps(
                {
                    "simulator": "myositis-ivig-sim",
                    "kind": "run",
                    "files": ["notes.txt", "summary.json"],
                }
            )
        )
    before = snapshot(out) if previous else None

    monkeypatch.setattr("simulator.jobs.write_outputs", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        jobs.run_to_folder(first_line_scenario, out, patients=10)

    if previous:
        assert snapshot(out) == before
        assert listing(tmp_path) == ["out"]
    else:
        assert not out.exists()
        assert listing(tmp_path) == []
    assert leftovers(out) == []


def test_interrupted_cli_returns_130_and_says_no_results_were_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from simulator import cli

    out = tmp_path / "out"
    monkeypatch.setattr("simulator.jobs.write_outputs", _interrupt)
    status = cli.main([str(FIRST_LINE), "--patients", "10", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 130
    assert "no results were written" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert not out.exists()
    assert listing(tmp_path) == []


def test_the_compare_table_gives_differences_of_proportions_in_percentage_points():
    """A difference of two proportions is in points (as in report.html), not "%", which
    reads as a relative change; other units are printed as numbers."""
    from simulator.cli import COMPARE_TABLE, format_comparison

    def outcome(unit, a, b, lo, hi):
        return {
            "label": "x",
            "unit": unit,
            "arms": {"A": {"mean": a}, "B": {"mean": b}},
            "differences": {"B": {"mean_difference": b - a, "ci95": [lo, hi]}},
        }

    outcomes = {k: outcome("days", 10.0, 12.0, 1.0, 3.0) for k in COMPARE_TABLE}
    outcomes["relapse"] = outcome("proportion", 0.483, 0.377, -0.146, -0.067)
    outcomes["relapse"]["label"] = ">= 1 clinical relapse"
    line = next(
        ln for ln in format_comparison(outcomes, ["A", "B"]).splitlines() if "relapse" in ln
    )
    assert line.split()[-7:] == ["48.3%", "37.7%", "-10.6", "pts", "(-14.6", "to", "-6.7)"]
