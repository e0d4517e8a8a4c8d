"""Scenario inputs that used to be accepted silently or reported confusingly (a user
audit of bad input): each is one error naming the file, the YAML path and the value."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import SCENARIOS
from test_cli import simulate


def _simulate(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "s.yaml").write_text(
        f"extends: {SCENARIOS / 'first_line.yaml'}\npatients: 20\n{body}"
    )
    return simulate("s.yaml", "--out", "out", "--quiet", cwd=tmp_path, timeout=120)


def _one_error(done: subprocess.CompletedProcess[str], tmp_path: Path) -> str:
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if not ln.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("error: s.yaml:"), done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # nothing written
    return lines[0]


def test_a_misspelt_adverse_event_is_not_added_as_a_new_one(tmp_path: Path) -> None:
    line = _one_error(
        _simulate(tmp_path, "safety:\n  ivig:\n    thrombembolism: {p_per_cycle: 0.1}\n"),
        tmp_path,
    )
    assert "safety.ivig.thrombembolism" in line and "did you mean 'thromboembolism'" in line


def test_a_new_adverse_event_with_a_name_of_its_own_is_still_accepted(tmp_path: Path) -> None:
    done = _simulate(
        tmp_path,
        "safety:\n  ivig:\n    rash: {p_per_cycle: 0.05}\n",
    )
    assert done.returncode == 0, done.stderr


def test_rescue_first_without_a_mix_of_patients_is_refused(tmp_path: Path) -> None:
    line = _one_error(
        _simulate(
            tmp_path,
            "center:\n  chairs: 2\n  arrivals: {cohort: 5}\n  policy: {priority: rescue_first}\n",
        ),
        tmp_path,
    )
    assert "center.policy.priority" in line and "rescue_first" in line
    assert "first_line_share" in line


@pytest.mark.parametrize(
    ("table", "expect"),
    [
        ("{male_mx: [0.1, -0.2], female_mx: [0.1]}", "male_mx holds -0.2"),
        ("{male_mx: [], female_mx: [0.1]}", "life_table.male_mx"),
    ],
)
def test_an_inline_life_table_reports_only_its_own_problem(
    tmp_path: Path, table: str, expect: str
) -> None:
    """A mapping is an inline table: no extra "should be a valid string" (the name form)."""
    line = _one_error(
        _simulate(tmp_path, f"disease:\n  mortality:\n    life_table: {table}\n"), tmp_path
    )
    assert expect in line and "valid string" not in line
