"""The calibration targets of the clinical model (docs/model.md §6) and how to simulate them.

Each target is a metric of a study emulation with a published value and its 95% interval
(Wilson from the counts where counts are published), read from the study files in
studies/ (``simulator/studies.py``): the targets tagged ``calibration``, and only these,
informed the fitted defaults (``scenario.disease.FITTED``; ``simulate calibrate
calibration/default.yaml`` redoes the fit, ``simulate validate studies/*.yaml`` prints the
table). Targets tagged ``validation`` were not fitted to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .stats import wilson_ci

__all__ = ["SCENARIOS", "TARGETS", "VALIDATION", "Target", "simulate"]

_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    source: str
    scenario: str
    metric: str
    value: float
    low: float
    high: float

    @classmethod
    def counts(cls, source: str, scenario: str, metric: str, k: int, n: int) -> Target:
        lo, hi = wilson_ci(k, n)
        return cls(source, scenario, metric, k / n, lo, hi)


STUDIES = _ROOT / "studies"


def _from_studies() -> tuple[tuple[Target, ...], tuple[Target, ...], dict[str, Path]]:
    """Every single-arm target of the shipped study files (studies/*.yaml), split by role,
    and the scenario files they run (named by file stem)."""
    from .scenario.load import read_scenario, validate
    from .scenario.study_schema import StudyFile
    from .studies import published_interval

    fit: list[Target] = []
    check: list[Target] = []
    scenarios: dict[str, Path] = {}
    for path in sorted(STUDIES.glob("*.yaml")):
        data, linemap = read_scenario(path, what="study file")
        spec = validate(data, StudyFile, linemap, str(path))
        for t in spec.targets:
            if t.difference is not None:
                continue  # differences between arms: simulate validate reports them
            arm_file = (path.parent / spec.arms[t.arm or next(iter(spec.arms))]).resolve()
            scenarios[arm_file.stem] = arm_file
            value, low, high = published_interval(t.published)
            target = Target(
                f"{spec.study}: {t.label or t.metric}", arm_file.stem, t.metric, value, low, high
            )
            (fit if (t.role or spec.role) == "calibration" else check).append(target)
    return tuple(fit), tuple(check), scenarios


# The calibration targets (docs/model.md §6) and the published figures the model was NOT
# fitted to (external validation, §7), both from the shipped study files; nothing tunes
# to the validation figures (`simulate validate` prints them next to the targets).
TARGETS, VALIDATION, SCENARIOS = _from_studies()


def simulate(overrides: dict[str, Any], patients: int, seed: int) -> dict[str, Any]:
    """Every target's simulated value (``metric@scenario``) and its Monte Carlo 95% CI
    (``metric@scenario:ci``), on the same patients for any overrides."""
    from .runner import run
    from .scenario import load_scenario

    sets = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    out: dict[str, Any] = {}
    for name, path in SCENARIOS.items():
        scn = load_scenario(path, sets)
        metrics = run(
            scn,
            patients=patients,
            seed=seed,
            engine="cohort",
            progress=False,
            check_invariants=False,
        ).metrics
        for t in TARGETS + VALIDATION:
            if t.scenario == name:
                out[t.metric + "@" + name] = metrics[t.metric]["mean"]
                out[t.metric + "@" + name + ":ci"] = metrics[t.metric]["ci95"]
    return out
