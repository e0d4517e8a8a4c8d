"""Published studies as files, and how the model holds up against them.

A study file (``studies/*.yaml``, schema in ``scenario/study_schema.py``) names the
scenario(s) that emulate a published study's population, regimen, entry criteria and
follow-up, the outcomes the study reports as simulator metrics (one arm, or a paired
difference between two arms on the same patients), and the published values with their
uncertainty (counts give the proportion and its Wilson 95% interval). Each target is
tagged ``calibration`` (the model's defaults were fitted to it) or ``validation`` (the
model was not fitted to it: external validation).

:func:`load_study` checks everything before anything runs; :func:`evaluate` simulates a
study and returns one :class:`TargetResult` per target: the published value and 95%
interval, the simulated value and its Monte Carlo 95% interval, and whether the two
intervals overlap (the criterion of docs/model.md §6) and whether the published value
lies inside the simulated interval.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .scenario import Scenario
from .scenario.study_schema import Published, StudyFile, StudyTarget
from .stats import Z95, wilson_ci

__all__ = [
    "Study",
    "TargetResult",
    "evaluate",
    "load_studies",
    "load_study",
    "published_interval",
    "share_predicted_below",
    "simulate_arms",
    "target_arms",
    "target_result",
]


def share_predicted_below(simulated: Any, weights: Any, target: Mapping[str, Any]) -> float | None:
    """Where a published figure falls in the model's prediction of it (``target``: a
    :class:`TargetResult`'s JSON, or any mapping with its ``published``,
    ``published_low``, ``published_high`` and optional ``published_events`` and
    ``published_n``): the probability,
    under a (weighted) sample of the model's expected values of a target (one per
    posterior particle or parameter draw), that a study like the published one reports
    less than it (ties half). A study reports its expected value plus its own sampling
    error: for counts, ``events`` of ``n`` patients are Binomial(n, p) at each simulated
    p, so the published count is scored against that mixture; for a value with a 95%
    interval, a normal error with the SD the interval implies ((high - low) / 3.92).
    Without that error (the spread of the expected value alone, as until 2026-11-29), a
    study of 8 patients is "missed" by a model that predicts it well: Hara 2003's 7/8 fell
    below 0.2% of the posterior's expected values, and at 3.9% of its predicted counts.
    None when no value is simulated."""
    from scipy import stats as sps

    x = np.asarray(simulated, dtype=float)
    w = np.asarray(weights, dtype=float)
    ok = np.isfinite(x) & (w > 0)
    if not ok.any():
        return None
    x, w = x[ok], w[ok] / w[ok].sum()
    published, low, high = target["published"], target["published_low"], target["published_high"]
    events, n = target.get("published_events"), target.get("published_n")
    if events is not None and n is not None:
        p = np.clip(x, 0.0, 1.0)
        below = sps.binom.cdf(events - 1, n, p) + 0.5 * sps.binom.pmf(events, n, p)
    elif low is not None and high is not None and high > low:
        below = sps.norm.cdf(published, loc=x, scale=(high - low) / (2 * Z95))
    else:
        below = (x < published) + 0.5 * (x == published)
    return float(np.sum(w * below))


def published_interval(p: Published) -> tuple[float, float, float]:
    """(value, low, high) of a published figure: Wilson for counts, value +/- 1.96 SE for
    a standard error, else the given 95% interval."""
    if p.events is not None and p.n is not None:
        lo, hi = wilson_ci(p.events, p.n)
        return p.events / p.n, lo, hi
    assert p.value is not None
    if p.se is not None:
        return p.value, p.value - Z95 * p.se, p.value + Z95 * p.se
    assert p.ci95 is not None
    return p.value, p.ci95[0], p.ci95[1]


@dataclass(frozen=True)
class Study:
    path: Path
    spec: StudyFile
    arms: list[str]
    arm_files: list[Path]
    scenarios: list[Scenario]

    @property
    def name(self) -> str:
        return self.path.stem

    def role_of(self, target: StudyTarget) -> str:
        return target.role or self.spec.role


@dataclass(frozen=True)
class TargetResult:
    study: str
    citation: str
    role: str
    label: str
    metric: str
    arm: str
    estimator: str
    published: float
    published_low: float
    published_high: float
    simulated: float | None
    simulated_low: float | None
    simulated_high: float | None
    patients: int
    # the seed the arms ran with, and the patients the estimate is over (those with a
    # value: for an outcome among entered patients, fewer than ``patients``)
    seed: int | None = None
    assessed: int | None = None
    # the published counts (events of n) where the figure is a proportion of a sample
    published_events: int | None = None
    published_n: int | None = None

    @property
    def overlaps(self) -> bool:
        """The simulated 95% Monte Carlo interval overlaps the published 95% interval."""
        if self.simulated_low is None or self.simulated_high is None:
            return False
        return self.simulated_low <= self.published_high and self.simulated_high >= (
            self.published_low
        )

    @property
    def published_inside_simulated(self) -> bool:
        if self.simulated_low is None or self.simulated_high is None:
            return False
        return self.simulated_low <= self.published <= self.simulated_high

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "overlaps": self.overlaps,
            "published_inside_simulated": self.published_inside_simulated,
        }


def load_study(path: str | os.PathLike[str], sets: tuple[str, ...] = ()) -> Study:
    """Read and check a study file: every problem is an InputError naming the file, the
    line and the value, before anything runs. ``sets`` (``--set PATH=VALUE``) apply to
    every arm's scenario."""
    from .outcomes import metric_specs
    from .runner import _plan_for
    from .scenario import load_scenario
    from .scenario.load import check_named_file, read_scenario, validate, warn_if_outside

    path = Path(path)
    data, linemap = read_scenario(path, what="study file")
    spec = validate(data, StudyFile, linemap, str(path))
    arms = list(spec.arms)
    files, scns = [], []
    for arm in arms:
        target = path.parent / Path(spec.arms[arm]).expanduser()
        # missing, a directory, a FIFO, too large: the message names this file, the line
        # and arms.<arm>
        check_named_file(
            target,
            spec.arms[arm],
            what="scenario file",
            referrer=path,
            loc=("arms", arm),
            linemap=linemap,
        )
        warn_if_outside(target, path, f"{path}: arms.{arm}")
        files.append(target)
        scns.append(load_scenario(target, list(sets)))
    specs = {
        a: {m.name: m for m in metric_specs(_plan_for(s))} for a, s in zip(arms, scns, strict=True)
    }
    for i, t in enumerate(spec.targets):
        where = ("targets", i)
        named = [t.arm or arms[0]] if t.difference is None else list(t.difference)
        for a in named:
            known = specs[a]
            if t.metric not in known:
                near = difflib.get_close_matches(t.metric, list(known), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                raise InputError(
                    f"targets[{i}].metric: unknown metric {t.metric!r} for arm {a!r}{hint};"
                    " any metric of summary.json may be used",
                    file=str(path),
                    line=linemap.line_for((*where, "metric")),
                )
        kind = specs[named[0]][t.metric].kind
        _check_published(t, kind, str(path), linemap.line_for((*where, "published")), i)
    if any(t.difference is not None for t in spec.targets):
        from .comparison import check_same_patients

        try:
            check_same_patients(scns, arms, spec.seed is not None, False, "validate")
        except InputError as err:
            raise InputError(
                "arms: a difference between arms needs the arms to be the same patients; "
                + err.message,
                file=str(path),
                line=linemap.line_for(("arms",)),
                problems=err.problems,
            ) from None
    return Study(path, spec, arms, files, scns)


def load_studies(
    paths: Sequence[str | os.PathLike[str]], sets: tuple[str, ...] = ()
) -> list[Study]:
    """:func:`load_study` for each of ``paths`` (``simulate validate A.yaml B.yaml``),
    refusing the same study file given twice (the same file once resolved, however it is
    written) before any is read: each of its targets would count twice in the share of
    targets met."""
    seen: dict[Path, str] = {}
    for p in paths:
        name = os.fspath(p)
        key = _resolved(Path(name))
        if key in seen:
            also = "" if seen[key] == name else f" (also given as {seen[key]})"
            raise InputError(
                f"the same study file is given twice{also}; each of its targets would count"
                " twice in the share of targets met: give each study file once",
                file=name,
            )
        seen[key] = name
    return [load_study(p, sets) for p in paths]


def _resolved(path: Path) -> Path:
    """``path`` made absolute with links and ``..`` resolved: the identity of a file."""
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path.expanduser()))


def _check_published(t: StudyTarget, kind: str, file: str, line: int | None, i: int) -> None:
    p = t.published
    where = f"targets[{i}].published"
    if p.events is not None and kind != "proportion":
        raise InputError(
            f"{where}: counts (events, n) describe a proportion, but {t.metric} is a {kind}",
            file=file,
            line=line,
        )
    if kind == "proportion":
        lo_ok = -1.0 if t.difference is not None else 0.0
        value, low, high = published_interval(p)
        for name, v in (("value", value), ("ci95", low), ("ci95", high)):
            if not lo_ok <= v <= 1.0:
                raise InputError(
                    f"{where}.{name}: {v:g} is not a possible "
                    + ("difference of proportions" if t.difference else "proportion")
                    + f" ({lo_ok:g} to 1)",
                    file=file,
                    line=line,
                )


def simulate_arms(
    scns: Sequence[Scenario], names: Sequence[str], **kwargs: Any
) -> dict[str, dict[str, Any]]:
    """Per metric ``{mean, ci95, estimator, n}``: of the one arm in ``scns``, or of the paired
    difference ``names[1] - names[0]`` between two arms on the same patients. ``kwargs``
    go to ``run`` or ``compare`` (patients, seed, workers, engine, ...)."""
    if len(scns) == 1:
        from .runner import run

        m = run(scns[0], **kwargs).metrics
        return {
            k: {"mean": v["mean"], "ci95": v["ci95"], "estimator": v["estimator"], "n": v.get("n")}
            for k, v in m.items()
        }
    from .comparison import compare

    res = compare(list(scns), names=list(names), **kwargs).outcomes()
    b = names[1]
    return {
        k: {
            "mean": v["differences"][b]["mean_difference"],
            "ci95": v["differences"][b]["ci95"],
            "estimator": v.get("difference_estimator", ""),
            "n": v["differences"][b].get("n"),
        }
        for k, v in res.items()
        if b in v["differences"]
    }


def target_arms(study: Study, t: StudyTarget) -> tuple[str, ...]:
    """The arms a target reads: its arm, or the two arms of its difference."""
    return tuple(t.difference) if t.difference is not None else (t.arm or study.arms[0],)


def target_result(
    study: Study, t: StudyTarget, m: dict[str, Any], patients: int, seed: int | None = None
) -> TargetResult:
    """A target's published value next to its simulated one (``m``: the metric's entry
    from :func:`simulate_arms`, empty when the simulation could not estimate it)."""
    value, low, high = published_interval(t.published)
    lo, hi = m.get("ci95") or (None, None)
    sim = [None if v is None or v != v else float(v) for v in (m.get("mean"), lo, hi)]
    arms = target_arms(study, t)
    return TargetResult(
        study=study.name,
        citation=study.spec.citation,
        role=study.role_of(t),
        label=t.label or t.metric,
        metric=t.metric,
        arm=arms[0] if len(arms) == 1 else f"{arms[1]} - {arms[0]}",
        estimator=m.get("estimator", ""),
        published=value,
        published_low=low,
        published_high=high,
        simulated=sim[0],
        simulated_low=sim[1],
        simulated_high=sim[2],
        patients=patients,
        seed=seed,
        assessed=int(m["n"]) if isinstance(m.get("n"), int | float) else None,
        published_events=t.published.events,
        published_n=t.published.n,
    )


def evaluate(
    study: Study,
    *,
    patients: int | None = None,
    seed: int | None = None,
    workers: int = 1,
    engine: str = "auto",
    progress: bool | None = False,
    dask: str | None = None,
) -> list[TargetResult]:
    """Simulate the study's arms (on the same patients when it has a difference target)
    and compare each target with its published value."""
    n = patients if patients is not None else study.spec.patients
    seed = seed if seed is not None else study.spec.seed
    simulated: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}
    read: dict[tuple[str, ...], set[str]] = {}  # the metrics the targets of each arm set read
    for t in study.spec.targets:
        read.setdefault(target_arms(study, t), set()).add(t.metric)
    for t in study.spec.targets:
        arms = target_arms(study, t)
        if arms not in simulated:
            simulated[arms] = simulate_arms(
                [study.scenarios[study.arms.index(a)] for a in arms],
                arms,
                patients=n,
                seed=seed,
                workers=workers,
                engine=engine,
                progress=progress,
                dask=dask,
                metrics=frozenset(read[arms]),
            )
    return [
        target_result(
            study,
            t,
            simulated[target_arms(study, t)].get(t.metric, {}),
            n,
            # the seed the target's arms ran with: the study's (or --seed), else the first
            # arm's own (a difference's arms share it: load_study checks)
            seed
            if seed is not None
            else study.scenarios[study.arms.index(target_arms(study, t)[0])].seed,
        )
        for t in study.spec.targets
    ]


def share_inside(results: list[TargetResult]) -> float:
    """The share of targets whose simulated interval overlaps the published one."""
    return sum(r.overlaps for r in results) / len(results) if results else math.nan
