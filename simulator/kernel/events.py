"""Events, their fixed order at the same instant, and the decision flags they record.

Events of one patient that fall on the same day run in the order of ``Event`` (lower
first):

    PULSE_END      methylprednisolone pulse days are over: the oral dose (re)starts
    SPARING_ONSET  a steroid-sparing agent started earlier begins to act
    FLARE          a flare raises the fading disease drive (seen only through later labs)
    VISIT          labs and core set measured, then decisions on them, in this order:
                   clinical relapse -> escalate (and a rescue pulse if its rule fires);
                   taper hold / resume / fast pace / stop; sparing agent; rescue IVIG;
                   IVIG stop, extension or a new course
    TAPER          the next step down of prednisone (unless held)
    INFUSION       one IVIG infusion day (after that day's blood draw, as in clinic)
    DEATH          the patient dies (nothing happens after it)
    END            horizon reached (or the patient has died)

So a visit on an infusion day sees the pre-infusion values, and a visit on a taper day
can hold that day's step.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = ["EVENT_NAMES", "FLAG_NAMES", "IVIG_AE_SHIFT", "Event", "Flag"]


class Event(IntEnum):
    PULSE_END = 0
    SPARING_ONSET = 1
    FLARE = 2
    VISIT = 3
    TAPER = 4
    INFUSION = 5
    DEATH = 6
    END = 7


EVENT_NAMES = tuple(e.name.lower() for e in Event)


class Flag(IntFlag):
    """What an event found or decided (a bit mask recorded with every event)."""

    CPK_NORMAL = 1
    FIRST_NORMAL = 2
    RELAPSE = 4
    ESCALATE = 8
    TAPER_HOLD = 16
    TAPER_RESUME = 32
    SPARING_START = 64
    RESCUE_IVIG = 128
    TAPER_STEP = 256
    IVIG_STOPPED = 512
    DOSE_CHANGE = 1024
    SPARING_ONSET = 2048
    FLARE = 4096
    INACTIVE = 8192
    RESCUE_PULSE = 16384
    TAPER_FAST = 32768
    STEROID_STOP = 65536
    IVIG_RULE_STOP = 131072
    IVIG_EXTEND = 262144
    BIOCHEMICAL_RELAPSE = 524288
    ENTRY = 1048576
    UNBLIND = 2097152
    DEATH = 4194304
    SPARING_STOP = 8388608  # a steroid-sparing agent stopped by regimen.sparing_stop_when
    # a new IVIG course started by regimen.ivig.retreat_when (above the bits of the IVIG
    # adverse events, which start at IVIG_AE_SHIFT)
    IVIG_RETREAT = 1 << 39
    # set by the center engine (engines/center.py) on infusion events, above the bits
    # of the IVIG adverse events
    CENTER_CYCLE_START = 1 << 40
    CENTER_DELAYED = 1 << 41
    CENTER_REDUCED = 1 << 42
    CENTER_SKIPPED = 1 << 43


FLAG_NAMES = {name.lower(): int(f) for name, f in Flag.__members__.items()}

# Bits IVIG_AE_SHIFT + j: IVIG adverse event type j happened at this infusion.
IVIG_AE_SHIFT = 24
