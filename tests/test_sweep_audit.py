"""Defects an audit of the sensitivity sweeps found, each checked where it showed:
labels of between-arm differences of times to an event, Sobol' second-order indices,
PSA draws beyond the quantiles checked at planning, tornado bars with an undefined end,
tornado colours by value, strategy names with '-', and rounding of values of
information. Outputs are synthetic where the defect is in the analysis or the report
(no simulation), so each test is fast and exact."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import SCENARIOS

from simulator.designs import one_way
from simulator.designs.common import global_indices
from simulator.errors import InputError
from simulator.report import sweep_figures
from simulator.report.figures import COLORS
from simulator.scenario.sweep_schema import OneWay, Sobol
from simulator.sweeps import SweepResult, analyse, plan_sweep, points_of

CPK = "time_to_cpk_normal_days"


def ishigami(p, a=7.0, b=0.1):
    x1, x2, x3 = p["x1"], p["x2"], p["x3"]
    return math.sin(x1) + a * math.sin(x2) ** 2 + b * x3**4 * math.sin(x1)


def _sweep_file(tmp_path: Path, body: str, arms=("rescue", "first_line"), name="s.yaml") -> Path:
    files = {"rescue": SCENARIOS / "rescue.yaml", "first_line": SCENARIOS / "first_line.yaml"}
    lines = [f"  {a}: {files[a.replace('iv-', '').replace('-', '_')]}" for a in arms]
    path = tmp_path / name
    path.write_text("name: audit\nstrategies:\n" + "\n".join(lines) + "\n" + body)
    return path


def _synthetic(plan, value) -> list[dict[str, float]]:
    """Each point's outputs: ``value(point, key)``, with a Monte Carlo SE of 1."""
    out = []
    for pt in plan.points:
        row: dict[str, float] = {}
        for k in plan.output_keys:
            row[k] = value(pt, k)
            row[k + "_se"] = 1.0
        out.append(row)
    return out


def _analysed(plan, outputs) -> SweepResult:
    """A sweep's result from synthetic outputs, analysed as the design does."""
    return SweepResult(
        plan,
        outputs,
        analyse(
            plan.spec.design, plan.points, outputs, plan.seed, plan.base_values, plan.output_keys
        ),
    )


ONE_WAY = """patients: 20
seed: 5
outcomes: [qaly, time_to_cpk_normal_days]
design:
  type: one_way
  parameters:
    economics.prices.ivig_per_g: {values: [90, 10]}
    disease.steroid.emax_per_day: {low: 0.10, high: 0.19}
"""


# --------------------------------------------------------------------------------------
# 1. a difference between arms of a time to an event is of restricted mean times
# --------------------------------------------------------------------------------------


def test_a_difference_of_a_time_to_an_event_is_labelled_as_the_restricted_mean_difference(
    tmp_path,
):
    from simulator.report.sweep_report import _estimators

    plan = plan_sweep(_sweep_file(tmp_path, ONE_WAY))
    labels = sweep_figures._labels(plan)
    day = plan.scenarios[0].horizon_days
    # the label says what sweep.csv's estimator column says the value is
    assert _estimators(plan)({}, "first_line-rescue", CPK) == f"rmst_difference_to_day_{day}"
    assert sweep_figures._key_label(f"first_line-rescue:{CPK}", labels) == (
        f"difference in restricted mean time to CPK normal, to day {day} [days],"
        " first_line - rescue"
    )
    # an arm's own value is the Kaplan-Meier median; other differences keep their label
    assert sweep_figures._key_label(f"rescue:{CPK}", labels) == (
        "time to CPK normal (KM median) [days], rescue"
    )
    assert sweep_figures._key_label("first_line-rescue:qaly", labels) == (
        "QALYs (discounted) [QALY], first_line - rescue"
    )
    # a swept horizon: each point's restricted mean is to its own horizon
    swept = _sweep_file(
        tmp_path,
        ONE_WAY.replace(
            "  parameters:\n", "  parameters:\n    horizon_days: {values: [364, 728]}\n"
        ),
        name="h.yaml",
    )
    text = sweep_figures._key_label(
        f"first_line-rescue:{CPK}", sweep_figures._labels(plan_sweep(swept))
    )
    assert text.startswith(
        "difference in restricted mean time to CPK normal, to each point's horizon (day 364 to 728)"
    )


# --------------------------------------------------------------------------------------
# 2. Sobol' second-order indices
# --------------------------------------------------------------------------------------


def test_sobol_second_order_indices_recover_the_ishigami_interaction():
    """Ishigami, a=7, b=0.1: the only interaction is x1 with x3, S13 = ST1 - S1 =
    0.5576 - 0.3139 = 0.2437; S12 = S23 = 0 (Sobol & Levitan 1999). Tolerance: twice
    SALib's 95% bootstrap half-width (about 4 standard errors) at N = 2048."""
    bounds = {n: {"low": -math.pi, "high": math.pi} for n in ("x1", "x2", "x3")}
    design = Sobol.model_validate(
        {"type": "sobol", "parameters": bounds, "n": 2048, "second_order": True}
    )
    pts = points_of(design, seed=7, base_values={})
    assert len(pts) == 2048 * (2 * 3 + 2)
    res = global_indices(design, pts, {"f": np.array([ishigami(p) for p in pts])}, seed=7)["f"]
    s2, conf = res["S2"], res["S2_ci95_halfwidth"]
    assert len(s2) == 3 and all(len(row) == 3 for row in s2)
    for i in range(3):
        for j in range(3):
            if j <= i:  # on and below the diagonal: no index (SALib's NaN)
                assert s2[i][j] is None and conf[i][j] is None
            else:
                true = 0.2437 if (i, j) == (0, 2) else 0.0
                assert conf[i][j] > 0
                assert abs(s2[i][j] - true) < 2 * conf[i][j] + 1e-3, (i, j)
    # without second_order nothing changes: no S2
    first = Sobol.model_validate({"type": "sobol", "parameters": bounds, "n": 64})
    pts1 = points_of(first, seed=7, base_values={})
    res1 = global_indices(first, pts1, {"f": np.array([ishigami(p) for p in pts1])}, seed=7)
    assert "S2" not in res1["f"]


def test_sobol_second_order_indices_are_in_sweep_json_and_the_report(tmp_path):
    from simulator.report.sweep_report import write_sweep

    sweep = tmp_path / "sobol.yaml"
    sweep.write_text(
        f"name: sobol2\nbase: {SCENARIOS / 'first_line.yaml'}\npatients: 20\n"
        "outcomes: [cpk_normal_month_6]\ndesign:\n  type: sobol\n  n: 16\n"
        "  second_order: true\n  parameters:\n"
        "    disease.ivig.effect_per_g_per_l_per_day: {low: 0.003, high: 0.01}\n"
        "    disease.ivig.effect_half_life_days: {low: 5, high: 30}\n"
        "    disease.steroid.emax_per_day: {low: 0.10, high: 0.19}\n"
    )
    plan = plan_sweep(sweep)
    names = list(plan.spec.design.parameters)
    assert len(plan.points) == 16 * (2 * 3 + 2)

    def value(pt, key):  # an interaction of the first and the last parameter
        a, _, c = (pt[n] for n in names)
        return a * 100 + (c - 0.145) * (a - 0.0045) * 4e3

    outputs = _synthetic(plan, value)
    result = _analysed(plan, outputs)
    folder = tmp_path / "out"
    folder.mkdir()
    write_sweep(result, folder)
    info = json.loads((folder / "sweep.json").read_text())["analysis"]["indices"][
        "cpk_normal_month_6"
    ]
    assert [row[:1] for row in info["S2"]] == [[None], [None], [None]]
    assert info["S2"][0][2] > 0.05 and info["S2_ci95_halfwidth"][0][2] > 0
    page = (folder / "report.html").read_text()
    assert "Second-order indices S2" in page
    table = page.split("Second-order indices S2", 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 4  # a header and one row per parameter
    assert f"{info['S2'][0][2]:.3f} &plusmn; {info['S2_ci95_halfwidth'][0][2]:.3f}" in table


# --------------------------------------------------------------------------------------
# 3. a PSA draw beyond the quantiles checked is refused at planning
# --------------------------------------------------------------------------------------

PSA_TAIL = """patients: 20
outcomes: [cost_total, qaly]
design:
  type: psa
  draws: 100000
  parameters:
    safety.ivig.thromboembolism.case_fatality: {dist: normal, mean: 0.05, sd: 0.0134%s}
"""
CASE_FATALITY = "safety.ivig.thromboembolism.case_fatality"


def test_an_invalid_psa_draw_is_refused_at_planning_with_its_value(tmp_path, capsys):
    """A normal case fatality of mean 0.05, SD 0.0134: its 1e-4 quantile (0.0002) is
    valid, but 100,000 draws go below 0 (expected about 10; none with probability
    7e-5, and the seed is fixed). The sweep is refused before anything runs, naming
    the file, line, path and the offending draw; exit 2, no output folder."""
    from simulator.cli import main
    from simulator.kernel.population import ppf

    sweep = _sweep_file(tmp_path, PSA_TAIL % "")
    spec = plan_sweep(_sweep_file(tmp_path, PSA_TAIL % ", low: 0", name="ok.yaml"), yes=True)
    design = spec.spec.design
    assert float(ppf(design.parameters[CASE_FATALITY], np.array([1e-4]))[0]) > 0
    lowest = min(
        p[CASE_FATALITY]
        for p in points_of(
            design.model_copy(update={"parameters": {CASE_FATALITY: _untruncated()}}),
            spec.seed,
            {},
        )
    )
    assert lowest < 0
    with pytest.raises(InputError) as info:
        plan_sweep(sweep, yes=True)
    err = info.value
    assert err.file == str(sweep) and err.line == 11
    assert f"design.parameters.{CASE_FATALITY}" in err.message
    assert f"the lowest of its 100,000 draws, {lowest!r}" in err.message
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out), "--yes", "--quiet"]) == 2
    assert f"{sweep}:11:" in capsys.readouterr().err
    assert not out.exists() and not Path(str(out) + ".partial").exists()
    # truncated at 0, every draw is valid: planned (the draws are checked, not refused
    # for being random)
    assert min(p[CASE_FATALITY] for p in spec.points) >= 0


def _untruncated():
    from simulator.scenario.sweep_schema import PSA

    return PSA.model_validate(
        {
            "type": "psa",
            "draws": 2,
            "parameters": {CASE_FATALITY: {"dist": "normal", "mean": 0.05, "sd": 0.0134}},
        }
    ).parameters[CASE_FATALITY]


# --------------------------------------------------------------------------------------
# 4, 5. tornado bars: an undefined end; colours by value
# --------------------------------------------------------------------------------------


def _one_way_design():
    return OneWay.model_validate(
        {
            "type": "one_way",
            "parameters": {
                "a": {"low": 1.0, "high": 2.0},
                "b": {"low": 0.0, "high": 1.0},
                "c": {"values": [3.0, 4.0]},
            },
        }
    )


def _bars(a, b, c):
    design = _one_way_design()
    pts = points_of(design, 0, {})
    outs = [{"y": v, "y_se": 0.5} for v in (10.0, *a, *b, *c)]
    return one_way.analyse(design, pts, outs, 0, {}, ["y"])["tornado"]["y"]


def test_a_tornado_bar_with_an_undefined_end_has_no_swing_whatever_the_order():
    nan = math.nan
    for a in ((nan, 12.0), (12.0, nan)):
        bars = _bars(a, (9.0, 11.0), (10.5, nan))
        by = {b["parameter"]: b for b in bars[1:]}
        assert by["a"]["low"] == by["a"]["high"] == 12.0
        assert math.isnan(by["a"]["swing"])
        assert by["a"]["undefined_at"] == [1.0 if math.isnan(a[0]) else 2.0]
        assert by["c"]["low"] == by["c"]["high"] == 10.5 and by["c"]["undefined_at"] == [4.0]
        assert by["b"]["swing"] == 2.0 and "undefined_at" not in by["b"]
        # the defined swing first, the undefined ones last (in the design's order)
        assert [b["parameter"] for b in bars[1:]] == ["b", "a", "c"]


def _figure(monkeypatch, bars):
    saved = {}
    monkeypatch.setattr(sweep_figures, "_save", lambda fig, path: saved.update({path: fig}))
    sweep_figures._tornado_figure(bars, "y", Path("t.png"))
    return saved[Path("t.png")].axes[0]


def test_the_tornado_marks_a_bar_undefined_at_one_end(monkeypatch):
    ax = _figure(monkeypatch, _bars((math.nan, 12.0), (9.0, 11.0), (10.5, 10.0)))
    ticks = [t.get_text() for t in ax.get_yticklabels()]  # bottom row first
    assert ticks[0] == "a\n(undefined at one end)"
    assert "undefined" not in ticks[1] + ticks[2]
    texts = {t.get_text(): t for t in ax.texts}
    assert "undefined at 1" in texts
    assert texts["undefined at 1"].get_color() == COLORS[0]  # 1 is the low value of a


def test_tornado_colours_and_legend_go_by_value_not_by_listed_order(monkeypatch):
    """{values: [40, 10]}: 10 is the low value (first colour, above the bar), 40 the
    high value."""
    design = OneWay.model_validate({"type": "one_way", "parameters": {"p": {"values": [40, 10]}}})
    outs = [{"y": v, "y_se": 0.5} for v in (5.0, 6.0, 3.0)]
    bars = one_way.analyse(design, points_of(design, 0, {}), outs, 0, {}, ["y"])["tornado"]["y"]
    ax = _figure(monkeypatch, bars)
    texts = {t.get_text(): t for t in ax.texts}
    assert texts["10"].get_color() == COLORS[0] and texts["40"].get_color() == COLORS[1]
    assert texts["10"].xy == (3.0, 0) and texts["40"].xy == (6.0, 0)
    legend = ax.get_legend()
    from matplotlib.colors import to_hex

    colours = {
        t.get_text(): to_hex(np.ravel(h.get_color())[:4])
        for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
        if t.get_text() != "base case"
    }
    assert colours == {"low value": COLORS[0].lower(), "high value": COLORS[1].lower()}


def test_a_tornado_bar_with_an_undefined_end_is_listed_in_the_report(tmp_path):
    """End to end through write_sweep: sweep.json (null swing, the value in
    undefined_at), report.html (the list of such bars and the labels of differences)."""
    from simulator.report.sweep_report import write_sweep

    plan = plan_sweep(_sweep_file(tmp_path, ONE_WAY))
    emax = "disease.steroid.emax_per_day"

    def value(pt, key):  # first_line's median is not reached at the low emax
        if key == f"first_line:{CPK}" and pt.get(emax) == 0.10:
            return math.nan
        return 50.0 + 100 * pt.get(emax, 0.145)

    outputs = _synthetic(plan, value)
    result = _analysed(plan, outputs)
    folder = tmp_path / "out"
    folder.mkdir()
    write_sweep(result, folder)
    data = json.loads((folder / "sweep.json").read_text())
    bar = next(
        b for b in data["analysis"]["tornado"][f"first_line:{CPK}"][1:] if b["parameter"] == emax
    )
    assert bar["swing"] is None and bar["undefined_at"] == [0.10] and bar["low"] == bar["high"]
    page = (folder / "report.html").read_text()
    assert (
        "<li>time to CPK normal (KM median) [days], first_line: steroid Emax (1/day) at 0.1</li>"
        in page
    )
    day = plan.scenarios[0].horizon_days
    assert (
        f"<th>difference in restricted mean time to CPK normal, to day {day} [days],"
        " first_line - rescue</th>" in page
    )


# --------------------------------------------------------------------------------------
# 6. strategy names with '-'
# --------------------------------------------------------------------------------------


def test_strategy_names_with_a_dash_keep_their_figures_and_labels(tmp_path):
    threshold = "regimen.ivig.start_when.any[0].all[1].below.tis"
    body = ONE_WAY.replace("[qaly, time_to_cpk_normal_days]", "[qaly]").replace(
        "  parameters:\n", f"  parameters:\n    {threshold}: {{low: 15, high: 30}}\n"
    )
    plan = plan_sweep(_sweep_file(tmp_path, body, arms=("iv-rescue", "first-line")))
    assert plan.arms == ["iv-rescue", "first-line"]
    key = "first-line-iv-rescue:qaly"
    assert key in plan.output_keys
    # the rescue rule is only in iv-rescue: it moves that arm and the difference
    assert sweep_figures._touches(plan, threshold, key)
    assert sweep_figures._touches(plan, threshold, "iv-rescue:qaly")
    assert not sweep_figures._touches(plan, threshold, "first-line:qaly")
    labels = sweep_figures._labels(plan)
    assert (
        sweep_figures._key_label(key, labels) == "QALYs (discounted) [QALY], first-line - iv-rescue"
    )
    assert (
        sweep_figures._key_label("first-line:qaly", labels)
        == "QALYs (discounted) [QALY], first-line"
    )
    outputs = _synthetic(plan, lambda pt, k: 1.0 + sum(float(v) for v in pt.values()) / 100)
    result = _analysed(plan, outputs)
    files = one_way.figures(result, tmp_path)
    assert files == [
        "tornado.png",
        "tornado_first_line_qaly.png",
        "tornado_first_line_iv_rescue_qaly.png",
    ]
    assert sweep_figures.split_key(key, plan.arms) == (["first-line", "iv-rescue"], "qaly")


# --------------------------------------------------------------------------------------
# 7. values of information to 3 significant digits
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (14_683_772.0, "14,700,000"),
        (4_126_401.5, "4,130,000"),
        (1234.5, "1,230"),
        (999.7, "1,000"),
        (99.96, "100"),
        (123.456, "123"),
        (12.345, "12.3"),
        (0.61234, "0.612"),
        (-2_345.0, "-2,340"),  # round half to even, as Python's float formatting
        (0.4, "0"),
        (-0.4, "0"),
    ],
)
def test_values_of_information_are_rounded_to_three_significant_digits(x, text):
    assert sweep_figures._money(x) == text
