"""Limits on what users may ask for, defined once for the YAML schema, the CLI and the API.

Every limit here is documented in README.md ("Limits"). The checks raise
:class:`~simulator.errors.InputError` (not ValueError), the same error the CLI turns into
exit status 2, so ``run(scn, seed=2**70)`` fails the same way as ``--seed 2**70``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import InputError

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_LISTED_PROBLEMS",
    "MAX_PATIENTS",
    "MAX_SWEEP_POINTS",
    "MAX_SWEEP_SIMULATIONS",
    "MIN_TRUNCATED_MASS",
    "SEED_BOUND",
    "check_patients",
    "check_seed",
]

MAX_PATIENTS = 100_000_000
"""Largest number of virtual patients in one run (YAML ``patients``, ``--patients``, API)."""

SEED_BOUND = 2**63
"""Seeds are integers in [0, SEED_BOUND); nothing is ever wrapped modulo 2^64."""

MAX_INPUT_BYTES = 1024 * 1024
"""Largest scenario or sweep file read (the main file, ``extends:``, ``base:``...)."""

MAX_LISTED_PROBLEMS = 20
"""A validation message lists at most this many problems, then "and N more problems"."""

MIN_TRUNCATED_MASS = 1e-6
"""Truncation bounds must hold at least this share of the parent distribution's mass."""

MAX_SWEEP_POINTS = 10_000
"""Sweeps with more points than this need ``--yes``."""

MAX_SWEEP_SIMULATIONS = 10**9
"""Sweeps with more patient simulations (points x patients x strategies) need ``--yes``."""


def _whole_number(value: Any, what: str, low: int, high: int, high_text: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, float | numbers.Real) and not isinstance(value, numbers.Integral):
        if not math.isfinite(value):
            raise InputError(f"{what} must be a finite number, got {value!r}")
        raise InputError(f"{what} must be a whole number, got {value!r}")
    n = int(value)
    if not low <= n <= high:
        raise InputError(f"{what} must be in [{low}, {high_text}], got {n}")
    return n


def check_seed(value: Any, what: str = "seed") -> int:
    """``value`` as a seed: an integer in [0, 2^63), else InputError (never wrapped)."""
    return _whole_number(value, what, 0, SEED_BOUND - 1, "2^63 - 1")


def check_patients(value: Any, what: str = "patients") -> int:
    """``value`` as a number of patients: an integer in [1, MAX_PATIENTS], else InputError."""
    return _whole_number(value, what, 1, MAX_PATIENTS, f"{MAX_PATIENTS:,}")
