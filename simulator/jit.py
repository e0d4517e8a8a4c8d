"""When a process runs numba's compiled loops (``simulator._loops``) instead of numpy.

Both paths give the same bits (tests/test_fmath.py, tests/test_streams.py,
tests/test_engines.py), so the choice is only about speed. Loading numba and the cached
loops costs ~0.4 s a process (1.6 s more the first time, when they compile), and each
array call made by numpy instead costs about 8 us plus 2.5 ns a value more (measured for
exp: ~25 numpy operations against one compiled loop). By default a process starts on
numpy, adds up that estimated loss call by call, and loads the loops once it reaches
``SWITCH_AFTER_SECONDS`` (the rent-or-buy rule: it never pays more than twice the best
choice in hindsight). A short run never loads numba; a PSA worker loads it during its
first 1,000-patient cohort, a large run at its first 10,000-patient chunk.
``SIMULATOR_JIT=1`` loads the loops at the first call, ``SIMULATOR_JIT=0`` never; without
numba (the ``fast`` extra) numpy does the work.
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["SWITCH_AFTER_SECONDS", "available", "loops", "loops_for", "mode"]

SWITCH_AFTER_SECONDS = 0.4
_PER_CALL_S = 8e-6  # what a numpy call costs more than a compiled one
_PER_VALUE_S = 2.5e-9


def mode() -> str:
    """``SIMULATOR_JIT``: "0" (never), "1" (from the first call) or "auto" (the default,
    any other value)."""
    value = os.environ.get("SIMULATOR_JIT", "").strip()
    return value if value in ("0", "1") else "auto"


class Dispatch:
    """This process's choice: numpy until the time it has lost to numpy reaches
    ``SWITCH_AFTER_SECONDS``, then numba's loops if numba loads. Switching within a run
    changes no result (same bits), and threads racing on the sum only move the moment."""

    def __init__(self) -> None:
        self.lost_s = 0.0
        self.loops: Any = None
        self.settled = False

    def compiled(self, size: int, calls: int = 1, seconds: float | None = None) -> Any:
        if self.settled:
            return self.loops
        how = mode()
        if how == "0":
            return None
        self.lost_s += calls * (_PER_CALL_S + _PER_VALUE_S * size) if seconds is None else seconds
        if how == "auto" and self.lost_s < SWITCH_AFTER_SECONDS:
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


def loops(size: int, calls: int = 1) -> Any:
    """The compiled loops' module when this process uses them now (for work that numpy
    does in ``calls`` array calls over ``size`` values), else None."""
    return _DISPATCH.compiled(size, calls)


def loops_for(seconds: float) -> Any:
    """:func:`loops`, for work that numpy does in about ``seconds`` more than the loops."""
    return _DISPATCH.compiled(0, 0, seconds)


def available() -> bool:
    """Whether this process can use the compiled loops (numba loads and
    ``SIMULATOR_JIT`` is not 0); loads them if so."""
    if mode() == "0":
        return False
    return _load() is not None
