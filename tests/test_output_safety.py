"""The simulator owns only what it made: --out, --force, the manifest, locks, leftovers.

Most tests run the installed command (``python -m simulator``) in a temporary working
directory and look at what a user sees: exit status, stderr, and the files on disk
(bytes and modification times). The property test and the crash tests use the Python
API (``run_to_folder``), which follows the same rules, for speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import refused, simulate

from simulator.errors import InputError
from simulator.report import atomic
from simulator.report.atomic import MANIFEST

FIRST_LINE = ROOT / "scenarios" / "first_line.yaml"


def state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: bytes and mtime (ns)."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture(scope="module")
def scenario():
    from simulator.scenario import load_scenario

    return load_scenario(FIRST_LINE)


# --------------------------------------------------------------------------------------
# Folders the simulator did not make
# --------------------------------------------------------------------------------------


def test_out_holding_a_foreign_file_is_refused_and_untouched(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.txt").write_text("three years of work\n")
    os.utime(docs / "thesis.txt", ns=(1_000_000_000, 1_000_000_000))
    before = state(tmp_path)
    proc = simulate(FIRST_LINE, "--patients", "20", "--out", "docs", cwd=tmp_path)
    refused(proc, "--out docs", "thesis.txt", "move them away", "never deletes")
    assert state(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["docs"]
    assert sorted(os.listdir(docs)) == ["thesis.txt"]


_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12
).filter(lambda n: n not in (".", "..", MANIFEST))


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.dictionaries(_names, st.binary(max_size=64), min_size=1, max_size=4),
    with_manifest=st.booleans(),
    listed=st.integers(min_value=0, max_value=3),
)
def test_foreign_files_in_out_are_never_modified(
    tmp_path_factory, scenario, files, with_manifest, listed
) -> None:
    """Whatever foreign files --out holds (even next to a manifest listing some of them),
    the API refuses and changes nothing."""
    base = tmp_path_factory.mktemp("prop")
    out = base / "out"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    if with_manifest:  # a manifest listing only some of the files: the rest are foreign
        names = sorted(files)[: min(listed, len(files) - 1)]
        (out / MANIFEST).write_text(json.dumps({"simulator": "myositis-ivig-sim", "files": names}))
    before = state(base)
    with pytest.raises(InputError, match="did not write"):
        atomic_run(scenario, out)
    assert state(base) == before
    assert sorted(os.listdir(base)) == ["out"]


def atomic_run(scenario, out: Path, **kwargs):
    from simulator.jobs import run_to_folder

    return run_to_folder(scenario, out, patients=20, workers=1, progress=False, **kwargs)


@pytest.mark.parametrize("command", ["run", "compare", "sweep", "validate", "calibrate"])
def test_force_is_withdrawn_and_deletes_nothing(tmp_path: Path, command: str) -> None:
    """--force replaced a folder holding files the simulator did not write, deleting
    them (`--out scenarios/studies --force` deleted 8 scenario files). It is refused now,
    with the reason, for every command, before anything is read or written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.md").write_text("mine\n")
    before = state(tmp_path)
    proc = simulate(command, "nosuch.yaml", "--out", "out", "--force", cwd=tmp_path)
    refused(proc, "--force: no longer available", "never deletes a file it did not write")
    assert state(tmp_path) == before


def test_a_simulator_folder_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = simulate(FIRST_LINE, "--patients", "20", "--out", "out", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["kind"] == "run" and "summary.json" in manifest["files"]
    assert sorted(manifest["files"]) == sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    first = (out / "summary.json").read_bytes()
    proc = simulate(
        FIRST_LINE, "--patients", "20", "--seed", "5", "--out", "out", "--quiet", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "summary.json").read_bytes() != first
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_never_the_cwd_an_ancestor_or_an_input_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "in").mkdir(parents=True)
    scn = work / "in" / "s.yaml"
    scn.write_text(f"extends: {FIRST_LINE}\nname: s\n")
    before = state(tmp_path)
    for out, why in (
        (".", "'.'"),
        (work, "current working directory"),
        (tmp_path, "contains the current working directory"),
        ("in", "holds the input file"),
    ):
        # --quiet: the scenario extends a file outside its folder, which is read with a
        # warning; the refusal must still be the one message on stderr.
        proc = simulate(scn, "--patients", "20", "--out", out, "--quiet", cwd=work)
        refused(proc, why)
    assert state(tmp_path) == before
    assert sorted(os.listdir(work)) == ["in"]


def test_a_scenario_named_dot_dot_yaml_cannot_reach_results_itself(tmp_path: Path) -> None:
    old = tmp_path / "results" / "earlier"
    old.mkdir(parents=True)
    (old / "summary.json").write_text("{}\n")
    (tmp_path / "..yaml").write_text(f"extends: {FIRST_LINE}\nname: dots\n")
    proc = simulate("..yaml", "--patients", "20", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (old / "summary.json").read_text() == "{}\n"
    made = sorted(os.listdir(tmp_path / "results"))
    assert "earlier" in made and len(made) == 2
    assert (
        tmp_path / "results" / next(n for n in made if n != "earlier") / "summary.json"
    ).is_file()


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/../../b", "\x00\x1b..", ".hidden"])
def test_sanitised_names_stay_one_visible_child(name: str) -> None:
    safe = atomic.safe_name(name)
    assert safe and "/" not in safe and not safe.startswith(".")
    assert (Path("results") / safe).parent == Path("results")


def test_a_symlink_at_out_is_refused_and_never_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("keep\n")
    (tmp_path / "link").symlink_to(real)
    before = state(tmp_path)
    proc = simulate(FIRST_LINE, "--patients", "20", "--out", "link", cwd=tmp_path)
    refused(proc, "--out link", "symbolic link")
    assert (tmp_path / "link").is_symlink() and os.readlink(tmp_path / "link") == str(real)
    assert state(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]


def test_bad_dask_scheduler_and_a_partial_file_are_input_errors(tmp_path: Path) -> None:
    proc = simulate(
        FIRST_LINE, "--patients", "20", "--out", "o", "--dask-scheduler", "not a url", cwd=tmp_path
    )
    refused(proc, "--dask-scheduler", "not a url", "tcp://HOST:PORT")
    (tmp_path / "o.partial").write_text("mine\n")
    sweep = ROOT / "tests" / "fixtures" / "sweeps" / "one_way_small.yaml"
    proc = simulate("sweep", sweep, "--out", "o", "--quiet", cwd=tmp_path)
    refused(proc, "o.partial", "not a folder")
    assert "different sweep" not in proc.stderr
    assert (tmp_path / "o.partial").read_text() == "mine\n"
    assert sorted(os.listdir(tmp_path)) == ["o.partial"]


# --------------------------------------------------------------------------------------
# Crashes, leftovers and concurrent runs
# --------------------------------------------------------------------------------------


def _ours(folder: Path, files: dict[str, str], *, complete: bool = True) -> None:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    manifest = {"simulator": "myositis-ivig-sim", "kind": "run"}
    manifest.update({"files": sorted(files)} if complete else {"writing": True})
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_leftovers_of_a_crash_are_cleaned_by_the_next_run(tmp_path: Path, scenario) -> None:
    out = tmp_path / "out"
    _ours(tmp_path / ".out.tmp-crashed", {"patients.csv": "half"}, complete=False)
    (tmp_path / ".out.tmp-empty").mkdir()
    _ours(tmp_path / ".out.old-999", {"summary.json": "{}"})
    foreign = tmp_path / ".out.tmp-notmine"  # same pattern, not ours: left alone
    foreign.mkdir()
    (foreign / "x.txt").write_text("x\n")
    atomic_run(scenario, out)
    assert sorted(os.listdir(tmp_path)) == [".out.tmp-notmine", "out"]
    assert (foreign / "x.txt").read_text() == "x\n"
    assert json.loads((out / "summary.json").read_text())["patients"] == 20


def test_a_failed_second_rename_puts_the_old_results_back(
    tmp_path: Path, scenario, monkeypatch
) -> None:
    out = tmp_path / "out"
    _ours(out, {"summary.json": "old\n"})
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # the two-rename scheme

    def fail(tmp: Path, target: Path) -> None:
        raise OSError(28, "No space left on device", str(target))

    monkeypatch.setattr(atomic, "_rename_into_place", fail)
    with pytest.raises(OSError):
        atomic_run(scenario, out)
    assert (out / "summary.json").read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["out"]


CRASH_BETWEEN_RENAMES = """
import os, sys
from simulator.report import atomic
from simulator.jobs import run_to_folder
from simulator.scenario import load_scenario
atomic._exchange = lambda a, b: False
atomic._rename_into_place = lambda tmp, target: os._exit(9)   # the process dies here
run_to_folder(load_scenario(sys.argv[1]), sys.argv[2], patients=20, workers=1,
              progress=False)
"""


def test_a_crash_between_the_renames_is_recovered_before_anything_else(
    tmp_path: Path, scenario, monkeypatch
) -> None:
    out = tmp_path / "out"
    _ours(out, {"summary.json": "old\n"})
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_BETWEEN_RENAMES, str(FIRST_LINE), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 9, proc.stderr
    assert not out.exists()  # the crash hit the window the next run must repair
    names = sorted(os.listdir(tmp_path))
    assert any(n.startswith(".out.old-") for n in names), names
    # the next run is interrupted while computing: the old results must be back anyway

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("simulator.jobs.write_outputs", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_run(scenario, out)
    assert (out / "summary.json").read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_crash_during_the_exchange_leaves_old_or_new_results(
    tmp_path: Path, scenario, monkeypatch
) -> None:
    """The swap is one step (renameat2, or the two-rename fallback where unsupported):
    interrupted right after it, --out holds the complete new results and nothing else
    is left."""
    out = tmp_path / "out"
    _ours(out, {"summary.json": "old\n"})
    real = atomic._exchange
    seen = []

    def spy(a: Path, b: Path) -> bool:
        done = real(a, b)
        seen.append(done)
        assert (b / "summary.json").is_file()  # right after the swap: the new results
        raise KeyboardInterrupt  # interrupted just after the swap

    monkeypatch.setattr(atomic, "_exchange", spy)
    with pytest.raises(KeyboardInterrupt):
        atomic_run(scenario, out)
    assert (out / "summary.json").is_file()
    assert (out / MANIFEST).is_file()
    assert seen, "the swap was not reached"
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the swapped-out old folder is gone


def test_two_runs_into_one_folder_one_wins_the_other_is_refused(tmp_path: Path) -> None:
    slow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            str(FIRST_LINE),
            "--patients",
            "12000",
            "--workers",
            "1",
            "--summary-only",
            "--out",
            "out",
            "--quiet",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (tmp_path / ".out.lock").exists():
            time.sleep(0.02)
        assert (tmp_path / ".out.lock").exists() and slow.poll() is None
        second = simulate(FIRST_LINE, "--patients", "20", "--out", "out", cwd=tmp_path)
        refused(second, "--out out", "another simulate run")
        _, err = slow.communicate(timeout=180)
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.communicate()
    assert slow.returncode == 0, err
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["patients"] == 12000


def test_never_the_folder_of_a_file_the_inputs_name(tmp_path):
    """--force replaced a folder holding a scenario's `extends:` base (the base was
    deleted): every file an input names (extends chains, a sweep's strategies and their
    bases) is an input file too, and the refusal says so."""
    base_dir = tmp_path / "basedir"
    base_dir.mkdir()
    (base_dir / "base.yaml").write_bytes((ROOT / "scenarios" / "base.yaml").read_bytes())
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "child.yaml").write_text("extends: ../basedir/base.yaml\n")
    before = state(base_dir)
    proc = simulate("run", deep / "child.yaml", "--patients", "5", "--out", base_dir, cwd=tmp_path)
    refused(proc, "holds the input file", "base.yaml")
    assert state(base_dir) == before

    # a sweep whose strategy extends a base in another folder
    sweep = deep / "sweep.yaml"
    sweep.write_text(
        "name: s\ndescription: d\nstrategies:\n  a: child.yaml\n  b: child.yaml\n"
        "patients: 5\noutcomes: [qaly]\ndesign:\n  type: one_way\n  parameters:\n"
        "    regimen.ivig.cycles: {values: [4, 6]}\n"
    )
    proc = simulate("sweep", sweep, "--out", base_dir, cwd=tmp_path)
    refused(proc, "holds the input file", "base.yaml")
    assert state(base_dir) == before


def test_a_lock_file_the_simulator_did_not_write_is_left_alone(tmp_path):
    """A user's file named like the lock (.NAME.lock) was locked and then deleted."""
    user = tmp_path / ".out.lock"
    user.write_text("my notes\n")
    before = user.stat().st_mtime_ns
    proc = simulate("run", FIRST_LINE, "--patients", "5", "--out", tmp_path / "out", cwd=tmp_path)
    refused(proc, ".out.lock is in the way", "did not write")
    assert user.read_text() == "my notes\n" and user.stat().st_mtime_ns == before
    assert not (tmp_path / "out").exists()
    # a lock left by a killed run (ours, unlocked) is taken over and removed
    user.write_bytes(atomic.LOCK_MARK)
    proc = simulate(
        "run", FIRST_LINE, "--patients", "5", "--out", tmp_path / "out", "-q", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert not user.exists() and (tmp_path / "out" / "summary.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_run_that_fails_midway_removes_the_parent_folders_it_created(
    tmp_path, monkeypatch, scenario
):
    """--out a/b/c with a and b new: a failure after the folders were made (here the run
    itself raises) removed nothing; now the created, still empty parents go too. A parent
    that existed before stays."""
    from simulator import jobs

    def boom(*_args, **_kwargs):
        raise RuntimeError("failed mid-run")

    monkeypatch.setattr(jobs, "run", boom)
    out = tmp_path / "a" / "b" / "c"
    with pytest.raises(RuntimeError, match="mid-run"):
        jobs.run_to_folder(scenario, out, patients=3, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "a").mkdir()
    with pytest.raises(RuntimeError, match="mid-run"):
        jobs.run_to_folder(scenario, out, patients=3, workers=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["a"] and not any((tmp_path / "a").iterdir())


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_an_unwritable_out_is_named_as_out(tmp_path):
    """The message named the lock's temporary file (/sys/.foo.lock-xxxx) or the parent
    folder, not --out."""
    proc = simulate("run", FIRST_LINE, "--patients", "5", "--out", "/proc/nosuch/out", cwd=tmp_path)
    refused(proc, "--out /proc/nosuch/out: cannot create its folder /proc/nosuch")
    assert not list(tmp_path.iterdir())


def test_never_deletes_a_file_the_simulator_did_not_write_in_a_checkpoint(tmp_path):
    """`<out>.partial` is where an interrupted sweep or calibration keeps its finished
    points. With --force a checkpoint folder without a manifest was deleted whole, with
    the sweep file kept in it and a user's notes (audit): now nothing in it that the
    simulator did not write is ever deleted, not even with --fresh, and the run is
    refused with their names."""
    fixture = ROOT / "tests" / "fixtures" / "sweeps" / "one_way_small.yaml"
    partial = tmp_path / "s.partial"
    partial.mkdir()
    sweep = partial / "sweep.yaml"
    text = fixture.read_text().replace("../../../scenarios/", f"{ROOT / 'scenarios'}/")
    sweep.write_text(text)
    (partial / "thesis.txt").write_text("mine\n")
    before = state(partial)
    for extra in ((), ("--fresh",)):
        proc = simulate("sweep", sweep, "--out", "s", "--quiet", *extra, cwd=tmp_path)
        refused(proc, "s.partial", "did not write")
        assert state(partial) == before
        assert sorted(os.listdir(tmp_path)) == ["s.partial"]


def test_a_checkpoint_with_an_unreadable_manifest_needs_fresh(tmp_path):
    """A checkpoint whose manifest cannot be read (a truncated write) was replaced only
    with --force; --fresh now starts again, deleting only the files a checkpoint holds."""
    fixture = ROOT / "tests" / "fixtures" / "sweeps" / "one_way_small.yaml"
    sweep = tmp_path / "s.yaml"
    sweep.write_text(fixture.read_text().replace("../../../scenarios/", f"{ROOT / 'scenarios'}/"))
    partial = tmp_path / "s.partial"
    (partial / "points").mkdir(parents=True)
    (partial / "manifest.json").write_text('{"fingerprint": ')
    (partial / "points" / "0000000.json").write_text("{}")
    before = state(partial)
    proc = simulate("sweep", sweep, "--out", "s", "--quiet", cwd=tmp_path)
    refused(proc, "s.partial", "no readable checkpoint manifest", "--fresh")
    assert state(partial) == before
    proc = simulate("sweep", sweep, "--out", "s", "--quiet", "--fresh", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["s", "s.yaml"]


def test_a_finished_sweep_removes_only_its_own_checkpoint_files(tmp_path, caplog):
    """After a sweep's outputs are written its checkpoint goes, but a file someone put
    in it stays (with a warning), and so does the folder holding it."""
    import logging

    from simulator.jobs import sweep_to_folder
    from simulator.store import PointStore
    from simulator.sweeps import checkpoint, plan_sweep

    plan = plan_sweep(ROOT / "tests" / "fixtures" / "sweeps" / "one_way_small.yaml")
    out = tmp_path / "s"
    store: PointStore = checkpoint(plan, out, paired=True)
    store.open()  # an interrupted run's checkpoint, before any point finished
    (store.folder / "notes.txt").write_text("mine\n")
    with caplog.at_level(logging.WARNING, logger="simulator.jobs"):
        sweep_to_folder(plan, out, progress=False)
    assert (store.folder / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in store.folder.iterdir()) == ["notes.txt"]
    assert "notes.txt" in caplog.text
    # without a foreign file the checkpoint is gone whole
    (store.folder / "notes.txt").unlink()
    store.folder.rmdir()
    sweep_to_folder(plan, tmp_path / "t", progress=False)
    assert not (tmp_path / "t.partial").exists()
