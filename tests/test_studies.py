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
