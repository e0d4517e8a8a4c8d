"""Jobs: one experiment into one output folder, atomically.

Each job runs an experiment through the runner (a run, a comparison, a sweep) and hands
the finished result to the writers of ``report/``, inside a folder the simulator owns
(``report.atomic.output_folder``): everything is written into a temporary folder that
replaces the target in one swap only when complete. Patient-level files stream chunk by
chunk (memory stays flat). ``report/`` itself only renders results it is given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .comparison import ComparisonResult, compare
from .parallel import pool_session
from .report.atomic import listed, output_folder
from .report.comparison import write_comparison
from .report.outputs import write_outputs
from .report.sweep_report import write_sweep
from .report.tables import EventCSV, PatientCSV
from .runner import RunResult, run
from .scenario import Scenario
from .store import partial_dir, remove_partial
from .sweeps import SweepPlan, SweepResult, run_sweep, session_workers

log = logging.getLogger(__name__)

__all__ = [
    "calibrate_to_folder",
    "compare_to_folder",
    "run_to_folder",
    "sweep_to_folder",
    "validate_to_folder",
]


def run_to_folder(
    scn: Scenario,
    out: str | os.PathLike[str],
    *,
    events: bool = False,
    patient_rows: bool = True,
    inputs: Sequence[str | os.PathLike[str]] = (),
    label: str = "output folder",
    **run_kwargs: Any,
) -> RunResult:
    """Run ``scn`` and write its complete output folder atomically.

    ``patient_rows=False`` writes no patients.csv: only aggregates are kept, so memory
    stays flat however many patients run. ``out`` must be new, empty or an earlier
    output of the simulator holding nothing else (else InputError); ``inputs`` are
    files whose folders are never replaced (see ``atomic.check_output``).
    """
    from .runner import _plan_for

    plan = _plan_for(scn)
    with (
        output_folder(out, kind="run", inputs=inputs, label=label) as folder,
        folder.writing() as tmp,
    ):
        patients = PatientCSV(tmp / "patients.csv", plan) if patient_rows else None
        event_csv = EventCSV(tmp / "events.csv", plan) if events else None

        def sink(table: Any, log: Any) -> None:
            if patients is not None:
                patients.write(table)
            if event_csv is not None and log is not None:
                event_csv.write(table, log)

        try:
            result = run(
                scn, events=events, sink=sink if (patient_rows or events) else None, **run_kwargs
            )
        finally:
            if patients is not None:
                patients.close()
            if event_csv is not None:
                event_csv.close()
        write_outputs(result, tmp)
    return result


def compare_to_folder(
    scns: list[Scenario],
    out: str | os.PathLike[str],
    *,
    inputs: Sequence[str | os.PathLike[str]] = (),
    label: str = "output folder",
    **kwargs: Any,
) -> ComparisonResult:
    """Compare and write every output file, atomically, into a folder the simulator
    owns (see ``atomic.output_folder``)."""
    with (
        output_folder(out, kind="compare", inputs=inputs, label=label) as folder,
        folder.writing() as tmp,
    ):
        result = compare(scns, **kwargs)
        write_comparison(result, tmp)
    return result


def _remove_checkpoint(out: Path) -> None:
    """Once the outputs are in place, the checkpoint of the job is no longer needed;
    what the simulator did not write in it is left, with a warning."""
    left = remove_partial(partial_dir(out))
    if left:
        log.warning(
            "%s: left in place, the simulator did not write %s",
            partial_dir(out),
            listed(left),
        )


def sweep_to_folder(
    plan: SweepPlan,
    out: str | os.PathLike[str],
    *,
    label: str = "output folder",
    **kwargs: Any,
) -> SweepResult:
    """Run (or resume) a sweep, then write its output folder atomically.

    The output folder (and its ``.partial`` checkpoint) stays locked for the whole run;
    the same ownership rules as a run apply (``atomic.output_folder``), and neither the
    sweep file's folder nor its scenarios' folders are ever replaced.
    """
    out = Path(out)
    here = plan.source.parent
    inputs = [
        plan.source,
        *[
            here / f
            for f in (
                (plan.spec.base,) if plan.spec.base else (plan.spec.strategies or {}).values()
            )
        ],
    ]
    # one pool of workers for the points, the analysis and the figures
    workers = session_workers(kwargs.get("workers", 1), kwargs.get("dask"), kwargs.get("evaluator"))
    with (
        output_folder(out, kind="sweep", inputs=inputs, label=label) as folder,
        pool_session(workers),
    ):
        result = run_sweep(plan, out, **kwargs)
        with folder.writing(checkpoint=plan.fingerprint()) as tmp:
            write_sweep(result, tmp)
        _remove_checkpoint(out)
    return result


def validate_to_folder(
    studies: Sequence[Any],
    out: str | os.PathLike[str],
    *,
    inputs: Sequence[str | os.PathLike[str]] = (),
    label: str = "output folder",
    patients: int | None = None,
    seed: int | None = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Simulate every study (``studies.load_study``) and write the validation table,
    figure and report, atomically."""
    from tqdm import tqdm

    from .report.validation import write_validation
    from .studies import evaluate

    with (
        output_folder(out, kind="validate", inputs=inputs, label=label) as folder,
        folder.writing() as tmp,
    ):
        results = []
        bar = tqdm(studies, unit="study", disable=not progress, leave=False, desc="validate")
        for study in bar:
            bar.set_postfix_str(study.name)
            results += evaluate(study, patients=patients, seed=seed, progress=False, **kwargs)
        bar.close()
        write_validation(results, tmp, seed)
    return results


def calibrate_to_folder(
    plan: Any,
    out: str | os.PathLike[str],
    *,
    label: str = "output folder",
    **kwargs: Any,
) -> Any:
    """Fit (or resume fitting) a calibration plan, then write its output folder
    atomically; the finished evaluations stay in ``<out>.partial`` until then."""
    from .calibrate import calibrate
    from .report.calibration import write_calibration

    out = Path(out)
    inputs = [
        plan.path,
        *[s.path for s in plan.studies],
        *[f for s in plan.studies for f in s.arm_files],
    ]
    with output_folder(out, kind="calibrate", inputs=inputs, label=label) as folder:
        result = calibrate(plan, out, **kwargs)
        with folder.writing(checkpoint=plan.fingerprint()) as tmp:
            write_calibration(result, tmp)
        _remove_checkpoint(out)
    return result
