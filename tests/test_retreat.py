"""IVIG re-treatment courses (regimen.ivig.retreat_when, max_courses): a new course of
`cycles` cycles when the rule fires after the last course has ended."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SCENARIOS

from simulator.engines import cohort
from simulator.errors import InputError
from simulator.kernel.events import Event, Flag
from simulator.kernel.plan import make_plan
from simulator.scenario import load_scenario

RELAPSE_RETREAT = [
    'regimen.ivig.retreat_when={"relapse": true}',
    "disease.activity.flare_rate_per_year=2",
]
NEVER = 'regimen.ivig.retreat_when={"day_before": 0}'  # no visit is before day 0


def chunk(sets, n=300, seed=7):
    scn = load_scenario(SCENARIOS / "first_line.yaml", sets)
    plan = make_plan(scn)
    return scn, plan, cohort.run_chunk(scn, plan, seed, np.arange(n), events=True)


def test_a_retreat_rule_that_never_fires_changes_nothing():
    _, _, a = chunk(["disease.activity.flare_rate_per_year=2"])
    _, _, b = chunk(["disease.activity.flare_rate_per_year=2", NEVER])
    for part in ("outcomes", "visits"):
        for name, value in getattr(a, part).items():
            assert value.tobytes() == getattr(b, part)[name].tobytes(), (part, name)
    for name in ("patient", "day", "kind", "flags"):
        assert getattr(a.events, name).tobytes() == getattr(b.events, name).tobytes(), name


@pytest.mark.parametrize("max_courses", [2, 3])
def test_a_new_course_starts_after_the_last_has_ended_at_each_relapse_while_courses_remain(
    max_courses,
):
    """Read from the event log, patient by patient: a course is 6 cycles of 5 infusion
    days (30 days). A visit with a relapse starts a new course (flag IVIG_RETREAT) exactly
    when a course has ended (a multiple of 30 infusion days before it, none pending),
    courses remain and the patient was never stopped for an adverse event; its first
    infusion is start_delay_days (7) later."""
    scn, _, res = chunk([*RELAPSE_RETREAT, f"regimen.ivig.max_courses={max_courses}"])
    ev = res.events
    course = scn.regimen.ivig.cycles * scn.regimen.ivig.days_per_cycle
    retreats = 0
    for p in np.unique(ev.patient):
        mine = ev.patient == p
        day, kind, flags = ev.day[mine], ev.kind[mine], ev.flags[mine]
        infusions = day[kind == Event.INFUSION]
        assert infusions.size <= course * max_courses
        hit = (kind == Event.INFUSION) & ((flags & Flag.IVIG_STOPPED) > 0)
        stop_day = day[hit].min() if hit.any() else np.inf  # stopped for an adverse event
        pending = False
        for d, k, f in zip(day, kind, flags, strict=True):
            if k == Event.INFUSION:
                pending = False
                continue
            if k != Event.VISIT:
                continue
            given = int(np.sum(infusions < d))
            due = (
                bool(f & Flag.RELAPSE)
                and given > 0
                and given % course == 0
                and given < course * max_courses
                and not pending
                and stop_day > d
            )
            fired = bool(f & Flag.IVIG_RETREAT)
            assert fired == due, (p, d, given)
            if fired:
                retreats += 1
                pending = True
                first = d + scn.regimen.ivig.start_delay_days
                later = infusions[infusions > d]
                if later.size:
                    assert later.min() == first
                else:  # the horizon or death came first
                    assert first > scn.horizon_days or res.outcomes["death_day"][p] <= first
    assert retreats > 10  # the test saw the rule fire
    cycles = res.outcomes["ivig_cycles"]
    assert (cycles > 6).any() and cycles.max() <= 6 * max_courses


def test_each_course_takes_the_dose_list_from_its_start():
    scn = load_scenario(
        SCENARIOS / "first_line.yaml",
        [RELAPSE_RETREAT[0], "regimen.ivig.dose_g_per_kg=[2, 1, 1]", "regimen.ivig.cycles=4"],
    )
    assert make_plan(scn).cycle_doses == (2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0)
    assert scn.regimen.ivig.possible_cycles() == 8


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            [RELAPSE_RETREAT[0], 'regimen.ivig.extend_when={"inactive": false}'],
            "give extend_when (longer courses) or retreat_when (new courses), not both",
        ),
        (
            [
                RELAPSE_RETREAT[0],
                'regimen.ivig.stop_when={"inactive": true}',
                "regimen.ivig.dose_g_per_kg=[2, 1]",
            ],
            "a dose list with both stop_when and retreat_when",
        ),
        (["regimen.ivig.max_courses=0"], "regimen.ivig.max_courses"),
        (['regimen.ivig.retreat_when={"relapsed": true}'], "regimen.ivig.retreat_when"),
        (
            [RELAPSE_RETREAT[0], "regimen.ivig.cycles=20", "regimen.ivig.max_courses=7"],
            "cycles x max_courses (20 x 7) exceeds 120",
        ),
    ],
    ids=["with_extend", "dose_list_with_stop", "max_courses_0", "unknown_atom", "too_many"],
)
def test_bad_retreatment_settings_are_refused_by_name(sets, message):
    with pytest.raises(InputError) as err:
        load_scenario(SCENARIOS / "first_line.yaml", sets)
    assert message in str(err.value)
