"""The center engine: patients who share infusion chairs and an IVIG stock (SimPy).

A scenario with a ``center:`` block (``scenario/center.py``) is simulated one center at
a time: one SimPy environment per center replication, in which new patients arrive
(Poisson, or a cohort at day 0) and each patient is a process that runs the same kernel
as the SimPy engine (``engines/des.py``) on its own clock (day 0 = its arrival). When the
kernel says an infusion day is due, the patient does not simply get it: it asks the
center for a chair (a ``simpy.PriorityResource``) and for the day's grams (a
``simpy.Container``), and only when both are granted does the kernel's infusion happen,
so the engine owns the start time. What the center cannot give that day is delayed to
the next opening day, reduced or skipped, as the scenario's policy says, and the kernel
carries the consequences (a cycle given later, a smaller dose, a lost cycle) into the
course of the disease.

Time is in days; the center opens ``open_weekdays`` days a week (day 0 is a Monday) from
``open_hours[0]`` to ``open_hours[1]``. Outside those hours a closing process holds every
chair with the highest priority, so at opening the queue is served in the policy's order
(priority class, then due day, then arrival order). An infusion day must end by closing
time: a patient still waiting at the latest start time leaves the queue and the day is
handled by the policy.

Reproducibility: a replication's arrivals come from its own stream (keyed by the
replication number) and patient ``j`` of replication ``r`` has the patient id
``r * PATIENTS_PER_CENTER + j``, whose draws are its own; the center is one unit of work.
So results do not depend on workers or chunking, and two policies or arms run on the same
seed see the same arrivals and the same patients (common random numbers).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from .. import streams
from ..center_stats import MONTH_DAYS, CenterRecord
from ..kernel import handlers
from ..kernel.events import Event, Flag
from ..kernel.params import Params, make_params
from ..kernel.plan import Plan
from ..kernel.xp import SCALAR
from ..records import ChunkResult, EventLog, state_outcomes
from ..scenario.center import Center, chair_hours
from ..scenario.schema import Scenario
from . import cohort, des_loop
from .des import compiled_events, record

__all__ = [
    "PATIENTS_PER_CENTER",
    "PATIENT_COUNTS",
    "CenterSim",
    "arrival_days",
    "mmc_waits",
    "run_chunk",
]

#: Per-patient columns the center adds to the patient table (patients.csv), besides
#: ``center_replication`` and ``center_arrival_day``: what the center did to the patient.
PATIENT_COUNTS = (
    "center_infusion_days_delayed",
    "center_ivig_cycles_delayed",
    "center_infusion_days_reduced",
    "center_ivig_cycles_skipped",
    "center_ivig_days_skipped",
    "center_wait_days_total",
)

_END, _INFUSION = int(Event.END), int(Event.INFUSION)
_LOG_FULL, _TABLE_FULL = des_loop._LOG_FULL, des_loop._TABLE_FULL
# what the Python path costs a patient more than the compiled one (center_capacity:
# ~10 ms against ~3 ms, the center's own work included in both)
_PYTHON_LOSS_PER_PATIENT_S = 6e-3

#: Patient ids of replication r are r * PATIENTS_PER_CENTER + j (j = arrival order).
PATIENTS_PER_CENTER = 1_000_000
# Queue priority (lower first): the closing process before any patient; a patient's key
# orders by priority class, then the day the infusion was first due, then arrival order.
_CLOSED = -1


def _request_priority(req: Any) -> int:
    return int(req.priority)


def _queue_key(cls: int, due_day: int, seq: int) -> int:
    return cls * 10**13 + due_day * PATIENTS_PER_CENTER + seq


def arrival_days(center: Center, seed: int, replication: int) -> np.ndarray:
    """Arrival day of each new patient of one replication (whole days, sorted)."""
    arr = center.arrivals
    if arr.cohort is not None:
        return np.zeros(arr.cohort, dtype=np.int64)
    assert arr.per_year is not None
    window = arr.years * 365.0
    mean_gap = 365.0 / arr.per_year
    times: list[np.ndarray] = []
    total, start = 0.0, 0
    while True:
        batch = max(64, int(1.2 * (window - total) / mean_gap) + 16)
        gaps = mean_gap * streams.exponential(
            seed, replication, "center.arrival_gap", np.arange(start, start + batch)
        )
        t = total + np.cumsum(gaps)
        times.append(t)
        start += batch
        total = float(t[-1])
        if total >= window:
            break
    t = np.concatenate(times)
    t = t[t < window]
    if t.size >= PATIENTS_PER_CENTER:
        raise ValueError(f"more than {PATIENTS_PER_CENTER - 1} arrivals in one center")
    return np.floor(t).astype(np.int64)


class CenterSim:
    """One center's shared resources and its bookkeeping, in one SimPy environment.

    ``request_day(priority, day, hours)`` is the whole interface a patient (or, in the
    queue validation, a plain customer) needs: a chair for ``hours`` on ``day``."""

    def __init__(
        self,
        env: simpy.Environment,
        center: Center,
        days: int,
        uniform_hours: float | None = None,
        max_grams_per_day: float = math.inf,
    ) -> None:
        self.env = env
        self.cfg = center
        self.days = days  # length of the bookkeeping arrays
        self.open_h, self.close_h = center.open_hours
        self.always_open = center.open_weekdays == 7 and self.open_h == 0 and self.close_h == 24
        self.capacity = center.chairs
        self.chairs = (
            simpy.PriorityResource(env, capacity=center.chairs)
            if center.chairs is not None
            else None
        )
        stock = center.stock
        self.stock = (
            simpy.Container(env, init=stock.initial_g) if stock.initial_g is not None else None
        )
        self.delivered = 0.0
        # When every infusion day takes the same chair hours, a chair serves at most
        # ``per_chair_day`` of them a day, so a request with that many per chair queued
        # ahead of it cannot be served today (``request_day`` then makes none).
        self.per_chair_day = (
            math.floor((self.close_h - self.open_h) / uniform_hours + 1e-9)
            if uniform_hours is not None and center.chairs is not None
            else None
        )
        self.max_grams_per_day = max_grams_per_day  # the most any patient-day needs
        self.requests_spared = 0  # requests the shortcut of request_day did not make
        self._hours: dict[float, float] = {}
        self.on_order = 0.0
        self.chair_hours = np.zeros(days)
        self.grams = np.zeros(days)
        self.infusion_days = np.zeros(days)
        self.stock_g = np.full(days, np.nan)
        self.backlog = np.zeros(days)
        self.short_day = np.zeros(days, dtype=bool)
        self.pending = 0  # infusion days overdue (delayed, not yet given or skipped)
        self.waits: list[float] = []
        # Patients ask for an infusion day at midnight, in the order SimPy resumes them.
        # They wait at a gate that opens at the day's opening and lets them through in
        # queue order (``_gate``), so chairs and grams go in the policy's order whatever
        # the hours (a chair granted at once, unlimited chairs with a counted stock), and
        # a request sees every request ahead of it already queued (which makes
        # request_day's shortcut exact).
        self._gates: dict[int, list[tuple[int, simpy.Event]]] = {}
        if self.chairs is not None and not self.always_open:
            env.process(self._closing())
        if self.stock is not None and stock.deliveries is not None:
            env.process(self._deliveries())
        env.process(self._monitor())

    def hours(self, dose_g_per_kg: float) -> float:
        """Chair hours of an infusion day of this dose (``chair_hours``, remembered)."""
        h = self._hours.get(dose_g_per_kg)
        if h is None:
            h = self._hours[dose_g_per_kg] = chair_hours(self.cfg, dose_g_per_kg)
        return h

    # -- calendar ------------------------------------------------------------------

    def is_open(self, day: int) -> bool:
        return day % 7 < self.cfg.open_weekdays

    def next_open_day(self, day: int) -> int:
        d = day
        while not self.is_open(d):
            d += 1
        return d

    def opening(self, day: int) -> float:
        return day + self.open_h / 24.0

    # -- processes -----------------------------------------------------------------

    def _closing(self) -> Generator[simpy.Event, Any, None]:
        """Hold every chair while the center is closed (highest priority), release at
        opening: the queue that built up is then served in priority order."""
        assert self.chairs is not None and self.capacity is not None
        env, day = self.env, 0
        while True:
            held = [self.chairs.request(priority=_CLOSED) for _ in range(self.capacity)]
            yield simpy.AllOf(env, held)
            day = self.next_open_day(day if env.now <= self.opening(day) else day + 1)
            yield env.timeout(self.opening(day) - env.now)
            for req in held:
                self.chairs.release(req)
            yield env.timeout(day + self.close_h / 24.0 - env.now)
            day += 1

    def _deliveries(self) -> Generator[simpy.Event, Any, None]:
        """Place the standing orders; each is delivered by its own process."""
        assert self.stock is not None
        dl = self.cfg.stock.deliveries
        assert dl is not None
        order = dl.first_order_day
        while order + dl.lead_time_days < self.days:
            if order > self.env.now:
                yield self.env.timeout(order - self.env.now)
            if dl.lot_g is not None:
                grams = dl.lot_g
            else:
                assert dl.order_up_to_g is not None
                grams = max(0.0, dl.order_up_to_g - self.stock.level - self.on_order)
            if grams > 0:
                self.on_order += grams
                self.env.process(self._deliver(grams, order + dl.lead_time_days))
            order += dl.every_days

    def _deliver(self, ordered: float, day: int) -> Generator[simpy.Event, Any, None]:
        assert self.stock is not None
        yield self.env.timeout(day - self.env.now)
        self.on_order -= ordered
        factor = 1.0
        for s in self.cfg.stock.shortages:
            if s.from_day <= day < s.until_day:
                factor = min(factor, s.supply_factor)
        grams = ordered * factor
        if grams > 0:
            yield self.stock.put(grams)
            self.delivered += grams

    def _monitor(self) -> Generator[simpy.Event, Any, None]:
        """At the end of each day: stock level and overdue infusion days."""
        for day in range(self.days):
            yield self.env.timeout(day + 1.0 - 1e-9 - self.env.now)
            if self.stock is not None:
                self.stock_g[day] = self.stock.level
            self.backlog[day] = self.pending

    def _gate(self, day: int, key: int) -> simpy.Event:
        """An event that fires at the opening of ``day`` (now, if that has passed): every
        request waiting for the same opening is let through in queue order (``key``)."""
        waiting = self._gates.get(day)
        if waiting is None:
            waiting = self._gates[day] = []
            self.env.process(self._open_gate(day))
        ev = self.env.event()
        waiting.append((key, ev))
        return ev

    def _open_gate(self, day: int) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(max(0.0, self.opening(day) - self.env.now))
        for _, ev in sorted(self._gates.pop(day), key=lambda w: w[0]):
            ev.succeed()

    def _release(self, req: Any, hours: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(hours / 24.0)
        assert self.chairs is not None
        self.chairs.release(req)

    # -- a chair for one day -------------------------------------------------------

    def request_chair(
        self, priority: int, latest: float = math.inf
    ) -> Generator[simpy.Event, Any, Any]:
        """Queue for a chair with this priority until time ``latest``. Returns the
        granted request (the chair is then held: ``hold`` or ``give_back`` it), ``True``
        when chairs are unlimited, or None if none came free by ``latest``."""
        if self.chairs is None:
            return True
        req = self.chairs.request(priority=priority)
        if self.env.now > latest:
            req.cancel()
            return None
        if math.isinf(latest):
            yield req
            return req
        yield req | self.env.timeout(latest - self.env.now)
        if req.triggered:
            return req
        req.cancel()
        return None

    def request_day(
        self, priority: int, day: int, hours: float
    ) -> Generator[simpy.Event, Any, Any]:
        """A chair for ``hours`` on ``day`` from its opening (the caller is at or before
        it): the request, or None if the day is closed or no chair came free before the latest
        start that lets the infusion end by closing time."""
        if not self.is_open(day):
            return None
        yield self._gate(day, priority)  # now at the opening, in queue order
        if self.per_chair_day is not None and self.capacity is not None:
            # Requests queued ahead (smaller keys) fill every infusion slot of the day,
            # and the stock covers the grams of every slot (so nobody ahead hands a chair
            # back for lack of IVIG): this one would wait until its latest start and
            # leave, changing nothing for the others (with the same chair hours for all,
            # one ahead left unserved means this one unserved too). Skip the request and
            # its events; the results are the same bits (tests/test_center.py runs
            # centers without this shortcut and compares).
            assert self.chairs is not None
            slots = self.capacity * self.per_chair_day
            ahead = bisect.bisect_left(self.chairs.queue, priority, key=_request_priority)
            stock_ok = (
                self.stock is None
                or self.stock.level - self.cfg.policy.reserve_g >= slots * self.max_grams_per_day
            )
            if ahead >= slots and stock_ok:
                self.requests_spared += 1
                return None
        return (yield from self.request_chair(priority, day + (self.close_h - hours) / 24.0))

    def hold(self, req: Any, day: int, hours: float) -> None:
        """The chair is in use for ``hours`` from now (then released)."""
        if 0 <= day < self.days:
            self.chair_hours[day] += hours
            self.infusion_days[day] += 1
        if self.chairs is not None:
            self.env.process(self._release(req, hours))

    def give_back(self, req: Any) -> None:
        if self.chairs is not None and req is not True:
            self.chairs.release(req)

    def take_grams(self, need: float, priority_patient: bool) -> Generator[simpy.Event, Any, float]:
        """Grams drawn for a day needing ``need`` grams under the policy (0 = nothing)."""
        if need <= 0 or self.stock is None:
            return need
        pol = self.cfg.policy
        usable = self.stock.level - (0.0 if priority_patient else pol.reserve_g)
        if usable >= need:
            got = need
        elif pol.when_short == "reduce" and usable >= pol.reduce_min_fraction * need:
            got = usable
        else:
            got = 0.0
        if got < need:
            day = min(int(self.env.now), self.days - 1)
            self.short_day[day] = True
        if got > 0:
            yield self.stock.get(got)
        return got


def _grams_due(plan: Plan, prm: Params, st: Any) -> tuple[float, float]:
    """(dose g/kg of the day due, grams it needs) for the next infusion day."""
    cycle = st.ivig_cycles if st.ivig_day_in_cycle == 0 else st.ivig_cycles - 1
    doses = plan.cycle_doses
    dose = doses[min(int(cycle), len(doses) - 1)] / plan.ivig_days_per_cycle
    return dose, dose * st.drug_active * prm.weight_kg


def _not_before_tomorrow(st: Any) -> None:
    """After an infusion day given or skipped: when delays stretched the cycle past the
    next one's due day, the next infusion is tomorrow at the earliest (the patient's
    clock never goes back, and cycles never overlap)."""
    if st.ivig_next <= st.t:
        handlers.postpone_infusion(st, st.t + 1.0)


class _OnPython:
    """A center patient's kernel on the Python path: its own state in Python numbers,
    the kernel's functions called one event at a time."""

    def __init__(
        self, plan: Plan, prm: Params, i: int, res: ChunkResult, log: EventLog | None
    ) -> None:
        self.plan, self.prm, self.i, self.res, self.log = plan, prm, i, res, log
        self.st: Any = None

    def begin(self) -> None:
        self.st = handlers.init_state(SCALAR, self.plan, self.prm)

    def next_event(self) -> tuple[float, int]:
        t, kind = handlers.next_event(SCALAR, self.plan, self.prm, self.st)
        return t, int(kind)

    def step(self, t: float, kind: int) -> None:
        """Move to the next event (at ``t``, of ``kind``) and run it, unless it is an
        infusion (the center decides) or the end."""
        st = self.st
        handlers.advance(SCALAR, self.plan, self.prm, st, t)
        if kind in (_END, _INFUSION):
            return
        before = st.pred
        flags, values, grams = handlers.handle(SCALAR, self.plan, self.prm, st, kind)
        record(self.res, self.log, self.i, self.prm.patient, st, kind, flags, values, grams, before)

    def next_other_event(self) -> tuple[float, int]:
        """(time, kind) of the next event other than the infusion (patient clock)."""
        st = self.st
        due = st.ivig_next
        st.ivig_next = math.inf
        t, kind = self.next_event()
        st.ivig_next = due
        return t, kind

    def advance_to(self, t: float) -> None:
        """Move to ``t`` (the day an infusion is given or skipped), if later."""
        if self.st.t < t:
            handlers.advance(SCALAR, self.plan, self.prm, self.st, t)

    def infuse(self, fraction: float, extra: int, before: float) -> float:
        """The infusion now, ``fraction`` of the day's dose; its record flagged
        ``extra``. Returns the grams given."""
        st = self.st
        flags, _, grams = handlers.handle(SCALAR, self.plan, self.prm, st, Event.INFUSION, fraction)
        _not_before_tomorrow(st)
        self._log_infusion(flags + extra, grams, before)
        return float(grams)

    def skip(self, due_day: float) -> bool:
        """The infusion due now (first due on ``due_day``) is skipped, with the rest of
        its cycle; whether a whole cycle was."""
        st = self.st
        whole = handlers.skip_infusion(self.plan, st, due_day)
        _not_before_tomorrow(st)
        return whole

    def log_skip(self, extra: int, before: float) -> None:
        """Record the infusion day skipped, flagged ``extra``."""
        self._log_infusion(float(extra), 0.0, before)

    def _log_infusion(self, flags: Any, grams: Any, before: float) -> None:
        record(
            self.res,
            self.log,
            self.i,
            self.prm.patient,
            self.st,
            _INFUSION,
            flags,
            None,
            grams,
            before,
        )

    def end(self) -> None:
        for name, value in state_outcomes(self.plan, self.st).items():
            self.res.outcomes[name][self.i] = value


class _Row:
    """Row ``r`` of a chunk's state arrays, read and written as one patient's state."""

    __slots__ = ("_r", "_st")

    def __init__(self, st: Any, r: int) -> None:
        object.__setattr__(self, "_st", st)
        object.__setattr__(self, "_r", r)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._st, name)[self._r]

    def __setattr__(self, name: str, value: Any) -> None:
        getattr(self._st, name)[self._r] = value


class _Compiled(_OnPython):
    """A center patient's kernel compiled (``des_loop``'s center functions, on the
    chunk's state arrays; the same bytes as :class:`_OnPython`). The chunk's outcomes
    are written once every patient has ended (``cohort.finish_chunk``)."""

    def __init__(self, s: Any, plan: Plan, prm: Params, st: Any, i: int) -> None:
        self.s, self.m, self.plan, self.prm, self.i = s, s.module, plan, prm, i
        self.st = _Row(st, i)

    def _call(self, fn: Any, *args: Any) -> float:
        s = self.s
        while True:
            got = fn(s.ctx, self.i, *args)
            if got not in (_LOG_FULL, _TABLE_FULL):
                return float(got)
            s.service(got)  # a full buffer: nothing ran

    def begin(self) -> None:
        pass  # the chunk's state arrays start as init_state makes them

    def next_event(self) -> tuple[float, int]:
        t = self.m.peek(self.s.ctx, self.i)
        return float(t), int(self.s.count[2])

    def step(self, t: float, kind: int) -> None:
        self._call(self.m.next_one)

    def advance_to(self, t: float) -> None:
        self._call(self.m.advance_to, float(t))

    def infuse(self, fraction: float, extra: int, before: float) -> float:
        grams = self._call(self.m.infuse, float(fraction), int(extra), float(before))
        _not_before_tomorrow(self.st)  # not in the record: after it is the same
        return grams

    def log_skip(self, extra: int, before: float) -> None:
        st = self.st
        self.s.log_row(
            self.prm.patient, st.t, _INFUSION, extra, math.nan, math.nan, 0.0, st.pred, before
        )

    def end(self) -> None:
        pass


def _patient(
    env: simpy.Environment,
    sim: CenterSim,
    plan: Plan,
    prm: Params,
    i: int,
    seq: int,
    arrival: int,
    res: ChunkResult,
    k: _OnPython,
) -> Generator[simpy.Event, Any, None]:
    cfg = sim.cfg
    pol = cfg.policy
    if res.center_patients is None:
        res.center_patients = {name: np.zeros(res.n) for name in PATIENT_COUNTS}
    mine = res.center_patients  # this chunk's per-patient center columns (row i)
    if arrival > env.now:
        yield env.timeout(arrival - env.now)
    k.begin()
    st = k.st
    first_due = math.inf  # day (patient clock) the pending infusion day was first due
    while True:
        t, kind = k.next_event()
        if arrival + t > env.now:
            yield env.timeout(arrival + t - env.now)
        k.step(t, kind)
        if kind == _END:
            break
        if kind != _INFUSION:
            if st.ivig_next == math.inf and first_due < math.inf:
                sim.pending -= 1  # a rule or death cancelled the overdue day
                first_due = math.inf
            continue
        before = st.pred
        day = arrival + int(t)
        if first_due == math.inf:
            first_due = t
        dose, need = _grams_due(plan, prm, st)
        hours = sim.hours(dose)
        new_cycle = st.ivig_day_in_cycle == 0
        if pol.priority == "rescue_first":
            cls = 0 if st.rescue < math.inf else 1
        elif pol.priority == "new_first":
            cls = 0 if st.ivig_cycles <= (0 if new_cycle else 1) else 1
        else:
            cls = 0
        key = _queue_key(cls, arrival + int(first_due), seq)
        other = None  # the next other event: the state does not change while retrying
        while True:
            req = yield from sim.request_day(key, day, hours)
            fraction, got = 0.0, 0.0
            if req is not None:
                got = yield from sim.take_grams(need, cls == 0 and pol.priority != "fifo")
                fraction = 1.0 if need <= 0 else got / need
                if fraction <= 0.0:
                    sim.give_back(req)
            late = t > first_due
            if fraction > 0.0:
                break
            # not given today: the policy decides
            skip = pol.when_short == "skip" or (
                pol.max_delay_days is not None and t - first_due >= pol.max_delay_days
            )
            if skip:
                break
            # try again on the next opening day; the rest of the patient's course goes on
            if not late:
                sim.pending += 1
            nxt = sim.next_open_day(day + 1)
            if other is None:
                other = k.next_other_event()
            # another event before the retry day, or that day and first in the fixed order
            if other < (nxt - arrival, _INFUSION):
                handlers.postpone_infusion(st, nxt - arrival)
                break
            # nothing else happens to the patient before then: wait for that day here,
            # without stepping the kernel through the days in between
            yield env.timeout(nxt - env.now)
            day, t = nxt, float(nxt - arrival)
        k.advance_to(t)  # the day it is given (or skipped)
        if fraction > 0.0:
            sim.hold(req, min(day, sim.days - 1), sim.hours(dose * fraction))
            extra = int(Flag.CENTER_CYCLE_START) if new_cycle else 0
            if late:
                extra |= int(Flag.CENTER_DELAYED)
                mine["center_infusion_days_delayed"][i] += 1
                mine["center_ivig_cycles_delayed"][i] += int(new_cycle)
                sim.pending -= 1
            if fraction < 1.0:
                extra |= int(Flag.CENTER_REDUCED)
                mine["center_infusion_days_reduced"][i] += 1
            wait = env.now - sim.opening(arrival + int(first_due))
            sim.waits.append(wait)
            mine["center_wait_days_total"][i] += wait
            # the kernel's infusion, its record last (as before the center's functions
            # were compiled: what a recording log sees is unchanged)
            sim.grams[min(day, sim.days - 1)] += k.infuse(fraction, extra, before)
            first_due = math.inf
            continue
        if not skip:
            continue  # postponed through the kernel
        whole = k.skip(first_due)
        mine["center_ivig_cycles_skipped" if whole else "center_ivig_days_skipped"][i] += 1
        if late:
            sim.pending -= 1
        first_due = math.inf
        extra = int(Flag.CENTER_SKIPPED) + (int(Flag.CENTER_CYCLE_START) if whole else 0)
        k.log_skip(extra, before)
    if first_due < math.inf:
        sim.pending -= 1
    k.end()


def _uniform_hours(scn: Scenario, plan: Plan) -> float | None:
    """The chair hours of every infusion day when they are all the same (one dose per
    day in every cycle, and no reduced doses), else None."""
    assert scn.center is not None
    if not plan.ivig_on or scn.center.policy.when_short == "reduce":
        return None
    per_day = {d / plan.ivig_days_per_cycle for d in plan.cycle_doses}
    if len(per_day) != 1:
        return None
    return chair_hours(scn.center, per_day.pop())


def _center_days(scn: Scenario, arrivals: np.ndarray) -> int:
    last = int(arrivals.max()) if arrivals.size else 0
    return last + scn.horizon_days + 1


def run_chunk(
    scn: Scenario,
    plan: Plan,
    seed: int,
    replications: np.ndarray,
    events: bool = False,
    compiled_events: bool = True,
) -> ChunkResult:
    """Simulate the given center replications; returns every patient of them (in
    replication, then arrival order) with the centers' record in ``.center``. Unlike
    the other engines it takes no precomputed params: a center draws its own patients.
    With ``compiled_events`` (the default) the kernel's events run compiled when that
    pays (``des_loop``'s center functions); ``compiled_events=False`` keeps the Python
    path, the reference the tests compare it with."""
    center = scn.center
    if center is None:
        raise ValueError("the center engine needs a scenario with a center: block")
    reps = [int(r) for r in np.asarray(replications)]
    arrivals = [arrival_days(center, seed, r) for r in reps]
    ids = np.concatenate(
        [
            r * PATIENTS_PER_CENTER + np.arange(a.size, dtype=np.int64)
            for r, a in zip(reps, arrivals, strict=True)
        ]
        or [np.zeros(0, dtype=np.int64)]
    )
    prm, base = make_params(scn, plan, seed, ids)
    res = ChunkResult.empty(plan, prm, base, events)
    res.center_patients = {name: np.zeros(ids.size) for name in PATIENT_COUNTS}
    compiled = _compiled(plan, prm, res) if compiled_events else None
    parts: list[CenterRecord] = []
    offset = 0
    for arr in arrivals:
        env = simpy.Environment()
        days = _center_days(scn, arr)
        weights = prm.weight_kg[offset : offset + arr.size]
        most = float(weights.max()) * max(plan.cycle_doses, default=0.0) if arr.size else 0.0
        sim = CenterSim(
            env, center, days, _uniform_hours(scn, plan), most / max(1, plan.ivig_days_per_cycle)
        )
        for j, a in enumerate(arr):
            i = offset + j
            row = prm.row(i)
            k = (
                _OnPython(plan, row, i, res, res.events)
                if compiled is None
                else _Compiled(compiled[0], plan, row, compiled[1], i)
            )
            env.process(_patient(env, sim, plan, row, i, j, int(a), res, k))
        env.run(until=days)
        mine = {k: v[offset : offset + arr.size] for k, v in res.center_patients.items()}
        parts.append(_record(sim, center, mine, days))
        offset += arr.size
    if compiled is not None:
        compiled[0].finish()
        cohort.finish_chunk(plan, compiled[1], res)  # the outcomes, the log in order
    elif res.events is not None:
        res.events.finish()
    res.center = CenterRecord.merge_all(parts)
    assert res.center_patients is not None
    res.center_patients["center_replication"] = np.repeat(
        np.asarray(reps, dtype=np.int64), [a.size for a in arrivals]
    )
    res.center_patients["center_arrival_day"] = np.concatenate(
        [*arrivals, np.zeros(0, dtype=np.int64)]
    )
    return res


def _compiled(plan: Plan, prm: Params, res: ChunkResult) -> tuple[Any, Any] | None:
    """The chunk's compiled center functions and the state arrays they run on, or None
    (the Python path runs)."""
    loss = len(prm.patient) * _PYTHON_LOSS_PER_PATIENT_S
    return compiled_events(plan, prm, res, loss, center=True)


def _monthly(values: np.ndarray, months: int, how: str = "sum") -> np.ndarray:
    """Sum (or mean, ignoring NaN) of a daily series by 4-week month."""
    out = np.full(months, np.nan)
    for m in range(months):
        part = values[m * MONTH_DAYS : (m + 1) * MONTH_DAYS]
        if how == "sum":
            out[m] = part.sum()
        elif np.isfinite(part).any():
            out[m] = np.nanmean(part)
    return out


def _open_hours_by_day(sim: CenterSim, days: int) -> np.ndarray:
    per_day = (sim.close_h - sim.open_h) * (sim.capacity or 0)
    return np.array([per_day if sim.is_open(d) else 0.0 for d in range(days)])


# center total <- the per-patient column it sums
_TOTAL_OF = {
    "days_delayed": "center_infusion_days_delayed",
    "cycles_delayed": "center_ivig_cycles_delayed",
    "days_reduced": "center_infusion_days_reduced",
    "cycles_skipped": "center_ivig_cycles_skipped",
    "days_skipped": "center_ivig_days_skipped",
}


def _record(
    sim: CenterSim, center: Center, patients: dict[str, np.ndarray], days: int
) -> CenterRecord:
    """One replication's record from its center and its patients' columns."""
    months = -(-days // MONTH_DAYS)
    window = round(center.arrivals.years * 365) if center.arrivals.cohort is None else days
    window = min(window, days)
    open_h = _open_hours_by_day(sim, days)
    left = sim.stock.level if sim.stock is not None else math.nan
    initial = center.stock.initial_g if center.stock.initial_g is not None else math.nan
    given = float(sim.grams.sum())
    waits = np.asarray(sim.waits, dtype=np.float64)
    totals = {
        "patients": len(patients[_TOTAL_OF["days_delayed"]]),
        "infusion_days": float(sim.infusion_days.sum()),
        **{total: float(patients[column].sum()) for total, column in _TOTAL_OF.items()},
        "grams_given": given,
        "grams_window": float(sim.grams[:window].sum()),
        "grams_delivered": initial + sim.delivered,
        "grams_left": left,
        "stock_out_days": float(sim.short_day[:window].sum()),
        "chair_hours": float(sim.chair_hours[:window].sum()),
        "chair_hours_open": float(open_h[:window].sum()) if sim.capacity else math.nan,
        "nurse_hours_window": float(sim.chair_hours[:window].sum() * center.nurses_per_chair),
        "wait_days_total": float(waits.sum()),
        "wait_p95_days": float(np.quantile(waits, 0.95)) if waits.size else math.nan,
        "center_days": float(window),
    }
    series = {
        "chair_hours": _monthly(sim.chair_hours, months),
        "chair_hours_open": _monthly(open_h, months) if sim.capacity else np.full(months, np.nan),
        "grams": _monthly(sim.grams, months),
        "stock_g": _monthly(sim.stock_g, months, "mean"),
        "backlog": _monthly(sim.backlog, months, "mean"),
        "infusion_days": _monthly(sim.infusion_days, months),
    }
    return CenterRecord(
        replications=1,
        months=months,
        totals={k: np.array([v], dtype=np.float64) for k, v in totals.items()},
        series={k: v[None, :] for k, v in series.items()},
        waits=waits,
    )


def mmc_waits(
    chairs: int,
    arrivals_per_day: float,
    service_mean_days: float,
    customers: int,
    seed: int,
    replication: int = 0,
) -> np.ndarray:
    """The center's chair queue alone, as an M/M/c queue: Poisson arrivals, exponential
    chair times, always open, no stock and no disease; returns each customer's wait (days,
    in arrival order). For the validation against Erlang C (tests/test_center_queue.py);
    customer k's inter-arrival and service times are draws of its own stream, so runs
    with different ``chairs`` see the same arrivals and the same services."""
    env = simpy.Environment()
    center = Center(
        chairs=chairs,
        open_weekdays=7,
        open_hours=(0.0, 24.0),
        stock={"initial_g": None},
        arrivals={"cohort": 1},
    )
    sim = CenterSim(env, center, days=1)
    k = np.arange(customers)
    gaps = streams.exponential(seed, replication, "center.mmc_arrival", k) / arrivals_per_day
    service = streams.exponential(seed, replication, "center.mmc_service", k) * service_mean_days
    arrive = np.cumsum(gaps)
    waits = np.full(customers, np.nan)

    def customer(j: int) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(arrive[j] - env.now)
        req = yield from sim.request_chair(0)  # one class: first come, first served
        waits[j] = env.now - arrive[j]
        yield env.timeout(service[j])
        sim.give_back(req)

    for j in range(customers):
        env.process(customer(j))
    env.run()
    return waits
