"""Treatment regimens and the decision rules that make treatment follow response.

A rule is evaluated at a visit on what the clinic measured (never on the latent state):
CPK, myoglobin, the six core set measures, the Total Improvement Score, the current
treatment and the time since events. Rules combine with ``any``, ``all`` and ``not``;
comparisons on any measure are written ``{above: {NAME: VALUE}}`` or ``{below: {NAME:
VALUE}}`` with the names of ``MEASURES``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from .schema import FAGGIOLI, Frozen, P, Probability

__all__ = ["IVIG", "MEASURES", "RULE_ATOMS", "Regimen", "Rule", "Steroid", "Taper", "Visits"]

# What a rule can read at a visit: name -> (unit, meaning). The kernel's ``Seen`` has one
# attribute per name (kernel/rules.py); keep the two in step.
MEASURES: dict[str, tuple[str, str]] = {
    "day": ("day", "day of the visit since diagnosis"),
    "cpk_x_uln": ("x ULN", "measured CPK as a multiple of the ULN"),
    "cpk_pct_baseline": ("%", "measured CPK as a percentage of the day-0 value"),
    "cpk_rise_pct": ("%", "change of measured CPK since the previous visit"),
    "myoglobin_x_uln": ("x ULN", "measured myoglobin as a multiple of the ULN"),
    "mmt8": ("points (0-150)", "measured MMT-8"),
    "mmt8_drop_pct_best": ("%", "MMT-8 below the best value so far, in percent of it"),
    "physician_global_cm": ("cm (0-10)", "physician global activity"),
    "physician_global_rise_cm": ("cm", "physician global above its lowest value so far"),
    "patient_global_cm": ("cm (0-10)", "patient global activity"),
    "haq": ("0-3", "Health Assessment Questionnaire disability index"),
    "extramuscular_cm": ("cm (0-10)", "extramuscular global activity"),
    "skin_activity_cm": (
        "cm (0-10)",
        "skin activity (DM); never above or below anything in a patient without skin disease",
    ),
    "lung_activity_cm": ("cm (0-10)", "lung (ILD) activity, in patients with lung involvement"),
    "dysphagia_activity_cm": ("cm (0-10)", "swallowing activity, in patients with dysphagia"),
    "tis": ("points (0-100)", "Total Improvement Score against baseline (or entry)"),
    "prednisone_mg_per_day": ("mg/day", "current prednisone-equivalent dose"),
    "relapses": ("count", "clinical relapses so far"),
    "days_since_relapse": ("days", "days since the last clinical relapse (inf: none)"),
    "days_inactive": ("days", "days since the current run of inactive visits began"),
    "ivig_cycles": ("cycles", "IVIG cycles started so far"),
    "days_on_floor": ("days", "days on the taper floor dose or below"),
    "days_since_entry": ("days", "days since study entry (-inf before entry)"),
    "physician_global_above_baseline_cm": (
        "cm",
        "physician global above its baseline value (the day-0 visit, or entry)",
    ),
    "mmt8_below_baseline_pct": (
        "%",
        "MMT-8 below its baseline value (the day-0 visit, or entry), in percent of it",
    ),
    "extramuscular_above_baseline_cm": (
        "cm",
        "extramuscular global above its baseline value (the day-0 visit, or entry)",
    ),
    "core_set_worse_30pct": (
        "count (0-5)",
        "core set measures other than the enzymes worse than baseline (the day-0 visit, or"
        " entry) by at least 30% of their baseline value: physician, patient and"
        " extramuscular global and HAQ up, MMT-8 down (IMACS worsening; ProDERM's"
        " confirmed deterioration, parameters.md section 8)",
    ),
}

# The most oral prednisone a dose field may set: above it a dose is a slip, and its sums
# overflowed the outcome statistics.
_ORAL_MAX_MG_PER_DAY = 1000.0

RULE_ATOMS = {
    "above": "every named measure above its value, e.g. {above: {cpk_x_uln: 1}}",
    "below": "every named measure below its value, e.g. {below: {mmt8: 142}}",
    "at_least": "every named measure at or above its value, e.g. {at_least: {tis: 20}}",
    "at_most": "every named measure at or below its value, e.g. {at_most: {haq: 0.5}}",
    "cpk_above_x_uln": "measured CPK above this multiple of the ULN",
    "cpk_above_pct_baseline": "measured CPK above this percentage of the day-0 measurement",
    "cpk_rise_pct": "measured CPK more than this percentage above the previous measurement",
    "day_at_least": "the visit is on or after this day",
    "day_before": "the visit is before this day",
    "relapse": "a clinical relapse was detected at this visit (true) or not (false)",
    "relapses_at_least": "the patient has had at least this many clinical relapses",
    "prednisone_above_mg_per_day": "current prednisone dose above this",
    "ever_normal": "CPK has been measured below the ULN since diagnosis or the last relapse",
    "inactive": "disease inactive at this visit (docs/model.md §5) (true) or not (false)",
    "entered": "the patient has entered the study (scenario `entry`) (true) or not (false)",
}


class Rule(Frozen):
    """A condition evaluated at a visit on measured values: one key per rule."""

    any: list[Rule] | None = None
    all: list[Rule] | None = None
    not_: Rule | None = Field(None, alias="not")
    above: dict[str, float] | None = None
    below: dict[str, float] | None = None
    at_least: dict[str, float] | None = None
    at_most: dict[str, float] | None = None
    cpk_above_x_uln: float | None = Field(None, ge=0)
    cpk_above_pct_baseline: float | None = Field(None, ge=0)
    cpk_rise_pct: float | None = Field(None, ge=-100)
    day_at_least: float | None = Field(None, ge=0)
    day_before: float | None = Field(None, ge=0)
    relapse: bool | None = None
    relapses_at_least: int | None = Field(None, ge=0)
    prednisone_above_mg_per_day: float | None = Field(None, ge=0)
    ever_normal: bool | None = None
    inactive: bool | None = None
    entered: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("above", "below", "at_least", "at_most")
    @classmethod
    def _known_measures(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one measure, e.g. {cpk_x_uln: 1}")
        for name, v in value.items():
            if name not in MEASURES:
                import difflib

                near = difflib.get_close_matches(name, list(MEASURES), n=1)
                hint = f"did you mean '{near[0]}'?" if near else "known: " + ", ".join(MEASURES)
                raise ValueError(f"unknown measure '{name}' ({hint})")
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(f"{name}: must be a finite number, got {v}")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> Rule:
        keys = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(keys) != 1:
            names = ", ".join(["any", "all", "not", *RULE_ATOMS])
            shown = ", ".join("not" if k == "not_" else k for k in keys) or "nothing"
            raise ValueError(f"a rule has exactly one key, one of: {names}; got {shown}")
        if keys[0] in ("any", "all") and not getattr(self, keys[0]):
            raise ValueError(f"'{keys[0]}' needs a non-empty list of rules")
        return self

    def key(self) -> str:
        for k in type(self).model_fields:
            if getattr(self, k) is not None:
                return "not" if k == "not_" else k
        raise AssertionError("unreachable: validated rules have one key")


def rule(data: Any) -> Rule:
    return Rule.model_validate(data)


# --------------------------------------------------------------------------------------
# Steroids
# --------------------------------------------------------------------------------------


class Pulse(Frozen):
    share: Probability = P(
        0.2,
        "proportion",
        f"{FAGGIOLI}: 3 of 15 patients had a methylprednisolone pulse",
    )
    # pulses are 250-1,000 mg/day; the bound refuses absurd values (a dose in micrograms)
    methylprednisolone_mg_per_day: float = P(1000.0, "mg/day", FAGGIOLI, gt=0, le=5000)
    days: int = P(3, "days", FAGGIOLI, ge=1, le=10)


class Steroid(Frozen):
    induction_mg_per_kg_per_day: float = P(
        1.0,
        "mg/kg/day prednisone",
        "prednisolone 1 mg/kg/day for 4-6 weeks (textbook excerpt, parameters.md section 5);"
        " usual practice per model brief",
        gt=0,
        le=3,
    )
    cap_mg_per_day: float = P(
        80.0, "mg/day", "model brief: ~1 mg/kg/day, cap ~80 mg", gt=0, le=_ORAL_MAX_MG_PER_DAY
    )
    induction_days: int = P(
        28,
        "days",
        "4-6 weeks (textbook excerpt, parameters.md section 5); 4 weeks chosen",
        ge=1,
    )
    round_to_mg: float = P(5.0, "mg", "assumption: doses in whole 5 mg tablets", gt=0)
    pulse: Pulse | None = Pulse()
    rescue_pulse_when: Rule | None = Field(
        default_factory=lambda: rule(
            {"all": [{"relapse": True}, {"above": {"physician_global_cm": 6}}]}
        ),
        json_schema_extra={
            "unit": "rule",
            "source": "assumption: a methylprednisolone pulse (1 g/day x 3, as at"
            " presentation in Faggioli 2015) for a severe flare: a relapse with physician"
            " global activity above 6 cm",
        },
    )


# --------------------------------------------------------------------------------------
# Taper
# --------------------------------------------------------------------------------------


class TaperStep(Frozen):
    above_mg_per_day: float = Field(ge=0)
    reduce_mg_per_day: float = Field(gt=0)
    every_days: int = Field(ge=1)


def _default_taper_steps() -> list[TaperStep]:
    return [
        TaperStep(above_mg_per_day=30.0, reduce_mg_per_day=5.0, every_days=7),
        TaperStep(above_mg_per_day=0.0, reduce_mg_per_day=5.0, every_days=14),
    ]


class RelapseResponse(Frozen):
    """What a clinic does at a clinical relapse: raise prednisone, then taper again."""

    dose_factor: float = P(2.0, "x current dose", "assumption: double the dose", ge=1)
    min_mg_per_day: float = P(20.0, "mg/day", "assumption", ge=0, le=_ORAL_MAX_MG_PER_DAY)
    hold_days: int = P(28, "days", "assumption: 4 weeks before tapering again", ge=0)


class Taper(Frozen):
    """Steps down from the induction dose whose pace follows the measured response:
    held while ``hold_when`` fires, faster (intervals x ``fast_factor``) while
    ``fast_when`` fires, escalated at a relapse; stopped from the floor by ``stop_when``.
    """

    steps: list[TaperStep] = Field(
        default_factory=_default_taper_steps,
        json_schema_extra={
            "unit": "mg/day, days",
            "source": "reduce 5 mg/week; below 25-35 mg/day, 5 mg every 2 weeks (textbook"
            " excerpt, parameters.md section 5)",
        },
        min_length=1,
    )
    floor_mg_per_day: float = P(
        5.0,
        "mg/day",
        f"{FAGGIOLI}: maintenance at 5 mg/day (no independent source)",
        ge=0,
        le=_ORAL_MAX_MG_PER_DAY,
    )
    hold_when: Rule | None = Field(
        default_factory=lambda: rule(
            {
                "any": [
                    {"all": [{"above": {"cpk_x_uln": 1.0}}, {"above": {"cpk_rise_pct": -10.0}}]},
                    {"above": {"physician_global_rise_cm": 2.0}},
                ]
            }
        ),
        json_schema_extra={
            "unit": "rule",
            "source": "assumption: hold while the disease is active and not improving: CPK"
            " above the ULN and not down by 10% since the last visit, or physician global"
            " 2 cm above its best (the model brief asks to taper when CPK is falling or"
            " normal and hold when it rises; holding also while CPK falls by less than"
            " 10% is an assumption)",
        },
    )
    fast_when: Rule | None = Field(
        default_factory=lambda: rule({"inactive": True}),
        json_schema_extra={
            "unit": "rule",
            "source": "assumption: taper faster while the disease is inactive (no shipped"
            " source gives a faster taper in remission)",
        },
    )
    fast_factor: float = P(
        0.5,
        "x step interval",
        "assumption: steps twice as often while inactive",
        gt=0,
        le=1,
    )
    stop_when: Rule | None = Field(
        None,
        json_schema_extra={
            "unit": "rule",
            "source": "none by default (Faggioli 2015 kept 5 mg/day); e.g. inactive for 6"
            " months on the floor dose (GC stopped at 9-12 months without flares,"
            " parameters.md section 5 [low-quality])",
        },
    )
    relapse: RelapseResponse = RelapseResponse()

    @field_validator("steps")
    @classmethod
    def _steps_descending(cls, steps: list[TaperStep]) -> list[TaperStep]:
        aboves = [s.above_mg_per_day for s in steps]
        if aboves != sorted(aboves, reverse=True) or len(set(aboves)) != len(aboves):
            raise ValueError(
                f"steps must be ordered by strictly decreasing above_mg_per_day, got {aboves}"
            )
        return steps


# --------------------------------------------------------------------------------------
# IVIG
# --------------------------------------------------------------------------------------


class IVIG(Frozen):
    dose_g_per_kg: float | list[float] = P(
        2.0,
        "g/kg per cycle",
        f"{FAGGIOLI}; standard dose (Wang 2012, Clin Rheumatol 31:801). A list gives the"
        " dose of each cycle in turn (the last repeats), e.g. [2, 1, 1] (Lim 2021)",
    )
    days_per_cycle: int = P(
        5,
        "days",
        f"{FAGGIOLI}: 2 g/kg in 5 days; label 2-5 days (Octagam 10%)",
        ge=1,
        le=10,
    )
    interval_days: int = P(28, "days", "every 4 weeks (Octagam 10% label, ProDERM)", ge=1)
    cycles: int = P(6, "cycles", f"{FAGGIOLI}: 6 months", ge=1, le=60)
    start_day: float | None = P(
        7.0,
        "day",
        f"assumption: {FAGGIOLI} gave IVIG 'after an initial treatment with corticosteroids';"
        " one week chosen",
        ge=0,
    )
    start_when: Rule | None = Field(
        None,
        json_schema_extra={"unit": "rule", "source": "rescue strategies (none by default)"},
    )
    start_delay_days: float = P(
        7.0,
        "days",
        "assumption: time to arrange infusions once a rescue rule fires",
        ge=0,
    )
    first_line_share: float | None = P(
        None,
        "proportion",
        "none by default (every patient first-line with start_day, or rescue with"
        " start_when): this share of patients, drawn at random, starts IVIG on start_day"
        " and the others only when start_when fires (a clinic's mix of first-line and"
        " rescue IVIG, e.g. at an infusion center)",
        ge=0.0,
        le=1.0,
    )
    stop_when: Rule | None = Field(
        None,
        json_schema_extra={
            "unit": "rule",
            "source": "none by default: e.g. stop after 3"
            " cycles in remission ({all: [{inactive: true}, {above:"
            " {ivig_cycles: 2}}]})",
        },
    )
    extend_when: Rule | None = Field(
        None,
        json_schema_extra={
            "unit": "rule",
            "source": "none by default: add a cycle while the"
            " rule fires at the visit before the planned last cycle ends,"
            " up to max_cycles (Ontario guideline: continue while effective,"
            " find the minimum effective dose)",
        },
    )
    max_cycles: int = P(
        24,
        "cycles",
        "assumption: cap on courses extended by extend_when (two years of"
        " monthly cycles); used only with extend_when",
        ge=1,
        le=60,
    )
    retreat_when: Rule | None = Field(
        None,
        json_schema_extra={
            "unit": "rule",
            "source": "none by default: a new course of `cycles` cycles when the rule"
            " fires at a visit after the last course has ended (not after an adverse-event"
            " stop), start_delay_days later, up to max_courses courses in all; e.g."
            " {relapse: true}: IVIG again at a relapse",
        },
    )
    max_courses: int = P(
        2,
        "courses",
        "assumption: at most one re-treatment course (two in all); used only with retreat_when",
        ge=1,
        le=20,
    )
    unblind_when: Rule | None = Field(
        None,
        json_schema_extra={
            "unit": "rule",
            "source": "none by default: with placebo, the"
            " rule that switches a patient to open-label IVIG, e.g. confirmed"
            " deterioration (ProDERM, parameters.md section 8)",
        },
    )
    unblind_confirm_at_next_visit: bool = P(
        False,
        "-",
        "false: the switch is made at the visit where unblind_when fires; true: the rule"
        " must fire at two visits in a row and the switch is made at the second (ProDERM's"
        " deterioration is confirmed at two consecutive visits, parameters.md section 8)",
    )
    placebo: bool = P(
        False,
        "-",
        "true: infusions are given (and counted) but carry no drug (a"
        " placebo-controlled trial arm): no IVIG grams, effect or adverse event; the"
        " infusion days are still costed",
    )

    @field_validator("dose_g_per_kg")
    @classmethod
    def _doses(cls, v: float | list[float]) -> float | list[float]:
        doses = v if isinstance(v, list) else [v]
        if not doses:
            raise ValueError("give at least one dose")
        for d in doses:
            if not 0 < d <= 4:
                raise ValueError(f"each dose must be in (0, 4] g/kg, got {d}")
        return v

    @model_validator(mode="after")
    def _one_start(self) -> IVIG:
        if self.days_per_cycle > self.interval_days:
            raise ValueError(
                f"days_per_cycle ({self.days_per_cycle}) exceeds interval_days"
                f" ({self.interval_days}): cycles would overlap"
            )
        if self.first_line_share is not None:
            if self.start_day is None:
                raise ValueError(
                    f"first_line_share ({self.first_line_share:g}) needs start_day: the day"
                    " the first-line share starts IVIG"
                )
        elif (self.start_day is None) == (self.start_when is None):
            raise ValueError(
                "give either start_day (first-line) or start_when (rescue), not both (or"
                " both with first_line_share: a share first-line, the rest by the rule)"
            )
        if self.extend_when is not None and self.cycles > self.max_cycles:
            raise ValueError(f"cycles ({self.cycles}) exceeds max_cycles ({self.max_cycles})")
        if self.retreat_when is not None and self.extend_when is not None:
            raise ValueError(
                "give extend_when (longer courses) or retreat_when (new courses), not both:"
                " a course's end would be ambiguous"
            )
        if (
            self.retreat_when is not None
            and self.stop_when is not None
            and isinstance(self.dose_g_per_kg, list)
            and len(set(self.dose_g_per_kg)) > 1
        ):
            raise ValueError(
                "a dose list with both stop_when and retreat_when: a course stopped early"
                " would start the next one in the middle of the list; give one dose, or"
                " leave out stop_when or retreat_when"
            )
        if self.cycles * self.max_courses > 120:
            raise ValueError(
                f"cycles x max_courses ({self.cycles} x {self.max_courses}) exceeds 120"
                " cycles in all"
            )
        doses = self.dose_g_per_kg
        # The doses are taken in turn, one per cycle given (the last repeats); a patient
        # gets at most `cycles` cycles, or up to max_cycles while extend_when adds them;
        # with retreat_when each course starts the list again.
        most = self.cycles if self.retreat_when is not None else self.possible_cycles()
        if isinstance(doses, list) and len(doses) > most:
            if self.extend_when is not None:
                why = f"max_cycles: {self.max_cycles}, the most extend_when can reach"
            elif self.retreat_when is not None:
                why = f"cycles: {self.cycles} a course; retreat_when starts the list again"
            else:
                why = f"cycles: {self.cycles}, and no extend_when adds any"
            raise ValueError(
                f"dose_g_per_kg lists {len(doses)} doses, but a patient gets at most {most}"
                f" cycle{'s' if most != 1 else ''} ({why}), so doses after the {_nth(most)}"
                " would never be given: shorten the list or raise"
                f" {'max_cycles' if self.extend_when is not None else 'cycles'}"
            )
        return self

    def cycle_doses(self) -> tuple[float, ...]:
        """Dose of every possible cycle (the last given repeats); with retreat_when each
        course takes the list from its start again."""
        doses = self.dose_g_per_kg if isinstance(self.dose_g_per_kg, list) else [self.dose_g_per_kg]
        course = self.cycles if self.retreat_when is not None else self.possible_cycles()
        return tuple(
            float(doses[min(i % course, len(doses) - 1)]) for i in range(self.possible_cycles())
        )

    def possible_cycles(self) -> int:
        """The most cycles a patient can get: the plan, max_cycles when extended, or
        max_courses courses of it with re-treatment."""
        if self.extend_when is not None:
            return max(self.cycles, self.max_cycles)
        if self.retreat_when is not None:
            return self.cycles * self.max_courses
        return self.cycles


class SparingPlan(Frozen):
    agent: str
    share: Probability = Field(description="proportion of patients who receive this agent")
    start_day: float = Field(ge=0)


class Regimen(Frozen):
    steroid: Steroid | None = Steroid()
    taper: Taper = Taper()
    ivig: IVIG | None = IVIG()
    sparing_agents: list[SparingPlan] = Field(default_factory=list)
    sparing_start_when: Rule | None = Field(
        None,
        json_schema_extra={
            "unit": "rule",
            "source": "none by default: a rule that starts the planned (or on-relapse) agent"
            " early, e.g. steroid dependence",
        },
    )
    sparing_stop_when: Rule | None = Field(
        None,
        json_schema_extra={
            "unit": "rule",
            "source": "none by default: a sparing agent, once started, is never stopped"
            " (assumption; 41% of Bronner 2006's good-outcome patients were still on drugs"
            " at a median 5 years); a rule that stops it for good, e.g. inactive for 6"
            " months off prednisone (its effect ends at once; not restarted: assumptions)",
        },
    )
    sparing_on_relapse: str | None = P(
        "azathioprine",
        "agent",
        "assumption: an immunosuppressant is added at a relapse if none is running"
        " (guidelines: steroids + MTX or AZA first line; Meyer 2018)",
    )


class Visits(Frozen):
    every_days: int = P(14, "days", "assumption: fortnightly labs in the first months", ge=1)
    until_day: int = P(84, "day", "assumption", ge=0)
    then_every_days: int = P(28, "days", "assumption: monthly labs afterwards", ge=1)


def _nth(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st, ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
