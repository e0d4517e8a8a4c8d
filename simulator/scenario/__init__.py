"""Scenarios: YAML in, a typed, frozen, checked :class:`Scenario` out.

``load_scenario`` reads the file (``extends:`` included), validates it with every default
filled in, applies ``--set`` overrides on top of that complete scenario (so
``population.cpk_u_per_l.mean=3000`` changes one number of a default distribution and
keeps the rest), validates again, and runs the cross-field checks that need the whole
scenario. Every problem is an :class:`~simulator.errors.InputError` naming the YAML
path, the value and, where known, the file and line.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
from collections.abc import Iterable
from typing import Any

from ..errors import InputError
from .load import (
    LineMap,
    Override,
    apply_overrides,
    deep_merge,
    error_at,
    read_scenario,
    validate,
)
from .schema import MERGED_DEFAULTS, Scenario

__all__ = ["Scenario", "load_scenario", "scenario_data", "scenario_from_dict", "scenario_sha256"]


def check_scenario(scn: Scenario, linemap: LineMap | None = None, source: str = "") -> None:
    """Checks that span several parts of the scenario; raise InputError naming the path."""
    lm = linemap or LineMap()

    def fail(path: tuple[str | int, ...], message: str) -> None:
        where, by_override = lm.blame(path)
        dotted = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
        raise error_at(f"{dotted}: {message}", dotted, where, by_override, source, source or None)

    agents = scn.disease.sparing_agents
    known = ", ".join(sorted(agents))
    for i, plan in enumerate(scn.regimen.sparing_agents):
        if plan.agent not in agents:
            fail(
                ("regimen", "sparing_agents", i, "agent"),
                f"unknown sparing agent '{plan.agent}'; known: {known}"
                " (or define it under disease.sparing_agents)",
            )
    relapse_agent = scn.regimen.sparing_on_relapse
    if relapse_agent is not None and relapse_agent not in agents:
        fail(
            ("regimen", "sparing_on_relapse"),
            f"unknown sparing agent '{relapse_agent}'; known: {known}",
        )
    total = sum(p.share for p in scn.regimen.sparing_agents)
    if total > 1 + 1e-9:
        fail(
            ("regimen", "sparing_agents"),
            f"shares add up to {total:g}; each patient receives at most one planned agent,"
            " so they must add up to 1 or less",
        )
    floor = scn.regimen.taper.floor_mg_per_day
    lowest, how = smallest_induction_dose(scn) if scn.regimen.steroid else (math.inf, "")
    if floor > lowest:
        fail(
            ("regimen", "taper", "floor_mg_per_day"),
            f"the taper floor ({floor:g} mg/day) is above {how}; the taper would raise"
            " the induction dose instead of tapering. Lower the floor, or raise the"
            " induction dose",
        )
    ivig = scn.regimen.ivig
    if ivig is not None and ivig.start_day is not None and ivig.start_day > scn.horizon_days:
        fail(
            ("regimen", "ivig", "start_day"),
            f"IVIG would start on day {ivig.start_day:g}, after the horizon"
            f" (horizon_days: {scn.horizon_days})",
        )
    center = scn.center
    if center is not None and center.policy.priority == "rescue_first":
        mixed = (
            ivig is not None
            and ivig.first_line_share is not None
            and 0.0 < ivig.first_line_share < 1.0
            and ivig.start_when is not None
        )
        if not mixed:
            fail(
                ("center", "policy", "priority"),
                "rescue_first serves patients on rescue IVIG before first-line ones, but"
                " this scenario has only one kind, so it would change nothing: give"
                " regimen.ivig.first_line_share (between 0 and 1) with start_day and"
                " start_when for a mix, or use priority fifo or new_first",
            )
    # A scenario may add adverse events of its own under safety.ivig / safety.steroid; a
    # new name one or two letters from a packaged one is a typo, which would otherwise
    # add an event and leave the packaged one at its defaults.
    defaults = Scenario().safety
    for kind in ("ivig", "steroid"):
        packaged = list(getattr(defaults, kind))
        for name in getattr(scn.safety, kind):
            if name in packaged:
                continue
            close = difflib.get_close_matches(name, packaged, n=1, cutoff=0.85)
            if close:
                fail(
                    ("safety", kind, name),
                    f"unknown adverse event '{name}': did you mean '{close[0]}'? (a new"
                    f" event of your own needs a name unlike the packaged ones:"
                    f" {', '.join(packaged)})",
                )
    # Names of the packaged adverse events stay valid even where a scenario drops them
    # from safety (their prices then never apply); anything else is a typo.
    ae_names = (
        set(scn.safety.ivig) | set(scn.safety.steroid) | set(defaults.ivig) | set(defaults.steroid)
    )
    econ = scn.economics
    for key in ("adverse_event_cost", "adverse_event_qaly_loss"):
        for name in getattr(econ, key):
            if name not in ae_names:
                fail(
                    ("economics", key, name),
                    f"unknown adverse event '{name}'; known: {', '.join(sorted(ae_names))}",
                )
    for name in econ.prices.sparing_agent_per_day:
        if name not in agents:
            fail(
                ("economics", "prices", "sparing_agent_per_day", name),
                f"unknown sparing agent '{name}'; known: {known}",
            )
    for i, step in enumerate(scn.regimen.taper.steps):
        if step.above_mg_per_day < floor and i < len(scn.regimen.taper.steps) - 1:
            fail(
                ("regimen", "taper", "steps", i, "above_mg_per_day"),
                f"{step.above_mg_per_day:g} is below the floor ({floor:g}); only the last"
                " step may reach down to the floor",
            )


def smallest_induction_dose(scn: Scenario) -> tuple[float, str]:
    """The smallest induction dose a patient could get, and how it was found.

    Induction is min(cap, mg/kg x weight), rounded to whole tablets. With a positive lower
    bound on the weight of every sex that occurs (``population.weight_kg_*.low``), the
    lightest patient's dose is the bound; otherwise the dose cannot be bounded from below
    and the cap (the largest induction dose) is used, which the message says.
    """
    st = scn.regimen.steroid
    pop = scn.population
    dists = ([pop.weight_kg_female] if pop.female > 0 else []) + (
        [pop.weight_kg_male] if pop.female < 1 else []
    )
    lightest = min(d.min_value() for d in dists)
    cap = f"the induction dose cap regimen.steroid.cap_mg_per_day ({st.cap_mg_per_day:g} mg/day)"
    if lightest <= 0:
        return st.cap_mg_per_day, (
            f"{cap} (the weights have no lower bound, so the cap is the bound used; give"
            " population.weight_kg_female/male a low to check against the lightest patient)"
        )
    raw = min(st.cap_mg_per_day, st.induction_mg_per_kg_per_day * lightest)
    dose = math.floor(raw / st.round_to_mg + 0.5) * st.round_to_mg
    if raw >= st.cap_mg_per_day:
        return dose, cap
    return dose, (
        f"the smallest induction dose, {dose:g} mg/day (regimen.steroid."
        f"induction_mg_per_kg_per_day {st.induction_mg_per_kg_per_day:g} x the lightest"
        f" weight {lightest:g} kg, rounded to {st.round_to_mg:g} mg)"
    )


_DEFAULT_DATA: dict[str, Any] = {}


def merge_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each block at a path of ``MERGED_DEFAULTS`` merged over the default
    there (mappings key by key, as ``extends:`` merges; anything else replaces), so that
    a partial block keeps the default entries and values it does not name. ``data`` is
    not changed; a block that is not a mapping is left for validation to report."""
    if not _DEFAULT_DATA:
        _DEFAULT_DATA.update(Scenario().model_dump(mode="python", by_alias=True))
    out = dict(data)
    for path in MERGED_DEFAULTS:
        parents: list[dict[str, Any]] = [out]
        for key in path[:-1]:
            child = parents[-1].get(key)
            if not isinstance(child, dict):
                break
            parents.append(dict(child))
        else:
            given = parents[-1].get(path[-1])
            if not isinstance(given, dict):
                continue
            default: Any = _DEFAULT_DATA
            for key in path:
                default = default[key]
            parents[-1][path[-1]] = deep_merge(copy.deepcopy(default), given)
            for i in range(len(path) - 1, 0, -1):  # copies back up to the top
                parents[i - 1][path[i - 1]] = parents[i]
    return out


def load_scenario(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> Scenario:
    """Read, validate and check a scenario file; apply ``--set`` overrides."""
    source = os.fspath(path)
    data, linemap = read_scenario(path)
    scn = validate(merge_defaults(data), Scenario, linemap, source)
    overrides = list(overrides)
    if overrides:
        full = scn.model_dump(mode="python", by_alias=True)
        try:
            full = apply_overrides(full, overrides, Scenario, linemap)
        except InputError as err:
            if err.file is not None:
                if any(isinstance(o, Override) and o.file == err.file for o in overrides):
                    # an entry of a --params file: name the scenario it was applied to
                    raise InputError(
                        f"{err.message} [applied to {source}]",
                        path=err.path,
                        file=err.file,
                        line=err.line,
                    ) from None
                raise
            # name the scenario: with several files (compare) it says which one
            raise InputError(
                err.message, path=err.path, file=source, problems=err.problems
            ) from None
        scn = validate(full, Scenario, linemap, source)
    check_scenario(scn, linemap, source)
    return scn


def scenario_from_dict(data: dict[str, Any], overrides: Iterable[str] = ()) -> Scenario:
    """The same as :func:`load_scenario` for a mapping built in Python."""
    linemap = LineMap()
    scn = validate(
        merge_defaults(data) if isinstance(data, dict) else data, Scenario, linemap, "<dict>"
    )
    overrides = list(overrides)
    if overrides:
        full = apply_overrides(
            scn.model_dump(mode="python", by_alias=True), overrides, Scenario, linemap
        )
        scn = validate(full, Scenario, linemap, "<dict>")
    check_scenario(scn, linemap, "<dict>")
    return scn


# Optional keys added to the schema after scenarios were hashed (checkpoints, recorded
# calibration inputs): left out of the data while unset, so old hashes stay valid.
LATER_OPTIONAL = (("center",), ("regimen", "ivig", "first_line_share"))


def scenario_data(scn: Scenario) -> dict[str, Any]:
    """The resolved scenario as JSON data, without the optional keys added later that it
    does not use (``LATER_OPTIONAL``), so that adding them changed no existing hash."""
    data = scn.model_dump(mode="json", by_alias=True)
    for path in LATER_OPTIONAL:
        parent: Any = data
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and parent.get(path[-1], 0) is None:
            del parent[path[-1]]
    return data


def scenario_sha256(scn: Scenario) -> str:
    """Hash of the complete resolved scenario (defaults included), for provenance.

    Optional blocks added later (``center``) are left out when absent, so a scenario
    that does not use them keeps the hash it had before they existed (checkpoints and
    recorded calibration inputs stay valid)."""
    text = json.dumps(scenario_data(scn), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
