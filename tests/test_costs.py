"""Cost components (docs/model.md section 5) recomputed from what the simulation
records: methylprednisolone pulse days are costed at their days, and only as pulse
days (their prednisone equivalent is in the cumulative dose, not in the drug cost)."""

from __future__ import annotations

import math

import numpy as np
from conftest import SCENARIOS

from simulator.engines import cohort
from simulator.kernel.events import Flag
from simulator.kernel.plan import make_plan
from simulator.outcomes import patient_table
from simulator.scenario import load_scenario

# a pulse at every relapse, so that rescue pulses are common (the default asks for a
# severe one)
EVERY_RELAPSE = "regimen.steroid.rescue_pulse_when={relapse: true}"


def _run(overrides, n=600, seed=5):
    scn = load_scenario(SCENARIOS / "first_line.yaml", [EVERY_RELAPSE, *overrides])
    plan = make_plan(scn)
    res = cohort.run_chunk(scn, plan, seed, np.arange(n))
    return scn, plan, res, patient_table(res, plan, scn)


def _pulse_starts(plan, res):
    """Per patient, the days its pulses started: day 0 for a pulse at presentation, and
    the visits flagged with a rescue pulse."""
    flagged = (res.visit_flags & int(Flag.RESCUE_PULSE)) != 0
    return [
        ([0.0] if res.pulse[i] else []) + list(plan.visit_days[flagged[i]]) for i in range(res.n)
    ]


def test_pulse_days_are_costed_at_their_days_and_cut_by_death_and_the_horizon():
    # deaths frequent enough that some cut a pulse's follow-up short
    scn, plan, res, t = _run(["disease.mortality.excess_per_year=1"])
    d = plan.discount_per_day
    assert d > 0
    starts = _pulse_starts(plan, res)
    end = np.minimum(res.outcomes["death_day"], plan.horizon_days)
    rescued = sum(len(s) - bool(res.pulse[i]) for i, s in enumerate(starts))
    assert res.pulse.sum() > 50 and rescued > 20  # both kinds are exercised
    assert np.array_equal(
        [len(s) - bool(res.pulse[i]) for i, s in enumerate(starts)],
        res.outcomes["rescue_pulses"],
    )
    expect = np.array(
        [
            sum(
                (math.exp(-d * s) - math.exp(-d * min(s + plan.pulse_days, end[i]))) / d
                for s in starts[i]
                if s < end[i]
            )
            for i in range(res.n)
        ]
    )
    price = scn.economics.prices.methylprednisolone_pulse_day
    np.testing.assert_allclose(t["cost_methylprednisolone_pulse"], price * expect, rtol=1e-9)
    # a pulse late in the follow-up is discounted from its day, not from day 0
    late = [i for i, s in enumerate(starts) if s and min(s) > 100]
    assert late
    for i in late:
        first = min(starts[i])
        bound = price * plan.pulse_days * len(starts[i]) * math.exp(-d * first)
        assert t["cost_methylprednisolone_pulse"][i] <= bound


def test_pulse_days_are_not_charged_again_as_prednisone():
    """Undiscounted, the prednisone cost is the price of the cumulative dose less the
    pulses' prednisone equivalent (pulse mg x pulse days)."""
    scn, plan, res, t = _run(["economics.discount_rate_per_year=0"])
    pulse_days = res.outcomes["discounted_pulse_days"]
    assert (pulse_days > 0).sum() > 50
    oral_mg = res.outcomes["cumulative_prednisone_mg"] - plan.pulse_mg * pulse_days
    price = scn.economics.prices.prednisone_per_mg
    np.testing.assert_allclose(t["cost_prednisone"], price * oral_mg, rtol=1e-9, atol=1e-9)
    # the pulses are in the cumulative dose (steroid exposure), not in the drug cost
    on_pulse = pulse_days > 0
    assert np.all(
        t["cumulative_prednisone_g"][on_pulse] * 1000 * price
        > t["cost_prednisone"][on_pulse] + plan.pulse_mg * price
    )


def test_pulse_cost_without_deaths_is_pulse_count_times_days_undiscounted():
    """No deaths, no discounting: every pulse that ends within the horizon costs exactly
    its days x the price (the figure a reader checks by hand)."""
    scn, plan, res, t = _run(
        [
            "economics.discount_rate_per_year=0",
            "disease.mortality.life_table=null",
            "disease.mortality.excess_per_year=0",
            "safety.steroid.serious_infection.case_fatality=0",
            "safety.ivig.thromboembolism.case_fatality=0",
        ]
    )
    starts = _pulse_starts(plan, res)
    whole = np.array([all(s + plan.pulse_days <= plan.horizon_days for s in ss) for ss in starts])
    count = res.pulse.astype(float) + res.outcomes["rescue_pulses"]
    price = scn.economics.prices.methylprednisolone_pulse_day
    np.testing.assert_allclose(
        t["cost_methylprednisolone_pulse"][whole],
        (price * plan.pulse_days * count)[whole],
        rtol=1e-12,
    )


def test_the_run_report_states_the_willingness_to_pay_and_horizon_of_its_net_benefit(tmp_path):
    from simulator import run_to_folder

    for horizon, wtp, expect in (
        ("lifetime", 20000, "at 20,000 GBP per QALY, on the lifetime costs and QALYs"),
        ("clinical", 30000, "at 30,000 GBP per QALY, on the costs and QALYs of the simulated"),
    ):
        scn = load_scenario(
            SCENARIOS / "first_line.yaml",
            [
                f"economics.cea_horizon={horizon}",
                f"economics.willingness_to_pay_per_qaly={wtp}",
            ],
        )
        out = tmp_path / horizon
        run_to_folder(scn, out, patients=30, progress=False)
        text = (out / "report.html").read_text()
        assert f"Net monetary benefit is {expect}" in text
