"""Strict, bounded input (issue 8): values that used to answer a different question with
exit 0, files that were read without bounds or echoed, and failures that were tracebacks.

Like the bad-input corpus of test_cli.py, each case runs the installed command in a fresh
interpreter (started together in a thread pool) and checks what a user sees: exit status
2, one ``error:`` message naming the file, the YAML path and the value, no traceback and
nothing written. A few API checks run in-process.
"""

from __future__ import annotations

import functools
import os
import string
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_cli import PARALLEL, REPO, assert_rejected, leftovers, listing, simulate

from simulator.errors import InputError

SCENARIOS = REPO / "scenarios"
FIRST_LINE = SCENARIOS / "first_line.yaml"
STEROID_ONLY = SCENARIOS / "steroid_only.yaml"
RESCUE = SCENARIOS / "rescue.yaml"
PROMPT_S = 30  # "answered promptly": FIFOs and huge files must not hang or crawl


def _scenario(body: str) -> bytes:
    return f"extends: {FIRST_LINE}\nname: strict\n{body}".encode()


def _sweep(design: str, patients: int = 10) -> bytes:
    return (
        f"name: s\nstrategies:\n  a: {FIRST_LINE}\n  b: {RESCUE}\npatients: {patients}\n"
        f"outcomes: [ivig_g]\ndesign:\n{design}"
    ).encode()


@dataclass(frozen=True)
class Case:
    """``files`` are written in an empty working directory; ``{first_line}`` and
    ``{steroid_only}`` in ``args`` are the repository scenarios; ``--out out`` is added.
    ``--quiet`` keeps the warning about files outside the folder off stderr, so the
    message is the only line."""

    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    absent: tuple[str, ...] = ()


def _file_case(id: str, data: bytes, *expect: str, absent: tuple[str, ...] = ()) -> Case:
    return Case(id, (f"{id}.yaml", "--quiet"), expect, {f"{id}.yaml": data}, absent)


def _sweep_case(id: str, data: bytes, *expect: str, extra: tuple[str, ...] = ()) -> Case:
    return Case(id, ("sweep", f"{id}.yaml", "--quiet", *extra), expect, {f"{id}.yaml": data})


CASES = [
    # 0. the clinical model v2 keys
    _file_case(
        "rule_unknown_measure",
        _scenario("regimen:\n  taper:\n    hold_when: {above: {cpk_xuln: 1}}\n"),
        "regimen.taper.hold_when",
        "unknown measure 'cpk_xuln'",
        "did you mean 'cpk_x_uln'",
    ),
    _file_case(
        "rule_measure_nan",
        _scenario("regimen:\n  taper:\n    fast_when: {below: {tis: .nan}}\n"),
        "regimen.taper.fast_when",
        "must be a finite number",
    ),
    _file_case(
        "fast_factor_zero",
        _scenario("regimen:\n  taper:\n    fast_factor: 0\n"),
        "regimen.taper.fast_factor",
        "greater than 0",
    ),
    _file_case(
        "cycle_dose_too_high",
        _scenario("regimen:\n  ivig:\n    dose_g_per_kg: [2, 5]\n"),
        "regimen.ivig.dose_g_per_kg",
        "each dose must be in (0, 4]",
    ),
    _file_case(
        "extend_beyond_max",
        _scenario(
            "regimen:\n  ivig:\n    cycles: 10\n    max_cycles: 8\n"
            "    extend_when: {inactive: false}\n"
        ),
        "regimen.ivig",
        "cycles (10) exceeds max_cycles (8)",
    ),
    _file_case(
        "heterogeneity_not_pd",
        _scenario(
            "disease:\n  heterogeneity:\n    correlation: [[1, 0.9, 0.9, 0],"
            " [0.9, 1, -0.9, 0], [0.9, -0.9, 1, 0], [0, 0, 0, 1]]\n"
        ),
        "disease.heterogeneity",
        "correlation must be positive definite",
    ),
    _file_case(
        "activity_exponent_above_1",
        _scenario("disease:\n  core_set:\n    activity_exponent: 1.5\n"),
        "disease.core_set.activity_exponent",
        "less than or equal to 1",
    ),
    _file_case(
        "placebo_text", _scenario("regimen:\n  ivig:\n    placebo: maybe\n"), "regimen.ivig.placebo"
    ),
    # 1. strict values
    _file_case(
        "patients_true",
        _scenario("patients: true\n"),
        "patients_true.yaml:3:",
        "patients",
        "not a boolean",
        "True",
    ),
    _file_case(
        "seed_false",
        _scenario("seed: false\n"),
        "seed_false.yaml:3:",
        "seed",
        "not a boolean",
        "False",
    ),
    _file_case(
        "female_true",
        _scenario("population:\n  female: true\n"),
        "female_true.yaml:4:",
        "population.female",
        "not a boolean",
    ),
    _file_case(
        "dose_nan",
        _scenario("regimen:\n  ivig:\n    dose_g_per_kg: .nan\n"),
        "dose_nan.yaml:5:",
        "regimen.ivig.dose_g_per_kg",
        "must be a finite number, got nan",
        absent=("should be <=",),
    ),
    _file_case(
        "dose_inf",
        _scenario("regimen:\n  ivig:\n    dose_g_per_kg: .inf\n"),
        "dose_inf.yaml:5:",
        "regimen.ivig.dose_g_per_kg",
        "must be a finite number, got inf",
    ),
    _file_case(
        "patients_fraction",
        _scenario("patients: 10.5\n"),
        "patients_fraction.yaml:3:",
        "patients",
        "whole number",
        "10.5",
    ),
    _file_case(
        "patients_text",
        _scenario('patients: "10"\n'),
        "patients_text.yaml:3:",
        "patients",
        "not text",
        "'10'",
    ),
    _file_case(
        "age_mean_outside_bounds",
        _scenario(
            "population:\n  age_years: {dist: normal, mean: 500, sd: 1, low: 0, high: 120}\n"
        ),
        "age_mean_outside_bounds.yaml:4:",
        "population.age_years",
        "[0, 120]",
        "hold only",
        "1e-06",
    ),
    _file_case(
        "lognormal_extreme_truncation",
        b"name: s\npopulation:\n  cpk_u_per_l: {dist: lognormal, median: 100, cv: 0.01,"
        b" low: 1000000}\n",
        "lognormal_extreme_truncation.yaml:3:",
        "population.cpk_u_per_l",
        "hold only",
    ),
    _file_case(
        "taper_floor_above_lightest_induction",
        _scenario(
            "population:\n"
            "  weight_kg_female: {dist: normal, mean: 68, sd: 13, low: 40}\n"
            "  weight_kg_male: {dist: normal, mean: 82, sd: 14, low: 50}\n"
            "regimen:\n  taper:\n    floor_mg_per_day: 45\n"
            "    steps: [{above_mg_per_day: 45, reduce_mg_per_day: 5,"
            " every_days: 7}]\n"
        ),
        "regimen.taper.floor_mg_per_day",
        "45 mg/day",
        "smallest induction dose, 40",
    ),
    Case(
        "set_under_null_block",
        ("compare", "{first_line}", "{steroid_only}", "--set", "regimen.ivig.dose_g_per_kg=1"),
        (
            "steroid_only.yaml",
            "regimen.ivig is null (off)",
            "--set 'regimen.ivig={dose_g_per_kg: 1}'",
        ),
    ),
    Case(
        "cli_patients_above_limit",
        ("{first_line}", "--patients", str(10**12)),
        ("--patients", "100,000,000", str(10**12)),
    ),
    Case(
        "cli_seed_above_limit",
        ("{first_line}", "--seed", str(2**70)),
        ("--seed", "2^63", str(2**70)),
    ),
    Case("cli_seed_negative", ("{first_line}", "--seed=-1"), ("--seed", "got -1")),
    # 2. files read are bounded and private
    _file_case(
        "extends_etc_passwd",
        b"extends: /etc/passwd\n",
        "/etc/passwd",
        "not a scenario (a mapping of keys)",
        absent=("root:", "/bin/"),
    ),
    _file_case(
        "extends_relative_escape",
        b"extends: " + b"../" * 40 + b"etc/passwd\n",
        "not a scenario (a mapping of keys)",
        absent=("root:", "/bin/"),
    ),
    Case(
        "extends_a_mapping_of_secrets",
        ("child.yaml", "--quiet"),
        ("secrets.yaml:1:", "unknown key 'password'"),
        {"child.yaml": b"extends: secrets.yaml\n", "secrets.yaml": b"password: hunter2\n"},
        absent=("hunter2",),
    ),
    _file_case(
        "extends_dev_zero",
        b"extends: /dev/zero\n",
        "extends_dev_zero.yaml:1:",
        "extends",
        "'/dev/zero'",
        "a character device",
    ),
    _file_case(
        "two_megabytes",
        b"# padding\n" * 200_000,
        "two_megabytes.yaml",
        "2,000,000 bytes",
        "1,048,576",
    ),
    Case("scenario_is_a_device", ("/dev/zero",), ("/dev/zero", "regular file", "character device")),
    _sweep_case(
        "sweep_base_etc_passwd",
        b"name: s\nbase: /etc/passwd\npatients: 10\noutcomes: [ivig_g]\ndesign:\n"
        b"  type: one_way\n  parameters:\n"
        b"    regimen.ivig.dose_g_per_kg: {low: 1, high: 2}\n",
        "/etc/passwd",
        "not a scenario (a mapping of keys)",
    ),
    # 3. failures that were tracebacks
    _sweep_case(
        "psa_not_positive_definite",
        _sweep(
            "  type: psa\n  draws: 4\n  parameters:\n"
            "    regimen.ivig.dose_g_per_kg: {dist: uniform, low: 1, high: 2}\n"
            "    regimen.ivig.cycles: {dist: uniform, low: 3, high: 6}\n"
            "    regimen.steroid.cap_mg_per_day: {dist: uniform, low: 60, high: 80}\n"
            "  correlation: [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]\n"
        ),
        "psa_not_positive_definite.yaml",
        "design.correlation",
        "not positive definite",
        "A nearby valid matrix",
        "[[1, 0.49, -0.49], [0.49, 1, 0.49], [-0.49, 0.49, 1]]",
    ),
    _sweep_case(
        "psa_singular",
        _sweep(
            "  type: psa\n  draws: 4\n  parameters:\n"
            "    regimen.ivig.dose_g_per_kg: {dist: uniform, low: 1, high: 2}\n"
            "    regimen.steroid.cap_mg_per_day: {dist: uniform, low: 60, high: 80}\n"
            "  correlation: [[1, 1], [1, 1]]\n"
        ),
        "design.correlation",
        "singular",
        "[[1, 0.99], [0.99, 1]]",
    ),
    _sweep_case(
        "psa_infeasible_truncation",
        _sweep(
            "  type: psa\n  draws: 4\n  parameters:\n"
            "    regimen.ivig.dose_g_per_kg: {dist: normal, mean: 50, sd: 1, low: 0.5,"
            " high: 4}\n"
        ),
        "design.parameters",
        "regimen.ivig.dose_g_per_kg",
        "hold only",
    ),
    _sweep_case(
        "grid_too_big",
        _sweep(
            "  type: grid\n  parameters:\n"
            f"    regimen.ivig.dose_g_per_kg: {[1 + i / 100 for i in range(100)]}\n"
            f"    regimen.ivig.cycles: {list(range(1, 61))}\n"
            f"    regimen.steroid.cap_mg_per_day: {list(range(40, 81))}\n"
        ),
        "grid_too_big.yaml",
        "246,000 points",
        "--yes",
    ),
    _sweep_case(
        "sweep_patients_above_limit",
        _sweep(
            "  type: one_way\n  parameters:\n    regimen.ivig.dose_g_per_kg: {low: 1, high: 2}\n",
            patients=10**9,
        ),
        "patients",
        "100000000",
        "1000000000",
    ),
]


def _run(case: Case, workdir: Path) -> subprocess.CompletedProcess[str]:
    for name, data in case.files.items():
        (workdir / name).write_bytes(data)
    args = [
        a.replace("{first_line}", str(FIRST_LINE)).replace("{steroid_only}", str(STEROID_ONLY))
        for a in case.args
    ]
    return simulate(*args, "--out", workdir / "out", cwd=workdir)


@pytest.fixture(scope="module")
def strict_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    workdirs = [tmp_path_factory.mktemp(case.id) for case in CASES]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        procs = list(pool.map(_run, CASES, workdirs))
    return {c.id: (p, w) for c, p, w in zip(CASES, procs, workdirs, strict=True)}


@pytest.mark.parametrize("strict_case", CASES, ids=[c.id for c in CASES])
def test_strict_input_exits_2_naming_path_and_value_and_writes_nothing(
    strict_case: Case, strict_runs: dict[str, tuple[subprocess.CompletedProcess[str], Path]]
) -> None:
    proc, workdir = strict_runs[strict_case.id]
    message = assert_rejected(proc)
    for fragment in strict_case.expect:
        assert fragment in message, f"{fragment!r} not in the message: {message!r}"
    for fragment in strict_case.absent:
        assert fragment not in message, f"{fragment!r} in the message: {message!r}"
    if "/etc/passwd" in str(strict_case.files):
        assert "root:" not in proc.stderr and "/bin/" not in proc.stderr
    assert not (workdir / "out").exists() and leftovers(workdir / "out") == []
    assert listing(workdir) == sorted(strict_case.files)


# --------------------------------------------------------------------------------------
# Files that could block or flood
# --------------------------------------------------------------------------------------


_quick = functools.partial(simulate, timeout=PROMPT_S)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_as_scenario_or_in_extends_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "child.yaml").write_text("extends: pipe.yaml\n")
    proc = _quick("pipe.yaml", "--out", "out", cwd=tmp_path)
    message = assert_rejected(proc)
    assert "pipe.yaml" in message and "named pipe (FIFO)" in message
    proc = _quick("child.yaml", "--out", "out", cwd=tmp_path)
    message = assert_rejected(proc)
    assert "child.yaml:1:" in message and "extends" in message and "FIFO" in message
    (tmp_path / "sweep.yaml").write_text(
        "base: pipe.yaml\npatients: 10\noutcomes: [ivig_g]\ndesign:\n  type: one_way\n"
        "  parameters:\n    regimen.ivig.dose_g_per_kg: {low: 1, high: 2}\n"
    )
    proc = _quick("sweep", "sweep.yaml", "--out", "out", cwd=tmp_path)
    message = assert_rejected(proc)
    assert "pipe.yaml" in message and "named pipe (FIFO)" in message
    assert not (tmp_path / "out").exists()


def test_a_file_of_200000_unknown_keys_is_answered_with_a_capped_list(tmp_path: Path) -> None:
    first, rest = string.ascii_letters, string.ascii_letters + string.digits + "_"
    booleans = {"yes", "Yes", "YES", "off", "Off", "OFF"}  # YAML 1.1 reads these as bools
    keys = [k for k in (a + b + c for a in first for b in rest for c in rest) if k not in booleans][
        :200_000
    ]
    (tmp_path / "many.yaml").write_text("".join(f"{k}:\n" for k in keys))  # 1,000,000 bytes
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "many.yaml", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    message = assert_rejected(proc)
    lines = message.splitlines()
    assert lines[0].endswith(
        "many.yaml: 200,000 problems in the scenario (the first 20 are listed):"
    )
    assert len(lines) == 22 and lines[-1] == "  - and 199,980 more problems"
    assert "unknown key 'aaa'" in lines[1]


def test_a_file_outside_the_folder_is_read_with_a_warning_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(f"extends: {FIRST_LINE}\npatients: -1\n")
    proc = _quick("a.yaml", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2
    warning, error = proc.stderr.splitlines()
    assert warning.startswith("WARNING: a.yaml: extends reads ")
    assert str(FIRST_LINE.resolve()) in warning
    assert error.startswith("error: a.yaml:2: patients")


# --------------------------------------------------------------------------------------
# Long or unicode names; warnings stay quiet
# --------------------------------------------------------------------------------------


def test_a_long_unicode_name_runs_quietly_with_nothing_on_stderr(tmp_path: Path) -> None:
    name = "日本語 $x^2$ 🙂 " + "x" * 100_000
    (tmp_path / "u.yaml").write_text(f'extends: {FIRST_LINE}\nname: "{name}"\n', encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "u.yaml",
            "--patients",
            "20",
            "--out",
            "out",
            "--quiet",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert (tmp_path / "out" / "cpk.png").stat().st_size > 0


def test_figure_labels_are_short_drawable_and_free_of_mathtext() -> None:
    from simulator.report.figures import MAX_LABEL, label

    text = label("日本語 $x$ " + "y" * 500)
    assert len(text) <= MAX_LABEL + 2  # two "\\$" escapes
    assert text.endswith("\u2026") and r"\$x\$" in text
    assert "日" not in text or "?" not in text  # drawn if a CJK font is installed, else "?"


# --------------------------------------------------------------------------------------
# API: the same limits as the YAML and the CLI
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first_line():
    from simulator.scenario import load_scenario

    return load_scenario(FIRST_LINE)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"seed": 2**70}, "seed must be in [0, 2^63 - 1], got 1180591620717411303424"),
        ({"seed": -1}, "seed must be in [0, 2^63 - 1], got -1"),
        ({"seed": 1.5}, "seed must be a whole number, got 1.5"),
        ({"seed": True}, "seed must be a whole number, got True"),
        ({"patients": 10.5}, "patients must be a whole number, got 10.5"),
        ({"patients": 0}, "patients must be in [1, 100,000,000], got 0"),
        ({"patients": 10**9}, "patients must be in [1, 100,000,000], got 1000000000"),
        ({"patients": "10"}, "patients must be a whole number, got '10'"),
    ],
)
def test_run_and_compare_refuse_bad_seeds_and_patients_with_input_error(
    first_line, kwargs, expected
) -> None:
    from simulator.comparison import compare
    from simulator.runner import run

    with pytest.raises(InputError) as err:
        run(first_line, **kwargs)
    assert str(err.value) == expected
    with pytest.raises(InputError) as err:
        compare([first_line, first_line], **kwargs)
    assert str(err.value) == expected


def test_numpy_integer_seeds_are_accepted(first_line) -> None:
    import numpy as np

    from simulator.runner import run

    assert (
        run(
            first_line, patients=np.int64(3), seed=np.uint64(7), engine="cohort", progress=False
        ).seed
        == 7
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"patients": True}, "patients: must be a whole number, not a boolean (got True)"),
        ({"seed": 2**63}, "seed: Input should be less than 9223372036854775808"),
        ({"population": {"female": True}}, "population.female: must be a number, not a boolean"),
        (
            {"economics": {"discount_rate_per_year": float("nan")}},
            "economics.discount_rate_per_year: must be a finite number, got nan",
        ),
        (
            {"regimen": {"ivig": {"cycles": 2.5}}},
            "regimen.ivig.cycles: must be a whole number, got 2.5",
        ),
    ],
)
def test_scenarios_from_python_are_as_strict_as_yaml(data, expected) -> None:
    from simulator.scenario import scenario_from_dict

    with pytest.raises(InputError) as err:
        scenario_from_dict(data)
    assert expected in str(err.value)


def test_a_sweep_parameter_skips_a_strategy_whose_block_is_null(tmp_path: Path) -> None:
    from simulator.sweeps import plan_sweep

    (tmp_path / "s.yaml").write_text(
        f"strategies:\n  a: {FIRST_LINE}\n  b: {STEROID_ONLY}\npatients: 10\n"
        "outcomes: [ivig_g]\ndesign:\n  type: one_way\n  parameters:\n"
        "    regimen.ivig.dose_g_per_kg: {low: 1, high: 2}\n"
    )
    plan = plan_sweep(tmp_path / "s.yaml")
    assert plan.applies == {"regimen.ivig.dose_g_per_kg": [0]}  # never builds IVIG in b


def test_a_big_sweep_runs_with_yes(tmp_path: Path) -> None:
    from simulator.sweeps import plan_sweep

    (tmp_path / "s.yaml").write_text(
        f"base: {FIRST_LINE}\npatients: 10\noutcomes: [ivig_g]\ndesign:\n"
        "  type: grid\n  parameters:\n"
        f"    regimen.ivig.dose_g_per_kg: {[1 + i / 1000 for i in range(1001)]}\n"
        "    regimen.ivig.cycles: [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]\n"
    )
    with pytest.raises(InputError, match="10,010 points"):
        plan_sweep(tmp_path / "s.yaml")
    assert len(plan_sweep(tmp_path / "s.yaml", yes=True).points) == 10_010


def test_reading_never_blocks_on_a_fifo_swapped_in_after_the_check(tmp_path: Path) -> None:
    """O_NONBLOCK: even a FIFO with no writer does not hang the reader."""
    from simulator.scenario.load import read_yaml

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs")
    os.mkfifo(tmp_path / "p.yaml")
    result: list[BaseException] = []

    def read() -> None:
        try:
            read_yaml(tmp_path / "p.yaml")
        except InputError as err:
            result.append(err)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(PROMPT_S)
    assert not t.is_alive() and "named pipe" in str(result[0])


def test_memory_error_while_reading_is_exit_2_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import simulator.scenario as scenario_module
    from simulator.cli import main

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(scenario_module, "load_scenario", exhausted)
    assert main([str(FIRST_LINE), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory") and "Traceback" not in err
    assert not (tmp_path / "out").exists()
