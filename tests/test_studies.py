"""Study files and `simulate validate`: published studies as files, checked before
anything runs, simulated, and compared with their published values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from simulator.errors import InputError
from simulator.studies import TargetResult, evaluate, load_study, published_interval

STUDIES = ROOT / "studies"


def validate_cmd(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "simulator", "validate", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_shipped_study_loads_and_the_calibration_targets_come_from_them():
    from simulator.calibration import TARGETS, VALIDATION

    roles = {}
    for f in sorted(STUDIES.glob("*.yaml")):
        s = load_study(f)
        for t in s.spec.targets:
            roles[(s.name, t.metric, t.arm)] = s.role_of(t)
    assert len(roles) == 37
    assert sum(r == "calibration" for r in roles.values()) == len(TARGETS) == 19
    assert sum(r == "validation" for r in roles.values()) == len(VALIDATION) == 18
    marie = next(t for t in TARGETS if t.metric == "relapse_during_taper")
    assert (marie.value, round(marie.low, 4), round(marie.high, 4)) == (36 / 77, 0.3603, 0.5778)


def test_published_intervals_from_counts_value_and_se():
    from simulator.scenario.study_schema import Published

    v, lo, hi = published_interval(Published(events=0, n=11))
    assert v == 0 and lo == 0 and 0.25 < hi < 0.27  # Wilson, not a zero-width interval
    assert published_interval(Published(value=0.3, se=0.05)) == pytest.approx(
        (0.3, 0.3 - 1.959963984540054 * 0.05, 0.3 + 1.959963984540054 * 0.05)
    )
    assert published_interval(Published(value=0.3, ci95=(0.2, 0.4))) == (0.3, 0.2, 0.4)


def test_overlap_and_inside_are_what_they_say():
    def r(sim, lo, hi):
        return TargetResult(
            "s", "c", "calibration", "l", "m", "a", "proportion", 0.5, 0.4, 0.6, sim, lo, hi, 10
        )

    assert r(0.7, 0.59, 0.8).overlaps and not r(0.7, 0.61, 0.8).overlaps
    assert r(0.5, 0.45, 0.55).published_inside_simulated
    assert not r(0.3, 0.2, 0.45).published_inside_simulated and r(0.3, 0.2, 0.45).overlaps
    assert not r(None, None, None).overlaps


def _study(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(text.replace("SCEN", str(ROOT / "scenarios")))
    return f


BASE = """study: test
citation: none
role: validation
arms:
  a: SCEN/first_line.yaml
patients: 50
targets:
  - metric: cpk_normal_month_6
    published: {events: 30, n: 48}
"""


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ("cpk_normal_month_6", "cpk_normal_month_66", ["unknown metric", "did you mean"]),
        ("{events: 30, n: 48}", "{events: 50, n: 48}", ["cannot exceed n"]),
        ("{events: 30, n: 48}", "{events: -1, n: 48}", ["events"]),
        ("{events: 30, n: 48}", "{value: 1.2, ci95: [1.1, 1.3]}", ["not a possible proportion"]),
        ("{events: 30, n: 48}", "{value: 0.5, ci95: [0.6, 0.7]}", ["must be finite and contain"]),
        ("    published:", "    arm: b\n    published:", ["arm 'b' is not one of"]),
        ("first_line.yaml", "nowhere.yaml", ["scenario file not found"]),
        ("cpk_normal_month_6\n", "cpk_ratio_month_3\n", ["describe a proportion"]),
    ],
)
def test_bad_study_files_are_clear_input_errors_before_anything_runs(tmp_path, old, new, fragments):
    f = _study(tmp_path, BASE.replace(old, new))
    with pytest.raises(InputError) as err:
        load_study(f)
    assert str(f) in str(err.value)
    for frag in fragments:
        assert frag in str(err.value)
    out = tmp_path / "out"
    proc = validate_cmd(f, "--out", out, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not out.exists()


def test_a_difference_needs_arms_on_the_same_patients(tmp_path):
    text = BASE.replace(
        "  a: SCEN/first_line.yaml", "  a: SCEN/first_line.yaml\n  b: SCEN/studies/danko_2004.yaml"
    ).replace(
        "    published: {events: 30, n: 48}",
        "    difference: [a, b]\n    published: {value: 0.0, ci95: [-0.1, 0.1]}",
    )
    with pytest.raises(InputError, match="same patients"):
        load_study(_study(tmp_path, text))


def test_a_difference_between_arms_is_the_paired_difference_of_compare(tmp_path):
    from simulator.comparison import compare

    text = BASE.replace(
        "  a: SCEN/first_line.yaml", "  a: SCEN/steroid_only.yaml\n  b: SCEN/first_line.yaml"
    ).replace(
        "    published: {events: 30, n: 48}",
        "    difference: [a, b]\n    published: {value: 0.1, ci95: [0.0, 0.2]}",
    )
    study = load_study(_study(tmp_path, text))
    (res,) = evaluate(study)
    cmp = compare(study.scenarios, names=["a", "b"], patients=50, progress=False).outcomes()
    d = cmp["cpk_normal_month_6"]["differences"]["b"]
    assert res.arm == "b - a" and res.simulated == d["mean_difference"]
    assert [res.simulated_low, res.simulated_high] == d["ci95"]


def test_validate_command_writes_the_table_figure_and_report(tmp_path):
    out = tmp_path / "v"
    proc = validate_cmd(
        STUDIES / "danko_2004.yaml",
        STUDIES / "hara_2003.yaml",
        "--patients",
        "200",
        "--out",
        out,
        "--workers",
        "1",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "validation: " in proc.stdout and "calibration: " in proc.stdout
    # the terminal table too lists the calibration targets (Hara among them) first
    assert proc.stdout.index("hara_2003") < proc.stdout.index("[validation]")
    data = json.loads((out / "validation.json").read_text())
    rows = data["targets"]
    assert [r["metric"] for r in rows] == [
        "alive_year_5",
        "alive_year_1",
        "alive_year_10",
        "tis20_week_12_from_entry",
    ]
    s = data["summary"]
    assert s["validation"]["targets"] == 2 and s["calibration"]["targets"] == 2
    assert s["all"]["overlapping"] == sum(r["overlaps"] for r in rows)
    for f in ("validation.csv", "validation.png", "report.html"):
        assert (out / f).stat().st_size > 0
    assert "Simulated against published studies" in (out / "report.html").read_text()
    header = (out / "validation.csv").read_text().splitlines()[0]
    assert header.startswith("study,role,label,metric,arm,estimator,published")
    # what a reader needs to reproduce each row: the seed the arms ran with (no --seed:
    # each study's own), and the patients the estimate is over
    for r in rows:
        study = load_study(STUDIES / f"{r['study']}.yaml")
        own = study.spec.seed if study.spec.seed is not None else study.scenarios[0].seed
        assert r["seed"] == own, r
    survival = [r for r in rows if r["metric"].startswith("alive_year")]
    assert all(r["assessed"] == r["patients"] == 200 for r in survival)
    entered = next(r for r in rows if r["metric"] == "tis20_week_12_from_entry")
    assert 0 < entered["assessed"] < entered["patients"]  # among the entered patients
    assert "Simulator " in (out / "report.html").read_text()
    # the report's table shows what was fitted to apart from what was not: the calibration
    # targets (Danko's 5 years, Hara) under one heading, then the validation targets
    page = (out / "report.html").read_text()
    at = [
        page.index(s)
        for s in (
            "calibration targets:",
            "alive_year_5 (",
            "tis20_week_12_from_entry (",
            "validation targets:",
            "alive_year_1 (",
            "alive_year_10 (",
        )
    ]
    assert at == sorted(at), at


def test_the_prediction_of_a_published_count_includes_the_studys_sampling_error():
    """Where a published k of n falls in the model's prediction: the share of studies of
    n patients, at each particle's simulated p, that report fewer than k (ties half),
    weighted by particle. Reference written from the binomial pmf. Hara 2003's 7 of 8:
    particles whose expected proportion lies around 0.55-0.7 put 7/8 above every one of
    them (the expected values alone: share 0), but a study of 8 patients reports 7 or
    more in about 10-25% of samples, well inside the prediction."""
    import math

    import numpy as np

    from simulator.studies import share_predicted_below

    def binom_below(k: int, n: int, p: float) -> float:
        pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
        return sum(pmf[:k]) + 0.5 * pmf[k]

    p = np.array([0.55, 0.6, 0.65, 0.7])
    w = np.array([1.0, 2.0, 3.0, 2.0])
    hara = {
        "published": 7 / 8,
        "published_low": 0.529,
        "published_high": 0.978,
        "published_events": 7,
        "published_n": 8,
    }
    got = share_predicted_below(p, w, hara)
    ref = sum(wi * binom_below(7, 8, pi) for pi, wi in zip(p, w, strict=True)) / w.sum()
    assert got == pytest.approx(ref, rel=1e-12)
    assert 0.025 < got < 0.975
    # without the study's error (no counts, an interval of zero width) the published
    # value is above every particle: the check used until 2026-11-29 called this a miss
    exact = {"published": 7 / 8, "published_low": 7 / 8, "published_high": 7 / 8}
    assert share_predicted_below(p, w, exact) == 1.0
    # a value with a 95% interval: a normal error with the SD the interval implies
    sd = (0.40 - 0.20) / (2 * 1.959963984540054)
    x = np.array([0.08, 0.09, 0.10])
    faggioli = {"published": 0.30, "published_low": 0.20, "published_high": 0.40}
    got = share_predicted_below(x, np.ones(3), faggioli)
    ref = float(np.mean([0.5 * math.erfc(-(0.30 - xi) / (sd * math.sqrt(2))) for xi in x]))
    assert got == pytest.approx(ref, rel=1e-12)
    assert got > 0.975  # the founding series' day-84 ratio stays a miss
    # particles without a value are left out; none at all gives None
    assert share_predicted_below([np.nan, 0.6], [5.0, 1.0], hara) == pytest.approx(
        binom_below(7, 8, 0.6), rel=1e-12
    )
    assert share_predicted_below([np.nan], [1.0], hara) is None
