"""Streaming CSV writers for patient-level and event-level output, and the formatting the
reports share."""

from __future__ import annotations

import csv
import math
import os
from typing import IO, Any

import numpy as np

from ..kernel.events import EVENT_NAMES, FLAG_NAMES, IVIG_AE_SHIFT, Event
from ..kernel.plan import Plan
from ..records import EventLog

__all__ = [
    "WARN_CSS",
    "EventCSV",
    "PatientCSV",
    "format_estimate",
    "format_money_difference",
    "format_value",
]

#: the style of a warning paragraph (the extrapolation note) in the run and comparison
#: reports
WARN_CSS = ".warn{border-left:4px solid #D55E00;padding-left:8px}"


def format_estimate(x: Any, unit: str) -> str:
    """An estimate for people: percent for proportions, thousands separators, 3 digits."""
    if x is None:
        return "n/a"
    if unit == "proportion":
        pct = 100 * x
        if pct != 0 and abs(pct) < 0.05:  # not "0.0%" or "-0.0%": sign and size kept
            return f"{pct:.1g}%"
        return f"{pct:.1f}%"
    if isinstance(x, int):
        return str(x)
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def format_difference(x: Any, unit: str) -> str:
    """A signed difference for a table: proportions in percentage points."""
    if x is None:
        return "n/a"
    if unit == "proportion":
        pts = 100 * x
        # a difference that rounds to 0.0 keeps its sign and size (a CI bound of
        # -0.0002 printed as "-0.0" reads as zero, or as a negative zero)
        if pts != 0 and abs(pts) < 0.05:
            return f"{pts:+.1g} pts"
        return f"{pts:+.1f} pts"
    return f"{x:+,.0f}" if abs(x) >= 1000 else f"{x:+.3g}"


def format_money_difference(d: dict[str, Any]) -> str:
    """A paired difference in money with its 95% CI, "+1,234 (-567 to +3,035)"; the
    interval "n/a" where there is none (a single patient: no standard error)."""
    lo, hi = d["ci95"]
    ci = "n/a" if lo is None or hi is None else f"{lo:+,.0f} to {hi:+,.0f}"
    return f"{d['mean_difference']:+,.0f} ({ci})"


def format_value(value: Any) -> str:
    """Shortest round-trip text for floats, plain integers, empty for missing."""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, str):
        return value
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        return ""
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class PatientCSV:
    """patients.csv: one row per patient, written chunk by chunk in patient order."""

    def __init__(self, path: str | os.PathLike[str], plan: Plan) -> None:
        self._fh: IO[str] = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._fh, lineterminator="\n")
        self._plan = plan
        self._header: list[str] | None = None

    def write(self, table: dict[str, np.ndarray]) -> None:
        if self._header is None:
            self._header = list(table)
            self._writer.writerow(self._header)
        agents = self._plan.agents
        cols = []
        for name in self._header:
            col = table[name]
            if name == "sparing_agent":
                cols.append([agents[int(a)] if a >= 0 else "" for a in col])
            else:
                cols.append([format_value(v) for v in col.tolist()])
        self._writer.writerows(zip(*cols, strict=True))

    def close(self) -> None:
        self._fh.close()


class EventCSV:
    """events.csv: every event of every patient, with the values seen and the decision."""

    HEADER = (
        "patient",
        "day",
        "event",
        "prednisone_mg_per_day",
        "cpk_u_per_l",
        "myoglobin_ng_per_ml",
        "mmt8",
        "ivig_g",
        "decision",
        "adverse_events",
    )

    def __init__(self, path: str | os.PathLike[str], plan: Plan) -> None:
        self._fh: IO[str] = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._fh, lineterminator="\n")
        self._writer.writerow(self.HEADER)
        self._plan = plan
        self._steroid_aes = [ae.name for ae in plan.steroid_aes]
        self._ivig_aes = [ae.name for ae in plan.ivig_aes]

    def _decision(self, flags: int) -> str:
        return ";".join(name for name, bit in FLAG_NAMES.items() if flags & bit)

    def _ivig_ae(self, flags: int) -> str:
        return ";".join(
            n for j, n in enumerate(self._ivig_aes) if flags & (1 << (IVIG_AE_SHIFT + j))
        )

    def write(self, table: dict[str, np.ndarray], log: EventLog) -> None:
        kinds = log.kind.tolist()
        flags = log.flags.tolist()
        values = log.value.tolist()
        rows: list[tuple[Any, ...]] = []
        for i, (pid, day, kind, pred, cpk, myo) in enumerate(
            zip(
                log.patient.tolist(),
                log.day.tolist(),
                kinds,
                log.prednisone.tolist(),
                log.cpk.tolist(),
                log.myoglobin.tolist(),
                strict=True,
            )
        ):
            name = EVENT_NAMES[kind]
            rows.append(
                (
                    (pid, day, kind),
                    pid,
                    format_value(day),
                    name,
                    format_value(pred),
                    format_value(cpk),
                    format_value(myo),
                    format_value(values[i]) if name == "visit" else "",
                    format_value(values[i]) if name == "infusion" else "",
                    self._decision(flags[i]),
                    self._ivig_ae(flags[i]) if name == "infusion" else "",
                )
            )
        patients = table["patient"]
        for ae in self._steroid_aes:
            days = table[f"ae_{ae}_day"]
            for pid, day in zip(patients.tolist(), days.tolist(), strict=True):
                if not math.isnan(day):
                    rows.append(
                        (
                            # after the other events of that instant, before a death
                            # (a fatal infection is listed before the death it causes)
                            (pid, day, Event.DEATH - 0.5),
                            pid,
                            format_value(day),
                            "adverse_event",
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                            ae,
                        )
                    )
        rows.sort(key=lambda r: r[0])
        self._writer.writerows(r[1:] for r in rows)

    def close(self) -> None:
        self._fh.close()
