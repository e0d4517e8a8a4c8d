"""The shipped ABC-SMC posterior (calibration/posterior/, docs/model.md section 6, "The
decision under calibration uncertainty"): the output of `simulate calibrate
calibration/posterior.yaml`, adopted by scripts/adopt_posterior.py with a checksum of the
calibration's inputs. These tests fail when an input of the calibration changed since
the run (then run it again and adopt it), when the CSV is not the one recorded, or when
the PSA that reads it would not draw the fitted parameters from it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math

import numpy as np
import pytest
from conftest import ROOT, load_script

from simulator.calibrate import load_calibration
from simulator.scenario.disease import FITTED
from simulator.sweeps import plan_sweep

FOLDER = ROOT / "calibration" / "posterior"
CALIBRATION = ROOT / "calibration" / "posterior.yaml"
PSA = ROOT / "scenarios" / "sweeps" / "psa_calibration_posterior.yaml"


def _record() -> dict:
    return json.loads((FOLDER / "record.json").read_text(encoding="utf-8"))


def _table() -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(io.StringIO((FOLDER / "posterior.csv").read_text())))
    return rows[0], np.array([[float(x) for x in r] for r in rows[1:]])


def test_the_posterior_calibration_is_the_shipped_one_run_by_abc():
    """calibration/posterior.yaml differs from default.yaml only in its name, description
    and method: the same studies, targets, parameters, bounds, patients and seed."""
    shipped = load_calibration(ROOT / "calibration" / "default.yaml")
    abc = load_calibration(CALIBRATION)
    assert abc.spec.method == "abc" and shipped.spec.method == "optimize"
    assert abc.names == shipped.names == list(FITTED)
    assert abc.low.tolist() == shipped.low.tolist()
    assert abc.high.tolist() == shipped.high.tolist()
    assert [t.spec for t in abc.targets] == [t.spec for t in shipped.targets]
    assert (abc.patients, abc.seed) == (shipped.patients, shipped.seed)


def test_the_posterior_was_made_on_the_current_calibration_inputs():
    record = _record()
    assert load_calibration(CALIBRATION).inputs_sha256() == record["inputs_sha256"], (
        "an input of the calibration changed since the posterior was sampled: run"
        " `simulate calibrate calibration/posterior.yaml --out results/posterior`, then"
        " `python scripts/adopt_posterior.py results/posterior/fitted.json`"
    )
    assert record["tolerance"]["reached"]
    assert record["particles"] == load_calibration(CALIBRATION).spec.abc.particles


def test_the_shipped_csv_is_the_recorded_one_and_within_the_bounds():
    record = _record()
    raw = (FOLDER / "posterior.csv").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == record["posterior_sha256"]
    header, table = _table()
    assert header == [*FITTED, "weight"]
    assert table.shape[0] == record["particles"]
    for j, name in enumerate(FITTED):
        lo, hi = FITTED[name]
        assert np.all((table[:, j] > lo) & (table[:, j] < hi)), name
    assert np.all(table[:, -1] > 0)


def test_the_psa_draws_every_fitted_parameter_as_one_posterior_row():
    """Each PSA draw takes all 13 fitted parameters from one row of the posterior (so their
    joint distribution is kept), and the calibration-free inputs from their own
    distributions."""
    _, table = _table()
    plan = plan_sweep(PSA, draws=40)
    rows = {tuple(r) for r in table[:, :-1].tolist()}
    drawn = set()
    for point in plan.points:
        row = tuple(point[n] for n in FITTED)
        assert row in rows
        drawn.add(row)
        assert 34 <= point["economics.prices.ivig_per_g"] <= 59
    assert len(drawn) > 10  # resampled, not one row repeated


def _posterior(path, rows):
    names = list(FITTED)
    lines = [",".join([*names, "weight"])]
    base = json.loads((ROOT / "simulator" / "data" / "calibrated_defaults.json").read_text())
    for overrides, weight in rows:
        values = {**base["parameters"], **overrides}
        lines.append(",".join([*(repr(values[n]) for n in names), repr(weight)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_posterior_predictive_check_resamples_rows_by_weight(tmp_path):
    script = load_script("posterior_validation")
    csv_path = _posterior(
        tmp_path / "p.csv",
        [({"disease.mortality.excess_per_year": 0.05}, 1.0), ({}, 3.0)],
    )
    rows = script.posterior_rows(csv_path, 8, seed=5)
    low = sum(r["disease.mortality.excess_per_year"] == 0.05 for r in rows)
    assert (low, len(rows) - low) == (2, 6)  # systematic: exactly draws x weight each


def test_the_posterior_predictive_check_runs_each_draw_with_its_parameters(tmp_path):
    """Two rows that differ only in the excess mortality: the draw with the higher one has
    the lower simulated 5-year survival, on the same patients, and the summary's range
    spans the two draws."""
    script = load_script("posterior_validation")
    rows = [
        {
            **json.loads((ROOT / "simulator/data/calibrated_defaults.json").read_text())[
                "parameters"
            ],
            "disease.mortality.excess_per_year": x,
        }
        for x in (0.02, 1.5)
    ]
    targets, values = script.simulate_draws(
        rows, [ROOT / "studies" / "danko_2004.yaml"], patients=200, seed=3, workers=1
    )
    j = next(i for i, t in enumerate(targets) if t["metric"] == "alive_year_5")
    assert values[0][j] > values[1][j] + 0.2
    script.figure(script.summarise(targets, values), tmp_path / "check.png")
    assert (tmp_path / "check.png").read_bytes().startswith(b"\x89PNG")
    summary = script.summarise(targets, values)[j]
    # the published count (events of n) against Binomial(n, p) at each draw's p, the
    # draws weighted equally: Danko's 5-year survival is a count of 162 patients
    k, n = targets[j]["published_events"], targets[j]["published_n"]
    assert (k, n) == (149, 162)
    ref = 0.0
    for p in (values[0][j], values[1][j]):
        pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1)]
        ref += 0.5 * (sum(pmf[:k]) + 0.5 * pmf[k])
    assert summary["share_below_published"] == pytest.approx(ref, rel=1e-9)
    assert summary["low"] >= min(values[0][j], values[1][j])
    assert summary["high"] <= max(values[0][j], values[1][j])
    assert summary["overlaps"] == (
        summary["low"] <= summary["published_high"] and summary["high"] >= summary["published_low"]
    )


def _shown(cell: str) -> list[str]:
    """ "0.0103 (0.0029-0.0194)" or "-5.53 (-5.98 to -3.07)": the three numbers as written."""
    import re

    m = re.fullmatch(r"(\S+) \((\S+?)(?:-| to )(\S+)\)", cell)
    assert m is not None, cell
    return list(m.groups())


def _agrees(written: str, value: float) -> bool:
    """``value`` rounds to ``written`` at the significant digits ``written`` shows."""
    digits = written.lstrip("-").replace(".", "").lstrip("0")
    exponent = math.floor(math.log10(abs(float(written))))
    return abs(float(written) - value) <= 0.5 * 10 ** (exponent - len(digits) + 1) * (1 + 1e-9)


def test_the_docs_table_of_the_posterior_is_the_shipped_posteriors():
    """docs/model.md section 6 gives each fitted parameter's posterior median and 95%
    interval: they must be the shipped record's, to the digits shown (a new posterior
    without new docs fails here)."""
    text = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
    start = text.index("| parameter | defaults (Laplace 95%) | posterior median (2.5-97.5%) |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("| `"):
            break
        name, _, posterior = (c.strip() for c in line.strip("|").split("|"))
        rows[name.strip("`")] = _shown(posterior)
    assert set(rows) == set(FITTED)
    for name, rec in _record()["parameters"].items():
        for written, value in zip(rows[name], [rec["median"], *rec["ci95"]], strict=True):
            assert _agrees(written, value), (name, written, value)
