"""Bad sweep input an audit found accepted, crashing or hanging, each refused before
anything runs with the project's standard for bad input: exit status 2, one line on
stderr starting with 'error:' that names the file and the offending name or value, no
traceback, and nothing written (no output folder, no .partial checkpoint, no lock).

1-3. strategy names that make an output key or a figure file name ambiguous (':', a
     difference label 'B-A', an empty name, names with the same figure file name);
4-8. a PSA's posterior CSV (from_posterior): a field above csv's limit, a FIFO or a
     device, a column given twice, a column the strategies refuse, a ragged row;
9.   a grid or one-way value that is NaN.

Each case of the audit runs ``python -m simulator sweep`` in a subprocess. The runs are
started together (a refused sweep costs ~1 s, nearly all of it importing the simulator),
each in its own folder, and every test checks its own run; variants of the cases are
checked in this process with ``plan_sweep``, which raises the InputError the command
prints."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, SCENARIOS
from test_cli import cap_memory, refused, simulate

from simulator.errors import InputError
from simulator.sweeps import plan_sweep

FIRST_LINE = SCENARIOS / "first_line.yaml"
RESCUE = SCENARIOS / "rescue.yaml"
STEROID_ONLY = SCENARIOS / "steroid_only.yaml"
GRID = "design: {type: grid, parameters: {disease.steroid.emax_per_day: [0.1, 0.2]}}\n"
TWO = f"strategies:\n  first_line: {FIRST_LINE}\n  rescue: {RESCUE}\n"
BODY = "patients: 20\noutcomes: [cost_total, qaly]\n"
EMAX = "disease.steroid.emax_per_day"
#: a run that has not finished after this long hangs (a refused sweep takes ~1-2 s)
TIMEOUT = 60


def _psa(csv_name: str) -> str:
    return f"name: sw\n{TWO}{BODY}design: {{type: psa, draws: 3, from_posterior: {csv_name}}}\n"


def _strategies(*arms: tuple[str, Path]) -> str:
    lines = "".join(f"  {name!r}: {path}\n" for name, path in arms)
    return f"name: sw\nstrategies:\n{lines}{BODY}{GRID}"


#: name -> (the sweep file's text, the other files of its folder: name -> text, or None
#: for a FIFO)
CASES: dict[str, tuple[str, dict[str, str | None]]] = {
    "colon": (_strategies(("first_line", FIRST_LINE), ("a:b", RESCUE)), {}),
    "difference": (
        _strategies(
            ("first_line", FIRST_LINE), ("rescue", RESCUE), ("rescue-first_line", STEROID_ONLY)
        ),
        {},
    ),
    "empty": (_strategies(("first_line", FIRST_LINE), ("", RESCUE)), {}),
    "huge_field": (
        _psa("p.csv"),
        {"p.csv": f"weight,{EMAX}\n1," + "1" * 200_000 + "\n1,0.2\n"},
    ),
    "fifo": (_psa("p.csv"), {"p.csv": None}),
    "device": (_psa("/dev/zero"), {}),
    "duplicate": (_psa("p.csv"), {"p.csv": f"weight,{EMAX},{EMAX}\n1,0.1,0.2\n"}),
    "out_of_range": (_psa("p.csv"), {"p.csv": f"weight,{EMAX}\n1,0.1\n1,-0.25\n"}),
    "ragged": (_psa("p.csv"), {"p.csv": f"weight,{EMAX}\n1,0.1,7\n1\n"}),
    "nan": (
        f"name: sw\n{TWO}{BODY}"
        "design: {type: grid, parameters: {regimen.ivig.dose_g_per_kg: [1, .nan]}}\n",
        {},
    ),
}


@dataclass
class Run:
    folder: Path
    returncode: int
    stderr: str
    before: set[str]
    after: set[str]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    started = {}
    for name, (sweep, files) in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / "s.yaml").write_text(sweep)
        for file, text in files.items():
            if text is None:
                os.mkfifo(folder / file)
            else:
                (folder / file).write_text(text)
        before = set(os.listdir(folder))
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "sweep", "s.yaml", "--out", "o", "--quiet"],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # reading /dev/zero must fail on a memory limit, not fill the machine's memory
            preexec_fn=cap_memory if name == "device" else None,
        )
        started[name] = (folder, before, proc)
    deadline = time.monotonic() + TIMEOUT
    out = {}
    for name, (folder, before, proc) in started.items():
        try:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            err = f"(killed after {TIMEOUT} s: the run hung)\n{err}"
        out[name] = Run(folder, proc.returncode, err, before, set(os.listdir(folder)))
    return out


def _refused(run: Run, *fragments: str) -> str:
    """The run's one-line message, after checking it was refused as bad input."""
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    message = lines[0]
    assert message.startswith("error: s.yaml:"), message
    assert run.returncode == 2, run.stderr
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert run.after == run.before, run.after - run.before  # nothing written
    return message


# --------------------------------------------------------------------------------------
# 1-3. strategy names
# --------------------------------------------------------------------------------------


def test_a_strategy_name_with_a_colon_is_refused_before_anything_runs(runs):
    _refused(runs["colon"], "strategies:", "'a:b'", "contains ':'", "may be any text")


def test_a_strategy_named_as_a_difference_of_two_others_is_refused(runs):
    _refused(
        runs["difference"],
        "'rescue-first_line'",
        "difference between the strategies 'rescue' and 'first_line'",
    )


def test_an_empty_strategy_name_is_refused(runs):
    _refused(runs["empty"], "the strategy name ''", "is empty")


@pytest.mark.parametrize(
    ("arms", "fragment"),
    [
        # figure files are named after the output keys' letters and digits
        (("first_line", "a b", "a_b"), "'a_b' gives the same figure file names as the strategy"),
        (("first_line", "rescue", "RESCUE"), "'RESCUE' gives the same figure file names"),
        # an arm named as the rescue - first_line difference's figure files
        (("first_line", "rescue", "rescue_first_line"), "the difference 'rescue-first_line'"),
        # 'a-b' is the difference of two others even when neither is the reference
        (("first_line", "rescue", "steroid_only", "rescue-steroid_only"), "'rescue' and"),
        (("first_line", " "), "is empty or blank"),
    ],
)
def test_strategy_names_with_the_same_figure_files_or_a_difference_label(tmp_path, arms, fragment):
    files = [FIRST_LINE, RESCUE, STEROID_ONLY, STEROID_ONLY]
    sweep = tmp_path / "s.yaml"
    sweep.write_text(_strategies(*zip(arms, files, strict=False)))
    with pytest.raises(InputError) as err:
        plan_sweep(sweep)
    assert fragment in str(err.value) and str(sweep) in str(err.value)


@pytest.mark.parametrize(
    "arms",
    [
        ("first-line", "iv-rescue"),  # '-' in names, no difference label among them
        ("rescue", "first_line", "steroid_only"),  # the shipped PSA's
        ("Steroids + IVIG", "rescue (TIS < 20)"),
        ("first_line", "first-line rescue"),
    ],
)
def test_names_that_leave_no_ambiguity_are_accepted(tmp_path, arms):
    files = [FIRST_LINE, RESCUE, STEROID_ONLY]
    sweep = tmp_path / "s.yaml"
    sweep.write_text(_strategies(*zip(arms, files, strict=False)))
    assert plan_sweep(sweep).arms == list(arms)


def test_the_shipped_sweeps_names_are_accepted():
    for path in sorted((SCENARIOS / "sweeps").glob("*.yaml")):
        assert plan_sweep(path, yes=True).arms, path


# --------------------------------------------------------------------------------------
# 4-8. a PSA's posterior CSV
# --------------------------------------------------------------------------------------


def test_a_posterior_field_above_the_csv_limit_names_the_file_and_line(runs):
    _refused(runs["huge_field"], "design.from_posterior", "p.csv:2:", "field larger")


def test_a_posterior_that_is_a_fifo_is_refused_without_being_opened(runs):
    _refused(runs["fifo"], "design.from_posterior", "p.csv", "named pipe (FIFO)")


def test_a_posterior_that_is_a_device_is_refused_without_being_read(runs):
    _refused(runs["device"], "design.from_posterior", "/dev/zero", "character device")


def test_a_posterior_with_a_column_twice_is_refused(runs):
    _refused(runs["duplicate"], "p.csv:1:", f"'{EMAX}' appears twice")


@pytest.mark.parametrize(
    ("csv_text", "fragments"),
    [
        ("weight,weight,x\n1,1,1\n", ["p.csv:1:", "'weight' appears twice"]),
        (f"weight,{EMAX}\n1,0.1\n\n1,\n", ["p.csv:4:", f"column {EMAX}", "empty"]),
        (f"weight,,{EMAX}\n1,2,0.1\n", ["p.csv:1:", "column 2 of the header has no name"]),
        (
            "weight,disease.steroid.nope\n1,0.1\n",
            ["p.csv:1:", "disease.steroid.nope", "unknown key 'nope'"],
        ),
        # fractional in the middle of whole values: neither the lowest nor the highest
        (
            "weight,regimen.ivig.cycles\n1,6\n1,4.5\n1,3\n",
            ["p.csv:3:", "regimen.ivig.cycles = 4.5", "whole number"],
        ),
        (f"weight,{EMAX}\n1,nan\n", ["p.csv:2:", "finite number"]),
        (f"weight,{EMAX}\n-1,0.1\n1,0.2\n", ["p.csv:2:", "weights must be >= 0"]),
        (b"weight,x\n1,\xff\n", ["p.csv:2:", "not UTF-8"]),
        ("weight\n1\n", ["p.csv:1:", "no parameter columns"]),
    ],
)
def test_more_bad_posteriors_name_the_file_line_column_and_value(tmp_path, csv_text, fragments):
    csv = tmp_path / "p.csv"
    if isinstance(csv_text, bytes):
        csv.write_bytes(csv_text)
    else:
        csv.write_text(csv_text)
    sweep = tmp_path / "s.yaml"
    sweep.write_text(_psa("p.csv"))
    with pytest.raises(InputError) as err:
        plan_sweep(sweep)
    message = str(err.value)
    assert message.startswith(f"{sweep}:") and "design.from_posterior" in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_posterior_value_the_strategies_refuse_names_the_row_value_and_reason(runs):
    _refused(
        runs["out_of_range"],
        "p.csv:3:",
        f"column {EMAX} = -0.25",
        "strategy 'first_line'",
        "greater than or equal to 0",
    )


def test_a_ragged_posterior_row_says_it_has_the_wrong_number_of_fields(runs):
    _refused(runs["ragged"], "p.csv:2:", "3 fields, the header has 2")


def test_a_posterior_with_blank_lines_and_a_bom_is_read(tmp_path):
    (tmp_path / "p.csv").write_bytes(f"\ufeffweight,{EMAX}\r\n1,0.1\r\n\r\n3,0.12\r\n".encode())
    sweep = tmp_path / "s.yaml"
    sweep.write_text(_psa("p.csv"))
    plan = plan_sweep(sweep)
    assert {p[EMAX] for p in plan.points} <= {0.1, 0.12}


# --------------------------------------------------------------------------------------
# 9. NaN in a listed value
# --------------------------------------------------------------------------------------


def test_a_nan_grid_value_must_be_a_finite_number(runs):
    _refused(runs["nan"], "regimen.ivig.dose_g_per_kg", "[1]", "must be a finite number, got nan")


def test_a_nan_one_way_value_must_be_a_finite_number(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        f"name: sw\n{TWO}{BODY}design:\n  type: one_way\n  parameters:\n"
        "    regimen.ivig.dose_g_per_kg: {values: [1, [2, .inf]]}\n"
    )
    with pytest.raises(InputError) as err:
        plan_sweep(sweep)
    assert "values[1]: item 1: must be a finite number, got inf" in str(err.value)


def test_a_posterior_above_the_size_limit_is_refused_before_it_is_read(tmp_path):
    from simulator.sweeps import PosteriorError, read_posterior_bytes

    csv = tmp_path / "p.csv"
    csv.write_text(f"weight,{EMAX}\n1,0.1\n")
    assert read_posterior_bytes(csv) == csv.read_bytes()
    with pytest.raises(PosteriorError, match="above the limit of 10 bytes"):
        read_posterior_bytes(csv, limit=10)
    with pytest.raises(PosteriorError, match="but it is a directory"):
        read_posterior_bytes(tmp_path)


def test_a_set_or_params_value_the_design_varies_is_refused(tmp_path):
    """`simulate sweep psa.yaml --params overlay.yaml` drew the overlay's parameters
    around the sweep file's own centres (the defaults'), silently: the PSA was not run
    under the overlay. Refused now, naming the sweep file's line, the overlay's file and
    line, and what to do; nothing is written."""
    psa = ROOT / "scenarios" / "sweeps" / "psa_first_line_vs_rescue.yaml"
    overlay = tmp_path / "o.yaml"
    overlay.write_text("disease.steroid.sensitivity_cv: 2.0\ndisease.steroid.emax_per_day: 0.1\n")
    for extra, source in (
        (["--params", str(overlay)], f"--params {overlay} line 2"),
        (["--set", "economics.prices.ivig_per_g=40"], "--set economics.prices.ivig_per_g=40"),
    ):
        proc = simulate(
            "sweep", psa, "--draws", "2", "--patients", "5", "--out", tmp_path / "out", *extra,
            cwd=tmp_path, timeout=300,
        )  # fmt: skip
        refused(proc, f"{psa}:", source, "which the psa design varies")
        assert not (tmp_path / "out").exists()
    # a value the design does not vary is still applied (a PSA under another horizon)
    proc = simulate(
        "sweep", psa, "--draws", "2", "--patients", "5", "--out", tmp_path / "ok", "--quiet",
        "--workers", "1", "--set", "economics.cea_horizon=clinical", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_a_set_or_params_value_of_a_posterior_column_is_refused(tmp_path):
    """A PSA that draws the fitted parameters from a posterior (`from_posterior`) replaced
    a --set or --params value of one of its columns at every draw, silently (a design
    parameter was already refused, above). Refused the same way (after the strategies are
    read: run from the repository, so no file lies outside the working directory), at the
    line of
    from_posterior, naming the column and how it was given; nothing is written."""
    psa = ROOT / "scenarios" / "sweeps" / "psa_calibration_posterior.yaml"
    overlay = tmp_path / "o.yaml"
    overlay.write_text("economics.cea_horizon: clinical\ndisease.steroid.emax_per_day: 0.1\n")
    line = next(i for i, t in enumerate(psa.read_text().splitlines(), 1) if "from_posterior" in t)
    for extra, source in (
        (["--params", str(overlay)], f"--params {overlay} line 2"),
        (
            ["--set", "disease.ivig.effect_per_g_per_l_per_day=0.005"],
            "--set disease.ivig.effect_per_g_per_l_per_day=0.005",
        ),
    ):
        proc = simulate(
            "sweep", psa, "--draws", "2", "--patients", "5", "--out", tmp_path / "out", *extra,
            cwd=ROOT, timeout=300,
        )  # fmt: skip
        refused(proc, f"{psa}:{line}:", "design.from_posterior:", source, "a column of")
        assert not (tmp_path / "out").exists()
