"""The closed-form state update equals a numerical ODE solution of the same equations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from simulator.kernel.disease import Propagator
from simulator.kernel.xp import ARRAY, SCALAR


def rhs(k, r, kb, af, as_, ke, setpoint, c, g):
    """dy, dw, dz, dxf, dxs, dv written out as in docs/model.md (not from the matrix)."""

    def f(_t, s):
        y, w, z, xf, xs, v = s
        return [
            k * (setpoint + z - y) - c - g * v,
            r * k * (setpoint + z - w) - r * (c + g * v),
            -kb * z,
            -af * xf,
            -as_ * xs,
            ke * (xf + xs - v),
        ]

    return f


def closed_form(prop, xp, tau, state, k, setpoint, c, g):
    yy, yz, yp, yf, ys, yv, ww, wz, wp, wf, ws, wv, zz, ff, ss, vf, vs, vv = prop(xp, tau)
    y, w, z, xf, xs, v = state
    p = k * setpoint - c
    return (
        yy * y + yz * z + yp * p + g * (yf * xf + ys * xs + yv * v),
        ww * w + wz * z + wp * p + g * (wf * xf + ws * xs + wv * v),
        zz * z, ff * xf, ss * xs, vf * xf + vs * xs + vv * v,
    )


RATES = [
    # k, r, k_b, a_f, a_s, k_e: generic values, and values where rates coincide
    (0.03, 0.33, math.log(2) / 90, math.log(2) / 3.5, math.log(2) / 21, math.log(2) / 30),
    (0.05, 1.0, 0.05, 0.2, 0.05, 0.05),          # k == k_b == a_s == k_e, r = 1
    (0.1, 0.5, 0.01, 0.1, 0.02, 0.2),            # k == a_f
    (0.02, 0.25, 0.02 * 0.25, 0.3, 0.03, 0.3),   # r k == k_b, a_f == k_e
]


@pytest.mark.parametrize("rates", RATES)
@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 7.0, 28.0, 180.0])
def test_closed_form_matches_solve_ivp(rates, tau):
    k, r, kb, af, as_, ke = rates
    prop = Propagator(k, r, kb, af, as_, ke)
    rng = np.random.default_rng(7)
    for _ in range(3):
        state = (rng.normal(0, 1), rng.normal(0, 1), rng.uniform(0, 5), rng.uniform(0, 40),
                 rng.uniform(0, 10), rng.uniform(0, 20))
        setpoint, c, g = rng.normal(-3, 1), rng.uniform(0, 0.1), rng.uniform(0, 0.01)
        exact = closed_form(prop, SCALAR, tau, state, k, setpoint, c, g)
        if tau == 0.0:
            np.testing.assert_allclose(exact, state, rtol=0, atol=1e-14)
            continue
        sol = solve_ivp(rhs(k, r, kb, af, as_, ke, setpoint, c, g), (0.0, tau), state,
                        method="DOP853", rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(exact, sol.y[:, -1], rtol=1e-8, atol=1e-9)


def test_array_and_scalar_paths_agree():
    prop = Propagator(*RATES[0])
    taus = np.array([0.0, 1.0, 7.0, 1.0, 28.0, 3.5])
    arrays = prop(ARRAY, taus)
    for i, tau in enumerate(taus):
        scalars = prop(SCALAR, float(tau))
        np.testing.assert_array_equal([a[i] for a in arrays], scalars)


def test_composition_of_steps_equals_one_step():
    """Phi(a + b) = Phi(b) Phi(a): advancing in two steps is the same as in one."""
    k, r, kb, af, as_, ke = RATES[0]
    prop = Propagator(k, r, kb, af, as_, ke)
    state = (0.0, 0.0, 3.0, 20.0, 3.0, 0.0)
    one = closed_form(prop, SCALAR, 30.0, state, k, -3.0, 0.04, 0.003)
    mid = closed_form(prop, SCALAR, 12.0, state, k, -3.0, 0.04, 0.003)
    two = closed_form(prop, SCALAR, 18.0, mid, k, -3.0, 0.04, 0.003)
    np.testing.assert_allclose(one, two, rtol=1e-12, atol=1e-12)


def test_no_treatment_relaxes_to_setpoint():
    k, r, kb, af, as_, ke = RATES[0]
    prop = Propagator(k, r, kb, af, as_, ke)
    y, w, *_ = closed_form(prop, SCALAR, 3000.0, (0.0, 0.0, 2.0, 0.0, 0.0, 0.0), k, -3.0, 0.0,
                           0.0)
    assert y == pytest.approx(-3.0, abs=1e-6)
    assert w == pytest.approx(-3.0, abs=1e-6)


def test_constant_treatment_lowers_equilibrium_by_effect_over_rate():
    k, r, kb, af, as_, ke = RATES[0]
    prop = Propagator(k, r, kb, af, as_, ke)
    y, *_ = closed_form(prop, SCALAR, 5000.0, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0), k, -3.0, 0.06, 0.0)
    assert y == pytest.approx(-3.0 - 0.06 / k, abs=1e-6)
