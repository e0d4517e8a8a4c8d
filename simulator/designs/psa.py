"""Probabilistic sensitivity analysis: parameters drawn by inverse CDF of their
distributions from the sweep seed (optionally correlated through a Gaussian copula); the
decision analysis per draw: CEAC, CEAF, EVPI and EVPPI per parameter group by a
generalised additive metamodel (Strong, Oakley & Brennan 2014)."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from .. import fmath
from ..kernel.population import ppf
from ..parallel import session_map
from ..scenario.sweep_schema import PSA
from .common import Point, uniform_rows

KEEPS_PATIENT_VALUES = False
#: the fewest draws a GAM metamodel of EVPPI is fitted to; below, EVPPI is not computed
MIN_DRAWS_EVPPI = 20

log = logging.getLogger(__name__)


def preload() -> None:
    """Import the metamodels' library (pyGAM, which loads scipy.stats: ~0.5 s) in the
    process that starts the workers, before they are forked, so that they share it
    instead of each importing it when the analysis fits the metamodels."""
    import pygam  # noqa: F401


def points(design: PSA, seed: int, base_values: dict[str, Any]) -> list[Point]:
    names = list(design.parameters)
    u = uniform_rows(seed, design.draws, len(names), "sweep.psa")
    if design.correlation is not None:
        chol = fmath.cholesky(np.asarray(design.correlation, dtype=float))
        u = special.ndtr(fmath.correlate(special.ndtri(u), chol))
    cols = [ppf(design.parameters[n], u[:, j]) for j, n in enumerate(names)]
    return [{n: float(cols[j][i]) for j, n in enumerate(names)} for i in range(design.draws)]


def analyse(
    design: PSA,
    points: list[Point],
    outputs: list[dict[str, float]],
    seed: int,
    base_values: dict[str, Any],
    keys: Sequence[str],
) -> dict[str, Any]:
    return {}  # the decision analysis needs the strategies: decision_analysis()


def decision_analysis(plan: Any, outputs: list[dict[str, float]]) -> dict[str, Any]:
    """The PSA's decision analysis at the scenario's willingness to pay, on the
    cost-effectiveness horizon's cost and QALY outcomes."""
    from ..outcomes import cea_columns, decision_population

    scn = plan.scenarios[0]
    out = psa_analysis(
        plan.spec.design,
        plan.points,
        outputs,
        plan.arms,
        scn.economics.willingness_to_pay_per_qaly,
        cea_columns(scn),
        decision_population(scn),
    )
    # what the costs and QALYs are, for the labels of the figures and the report
    out["cea_horizon"] = scn.economics.cea_horizon
    out["horizon_days"] = scn.horizon_days
    out["discount_rate_per_year"] = scn.economics.discount_rate_per_year
    return out


def _evpi(nmb: np.ndarray) -> float:
    """E[max NMB] - max E[NMB] over draws; never negative (Jensen), so a negative value
    is rounding and is clipped to 0. Exactly 0 when one strategy is the best in every
    draw (then E[max] is that strategy's mean, the largest: the two sums differ only by
    rounding, which would show as an EVPI of ~1e-11)."""
    best = nmb.argmax(axis=1)
    if nmb.shape[0] and bool(np.all(best == best[0])):
        return 0.0
    return max(0.0, float(np.mean(nmb.max(axis=1)) - nmb.mean(axis=0).max()))


def _bootstrap_se(fn: Any, rows: int, seed: int, reps: int = 200) -> float:
    """Standard error of a statistic of the draws, by resampling draws (fixed seed)."""
    rng = np.random.default_rng(seed)
    vals = [fn(rng.integers(0, rows, rows)) for _ in range(reps)]
    return float(np.std(vals, ddof=1))


def psa_analysis(
    design: PSA,
    points: list[Point],
    outputs: list[dict[str, float]],
    arms: list[str],
    reference_wtp: float,
    columns: tuple[str, str] = ("cost_total", "qaly"),
    population: float | None = None,
) -> dict[str, Any]:
    """CEAC, CEAF, EVPI and EVPPI from per-draw mean costs and QALYs of each arm
    (``columns``: the cost and QALY outcomes the analysis uses, lifetime or clinical
    horizon). EVPI and EVPPI are per patient, never negative, with bootstrap standard
    errors over draws; ``population`` (discounted patients over the decision's lifetime)
    scales them to a population."""
    cost_col, qaly_col = columns
    cost = np.array([[o[f"{a}:{cost_col}"] for a in arms] for o in outputs])
    qaly = np.array([[o[f"{a}:{qaly_col}"] for a in arms] for o in outputs])
    wtps = sorted(set(design.willingness_to_pay) | {reference_wtp})
    ceac: dict[str, list[float]] = {a: [] for a in arms}
    evpi, optimal, ceaf = [], [], []
    for w in wtps:
        nmb = w * qaly - cost
        best = np.argmax(nmb, axis=1)
        for j, a in enumerate(arms):
            ceac[a].append(float(np.mean(best == j)))
        evpi.append(_evpi(nmb))
        # CEAF: the strategy with the highest expected NMB, and how often it is the best
        k = int(np.argmax(nmb.mean(axis=0)))
        optimal.append(arms[k])
        ceaf.append(ceac[arms[k]][-1])
    nmb = reference_wtp * qaly - cost
    rows = nmb.shape[0]
    evpi_ref = evpi[wtps.index(reference_wtp)]
    evpi_se = _bootstrap_se(lambda i: _evpi(nmb[i]), rows, 1) if rows > 1 else None
    # the drawn parameters, and a posterior's columns (from_posterior) after them
    names = list(points[0]) if points else list(design.parameters)
    groups = design.groups or {n: [n] for n in names}
    x_all = np.array([[p[n] for n in names] for p in points])
    evppi: dict[str, float | None] = {}
    evppi_se: dict[str, float | None] = {}
    r2: dict[str, list[float]] = {}
    unavailable = None
    capped: list[str] = []  # groups whose estimate exceeded the EVPI
    if rows < MIN_DRAWS_EVPPI:
        # too few draws to fit a metamodel: not computed (null), never shown as 0
        unavailable = (
            f"EVPPI not computed: its metamodel needs at least {MIN_DRAWS_EVPPI} draws"
            f" (this PSA has {rows})"
        )
        log.warning("%s", unavailable)
        evppi = dict.fromkeys(groups)
        evppi_se = dict.fromkeys(groups)
        r2 = {g: [] for g in groups}
    else:
        # The metamodels, one a group and strategy after the first, on a sweep's workers
        # (session_map): each strategy's incremental NMB against the first (Strong,
        # Oakley & Brennan 2014). Regressing each strategy's own NMB would fit the noise
        # the strategies share separately in each, and it would not cancel in the max.
        inb = nmb[:, 1:] - nmb[:, :1]
        tasks = [
            (x_all[:, [names.index(m) for m in members]], inb[:, j])
            for members in groups.values()
            for j in range(len(arms) - 1)
        ]
        fits = iter(session_map(_fit, tasks))
        for g in groups:
            fitted = np.column_stack([np.zeros(rows), *(next(fits) for _ in arms[1:])])
            evppi[g] = _evpi(fitted)
            evppi_se[g] = _bootstrap_se(lambda i, f=fitted: _evpi(f[i]), rows, 2)
            r2[g] = [_r_squared(inb[:, j], fitted[:, j + 1]) for j in range(len(arms) - 1)]
            if evppi[g] > evpi_ref:
                # knowing some parameters is worth no more than knowing them all: an
                # estimate above the EVPI is the metamodel fitting the draws' noise
                log.warning(
                    "EVPPI of %r (%.4g) exceeds the EVPI (%.4g) at %g per QALY: the"
                    " metamodel overfits (R-squared %s); reported as the EVPI",
                    g,
                    evppi[g],
                    evpi_ref,
                    reference_wtp,
                    ", ".join(f"{v:.3f}" for v in r2[g]),
                )
                capped.append(g)
                evppi[g] = evpi_ref
    se_cost = np.array([[o.get(f"{a}:{cost_col}_se", math.nan) for a in arms] for o in outputs])
    se_qaly = np.array([[o.get(f"{a}:{qaly_col}_se", math.nan) for a in arms] for o in outputs])
    out = {
        "willingness_to_pay": wtps,
        "ceac": ceac,
        "evpi_per_patient": evpi,
        "optimal_strategy": optimal,
        "ceaf": ceaf,
        "reference_willingness_to_pay": reference_wtp,
        "evpi_at_reference": evpi_ref,
        "evpi_at_reference_se": evpi_se,
        "evppi_per_patient_at_reference": evppi,
        "evppi_se": evppi_se,
        "evppi_metamodel_r_squared": r2,
        "evppi_metamodel_strategies": [f"{a} - {arms[0]}" for a in arms[1:]],
        "evppi_groups": {g: list(members) for g, members in groups.items()},
        "cost": cost_col,
        "effect": qaly_col,
        "mean_inner_mc_se": {cost_col: _nanmean(se_cost), qaly_col: _nanmean(se_qaly)},
        "note": "EVPI/EVPPI are per patient (and per population when the scenario gives"
        " one); the inner-loop Monte Carlo error of each draw inflates them slightly"
        " (see mean_inner_mc_se); EVPPI from a generalised additive model of each"
        f" strategy's incremental NMB against {arms[0]} on the group's parameters"
        " (Strong et al. 2014; R-squared per strategy after the first reported);"
        " standard errors by resampling draws"
        " (for EVPPI, the fitted values, without refitting).",
    }
    if unavailable is not None:
        out["evppi_unavailable"] = unavailable
    if capped:
        out["evppi_capped_at_evpi"] = capped
    if population is not None:
        out["population"] = population
        out["evpi_population_at_reference"] = evpi_ref * population
        out["evppi_population_at_reference"] = {
            g: None if v is None else v * population for g, v in evppi.items()
        }
    return out


def _r_squared(y: np.ndarray, fitted: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - fitted) ** 2)) / ss if ss > 0 else 1.0


def _nanmean(a: np.ndarray) -> float | None:
    finite = a[np.isfinite(a)]
    return float(finite.mean()) if finite.size else None


def _fit(task: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``_metamodel`` of one (x, y) pair (a task of ``parallel.session_map``)."""
    return _metamodel(*task)


def _metamodel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fitted values of a generalised additive model of y on x (Strong, Oakley & Brennan
    2014): a penalised spline of one parameter, a tensor-product spline of two or three,
    and beyond that a tensor-product spline of each pair (pyGAM, smoothing chosen by
    generalised cross-validation). A group's parameters act on the net benefit together
    (a price times a quantity, an efficacy times a duration): an additive model, one
    spline a parameter, cannot see that and understates the group's EVPPI (1000 z1 z2
    with z3 unrelated: 85 against an EVPI of 300 at 1,000 draws; 300 now). The pairs
    miss what only three or more parameters do together; a full tensor product of four
    or more has more coefficients than a PSA's few hundred draws can fit. The mean
    when the parameters or y do not vary (then the fitted values are that mean exactly).
    Needs at least ``MIN_DRAWS_EVPPI`` rows."""
    import warnings

    import pygam

    n, k = x.shape
    if n < MIN_DRAWS_EVPPI:
        raise ValueError(f"a metamodel needs at least {MIN_DRAWS_EVPPI} draws, got {n}")
    spread = x.std(axis=0)
    if not np.any(spread > 0) or np.ptp(y) == 0:
        return np.full(n, y.mean())
    x = (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    splines = max(4, min(10, n // (4 * k)))
    if k == 1:
        terms = pygam.s(0, n_splines=splines)
    elif k == 2:
        terms = pygam.te(0, 1, n_splines=max(4, min(6, splines)))
    elif k == 3:
        terms = pygam.te(0, 1, 2, n_splines=4)
    else:
        pairs = itertools.combinations(range(k), 2)
        terms = pygam.terms.TermList(*[pygam.te(i, j, n_splines=4) for i, j in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gam = pygam.LinearGAM(terms).gridsearch(x, y, lam=np.logspace(-3, 3, 7), progress=False)
    return np.asarray(gam.predict(x), dtype=np.float64)


def figures(result: Any, folder: Path) -> list[str]:
    from ..report.sweep_figures import _psa_figures

    return _psa_figures(result, folder)
