"""Interrupting run, compare and sweep: no orphaned workers, no half-written results.

Each test starts the installed command (``python -m simulator``) with ``--workers 2`` on
enough patients to keep both workers busy for many seconds, waits until the workers
exist (children of the command found through /proc), sends a signal and looks at what a
user would see: the exit status, stderr, the folder and the process table. The runs are
killed long before they finish, so they cost only a few seconds each.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

FIRST_LINE = ROOT / "scenarios" / "first_line.yaml"
RESCUE = ROOT / "scenarios" / "rescue.yaml"

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")


def _ppid(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text.rsplit(")", 1)[1].split()[1])


def children(parent: int) -> set[int]:
    """Live processes whose parent is ``parent``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ppid(int(entry)) == parent:
            found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """Whatever a test asserts, the commands it started do not outlive it."""
    yield
    while STARTED:
        proc = STARTED.pop()
        workers = children(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)


def start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], set[int]]:
    """Start the command and wait until it has two worker processes busy."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "simulator", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    workers: set[int] = set()
    while time.time() < deadline and proc.poll() is None:
        workers = children(proc.pid)
        if len(workers) >= 2:
            break
        time.sleep(0.05)
    assert len(workers) >= 2, f"no workers seen (exit {proc.poll()})"
    time.sleep(0.5)  # let them take work from the queue
    assert proc.poll() is None, "the command finished before it could be interrupted"
    return proc, workers


def assert_gone(workers: set[int], within: float = 10.0) -> None:
    deadline = time.time() + within
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    survivors = [w for w in workers if alive(w)]
    for w in survivors:  # do not leave them behind for the next test
        os.kill(w, signal.SIGKILL)
    assert not survivors, f"worker processes survived: {survivors}"


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


RUN = [
    "run",
    str(FIRST_LINE),
    "--patients",
    "400000",
    "--summary-only",
    "--workers",
    "2",
    "--chunk-size",
    "500",
    "--quiet",
]
COMPARE = [
    "compare",
    str(FIRST_LINE),
    str(RESCUE),
    "--patients",
    "400000",
    "--workers",
    "2",
    "--chunk-size",
    "500",
    "--quiet",
]
SWEEP_FILE = f"""name: slow
base: {FIRST_LINE}
patients: 20000
seed: 11
outcomes: [cpk_normal_month_6]
design:
  type: one_way
  parameters:
    regimen.ivig.dose_g_per_kg: {{values: [1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4]}}
"""


def sweep_args(folder: Path) -> list[str]:
    """A sweep of 9 points taking a few seconds each."""
    (folder / "in").mkdir()
    path = folder / "in" / "slow.yaml"
    path.write_text(SWEEP_FILE)
    return ["sweep", str(path), "--workers", "2", "--quiet"]


@pytest.mark.parametrize("args", [RUN, COMPARE], ids=["run", "compare"])
def test_kill_9_of_the_parent_leaves_no_worker_behind(tmp_path: Path, args: list[str]) -> None:
    proc, workers = start([*args, "--out", "out"], tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert_gone(workers)
    assert not (tmp_path / "out").exists()


def test_the_next_run_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    proc, workers = start([*RUN, "--out", "out"], tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert_gone(workers)
    assert any(n.startswith(".out.tmp-") for n in hidden_leftovers(tmp_path))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            str(FIRST_LINE),
            "--patients",
            "20",
            "--out",
            "out",
            "--quiet",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert hidden_leftovers(tmp_path) == []
    assert (tmp_path / "out" / "summary.json").is_file()


@pytest.mark.parametrize(
    ("sig", "status", "args"),
    [
        (signal.SIGTERM, 143, RUN),
        (signal.SIGINT, 130, RUN),
        (signal.SIGHUP, 129, COMPARE),
        (signal.SIGTERM, 143, COMPARE),
    ],
    ids=["run_sigterm", "run_sigint", "compare_sighup", "compare_sigterm"],
)
def test_a_signal_stops_workers_exits_128_plus_signal_with_one_line(
    tmp_path: Path, sig: int, status: int, args: list[str]
) -> None:
    proc, workers = start([*args, "--out", "out"], tmp_path)
    os.kill(proc.pid, sig)  # only the parent, as `timeout` or a notebook does
    try:
        stdout, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGABRT)  # -X faulthandler: show where it hangs
        print(proc.communicate()[1])
        raise
    assert stdout == ""
    assert proc.returncode == status, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("interrupted"), err
    assert "Traceback" not in err
    assert_gone(workers)
    assert sorted(os.listdir(tmp_path)) == []


def test_sweep_sigterm_keeps_finished_points_and_stops_workers(tmp_path: Path) -> None:
    proc, workers = start([*sweep_args(tmp_path), "--out", "out"], tmp_path)
    points = tmp_path / "out.partial" / "points"
    deadline = time.time() + 60
    while time.time() < deadline and not (points.is_dir() and any(points.glob("*.json"))):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and re.search(r"points (is|are) saved", err), err
    assert_gone(workers)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in points.iterdir() if p.name.startswith(".")] == []
    assert 1 <= len(list(points.glob("*.json"))) < 9
    assert hidden_leftovers(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["in", "out.partial"]


def test_sweep_kill_9_leaves_no_worker_behind(tmp_path: Path) -> None:
    proc, workers = start([*sweep_args(tmp_path), "--out", "out"], tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert_gone(workers)


def _main_in_process(tmp_path, capsys):
    """`simulate first_line.yaml --patients 20 --out <tmp>/o` in this process: (out,
    exit status, stderr)."""
    from simulator import cli

    out = tmp_path / "o"
    code = cli.main([str(FIRST_LINE), "--patients", "20", "--out", str(out)])
    return out, code, capsys.readouterr().err


def test_an_interrupt_after_the_results_are_written_says_so(tmp_path, monkeypatch, capsys):
    """Ctrl-C while the closing table is printed (a pager, a full pipe) came after the
    results had replaced --out, yet the message said none were written (audit)."""
    from simulator import cli

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "format_table", stop)
    out, code, err = _main_in_process(tmp_path, capsys)
    assert code == 130
    assert "had been written to" in err and str(out) in err
    assert "no results were written" not in err
    assert (out / "summary.json").is_file()


def test_a_worker_that_dies_is_reported_without_a_traceback(tmp_path, monkeypatch, capsys):
    """A worker killed (by the out-of-memory killer, say) raised BrokenProcessPool, shown
    as a traceback and 'internal error: this is a bug' (audit)."""
    from concurrent.futures.process import BrokenProcessPool

    from simulator import jobs

    def die(*_a, **_k):
        raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(jobs, "run_to_folder", die)
    out, code, err = _main_in_process(tmp_path, capsys)
    assert code == 1
    assert "Traceback" not in err and "bug" not in err
    assert err.startswith("error: a worker process died") and len(err.splitlines()) == 1
    assert not out.exists()


def test_ctrl_c_while_the_command_is_still_importing_prints_no_traceback() -> None:
    """The entry point's handler is in place as soon as it is imported, before
    ``simulator.cli`` and its imports: a SIGINT then ends the process with 130 and one
    line. (Sent by the process itself, right after importing the entry point, so the
    moment is exact. Python's own SIGINT handler is put back first, as in a terminal:
    a test runner started in the background may have been told to ignore SIGINT, which
    the entry point respects, as the next test checks.)"""
    code = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import simulator._entry\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(5)\n"
        "import simulator.cli\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done
    assert done.stderr == "interrupted: no results were written\n"


def test_a_sigint_the_parent_ignores_stays_ignored() -> None:
    code = (
        "import os, signal\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "import simulator._entry\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "print('still here')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "still here\n"), done


def test_the_console_script_and_python_m_go_through_the_entry_point() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["simulate"] == "simulator._entry:main"
    assert "from ._entry import main" in (ROOT / "simulator" / "__main__.py").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip(), done
