"""When a process runs numba's compiled loops (``simulator._loops``) instead of numpy.

Both paths give the same bits (tests/test_fmath.py, tests/test_streams.py), so the choice
is only about speed. Loading numba and the cached loops costs ~0.4 s a process (1.6 s the
first time, when they compile), and an array call made by numpy instead costs ~10 us
more: by default a process starts on numpy and loads the loops once it has made
``SWITCH_AFTER_CALLS`` calls, by which time numpy has cost what loading would have (a
1,000-patient cohort makes ~5,000 calls, so short runs never pay for numba; PSA sweeps
and calibrations switch after their first cohorts). ``SIMULATOR_JIT=1`` loads them at
the first call, ``SIMULATOR_JIT=0`` never; without numba (the ``fast`` extra) numpy
does the work.
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["SWITCH_AFTER_CALLS", "available", "loops", "mode"]

SWITCH_AFTER_CALLS = 50_000


def mode() -> str:
    """``SIMULATOR_JIT``: "0" (never), "1" (from the first call) or "auto" (the default,
    any other value)."""
    value = os.environ.get("SIMULATOR_JIT", "").strip()
    return value if value in ("0", "1") else "auto"


class Dispatch:
    """This process's choice: numpy until ``SWITCH_AFTER_CALLS`` calls, then numba's
    loops if numba loads. Switching within a run changes no result (same bits), and
    threads racing on the count only move the moment it happens."""

    def __init__(self) -> None:
        self.calls = 0
        self.loops: Any = None
        self.settled = False

    def compiled(self) -> Any:
        if self.settled:
            return self.loops
        how = mode()
        if how == "0":
            return None
        self.calls += 1
        if how == "auto" and self.calls < SWITCH_AFTER_CALLS:
            return None
        self.loops, self.settled = _load(), True
        return self.loops


def _load() -> Any:
    try:
        from . import _loops
    except ImportError:
        return None
    except Exception as exc:  # a broken numba/llvmlite install: numpy is as exact
        logging.getLogger(__name__).warning("numba unusable (%s); using numpy", exc)
        return None
    return _loops


_DISPATCH = Dispatch()


def loops() -> Any:
    """The compiled loops' module when this process uses them now, else None."""
    return _DISPATCH.compiled()


def available() -> bool:
    """Whether this process can use the compiled loops (numba loads and
    ``SIMULATOR_JIT`` is not 0); loads them if so."""
    if mode() == "0":
        return False
    return _load() is not None
