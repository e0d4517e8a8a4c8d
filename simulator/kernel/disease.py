"""Latent disease activity, strength and the enzymes that show them: closed form.

State between events (docs/model.md, "Equations"), all linear with constant coefficients:

    dy/dt   = k (s_c + z - y) - e - g v              log disease activity, y(0) = 0
    dw/dt   = r k (s_c + z - w) - r (e + g v)        log strength deficit, w(0) = 0
    dz/dt   = -k_b z                                 fading acute drive, z(0) = s_0 - s_c
    dx_f/dt = -a_f x_f,  dx_s/dt = -a_s x_s          serum IgG excess, g/L (pk.py)
    dv/dt   = k_e (x_f + x_s - v)                    IgG-driven immunomodulation, g/L
    de/dt   = k_c (c - e)                            steroid + sparing effect, 1/day

``c`` (the steroid plus sparing-agent effect the current doses would reach, 1/day) and
the per-patient constants s_c and g are fixed between events; the rate constants k, r,
k_b, a_f, a_s, k_e, k_c are the same for every patient of a scenario. The exact solution
over an interval of length tau is therefore x(tau) = Phi(tau) x(0) with Phi = expm(A tau)
of one 9x9 matrix per scenario (two constant states carry s_c and c). g enters only
through the v -> y and v -> w couplings, so the per-patient result is the scenario-level
Phi with those columns scaled by g. Phi is computed once per distinct tau (events fall
on whole days, so there are few) and cached; this handles coinciding rates without
special cases.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from scipy.linalg import expm

from .xp import Ops

__all__ = ["Propagator", "enzyme_level", "measured", "mmt8"]

Y, W, Z, XF, XS, V, E, SC, C = range(9)


class Propagator:
    """Exact transition coefficients of the linear state over a time step."""

    __slots__ = ("_cache", "_max", "matrix")

    def __init__(self, activity_rate: float, strength_ratio: float, burnout_rate: float,
                 fast_rate: float, slow_rate: float, effect_rate: float,
                 steroid_rate: float, cache_size: int = 8192) -> None:
        k, r = activity_rate, strength_ratio
        a = np.zeros((9, 9))
        a[Y, Y], a[Y, Z], a[Y, V], a[Y, E], a[Y, SC] = -k, k, -1.0, -1.0, k
        a[W, W], a[W, Z], a[W, V], a[W, E], a[W, SC] = -r * k, r * k, -r, -r, r * k
        a[Z, Z] = -burnout_rate
        a[XF, XF] = -fast_rate
        a[XS, XS] = -slow_rate
        a[V, XF], a[V, XS], a[V, V] = effect_rate, effect_rate, -effect_rate
        a[E, E], a[E, C] = -steroid_rate, steroid_rate
        self.matrix = a
        self._cache: OrderedDict[float, tuple[float, ...]] = OrderedDict()
        self._max = cache_size

    def _coefficients(self, tau: float) -> tuple[float, ...]:
        hit = self._cache.get(tau)
        if hit is not None:
            return hit
        phi = expm(self.matrix * tau)
        out = tuple(float(x) for x in (
            phi[Y, Y], phi[Y, Z], phi[Y, E], phi[Y, SC], phi[Y, C],
            phi[Y, XF], phi[Y, XS], phi[Y, V],
            phi[W, W], phi[W, Z], phi[W, E], phi[W, SC], phi[W, C],
            phi[W, XF], phi[W, XS], phi[W, V],
            phi[Z, Z], phi[XF, XF], phi[XS, XS], phi[V, XF], phi[V, XS], phi[V, V],
            phi[E, E],
        ))
        self._cache[tau] = out
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return out

    def __call__(self, xp: Ops, tau: Any) -> tuple[Any, ...]:
        """The 23 coefficients for step(s) ``tau`` (a float, or an array of them).

        Order: y from (y, z, e, s_c, c, x_f, x_s, v); w from the same; then z, x_f, x_s
        on themselves, v from x_f, x_s and v, e from e (from c: 1 minus that).
        """
        if not xp.vector:
            return self._coefficients(tau)
        values, inverse = np.unique(tau, return_inverse=True)
        table = np.array([self._coefficients(float(t)) for t in values])
        return tuple(table[inverse.reshape(np.shape(tau)), j] for j in range(table.shape[1]))


def enzyme_level(xp: Ops, y: Any, baseline: Any, background: Any) -> Any:
    """True enzyme level: background plus the disease-driven excess scaled by exp(y).

    The excess is the day-0 level minus the patient's background. CPK's plasma half-life
    (~1.5 days, parameters.md section 3) is short against the weeks over which activity
    moves, so the level is taken as in equilibrium with activity (docs/model.md).
    """
    excess = xp.maximum(baseline - background, 0.0)
    return background + excess * xp.exp(y)


def measured(xp: Ops, true_value: Any, sigma_log: float, z: Any) -> Any:
    """A lab result: lognormal assay noise with mean 1 (sigma_log = sqrt(log(1 + CV^2))).

    Mean-preserving, so the average measured value equals the average true value.
    """
    return true_value * xp.exp(sigma_log * z - 0.5 * sigma_log * sigma_log)


def mmt8(xp: Ops, w: Any, baseline: Any, noise_sd: float, z: Any) -> Any:
    """Measured MMT-8 (0-150): the baseline deficit scaled by exp(w), plus rater noise."""
    value = 150.0 - (150.0 - baseline) * xp.exp(w) + noise_sd * z
    return xp.minimum(xp.maximum(value, 0.0), 150.0)
