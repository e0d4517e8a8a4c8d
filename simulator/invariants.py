"""Invariants every event log must satisfy; checked after each simulated chunk.

A violation is a bug in the simulator (or a scenario the kernel mishandles), never bad
user input, so it raises :class:`InvariantError` with the patient, day and event.

* events of a patient run in time order, and in the fixed event order within a day;
* prednisone is never negative and only moves up where a rule fired (a relapse escalation
  or a rescue pulse) or where a pulse ends and the oral dose starts;
* IVIG: at most one infusion day per day, at most ``days_per_cycle`` days per cycle, and
  the first day of a cycle comes at least ``interval_days`` after the previous cycle's
  first day (no overlapping cycles); never more than ``cycles`` cycles. Under an infusion
  center (``engines/center.py``) cycle days may be apart and a cycle may be cut short,
  so the cycle checks follow the center's flags instead (``_check_center_infusions``).
"""

from __future__ import annotations

import numpy as np

from .kernel.events import EVENT_NAMES, Event, Flag
from .kernel.plan import Plan
from .records import EventLog

__all__ = ["InvariantError", "check_events", "undefined_time"]

# Days apart are compared with this slack: a cycle that starts on a day such as 0.07 is
# 28 days after the previous one in the kernel's arithmetic, but 84.07 - 56.07 is
# 27.999999999999993 in floating point.
_DAY_SLACK = 1e-9


class InvariantError(AssertionError):
    """The simulator broke one of its own invariants."""


def undefined_time(patient: int, day: float) -> InvariantError:
    """The error for a patient whose next event has no time (NaN, from a bug or from
    inputs no check refused): the cohort engine raises it instead of looping forever."""
    return InvariantError(
        f"the time of the next event is undefined (NaN): patient {patient}, after day {day:g}"
    )


def _fail(what: str, log: EventLog, i: int) -> None:
    raise InvariantError(
        f"{what}: patient {int(log.patient[i])}, day {float(log.day[i]):g}, "
        f"event {EVENT_NAMES[int(log.kind[i])]}"
    )


def check_events(log: EventLog, plan: Plan, center: bool = False) -> None:
    """Raise InvariantError at the first violation in a finished (sorted) event log.

    ``center``: the patients shared an infusion center (``engines/center.py``), which
    may delay an infusion day, reduce it or skip the rest of a cycle. Cycle days may then
    be apart, and a cycle may have fewer days; the center flags each cycle's first day
    (given or skipped), so the cycle checks use those flags."""
    if len(log) == 0:
        return
    pat, day, kind = log.patient, log.day, log.kind
    pred, before, flags = log.prednisone, log.prednisone_before, log.flags
    bad = np.flatnonzero(~np.isfinite(pred) | (pred < 0))
    if bad.size:
        _fail("negative or undefined prednisone dose", log, int(bad[0]))
    allowed = int(Flag.ESCALATE | Flag.RESCUE_PULSE)
    # the end of a pulse starts (or restarts) the scheduled oral dose, which is above the
    # pulse's prednisone equivalent when the scenario's pulse is small
    rises = (pred > before + 1e-9) & ((flags & allowed) == 0) & (kind != Event.PULSE_END)
    bad = np.flatnonzero(rises)
    if bad.size:
        _fail("prednisone went up without a rule firing", log, int(bad[0]))
    same = pat[1:] == pat[:-1]
    backwards = same & ((day[1:] < day[:-1]) | ((day[1:] == day[:-1]) & (kind[1:] < kind[:-1])))
    bad = np.flatnonzero(backwards)
    if bad.size:
        _fail("events out of order", log, int(bad[0]) + 1)
    after_death = same & (kind[:-1] == Event.DEATH)
    bad = np.flatnonzero(after_death)
    if bad.size:
        _fail("an event after death", log, int(bad[0]) + 1)
    continuity = same & (before[1:] != pred[:-1])
    bad = np.flatnonzero(continuity)
    if bad.size:
        _fail("prednisone changed between events", log, int(bad[0]) + 1)
    if center:
        _check_center_infusions(log, plan)
        return
    inf = np.flatnonzero(kind == Event.INFUSION)
    if inf.size == 0:
        return
    ip, iday = pat[inf], day[inf]
    if np.any((ip[1:] == ip[:-1]) & (iday[1:] <= iday[:-1])):
        j = int(np.flatnonzero((ip[1:] == ip[:-1]) & (iday[1:] <= iday[:-1]))[0]) + 1
        _fail("two IVIG infusions on one day", log, int(inf[j]))
    # position of each infusion within its patient's sequence
    starts = np.r_[0, np.flatnonzero(ip[1:] != ip[:-1]) + 1]
    counts = np.diff(np.r_[starts, ip.size])
    rank = np.arange(ip.size) - np.repeat(starts, counts)
    dpc = plan.ivig_days_per_cycle
    too_many = rank >= plan.ivig_max_cycles * dpc
    if np.any(too_many):
        _fail("more IVIG infusion days than cycles x days", log, int(inf[np.argmax(too_many)]))
    first_days = rank % dpc == 0
    fd_idx = np.flatnonzero(first_days)
    fp, fday = ip[fd_idx], iday[fd_idx]
    gap = (fp[1:] == fp[:-1]) & (fday[1:] - fday[:-1] < plan.ivig_interval_days - _DAY_SLACK)
    if np.any(gap):
        _fail("IVIG cycles overlap", log, int(inf[fd_idx[int(np.argmax(gap)) + 1]]))
    in_cycle = ~first_days
    span = np.zeros(ip.size, dtype=bool)
    span[1:] = in_cycle[1:] & (np.abs(iday[1:] - iday[:-1] - 1) > _DAY_SLACK)
    if np.any(span):
        _fail("IVIG cycle days not consecutive", log, int(inf[np.argmax(span)]))


def _check_center_infusions(log: EventLog, plan: Plan) -> None:
    """IVIG under an infusion center: at most one infusion day per day; cycles given start
    at least ``interval_days`` apart (a cycle skipped whole occupies no day); at most
    ``days_per_cycle`` days in a cycle, none after a skip in that cycle; at most the
    maximum number of cycles."""
    pat, day, kind, flags = log.patient, log.day, log.kind, log.flags
    ev = np.flatnonzero(kind == Event.INFUSION)
    if ev.size == 0:
        return
    ip, iday, ifl = pat[ev], day[ev], flags[ev]
    skipped = (ifl & int(Flag.CENTER_SKIPPED)) != 0
    start = (ifl & int(Flag.CENTER_CYCLE_START)) != 0
    given = ~skipped
    g = np.flatnonzero(given)
    same = ip[g][1:] == ip[g][:-1]
    if np.any(same & (iday[g][1:] <= iday[g][:-1])):
        j = int(np.flatnonzero(same & (iday[g][1:] <= iday[g][:-1]))[0]) + 1
        _fail("two IVIG infusions on one day", log, int(ev[g[j]]))
    days_in_cycle = 0
    cycles = 0
    closed = False
    last_start = -np.inf
    for k in range(ev.size):
        if k == 0 or ip[k] != ip[k - 1]:
            days_in_cycle, cycles, closed, last_start = 0, 0, False, -np.inf
        if start[k]:
            if iday[k] - last_start < plan.ivig_interval_days - _DAY_SLACK:
                _fail("IVIG cycles overlap", log, int(ev[k]))
            if not skipped[k]:
                # a cycle skipped whole gives up its slot and occupies no day: the next
                # one is due interval_days after the slot, which may be sooner after the
                # day it was given up (never before the day after it: the log is in time
                # order and one infusion day a day)
                last_start = iday[k]
            cycles += 1
            days_in_cycle = 0
            closed = False
            if cycles > plan.ivig_max_cycles:
                _fail("more IVIG cycles than planned", log, int(ev[k]))
        elif cycles == 0:
            _fail("an IVIG day outside any cycle", log, int(ev[k]))
        if skipped[k]:
            closed = True
            continue
        if closed:
            _fail("an IVIG day after its cycle was skipped", log, int(ev[k]))
        days_in_cycle += 1
        if days_in_cycle > plan.ivig_days_per_cycle:
            _fail("more IVIG days in a cycle than days_per_cycle", log, int(ev[k]))
