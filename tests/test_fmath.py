"""simulator.fmath: exp/log/expm1/log1p with the same bits everywhere, and their accuracy.

The accuracy bounds are those of the algorithms (fdlibm: below 1 ulp for exp and log;
Kahan's and Goldberg's corrections: a few ulp), checked against 50-digit mpmath values.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

from simulator import fmath, jit

ROOT = Path(__file__).resolve().parents[1]

SPECIAL = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.0,
    -1.0,
    0.5,
    2.0,
    math.inf,
    -math.inf,
    math.nan,
    1e300,
    -1e300,
    709.782712893384,
    709.7827128933841,
    -745.1332191019411,
    -745.1332191019412,
    -708.5,
    1e-20,
    -1e-20,
]


def _samples(rng: np.random.Generator, *ranges: tuple[float, float]) -> np.ndarray:
    return np.concatenate([rng.uniform(lo, hi, 3000) for lo, hi in ranges])


CASES = {
    "exp": (
        fmath.exp,
        fmath.exp_array,
        mpmath.exp,
        1.0,
        ((-745.0, 709.7), (-1.0, 1.0), (-1e-8, 1e-8), (-40.0, 5.0)),
    ),
    "log": (
        fmath.log,
        fmath.log_array,
        mpmath.log,
        1.0,
        ((1e-300, 1e-280), (0.5, 2.0), (1 - 1e-6, 1 + 1e-6), (0.0, 1e6)),
    ),
    "expm1": (
        fmath.expm1,
        fmath.expm1_array,
        mpmath.expm1,
        3.0,
        ((-50.0, 50.0), (-1e-3, 1e-3), (-1e-12, 1e-12)),
    ),
    "log1p": (  # floats only: the simulator has no array log1p
        fmath.log1p,
        None,
        mpmath.log1p,
        3.0,
        ((-0.999, 10.0), (-1e-3, 1e-3), (-1e-12, 1e-12), (10.0, 1e12)),
    ),
}


def _ulp_error(got: float, x: float, exact: object) -> float:
    mpmath.mp.dps = 50
    ref = exact(mpmath.mpf(x))  # type: ignore[operator]
    nearest = float(ref)
    if nearest == 0.0 or math.isinf(nearest):
        return 0.0 if got == nearest else math.inf
    return float(abs(mpmath.mpf(got) - ref) / mpmath.mpf(math.ulp(nearest)))


PATHS = ("numpy", "compiled")


@pytest.fixture
def use_path(monkeypatch):
    """Run array calls on numpy's path or on numba's loops (skipped without numba)."""

    def use(path: str) -> None:
        monkeypatch.setenv("SIMULATOR_JIT", "1" if path == "compiled" else "0")
        monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
        if path == "compiled" and jit.loops(1) is None:
            pytest.skip("numba is not installed")

    return use


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", list(CASES))
def test_accuracy_against_fifty_digit_values(name, path, use_path):
    use_path(path)
    one, many, exact, bound, ranges = CASES[name]
    x = _samples(np.random.default_rng(20261126), *ranges)
    got = many(x) if many is not None else [one(float(v)) for v in x]
    worst = max(_ulp_error(float(g), float(v), exact) for g, v in zip(got, x, strict=True))
    assert worst <= bound, f"{name}: {worst:.3f} ulp"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", [n for n, case in CASES.items() if case[1] is not None])
def test_floats_and_arrays_give_the_same_bits(name, path, use_path):
    use_path(path)
    one, many, _, _, ranges = CASES[name]
    x = np.concatenate([_samples(np.random.default_rng(7), *ranges), SPECIAL])
    arr = many(x)
    for v, a in zip(x, arr, strict=True):
        s = one(float(v))
        assert np.float64(s).tobytes() == np.float64(a).tobytes() or (
            math.isnan(s) and math.isnan(a)
        ), (name, v, s, a)
    # small arrays, 2-d arrays and array scalars take the same route to the same bits
    for n in (1, 2, 7, 100):
        assert many(x[:n]).tobytes() == arr[:n].tobytes()
    assert many(x[:100].reshape(10, 10)).tobytes() == arr[:100].tobytes()


@pytest.mark.parametrize(
    ("one", "ref"),
    [
        (fmath.exp, math.exp),
        (fmath.log, math.log),
        (fmath.expm1, math.expm1),
        (fmath.log1p, math.log1p),
    ],
)
def test_special_values_follow_the_c_library(one, ref):
    for v in [*SPECIAL, -2.0, -1e-300, 800.0, -800.0, -1.0 + 1e-16]:
        try:
            want = ref(v)
        except ValueError:  # math raises where C returns NaN or -inf
            pole = 0.0 if one is fmath.log else -1.0
            want = -math.inf if v == pole else math.nan
        except OverflowError:
            want = math.inf
        got = one(v)
        if math.isnan(want):
            assert math.isnan(got), (v, got)
        elif want in (0.0, math.inf, -math.inf):
            assert got == want, (v, got, want)
        else:
            assert abs(got - want) <= 4 * math.ulp(want), (v, got, want)


def test_array_special_values_do_not_warn():
    x = np.array([*SPECIAL, -2.0])
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        for many in (fmath.exp_array, fmath.log_array, fmath.expm1_array):
            many(x)
            many(np.array([], dtype=np.float64))


def test_cholesky_and_correlate_match_lapack_and_blas_to_rounding():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 5))
    corr = a @ a.T + 5 * np.eye(5)
    d = np.sqrt(np.diag(corr))
    corr = corr / d[:, None] / d[None, :]
    chol = fmath.cholesky(corr)
    np.testing.assert_allclose(chol, np.linalg.cholesky(corr), rtol=0, atol=1e-14)
    assert np.all(np.triu(chol, 1) == 0)
    z = rng.normal(size=(1000, 5))
    np.testing.assert_allclose(fmath.correlate(z, chol), z @ chol.T, rtol=0, atol=1e-13)
    # column j uses only the first j + 1 scores
    z2 = z.copy()
    z2[:, 3:] = 0.0
    assert np.array_equal(fmath.correlate(z2, chol)[:, :3], fmath.correlate(z, chol)[:, :3])
    with pytest.raises(np.linalg.LinAlgError):
        fmath.cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_results_do_not_depend_on_the_cpus_simd_or_blas_kernels_or_on_numba(tmp_path):
    """The same run with numpy's CPU-specific SIMD code switched off (as on a CPU without
    AVX2 or AVX-512), OpenBLAS on its generic pre-AVX kernels and numba's compiled loops
    off (SIMULATOR_JIT=0) gives the same bytes as a run with all of them."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    args = ["-m", "simulator", "run", str(ROOT / "scenarios" / "first_line.yaml")]
    args += ["--patients", "400", "-q", "--events", "--seed", "11"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NPY_", "OPENBLAS_"))}
    env["SIMULATOR_JIT"] = "1"  # numba's loops from the first call (when installed)
    generic = {"NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__), "SIMULATOR_JIT": "0"}
    generic["OPENBLAS_CORETYPE"] = "Nehalem"
    for out, extra in (("a", {}), ("b", generic)):
        subprocess.run(
            [sys.executable, *args, "--out", str(tmp_path / out)],
            env={**env, **extra},
            capture_output=True,
            check=True,
        )
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "patients.csv" in files and "events.csv" in files
    for name in files:
        a = (tmp_path / "a" / name).read_bytes()
        b = (tmp_path / "b" / name).read_bytes()
        assert a == b, name


def test_the_compiled_loops_give_the_bits_of_numpy(use_path):
    # special values first, so that every size below includes them; then the whole range,
    # subnormal results and arguments included
    rng = np.random.default_rng(9)
    x = np.concatenate(
        [
            SPECIAL,
            [-2.0, 1e-310],
            rng.uniform(-750.0, 750.0, 100_000),
            rng.uniform(-746.0, -707.0, 50_000),
            np.exp(rng.uniform(-744.0, -700.0, 50_000)),
        ]
    )
    use_path("compiled")
    with_jit = {n: (fmath.exp_array(x[:n]), fmath.log_array(np.abs(x[:n]))) for n in SIZES}
    use_path("numpy")
    for n in SIZES:
        e, lg = with_jit[n]
        assert e.tobytes() == fmath.exp_array(x[:n]).tobytes(), n
        assert lg.tobytes() == fmath.log_array(np.abs(x[:n])).tobytes(), n


SIZES = (0, 1, 3, 5, 23, 100, 5000, 200_000)


def test_a_process_switches_to_the_compiled_loops_after_many_calls(monkeypatch):
    """By default numpy serves the first calls (short runs never load numba), and the
    loops take over after ``SWITCH_AFTER_SECONDS`` of estimated loss, with the same bits."""
    monkeypatch.delenv("SIMULATOR_JIT", raising=False)
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    monkeypatch.setattr(jit, "SWITCH_AFTER_SECONDS", 5e-5)
    x = np.random.default_rng(5).uniform(-30.0, 30.0, 50)
    got = [fmath.exp_array(x).tobytes() for _ in range(8)]
    assert len(set(got)) == 1
    assert jit._DISPATCH.settled
    assert (jit._DISPATCH.loops is not None) == jit.available()


def test_without_numba_the_numpy_path_runs(monkeypatch):
    """A missing (or disabled) numba falls back to numpy with the same bits."""
    x = np.random.default_rng(4).uniform(-20.0, 20.0, 300)
    want = np.array([fmath.exp(v) for v in x])
    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    monkeypatch.setitem(sys.modules, "simulator._loops", None)  # import fails
    monkeypatch.delattr(sys.modules["simulator"], "_loops", raising=False)
    assert not jit.available()
    assert fmath.exp_array(x).tobytes() == want.tobytes()
    assert jit._DISPATCH.settled and jit._DISPATCH.loops is None
    monkeypatch.undo()
    monkeypatch.setenv("SIMULATOR_JIT", "0")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    assert not jit.available()
    assert fmath.exp_array(x).tobytes() == want.tobytes()
    assert jit._DISPATCH.loops is None


def test_the_loops_load_wherever_numba_is_installed():
    """A loop numba cannot compile would otherwise only show as a logged warning and a
    slower run, with every compiled-path test skipped."""
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        pytest.skip("numba is not installed")
    from simulator import _loops  # raises if a loop does not compile

    assert _loops.exp_into is not None
