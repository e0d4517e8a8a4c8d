"""The closed-form state update equals a numerical ODE solution of the same equations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from simulator.kernel.disease import Propagator
from simulator.kernel.xp import ARRAY, SCALAR


def rhs(k, r, kb, af, as_, ke, kc, setpoint, c, g):
    """The equations of docs/model.md written out by hand (not from the matrix)."""

    def f(_t, s):
        y, w, z, xf, xs, v, e = s
        return [
            k * (setpoint + z - y) - e - g * v,
            r * k * (setpoint + z - w) - r * (e + g * v),
            -kb * z,
            -af * xf,
            -as_ * xs,
            ke * (xf + xs - v),
            kc * (c - e),
        ]

    return f


def closed_form(prop, xp, tau, state, setpoint, c, g):
    (yy, yz, ye, ysc, yc, yf, ys, yv, ww, wz, we, wsc, wc, wf, ws, wv,
     zz, ff, ss, vf, vs, vv, ee) = prop(xp, tau)
    y, w, z, xf, xs, v, e = state
    return (
        yy * y + yz * z + ye * e + ysc * setpoint + yc * c + g * (yf * xf + ys * xs + yv * v),
        ww * w + wz * z + we * e + wsc * setpoint + wc * c + g * (wf * xf + ws * xs + wv * v),
        zz * z, ff * xf, ss * xs, vf * xf + vs * xs + vv * v, ee * e + (1 - ee) * c,
    )


RATES = [
    # k, r, k_b, a_f, a_s, k_e, k_c: generic values, then values where rates coincide
    (0.03, 0.33, math.log(2) / 90, math.log(2) / 3.5, math.log(2) / 21, math.log(2) / 30,
     math.log(2) / 14),
    (0.05, 1.0, 0.05, 0.2, 0.05, 0.05, 0.05),       # k == k_b == a_s == k_e == k_c, r = 1
    (0.1, 0.5, 0.01, 0.1, 0.02, 0.2, 0.1),          # k == a_f == k_c
    (0.02, 0.25, 0.02 * 0.25, 0.3, 0.03, 0.3, 0.005),  # r k == k_b == k_c, a_f == k_e
]


def random_state(rng):
    state = (rng.normal(0, 1), rng.normal(0, 1), rng.uniform(0, 5), rng.uniform(0, 40),
             rng.uniform(0, 10), rng.uniform(0, 20), rng.uniform(0, 0.1))
    return state, rng.normal(-3, 1), rng.uniform(0, 0.1), rng.uniform(0, 0.01)


@pytest.mark.parametrize("rates", RATES)
@pytest.mark.parametrize("tau", [0.0, 0.5, 7.0, 28.0, 180.0])
def test_closed_form_matches_solve_ivp(rates, tau):
    prop = Propagator(*rates)
    rng = np.random.default_rng(7)
    for _ in range(2):
        state, setpoint, c, g = random_state(rng)
        exact = closed_form(prop, SCALAR, tau, state, setpoint, c, g)
        if tau == 0.0:
            np.testing.assert_allclose(exact, state, rtol=0, atol=1e-14)
            continue
        sol = solve_ivp(rhs(*rates, setpoint, c, g), (0.0, tau), state, method="DOP853",
                        rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(exact, sol.y[:, -1], rtol=1e-8, atol=1e-9)


def test_array_and_scalar_paths_agree():
    prop = Propagator(*RATES[0])
    taus = np.array([0.0, 1.0, 7.0, 1.0, 28.0, 3.5])
    arrays = prop(ARRAY, taus)
    for i, tau in enumerate(taus):
        np.testing.assert_array_equal([a[i] for a in arrays], prop(SCALAR, float(tau)))


def test_two_steps_equal_one_step():
    """Phi(a + b) = Phi(b) Phi(a): advancing in two steps is the same as in one."""
    prop = Propagator(*RATES[0])
    state = (0.0, 0.0, 3.0, 20.0, 3.0, 0.0, 0.0)
    one = closed_form(prop, SCALAR, 30.0, state, -3.0, 0.04, 0.003)
    mid = closed_form(prop, SCALAR, 12.0, state, -3.0, 0.04, 0.003)
    two = closed_form(prop, SCALAR, 18.0, mid, -3.0, 0.04, 0.003)
    np.testing.assert_allclose(one, two, rtol=1e-12, atol=1e-12)


def test_untreated_activity_relaxes_to_the_chronic_setpoint():
    prop = Propagator(*RATES[0])
    y, w, *_ = closed_form(prop, SCALAR, 3000.0, (0.0, 0.0, 2.0, 0, 0, 0, 0), -3.0, 0.0, 0.0)
    assert y == pytest.approx(-3.0, abs=1e-6)
    assert w == pytest.approx(-3.0, abs=1e-6)


def test_constant_treatment_lowers_the_equilibrium_by_effect_over_rate():
    k = RATES[0][0]
    prop = Propagator(*RATES[0])
    y, *_ = closed_form(prop, SCALAR, 5000.0, (0.0,) * 7, -3.0, 0.06, 0.0)
    assert y == pytest.approx(-3.0 - 0.06 / k, abs=1e-6)
