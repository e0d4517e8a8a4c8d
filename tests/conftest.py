from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture
def first_line():
    from simulator.scenario import load_scenario

    return load_scenario(SCENARIOS / "first_line.yaml")


def scenario_files() -> list[Path]:
    return sorted(p for p in SCENARIOS.rglob("*.yaml") if "sweeps" not in p.parts)
