"""Input audit: files a YAML input names, repeated study files, --workers, the lock, --out /.

The project's standard for bad input: one clear message naming the file, the YAML path
and the value, exit status 2, no traceback, nothing written, and no file the simulator did
not write is ever modified. Each case runs ``python -m simulator`` in a working directory
holding copies of the shipped inputs (a few variants call the CLI's ``main`` in-process,
which is faster), and checks the message and that the directory is exactly as before.

1. A file named by a sweep (``base:``, ``strategies:``), a study (``arms:``) or a
   calibration file (``studies:``) that is a directory, a FIFO or too large is refused
   naming the referring file, the line and the YAML path, as a missing file is.
2. The same study file twice (in a calibration file, or to ``simulate validate``) is
   refused: its targets would count twice.
3. ``--workers`` has an upper bound (parallel.MAX_WORKERS), with or without ``--dask``.
4. A folder (or FIFO) at the lock name ``.<out>.lock`` is refused naming it.
5. ``--out /`` is refused as the filesystem root.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from pathlib import Path

import pytest
from test_cli import refused
from test_cli import simulate as cli_simulate

from simulator.cli import main
from simulator.errors import InputError
from simulator.limits import MAX_INPUT_BYTES

REPO = Path(__file__).resolve().parents[1]

GRID = "design: {type: grid, parameters: {disease.steroid.emax_per_day: [0.1, 0.2]}}\n"
PARAMETERS = "parameters:\n  disease.steroid.emax_per_day: {low: 0.04, high: 0.3}\n"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working directory with copies of the shipped scenarios and studies."""
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    shutil.copytree(REPO / "studies", tmp_path / "studies")
    return tmp_path


# a regression must fail by running out of (capped) memory, not take the machine down
simulate = functools.partial(cli_simulate, timeout=120, memory_cap=True)


def snapshot(folder: Path) -> dict[str, tuple[str, bytes | None, int]]:
    """Every entry under ``folder``: its kind, its bytes (regular files) and mtime (ns).
    Nothing is opened but regular files (a FIFO would block)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        if stat.S_ISREG(st.st_mode):
            kind, data = "file", p.read_bytes()
        else:
            kind, data = stat.filemode(st.st_mode)[0], None
        out[p.relative_to(folder).as_posix()] = (kind, data, st.st_mtime_ns)
    return out


def in_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cwd: Path, *args: str
) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert out == ""
    return code, err


def make(kind: str, path: Path) -> None:
    """A directory, a FIFO or a file above the size limit for input files at ``path``."""
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        with path.open("wb") as f:  # sparse: nothing is really written
            f.truncate(MAX_INPUT_BYTES + 1)


KIND_TEXT = {"directory": "is a directory", "fifo": "named pipe (FIFO)", "large": "above the limit"}


# --------------------------------------------------------------------------------------
# 1. A named file that is a directory, a FIFO or too large
# --------------------------------------------------------------------------------------


def test_a_sweep_strategy_that_is_a_directory_names_the_sweep_file_line_and_path(
    work: Path,
) -> None:
    (work / "sd.yaml").write_text(
        "strategies:\n"
        "  first_line: scenarios/first_line.yaml\n"
        "  rescue: scenarios/studies\n"
        "patients: 20\noutcomes: [cost_total]\n" + GRID
    )
    before = snapshot(work)
    proc = simulate("sweep", "sd.yaml", "--out", "o7", cwd=work)
    refused(proc, "sd.yaml:3: strategies.rescue:", "is a directory", "scenarios/studies")
    assert snapshot(work) == before


def test_a_study_arm_that_is_a_directory_names_the_study_file_line_and_path(work: Path) -> None:
    text = (work / "studies" / "faggioli_2015.yaml").read_text()
    bad = text.replace("first_line: ../scenarios/first_line.yaml", "first_line: ../scenarios")
    assert bad != text
    (work / "studies" / "bad.yaml").write_text(bad)
    line = bad.splitlines().index("  first_line: ../scenarios") + 1
    before = snapshot(work)
    proc = simulate("validate", "studies/bad.yaml", "--patients", "20", "--out", "o8", cwd=work)
    refused(
        proc,
        f"studies/bad.yaml:{line}: arms.first_line:",
        "scenario file is a directory",
        "../scenarios",
    )
    assert snapshot(work) == before


def test_a_calibration_study_that_is_a_directory_names_the_file_line_and_path(
    work: Path,
) -> None:
    (work / "cal.yaml").write_text("patients: 20\nstudies:\n  - scenarios\n" + PARAMETERS)
    before = snapshot(work)
    proc = simulate("calibrate", "cal.yaml", "--out", "o10", cwd=work)
    refused(proc, "cal.yaml:3: studies[0]:", "study file is a directory", "scenarios")
    assert snapshot(work) == before


#: a file naming ``odd.yaml`` (then made a FIFO or too large) where it expects a
#: scenario or study file: (command, file, its text, the message's start)
NAMES_ODD = {
    "sweep base": (
        "sweep",
        "sb.yaml",
        "patients: 20\nbase: odd.yaml\noutcomes: [cost_total]\n" + GRID,
        "sb.yaml:2: base:",
    ),
    "study arm": (
        "validate",
        "st.yaml",
        "study: odd\ncitation: none\nrole: validation\narms:\n  first_line: odd.yaml\n"
        "targets:\n  - {metric: cost_total, published: {value: 1, se: 1}}\n",
        "st.yaml:5: arms.first_line:",
    ),
    "calibration study": (
        "calibrate",
        "cal.yaml",
        "patients: 20\nstudies: [studies/faggioli_2015.yaml,\n  odd.yaml]\n" + PARAMETERS,
        "cal.yaml:3: studies[1]:",
    ),
}


@pytest.mark.parametrize("kind", ["fifo", "large"])
@pytest.mark.parametrize("case", list(NAMES_ODD))
def test_a_named_file_that_is_a_fifo_or_too_large_names_the_file_line_and_path(
    work: Path,
    case: str,
    kind: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command, name, text, where = NAMES_ODD[case]
    make(kind, work / "odd.yaml")
    (work / name).write_text(text)
    before = snapshot(work)
    result = in_process(capsys, monkeypatch, work, command, name, "--out", "out")
    refused(result, where, "odd.yaml", KIND_TEXT[kind])
    assert snapshot(work) == before


# --------------------------------------------------------------------------------------
# 2. The same study file twice
# --------------------------------------------------------------------------------------


def test_a_calibration_file_listing_a_study_twice_is_refused(work: Path) -> None:
    (work / "cal.yaml").write_text(
        "patients: 20\nstudies:\n  - studies/faggioli_2015.yaml\n"
        "  - ./studies/../studies/faggioli_2015.yaml\n" + PARAMETERS
    )
    before = snapshot(work)
    proc = simulate("calibrate", "cal.yaml", "--out", "o10", cwd=work)
    refused(
        proc,
        "cal.yaml:4: studies[1]:",
        "./studies/../studies/faggioli_2015.yaml",
        "listed twice",
        "studies[0]",
    )
    assert snapshot(work) == before


def test_load_studies_refuses_the_same_study_file_twice(work: Path) -> None:
    from simulator.studies import load_studies

    same = [work / "studies" / "faggioli_2015.yaml", f"{work}/studies/./faggioli_2015.yaml"]
    with pytest.raises(InputError, match="given twice") as info:
        load_studies(same)
    assert info.value.file == f"{work}/studies/./faggioli_2015.yaml"


def test_validate_refuses_the_same_study_file_twice(work: Path) -> None:
    before = snapshot(work)
    proc = simulate(
        "validate",
        "studies/faggioli_2015.yaml",
        "studies/faggioli_2015.yaml",
        "--patients",
        "20",
        "--out",
        "o12",
        cwd=work,
    )
    assert snapshot(work) == before  # before refused(): the run now writes o12
    refused(proc, "studies/faggioli_2015.yaml", "given twice")


# --------------------------------------------------------------------------------------
# 3. --workers has an upper bound, with or without --dask
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dask", [False, True], ids=["pool", "dask"])
@pytest.mark.parametrize(
    "command",
    [
        ["run", "scenarios/first_line.yaml"],
        ["compare", "scenarios/first_line.yaml", "scenarios/rescue.yaml"],
        ["sweep", "scenarios/sweeps/ivig_dose_schedule.yaml"],
        ["validate", "studies/faggioli_2015.yaml"],
        ["calibrate", "cal.yaml"],
    ],
    ids=lambda c: c[0],
)
def test_workers_has_an_upper_bound(work: Path, command: list[str], dask: bool) -> None:
    from simulator.parallel import MAX_WORKERS

    (work / "cal.yaml").write_text("studies: [studies/faggioli_2015.yaml]\n" + PARAMETERS)
    before = snapshot(work)
    extra = ["--dask", "local"] if dask else []
    proc = simulate(
        *command, "--patients", "20", "--workers", "100000000", *extra, "--out", "o", cwd=work
    )
    refused(proc, "--workers", "100000000", f"limit of {MAX_WORKERS}")
    assert snapshot(work) == before


def test_the_largest_number_of_workers_is_accepted_and_the_api_checks_it_too() -> None:
    from simulator.cli import build_parser
    from simulator.parallel import MAX_WORKERS, check_workers

    args = build_parser().parse_args(["run", "x.yaml", "--workers", str(MAX_WORKERS)])
    assert args.workers == MAX_WORKERS
    with pytest.raises(InputError, match=f"--workers {MAX_WORKERS + 1}: .*limit"):
        check_workers(MAX_WORKERS + 1)


# --------------------------------------------------------------------------------------
# 4. and 5. The lock name held by a folder; --out /
# --------------------------------------------------------------------------------------


def test_a_folder_at_the_lock_name_is_refused_naming_the_folder_and_the_lock(
    work: Path,
) -> None:
    (work / ".o9.lock").mkdir()
    (work / ".o9.lock" / "keep").write_text("not the simulator's\n")
    before = snapshot(work)
    proc = simulate("scenarios/first_line.yaml", "--patients", "20", "--out", "o9", cwd=work)
    refused(proc, "--out o9", ".o9.lock is in the way", "a folder", "did not write it")
    assert snapshot(work) == before


def test_out_root_is_refused_as_the_filesystem_root(work: Path) -> None:
    before = snapshot(work)
    proc = simulate("scenarios/first_line.yaml", "--patients", "20", "--out", "/", cwd=work)
    message = refused(proc, "--out /", "filesystem root")
    assert "'.' or '..'" not in message
    assert snapshot(work) == before
