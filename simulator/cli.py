"""The ``simulate`` command: the only layer that reads argv, prints and sets exit codes.

    simulate SCENARIO.yaml [options]          run one scenario (same as `simulate run ...`)
    simulate run SCENARIO.yaml [options]
    simulate compare A.yaml B.yaml [...]      (strategies on the same virtual patients)
    simulate sweep SWEEP.yaml [options]       (sensitivity analyses)
    simulate validate STUDY.yaml [...]        (simulated vs published studies)
    simulate calibrate TARGETS.yaml [options] (fit parameters to study targets)

Exit status: 0 success, 2 bad input (one message, no traceback, nothing written),
1 an internal error (a bug: please report it with the traceback), 130 interrupted by
SIGINT (Ctrl-C), 143 by SIGTERM, 129 by SIGHUP.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import InputError

if TYPE_CHECKING:  # the scenario package is imported only once a command runs
    from .scenario import Scenario

__all__ = ["main"]

SUBCOMMANDS = ("run", "compare", "sweep", "validate", "calibrate")
log = logging.getLogger("simulator")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as InputError (exit 2, one message)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _workers(text: str) -> int:
    """--workers: a whole number from 1 to parallel.MAX_WORKERS (also with --dask)."""
    from .parallel import workers_problem

    value = _positive_int(text)
    problem = workers_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def _seed(text: str) -> int:
    from .limits import check_seed

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    try:
        return check_seed(value, "the seed")
    except InputError as err:
        raise argparse.ArgumentTypeError(err.message) from None


def _patients(text: str) -> int:
    from .limits import check_patients

    value = _positive_int(text)
    try:
        return check_patients(value, "the number of patients")
    except InputError as err:
        raise argparse.ArgumentTypeError(err.message) from None


def _units(scn: Scenario, n: int, simulated: int | None = None) -> str:
    """ "1,000 patients", or for a scenario with an infusion center "20 center
    replications (3,612 patients)": ``patients`` then counts centers."""
    if scn.center is None:
        return f"{n} patients"
    more = f" ({simulated:,} patients)" if simulated is not None else ""
    return f"{n} center replication{'s' if n != 1 else ''}{more}"


def _common(p: argparse.ArgumentParser, default_out: str = "results/<scenario file name>/") -> None:
    p.add_argument(
        "--patients",
        type=_patients,
        metavar="N",
        help="number of virtual patients, or of center replications for a scenario with a"
        " center: (default: the scenario's `patients`)",
    )
    p.add_argument(
        "--seed", type=_seed, metavar="S", help="random seed (default: the scenario's `seed`)"
    )
    p.add_argument("--out", metavar="DIR", help=f"output folder (default: {default_out})")
    _force(p)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a scenario value by its dotted path, e.g. "
        "--set regimen.ivig.dose_g_per_kg=1 (repeatable)",
    )
    _params_option(p)
    p.add_argument(
        "--engine",
        choices=("auto", "simpy", "cohort"),
        default="auto",
        help="simulation engine (default: auto)",
    )
    _parallel(p)
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        metavar="N",
        help="patients per work unit (results do not depend on it)",
    )
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bar and no table on stdout"
    )


def _params_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params",
        metavar="FILE.yaml",
        help="apply a parameter overlay (dotted path: value per line, e.g. the "
        "calibrated.yaml of `simulate calibrate`) before any --set",
    )


def _overrides_of(args: argparse.Namespace) -> list[str]:
    """--params FILE (as --set PATH=VALUE, in file order), then the --set values."""
    sets: list[str] = []
    if getattr(args, "params", None):
        sets += read_params(args.params)
    return sets + list(args.overrides)


def read_params(path: str) -> list[str]:
    """A parameter overlay file: a flat mapping of dotted path -> value, as overrides
    that keep their file and line (so messages name them, not --set). Read as scenario
    files are: size and alias limits, duplicate keys, UTF-8, no FIFO (InputError)."""
    from .scenario.load import read_params as read

    return list(read(path))


def _force(p: argparse.ArgumentParser) -> None:
    # withdrawn: it replaced a folder holding files the simulator did not write, deleting
    # them; still parsed so that a script using it gets the reason, not "unrecognized"
    p.add_argument("--force", action="store_true", help=argparse.SUPPRESS)


FORCE_WITHDRAWN = (
    "--force: no longer available: it replaced an output folder holding files the"
    " simulator did not write, deleting them, and the simulator never deletes a file it"
    " did not write. An output folder of the simulator's own is replaced without it;"
    " otherwise choose another --out, or move the other files away (--fresh starts a"
    " sweep or calibration again)"
)


def _parallel(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="worker processes (default: all cores); results do not depend on it",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--dask",
        choices=("local",),
        default=None,
        help="run on a Dask LocalCluster with --workers workers (pip install '.[dask]')",
    )
    g.add_argument(
        "--dask-scheduler",
        metavar="tcp://HOST:PORT",
        default=None,
        help="send the work to a running Dask scheduler",
    )


def _dask_of(args: argparse.Namespace) -> str | None:
    return args.dask or args.dask_scheduler


def _workers_of(args: argparse.Namespace) -> int:
    from .parallel import default_workers

    return args.workers or default_workers()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="simulate",
        description="Monte Carlo simulator of steroid, IVIG and steroid-sparing strategies in "
        "acute polymyositis/dermatomyositis. `simulate SCENARIO.yaml` runs one "
        "scenario.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="{run,compare,sweep,validate,calibrate}", parser_class=_Parser
    )
    run_p = sub.add_parser(
        "run",
        help="run one scenario (the default command)",
        description="Run one scenario and write its results.",
    )
    run_p.add_argument("scenario", metavar="SCENARIO.yaml")
    _common(run_p)
    run_p.add_argument(
        "--events", action="store_true", help="also write events.csv (every event of every patient)"
    )
    run_p.add_argument(
        "--summary-only",
        action="store_true",
        help="no patients.csv: keep only aggregates (flat memory for very large runs)",
    )
    cmp_p = sub.add_parser(
        "compare",
        help="compare strategies on the same virtual patients",
        description="Run every scenario on the same virtual patients (same seed, same "
        "patient ids) and compare each with the first: estimates, paired "
        "differences with 95% CIs, percent better/worse off, costs and QALYs.",
    )
    cmp_p.add_argument("scenarios", nargs="+", metavar="SCENARIO.yaml")
    _common(cmp_p, "results/compare_<A>_vs_<B>.../, from the scenario file names")
    cmp_p.add_argument(
        "--allow-different-populations",
        action="store_true",
        help="compare arms that differ in population, disease, seed, horizon, "
        "visits, outcome definitions, currency, discounting or utilities "
        "(refused by default; the report then says they are not the same "
        "patients)",
    )
    sw_p = sub.add_parser(
        "sweep",
        help="sensitivity analysis: one-way, grid, PSA, Sobol', Morris",
        description="Run a sweep file: every point on the same virtual patients. Finished "
        "points are saved as they complete; running the same command again "
        "after an interruption continues where it stopped.",
    )
    sw_p.add_argument("sweep", metavar="SWEEP.yaml")
    sw_p.add_argument(
        "--patients",
        type=_patients,
        metavar="N",
        help="virtual patients (or center replications, for a scenario with a center:) per"
        " point and strategy (default: the sweep file's `patients`)",
    )
    sw_p.add_argument(
        "--draws",
        type=_patients,
        metavar="N",
        help="PSA draws (default: the sweep file's `design.draws`; psa only)",
    )
    sw_p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a value of every strategy's scenario by its dotted "
        "path, e.g. --set economics.cea_horizon=clinical (repeatable)",
    )
    _params_option(sw_p)
    sw_p.add_argument(
        "--out", metavar="DIR", help="output folder (default: results/<sweep file name>/)"
    )
    _force(sw_p)
    _parallel(sw_p)
    sw_p.add_argument(
        "--fresh",
        action="store_true",
        help="discard the saved points of an interrupted run and start again",
    )
    sw_p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")
    sw_p.add_argument(
        "--yes",
        action="store_true",
        help="run a sweep above the size limits (10,000 points or 10^9 patient "
        "simulations) without asking",
    )
    va_p = sub.add_parser(
        "validate",
        help="simulate published studies and compare with their published values",
        description="Run study files (studies/*.yaml: the scenarios emulating a published "
        "study, the outcomes it reports and the published values) and write a validation "
        "table and figure: each target's published value and 95% CI, the simulated value "
        "and its Monte Carlo 95% CI, whether they overlap, and the share of targets that "
        "do, by role (calibration: fitted to; validation: not fitted to).",
    )
    va_p.add_argument("studies", nargs="+", metavar="STUDY.yaml")
    va_p.add_argument(
        "--patients",
        type=_patients,
        metavar="N",
        help="virtual patients per arm (default: each study file's `patients`)",
    )
    va_p.add_argument(
        "--seed",
        type=_seed,
        metavar="N",
        help="random seed (default: each study's, else its scenarios')",
    )
    va_p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a value of every study scenario by its dotted path (repeatable)",
    )
    _params_option(va_p)
    ca_p = sub.add_parser(
        "calibrate",
        help="fit parameters to the calibration targets of study files",
        description="Fit the parameters named in a calibration file (dotted paths with "
        "bounds) to the targets tagged calibration in its study files, on the same virtual "
        "patients at every evaluation. Writes the fitted parameters with intervals, "
        "calibrated.yaml (use it with --params), posterior.csv (a PSA's parameter "
        "distribution), figures and report.html. Finished evaluations are saved as they "
        "complete; the same command continues after an interruption.",
    )
    ca_p.add_argument("calibration", metavar="TARGETS.yaml")
    ca_p.add_argument(
        "--method",
        choices=("optimize", "abc"),
        default=None,
        help="fitting method (default: the file's `method`; optimize: Nelder-Mead with "
        "multiple starts; abc: ABC-SMC with adaptive tolerances, a weighted posterior)",
    )
    ca_p.add_argument(
        "--patients",
        type=_patients,
        metavar="N",
        help="virtual patients per arm and evaluation (default: the file's `patients`)",
    )
    ca_p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a value of every study scenario (repeatable)",
    )
    ca_p.add_argument(
        "--out", metavar="DIR", help="output folder (default: results/<calibration file name>/)"
    )
    _force(ca_p)
    _parallel(ca_p)
    ca_p.add_argument(
        "--fresh",
        action="store_true",
        help="discard the saved evaluations of an interrupted run and start again",
    )
    ca_p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")
    va_p.add_argument("--out", metavar="DIR", help="output folder (default: results/validation/)")
    _force(va_p)
    _parallel(va_p)
    va_p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")
    return parser


def _normalise_argv(argv: Sequence[str]) -> list[str]:
    """`simulate [options] X.yaml [options]` means `simulate run ...`."""
    args = list(argv)
    if not args or args[0] in SUBCOMMANDS or args[0] in ("-h", "--help", "--version"):
        return args
    return ["run", *args]


def _check_out(out: Path, args: argparse.Namespace, inputs: Sequence[str]) -> None:
    """Refuse an output folder the simulator may not write (and a bad --dask-scheduler),
    before any work is done."""
    from .parallel import check_dask_address
    from .report.atomic import check_output

    check_dask_address(args.dask_scheduler)
    check_output(out, inputs=_with_params(args, inputs), label="--out")


def _check_engine(scns: Sequence[Any], paths: Sequence[str], engine: str) -> None:
    """Refuse an engine that cannot simulate a scenario (the cohort engine and a
    scenario with an infusion center) as bad input, before any work is done."""
    from .runner import choose_engine

    for scn, path in zip(scns, paths, strict=True):
        try:
            choose_engine(scn, engine)
        except ValueError as err:
            raise InputError(f"--engine {engine}: {err}", file=str(path)) from None


def _out_kwargs(args: argparse.Namespace, inputs: Sequence[str]) -> dict[str, Any]:
    return {"inputs": _with_params(args, inputs), "label": "--out"}


def _with_params(args: argparse.Namespace, inputs: Sequence[str]) -> list[str]:
    """Input files whose folders are never replaced: the --params file too."""
    params = getattr(args, "params", None)
    return [*inputs, params] if params else list(inputs)


def _out_of(args: argparse.Namespace, default: Path) -> Path:
    """The --out folder, or ``default`` when --out is not given; an empty --out (``--out
    ''``, e.g. an unset shell variable) is refused rather than read as the default."""
    if args.out is None:
        return default
    if not args.out.strip():
        raise InputError(
            "--out: empty folder name; give a folder (e.g. --out results/my_run), or leave"
            " out --out for the default folder"
        )
    return Path(args.out)


def _default_out(scenario_path: str) -> Path:
    from .report.atomic import safe_name

    return Path("results") / safe_name(Path(scenario_path).stem, "scenario")


def _fmt(x: Any, unit: str) -> str:
    from .report.tables import format_estimate

    return format_estimate(x, unit)


def format_table(metrics: dict[str, dict[str, Any]]) -> str:
    rows = [("outcome", "estimate", "95% CI")]
    for m in metrics.values():
        lo, hi = m["ci95"]
        rows.append(
            (
                _with_unit(m["label"], m["unit"]),
                _fmt(m["mean"], m["unit"]),
                f"{_fmt(lo, m['unit'])} to {_fmt(hi, m['unit'])}",
            )
        )
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]}" for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace) -> int:
    from .scenario import load_scenario

    scn = load_scenario(args.scenario, _overrides_of(args))
    _check_engine([scn], [args.scenario], args.engine)
    out = _out_of(args, _default_out(args.scenario))
    _check_out(out, args, [args.scenario])
    from .jobs import run_to_folder  # heavy imports only once the input is good

    if args.events and args.summary_only:
        raise InputError("--events and --summary-only exclude each other")
    result = run_to_folder(
        scn,
        out,
        events=args.events,
        patients=args.patients,
        seed=args.seed,
        engine=args.engine,
        workers=_workers_of(args),
        chunk_size=args.chunk_size,
        progress=None if not args.quiet else False,
        dask=_dask_of(args),
        patient_rows=not args.summary_only,
        **_out_kwargs(args, [args.scenario]),
    )
    args.written = out  # the results are in place (see main)
    if not args.quiet:
        print(
            f"{scn.name}: {_units(scn, result.patients, result.summary.n)}, seed {result.seed},"
            f" {result.engine} engine"
        )
        metrics = result.metrics
        print(format_table(metrics))
        from .report.outputs import run_extrapolation_note

        note = run_extrapolation_note(scn, metrics)
        if note:
            print(f"\n{note}")
        print(f"\nresults written to {out}{os.sep}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .scenario import load_scenario

    if len(args.scenarios) < 2:
        raise InputError("simulate compare: give at least two scenario files")
    scns = [load_scenario(path, _overrides_of(args)) for path in args.scenarios]
    _check_engine(scns, args.scenarios, args.engine)
    stems = [Path(p).stem for p in args.scenarios]
    from .report.atomic import safe_name

    out = _out_of(
        args, Path("results") / safe_name("compare_" + "_vs_".join(safe_name(s) for s in stems))
    )
    _check_out(out, args, args.scenarios)
    from .comparison import arm_names, check_same_patients
    from .jobs import compare_to_folder

    names = arm_names(scns, stems)
    check_same_patients(scns, names, args.seed is not None, args.allow_different_populations)
    result = compare_to_folder(
        scns,
        out,
        names=names,
        patients=args.patients,
        seed=args.seed,
        engine=args.engine,
        workers=_workers_of(args),
        chunk_size=args.chunk_size,
        progress=None if not args.quiet else False,
        dask=_dask_of(args),
        allow_different_populations=args.allow_different_populations,
        **_out_kwargs(args, args.scenarios),
    )
    args.written = out  # the results are in place (see main)
    if not args.quiet:
        if result.same_patients:
            print(
                f"{' vs '.join(names)}: {_units(scns[0], result.patients, result.summaries[0].n)}"
                f" each, seed {result.seed}, same patients in every arm"
            )
        else:
            print(
                f"{' vs '.join(names)}: {_units(scns[0], result.patients, result.summaries[0].n)}"
                f" each, seed {result.seed}. WARNING: the arms are NOT the same patients;"
                " they differ in:"
            )
            for line in result.arm_differences:
                print(f"  - {line}")
        print(format_comparison(result.outcomes(), names))
        print()
        print(format_incremental(result.incremental_analysis()))
        print(f"\nresults written to {out}{os.sep} (open report.html)")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweeps import plan_sweep

    plan = plan_sweep(
        args.sweep,
        yes=args.yes,
        patients=args.patients,
        draws=args.draws,
        sets=_overrides_of(args),
    )
    out = _out_of(args, _default_out(args.sweep))
    _check_out(out, args, [args.sweep])
    from .jobs import sweep_to_folder

    if not args.quiet:
        print(
            f"{plan.spec.name}: {plan.spec.design.type} design, {len(plan.points)} points x "
            f"{_units(plan.scenarios[0], plan.spec.patients)} x {len(plan.arms)} strategy(ies)"
        )
    try:
        result = sweep_to_folder(
            plan,
            out,
            workers=_workers_of(args),
            fresh=args.fresh,
            progress=None if not args.quiet else False,
            dask=_dask_of(args),
            label="--out",
        )
    except KeyboardInterrupt as stop:
        return _interrupted_job(stop, out, f"of {len(plan.points)} points", "points")
    args.written = out  # the results are in place (see main)
    if not args.quiet:
        a = result.analysis
        if "psa" in a:
            psa = a["psa"]
            ref = psa["reference_willingness_to_pay"]
            k = psa["willingness_to_pay"].index(ref)
            cur = plan.scenarios[0].economics.currency
            print(
                f"at {ref:,.0f} {cur}/QALY: highest expected NMB {psa['optimal_strategy'][k]}"
                f" (best in {100 * psa['ceaf'][k]:.0f}% of draws); EVPI per patient "
                f"{psa['evpi_at_reference']:,.0f} {cur}"
                + (
                    f", for {psa['population']:,.0f} patients "
                    f"{psa['evpi_population_at_reference']:,.0f} {cur}"
                    if "population" in psa
                    else ""
                )
            )
        print(f"results written to {out}{os.sep} (open report.html)")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .studies import load_studies

    studies = load_studies(args.studies, tuple(_overrides_of(args)))
    out = _out_of(args, Path("results") / "validation")
    inputs = [*args.studies, *[str(f) for s in studies for f in s.arm_files]]
    _check_out(out, args, inputs)
    from .jobs import validate_to_folder

    results = validate_to_folder(
        studies,
        out,
        inputs=inputs,
        label="--out",
        patients=args.patients,
        seed=args.seed,
        workers=_workers_of(args),
        dask=_dask_of(args),
        progress=None if not args.quiet else False,
    )
    args.written = out  # the results are in place (see main)
    if not args.quiet:
        print(format_validation(results))
        print(f"\nresults written to {out}{os.sep} (open report.html)")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import load_calibration

    plan = load_calibration(
        args.calibration, patients=args.patients, sets=args.overrides, method=args.method
    )
    out = _out_of(args, _default_out(args.calibration))
    inputs = [args.calibration, *[str(s.path) for s in plan.studies]]
    _check_out(out, args, inputs)
    from .jobs import calibrate_to_folder

    if not args.quiet:
        print(
            f"{plan.spec.name}: {len(plan.names)} parameters, {len(plan.targets)} targets "
            f"in {len(plan.studies)} studies, {plan.patients:,} patients per arm"
        )
    try:
        result = calibrate_to_folder(
            plan,
            out,
            label="--out",
            workers=_workers_of(args),
            dask=_dask_of(args),
            fresh=args.fresh,
            progress=None if not args.quiet else False,
        )
    except KeyboardInterrupt as stop:
        return _interrupted_job(stop, out, "evaluations", "evaluations")
    args.written = out  # the results are in place (see main)
    if not args.quiet:
        rows = [["parameter", "estimate", "95% interval", "start"]]
        for j, n in enumerate(plan.names):
            ci = result.intervals[j]
            rows.append(
                [
                    n,
                    f"{result.estimate[j]:.4g}",
                    "not identified" if ci is None else f"{ci[0]:.4g} to {ci[1]:.4g}",
                    f"{plan.start[j]:.4g}",
                ]
            )
        print("\n".join(_render(rows)))
        print(f"\nloss {result.loss:.4g} after {len(result.evaluations)} evaluations")
        print(format_validation(result.targets))
        print(
            f"\nresults written to {out}{os.sep} (open report.html; calibrated.yaml "
            "works with --params)"
        )
    return 0


def _shortened(text: str, width: int) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, with an ellipsis
    when cut (the whole label is in validation.csv and report.html)."""
    if len(text) <= width:
        return text
    cut = text[: width - 3].rsplit(" ", 1)[0].rstrip(" ,;(")
    return cut + "..."


def format_validation(results: list[Any]) -> str:
    """The validation table for the terminal (the calibration targets, then the
    validation targets, as in the report), and the share of targets met by role."""
    from .report.validation import by_role

    rows = [["study", "outcome", "arm", "published (95% CI)", "simulated (95% MC CI)", "met"]]
    for r in by_role(results):
        sim = (
            "n/a"
            if r.simulated is None
            else f"{r.simulated:.3g} ({r.simulated_low:.3g} to {r.simulated_high:.3g})"
        )
        rows.append(
            [
                r.study + (" [validation]" if r.role == "validation" else ""),
                _shortened(r.label, 60),
                r.arm,
                f"{r.published:.3g} ({r.published_low:.3g} to {r.published_high:.3g})",
                sim,
                "yes" if r.overlaps else "NO",
            ]
        )
    lines = _render(rows, left=3)
    for role in ("calibration", "validation"):
        sub = [r for r in results if r.role == role]
        if sub:
            met = sum(r.overlaps for r in sub)
            lines.append(f"{role}: {met} of {len(sub)} targets met ({100 * met / len(sub):.0f}%)")
    return "\n".join(lines)


COMPARE_TABLE = (
    "cpk_ratio_month_3",
    "time_to_cpk_normal_days",
    "tis_week_24",
    "tis40_week_24",
    "inactive_month_12",
    "complete_clinical_response",
    "relapse",
    "course_chronic",
    "damage_points",
    "cumulative_prednisone_g",
    "time_to_prednisone_le_5mg_days",
    "ivig_g",
    "rescue_started",
    "died",
    "cost_total",
    "qaly",
    "life_years_lifetime",
    "cost_lifetime",
    "qaly_lifetime",
)


def format_comparison(outcomes: dict[str, dict[str, Any]], names: list[str]) -> str:
    from .report.comparison import row_label
    from .report.tables import format_difference

    header = ["outcome", *names] + [f"{n} - {names[0]} (95% CI)" for n in names[1:]]
    rows = [header]
    from .center_stats import CENTER_HEADLINE

    center = [k for k in CENTER_HEADLINE if k in outcomes]  # a scenario with a center
    for key in (*COMPARE_TABLE, *center):
        o = outcomes[key]
        unit = o["unit"]
        row = [_with_unit(row_label(o), unit)] + [_fmt(o["arms"][n]["mean"], unit) for n in names]
        for n in names[1:]:
            d = o["differences"][n]
            lo, hi = d["ci95"]
            if unit == "proportion":  # percentage points, as in report.html
                lo_s, hi_s = (format_difference(v, unit).removesuffix(" pts") for v in (lo, hi))
                row.append(f"{format_difference(d['mean_difference'], unit)} ({lo_s} to {hi_s})")
            else:
                row.append(
                    f"{_fmt(d['mean_difference'], unit)} ({_fmt(lo, unit)} to {_fmt(hi, unit)})"
                )
        rows.append(row)
    return "\n".join(_render(rows))


def _render(rows: list[list[str]], left: int = 1) -> list[str]:
    """Rows as aligned text lines (the first ``left`` columns left-aligned, the others
    right), a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def _with_unit(label: str, unit: str) -> str:
    """A table label with its unit (proportions are printed as percentages)."""
    return label if unit in ("", "proportion", "count") else f"{label} [{unit}]"


def format_incremental(ia: dict[str, Any]) -> str:
    """The incremental analysis as a terminal table (dampack's columns, in its order)."""
    from .report.tables import format_money_difference

    cur = ia["currency"]
    header = [
        "strategy",
        f"cost ({cur})",
        "QALYs",
        "inc. cost",
        "inc. QALYs",
        f"ICER ({cur}/QALY)",
        "status",
        "NMB vs optimal (95% CI)",
    ]
    status = {"ND": "frontier", "ED": "ext. dominated", "D": "dominated", "": ""}
    rows = [header]
    for r in ia["rows"]:
        d = r["net_monetary_benefit_vs_optimal"]
        rows.append(
            [
                r["strategy"],
                f"{r['cost']:,.0f}",
                f"{r['effect']:.4f}",
                "" if r["inc_cost"] is None else f"{r['inc_cost']:+,.0f}",
                "" if r["inc_effect"] is None else f"{r['inc_effect']:+.4f}",
                "" if r["icer"] is None else f"{r['icer']:,.0f}",
                status[r["status"]],
                "optimal" if d is None else format_money_difference(d),
            ]
        )
    lines = _render(rows)
    wtp = ia["willingness_to_pay_per_qaly"]
    lines.append(
        f"optimal at {wtp:,.0f} {cur}/QALY (highest net monetary benefit): {ia['optimal_strategy']}"
    )
    from .report.comparison import economics_basis

    lines.append(economics_basis(ia))
    if ia.get("disease_parameters"):
        lines.append(ia["disease_parameters"])
    if ia.get("extrapolation"):
        lines.append(ia["extrapolation"])
    return "Incremental analysis\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    root_level = logging.getLogger().level  # --quiet changes it for this call only
    restore = _stop_on_signals()
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(_normalise_argv(argv))
        if extra:
            # argparse reports them from the top-level parser ("see `simulate --help`");
            # they belong to the command's options
            command = getattr(args, "command", None)
            prog = f"{parser.prog} {command}" if command else parser.prog
            raise InputError(
                f"{prog}: unrecognized arguments: {' '.join(extra)} (see `{prog} --help`)"
            )
        # --quiet: no warnings either (set on every call: main() may run more than once)
        logging.getLogger().setLevel(
            logging.ERROR if getattr(args, "quiet", False) else logging.WARNING
        )
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        if getattr(args, "force", False):
            raise InputError(FORCE_WITHDRAWN)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "sweep":
            return _cmd_sweep(args)
        if args.command == "validate":
            return _cmd_validate(args)
        if args.command == "calibrate":
            return _cmd_calibrate(args)
        raise InputError(f"simulate {args.command}: not available in this version")
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        written = getattr(args, "written", None)
        if written is not None:  # stopped while the table was printed (e.g. in a pager)
            print(
                f"interrupted{_signal_name(stop)}: the results had been written to"
                f" {written}{os.sep}; only the table on the terminal was cut short",
                file=sys.stderr,
            )
        else:
            print(f"interrupted{_signal_name(stop)}: no results were written", file=sys.stderr)
        return _interrupted_status(stop)
    except BrokenPipeError:
        return 0
    except BrokenProcessPool:
        # a worker process died: killed by a signal (the out-of-memory killer, or by
        # hand); the output folder was left as it was (report.atomic)
        print(
            f"error: a worker process died while {args.command if args else 'the command'}"
            " ran (killed, e.g. by the system's out-of-memory killer): no results were"
            " written; run again, with fewer --workers or a smaller --chunk-size if memory"
            " ran out",
            file=sys.stderr,
        )
        return 1
    except MemoryError:
        print(
            "error: out of memory while reading, checking or running the input; give a "
            "smaller scenario, fewer patients or fewer sweep points",
            file=sys.stderr,
        )
        return 2
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        print(f"error: cannot write results{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print(
            "internal error: this is a bug in the simulator, please report it with the "
            "traceback above",
            file=sys.stderr,
        )
        return 1
    finally:
        restore()
        logging.getLogger().setLevel(root_level)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C (clean up, exit 128 + signal number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals() -> Any:
    """Turn SIGINT into KeyboardInterrupt and SIGTERM, SIGHUP into :class:`Stopped` while
    a command runs (main thread only); a second signal during the clean-up kills the
    process at once (the next run removes what it leaves). Returns a function restoring
    the previous handlers."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])

    stopping = []

    def handler(signum: int, frame: Any) -> None:
        if stopping:  # a second signal while cleaning up: die at once, as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        stopping.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in sigs}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _interrupted_job(stop: KeyboardInterrupt, out: Path, counted: str, unit: str) -> int:
    """Say what an interrupted resumable job (sweep, calibration) kept, and exit."""
    from .store import partial_dir, saved_units

    done = saved_units(out)
    if done == 1 and counted == unit:  # "1 evaluation is", not "1 evaluations are"
        counted = unit.removesuffix("s")
    where = (
        f"{done} {counted} {'is' if done == 1 else 'are'} saved in {partial_dir(out)}; run the"
        " same command again to continue"
        if done
        else f"no {unit} were saved"
    )
    print(f"interrupted{_signal_name(stop)}: {where}", file=sys.stderr)
    return _interrupted_status(stop)


def _signal_name(stop: KeyboardInterrupt) -> str:
    return f" ({signal.Signals(stop.signum).name})" if isinstance(stop, Stopped) else ""


def _interrupted_status(stop: KeyboardInterrupt) -> int:
    return 128 + (stop.signum if isinstance(stop, Stopped) else signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
