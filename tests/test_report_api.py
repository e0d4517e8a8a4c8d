"""Reports never touch global matplotlib state: no backend switch, no pyplot."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_reports_keeps_the_callers_matplotlib_backend():
    code = (
        "import matplotlib, sys\n"
        "matplotlib.use('svg')\n"
        "import simulator.report.figures, simulator.report.comparison\n"
        "import simulator.report.sweep_report, simulator.report.outputs\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_figures_are_made_without_pyplot(tmp_path):
    code = (
        "import sys\n"
        "from simulator.report import figures\n"
        f"figures.ce_plane([{{'strategy': 'a', 'cost': 1.0, 'effect': 1.0, 'status': 'ND'}},"
        f" {{'strategy': 'b', 'cost': 3.0, 'effect': 2.0, 'status': 'ND'}}], 1.5, 'GBP', 'a',"
        f" {str(tmp_path / 'p.png')!r}, 'plane')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_single_run_writes_a_self_contained_report(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "scenarios/first_line.yaml",
            "--patients",
            "60",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(__import__("conftest").ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    from simulator.report.outputs import OUTPUT_FILES

    for f in OUTPUT_FILES:
        assert (out / f).is_file(), f
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "Kaplan-Meier median (restricted mean" in page
    assert "total cost over a lifetime (discounted)" in page


def test_a_proportion_that_rounds_to_zero_keeps_its_sign_and_size():
    """A CI bound of -0.0002 was printed '-0.0 pts' (a negative zero that reads as 0)."""
    from simulator.report.tables import format_difference, format_estimate

    assert format_difference(-0.00019, "proportion") == "-0.02 pts"
    assert format_difference(0.0, "proportion") == "+0.0 pts"
    assert format_difference(-0.016, "proportion") == "-1.6 pts"
    assert format_estimate(-0.0001, "proportion") == "-0.01%"
    assert format_estimate(0.0, "proportion") == "0.0%"
    assert format_estimate(0.1234, "proportion") == "12.3%"
