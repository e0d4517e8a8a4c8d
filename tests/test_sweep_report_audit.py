"""Defects a user audit of `simulate sweep` outputs found, each checked in the output
that carries it: the cost-effectiveness horizon of the PSA's figures and text, what an
assessor needs to reproduce a sweep (version, economics, sweep file, distributions, EVPPI
groups), what the error bars are, parameter labels with units, value labels clear of the
base-case line, one-sided tornado bars, and CEAC curves at their true values. Outputs
are synthetic (no simulation), so each test is fast and exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SCENARIOS
from matplotlib.backends.backend_agg import FigureCanvasAgg

from simulator.designs import one_way
from simulator.designs.psa import decision_analysis
from simulator.report import sweep_figures
from simulator.report.comparison import economics_basis
from simulator.report.sweep_report import write_sweep
from simulator.scenario.sweep_schema import OneWay
from simulator.sweeps import SweepResult, analyse, plan_sweep, points_of

PRICE = "economics.prices.ivig_per_g"
EMAX = "disease.steroid.emax_per_day"
FATALITY = "safety.ivig.thromboembolism.case_fatality"

PSA = """name: audit_psa
strategies:
  rescue: {rescue}
  first_line: {first_line}
  steroid_only: {steroid_only}
patients: 20
outcomes: [cost_total, qaly]
design:
  type: psa
  draws: 10
  parameters:
    economics.prices.ivig_per_g: {{dist: uniform, low: 34, high: 59}}
    disease.steroid.emax_per_day: {{dist: lognormal, median: 0.1209, cv: 0.2}}
  groups:
    IVIG price: [economics.prices.ivig_per_g]
    steroid efficacy: [disease.steroid.emax_per_day]
"""

ONE_WAY = """name: audit_tornado
strategies:
  rescue: {rescue}
  first_line: {first_line}
patients: 20
outcomes: [net_monetary_benefit]
design:
  type: one_way
  parameters:
    economics.prices.ivig_per_g: {{low: 34, high: 59}}
    disease.steroid.emax_per_day: {{low: 0.10, high: 0.19}}
    safety.ivig.thromboembolism.case_fatality: {{low: 0.0, high: 0.2}}
"""


def _sweep(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "audit_sweep.yaml"
    path.write_text(
        text.format(
            **{a: SCENARIOS / f"{a}.yaml" for a in ("rescue", "first_line", "steroid_only")}
        )
    )
    return path


def _per_arm(arm: str, outcome: str, pt: dict) -> float:
    """A synthetic decision: steroid_only is cheapest and best at low willingness to pay,
    first_line at high; rescue is never best (so two CEAC curves lie on 0 together)."""
    price, emax = pt.get(PRICE, 34.0), pt.get(EMAX, 0.12)
    cost = {"rescue": 40_000 + 100 * price, "first_line": 60_000 + 200 * price}.get(arm, 30_000)
    qaly = {"rescue": 10.0, "first_line": 11.0 + 5 * emax}.get(arm, 9.5)
    values = {
        "cost_total": cost,
        "qaly": qaly,
        "cost_lifetime": 2 * cost,  # the lifetime columns differ from the clinical ones
        "qaly_lifetime": 3 * qaly,
        "cumulative_prednisone_g": 5.0,
        "net_monetary_benefit": 20_000 * 3 * qaly - 2 * cost,
    }
    return values[outcome]


def _outputs(plan) -> list[dict[str, float]]:
    out = []
    for pt in plan.points:
        row: dict[str, float] = {}
        for key in plan.output_keys:
            arm, _, outcome = key.rpartition(":")
            parts = sweep_figures.split_key(key, plan.arms)
            assert parts is not None
            arms = parts[0]
            if len(arms) == 2:  # a difference between two arms: B - A
                v = _per_arm(arms[0], outcome, pt) - _per_arm(arms[1], outcome, pt)
            else:
                v = _per_arm(arm, outcome, pt)
            row[key] = v
            row[key + "_se"] = 1.0
        out.append(row)
    return out


def _psa_result(tmp_path: Path, sets: tuple[str, ...] = ()) -> SweepResult:
    plan = plan_sweep(_sweep(tmp_path, PSA), sets=list(sets))
    outputs = _outputs(plan)
    return SweepResult(plan, outputs, {"psa": decision_analysis(plan, outputs)})


def _one_way_result(tmp_path: Path, sets: tuple[str, ...] = ()) -> SweepResult:
    plan = plan_sweep(_sweep(tmp_path, ONE_WAY), sets=list(sets))
    outputs = _outputs(plan)
    analysis = analyse(
        plan.spec.design, plan.points, outputs, plan.seed, plan.base_values, plan.output_keys
    )
    return SweepResult(plan, outputs, analysis)


def _drawn(monkeypatch, draw, *args):
    """The Figure a figure function saves (not written: ``_save`` captured)."""
    saved: dict = {}
    with monkeypatch.context() as m:
        m.setattr(sweep_figures, "_save", lambda fig, path: saved.update({path: fig}))
        draw(*args)
    assert len(saved) == 1
    return next(iter(saved.values()))


def _written(result: SweepResult, folder: Path) -> tuple[dict, str]:
    folder.mkdir()
    write_sweep(result, folder)
    data = json.loads((folder / "sweep.json").read_text())
    return data, (folder / "report.html").read_text()


# --------------------------------------------------------------------------------------
# 1. the PSA's cost-effectiveness results say which horizon's costs and QALYs they use
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("clinical", [False, True])
def test_psa_figures_and_report_name_the_cost_effectiveness_horizon(
    tmp_path, monkeypatch, clinical
):
    sets = ("economics.cea_horizon=clinical",) if clinical else ()
    result = _psa_result(tmp_path, sets)
    psa = result.analysis["psa"]
    days = result.plan.scenarios[0].horizon_days
    if clinical:
        assert (psa["cost"], psa["effect"]) == ("cost_total", "qaly")
        basis = f"simulated horizon of {days:,} days, discounted at 3.5%/year"
    else:
        assert (psa["cost"], psa["effect"]) == ("cost_lifetime", "qaly_lifetime")
        basis = "lifetime, discounted at 3.5%/year"
    plane = _drawn(monkeypatch, sweep_figures._psa_scatter, result, tmp_path).axes[1]
    assert plane.get_xlabel() == f"incremental QALYs ({basis})"
    assert plane.get_ylabel() == f"incremental cost (GBP; {basis})"
    # the plane draws the analysis's own columns: the lifetime QALYs are 3x the clinical
    dq = [o[f"first_line-rescue:{psa['effect']}"] for o in result.outputs]
    assert list(plane.collections[0].get_offsets()[:, 0]) == dq
    ceac = _drawn(monkeypatch, sweep_figures._psa_ceac, result, tmp_path).axes[0]
    assert basis in ceac.get_title()
    evppi = _drawn(monkeypatch, sweep_figures._psa_evppi, result, tmp_path)
    assert basis in evppi.get_suptitle()
    _, page = _written(result, tmp_path / "out")
    assert (
        f"use <b>{basis}</b> costs and QALYs (the outcomes <code>{psa['cost']}</code> and "
        f"<code>{psa['effect']}</code>" in page
    )
    if clinical:
        assert "lifetime" not in plane.get_xlabel() + ceac.get_title()


# --------------------------------------------------------------------------------------
# 2. a sweep's report and sweep.json say what reproduces it
# --------------------------------------------------------------------------------------


def test_psa_report_and_sweep_json_state_what_reproduces_the_result(tmp_path):
    sets = ("economics.willingness_to_pay_per_qaly=30000", "economics.price_year=2021")
    result = _psa_result(tmp_path, sets)
    data, page = _written(result, tmp_path / "out")
    econ = result.plan.scenarios[0].economics
    # sweep.json: the sweep file, the economics of the resolved base scenario, and the
    # design as the sweep file gives it (distributions and EVPPI groups)
    assert data["sweep_file"] == "audit_sweep.yaml"
    assert data["economics"] == {
        "currency": "GBP",
        "willingness_to_pay_per_qaly": 30000.0,
        "discount_rate_per_year": econ.discount_rate_per_year,
        "horizon": "lifetime",
        "horizon_days": result.plan.scenarios[0].horizon_days,
        "perspective": econ.perspective,
        "price_year": 2021,
    }
    spec = data["design_spec"]
    assert spec["parameters"] == {
        PRICE: {"dist": "uniform", "low": 34.0, "high": 59.0},
        EMAX: {"dist": "lognormal", "median": 0.1209, "cv": 0.2},
    }
    assert spec["groups"] == {"IVIG price": [PRICE], "steroid efficacy": [EMAX]}
    assert spec["draws"] == 10
    assert data["analysis"]["psa"]["evppi_groups"] == spec["groups"]
    # report.html: version, economics (the compare report's sentence), the sweep file
    settings = page.split("<h2>Settings</h2>", 1)[1].split("<h2>", 1)[0]
    assert f"simulator version <b>{data['simulator_version']}</b>" in settings
    assert "willingness to pay <b>30,000 GBP per QALY</b>" in settings
    assert economics_basis(data["economics"]) in settings
    assert "prices of 2021 in GBP" in settings and "discounted at 3.5% a year" in settings
    assert "<code>audit_sweep.yaml</code>" in settings
    # each parameter's distribution, as given, with its EVPPI group
    rows = {r.split("<code>", 1)[1].split("</code>", 1)[0]: r for r in settings.split("<tr>")[2:]}
    assert set(rows) == {PRICE, EMAX}
    assert ">uniform</td><td style='text-align:left'>low 34, high 59</td>" in rows[PRICE]
    assert "<td style='text-align:left'>IVIG price</td></tr>" in rows[PRICE]
    assert "<td style='text-align:left'>steroid efficacy</td></tr>" in rows[EMAX]
    assert ">lognormal</td><td style='text-align:left'>median 0.1209, cv 0.2</td>" in rows[EMAX]
    # the EVPPI table names the parameters making up each group
    evppi = page.split("<th>parameters in the group</th>", 1)[1].split("</table>", 1)[0]
    row = next(r for r in evppi.split("<tr>") if r.startswith("<td style='text-align:left'>IVIG"))
    assert f"<span title='{PRICE}'>IVIG price (GBP per g)</span>" in row
    # the same inputs give the same bytes
    again = tmp_path / "again"
    _written(_psa_result(tmp_path, sets), again)
    assert (again / "sweep.json").read_bytes() == (tmp_path / "out" / "sweep.json").read_bytes()


def test_one_way_report_states_version_and_economics(tmp_path):
    result = _one_way_result(tmp_path, ("economics.discount_rate_per_year=0.015",))
    data, page = _written(result, tmp_path / "out")
    assert data["design_spec"]["parameters"][PRICE] == {"low": 34.0, "high": 59.0}
    settings = page.split("<h2>Settings</h2>", 1)[1].split("<h2>", 1)[0]
    assert "discounted at 1.5% a year" in settings
    assert f"simulator version <b>{data['simulator_version']}</b>" in settings
    assert "willingness to pay <b>20,000 GBP per QALY</b>" in settings


# --------------------------------------------------------------------------------------
# 3. the text says what the figures' error bars are
# --------------------------------------------------------------------------------------


def test_the_reports_say_what_the_error_bars_are(tmp_path, monkeypatch):
    _, tornado = _written(_one_way_result(tmp_path), tmp_path / "t")
    _, psa_page = _written(_psa_result(tmp_path), tmp_path / "p")
    for page in (tornado, psa_page):
        assert "error bars in the figures" not in page
    assert (
        "Error bars of the tornado and line figures: the 95% interval of each point's"
        " difference from the base case, paired on the same patients" in tornado
    )
    assert "The PSA figures draw no Monte Carlo error bars" in psa_page
    # and so they are: the PSA's scatter and CEAC have no error bars, the EVPPI panel
    # only its bootstrap standard errors
    result = _psa_result(tmp_path)
    for draw in (sweep_figures._psa_scatter, sweep_figures._psa_ceac):
        fig = _drawn(monkeypatch, draw, result, tmp_path)
        assert all(not ax.containers for ax in fig.axes)


# --------------------------------------------------------------------------------------
# 4. parameters by a readable name with their unit; end labels clear of the base line
# --------------------------------------------------------------------------------------


def test_tornado_and_points_table_name_parameters_with_their_units(tmp_path, monkeypatch):
    result = _one_way_result(tmp_path, ("economics.currency=EUR",))
    saved: dict = {}
    monkeypatch.setattr(sweep_figures, "_save", lambda fig, path: saved.update({path: fig}))
    one_way.figures(result, tmp_path)
    ticks = {
        t.get_text().split("\n")[0]
        for t in saved[tmp_path / "tornado.png"].axes[0].get_yticklabels()
    }
    assert ticks == {
        "IVIG price (EUR per g)",
        "steroid Emax (1/day)",
        "thromboembolism case fatality (proportion)",
    }
    monkeypatch.undo()
    _, page = _written(result, tmp_path / "out")
    table = page.split("<h2>Points</h2>", 1)[1].split("</tr>", 1)[0]
    assert f"<th title='{PRICE}'>IVIG price (EUR per g)</th>" in table
    assert f"<th title='{EMAX}'>steroid Emax (1/day)</th>" in table


@pytest.fixture(scope="module")
def psa_scenario():
    """The shipped PSA's first strategy, as the sweep resolves it (labels read its schema)."""
    return plan_sweep(SCENARIOS / "sweeps" / "psa_first_line_vs_rescue.yaml").scenarios[0]


def test_labels_of_other_parameters_read_their_unit_from_the_schema(psa_scenario):
    scn = psa_scenario
    label = sweep_figures.parameter_label
    assert label("disease.ivig.effect_per_g_per_l_per_day", scn, "GBP") == (
        "IVIG effect (1/day per g/L)"
    )
    assert label("disease.activity.lasting_drive_log.mean", scn, "GBP") == (
        "lasting drive, mean (log activity)"
    )
    assert label("regimen.ivig.dose_g_per_kg", scn, "GBP") == "IVIG dose (g/kg per cycle)"
    assert label("economics.adverse_event_cost.thromboembolism", scn, "USD") == (
        "thromboembolism adverse event cost (USD per event)"
    )
    # a name the schema does not have keeps the parameter's own words
    assert label("a", scn, "GBP") == "a"
    # the top-level horizon, swept by horizon_first_line_vs_rescue.yaml, with its unit
    assert label("horizon_days", scn, "GBP") == "simulated horizon (days)"


def test_the_two_haq_slopes_of_the_tornado_have_labels_that_tell_them_apart(psa_scenario):
    """Weakness -> HAQ (disease.core_set) and HAQ -> utility (economics.utilities) were
    both labelled "HAQ slope" in the shipped tornado."""
    scn = psa_scenario
    label = sweep_figures.parameter_label
    got = {
        p: label(p, scn, "GBP")
        for p in (
            "disease.core_set.haq_slope",
            "disease.core_set.haq_exponent",
            "economics.utilities.haq_slope",
        )
    }
    assert got == {
        "disease.core_set.haq_slope": "HAQ per strength lost, slope",
        "disease.core_set.haq_exponent": "HAQ per strength lost, exponent",
        "economics.utilities.haq_slope": "HAQ-to-utility slope (utility per HAQ unit)",
    }


def test_adverse_event_fields_carry_their_units_in_the_schema(psa_scenario):
    """The units of an adverse event's fields were kept in a side table of the sweep
    figures; they are in the schema now, read by the labels and the docs' table alike."""
    from simulator.scenario.reference import parameter_table
    from simulator.scenario.schema import AdverseEventIVIG, AdverseEventSteroid

    for model in (AdverseEventIVIG, AdverseEventSteroid):
        for name, field in model.model_fields.items():
            if field.annotation in (float, list[float]):
                extra = field.json_schema_extra
                assert isinstance(extra, dict) and extra.get("unit"), (model.__name__, name)
    scn = psa_scenario
    label = sweep_figures.parameter_label
    assert label("safety.ivig.thromboembolism.case_fatality", scn, "GBP") == (
        "thromboembolism case fatality (proportion)"
    )
    assert label("safety.steroid.serious_infection.baseline_per_year", scn, "GBP") == (
        "serious infection baseline (1/year)"
    )
    assert label("safety.steroid.hip_fracture.dose_thresholds_mg_per_day[1]", scn, "GBP") == (
        "hip fracture dose thresholds (mg/day)"
    )
    row = next(r for r in parameter_table().splitlines() if "`safety.ivig.headache`" in r)
    assert "p_per_cycle: probability per cycle" in row and "case_fatality: proportion" in row


def _overlaps(fig):
    """The value labels at the bars' ends (their window extents) and the base-case line's
    x in the same pixels."""
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_linestyle() == "--")
    x = ax.transData.transform((line.get_xdata()[0], 0))[0]
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    return x, boxes


def test_tornado_end_labels_clear_the_base_line_and_each_other(monkeypatch):
    """A bar with one end on the base case (its marker on the dashed line: '0.2' was
    drawn across the line, reading '0|2'), a bar across the line, a bar on one side."""
    design = OneWay.model_validate(
        {
            "type": "one_way",
            "parameters": {
                "a": {"low": 0.0, "high": 0.2},
                "b": {"low": 1.0, "high": 2.0},
                "c": {"low": 3.0, "high": 4.0},
            },
        }
    )
    base = {"a": 0.2, "b": 1.5, "c": 3.5}
    outs = [{"y": v, "y_se": 0.5} for v in (10.0, 10.4, 10.0, 9.0, 11.5, 10.2, 10.6)]
    bars = one_way.analyse(design, points_of(design, 0, base), outs, 0, base, ["y"])["tornado"]
    fig = _drawn(monkeypatch, sweep_figures._tornado_figure, bars["y"], "y", Path("t.png"))
    x, boxes = _overlaps(fig)
    assert len(boxes) == 6
    for box in boxes:
        assert not box.x0 <= x <= box.x1, (box, x)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b)


# --------------------------------------------------------------------------------------
# 5. a bar with an end at the base value says so
# --------------------------------------------------------------------------------------


def test_a_one_sided_tornado_bar_says_one_end_is_the_base_value(tmp_path, monkeypatch):
    result = _one_way_result(tmp_path)
    assert result.plan.base_values[PRICE] == 34 and result.plan.base_values[FATALITY] == 0.2
    saved: dict = {}
    monkeypatch.setattr(sweep_figures, "_save", lambda fig, path: saved.update({path: fig}))
    one_way.figures(result, tmp_path)
    ticks = {
        t.get_text().split("\n")[0]: t.get_text()
        for t in saved[tmp_path / "tornado.png"].axes[0].get_yticklabels()
    }
    assert ticks["IVIG price (GBP per g)"].endswith("\n(one end at the base value)")
    assert ticks["thromboembolism case fatality (proportion)"].endswith(
        "\n(one end at the base value)"
    )
    assert ticks["steroid Emax (1/day)"] == "steroid Emax (1/day)"  # 0.1209: neither end
    monkeypatch.undo()
    _, page = _written(result, tmp_path / "out")
    assert (
        "<li>IVIG price (GBP per g): 34 is the base value; its bar shows only the effect of"
        " 59</li>" in page
    )
    assert "<li>thromboembolism case fatality (proportion): 0.2 is the base value" in page
    assert "steroid Emax (1/day): " not in page.split("One-sided bars", 1)[1].split("</ul>")[0]
    # the table of points marks the point at the base value
    point = page.split("<h2>Points</h2>", 1)[1].split("<tr>")[3]  # point 1: price 34
    assert "<td>34<br><small>(the base value)</small></td>" in point


# --------------------------------------------------------------------------------------
# 6. CEAC curves at their true values, told apart by style, not shifted
# --------------------------------------------------------------------------------------


def test_ceac_curves_are_drawn_at_their_true_probabilities(tmp_path, monkeypatch):
    result = _psa_result(tmp_path)
    psa = result.analysis["psa"]
    assert psa["ceac"]["rescue"][0] == 0.0 and psa["ceac"]["first_line"][0] == 0.0
    ax = _drawn(monkeypatch, sweep_figures._psa_ceac, result, tmp_path).axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for arm in result.plan.arms:
        assert list(lines[arm].get_ydata()) == psa["ceac"][arm]
        assert list(lines[arm].get_xdata()) == psa["willingness_to_pay"]
    ys = [y for arm in result.plan.arms for y in lines[arm].get_ydata()]
    assert min(ys) >= 0.0 and max(ys) <= 1.0
    # curves that coincide stay distinguishable: each its own line style and marker
    styles = {(lines[a].get_linestyle(), lines[a].get_marker()) for a in result.plan.arms}
    assert len(styles) == len(result.plan.arms)
    assert len({lines[a].get_linestyle() for a in result.plan.arms}) == len(result.plan.arms)


def test_the_report_says_when_an_evppi_was_capped_at_the_evpi(tmp_path):
    """psa_analysis reports an EVPPI estimate above the EVPI as the EVPI and lists the
    group (tests/test_sweep.py); the report says so beside the table."""
    result = _psa_result(tmp_path)
    psa = result.analysis["psa"]
    group = next(iter(psa["evppi_per_patient_at_reference"]))
    _, page = _written(result, tmp_path / "plain")
    assert "exceeded the EVPI" not in page
    psa["evppi_capped_at_evpi"] = [group]
    data, page = _written(result, tmp_path / "capped")
    assert data["analysis"]["psa"]["evppi_capped_at_evpi"] == [group]
    assert f"EVPPI of {group} exceeded the EVPI" in page
