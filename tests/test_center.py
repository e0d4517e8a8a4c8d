"""The infusion center engine (engines/center.py): patients who share chairs and IVIG.

What must hold whatever the center looks like:

1. a center that never runs short (unlimited chairs and stock, open all the time) is the
   SimPy engine, patient by patient and bit for bit, for a cohort and for Poisson
   arrivals, on first-line and rescue IVIG;
2. more chairs never lengthen waits on the same arrivals (exactly, customer by customer,
   for the chair queue alone; on average over replications for the whole model);
3. the stock never goes negative and the grams given are the grams delivered minus the
   grams left, under every policy, with a shortage that bites;
4. a skipped cycle never improves that patient's course (when treatment does not react
   to the response);
5. the policies do what they say (reduced days, delays capped by max_delay_days, queue
   priority);
6. congested centers' event logs pass the center invariants, and broken logs do not;
7. results do not depend on workers, chunking or Dask, and two arms of a comparison see
   the same arrivals;
8. bad center input is exit 2 with one message naming the file, the path and the value.

Centers here are small (20-60 new patients in one year, follow-up cut to 182 or 364
days) so the whole file runs in well under a minute; statistical checks use a fixed seed
and limits from the replications' spread that hold for almost any seed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy
from conftest import NO_DEATHS, SCENARIOS
from scipy import stats
from test_engines import small_buffers
from test_fused import _fresh_propagator

from simulator import cli
from simulator.center_stats import CenterRecord
from simulator.engines import center, des
from simulator.engines.center import PATIENTS_PER_CENTER
from simulator.errors import InputError
from simulator.invariants import InvariantError, check_events
from simulator.kernel.events import Event, Flag
from simulator.kernel.params import make_params
from simulator.kernel.plan import make_plan
from simulator.records import ChunkResult, EventLog
from simulator.report.atomic import json_text
from simulator.runner import run
from simulator.scenario import load_scenario
from simulator.scenario.schema import Scenario

KERNEL_BITS = (1 << 40) - 1  # the center's own flags are bits 40 and up
CYCLE_START = int(Flag.CENTER_CYCLE_START)
DELAYED = int(Flag.CENTER_DELAYED)
REDUCED = int(Flag.CENTER_REDUCED)
SKIPPED = int(Flag.CENTER_SKIPPED)
CENTER_BITS = CYCLE_START | DELAYED | REDUCED | SKIPPED

UNLIMITED = (
    "center={{chairs: null, open_weekdays: 7, open_hours: [0, 24], stock: {{initial_g: null}},"
    " arrivals: {arrivals}}}"
)
# A first-line center whose IVIG supply runs short from day 60 to day 200 (a quarter of
# each order arrives), with chairs to spare: what is short is the stock.
SHORT_STOCK = (
    "center={{chairs: {chairs}, open_weekdays: {weekdays}, open_hours: {hours},"
    " arrivals: {{per_year: 25, years: 1}},"
    " stock: {{initial_g: 300, deliveries: {{every_days: 7, order_up_to_g: 700,"
    " lead_time_days: 7}}, shortages: [{{from_day: 60, until_day: 200, supply_factor: 0.25}}]}},"
    " policy: {policy}}}"
)


def scenario(name: str, *sets: str) -> Scenario:
    return load_scenario(SCENARIOS / name, list(sets))


def short_stock(
    policy: str, chairs: str = "3", weekdays: int = 5, hours: str = "[8, 18]", *sets: str
) -> Scenario:
    return scenario(
        "first_line.yaml",
        "horizon_days=182",
        SHORT_STOCK.format(chairs=chairs, weekdays=weekdays, hours=hours, policy=policy),
        *sets,
    )


# --------------------------------------------------------------------------------------
# One replication as run_chunk runs it, keeping what run_chunk throws away
# --------------------------------------------------------------------------------------


class RecordingLog(EventLog):
    """An event log that also keeps what the patients recorded in the order they
    recorded it (``order``: patient, day, kind) and, for every infusion day given, the
    wait the center noted for it just before (``given``: patient, day, flags, wait)."""

    def __init__(self, sim: center.CenterSim) -> None:
        super().__init__()
        self.sim = sim
        self.order: list[tuple[int, float, int]] = []
        self.given: list[tuple[int, float, int, float]] = []

    def append(self, patient: int, day: float, kind: int, flags: float, *rest: float) -> None:
        super().append(patient, day, kind, flags, *rest)
        self.order.append((int(patient), float(day), int(kind)))
        if kind == Event.INFUSION and not int(flags) & SKIPPED:
            self.given.append((int(patient), float(day), int(flags), self.sim.waits[-1]))


@dataclass
class OneCenter:
    sim: center.CenterSim  # the daily series and the resources at the end
    res: ChunkResult  # the patients (events: the RecordingLog, finished)
    log: RecordingLog
    record: CenterRecord
    arrivals: np.ndarray


def one_center(scn: Scenario, seed: int, replication: int) -> OneCenter:
    """Replication ``replication`` exactly as ``center.run_chunk`` runs it (checked by
    test_the_helper_runs_a_center_as_run_chunk_does), keeping the CenterSim."""
    assert scn.center is not None
    plan = make_plan(scn)
    arr = center.arrival_days(scn.center, seed, replication)
    ids = replication * PATIENTS_PER_CENTER + np.arange(arr.size, dtype=np.int64)
    prm, base = make_params(scn, plan, seed, ids)
    res = ChunkResult.empty(plan, prm, base, events=False)
    env = simpy.Environment()
    days = center._center_days(scn, arr)
    sim = center.CenterSim(env, scn.center, days)
    log = RecordingLog(sim)
    for j, a in enumerate(arr):
        k = center._OnPython(plan, prm.row(j), j, res, log)
        env.process(center._patient(env, sim, plan, prm.row(j), j, j, int(a), res, k))
    env.run(until=days)
    res.events = log.finish()
    assert res.center_patients is not None
    record = center._record(sim, scn.center, res.center_patients, days)
    return OneCenter(sim, res, log, record, arr)


def infusions(log: EventLog, patient: int) -> list[tuple[float, int, float]]:
    """(day, flags, grams) of a patient's infusion events (given or skipped), in order."""
    m = (log.patient == patient) & (log.kind == Event.INFUSION)
    return list(zip(log.day[m].tolist(), log.flags[m].tolist(), log.value[m].tolist(), strict=True))


def assert_each_patient_in_time_order(log: RecordingLog) -> None:
    """Every patient recorded its events in time order (``finish`` sorts the log, so a
    patient whose clock went back would not show in it)."""
    last: dict[int, float] = {}
    for patient, day, kind in log.order:
        assert day >= last.get(patient, -math.inf), (
            f"patient {patient}: event {kind} on day {day} after day {last[patient]}"
        )
        last[patient] = day


def mean_wait(rec: CenterRecord) -> np.ndarray:
    return rec.totals["wait_days_total"] / rec.totals["infusion_days"]


def test_the_helper_runs_a_center_as_run_chunk_does():
    scn = short_stock("{when_short: delay}")
    mine = one_center(scn, 4, 2)
    ref = center.run_chunk(scn, make_plan(scn), 4, np.array([2]), events=True)
    for name in CenterRecord.TOTALS:
        np.testing.assert_array_equal(mine.record.totals[name], ref.center.totals[name], name)
    for name in CenterRecord.SERIES:
        np.testing.assert_array_equal(mine.record.series[name], ref.center.series[name], name)
    np.testing.assert_array_equal(mine.record.waits, ref.center.waits)
    for name in EventLog.FIELDS:
        np.testing.assert_array_equal(getattr(mine.log, name), getattr(ref.events, name), name)


@pytest.mark.parametrize("stock", ["null", "2000"])
def test_sparing_requests_that_cannot_be_served_changes_no_bit(stock, monkeypatch):
    """run_chunk tells the center that every infusion day takes the same chair hours, so
    it makes no request when the queue ahead fills every slot of the day and the stock
    covers them (CenterSim.request_day); one_center runs the same center without that
    knowledge. In a congested center (2 chairs, 60 new first-line patients a year), with
    unlimited and with finite stock, the shortcut fires many times and every output is
    the same bits."""
    scn = scenario(
        "center_capacity.yaml",
        "center.arrivals={per_year: 60, years: 1}",
        "horizon_days=364",
        f"center.stock.initial_g={stock}",
    )
    spared = []
    real = center.CenterSim.__init__

    def keep(self, *args, **kwargs):
        real(self, *args, **kwargs)
        spared.append(self)

    monkeypatch.setattr(center.CenterSim, "__init__", keep)
    ref = center.run_chunk(scn, make_plan(scn), 5, np.array([1]), events=True)
    assert spared[0].per_chair_day == 3 and spared[0].requests_spared > 1000
    monkeypatch.undo()
    mine = one_center(scn, 5, 1)
    assert mine.sim.per_chair_day is None
    for name in CenterRecord.TOTALS:
        np.testing.assert_array_equal(mine.record.totals[name], ref.center.totals[name], name)
    np.testing.assert_array_equal(mine.record.waits, ref.center.waits)
    for name in EventLog.FIELDS:
        np.testing.assert_array_equal(getattr(mine.log, name), getattr(ref.events, name), name)
    for key, col in mine.res.outcomes.items():
        np.testing.assert_array_equal(col, ref.outcomes[key], key)


# --------------------------------------------------------------------------------------
# 1. A center that never runs short is the SimPy engine
# --------------------------------------------------------------------------------------

ARRIVALS = {"cohort": "{cohort: 30}", "poisson": "{per_year: 25, years: 1}"}


@pytest.mark.parametrize("arrivals", ["cohort", "poisson"])
@pytest.mark.parametrize("base", ["first_line.yaml", "rescue.yaml"])
def test_an_unlimited_center_is_the_simpy_engine_patient_by_patient(base, arrivals):
    plain = scenario(base, "horizon_days=364")
    unlimited = scenario(base, "horizon_days=364", UNLIMITED.format(arrivals=ARRIVALS[arrivals]))
    assert unlimited.center is not None
    seed, reps = 11, np.array([0, 3])
    got = center.run_chunk(unlimited, make_plan(unlimited), seed, reps, events=True)
    days = [center.arrival_days(unlimited.center, seed, int(r)) for r in reps]
    ids = np.concatenate(
        [r * PATIENTS_PER_CENTER + np.arange(d.size) for r, d in zip(reps, days, strict=True)]
    )
    np.testing.assert_array_equal(got.baseline.patient, ids)
    if arrivals == "poisson":
        assert all(d.size > 10 and d.max() > 200 for d in days)  # spread over the year
    ref = des.run_chunk(plain, make_plan(plain), seed, ids, events=True)
    for name in ref.outcomes:
        np.testing.assert_array_equal(got.outcomes[name], ref.outcomes[name], name)
    for name in ref.visits:
        np.testing.assert_array_equal(got.visits[name], ref.visits[name], name)
    np.testing.assert_array_equal(got.visit_prednisone, ref.visit_prednisone)
    np.testing.assert_array_equal(got.visit_flags & KERNEL_BITS, ref.visit_flags)
    assert got.events is not None and ref.events is not None
    assert len(got.events) == len(ref.events) > 0
    for name in EventLog.FIELDS:
        a, b = getattr(got.events, name), getattr(ref.events, name)
        np.testing.assert_array_equal(a & KERNEL_BITS if name == "flags" else a, b, name)
    # the center only marked cycle starts: nothing was delayed, reduced or skipped
    assert not np.any(got.events.flags & (DELAYED | REDUCED | SKIPPED))
    assert np.any(got.events.flags & CYCLE_START)
    rec = got.center
    assert rec.totals["patients"].tolist() == [d.size for d in days]
    for name in ("days_delayed", "days_reduced", "cycles_skipped", "days_skipped"):
        assert not rec.totals[name].any(), name
    assert np.all(rec.waits == 0)


# --------------------------------------------------------------------------------------
# 2. More chairs never lengthen waits
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("chairs", "rate"), [(1, 0.8), (2, 1.7), (3, 2.7)])
def test_one_more_chair_never_lengthens_any_customers_wait(chairs, rate):
    """First come first served with each customer's own arrival and chair time: the
    extra chair can only bring every start forward (Kiefer-Wolfowitz), exactly."""
    few = center.mmc_waits(chairs, rate, 1.0, 4000, seed=5)
    more = center.mmc_waits(chairs + 1, rate, 1.0, 4000, seed=5)
    assert np.isfinite(few).all() and np.isfinite(more).all()
    assert np.all(more <= few)
    assert np.count_nonzero(more < few) > 100


def test_more_chairs_shorten_the_mean_wait_of_a_center():
    """center_capacity.yaml at 60 new patients in one year, 2 vs 4 chairs, on the same
    arrivals and patients: the paired log ratio of the mean waits is above zero by more
    than the one-sided 99% t limit from the replications' spread."""
    sets = ("center.arrivals={per_year: 60, years: 1}", "horizon_days=182")
    reps = np.arange(8)
    waits = {}
    for chairs in (2, 4):
        scn = scenario("center_capacity.yaml", *sets, f"center.chairs={chairs}")
        waits[chairs] = mean_wait(center.run_chunk(scn, make_plan(scn), 5, reps).center)
    ratio = np.log(waits[2] / waits[4])
    se = ratio.std(ddof=1) / math.sqrt(ratio.size)
    assert ratio.mean() > stats.t.ppf(0.99, ratio.size - 1) * se, (waits, ratio)


# --------------------------------------------------------------------------------------
# 3. Stock
# --------------------------------------------------------------------------------------

POLICIES = {
    "delay": "{when_short: delay, max_delay_days: 14}",
    "reduce": "{when_short: reduce}",
    "skip": "{when_short: skip}",
}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_stock_never_goes_negative_and_the_grams_balance(policy):
    scn = short_stock(POLICIES[policy])
    for rep in (0, 1):
        c = one_center(scn, 8, rep)
        t = c.record.totals
        assert t["stock_out_days"][0] > 0  # the shortage bites
        daily = c.sim.stock_g
        assert np.isfinite(daily).all() and daily.min() >= 0.0
        assert c.sim.stock is not None and c.sim.stock.level >= 0.0
        monthly = c.record.series["stock_g"]
        assert np.nanmin(monthly) >= 0.0
        drawn = t["grams_delivered"][0] - t["grams_left"][0]  # initial + deliveries - left
        assert t["grams_given"][0] == pytest.approx(drawn, rel=1e-9)
        assert t["grams_given"][0] == pytest.approx(c.res.outcomes["ivig_g"].sum(), rel=1e-9)
        assert t["grams_left"][0] == c.sim.stock.level
        counted = {"delay": "days_delayed", "reduce": "days_reduced", "skip": "days_skipped"}
        assert t[counted[policy]][0] > 0


# --------------------------------------------------------------------------------------
# 4. A skipped cycle never improves a course
# --------------------------------------------------------------------------------------

# first_line.yaml with treatment that does not react to the response: no taper hold or
# fast pace, no rescue pulse, no escalation or hold at a relapse, no sparing agent; and
# no deaths. What a patient gets then depends only on the plan and on the center.
FIXED_TREATMENT = [
    *NO_DEATHS,
    "horizon_days=364",
    "regimen.taper.hold_when=null",
    "regimen.taper.fast_when=null",
    "regimen.steroid.rescue_pulse_when=null",
    "regimen.sparing_on_relapse=null",
    "regimen.sparing_start_when=null",
    "regimen.taper.relapse.dose_factor=1",
    "regimen.taper.relapse.min_mg_per_day=0",
    "regimen.taper.relapse.hold_days=0",
]
NO_IVIG_STOPS = [
    f"safety.ivig.{ae}.stops_ivig=false"
    for ae in ("aseptic_meningitis", "thromboembolism", "acute_kidney_injury")
]
TIGHT = (
    "center={chairs: 1, open_weekdays: 5, open_hours: [8, 18], stock: {initial_g: null},"
    " arrivals: {per_year: 30, years: 1}, policy: {when_short: skip}}"
)
ROOMY = UNLIMITED.format(arrivals="{per_year: 30, years: 1}")


@pytest.mark.parametrize("adverse_events", ["default", "none_stop_ivig"])
def test_a_skipped_cycle_never_improves_that_patients_course(adverse_events):
    """The same patients in a center of one weekday chair that skips what it cannot give
    and in an unlimited center. The infusion days a patient gets in the tight center are
    then a subset of those in the unlimited one, on the same days, so (the disease being
    monotone in the IVIG given, and flares accepted as a subset under more treatment)
    every visit's physician global and the damage are at least those of the unlimited
    run, patient by patient, for every patient with a skipped day.

    One exception is in the model: IVIG adverse events are drawn per infusion number,
    and three of them stop IVIG. A patient whose unlimited course was stopped by one
    (say at its 17th infusion day) meets its 17th day later in the tight center, or
    never, and may get cycles the unlimited run never gave: skipping the infusion that
    would have caused the adverse event improved the later course. So with the default
    adverse events the relation is checked on patients whose unlimited course was not
    stopped; with no adverse event stopping IVIG, on every patient."""
    extra = NO_IVIG_STOPS if adverse_events == "none_stop_ivig" else []
    tight = scenario("first_line.yaml", *FIXED_TREATMENT, *extra, TIGHT)
    roomy = scenario("first_line.yaml", *FIXED_TREATMENT, *extra, ROOMY)
    reps = np.arange(3)
    a = center.run_chunk(tight, make_plan(tight), 2, reps, events=True)
    b = center.run_chunk(roomy, make_plan(roomy), 2, reps, events=True)
    np.testing.assert_array_equal(a.baseline.patient, b.baseline.patient)
    assert a.events is not None
    touched = np.isin(a.baseline.patient, a.events.patient[(a.events.flags & SKIPPED) != 0])
    untouched = ~np.isin(
        a.baseline.patient, a.events.patient[(a.events.flags & (DELAYED | REDUCED | SKIPPED)) != 0]
    )
    assert touched.sum() >= 20 and untouched.sum() >= 1
    checked = touched & (b.outcomes["ivig_stopped"] == 0)
    if adverse_events == "none_stop_ivig":
        assert not b.outcomes["ivig_stopped"].any()
        np.testing.assert_array_equal(checked, touched)
    pga_a, pga_b = a.visits["physician_global"][checked], b.visits["physician_global"][checked]
    np.testing.assert_array_equal(np.isnan(pga_a), np.isnan(pga_b))
    assert np.all(pga_a[~np.isnan(pga_a)] >= pga_b[~np.isnan(pga_b)])
    assert np.all(np.nanmean(pga_a, axis=1) >= np.nanmean(pga_b, axis=1))
    assert np.all(a.outcomes["damage_points"][checked] >= b.outcomes["damage_points"][checked])
    assert np.all(a.outcomes["ivig_g"][checked] < b.outcomes["ivig_g"][checked])
    # not vacuous: the skipped cycles made a difference
    assert np.count_nonzero(np.nanmean(pga_a, axis=1) > np.nanmean(pga_b, axis=1)) >= 10
    # a patient the center never failed has the unlimited course exactly
    for name in ("physician_global", "mmt8", "cpk"):
        np.testing.assert_array_equal(a.visits[name][untouched], b.visits[name][untouched])


# --------------------------------------------------------------------------------------
# 5. Policies
# --------------------------------------------------------------------------------------


def test_reduced_days_give_fewer_grams_and_are_flagged():
    scn = short_stock("{when_short: reduce, reduce_min_fraction: 0.5}")
    res = center.run_chunk(scn, make_plan(scn), 8, np.arange(2), events=True)
    log = res.events
    assert log is not None
    index = {int(p): i for i, p in enumerate(res.baseline.patient)}
    full = 2.0 / 5 * res.baseline.weight_kg  # first_line: 2 g/kg over 5 days, every cycle
    inf = (log.kind == Event.INFUSION) & ((log.flags & SKIPPED) == 0)
    reduced = inf & ((log.flags & REDUCED) != 0)
    day_full = full[[index[int(p)] for p in log.patient]]
    assert reduced.sum() == res.center.totals["days_reduced"].sum() > 0
    assert np.all(log.value[reduced] < day_full[reduced])
    assert np.all(log.value[reduced] >= 0.5 * day_full[reduced] * (1 - 1e-12))
    np.testing.assert_allclose(log.value[inf & ~reduced], day_full[inf & ~reduced], rtol=1e-12)
    # a reduced day is given (a cycle's day counts), so reduce never skips
    assert not np.any(log.flags & SKIPPED)


def _overdue(log: EventLog, patient: int, start_day: float = 7.0) -> list[tuple[float, bool]]:
    """(days overdue, skipped) of each infusion event of a first-line patient (2 g/kg over
    5 days every 28 days), from the rules of the engine: the next day of a cycle is due
    the day after the last one given; the next cycle ``interval_days`` after the first
    day of this one (the day it was given, or for a cycle skipped whole the day it was
    due: its slot passes), and never before the day after the last one."""
    due, out = start_day, []
    cycle_start, days_given = start_day, 0
    for day, flags, _ in infusions(log, patient):
        skipped = bool(flags & SKIPPED)
        out.append((day - due, skipped))
        if flags & CYCLE_START:
            cycle_start, days_given = (due if skipped else day), 0
        if not skipped:
            days_given += 1
        done = skipped or days_given == 5
        due = max(cycle_start + 28, day + 1) if done else day + 1
    return out


@pytest.mark.parametrize("max_delay", [7, None])
def test_a_day_overdue_max_delay_days_is_skipped(max_delay):
    """Stock short, chairs unlimited, open every day: a day not given is retried the next
    day; on the day it is ``max_delay_days`` overdue it is tried a last time and, still
    not given, skipped (so never given later than that); without the limit some days are
    given later than that."""
    limit = "null" if max_delay is None else max_delay
    scn = short_stock(
        f"{{when_short: delay, max_delay_days: {limit}}}", "null", 7, "[0, 24]", *NO_DEATHS
    )
    res = center.run_chunk(scn, make_plan(scn), 8, np.arange(2), events=True)
    assert res.events is not None
    rows = [r for p in res.baseline.patient for r in _overdue(res.events, int(p))]
    given = np.array([d for d, skipped in rows if not skipped])
    skipped = np.array([d for d, skipped in rows if skipped])
    assert given.min() >= 0 and given.max() > 0  # some days were delayed
    if max_delay is None:
        assert skipped.size == 0 and given.max() > 7
    else:
        assert skipped.size > 0
        assert given.max() <= max_delay
        np.testing.assert_array_equal(skipped, max_delay)


def _first_cycle_waits(c: OneCenter) -> tuple[float, float]:
    """Mean wait of the infusion days of a patient's first cycle, and of the later ones."""
    cycle: dict[int, int] = {}
    first, later = [], []
    for patient, _, flags, wait in c.log.given:
        cycle[patient] = cycle.get(patient, 0) + bool(flags & CYCLE_START)
        (first if cycle[patient] == 1 else later).append(wait)
    return float(np.mean(first)), float(np.mean(later))


def _waits_by_priority(
    name: str, sets: tuple[str, ...], priority: str, measure: Any
) -> dict[str, np.ndarray]:
    """``measure`` (two mean waits) of 8 replications of the same centers under fifo and
    under ``priority``: rows are replications."""
    waits = {}
    for p in ("fifo", priority):
        scn = scenario(name, *sets, f"center.policy.priority={p}")
        waits[p] = np.array([measure(one_center(scn, 6, r)) for r in range(8)])
    return waits


def assert_shorter_under(waits: dict[str, np.ndarray], priority: str) -> None:
    """The prioritised class's mean wait (column 0) is shorter under ``priority`` than
    under fifo: paired over the replications, the mean log ratio is above zero by more
    than the one-sided 99% t limit of their spread."""
    gain = np.log(waits["fifo"][:, 0] / waits[priority][:, 0])
    se = gain.std(ddof=1) / math.sqrt(gain.size)
    assert gain.mean() > stats.t.ppf(0.99, gain.size - 1) * se, waits


def test_new_first_shortens_the_waits_of_first_cycles_in_a_congested_center():
    """2 chairs, 60 new first-line patients in a year, IVIG unlimited: the queue is the
    chairs. new_first serves patients in their first cycle first; paired over the same
    replications, the log ratio of their mean wait under fifo to that under new_first is
    above zero by more than the one-sided 99% t limit of the replications' spread, and
    later cycles wait longer."""
    sets = ("center.arrivals={per_year: 60, years: 1}", "horizon_days=182")
    sets += ("center.stock.initial_g=null",)
    waits = _waits_by_priority("center_capacity.yaml", sets, "new_first", _first_cycle_waits)
    assert_shorter_under(waits, "new_first")
    assert waits["new_first"][:, 1].mean() > waits["fifo"][:, 1].mean()


@pytest.mark.parametrize("name", ["center_capacity.yaml", "center_capacity_rescue.yaml"])
def test_rescue_first_is_refused_when_every_patient_is_of_one_kind(name):
    """rescue_first serves patients on rescue IVIG before the others; where every IVIG
    patient is of one kind (all first-line, or all rescue) it would change nothing (the
    queue is fifo's), so it is refused, as reserve_g under fifo is. A center serving both
    is ``regimen.ivig.first_line_share`` (the next test)."""
    with pytest.raises(InputError, match=r"center\.policy\.priority: rescue_first"):
        scenario(name, "center.policy.priority=rescue_first")
    scenario(name, "center.policy.priority=new_first")  # meaningful with one kind


def _rescue_waits(c: OneCenter) -> tuple[float, float]:
    """Mean wait of the infusion days of rescue patients, and of first-line patients."""
    rescue_day = c.res.outcomes["rescue_day"]
    ids = c.res.baseline.patient
    on_rescue = {int(p) for p, r in zip(ids, rescue_day, strict=True) if np.isfinite(r)}
    rescue, first_line = [], []
    for patient, _, _, wait in c.log.given:
        (rescue if patient in on_rescue else first_line).append(wait)
    assert rescue and first_line
    return float(np.mean(rescue)), float(np.mean(first_line))


def test_rescue_first_shortens_the_waits_of_rescue_patients_in_a_mixed_center():
    """Half the new patients first-line, the others on IVIG from week 12 by a rule
    (first_line_share 0.5 on rescue.yaml), 2 chairs, 60 a year: rescue_first serves the
    patients started by the rule first.
    Paired over the same replications, the log ratio of their mean wait under fifo to
    that under rescue_first is above zero by more than the one-sided 99% t limit of the
    replications' spread, and first-line patients then wait longer than rescue ones."""
    sets = ("center.arrivals={per_year: 60, years: 1}", "horizon_days=182")
    sets += ("center.stock.initial_g=null", "regimen.ivig.start_day=7")
    # the rule fires for every patient not first-line at week 12: many rescue patients
    # within the short follow-up
    sets += ("regimen.ivig.first_line_share=0.5", "regimen.ivig.start_when={day_at_least: 84}")
    waits = _waits_by_priority("center_capacity_rescue.yaml", sets, "rescue_first", _rescue_waits)
    assert_shorter_under(waits, "rescue_first")
    assert waits["rescue_first"][:, 1].mean() > waits["rescue_first"][:, 0].mean()


def test_first_line_share_starts_that_share_on_start_day_and_the_rest_by_the_rule():
    """first_line_share 0.3 on rescue.yaml with start_day 7: about 30% of patients start
    IVIG on day 7 (binomial 99.9% limits), none of them by the rescue rule; the others
    start only when the rule fired (start = rescue day + delay) or never; both engines
    agree patient by patient."""
    scn = scenario("rescue.yaml", "regimen.ivig.start_day=7", "regimen.ivig.first_line_share=0.3")
    plan = make_plan(scn)
    n = 2000
    a = cohort_run(scn, plan, n)
    start, rescue = a.outcomes["ivig_start_day"], a.outcomes["rescue_day"]
    first = start == 7.0
    k = int(first.sum())
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n, 0.3)
    assert lo <= k <= hi, k
    assert not np.isfinite(rescue[first]).any()
    others = ~first
    fired = np.isfinite(rescue[others])
    assert fired.any() and (~fired).any()
    np.testing.assert_array_equal(
        start[others][fired], rescue[others][fired] + scn.regimen.ivig.start_delay_days
    )
    assert not np.isfinite(start[others][~fired]).any()
    b = des.run_chunk(scn, plan, scn.seed, np.arange(200))
    for key, col in b.outcomes.items():
        np.testing.assert_array_equal(col, a.outcomes[key][:200], key)


def cohort_run(scn: Scenario, plan: Any, n: int) -> ChunkResult:
    from simulator.engines import cohort

    return cohort.run_chunk(scn, plan, scn.seed, np.arange(n))


# --------------------------------------------------------------------------------------
# 6. Invariants
# --------------------------------------------------------------------------------------

CONGESTED = {
    "delay": "{when_short: delay, max_delay_days: 10}",
    "reduce": "{when_short: reduce, max_delay_days: 10}",
    "skip": "{when_short: skip}",
    "new_first_reserve": "{when_short: delay, priority: new_first, reserve_g: 100}",
}


@pytest.mark.parametrize("policy", list(CONGESTED))
def test_congested_centers_pass_the_center_invariants(policy):
    """One chair on weekdays and a stock that runs short: delays, reductions and skips
    everywhere, and every event log still passes; the runner checks them too (and its
    event logs are those of run_chunk)."""
    scn = short_stock(CONGESTED[policy], "1")
    plan = make_plan(scn)
    res = center.run_chunk(scn, plan, 9, np.arange(2), events=True)
    assert res.events is not None
    flags = res.events.flags
    assert np.any(flags & (DELAYED | REDUCED | SKIPPED))
    check_events(res.events, plan, center=True)
    assert_each_patient_in_time_order(one_center(scn, 9, 1).log)
    run(scn, patients=2, seed=9, events=True)  # raises InvariantError on a violation


def test_a_skip_in_a_stretched_cycle_does_not_send_the_patient_back_in_time():
    """Regression: a day skipped (max_delay_days) in a cycle that delays had stretched
    past the next cycle's due day set the next infusion in the past, and the patient's
    clock went back (the event log, sorted afterwards, hid it). One IVIG lot every 40
    days stretches every cycle."""
    scn = scenario(
        "first_line.yaml",
        *NO_DEATHS,
        "horizon_days=364",
        "center={chairs: null, open_weekdays: 7, open_hours: [0, 24], arrivals: {cohort: 3},"
        " stock: {initial_g: 60, deliveries: {every_days: 40, lot_g: 35, lead_time_days: 0,"
        " first_order_day: 35}}, policy: {when_short: delay, max_delay_days: 28}}",
    )
    assert scn.center is not None and scn.center.stock.deliveries is not None
    assert scn.center.stock.deliveries.order_up_to_g is None  # lot_g alone replaces it
    c = one_center(scn, 0, 0)
    assert c.record.totals["days_skipped"][0] > 0
    assert_each_patient_in_time_order(c.log)
    check_events(c.log, make_plan(scn), center=True)


STRETCHED = (
    "center={chairs: null, open_weekdays: 7, open_hours: [0, 24], arrivals: {cohort: 3},"
    " stock: {initial_g: 60, deliveries: {every_days: 40, lot_g: 35, lead_time_days: 0,"
    " first_order_day: 35}}, policy: {when_short: delay, max_delay_days: 28}}"
)
COMPILED_CASES = {
    **{name: (CONGESTED[name], "1") for name in CONGESTED},
    "rescue_first": ("{when_short: delay, priority: rescue_first, max_delay_days: 7}", "1"),
    "stretched": None,
    "shipped": None,
}
# rescue_first needs a mix of first-line and rescue patients (else it is refused)
COMPILED_EXTRA_SETS = {
    "rescue_first": (
        "regimen.ivig.first_line_share=0.5",
        "regimen.ivig.start_when={day_at_least: 84}",
    )
}


@pytest.mark.parametrize("case", list(COMPILED_CASES))
def test_the_compiled_center_gives_the_python_paths_bytes(case, monkeypatch):
    """The center engine with the kernel's events compiled (des_loop's center functions)
    against its Python path: every outcome, visit value, event-log field, per-patient
    center column and center total, series and wait, byte for byte, under every policy,
    with delays, reductions and skips happening. The event log's buffer and the loop's
    own table of matrix exponentials are made small, so both fill mid-run."""
    from simulator import jit
    from simulator.engines import des_loop

    monkeypatch.setenv("SIMULATOR_JIT", "1")
    monkeypatch.setattr(jit, "_DISPATCH", jit.Dispatch())
    if jit.loops(1) is None:
        pytest.skip("numba is not installed")
    if case == "stretched":
        scn = scenario("first_line.yaml", *NO_DEATHS, "horizon_days=364", STRETCHED)
    elif case == "shipped":
        scn = scenario("center_capacity.yaml", "horizon_days=364")
    else:
        policy, chairs = COMPILED_CASES[case]
        scn = short_stock(policy, chairs, 5, "[8, 18]", *COMPILED_EXTRA_SETS.get(case, ()))
    codes = small_buffers(monkeypatch, 64)
    plan = make_plan(scn)  # with an empty table of matrix exponentials (shared otherwise)
    plan = dataclasses.replace(plan, propagator=_fresh_propagator(plan.propagator, 10**6))
    reps = np.array([0, 2])
    a = center.run_chunk(scn, plan, 9, reps, events=True)
    assert des_loop._LOG_FULL in codes and des_loop._TABLE_FULL in codes  # compiled ran
    b = center.run_chunk(scn, make_plan(scn), 9, reps, events=True, compiled_events=False)
    assert a.events is not None and b.events is not None
    flags = b.events.flags
    if case == "shipped":
        assert np.any(flags & DELAYED)
    elif case == "stretched":
        assert b.center.totals["days_skipped"].sum() > 0
    else:
        assert np.any(flags & (DELAYED | REDUCED | SKIPPED))
    parts = ("outcomes", "visits", "center_patients")
    for part in parts:
        for name, value in getattr(b, part).items():
            assert value.tobytes() == getattr(a, part)[name].tobytes(), (part, name)
    assert a.visit_prednisone.tobytes() == b.visit_prednisone.tobytes()
    assert a.visit_flags.tobytes() == b.visit_flags.tobytes()
    for name in EventLog.FIELDS:
        x, y = getattr(a.events, name), getattr(b.events, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    for part in ("totals", "series"):
        for name, value in getattr(b.center, part).items():
            assert value.tobytes() == getattr(a.center, part)[name].tobytes(), (part, name)
    assert a.center.waits.tobytes() == b.center.waits.tobytes()
    check_events(a.events, plan, center=True)


def _log(*rows: tuple[float, int]) -> EventLog:
    """A log of one patient: a visit at day 0, then infusions (day, center flags)."""
    log = EventLog()
    log.append(0, 0.0, Event.VISIT, 0, 2000.0, 300.0, 150.0, 60.0, 60.0)
    for day, flags in rows:
        grams = 0.0 if flags & SKIPPED else 28.0
        log.append(0, day, Event.INFUSION, flags, math.nan, math.nan, grams, 60.0, 60.0)
    return log.finish()


GOOD = [(7.0, CYCLE_START), (8.0, 0), (10.0, DELAYED), (11.0, 0), (12.0, REDUCED)]
BROKEN = {
    "two IVIG infusions on one day": [(7.0, CYCLE_START), (8.0, 0), (8.0, 0)],
    "IVIG cycles overlap": [(7.0, CYCLE_START), (8.0, 0), (20.0, CYCLE_START)],
    "an IVIG day after its cycle was skipped": [(7.0, CYCLE_START), (8.0, SKIPPED), (9.0, 0)],
    "more IVIG days in a cycle than days_per_cycle": [(7.0, CYCLE_START)]
    + [(7.0 + k, 0) for k in range(1, 6)],
    "an IVIG day outside any cycle": [(7.0, 0)],
    "more IVIG cycles than planned": [(7.0 + 28 * k, CYCLE_START) for k in range(7)],
}


def test_a_hand_made_center_log_passes_and_broken_ones_fail():
    plan = make_plan(scenario("first_line.yaml"))
    check_events(_log(*GOOD), plan, center=True)
    check_events(_log(*GOOD, (35.0, CYCLE_START | SKIPPED), (63.0, CYCLE_START)), plan, True)
    with pytest.raises(InvariantError, match="not consecutive"):
        check_events(_log(*GOOD), plan)  # without center=True a delayed day is a violation
    for what, rows in BROKEN.items():
        with pytest.raises(InvariantError, match=what):
            check_events(_log(*rows), plan, center=True)


# --------------------------------------------------------------------------------------
# 7. Reproducibility
# --------------------------------------------------------------------------------------

SMALL_CENTER = ("center.arrivals={per_year: 20, years: 1}", "horizon_days=182")


def test_center_results_do_not_depend_on_workers_chunks_or_dask():
    scn = scenario("center_capacity.yaml", *SMALL_CENTER)

    def summary(**kw: Any) -> str:
        result = run(scn, patients=4, seed=3, progress=False, **kw)
        assert result.engine == "simpy" and result.center is not None
        assert result.center.replications == 4
        return json_text(result.summary_json())

    one = summary(workers=1, chunk_size=4)
    assert '"center"' in one
    assert summary(workers=2, chunk_size=1) == one
    assert summary(workers=1, chunk_size=3) == one
    pytest.importorskip("dask.distributed")
    assert summary(workers=2, chunk_size=2, dask="local") == one


def test_compared_center_arms_see_the_same_arrivals_and_patients():
    from simulator.comparison import compare

    arms = [
        scenario("center_capacity.yaml", *SMALL_CENTER),
        scenario("center_capacity_rescue.yaml", *SMALL_CENTER),
    ]
    seed, reps = 3, 3
    ids: list[list[np.ndarray]] = []

    def sink(tables: list[dict[str, np.ndarray]]) -> None:
        ids.append([t["patient"] for t in tables])

    result = compare(arms, patients=reps, seed=seed, chunk_size=2, sink=sink, progress=False)
    assert result.same_patients
    first, second = (np.concatenate(arm) for arm in zip(*ids, strict=True))
    np.testing.assert_array_equal(first, second)
    centers = [s.center for s in result.scenarios]
    assert centers[0] is not None and centers[1] is not None
    days = [[center.arrival_days(c, seed, r) for r in range(reps)] for c in centers]
    for a, b in zip(*days, strict=True):
        np.testing.assert_array_equal(a, b)
    counts = [d.size for d in days[0]]
    expected = [r * PATIENTS_PER_CENTER + j for r in range(reps) for j in range(counts[r])]
    np.testing.assert_array_equal(first, expected)
    for s in result.summaries:
        assert s.center is not None
        assert s.center.totals["patients"].tolist() == counts


# --------------------------------------------------------------------------------------
# 8. Bad input
# --------------------------------------------------------------------------------------

CENTER_CAPACITY = SCENARIOS / "center_capacity.yaml"
RESCUE_CENTER = SCENARIOS / "center_capacity_rescue.yaml"


def _center_file(body: str) -> str:
    return f"extends: {CENTER_CAPACITY}\nname: bad_center\ncenter:\n{body}"


BAD = {
    "chairs_zero": (_center_file("  chairs: 0\n"), (), ("center.chairs", "(got 0)")),
    "open_hours_backwards": (
        _center_file("  open_hours: [18, 8]\n"),
        (),
        ("center.open_hours", "[18, 8]"),
    ),
    "chair_hours_too_long": (
        _center_file("  chair_hours: 12\n"),
        (),
        ("center", "chair_hours (12", "opening hours (10 h)"),
    ),
    "arrivals_both": (
        _center_file("  arrivals: {per_year: 10, cohort: 5}\n"),
        (),
        ("center.arrivals", "per_year: 10 and cohort: 5"),
    ),
    "deliveries_both": (
        _center_file("  stock:\n    deliveries: {lot_g: 100, order_up_to_g: 3000}\n"),
        (),
        ("center.stock.deliveries", "lot_g: 100 and order_up_to_g: 3000"),
    ),
    "reserve_with_fifo": (
        _center_file("  policy: {reserve_g: 100, priority: fifo}\n"),
        (),
        ("center.policy", "reserve_g (100)", "priority is fifo"),
    ),
    "shortage_window": (
        _center_file("  stock:\n    shortages: [{from_day: 90, until_day: 30}]\n"),
        (),
        ("center.stock.shortages[0]", "until_day (30)", "from_day (90)"),
    ),
    "engine_cohort": (None, ("--engine", "cohort"), ("center_capacity.yaml", "--engine cohort")),
    "compare_engine_cohort": (
        None,
        ("compare", str(CENTER_CAPACITY), str(RESCUE_CENTER), "--engine", "cohort"),
        ("center_capacity.yaml", "--engine cohort", "cannot simulate an infusion center"),
    ),
    "compare_with_a_cohort": (
        None,
        ("compare", str(CENTER_CAPACITY), str(SCENARIOS / "first_line.yaml")),
        ("infusion center", "center_first_line"),
    ),
}


def test_a_fixed_lot_alone_replaces_the_default_order_up_to_rule():
    """``deliveries: {lot_g: 500}`` is a fixed lot (the documented alternative), not both
    rules at once; both given explicitly is the error above."""
    scn = scenario("center_capacity.yaml", "center.stock.deliveries={lot_g: 500}")
    assert scn.center is not None and scn.center.stock.deliveries is not None
    assert scn.center.stock.deliveries.lot_g == 500
    assert scn.center.stock.deliveries.order_up_to_g is None


@pytest.mark.parametrize("case", list(BAD))
def test_bad_center_input_is_exit_2_with_one_message_and_nothing_written(
    case, tmp_path, monkeypatch, capsys
):
    text, args, expect = BAD[case]
    monkeypatch.chdir(tmp_path)
    if text is not None:
        Path(f"{case}.yaml").write_text(text, encoding="utf-8")
        argv = [f"{case}.yaml", *args]
        expect = (f"{case}.yaml", *expect)
    elif args and args[0] == "compare":
        argv = list(args)
    else:
        argv = [str(CENTER_CAPACITY), *args]
    before = sorted(p.name for p in tmp_path.iterdir())
    level = logging.getLogger().level
    try:
        status = cli.main([*argv, "--out", "out", "--quiet", "--patients", "1"])
    finally:
        logging.getLogger().setLevel(level)  # main() sets it for --quiet
    err = capsys.readouterr()
    assert status == 2, err.err
    assert err.out == ""
    assert "Traceback" not in err.err
    lines = err.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err.err
    for fragment in expect:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_center_metrics_are_sweep_outcomes_equal_to_the_runs_of_each_point(tmp_path):
    """A grid over center.chairs: every point's center outcomes are those of a plain run
    of the scenario with that point's value (same seed, same centers), and the sweep
    report counts centers, not patients."""
    from simulator.jobs import sweep_to_folder
    from simulator.sweeps import plan_sweep

    spec = tmp_path / "chairs.yaml"
    spec.write_text(
        f"name: chairs\nbase: {SCENARIOS / 'center_capacity.yaml'}\npatients: 2\n"
        "outcomes: [center_wait_mean_days, center_chair_utilisation, relapse]\n"
        "design: {type: grid, parameters: {center.chairs: [2, 4]}}\n"
    )
    sets = ["center.arrivals={per_year: 30, years: 1}", "horizon_days=182"]
    plan = plan_sweep(spec, sets=sets)
    res = sweep_to_folder(plan, tmp_path / "out", progress=False)
    for point, out in zip(plan.points, res.outputs, strict=True):
        chairs = point["center.chairs"]
        direct = run(
            scenario("center_capacity.yaml", *sets, f"center.chairs={chairs}"),
            patients=2,
            seed=plan.seed,
            progress=False,
        ).metrics
        for name in ("center_wait_mean_days", "center_chair_utilisation", "relapse"):
            assert out[name] == direct[name]["mean"], (chairs, name)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "2 simulated infusion centers per point" in html


@pytest.mark.parametrize(
    "policy", ["{when_short: reduce, max_delay_days: 10}", "{when_short: skip}"]
)
def test_the_patient_table_says_what_the_center_did_to_each_patient(policy):
    """patients.csv's center columns: each patient's replication and arrival day (those
    of arrival_days), and delays, reductions, skips and waits that add up, over the
    patients of each replication, to that center's totals."""
    from simulator.outcomes import patient_table

    scn = short_stock(policy, "1")
    plan = make_plan(scn)
    res = center.run_chunk(scn, plan, 4, np.array([0, 3]))
    table = patient_table(res, plan, scn)
    reps = table["center_replication"]
    assert sorted(set(reps.tolist())) == [0, 3]
    t = res.center.totals
    pairs = {
        "center_infusion_days_delayed": "days_delayed",
        "center_infusion_days_reduced": "days_reduced",
        "center_ivig_cycles_skipped": "cycles_skipped",
        "center_ivig_days_skipped": "days_skipped",
        "center_wait_days_total": "wait_days_total",
    }
    for k, r in enumerate((0, 3)):
        rows = reps == r
        np.testing.assert_array_equal(
            table["center_arrival_day"][rows], center.arrival_days(scn.center, 4, r)
        )
        for column, total in pairs.items():
            assert table[column][rows].sum() == pytest.approx(t[total][k], rel=1e-12), column
    assert sum(t[name].sum() for name in ("days_delayed", "days_reduced", "cycles_skipped")) > 0


@pytest.mark.parametrize("design", ["grid", "one_way"])
def test_a_sweep_spreads_each_points_centers_over_workers_with_the_same_bytes(tmp_path, design):
    """With 2 workers a sweep's points of several chunks (9 centers: chunks of 4, 4, 1)
    are split chunk by chunk between the workers and merged in order: sweep.json and the
    per-patient values kept for paired differences (one-way) are the bytes of 1 worker."""
    from simulator.jobs import sweep_to_folder
    from simulator.sweeps import plan_sweep, point_chunks

    body = (
        "{type: grid, parameters: {center.chairs: [2, 3]}}"
        if design == "grid"
        else "{type: one_way, parameters: {center.chairs: {low: 1, high: 3}}}"
    )
    spec = tmp_path / "chairs.yaml"
    spec.write_text(
        "name: chairs\n"
        f"strategies: {{first_line: {SCENARIOS / 'center_capacity.yaml'},"
        f" rescue: {SCENARIOS / 'center_capacity_rescue.yaml'}}}\n"
        "patients: 9\n"
        "outcomes: [center_wait_mean_days, center_cycles_skipped, relapse, cost_total]\n"
        f"design: {body}\n"
    )
    sets = ["center.arrivals={per_year: 20, years: 1}", "horizon_days=120"]
    plan = plan_sweep(spec, sets=sets)
    assert point_chunks(plan) == 3
    one = sweep_to_folder(plan, tmp_path / "one", progress=False, workers=1)
    two = sweep_to_folder(plan, tmp_path / "two", progress=False, workers=2)
    assert one.outputs == two.outputs
    for name in ("sweep.json", "sweep.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    if design == "one_way":
        paired = one.analysis["paired_vs_base"]
        assert paired == two.analysis["paired_vs_base"]
        assert any(paired[1:])  # the paired comparison with the base point was made


@pytest.mark.parametrize(
    ("chairs", "weekdays", "hours", "priority"),
    [
        ("null", 5, "[8, 18]", "fifo"),
        ("null", 7, "[0, 24]", "new_first"),
        ("3", 7, "[0, 24]", "fifo"),
        ("2", 5, "[0, 12]", "fifo"),
        ("3", 5, "[8, 18]", "fifo"),
    ],
)
def test_the_stock_goes_out_in_queue_order_at_every_instant(
    monkeypatch, chairs, weekdays, hours, priority
):
    """Patients who ask at the same instant draw IVIG in the policy's queue order, also
    when a chair is granted at once (unlimited chairs, or a center open from midnight),
    where nothing else orders them (found drawn out of order at 287 of 340 instants
    with unlimited chairs before the gate of CenterSim.request_day)."""
    drawn: list[tuple[float, int]] = []
    request_day, take_grams = center.CenterSim.request_day, center.CenterSim.take_grams

    def recording_request_day(self, key, day, hours):
        req = yield from request_day(self, key, day, hours)
        self.last_key = key  # take_grams follows at once, without yielding in between
        return req

    def recording_take_grams(self, need, priority_patient):
        drawn.append((self.env.now, self.last_key))
        return (yield from take_grams(self, need, priority_patient))

    monkeypatch.setattr(center.CenterSim, "request_day", recording_request_day)
    monkeypatch.setattr(center.CenterSim, "take_grams", recording_take_grams)
    policy = f"{{when_short: delay, priority: {priority}}}"
    c = one_center(short_stock(policy, chairs, weekdays, hours), 9, 1)
    assert c.record.totals["days_delayed"] > 0  # the stock ran short: order mattered
    instants: dict[float, list[int]] = {}
    for now, key in drawn:
        instants.setdefault(now, []).append(key)
    shared = [keys for keys in instants.values() if len(keys) > 1]
    assert len(shared) > 20
    for keys in shared:
        assert keys == sorted(keys)
