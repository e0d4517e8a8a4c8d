from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture
def first_line():
    from simulator.scenario import load_scenario

    return load_scenario(SCENARIOS / "first_line.yaml")


# Mortality off: no background or disease deaths, no fatal adverse events. For tests of
# the disease and treatment mechanics, where a death ending follow-up early would hide
# what they check (tests/test_mortality.py tests deaths themselves).
NO_DEATHS = [
    "disease.mortality.life_table=null",
    "disease.mortality.excess_per_year=0",
    "safety.steroid.serious_infection.case_fatality=0",
    "safety.ivig.thromboembolism.case_fatality=0",
]


def load_script(name: str, folder: str = "scripts"):
    """<folder>/<name>.py as a module (scripts/ and benchmarks/ are not packages), with
    the folder on the import path while it loads, for the scripts that import each
    other."""
    import importlib.util
    import sys

    where = ROOT / folder
    sys.path.insert(0, str(where))
    try:
        spec = importlib.util.spec_from_file_location(name, where / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(where))
    return module


def scenario_files() -> list[Path]:
    return sorted(p for p in SCENARIOS.rglob("*.yaml") if "sweeps" not in p.parts)


def leaves(data, types=(float,), path=""):
    """(dotted path as ``--set`` takes it, value) of every value of exactly one of
    ``types`` in a scenario's dump (dicts and lists walked)."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from leaves(v, types, f"{path}.{k}" if path else k)
    elif isinstance(data, list):
        for j, v in enumerate(data):
            yield from leaves(v, types, f"{path}[{j}]")
    elif type(data) in types:
        yield path, data
