"""`regimen.sparing_stop_when`: a rule that stops a started steroid-sparing agent for good
(docs/model.md section 3, decision 7). Without it an agent is never stopped, so nobody who
ever started one can be in remission off all therapy; with it, the agent's effect ends at
the visit that fires, its cost stops there and it is not carried into the lifetime."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, SCENARIOS
from test_cli import refused, simulate
from test_engines import assert_same, assert_same_bytes, assert_same_events, on_numba_and_numpy

from simulator.engines import cohort, des
from simulator.kernel.events import Flag
from simulator.kernel.plan import make_plan
from simulator.outcomes import patient_table
from simulator.scenario import load_scenario

USUAL_CARE = SCENARIOS / "studies" / "usual_care_long_term.yaml"
# off prednisone and inactive for three months: stop the agent
RULE = (
    'regimen.sparing_stop_when={"all": [{"at_most": {"prednisone_mg_per_day": 0}},'
    ' {"above": {"days_inactive": 90}}]}'
)
IDS = np.arange(300)


@pytest.fixture(scope="module")
def runs():
    out = {}
    for name, sets in (("without", []), ("with", [RULE])):
        scn = load_scenario(USUAL_CARE, sets)
        plan = make_plan(scn)
        chunk = cohort.run_chunk(scn, plan, 5, IDS)
        out[name] = (chunk, patient_table(chunk, plan, scn))
    return out


def test_the_rule_stops_started_agents_at_a_visit_where_it_holds(runs):
    chunk, _ = runs["with"]
    o = chunk.outcomes
    stop, start = o["sparing_stop_day"], o["sparing_start_day"]
    stopped = np.isfinite(stop)
    assert 10 <= stopped.sum() < np.isfinite(start).sum()  # some, not all
    plan = make_plan(load_scenario(USUAL_CARE, [RULE]))
    days = plan.visit_days
    for i in np.flatnonzero(stopped):
        assert start[i] <= stop[i]
        k = int(np.searchsorted(days, stop[i]))
        assert days[k] == stop[i]  # at a visit
        assert chunk.visit_flags[i, k] & Flag.SPARING_STOP
        assert chunk.visit_prednisone[i, k] == 0  # what the rule asked for
        # flagged once, at that visit only
        assert sum(bool(f & Flag.SPARING_STOP) for f in chunk.visit_flags[i]) == 1
    assert not np.any(chunk.visit_flags[~stopped] & Flag.SPARING_STOP)


def test_a_patient_the_rule_never_stops_has_the_same_course(runs):
    """The rule only acts when it fires: every patient it never stops has the course,
    visit values and outcomes of the run without it, bit for bit."""
    a, _ = runs["without"]
    b, _ = runs["with"]
    keep = ~np.isfinite(b.outcomes["sparing_stop_day"])
    for name in a.outcomes:
        np.testing.assert_array_equal(a.outcomes[name][keep], b.outcomes[name][keep], name)
    for name in a.visits:
        np.testing.assert_array_equal(a.visits[name][keep], b.visits[name][keep], name)
    np.testing.assert_array_equal(a.visit_flags[keep], b.visit_flags[keep])


def test_a_stopped_agent_costs_less_and_leaves_remission_off_therapy_possible(runs):
    _, cols_a = runs["without"]
    _, cols_b = runs["with"]
    stopped = cols_b["sparing_agent_stopped"] == 1
    assert stopped.sum() >= 10
    cost_a, cost_b = cols_a["cost_sparing_agents"], cols_b["cost_sparing_agents"]
    # a stop before the horizon saves the rest of it; one at the horizon's last visit
    # saves nothing within it (with other random streams a patient stopped on day 1820)
    early = stopped & (cols_b["sparing_stop_day"] < load_scenario(USUAL_CARE).horizon_days)
    assert early.sum() >= 10
    assert np.all(cost_b[early] < cost_a[early])
    assert np.all(cost_b[stopped] <= cost_a[stopped])
    # without a stop rule, nobody who ever started an agent is off all therapy
    used = cols_a["sparing_agent_used"] == 1
    assert not np.any(cols_a["last_visit_remission_off_therapy"][used] == 1)
    assert not np.any(cols_a["remission_off_therapy"][used] == 1)
    assert np.any(cols_b["last_visit_remission_off_therapy"][stopped] == 1)
    assert np.any(cols_b["remission_off_therapy"][stopped] == 1)
    assert np.all(np.isnan(cols_a["sparing_stop_day"]))
    assert np.array_equal(np.isfinite(cols_b["sparing_stop_day"]), stopped)


def test_a_stopped_agent_is_not_carried_into_the_lifetime():
    """Lifetime costs carry the last visit's drugs for life: an agent stopped before the
    horizon adds nothing there. Checked on survivors whose only difference is the stop:
    with the agent's price set to 0 the lifetime cost difference between the two runs
    is the within-horizon difference plus the agent carried for life."""
    free = "economics.prices.sparing_agent_per_day.methotrexate=0"
    sets = ["economics.prices.sparing_agent_per_day.azathioprine=0", free]
    tables = {}
    for name, extra in (("priced", []), ("free", sets)):
        scn = load_scenario(USUAL_CARE, [RULE, *extra])
        plan = make_plan(scn)
        chunk = cohort.run_chunk(scn, plan, 5, IDS)
        tables[name] = patient_table(chunk, plan, scn)
    p, f = tables["priced"], tables["free"]
    stopped = p["sparing_agent_stopped"] == 1
    on = (p["sparing_agent_used"] == 1) & ~stopped & np.isnan(p["death_day"])
    extra_p = p["cost_lifetime"] - p["cost_total"]
    extra_f = f["cost_lifetime"] - f["cost_total"]
    assert stopped.sum() >= 10 and on.sum() >= 10
    # after the horizon, a stopped agent costs nothing; one still taken costs its price
    np.testing.assert_allclose(extra_p[stopped], extra_f[stopped], rtol=1e-12)
    assert np.all(extra_p[on] > extra_f[on])


def test_engines_agree_with_a_stop_rule():
    scn = load_scenario(USUAL_CARE, [RULE])
    plan = make_plan(scn)
    ids = np.arange(120)
    a = des.run_chunk(scn, plan, 5, ids, events=True)
    b = cohort.run_chunk(scn, plan, 5, ids, events=True)
    assert np.isfinite(b.outcomes["sparing_stop_day"]).any()
    assert_same(a, b)
    assert_same_events(a.events, b.events)


def test_numbas_loop_gives_the_numpy_paths_bits_with_a_stop_rule(monkeypatch):
    a, b = on_numba_and_numpy(load_scenario(USUAL_CARE, [RULE]), IDS, 5, monkeypatch)
    assert np.isfinite(b.outcomes["sparing_stop_day"]).any()
    assert_same_bytes(a, b)


def test_a_bad_stop_rule_is_an_input_error(tmp_path):
    proc = simulate(
        ROOT / "scenarios" / "first_line.yaml",
        "--set",
        'regimen.sparing_stop_when={"above": {"no_such_measure": 1}}',
        "--out",
        tmp_path / "o",
        cwd=tmp_path,
    )
    refused(proc, "regimen.sparing_stop_when", "no_such_measure")
    assert not (tmp_path / "o").exists()
