"""Baseline characteristics and between-patient variability, for given patient ids.

Each characteristic is drawn by inverse CDF from its own named stream (``streams.py``),
so patient k's values do not depend on how many patients run, on their order, or on
any other characteristic's distribution. Everything here is vectorized over patients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import cast

import numpy as np
from scipy import special

from .. import fmath, streams
from ..scenario.schema import Dist, Scenario, lognormal_params, lognormal_sigma

__all__ = ["Baseline", "ppf", "sample_baseline"]


def ppf(d: Dist, u: np.ndarray) -> np.ndarray:
    """Inverse CDF of a scenario distribution (truncation applied) at uniforms ``u``."""
    u = np.asarray(u, dtype=np.float64)
    if d.dist == "fixed":
        return np.full_like(u, float(d.value))  # type: ignore[arg-type]
    if d.dist == "uniform":
        return d.low + (d.high - d.low) * u  # type: ignore[operator]
    if d.dist == "lognormal":
        mu, sigma = lognormal_params(d)
        lo, hi = d.standard_bounds()
        return fmath.exp_array(mu + sigma * _truncated_std_normal(u, lo, hi))
    mean, sd = float(d.mean), float(d.sd)  # type: ignore[arg-type]
    lo, hi = d.standard_bounds()
    return mean + sd * _truncated_std_normal(u, lo, hi)


def _truncated_std_normal(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if lo == -np.inf and hi == np.inf:
        return cast(np.ndarray, special.ndtri(u))
    # Work in the tail that keeps precision: ndtr(lo) near 1 loses digits, ndtr(-hi) not.
    if lo > 0:
        a, b = special.ndtr(-lo), special.ndtr(-hi)
        return cast(np.ndarray, -special.ndtri(a - u * (a - b)))
    a, b = special.ndtr(lo), special.ndtr(hi)
    return cast(np.ndarray, special.ndtri(a + u * (b - a)))


@dataclass(slots=True)
class Baseline:
    """One entry per patient; the patient's own characteristics and sensitivities."""

    patient: np.ndarray
    age_years: np.ndarray
    female: np.ndarray
    weight_kg: np.ndarray
    dermatomyositis: np.ndarray
    lung_involvement: np.ndarray
    dysphagia: np.ndarray
    thrombosis_risk_factor: np.ndarray
    cpk_u_per_l: np.ndarray
    myoglobin_ng_per_ml: np.ndarray
    mmt8: np.ndarray
    cpk_background_u_per_l: np.ndarray
    myoglobin_background_ng_per_ml: np.ndarray
    steroid_sensitivity: np.ndarray
    ivig_sensitivity: np.ndarray
    igg_rise_g_per_l_per_g_per_kg: np.ndarray
    lasting_drive_log: np.ndarray
    acute_setpoint_log: np.ndarray
    rate_node: np.ndarray

    def take(self, idx: np.ndarray) -> Baseline:
        return Baseline(*(getattr(self, f.name)[idx] for f in fields(self)))


def _lognormal_unit_mean(z: np.ndarray, cv: float) -> np.ndarray:
    """Multiplicative variability with mean 1 and the given CV."""
    if cv == 0:
        return np.ones_like(z)
    s = lognormal_sigma(cv)
    return fmath.exp_array(s * z - 0.5 * s * s)


def correlated_normals(
    seed: int, ids: np.ndarray, correlation: list[list[float]], names: tuple[str, ...]
) -> np.ndarray:
    """Standard normal scores per patient, one column per name, correlated through the
    Cholesky factor of ``correlation`` (a Gaussian copula). Column j depends only on the
    patient's own streams ``population.<names[i]>`` for i <= j."""
    raw = np.stack([streams.normal(seed, ids, "population." + n) for n in names], axis=1)
    return fmath.correlate(raw, fmath.cholesky(np.asarray(correlation, dtype=np.float64)))


HETEROGENEITY = ("lasting_drive", "steroid_sensitivity", "ivig_sensitivity", "reversion_rate")


def sample_baseline(scn: Scenario, seed: int, patients: np.ndarray) -> Baseline:
    """Draw every patient characteristic for the given ids."""
    from .disease import RATE_NODES

    ids = np.asarray(patients, dtype=np.int64)
    pop, dis = scn.population, scn.disease

    def u(name: str) -> np.ndarray:
        return streams.uniform(seed, ids, "population." + name)

    def z(name: str) -> np.ndarray:
        return streams.normal(seed, ids, "population." + name)

    female = u("female") < pop.female
    weight = np.where(
        female, ppf(pop.weight_kg_female, u("weight_kg")), ppf(pop.weight_kg_male, u("weight_kg"))
    )
    z_cpk = z("cpk_u_per_l")
    rho = pop.cpk_myoglobin_correlation
    z_myo = rho * z_cpk + math.sqrt(1.0 - rho * rho) * z("myoglobin_ng_per_ml")
    derm = u("dermatomyositis") < pop.dermatomyositis
    act = dis.activity
    het = correlated_normals(seed, ids, dis.heterogeneity.correlation, HETEROGENEITY)
    drive = ppf(act.lasting_drive_log, special.ndtr(het[:, 0])) + np.where(
        derm, 0.0, act.polymyositis_shift_log
    )
    node = np.minimum((special.ndtr(het[:, 3]) * RATE_NODES).astype(np.int64), RATE_NODES - 1)
    return Baseline(
        patient=ids,
        age_years=ppf(pop.age_years, u("age_years")),
        female=female,
        weight_kg=weight,
        dermatomyositis=derm,
        lung_involvement=u("lung_involvement") < pop.lung_involvement,
        dysphagia=u("dysphagia") < pop.dysphagia,
        thrombosis_risk_factor=u("thrombosis_risk_factor") < pop.thrombosis_risk_factor,
        cpk_u_per_l=ppf(pop.cpk_u_per_l, special.ndtr(z_cpk)),
        myoglobin_ng_per_ml=ppf(pop.myoglobin_ng_per_ml, special.ndtr(z_myo)),
        mmt8=ppf(pop.mmt8_baseline, u("mmt8_baseline")),
        cpk_background_u_per_l=ppf(dis.enzymes.cpk_background_u_per_l, u("cpk_background")),
        myoglobin_background_ng_per_ml=ppf(
            dis.enzymes.myoglobin_background_ng_per_ml, u("myoglobin_background")
        ),
        steroid_sensitivity=_lognormal_unit_mean(het[:, 1], dis.steroid.sensitivity_cv),
        ivig_sensitivity=_lognormal_unit_mean(het[:, 2], dis.ivig.sensitivity_cv),
        igg_rise_g_per_l_per_g_per_kg=dis.igg.rise_g_per_l_per_g_per_kg
        * _lognormal_unit_mean(z("igg_rise"), dis.igg.rise_cv),
        lasting_drive_log=drive,
        acute_setpoint_log=np.maximum(ppf(act.acute_setpoint_log, u("acute_setpoint_log")), drive),
        rate_node=node,
    )
