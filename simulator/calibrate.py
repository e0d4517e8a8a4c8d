"""`simulate calibrate`: fit named, bounded parameters to the calibration targets of study
files.

A calibration file (``scenario/calibrate_schema.py``) names study files (their targets
tagged ``calibration`` are fitted; ``validation`` targets never are), the parameters
(dotted paths as ``--set``) with bounds and optional starts, the patients and seed of every
evaluation, and the method. Every evaluation runs each study arm on the same patients
with the same seed (common random numbers), so the objective is a deterministic function
of the parameters:

    loss = sum over targets of ((simulated - published) / half-width of the published
           95% interval)^2

a sum of squared distances, each standardised by its published interval's half-width
h = (high - low) / 2 (also for an asymmetric interval, e.g. a Wilson one). It is not
-2 log-likelihood: only for a published value normal with the standard error its
symmetric interval implies (SE = h / Z95) is -2 log L = Z95^2 x loss + a constant, i.e.
loss = (-2 log L) / Z95^2 up to a constant; an asymmetric interval enters through its
half-width alone (as if it were normal with SE = h / Z95).
``optimize``: Nelder-Mead on the logit scale of each parameter's bounds (scipy.optimize),
from the given start and from ``starts - 1`` further starts drawn from the seed; the best
end point is the estimate. Its intervals are a Laplace approximation of that normal
likelihood (flat prior on the logit scale) from the curvature c of the loss along each
parameter at the optimum (central differences under CRN): sd = sqrt(2 / c) / Z95 on the
logit scale, the interval the estimate +- Z95 sd there (+- sqrt(2 / c)), mapped back to
the parameter's scale. They are conditional on the other parameters at their estimates,
so narrower than marginal intervals when parameters are correlated. A parameter is
reported as not identified when the loss has no positive curvature along it or its
interval reaches both bounds (within ``BOUND_TOLERANCE`` of the range): the targets do not
constrain it. ``posterior.csv`` holds draws from that approximation (uniform between the
bounds for a parameter not identified), usable as the parameter distribution of a PSA
sweep.

Every evaluation is kept in the checkpoint store (``store.py``) as it finishes: after an
interruption (even kill -9) the same command replays the finished evaluations (the
optimizer is deterministic) and continues, giving the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import fmath
from ._version import __version__
from .errors import InputError
from .outcomes import last_day_read
from .scenario import scenario_data, scenario_sha256
from .scenario.calibrate_schema import ABCSettings, CalibrationFile
from .stats import Z95
from .studies import Study, TargetResult, load_study, simulate_arms, target_arms, target_result
from .sweeps import _get, with_overrides

__all__ = [
    "CalibrationPlan",
    "CalibrationResult",
    "calibrate",
    "effective_sample_size",
    "load_calibration",
    "weighted_quantile",
]

log = logging.getLogger(__name__)
MIN_HORIZON_DAYS = 28  # the scenario schema's least horizon
MISSING_PENALTY = 100.0  # per target the simulation cannot estimate (e.g. a median)
#: a Laplace interval within this share of the parameter's range from both of its bounds
#: says nothing the bounds do not: the parameter is reported as not identified
BOUND_TOLERANCE = 1e-3
#: the least loss curvature (logit scale) taken as positive
MIN_CURVATURE = 1e-9
#: the ABC final tolerance whose Gaussian kernel has sd = the standard error each
#: published interval implies (half-width / Z95): the posterior of a normal likelihood
#: with those standard errors (``final_tolerance: se``)
SE_TOLERANCE = 1.0 / Z95


def laplace_sd(curvature: float) -> float | None:
    """The Laplace sd on the logit scale from the loss's curvature there: the loss is
    (-2 log L) / Z95^2 for a normal likelihood with the published intervals' standard
    errors, so -2 log L has curvature Z95^2 c and sd = sqrt(2 / c) / Z95; None when the
    curvature is not positive."""
    if not curvature > MIN_CURVATURE:  # also NaN
        return None
    return math.sqrt(2.0 / curvature) / Z95


def spans_bounds(interval: tuple[float, float], low: float, high: float) -> bool:
    """Whether an interval reaches both bounds (within ``BOUND_TOLERANCE`` of the range)."""
    tol = BOUND_TOLERANCE * (high - low)
    return interval[0] - low <= tol and high - interval[1] <= tol


def laplace_interval(
    low: float, high: float, u: float, curvature: float
) -> tuple[tuple[float, float] | None, str | None]:
    """The Laplace 95% interval of a parameter with bounds (low, high), estimate ``u`` on
    the logit scale of its bounds and loss curvature ``curvature`` there: u +- Z95 sd
    mapped back. Returns (interval, None), or (None, why the parameter is not
    identified)."""
    sd = laplace_sd(curvature)
    if sd is None:
        return None, f"the loss has no positive curvature along it ({curvature:.3g})"
    ends = logistic_between(np.array([u - Z95 * sd, u + Z95 * sd]), low, high)
    ci = (float(ends[0]), float(ends[1]))
    if spans_bounds(ci, low, high):
        return None, (
            f"its Laplace interval ({ci[0]:.6g} to {ci[1]:.6g}) reaches both bounds: the"
            f" loss is almost flat along it (curvature {curvature:.3g})"
        )
    return ci, None


def final_tolerance(a: ABCSettings) -> float:
    """The ABC final tolerance as a number (``se``: 1 / Z95)."""
    return SE_TOLERANCE if a.final_tolerance == "se" else float(a.final_tolerance)


def abc_target(eps: float) -> str:
    """What ABC particles at tolerance ``eps`` sample: the kernel exp(-loss / (2 eps^2))
    is a normal density of each published value around the simulated one with sd
    eps x the half-width of its published interval, = eps Z95 x the standard error the
    interval implies."""
    if math.isclose(eps, SE_TOLERANCE, rel_tol=1e-9):
        return (
            f"tolerance {eps:.4g} = 1/{Z95:.2f} (final_tolerance: se): the kernel's sd is"
            " each published interval's standard error (half-width / 1.96), so the"
            " particles sample the posterior of a normal likelihood with those standard"
            " errors (Wilkinson 2013)"
        )
    power = 1.0 / (Z95 * eps) ** 2
    return (
        f"tolerance {eps:.4g}: the kernel's sd is {eps:.4g} x each published interval's"
        f" half-width = {eps * Z95:.3g} x the standard error it implies, so the particles"
        f" sample the posterior of a normal likelihood with that sd (Wilkinson 2013), that"
        f" is, the likelihood with the published standard errors raised to the power"
        f" {power:.3g}; {'wider' if eps > SE_TOLERANCE else 'narrower'} than the posterior"
        f" with those standard errors, which final_tolerance: se (1/{Z95:.2f} ="
        f" {SE_TOLERANCE:.3f}) targets"
    )


@dataclass(frozen=True)
class FitTarget:
    study: Study
    index: int  # in the study's targets

    @property
    def spec(self) -> Any:
        return self.study.spec.targets[self.index]


@dataclass
class CalibrationPlan:
    path: Path
    spec: CalibrationFile
    studies: list[Study]
    targets: list[FitTarget]
    names: list[str]
    low: np.ndarray
    high: np.ndarray
    start: np.ndarray
    patients: int
    seed: int

    def inputs_sha256(self) -> str:
        """Checksum of what the fit depends on besides the fitted values themselves: the
        calibration file, the study files, and every arm's resolved scenario with the
        fitted parameters blanked (so the defaults being fitted do not enter it, but any
        other default does). The files enter as their YAML data without their prose (a
        study's title, citation and description, a target's label; comments): a
        corrected citation is not a new calibration input. For the same reason the
        scenarios' ``source`` strings (an adverse event's citation) and their ``name`` and
        ``description`` are left out."""
        h = hashlib.sha256()
        h.update(_content(self.path).encode())
        for s in self.studies:
            h.update(_content(s.path).encode())
            for scn in s.scenarios:
                data = scenario_data(scn)
                for n in self.names:
                    _blank(data, n)
                h.update(json.dumps(_without_prose(data), sort_keys=True).encode())
        h.update(json.dumps([self.patients, self.seed]).encode())
        return h.hexdigest()

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(self.path.read_bytes())
        for s in self.studies:
            h.update(s.path.read_bytes())
            for scn in s.scenarios:
                h.update(scenario_sha256(scn).encode())
        h.update(json.dumps([self.patients, self.seed, self.spec.method, __version__]).encode())
        return h.hexdigest()


def _blank(data: Any, path: str) -> None:
    from .sweeps import _split

    parts = _split(path)
    cur = data
    for part in parts[:-1]:
        cur = cur[part]
    cur[parts[-1]] = None


def load_calibration(
    path: str | os.PathLike[str],
    *,
    patients: int | None = None,
    sets: Sequence[str] = (),
    method: str | None = None,
) -> CalibrationPlan:
    """Read and check a calibration file: every problem is an InputError before anything
    runs (a missing study, an unknown parameter path, a start outside the bounds, no
    calibration target)."""
    from .scenario.load import check_named_file, read_scenario, validate
    from .studies import _resolved

    path = Path(path)
    data, linemap = read_scenario(path, what="calibration file")
    if patients is not None:
        data["patients"] = patients
    if method is not None:
        data["method"] = method
    spec = validate(data, CalibrationFile, linemap, str(path))
    files: list[Path] = []
    seen: dict[Path, int] = {}
    for i, rel in enumerate(spec.studies):  # check them all before reading any
        f = path.parent / Path(rel).expanduser()
        # missing, a directory, a FIFO, too large: the message names this file, the line
        # and studies[i]
        check_named_file(
            f, rel, what="study file", referrer=path, loc=("studies", i), linemap=linemap
        )
        key = _resolved(f)
        if key in seen:
            j = seen[key]
            same = "" if spec.studies[j] == rel else f" ({spec.studies[j]})"
            raise InputError(
                f"studies[{i}]: the study file {rel} is listed twice, also as studies[{j}]"
                f"{same}; each of its calibration targets would count twice in the loss:"
                " list each study file once",
                path=f"studies[{i}]",
                file=str(path),
                line=linemap.line_for(("studies", i)),
            )
        seen[key] = i
        files.append(f)
    studies = [load_study(f, tuple(sets)) for f in files]
    targets = [
        FitTarget(s, j)
        for s in studies
        for j, t in enumerate(s.spec.targets)
        if s.role_of(t) == "calibration"
    ]
    if not targets:
        raise InputError(
            "studies: none of the study files has a target tagged calibration",
            file=str(path),
            line=linemap.line_for(("studies",)),
        )
    names = list(spec.parameters)
    low = np.array([spec.parameters[n].low for n in names])
    high = np.array([spec.parameters[n].high for n in names])
    first = studies[0].scenarios[0]
    # every arm's data, dumped once for all the parameters
    arm_data = [
        (scn, scn.model_dump(mode="python", by_alias=True)) for s in studies for scn in s.scenarios
    ]
    start = []
    for n in names:
        p = spec.parameters[n]
        where = linemap.line_for(("parameters", n))
        current = _value_in(arm_data[0][1], n)
        for scn, data in arm_data:  # the fit moves every parameter continuously
            v = _value_in(data, n)
            if isinstance(v, int) and not isinstance(v, bool):
                raise InputError(
                    f"parameters.{n}: a whole-number parameter (it is {v} in {scn.name})"
                    " cannot be fitted: the fit tries fractional values",
                    file=str(path),
                    line=where,
                )
        if p.start is not None:
            value = p.start
        else:
            if current is None:
                raise InputError(
                    f"parameters.{n}: no such parameter in {first.name}", file=str(path), line=where
                )
            value = current
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InputError(
                    f"parameters.{n}: not a number in {first.name} ({value!r});"
                    " give a numeric parameter",
                    file=str(path),
                    line=where,
                )
            if not p.low < value < p.high:
                raise InputError(
                    f"parameters.{n}: the bounds [{p.low:g}, {p.high:g}] exclude the start"
                    f" {value:g} (the value in {first.name}); widen them or give start",
                    file=str(path),
                    line=where,
                )
        start.append(float(value))
        _check_bounds(n, spec.parameters[n], studies, path, linemap)
        for s in studies:  # the path must exist, and the start be valid, in every arm
            for arm, scn in zip(s.arms, s.scenarios, strict=True):
                try:
                    with_overrides(scn, {n: float(value)}, f"{path}: parameters.{n}")
                except InputError as err:
                    raise InputError(
                        f"parameters.{n}: cannot be set in {s.name} arm {arm}: {err.message}",
                        file=str(path),
                        line=where,
                    ) from None
    return CalibrationPlan(
        path, spec, studies, targets, names, low, high, np.array(start), spec.patients, spec.seed
    )


def _value_in(data: dict[str, Any], name: str) -> Any:
    """The value at dotted path ``name`` in a scenario's data, None where it has none."""
    try:
        return _get(data, name)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _check_bounds(name: str, p: Any, studies: list[Study], path: Path, linemap: Any) -> None:
    """Refuse a bound outside the values the parameter may take (``low: -5`` for a rate
    that must be > 0), naming the file, the line and the bound, before anything runs:
    otherwise the fit fails at the first evaluation that comes near it. The optimizer and
    the ABC prior only try values strictly between the bounds, so a bound that is itself
    excluded but has valid values right next to it (``low: 0`` for a value that must be
    > 0) is fine."""
    for key, bound, other in (("low", p.low, p.high), ("high", p.high, p.low)):
        inside = math.nextafter(bound, other)
        for s in studies:
            for arm, scn in zip(s.arms, s.scenarios, strict=True):
                try:
                    with_overrides(scn, {name: float(bound)}, str(path))
                    continue
                except InputError as err:
                    first = err
                try:
                    with_overrides(scn, {name: float(inside)}, str(path))
                except InputError:
                    why = first.message
                    if why.startswith(f"{name}: "):
                        why = why[len(name) + 2 :]
                    raise InputError(
                        f"parameters.{name}.{key}: {bound:g} is outside the values {name} may"
                        f" take, in {s.name} arm {arm}: {why}. The fit tries values up to its"
                        " bounds: bring the bound inside",
                        path=f"parameters.{name}.{key}",
                        file=str(path),
                        line=linemap.line_for(("parameters", name, key)),
                    ) from None


# --------------------------------------------------------------------------------------
# One evaluation: every arm on the same patients
# --------------------------------------------------------------------------------------


def _arm_task(args: tuple[Any, ...]) -> dict[str, dict[str, Any]]:
    scns, names, patients, seed, metrics = args
    return simulate_arms(
        scns,
        names,
        patients=patients,
        seed=seed,
        engine="cohort",
        progress=False,
        check_invariants=False,
        metrics=frozenset(metrics),
    )


def task_of_target(plan: CalibrationPlan) -> list[int]:
    """For each target of the plan, the index of the simulation task that gives it."""
    keys: dict[tuple[str, ...], int] = {}
    out = []
    for ft in plan.targets:
        arms = target_arms(ft.study, ft.spec)
        key = tuple(str(ft.study.arm_files[ft.study.arms.index(a)]) for a in arms)
        out.append(keys.setdefault(key, len(keys)))
    return out


def _tasks(
    plan: CalibrationPlan, theta: np.ndarray
) -> tuple[list[Callable[[], tuple[Any, ...]]], list[int]]:
    """The simulations of one evaluation (each arm, or pair of arms, once however many
    targets read it, summarising only the metrics they read), each as a function that
    makes its task (scenarios are set up only for the simulations that run), and the
    task of each target."""
    point = {n: float(v) for n, v in zip(plan.names, theta, strict=True)}
    where = task_of_target(plan)
    specs: dict[int, tuple[Study, tuple[str, ...], set[str]]] = {}
    for ft, k in zip(plan.targets, where, strict=True):
        specs.setdefault(k, (ft.study, target_arms(ft.study, ft.spec), set()))[2].add(
            ft.spec.metric
        )

    def task(study: Study, arms: tuple[str, ...], metrics: set[str]) -> tuple[Any, ...]:
        base = [study.scenarios[study.arms.index(a)] for a in arms]
        # A task whose metrics are all read by one fixed day runs to that day only: the
        # patients, their streams and so those metrics are the same as over the arm's
        # whole horizon (outcomes.last_day_read).
        days = [last_day_read(m) for m in metrics]
        until = None if None in days else max(d for d in days if d is not None) + 1
        over: dict[str, Any] = dict(point)
        if (
            until is not None
            and all(s.entry is None for s in base)
            and until < min(s.horizon_days for s in base)
        ):
            over["horizon_days"] = max(until, MIN_HORIZON_DAYS)
        scns = [with_overrides(s, over, f"{plan.path}") for s in base]
        return (scns, list(arms), plan.patients, plan.seed, frozenset(metrics))

    return [functools.partial(task, *specs[k]) for k in range(len(specs))], where


def evaluate(
    plan: CalibrationPlan, theta: np.ndarray, *, workers: int = 1, dask: str | None = None
) -> list[TargetResult]:
    """Every calibration target at parameters ``theta`` (one value per plan.names): each
    arm (or pair of arms) runs once, however many targets read it."""
    from .parallel import ordered_map

    makers, where = _tasks(plan, theta)
    metrics = list(ordered_map(_arm_task, [make() for make in makers], workers, dask))
    return [
        target_result(ft.study, ft.spec, metrics[k].get(ft.spec.metric, {}), plan.patients)
        for ft, k in zip(plan.targets, where, strict=True)
    ]


def evaluate_until(
    plan: CalibrationPlan, theta: np.ndarray, limit: float, order: Sequence[int]
) -> tuple[list[TargetResult | None], float, bool]:
    """:func:`evaluate` one simulation task at a time in ``order``, stopping as soon as
    the loss of the targets done so far exceeds ``limit`` (every term is >= 0, so the
    whole loss would too). Returns the target results (None for targets not simulated),
    the loss so far and whether every task ran (then it is :func:`loss` exactly)."""
    makers, where = _tasks(plan, theta)
    results: list[TargetResult | None] = [None] * len(plan.targets)
    partial = 0.0
    for done, k in enumerate(order, start=1):
        m = _arm_task(makers[k]())
        for i, (ft, kt) in enumerate(zip(plan.targets, where, strict=True)):
            if kt == k:
                results[i] = r = target_result(
                    ft.study, ft.spec, m.get(ft.spec.metric, {}), plan.patients
                )
                partial += target_loss(r)
        if done < len(makers) and partial > limit:
            return results, partial, False
    total = loss([r for r in results if r is not None])  # in the targets' own order
    return results, total, True


def target_loss(r: TargetResult) -> float:
    """One target's term of :func:`loss`: ((simulated - published) / half-width)^2."""
    half = (r.published_high - r.published_low) / 2
    if r.simulated is None:
        return MISSING_PENALTY
    return ((r.simulated - r.published) / half) ** 2 if half > 0 else 0.0


def loss(results: Sequence[TargetResult]) -> float:
    """Sum over targets of ((simulated - published) / half-width)^2."""
    total = 0.0
    for r in results:
        total += target_loss(r)
    return total


# --------------------------------------------------------------------------------------
# The optimizer
# --------------------------------------------------------------------------------------


def logit_between(x: Any, low: Any, high: Any) -> np.ndarray:
    """Values -> logit of their position between the bounds (the search scale)."""
    p = np.clip((x - low) / (high - low), 1e-12, 1 - 1e-12)
    return fmath.log_array(p / (1 - p))


def logistic_between(u: Any, low: Any, high: Any) -> np.ndarray:
    """The inverse of :func:`logit_between`: the search scale -> values."""
    return low + (high - low) / (1.0 + fmath.exp_array(-u))


def to_unit(plan: CalibrationPlan, x: np.ndarray) -> np.ndarray:
    """Parameters -> logit of their position between the bounds."""
    return logit_between(x, plan.low, plan.high)


def from_unit(plan: CalibrationPlan, u: np.ndarray) -> np.ndarray:
    return logistic_between(u, plan.low, plan.high)


@dataclass
class CalibrationResult:
    plan: CalibrationPlan
    estimate: np.ndarray
    loss: float  # at the estimate (optimize: the best end point; abc: the posterior median)
    targets: list[TargetResult]
    starts: list[dict[str, Any]]
    intervals: list[tuple[float, float] | None]
    curvature: list[float]
    evaluations: list[dict[str, Any]]
    posterior: np.ndarray
    weights: np.ndarray | None = None  # of the posterior rows (ABC); None: equal
    generations: list[dict[str, Any]] | None = None  # ABC-SMC tolerances and ESS
    # per parameter, why it is not identified (None: identified); optimize only
    unidentified: list[str | None] | None = None
    particle_losses: np.ndarray | None = None  # of the final ABC particles

    def lowest_loss(self) -> float:
        """The least loss of any complete evaluation of the run (the estimate's included)."""
        full = [float(e["loss"]) for e in self.evaluations if e.get("complete", True)]
        return min(full, default=self.loss)

    def abc_tolerance(self) -> dict[str, Any] | None:
        """ABC: the final tolerance asked for, the one reached and what the particles
        sample there (:func:`abc_target`); None for optimize."""
        if self.generations is None:
            return None
        a = self.plan.spec.abc
        final = final_tolerance(a)
        reached = float(self.generations[-1]["tolerance"]) if self.generations else math.inf
        return {
            "final_tolerance": a.final_tolerance,
            "final_tolerance_value": final,
            "tolerance_reached": reached,
            "reached": reached <= final,
            "max_generations": a.max_generations,
            "targets": abc_target(reached),
        }

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        params = []
        for j, n in enumerate(p.names):
            ci = self.intervals[j]
            why = None if self.unidentified is None else self.unidentified[j]
            params.append(
                {
                    "parameter": n,
                    "estimate": float(self.estimate[j]),
                    "ci95": None if ci is None else [float(ci[0]), float(ci[1])],
                    "identified": ci is not None,
                    "not_identified_because": why,
                    "start": float(p.start[j]),
                    "low": float(p.low[j]),
                    "high": float(p.high[j]),
                    "curvature_logit": self.curvature[j],
                }
            )
        tol = self.abc_tolerance()
        if tol is None:
            note = (
                "Laplace approximation from the curvature c of the loss along each parameter"
                " at the optimum (logit scale, central differences under common random"
                " numbers): the loss is (-2 log-likelihood) / 1.96^2 for a normal likelihood"
                " with the standard errors the published intervals imply (half-width / 1.96;"
                " exact for symmetric intervals), so sd = sqrt(2/c) / 1.96 on the logit"
                " scale and the interval is the estimate +- sqrt(2/c) there; conditional on"
                " the other"
                " parameters at their estimates; not identified when the loss has no"
                " positive curvature there or the interval reaches both bounds"
            )
        else:
            note = (
                "posterior median and 2.5-97.5% weighted quantiles of the ABC-SMC particles"
                " (Gaussian ABC kernel, uniform priors between the bounds), at " + tol["targets"]
            )
            if not tol["reached"]:
                note += (
                    f". WARNING: the run stopped at max_generations ({tol['max_generations']})"
                    f" before reaching the final tolerance {tol['final_tolerance_value']:.4g}"
                )
        out: dict[str, Any] = {
            "name": p.spec.name,
            "calibration_file": str(p.path),
            "method": p.spec.method,
            "simulator_version": __version__,
            "fingerprint": p.fingerprint(),
            "inputs_sha256": p.inputs_sha256(),
            "patients": p.patients,
            "seed": p.seed,
            "loss": self.loss,
            "loss_at": (
                "the estimate (the best end point of the starts)"
                if tol is None
                else "the componentwise posterior median (not the least loss of the run)"
            ),
            "lowest_loss": self.lowest_loss(),
            "evaluations": len(self.evaluations),
            "parameters": params,
            "starts": self.starts,
            "targets": [r.to_json() for r in self.targets],
            "generations": self.generations,
            "abc_tolerance": tol,
            "interval_note": note,
        }
        if self.particle_losses is not None:
            out["lowest_particle_loss"] = float(np.min(self.particle_losses))
        return out


#: prose in a study or calibration file: not an input of the fit
_PROSE = ("study", "citation", "description", "label", "note")


def _drop_keys(x: Any, keys: tuple[str, ...]) -> Any:
    """``x`` without the mapping entries named ``keys``, at any depth."""
    if isinstance(x, dict):
        return {str(k): _drop_keys(v, keys) for k, v in x.items() if k not in keys}
    if isinstance(x, list):
        return [_drop_keys(v, keys) for v in x]
    return x


def _without_prose(data: dict[str, Any]) -> Any:
    """A resolved scenario's data without the text that only documents it: each
    ``source`` (at any depth), and the top-level ``name`` and ``description``."""
    top = {k: v for k, v in data.items() if k not in ("name", "description")}
    return _drop_keys(top, ("source",))


def _content(path: Path) -> str:
    """A study or calibration file's YAML data without its prose (``_PROSE`` keys at any
    depth) and without a study's validation targets, as canonical JSON. A validation
    target is never fitted to, so adding or correcting one is not a new calibration
    input; turning one into a calibration target is."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("targets"), list):
        role = data.get("role")
        data["targets"] = [
            t
            for t in data["targets"]
            if not (isinstance(t, dict) and (t.get("role") or role) == "validation")
        ]
    return json.dumps(_drop_keys(data, _PROSE), sort_keys=True, default=str)


class _Evaluations:
    """Numbered evaluations, kept in the store as they finish and replayed on resume."""

    def __init__(
        self,
        plan: CalibrationPlan,
        store: Any,
        done: dict[int, dict[str, Any]],
        workers: int,
        dask: str | None,
        bar: Any,
    ) -> None:
        self.plan, self.store, self.done = plan, store, done
        self.workers, self.dask, self.bar = workers, dask, bar
        self.log: list[dict[str, Any]] = []
        self.entries: list[dict[str, Any]] = []

    def _replayed(self, i: int, theta: list[float]) -> dict[str, Any] | None:
        """Evaluation ``i`` from the checkpoint, if it was made at these parameters."""
        old = self.done.get(i)
        return old if old is not None and old["theta"] == theta else None

    def _keep(
        self,
        i: int,
        theta: list[float],
        purpose: str,
        results: Sequence[TargetResult | None],
        value: float | None = None,
    ) -> dict[str, Any]:
        """Save evaluation ``i``; ``value``: the loss of an evaluation stopped early (at
        least this), whose targets not simulated are None."""
        complete = value is None
        entry = {
            "theta": theta,
            "purpose": purpose,
            "loss": loss([r for r in results if r is not None]) if complete else value,
            "targets": [None if r is None else _plain(r) for r in results],
        }
        if not complete:
            entry["complete"] = False
        self.store.save(i, entry)
        return entry

    def __call__(self, x: np.ndarray, purpose: str) -> tuple[float, list[TargetResult]]:
        i = len(self.log)
        theta = [float(v) for v in x]
        entry = self._replayed(i, theta)
        if entry is not None:
            results = [TargetResult(**r) for r in entry["targets"]]
        else:
            results = evaluate(self.plan, x, workers=self.workers, dask=self.dask)
            entry = self._keep(i, theta, purpose, results)
        self.log.append({"theta": theta, "purpose": purpose, "loss": entry["loss"]})
        self.bar.update(1)
        self.bar.set_postfix_str(f"loss {entry['loss']:.3g}")
        return float(entry["loss"]), results

    def batch(
        self,
        xs: Sequence[np.ndarray],
        purpose: str,
        limits: np.ndarray | None = None,
        order: Sequence[int] | None = None,
    ) -> list[float]:
        """Losses of several parameter vectors (the particles of a generation), evaluated
        in parallel over the workers (one evaluation per task), each saved as it finishes.
        With ``limits``, evaluation j runs its simulations in ``order`` and stops once
        its loss is sure to exceed ``limits[j]``: its loss is then inf (the caller
        rejects it whatever the rest would give). ``self.entries`` keeps the batch's
        saved entries."""
        from .parallel import completed_map

        first = len(self.log)
        thetas = [[float(v) for v in x] for x in xs]
        entries: dict[int, dict[str, Any]] = {}
        todo = []
        for j, theta in enumerate(thetas):
            entry = self._replayed(first + j, theta)
            if entry is not None:
                entries[j] = entry
            else:
                limit = math.inf if limits is None else float(limits[j])
                todo.append((j, (self.plan, np.array(theta), limit, order)))
        for j, (results, value, complete) in completed_map(
            _evaluate_task, todo, self.workers, self.dask
        ):
            entries[j] = self._keep(
                first + j, thetas[j], purpose, results, None if complete else value
            )
            self.bar.update(1)
        self.bar.update(len(thetas) - len(todo))
        self.entries = [entries[j] for j in range(len(thetas))]
        where = task_of_target(self.plan)
        losses = []
        for theta, entry in zip(thetas, self.entries, strict=True):
            complete = entry.get("complete", True)
            ran = {k for k, r in zip(where, entry["targets"], strict=True) if r is not None}
            self.log.append(
                {
                    "theta": theta,
                    "purpose": purpose,
                    "loss": entry["loss"],
                    "complete": complete,
                    "simulations": len(ran),
                }
            )
            losses.append(float(entry["loss"]) if complete else math.inf)
        return losses


def _evaluate_task(
    args: tuple[CalibrationPlan, np.ndarray, float, Sequence[int] | None],
) -> tuple[list[TargetResult | None], float, bool]:
    plan, x, limit, order = args
    if order is None or math.isinf(limit):
        results = evaluate(plan, x, workers=1)
        return list(results), loss(results), True
    return evaluate_until(plan, x, limit, order)


def _plain(r: TargetResult) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(r)


def calibrate(
    plan: CalibrationPlan,
    out: str | os.PathLike[str],
    *,
    workers: int = 1,
    dask: str | None = None,
    fresh: bool = False,
    progress: bool | None = None,
) -> CalibrationResult:
    """Fit the plan's parameters (resuming from ``<out>.partial`` if it exists)."""

    from .parallel import dask_session, pool_session
    from .store import PointStore

    store = PointStore(out, plan.fingerprint(), 0, str(plan.path), kind="calibration")
    done = store.open(fresh)
    # one cluster, or one process pool, for every evaluation
    with dask_session(dask, workers) as address, pool_session(1 if address else workers):
        if plan.spec.method == "abc":
            return _abc(plan, store, done, workers, address, progress)
        return _optimize(plan, store, done, workers, address, progress)


def _optimize(
    plan: CalibrationPlan,
    store: Any,
    done: dict[int, dict[str, Any]],
    workers: int,
    dask: str | None,
    progress: bool | None,
) -> CalibrationResult:
    """Nelder-Mead from each start, then the curvature at the best end point."""
    import sys

    from scipy import optimize
    from scipy.special import ndtri
    from tqdm import tqdm

    from . import streams

    s = plan.spec.optimize
    k = len(plan.names)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=s.starts * s.max_evaluations + 2 * k + 1,
        unit="evaluation",
        disable=not show,
        file=sys.stderr,
        desc=plan.spec.name[:30],
        leave=False,
    )
    ev = _Evaluations(plan, store, done, workers, dask, bar)
    try:
        u_starts = [to_unit(plan, plan.start)]
        if s.starts > 1:
            uu = streams.uniform(
                plan.seed,
                np.arange(s.starts - 1)[:, None],
                "calibrate.start",
                np.arange(k)[None, :],
            )
            u_starts += [
                to_unit(plan, plan.low + (plan.high - plan.low) * (0.1 + 0.8 * row)) for row in uu
            ]
        best_u, best_f, starts = None, math.inf, []
        for j, u0 in enumerate(u_starts):
            simplex = np.vstack([u0] + [u0 + s.step * np.eye(k)[i] for i in range(k)])
            counter = {"n": 0}

            def f(u: np.ndarray, j: int = j, counter: dict[str, int] = counter) -> float:
                counter["n"] += 1
                return ev(from_unit(plan, u), f"start {j + 1}")[0]

            res = optimize.minimize(
                f,
                u0,
                method="Nelder-Mead",
                options={
                    "maxfev": s.max_evaluations,
                    "xatol": s.xatol,
                    "fatol": s.fatol,
                    "initial_simplex": simplex,
                },
            )
            starts.append(
                {
                    "start": [float(v) for v in from_unit(plan, u0)],
                    "end": [float(v) for v in from_unit(plan, res.x)],
                    "loss": float(res.fun),
                    "evaluations": counter["n"],
                    "converged": bool(res.success),
                    "message": str(res.message),
                }
            )
            if res.fun < best_f:
                best_u, best_f = np.array(res.x), float(res.fun)
        assert best_u is not None
        f0, targets = ev(from_unit(plan, best_u), "estimate")
        h = 0.1
        curv: list[float] = []
        intervals: list[tuple[float, float] | None] = []
        unidentified: list[str | None] = []
        for i in range(k):
            e = np.eye(k)[i] * h
            fp = ev(from_unit(plan, best_u + e), f"curvature {plan.names[i]} +")[0]
            fm = ev(from_unit(plan, best_u - e), f"curvature {plan.names[i]} -")[0]
            c = (fp - 2 * f0 + fm) / (h * h)
            curv.append(float(c))
            ci, why = laplace_interval(
                float(plan.low[i]), float(plan.high[i]), float(best_u[i]), float(c)
            )
            intervals.append(ci)
            unidentified.append(why)
    except BaseException:
        store.discard_if_unused()
        raise
    finally:
        bar.close()
    # Draws from the approximation (sd on the logit scale: laplace_sd); a parameter that
    # is not identified is drawn uniformly between its bounds (what the targets say about
    # it: nothing).
    sd_u = np.array([laplace_sd(c) or 0.0 for c in curv])
    uni = streams.uniform(
        plan.seed, np.arange(1000)[:, None], "calibrate.posterior", np.arange(k)[None, :]
    )
    posterior = np.array([from_unit(plan, best_u + sd_u * ndtri(row)) for row in uni])
    for i, ci in enumerate(intervals):
        if ci is None:
            posterior[:, i] = plan.low[i] + (plan.high[i] - plan.low[i]) * uni[:, i]
    return CalibrationResult(
        plan,
        from_unit(plan, best_u),
        f0,
        targets,
        starts,
        intervals,
        curv,
        ev.log,
        posterior,
        unidentified=unidentified,
    )


# --------------------------------------------------------------------------------------
# ABC-SMC
# --------------------------------------------------------------------------------------


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``x`` under weights ``w``: the first value, in sorted order,
    whose cumulative share of the weight reaches ``q``."""
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order]) / w.sum()
    return float(x[order][min(int(np.searchsorted(cw, q)), len(x) - 1)])


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size of weights ``w``: (sum w)^2 / sum w^2."""
    return float(w.sum() ** 2 / (w * w).sum()) if w.sum() > 0 else 0.0


def _log_prior_u(plan: CalibrationPlan, u: np.ndarray) -> np.ndarray:
    """Log density, on the logit scale, of a prior uniform between the bounds (the
    Jacobian of x = low + (high - low) expit(u))."""
    return np.sum(-np.logaddexp(0.0, u) - np.logaddexp(0.0, -u), axis=-1)


def _tempered(logw: np.ndarray, losses: np.ndarray, last: float, e: float) -> np.ndarray:
    """Weights moved from tolerance ``last`` to ``e`` (Gaussian kernel), scaled to max 1."""
    inc = -losses / 2 * (1 / e**2 - (0.0 if math.isinf(last) else 1 / last**2))
    lw = logw + inc
    return np.exp(lw - lw.max())


def _early_order(plan: CalibrationPlan, entries: Sequence[dict[str, Any]]) -> list[int]:
    """The order in which an early-rejecting evaluation runs its simulation tasks: by
    their mean share of the loss over ``entries`` (the prior's particles) per unit of
    work (arms x horizon days), largest first, so that a poor proposal passes its limit
    at as little cost as possible."""
    where = task_of_target(plan)
    share = np.zeros(max(where) + 1)
    for e in entries:
        for k, r in zip(where, e["targets"], strict=True):
            if r is not None:
                share[k] += min(target_loss(TargetResult(**r)), 1e12)
    makers, _ = _tasks(plan, plan.start)
    work = np.array([sum(float(s.horizon_days) for s in make()[0]) for make in makers])
    return [int(k) for k in np.argsort(-share / work, kind="stable")]


def _abc(
    plan: CalibrationPlan,
    store: Any,
    done: dict[int, dict[str, Any]],
    workers: int,
    dask: str | None,
    progress: bool | None,
) -> CalibrationResult:
    """ABC-SMC with adaptive tolerances (Del Moral, Doucet & Jasra 2012) and a Gaussian
    kernel on the standardised distance: particle i at tolerance e has weight
    prior x exp(-loss_i / (2 e^2)). Each new tolerance keeps ``ess_fraction`` of the
    effective sample size; particles are resampled (systematic) when the ESS falls below
    half, then moved by ``moves`` Metropolis-Hastings steps (Gaussian random walk on the logit
    scale, covariance 2.38^2/k of the particles'). The run ends at ``final_tolerance`` or
    after ``max_generations`` (then with a warning, and the tolerance reached in the
    result). At tolerance e the kernel is a normal density of each published value with sd
    e x its interval's half-width, = e Z95 x the standard error the interval implies, so
    the particles sample the posterior of a normal likelihood with that sd (Wilkinson
    2013; :func:`abc_target`): at the default 1, sd = the half-width, 1.96 x the standard
    error (the standard-error likelihood to the power 1/1.96^2 = 0.26, a wider posterior);
    at ``final_tolerance: se`` (1/Z95 = 0.51) the posterior of a normal likelihood with the
    published intervals' standard errors. Every random number comes from the seed."""
    import sys

    from scipy.special import ndtri
    from tqdm import tqdm

    from . import streams

    a = plan.spec.abc
    n, k = a.particles, len(plan.names)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=n * (a.moves * a.max_generations + 1),
        unit="evaluation",
        disable=not show,
        file=sys.stderr,
        desc=plan.spec.name[:30],
        leave=False,
    )
    ev = _Evaluations(plan, store, done, workers, dask, bar)
    gens: list[dict[str, Any]] = []
    final = final_tolerance(a)
    try:
        u0 = streams.uniform(
            plan.seed, np.arange(n)[:, None], "calibrate.abc.prior", np.arange(k)[None, :]
        )
        u = np.log(u0 / (1 - u0))  # uniform between the bounds, on the logit scale
        losses = np.array(ev.batch([from_unit(plan, r) for r in u], "prior"))
        order = _early_order(plan, ev.entries)
        logw = np.zeros(n)
        eps = math.inf
        for g in range(1, a.max_generations + 1):
            w_prev = np.exp(logw - logw.max())
            target = a.ess_fraction * effective_sample_size(w_prev)

            def weights(
                e: float, lw0: np.ndarray = logw, d: np.ndarray = losses, last: float = eps
            ) -> np.ndarray:
                return _tempered(lw0, d, last, e)

            if effective_sample_size(weights(final)) >= target:
                new_eps = final
            else:  # bisection on log tolerance between the final one and the last
                lo = math.log(final)
                hi = (
                    math.log(eps)
                    if math.isfinite(eps)
                    else math.log(max(float(np.sqrt(losses.max())), final) * 10)
                )
                for _ in range(60):
                    mid = (lo + hi) / 2
                    lo, hi = (
                        (lo, mid)
                        if effective_sample_size(weights(math.exp(mid))) >= target
                        else (mid, hi)
                    )
                new_eps = math.exp(hi)
            logw = np.log(np.maximum(weights(new_eps), 1e-300))
            eps = new_eps
            w = np.exp(logw - logw.max())
            ess = effective_sample_size(w)
            resampled = ess < n / 2
            if resampled:  # systematic resampling from the seed
                r = streams.uniform(plan.seed, np.array([g]), "calibrate.abc.resample")[0]
                pos = (r + np.arange(n)) / n
                idx = np.minimum(np.searchsorted(np.cumsum(w) / w.sum(), pos), n - 1)
                u, losses, logw = u[idx], losses[idx], np.zeros(n)
                w = np.ones(n)
            # ``moves`` Metropolis-Hastings moves per particle at tolerance eps
            mean = np.average(u, axis=0, weights=w)
            cov = np.atleast_2d(np.cov((u - mean).T, aweights=w)) + 1e-9 * np.eye(k)
            chol = np.linalg.cholesky((2.38**2 / k) * cov)
            accepted = []
            first = len(ev.log)
            for m in range(a.moves):
                draw = (g * 1000 + m) * n + np.arange(n)
                z = ndtri(
                    streams.uniform(
                        plan.seed, draw[:, None], "calibrate.abc.move", np.arange(k)[None, :]
                    )
                )
                prop = u + z @ chol.T
                acc_u = streams.uniform(plan.seed, draw, "calibrate.abc.accept")
                prior_ratio = _log_prior_u(plan, prop) - _log_prior_u(plan, u)
                # Early rejection (Picchini & Forman 2016): the move is accepted iff
                # new loss < limit, so a proposal whose loss so far passes the limit (with
                # a margin far above rounding) is rejected before its other simulations
                # run. The accepted moves, hence the particles, are those of full
                # evaluations.
                limit = losses + 2 * eps**2 * (prior_ratio - np.log(acc_u))
                limit = limit + 1e-9 * np.maximum(1.0, np.abs(limit))
                new_losses = np.array(
                    ev.batch(
                        [from_unit(plan, r) for r in prop],
                        f"generation {g}",
                        limits=limit if a.early_rejection else None,
                        order=order,
                    )
                )
                with np.errstate(invalid="ignore"):
                    log_ratio = prior_ratio - (new_losses - losses) / (2 * eps**2)
                accept = np.log(acc_u) < log_ratio
                u = np.where(accept[:, None], prop, u)
                losses = np.where(accept, new_losses, losses)
                accepted.append(float(accept.mean()))
            gens.append(
                {
                    "generation": g,
                    "tolerance": eps,
                    "ess": ess,
                    "resampled": bool(resampled),
                    "acceptance": float(np.mean(accepted)),
                    # moves rejected before all their simulations ran (early rejection)
                    "stopped_early": float(np.mean([not e["complete"] for e in ev.log[first:]])),
                }
            )
            if eps <= final:
                break
    except BaseException:
        store.discard_if_unused()
        raise
    finally:
        bar.close()
    if eps > final:
        log.warning(
            "%s: ABC-SMC stopped at max_generations = %d with tolerance %.4g, above the final"
            " tolerance %.4g: the kernel's sd is %.3g x the published standard errors (%.3g"
            " asked for), so the particles sample a wider posterior than the one asked for;"
            " raise abc.max_generations",
            plan.spec.name,
            a.max_generations,
            eps,
            final,
            eps * Z95,
            final * Z95,
        )
    w = np.exp(logw - logw.max())
    x = np.array([from_unit(plan, r) for r in u])
    est = np.array([weighted_quantile(x[:, j], w, 0.5) for j in range(k)])
    intervals: list[tuple[float, float] | None] = [
        (weighted_quantile(x[:, j], w, 0.025), weighted_quantile(x[:, j], w, 0.975))
        for j in range(k)
    ]
    # the targets at the componentwise posterior median (one more evaluation); its loss
    # is not the least loss of the run (particle_losses, evaluations)
    f0, targets = ev(est, "estimate")
    return CalibrationResult(
        plan,
        est,
        f0,
        targets,
        [],
        intervals,
        [math.nan] * k,
        ev.log,
        x,
        w / w.sum(),
        gens,
        particle_losses=np.array(losses, dtype=float),
    )
