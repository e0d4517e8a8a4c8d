"""The linters the project adopts run with the tests, so CI enforces them: ruff (lint and
format) on the code, and mypy (configured in pyproject.toml) on the kernel and engines."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

PATHS = ["simulator", "tests", "benchmarks", "scripts", "docs"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint_is_clean():
    pytest.importorskip("ruff")
    proc = _run("ruff", "check", "--no-cache", *PATHS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean():
    pytest.importorskip("ruff")
    proc = _run("ruff", "format", "--check", "--no-cache", *PATHS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean_on_the_kernel_and_engines():
    pytest.importorskip("mypy")
    proc = _run("mypy", "--no-incremental", "--cache-dir", "/dev/null")
    assert proc.returncode == 0, proc.stdout + proc.stderr
