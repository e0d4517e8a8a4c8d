"""Golden summaries: the shipped scenarios, a comparison and a sweep give the results
recorded in tests/golden/ (see tests/golden_cases.py; refresh only deliberately with
``python scripts/refresh_golden.py``).

Same bytes are expected on the platform that wrote the files; another numpy/scipy build may
round a matrix exponential differently in the last bit, so floats are compared to 1e-9
relative, and everything else (counts, days, flags, structure) exactly."""

from __future__ import annotations

import difflib
import json
import math

import pytest
from golden_cases import GOLDEN, cases, dumps

CASES = cases()


def _close(a, b, path="$"):
    """The first difference between two JSON values, or None."""
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return f"{path}: {a!r} != {b!r}"
        if math.isnan(a) and math.isnan(b):
            return None
        return (
            None if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else f"{path}: {a!r} != {b!r}"
        )
    if isinstance(a, dict) and isinstance(b, dict):
        if sorted(a) != sorted(b):
            return f"{path}: keys {sorted(set(a) ^ set(b))} differ"
        for k in a:
            if (d := _close(a[k], b[k], f"{path}.{k}")) is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if (d := _close(x, y, f"{path}[{i}]")) is not None:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def test_every_golden_file_has_a_case():
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(CASES)


def test_the_comparison_of_golden_values_finds_differences():
    assert _close({"a": [1, 2.0]}, {"a": [1, 2.0 + 1e-13]}) is None
    assert _close({"a": [1, 2.0]}, {"a": [1, 2.0 + 1e-6]}) == "$.a[1]: 2.0 != 2.000001"
    assert _close({"a": 1}, {"a": 2}) is not None and _close([1], [1, 2]) is not None


@pytest.mark.parametrize("name", sorted(CASES))
def test_results_match_the_golden_summary(name, tmp_path):
    expected = (GOLDEN / f"{name}.json").read_text()
    got = dumps(CASES[name](tmp_path))
    if got == expected:
        return
    first = _close(json.loads(expected), json.loads(got))
    if first is None:
        return  # the last bits of some floats differ: another numpy/scipy build
    diff = "".join(
        list(
            difflib.unified_diff(expected.splitlines(True), got.splitlines(True), "golden", "now")
        )[:60]
    )
    pytest.fail(
        f"{name} changed at {first}; if the change is deliberate, run "
        f"scripts/refresh_golden.py and commit the diff:\n{diff}"
    )
