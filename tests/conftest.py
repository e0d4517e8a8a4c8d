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


def scenario_files() -> list[Path]:
    return sorted(p for p in SCENARIOS.rglob("*.yaml") if "sweeps" not in p.parts)
