"""A run's output folder: summary.json, patients.csv, events.csv, figures.

``run_to_folder`` runs a scenario and writes everything into a temporary folder that is
swapped into place only when complete, into a folder the simulator owns
(``atomic.output_folder``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runner import RunResult, run
from ..scenario import Scenario
from . import figures
from .atomic import output_folder, write_json
from .tables import EventCSV, PatientCSV

__all__ = ["OUTPUT_FILES", "run_to_folder", "write_outputs"]

OUTPUT_FILES = ("summary.json", "patients.csv", "cpk.png", "time_to_normal.png",
                "myoglobin.png", "prednisone.png")


def write_outputs(result: RunResult, folder: str | os.PathLike[str]) -> None:
    """summary.json and the figures of a finished run, into an existing folder."""
    folder = Path(folder)
    data = result.summary_json()
    write_json(folder / "summary.json", data)
    name = result.scenario.name
    plan = result.plan
    figures.enzyme_bands([(name, data["cpk_by_month"])], plan.cpk_uln, "CPK (U/L)",
                         folder / "cpk.png", f"CPK by month: {name}")
    figures.enzyme_bands([(name, data["myoglobin_by_month"])], plan.myoglobin_uln,
                         "myoglobin (ng/mL)", folder / "myoglobin.png",
                         f"Myoglobin by month: {name}")
    figures.km_curves([(name, data["kaplan_meier"]["time_to_cpk_normal_days"])],
                      folder / "time_to_normal.png",
                      f"Time to CPK normalisation (Kaplan-Meier): {name}",
                      "proportion with CPK < ULN at a visit", plan.horizon_days)
    figures.prednisone_lines([(name, data["prednisone_by_month"])], folder / "prednisone.png",
                             f"Prednisone dose: {name}")


def run_to_folder(scn: Scenario, out: str | os.PathLike[str], *, events: bool = False,
                  patient_rows: bool = True, force: bool = False,
                  inputs: Sequence[str | os.PathLike[str]] = (), label: str = "output folder",
                  **run_kwargs: Any) -> RunResult:
    """Run ``scn`` and write its complete output folder atomically.

    ``patient_rows=False`` writes no patients.csv: only aggregates are kept, so memory
    stays flat however many patients run. ``out`` must be new, empty or an earlier
    output of the simulator (else InputError), unless ``force``; ``inputs`` are files
    whose folders are never replaced (see ``atomic.check_output``).
    """
    from ..runner import _plan_for

    plan = _plan_for(scn)
    with output_folder(out, kind="run", force=force, inputs=inputs, label=label) as folder, \
            folder.writing() as tmp:
        patients = PatientCSV(tmp / "patients.csv", plan) if patient_rows else None
        event_csv = EventCSV(tmp / "events.csv", plan) if events else None

        def sink(table: Any, log: Any) -> None:
            if patients is not None:
                patients.write(table)
            if event_csv is not None and log is not None:
                event_csv.write(table, log)

        try:
            result = run(scn, events=events,
                         sink=sink if (patient_rows or events) else None, **run_kwargs)
        finally:
            if patients is not None:
                patients.close()
            if event_csv is not None:
                event_csv.close()
        write_outputs(result, tmp)
    return result
