"""The infusion-center section of run and compare reports (report/center_report.py and
report/center_figures.py): present, with the numbers of summary.json / comparison.json,
for scenarios with a ``center:``; absent, and the reports unchanged, without one."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import SCENARIOS

from simulator.center_stats import CENTER_METRICS
from simulator.report import center_figures
from simulator.report.center_report import CENTER_COMPARISON_FILES, CENTER_FILES, describe_center
from simulator.report.comparison import COMPARISON_FILES
from simulator.report.outputs import OUTPUT_FILES
from simulator.report.tables import format_estimate

# a small center: 20 new patients a year for one year, two replications
SMALL = ["center.arrivals.per_year=20", "center.arrivals.years=1"]
PNG = b"\x89PNG\r\n\x1a\n"


class _Tables(HTMLParser):
    """Every <table> after each <h2>, as rows of cell texts (<br> becomes ' | ')."""

    def __init__(self) -> None:
        super().__init__()
        self.section = ""
        self.in_h2 = False
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self.in_h2, self.section = True, ""
        elif tag == "table":
            self.tables.append((self.section, []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "br" and self.cell is not None:
            self.cell.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self.in_h2 = False
        elif tag in ("td", "th") and self.cell is not None:
            self.tables[-1][1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.in_h2:
            self.section += data
        elif self.cell is not None:
            self.cell.append(data)


def tables(page: str) -> dict[str, list[list[list[str]]]]:
    """Tables by the heading (h2) of their section."""
    p = _Tables()
    p.feed(page)
    out: dict[str, list[list[list[str]]]] = {}
    for section, rows in p.tables:
        out.setdefault(section, []).append(rows)
    return out


def headings(page: str) -> list[str]:
    return re.findall(r"<h2>([^<]*)</h2>", page)


def _ci(ci: list[float | None], unit: str) -> str:
    lo, hi = ci
    if lo is None or hi is None:
        return "n/a"
    return f"{format_estimate(lo, unit)} to {format_estimate(hi, unit)}"


@pytest.fixture(scope="module")
def center_scenarios():
    from simulator.scenario import load_scenario

    return (
        load_scenario(SCENARIOS / "center_capacity.yaml", SMALL),
        load_scenario(SCENARIOS / "center_capacity_rescue.yaml", SMALL),
    )


@pytest.fixture(scope="module")
def center_run(tmp_path_factory: pytest.TempPathFactory, center_scenarios) -> Path:
    from simulator.jobs import run_to_folder

    out = tmp_path_factory.mktemp("center") / "run"
    run_to_folder(center_scenarios[0], out, patients=2, progress=False)
    return out


@pytest.fixture(scope="module")
def center_compare(tmp_path_factory: pytest.TempPathFactory, center_scenarios) -> Path:
    from simulator.jobs import compare_to_folder

    out = tmp_path_factory.mktemp("center") / "compare"
    compare_to_folder(list(center_scenarios), out, patients=2, progress=False)
    return out


def test_a_center_run_writes_the_center_figures_and_embeds_them(center_run: Path) -> None:
    for f in (*OUTPUT_FILES, *CENTER_FILES):
        assert (center_run / f).is_file(), f
    for f in CENTER_FILES:
        assert (center_run / f).read_bytes()[:8] == PNG
    page = (center_run / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4 + len(CENTER_FILES)
    assert page.count("<figcaption>") == len(CENTER_FILES)
    assert "mean over 2 simulated centers; band: 5th-95th percentile of centers" in page
    # the center comes first, then the patients' outcomes and figures
    assert headings(page) == ["Infusion center", "Patient outcomes", "Patient figures"]


def test_the_center_table_shows_summary_json_numbers(center_run: Path) -> None:
    summary = json.loads((center_run / "summary.json").read_text(encoding="utf-8"))
    page = (center_run / "report.html").read_text(encoding="utf-8")
    center = summary["center"]
    assert center["replications"] == 2
    assert f"2 simulated infusion centers ({center['patients_simulated']:,} new patients" in page
    [table] = tables(page)["Infusion center"]
    assert table[0] == ["center measure", "unit", "mean over 2 simulated centers", "95% CI"]
    rows = {r[0]: r[1:] for r in table[1:]}
    assert len(rows) == len(CENTER_METRICS)
    for key in CENTER_METRICS:
        m = summary["metrics"][key]
        assert m["n"] == 2
        unit = m["unit"]
        assert rows[m["label"]] == [unit, format_estimate(m["mean"], unit), _ci(m["ci95"], unit)]
    # the center metrics are not repeated among the patients' outcomes
    [patients] = tables(page)["Patient outcomes"]
    labels = {r[0] for r in patients}
    assert not labels & {summary["metrics"][k]["label"] for k in CENTER_METRICS}
    assert "mean_over_centers" not in page
    # the pooled waits and grams of summary.json
    w = center["waits_pooled_days"]
    assert f"{w['n']:,} infusion days waited on average {w['mean']:.3g} days" in page
    assert f"95th percentile {w['p95']:.3g}" in page
    assert f"IVIG: {center['grams']['given']:,.0f} g given" in page


def test_a_run_without_a_center_has_no_center_section_or_figures(tmp_path: Path) -> None:
    from simulator.jobs import run_to_folder
    from simulator.scenario import load_scenario

    out = tmp_path / "run"
    run_to_folder(load_scenario(SCENARIOS / "first_line.yaml"), out, patients=20, progress=False)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        OUTPUT_FILES
    )
    page = (out / "report.html").read_text(encoding="utf-8")
    assert headings(page) == ["Outcomes", "Figures"]
    assert "Infusion center" not in page and "center_" not in page
    assert "<figcaption>" not in page
    assert "20 virtual patients, seed" in page
    assert "center" not in json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_the_compare_report_lists_the_center_metrics_of_every_arm(center_compare: Path) -> None:
    for f in (*COMPARISON_FILES, *CENTER_COMPARISON_FILES):
        assert (center_compare / f).is_file(), f
    assert (center_compare / "center_by_arm.png").read_bytes()[:8] == PNG
    data = json.loads((center_compare / "comparison.json").read_text(encoding="utf-8"))
    page = (center_compare / "report.html").read_text(encoding="utf-8")
    names = data["arms"]
    assert names == ["center_first_line", "center_rescue"]
    assert "Infusion center" in headings(page)
    assert headings(page).index("Infusion center") < headings(page).index("Patient outcomes")
    [table] = tables(page)["Infusion center"]
    assert table[0][: 1 + len(names)] == ["center measure", *names]
    rows = {r[0]: r[1:] for r in table[1:]}
    assert len(rows) == len(CENTER_METRICS)
    for key in CENTER_METRICS:
        o = data["outcomes"][key]
        unit = o["unit"]
        cells = rows[f"{o['label']} ({unit})"]
        for arm, cell in zip(names, cells, strict=False):
            a = o["arms"][arm]
            assert a["n"] == 2
            assert cell == f"{format_estimate(a['mean'], unit)} | {_ci(a['ci95'], unit)}"
    # both arms' centers differ: first-line IVIG keeps the chairs busier
    util = data["outcomes"]["center_chair_utilisation"]["arms"]
    assert util["center_first_line"]["mean"] > util["center_rescue"]["mean"]
    # not repeated among the patients' outcomes, whose table keeps its paired differences
    [patients] = tables(page)["Patient outcomes"]
    labels = " ".join(r[0] for r in patients)
    assert not any(data["outcomes"][k]["label"] in labels for k in CENTER_METRICS)
    assert "2 simulated infusion centers" in page
    assert page.count("data:image/png;base64,") == 5 + len(CENTER_COMPARISON_FILES)


def test_a_compare_without_a_center_writes_no_center_figure(tmp_path: Path) -> None:
    from simulator.jobs import compare_to_folder
    from simulator.scenario import load_scenario

    out = tmp_path / "compare"
    scns = [load_scenario(SCENARIOS / f) for f in ("first_line.yaml", "rescue.yaml")]
    compare_to_folder(scns, out, patients=20, progress=False)
    assert not (out / "center_by_arm.png").exists()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Infusion center" not in page and "<figcaption>" not in page
    assert headings(page)[:4] == [
        "Strategies",
        "Incremental analysis",
        "Each arm against the first",
        "Outcomes",
    ]


def test_wait_histogram_bins_cover_the_longest_wait_with_at_most_40_bars() -> None:
    for longest, width in ((0.0, 1 / 24), (0.3, 1 / 24), (2.0, 1 / 12), (20.1, 1.0), (400, 14)):
        edges = center_figures.wait_bins(longest)
        assert edges[0] == 0 and edges[-1] > longest
        assert len(edges) - 1 <= 40
        assert edges[1] - edges[0] == pytest.approx(width)


def test_center_figures_cope_with_unlimited_chairs_and_stock_and_no_waits(tmp_path: Path):
    empty = {"mean": [None, None], "p05": [None, None], "p95": [None, None]}
    by_month = {
        "month": [0, 1],
        "chair_utilisation": empty,
        "ivig_g": {"mean": [10.0, 20.0], "p05": [5.0, 10.0], "p95": [15.0, 30.0]},
        "stock_g": empty,
        "backlog": {"mean": [0.0, 0.0], "p05": [0.0, 0.0], "p95": [0.0, 0.0]},
        "infusion_days": empty,
    }
    marks = center_figures.CenterMarks(centers=1)
    hours = center_figures.band(np.array([[3.0, 4.0], [5.0, np.nan]]))
    assert hours == {"mean": [4.0, 4.0], "p05": [3.1, 4.0], "p95": [4.9, 4.0]}
    center_figures.utilisation(by_month, marks, tmp_path / "u.png", "u", hours)
    center_figures.queue(by_month, np.zeros(0), {"mean": None}, marks, tmp_path / "q.png", "q")
    center_figures.stock(by_month, marks, tmp_path / "s.png", "s")
    center_figures.arms_overlay([("a", by_month)], marks, tmp_path / "o.png", "o")
    for f in ("u", "q", "s", "o"):
        assert (tmp_path / f"{f}.png").read_bytes()[:8] == PNG


def test_the_center_is_described_from_its_scenario_block(center_scenarios) -> None:
    text = describe_center(center_scenarios[0].center)
    assert text.startswith("2 chairs open Monday to Friday, 08:00-18:00; new patients arrive")
    assert "20 a year for 1 year;" in text
    assert "IVIG stock starts at 2,000 g" in text
    assert "deliveries on days 448-531 bring 50% of the order" in text
    assert "skipped if not given within 28 days" in text


def test_a_grid_over_chairs_reads_in_whole_chairs_and_the_metrics_own_words(monkeypatch):
    """The grid figure of the shipped center sweep: ticks at 2, 3 and 4 chairs (not
    2.25, 2.5, ...), axes and legend in the registry's words with units (center metrics
    included), and a line at zero for a difference between arms."""
    from simulator.report import sweep_figures
    from simulator.sweeps import SweepResult, plan_sweep

    plan = plan_sweep(SCENARIOS / "sweeps" / "center_capacity.yaml")
    outputs = [
        {k: float(i) for key in plan.output_keys for k in (key, key + "_se")}
        for i in range(len(plan.points))
    ]
    result = SweepResult(plan, outputs, {})
    saved = {}
    monkeypatch.setattr(sweep_figures, "_save", lambda fig, path: saved.update({path: fig}))
    for key in ("first_line:center_wait_mean_days", "rescue-first_line:center_wait_mean_days"):
        sweep_figures._grid_figure(result, key, Path(key))
        ax = saved[Path(key)].axes[0]
        assert list(ax.get_xticks()) == [2, 3, 4]
        assert ax.get_xlabel() == "chairs"
        assert ax.get_ylabel().startswith("wait per infusion day, mean [days]")
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [f"arrivals per year (new patients/year) = {n}" for n in (40, 60, 80)]
        zero = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [0.0, 0.0]]
        assert bool(zero) == key.startswith("rescue-"), key
