"""The exact (matrix exponential) step of the disease state equals a numerical solution of
the ODEs, written out here by hand from the docstring of ``simulator/kernel/disease.py``
(not from the kernel's matrix), for every rate node, short and long steps, a nonzero IVIG
sensitivity g (the kernel scales g = 1 transition entries by g; the ODE here carries g
itself) and rates that coincide (repeated eigenvalues). Also the damage update.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import NO_DEATHS, SCENARIOS
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy.integrate import solve_ivp

from simulator.kernel import disease
from simulator.kernel.disease import RATE_NODES, Propagator
from simulator.kernel.plan import make_plan
from simulator.kernel.xp import ARRAY, SCALAR
from simulator.scenario import load_scenario

NAMES = ("y", "q", "w", "xs", "xl", "xd", "z", "f", "l", "fe", "le", "v", "e", "j", "s", "c")
LN2 = math.log(2.0)


def rhs(k, p, g):
    """docs: dy = k(s+z-y) - e - g v; dq = k_ck(y-q); dw = k_w(y-w) - rho_f g v;
    dx_d = k_d(s+z-x_d) - sigma_d e - rho_d g v for the domains d = skin, lung,
    swallowing; dz = -k_b z; df, dF = -a_f; dl, dL = -a_s;
    dv = k_e(F+L-v); de = k_c(c-e); dJ = y; s and c constant."""

    def f(_t, u):
        y, q, w, xs, xl, xd, z, f_, l_, fe, le, v, e, _j, s, c = u
        return [
            k * (s + z - y) - e - g * v,
            p["k_ck"] * (y - q),
            p["k_w"] * (y - w) - p["rho_f"] * g * v,
            *(
                p["k_x"][i] * (s + z - x) - p["sigma_x"][i] * e - p["rho_x"][i] * g * v
                for i, x in enumerate((xs, xl, xd))
            ),
            -p["k_b"] * z,
            -p["a_f"] * f_,
            -p["a_s"] * l_,
            -p["a_f"] * fe,
            -p["a_s"] * le,
            p["k_e"] * (fe + le - v),
            p["k_c"] * (c - e),
            y,
            0.0,
            0.0,
        ]

    return f


def propagator_constants(scn):
    """The constant rates, computed here from the scenario (not read from the kernel)."""
    dis = scn.disease
    return {
        "k_ck": LN2 / dis.enzymes.cpk_half_life_days,
        "k_w": LN2 / dis.function.weakness_half_life_days,
        "k_x": tuple(d.rate_per_day for d in _domains(dis)),
        "k_b": LN2 / dis.activity.burnout_half_life_days,
        "a_f": LN2 / dis.igg.fast_half_life_days,
        "a_s": LN2 / dis.igg.slow_half_life_days,
        "k_e": LN2 / dis.ivig.effect_half_life_days,
        "k_c": LN2 / dis.steroid.onset_half_life_days,
        "rho_f": dis.ivig.function_relative_effect,
        "rho_x": tuple(d.ivig_relative_effect for d in _domains(dis)),
        "sigma_x": tuple(d.steroid_relative_effect for d in _domains(dis)),
    }


def _domains(dis):
    ext = dis.extramuscular
    return (ext.skin, ext.lung, ext.dysphagia)


def random_state(rng):
    return np.array(
        [
            rng.normal(0, 1),
            rng.normal(0, 1),
            rng.normal(0, 1),
            rng.normal(0, 1),
            rng.normal(0, 1),
            rng.normal(0, 1),
            rng.uniform(0, 2),
            rng.uniform(0, 40),
            rng.uniform(0, 20),
            rng.uniform(0, 40),
            rng.uniform(0, 20),
            rng.uniform(0, 10),
            rng.uniform(0, 0.1),
            rng.uniform(-50, 50),
            rng.normal(-1.6, 1.0),
            rng.uniform(0, 0.1),
        ]
    )


def exact(prop, node, tau, u, g, xp=SCALAR):
    coef = prop(xp, node, tau)
    out = disease.step(xp, coef, dict(enumerate(u)), g)
    return np.array([out[i] for i in range(disease.N_STATES)])


# Scenarios whose rates differ, and scenarios where rates coincide: the middle rate node
# is exactly the median reversion rate (quantile 0.5), so a weakness half-life of
# ln2/median makes k_w equal that node's rate; a burnout half-life of ln2/k_skin makes
# k_b equal the skin domain's rate, and the lung's rate may equal a rate node.
CASES = {
    "first_line": [],
    "k_w_is_node_rate": [
        "disease.function.weakness_half_life_days=%r" % (LN2 / 0.03),
        "disease.activity.reversion_rate_per_day=0.03",
    ],
    "k_b_is_k_x": [
        "disease.activity.burnout_half_life_days=%r" % (LN2 / 0.02),
        "disease.extramuscular.skin.rate_per_day=0.02",
        "disease.extramuscular.lung.rate_per_day=0.03",
        "disease.activity.reversion_rate_per_day=0.03",
    ],
    "k_c_is_a_s_and_k_e_is_a_f": [
        "disease.steroid.onset_half_life_days=21",
        "disease.igg.slow_half_life_days=21",
        "disease.ivig.effect_half_life_days=3.5",
        "disease.igg.fast_half_life_days=3.5",
    ],
}


@pytest.mark.parametrize("overrides", CASES.values(), ids=list(CASES))
@pytest.mark.parametrize("tau", [1.0, 7.5, 28.0, 200.0])
def test_closed_form_matches_solve_ivp(overrides, tau):
    scn = load_scenario(SCENARIOS / "first_line.yaml", overrides)
    plan = make_plan(scn)
    p = propagator_constants(scn)
    rng = np.random.default_rng(int(tau * 10) + len(overrides))
    for node in (0, RATE_NODES // 2, RATE_NODES - 1):
        k = plan.rate_per_day[node]
        u0 = random_state(rng)
        g = rng.uniform(0.002, 0.02)
        got = exact(plan.propagator, node, tau, u0, g)
        sol = solve_ivp(rhs(k, p, g), (0.0, tau), u0, method="DOP853", rtol=1e-11, atol=1e-12)
        assert sol.success
        np.testing.assert_allclose(
            got, sol.y[:, -1], rtol=1e-8, atol=1e-9, err_msg=f"node {node}, tau {tau}"
        )


def test_coinciding_rates_really_coincide():
    """The CASES above exercise repeated eigenvalues (else the tests prove less)."""
    scn = load_scenario(SCENARIOS / "first_line.yaml", CASES["k_w_is_node_rate"])
    plan = make_plan(scn)
    assert propagator_constants(scn)["k_w"] == pytest.approx(plan.rate_per_day[3], rel=1e-14)
    scn = load_scenario(SCENARIOS / "first_line.yaml", CASES["k_b_is_k_x"])
    p = propagator_constants(scn)
    assert p["k_b"] == pytest.approx(p["k_x"][0], rel=1e-14)
    assert p["k_x"][1] == pytest.approx(make_plan(scn).rate_per_day[3], rel=1e-14)


def test_exactly_equal_rates_everywhere():
    """A propagator built with many exactly equal rates (Jordan blocks)."""
    r = 0.03
    p = {
        "k_ck": r,
        "k_w": r,
        "k_x": (r, r, 0.2),
        "k_b": r,
        "a_f": 0.2,
        "a_s": r,
        "k_e": 0.2,
        "k_c": r,
        "rho_f": 0.5,
        "rho_x": (1.5, 1.5, 2.0),
        "sigma_x": (0.8, 0.6, 0.8),
    }
    prop = Propagator(np.array([r, 0.2]), **p)
    rng = np.random.default_rng(3)
    for node, tau in ((0, 7.0), (0, 200.0), (1, 28.0)):
        u0 = random_state(rng)
        g = 0.01
        sol = solve_ivp(
            rhs(prop.rates[node], p, g), (0.0, tau), u0, method="DOP853", rtol=1e-11, atol=1e-12
        )
        np.testing.assert_allclose(
            exact(prop, node, tau, u0, g), sol.y[:, -1], rtol=1e-8, atol=1e-9
        )


def test_ivig_gain_scales_only_the_v_couplings():
    """With no IgG and no IVIG effect, g has no effect at all; with them, the downstream
    change caused by IVIG is linear in g."""
    plan = make_plan(load_scenario(SCENARIOS / "first_line.yaml"))
    rng = np.random.default_rng(5)
    u0 = random_state(rng)
    quiet = u0.copy()
    quiet[[disease.F, disease.L, disease.FE, disease.LE, disease.V]] = 0.0
    np.testing.assert_array_equal(
        exact(plan.propagator, 2, 28.0, quiet, 0.0), exact(plan.propagator, 2, 28.0, quiet, 0.05)
    )
    base = exact(plan.propagator, 2, 28.0, u0, 0.0)
    d1 = exact(plan.propagator, 2, 28.0, u0, 0.01) - base
    d3 = exact(plan.propagator, 2, 28.0, u0, 0.03) - base
    np.testing.assert_allclose(d3, 3 * d1, rtol=1e-9, atol=1e-12)
    # IVIG lowers y, w and every extramuscular domain
    assert all(d1[i] < 0 for i in (disease.Y, disease.W, disease.XS, disease.XL, disease.XD))


def test_steps_compose_and_zero_step_is_identity():
    plan = make_plan(load_scenario(SCENARIOS / "first_line.yaml"))
    prop = plan.propagator
    u0 = random_state(np.random.default_rng(11))
    np.testing.assert_allclose(exact(prop, 1, 0.0, u0, 0.01), u0, rtol=0, atol=1e-14)
    one = exact(prop, 1, 30.0, u0, 0.01)
    two = exact(prop, 1, 18.0, exact(prop, 1, 12.0, u0, 0.01), 0.01)
    np.testing.assert_allclose(one, two, rtol=1e-11, atol=1e-12)


def test_array_and_scalar_paths_agree_bit_for_bit():
    plan = make_plan(load_scenario(SCENARIOS / "first_line.yaml"))
    prop = plan.propagator
    rng = np.random.default_rng(2)
    nodes = np.array([0, 3, 6, 3, 1, 0])
    taus = np.array([1.0, 7.0, 28.0, 7.0, 200.0, 0.0])
    states = np.stack([random_state(rng) for _ in nodes])
    gains = rng.uniform(0, 0.02, len(nodes))
    coef = prop(ARRAY, nodes, taus)
    n = disease.N_STATES
    out = disease.step(ARRAY, coef, {i: states[:, i] for i in range(n)}, gains)
    arr = np.stack([out[i] for i in range(n)], axis=1)
    for i in range(len(nodes)):
        one = exact(
            prop, int(nodes[i]), float(taus[i]), [float(v) for v in states[i]], float(gains[i])
        )
        np.testing.assert_array_equal(arr[i], one)


def test_untreated_activity_relaxes_to_the_lasting_drive_and_treatment_lowers_it():
    plan = make_plan(load_scenario(SCENARIOS / "first_line.yaml"))
    k = plan.rate_per_day[3]
    u0 = np.zeros(disease.N_STATES)
    u0[disease.Z], u0[disease.S] = 1.0, -1.5  # acute drive fading, lasting drive s
    y = exact(plan.propagator, 3, 5000.0, u0, 0.0)[0]
    assert y == pytest.approx(-1.5, abs=1e-6)
    u0[disease.C] = 0.06  # constant drug effect c: equilibrium s - c / k
    y = exact(plan.propagator, 3, 5000.0, u0, 0.0)[0]
    assert y == pytest.approx(-1.5 - 0.06 / k, abs=1e-6)


# --------------------------------------------------------------------------------------
# Damage
# --------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    damage=hs.floats(0, 60),
    dj=hs.floats(-300, 300),
    tau=hs.floats(0, 400),
    thr=hs.floats(-3, 0.5),
    rate=hs.floats(0, 0.1),
    max_points=hs.floats(0, 150),
)
def test_damage_step_formula_bounds_and_monotone(damage, dj, tau, thr, rate, max_points):
    damage = min(damage, max_points)
    got = disease.damage_step(SCALAR, damage, dj, tau, thr, rate, max_points)
    excess = max(dj - thr * tau, 0.0)
    want = damage + (max_points - damage) * (1.0 - math.exp(-rate * excess))
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert damage - 1e-12 <= got <= max_points + 1e-12
    arr = disease.damage_step(
        ARRAY, np.array([damage]), np.array([dj]), np.array([tau]), thr, rate, max_points
    )
    assert arr[0] == got


def test_no_damage_below_the_threshold():
    assert disease.damage_step(SCALAR, 5.0, -2.0 * 10, 10.0, -1.0, 0.01, 60.0) == 5.0


def test_damage_over_a_course_never_decreases_nor_exceeds_its_maximum():
    from simulator.engines import cohort

    scn = load_scenario(
        SCENARIOS / "steroid_only.yaml",
        ["disease.function.damage_rate_per_log_day=0.05", *NO_DEATHS],
    )
    plan = make_plan(scn)
    res = cohort.run_chunk(scn, plan, 4, np.arange(200))
    dmg = res.visits["damage"]
    assert np.all(np.isfinite(dmg))
    assert np.all(np.diff(dmg, axis=1) >= 0)
    assert np.all(dmg <= plan.damage_max) and np.all(dmg >= 0)
    assert dmg.max() > 1.0  # some patients do accrue damage here
    final = res.outcomes["damage_points"]
    assert np.all(final >= dmg[:, -1]) and np.all(final <= plan.damage_max)


def test_each_extramuscular_domain_follows_only_its_own_parameters():
    """Changing the lung domain's rate and responses moves the lung state only: skin,
    swallowing, muscle and the rest are bit-identical."""
    base = make_plan(load_scenario(SCENARIOS / "first_line.yaml"))
    lung = make_plan(
        load_scenario(
            SCENARIOS / "first_line.yaml",
            [
                "disease.extramuscular.lung.ivig_relative_effect=4",
                "disease.extramuscular.lung.steroid_relative_effect=0.1",
                "disease.extramuscular.lung.rate_per_day=0.05",
            ],
        )
    )
    rng = np.random.default_rng(8)
    for tau in (7.0, 28.0):
        u0 = random_state(rng)
        a = exact(base.propagator, 3, tau, u0, 0.01)
        b = exact(lung.propagator, 3, tau, u0, 0.01)
        others = [i for i in range(disease.N_STATES) if i != disease.XL]
        np.testing.assert_array_equal(a[others], b[others])
        assert a[disease.XL] != b[disease.XL]


# Propagator arguments for tests of its caches: 7 rate nodes and made-up other rates.
TOY_RATES = (
    np.array([0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9]),
    0.2,
    0.03,
    (0.05, 0.01, 0.02),
    0.1,
    0.3,
    0.03,
    0.2,
    0.15,
    0.1,
    (0.5, 0.3, 0.2),
    (1.0, 0.5, 0.8),
)


def test_the_vector_coefficient_cache_gives_the_scalar_coefficients_when_it_overflows():
    """The cohort engine's table of transition coefficients, emptied whenever it would
    outgrow its size, returns exactly what the scalar path computes, for whole and
    fractional steps alike."""
    small, plain = Propagator(*TOY_RATES, cache_size=5), Propagator(*TOY_RATES)
    rng = np.random.default_rng(3)
    for _ in range(6):
        node = rng.integers(0, 7, 12)
        tau = np.where(rng.random(12) < 0.3, rng.random(12) * 10, rng.integers(0, 9, 12))
        got = small(ARRAY, node, tau)
        for i in range(12):
            want = plain(SCALAR, int(node[i]), float(tau[i]))
            assert [float(c[i]) for c in got] == list(want)


def test_batched_matrix_exponentials_have_the_bits_of_one_at_a_time():
    """The cohort engine computes a step's new transition matrices in one batch; each must
    equal ``expm`` of that matrix alone, whatever else is in the batch (different norms,
    so different numbers of squarings, and a zero step)."""
    plan = make_plan(load_scenario(SCENARIOS / "first_line.yaml"))
    prop = plan.propagator
    mats = np.stack(
        [
            prop.matrix(node) * tau
            for node in (0, 3, 6)
            for tau in (0.0, 0.5, 1.0, 7.0, 90.0, 3650.0)
        ]
    )
    alone = np.stack([disease.expm(a) for a in mats])
    np.testing.assert_array_equal(disease.expm_many(mats), alone)
    for sub in ([4], [17, 2, 9], list(range(0, 18, 2))):
        np.testing.assert_array_equal(disease.expm_many(mats[sub]), alone[sub])


def test_numbas_matrix_exponentials_have_numpys_bits(monkeypatch):
    """``_loops.expm_taylor`` (numba) against the einsum series (numpy): the model's
    matrices over many steps, and random matrices with zeros and mixed magnitudes."""
    from simulator import jit

    rng = np.random.default_rng(5)
    prop = make_plan(load_scenario(SCENARIOS / "first_line.yaml")).propagator
    taus = np.concatenate([np.arange(0.0, 120.0), rng.uniform(0.0, 2000.0, 60)])
    mats = np.stack([prop.matrix(i % disease.RATE_NODES) * t for i, t in enumerate(taus)])
    rand = rng.standard_normal((100, 16, 16)) * 10.0 ** rng.uniform(-3, 2, (100, 1, 1))
    rand[rng.random(rand.shape) < 0.3] = 0.0
    got = {}
    for mode in ("0", "1"):
        monkeypatch.setenv("SIMULATOR_JIT", mode)
        monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
        if mode == "1" and jit.loops(1) is None:
            pytest.skip("numba is not installed")
        got[mode] = (disease.expm_many(mats), disease.expm_many(rand))
    for a, b in zip(got["0"], got["1"], strict=True):
        assert a.tobytes() == b.tobytes()


def test_the_chunk_loops_matrix_exponentials_have_the_propagators_bits():
    """``_loops.expm_entries`` (one matrix, in the compiled chunk loop) gives the
    propagator's coefficients: whole and fractional steps, tiny ones (no squaring), and
    steps whose norm sits exactly on a power of two (where the squarings change)."""
    from simulator import jit

    loops = jit._load()
    if loops is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(8)
    prop = make_plan(load_scenario(SCENARIOS / "first_line.yaml")).propagator
    cases = [(int(rng.integers(RATE_NODES)), float(t)) for t in range(0, 400, 3)]
    cases += [(int(rng.integers(RATE_NODES)), float(t)) for t in rng.uniform(0, 900, 80)]
    cases += [(2, 1e-9), (5, 0.0)]
    for node in range(RATE_NODES):  # tau with a norm of exactly 0.25 * 2**k
        unit = float(disease.norms_inf(prop.matrix(node)[None])[0])
        cases += [(node, 0.25 * 2.0**k / unit) for k in (0, 3)]
    out = np.empty(disease.ENTRY_ROWS.size)
    for node, tau in cases:
        want = prop._compute_many([(node, tau)])[0]
        loops.expm_entries(prop.matrix(node), tau, disease.ENTRY_ROWS, disease.ENTRY_COLS, out)
        assert out.tobytes() == want.tobytes(), (node, tau)


def test_squarings_are_the_exact_ceiling_of_log2():
    """``squarings_for``: the fewest halvings that bring a norm to 1/4 or less, exactly
    (at and one ulp either side of every power of two, where ``log2`` may round)."""
    for k in range(-3, 40):
        edge = 0.25 * 2.0**k
        for x in (math.nextafter(edge, 0.0), edge, math.nextafter(edge, math.inf)):
            s = disease.squarings_for(x)
            assert x / 2.0**s <= 0.25 and (s == 0 or x / 2.0 ** (s - 1) > 0.25), x
    assert disease.squarings_for(0.0) == 0 and disease.squarings_for(0.1) == 0


def test_plans_with_the_same_rates_share_one_propagator():
    """The arms of a comparison (same disease, different regimens) share one propagator,
    so its matrix exponentials are computed once; a plan with another rate gets its own."""
    from simulator.sweeps import with_overrides

    first = load_scenario(SCENARIOS / "first_line.yaml")
    a = make_plan(first)
    b = make_plan(load_scenario(SCENARIOS / "rescue.yaml"))
    c = make_plan(with_overrides(first, {"disease.ivig.effect_half_life_days": 12.0}))
    d = make_plan(with_overrides(first, {"economics.prices.ivig_per_g": 40.0}))
    assert a.propagator is b.propagator is d.propagator
    assert c.propagator is not a.propagator
    assert not np.array_equal(c.propagator.matrix(0), a.propagator.matrix(0))


def test_a_shared_propagator_gives_the_scalar_coefficients_to_concurrent_threads():
    """Plans share propagators, so a Dask worker running several threads may call one
    from each: every call still returns exactly the scalar path's coefficients, while
    the threads grow, fill and empty the shared table (cache of 40 rows)."""
    import threading

    shared = Propagator(*TOY_RATES, cache_size=40)
    wrong: list[tuple[int, float]] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(25):
            node = rng.integers(0, RATE_NODES, 16)
            tau = rng.integers(0, 60, 16).astype(float)
            got = shared(ARRAY, node, tau)
            for i in range(16):
                want = shared.coefficients(int(node[i]), float(tau[i]))
                if [float(c[i]) for c in got] != list(want):
                    wrong.append((int(node[i]), float(tau[i])))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_the_generated_step_is_up_to_date():
    """kernel/step_generated.py is what scripts/generate_step.py writes from the current
    coefficient pattern (the SimPy engine's step and numba's step loop run it)."""
    from pathlib import Path

    from simulator.kernel import disease

    path = Path(disease.__file__).with_name("step_generated.py")
    assert path.read_text() == disease.generated_step_module(), (
        "kernel/step_generated.py is stale: run python scripts/generate_step.py"
    )
