"""Sensitivity sweeps: one-way (tornado), grids, PSA, and global (Sobol', Morris).

A sweep is a list of points; a point is a set of overrides (``--set`` paths and values)
applied to the base scenario, or to every strategy. Every point runs the same patient
ids with the same seed (common random numbers), so differences between points come from
the parameters, not from sampling noise; each point still reports its Monte Carlo
standard error next to every outcome. Designs and analyses are separate from the
simulation (``points`` / ``analyse`` take any evaluator), so the global methods are
tested on functions with known indices.

Each design is a module of ``simulator/designs`` (points, analysis, figures): one-way,
grid, Sobol' and Morris (SALib, Herman & Usher 2017) and PSA (inverse-CDF draws with an
optional Gaussian copula; CEAC, CEAF, EVPI and EVPPI by a generalised additive
metamodel, Strong, Oakley & Brennan 2014). This module plans a sweep (checks everything
before anything runs), evaluates points through the runner, and keeps finished points
in a resumable checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from ._version import __version__
from .designs import DESIGNS, Point, analyse, module_for, points_of, psa_analysis, salib_problem
from .errors import InputError
from .kernel.population import ppf
from .recent import Recent
from .runner import Reducer
from .scenario import Scenario, scenario_sha256
from .scenario.load import LineMap, apply_overrides, validate
from .scenario.sweep_schema import PSA, Grid, Morris, OneWay, Sobol, SweepFile
from .store import PointStore, canonical

__all__ = [
    "DESIGNS",
    "Point",
    "SweepPlan",
    "analyse",
    "evaluate_point",
    "plan_sweep",
    "points_of",
    "psa_analysis",
    "salib_problem",
]

log = logging.getLogger(__name__)

Evaluator = Callable[[Point], dict[str, float]]


# --------------------------------------------------------------------------------------
# Values at a path
# --------------------------------------------------------------------------------------


def _get(data: Any, path: str) -> Any:
    cur = data
    for part in _split(path):
        cur = cur[part]
    return cur


def _split(path: str) -> list[str | int]:
    out: list[str | int] = []
    for seg in path.split("."):
        while "[" in seg:
            name, rest = seg.split("[", 1)
            if name:
                out.append(name)
            idx, seg = rest.split("]", 1)
            out.append(int(idx))
        if seg:
            out.append(int(seg) if seg.isdigit() else seg)
    return out


def _fields(model: BaseModel) -> dict[str, Any]:
    """A model's fields by their names in a scenario file (aliases), values as they are."""
    return {(f.alias or name): getattr(model, name) for name, f in type(model).model_fields.items()}


def _opened(scn: Scenario, point: Point) -> dict[str, Any]:
    """The scenario as a dict for ``apply_overrides``, opened (as dicts and lists) only
    along the point's paths: every block off those paths stays the validated model it
    is, which validation accepts as it is (pydantic does not validate a model instance
    again), so a point costs the blocks it changes, not the whole scenario
    (``with_overrides`` 3.5 -> 0.7 ms a point of the shipped PSA). The scenario
    validated from it equals the one validated from the whole dump
    (``tests/test_point_overrides.py``)."""
    data = _fields(scn)
    for path in point:
        try:
            segs = _split(path)
        except ValueError:
            continue  # a malformed path: apply_overrides reports it
        cur: Any = data
        for seg in segs[:-1]:
            if isinstance(cur, dict):
                key: Any = seg if seg in cur else str(seg)  # "a.0" of a mapping: key "0"
                if key not in cur:
                    break
            elif not (isinstance(cur, list) and isinstance(seg, int) and seg < len(cur)):
                break
            else:
                key = seg
            value = cur[key]
            if isinstance(value, BaseModel):
                value = _fields(value)
            elif isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, list | tuple):
                value = list(value)
            else:
                break  # null or a number: apply_overrides says what is wrong
            cur[key] = value
            cur = value
    return data


def with_overrides(scn: Scenario, point: Point, where: str = "sweep") -> Scenario:
    """The scenario with the point's values set (the same checks as --set). A problem is
    reported against ``where`` (the sweep, calibration or posterior file), not as coming
    from --set, which the user did not give."""
    if not point:
        return scn
    sets = [f"{path}={json.dumps(value)}" for path, value in point.items()]
    lm = LineMap()  # stays empty: the values are the point's, not from a file or --set
    data = apply_overrides(_opened(scn, point), sets, Scenario)
    from .scenario import check_scenario

    new = validate(data, Scenario, lm, where)
    check_scenario(new, lm, where)
    return new


# --------------------------------------------------------------------------------------
# Designs -> points
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# Planning: load, check everything before anything runs
# --------------------------------------------------------------------------------------


@dataclass
class SweepPlan:
    spec: SweepFile
    source: Path
    text_sha256: str
    arms: list[str]
    scenarios: list[Scenario]
    seed: int
    points: list[Point]
    base_values: dict[str, Any]
    output_keys: list[str]
    applies: dict[str, list[int]]

    @property
    def parameter_names(self) -> list[str]:
        """The swept parameters: the design's, then a PSA posterior's columns."""
        names = list(self.spec.design.parameters)
        extra = [n for p in self.points[:1] for n in p if n not in names]
        return names + extra

    def fingerprint(self) -> str:
        """Identity of the sweep: file, resolved scenarios, version, patients, seed."""
        h = hashlib.sha256()
        for part in (
            self.text_sha256,
            __version__,
            str(self.spec.patients),
            str(self.seed),
            *[scenario_sha256(s) for s in self.scenarios],
        ):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()


def point_count(design: Any) -> int:
    """How many points a design has, without making them."""
    k = len(design.parameters)
    if isinstance(design, OneWay):
        return 1 + sum(len(spec.points()) for spec in design.parameters.values())
    if isinstance(design, Grid):
        return math.prod(len(v) for v in design.parameters.values())
    if isinstance(design, PSA):
        return design.draws
    if isinstance(design, Sobol):
        return design.n * (2 * k + 2 if design.second_order else k + 2)
    return design.trajectories * (k + 1)


def check_size(spec: SweepFile, source: str, yes: bool) -> None:
    """Refuse (unless ``yes``) a sweep above MAX_SWEEP_POINTS points or
    MAX_SWEEP_SIMULATIONS patient simulations (points x patients x strategies)."""
    from .limits import MAX_SWEEP_POINTS, MAX_SWEEP_SIMULATIONS

    points = point_count(spec.design)
    arms = 1 if spec.strategies is None else len(spec.strategies)
    sims = points * spec.patients * arms
    if yes or (points <= MAX_SWEEP_POINTS and sims <= MAX_SWEEP_SIMULATIONS):
        return
    raise InputError(
        f"design: this sweep has {points:,} points x {spec.patients:,} patients x {arms}"
        f" strateg{'y' if arms == 1 else 'ies'} = {sims:,} patient simulations, above the"
        f" limits of {MAX_SWEEP_POINTS:,} points and {MAX_SWEEP_SIMULATIONS:,} patient"
        " simulations; run again with --yes to go ahead anyway (plan_sweep(..., yes=True)"
        " in Python), or make the design or patients smaller",
        file=source,
    )


def plan_sweep(
    path: str | os.PathLike[str],
    *,
    yes: bool = False,
    patients: int | None = None,
    draws: int | None = None,
    sets: Sequence[str] = (),
) -> SweepPlan:
    """Read and check a sweep file; every problem is an InputError before anything runs.

    A sweep above the size limits of :func:`check_size` needs ``yes=True`` (``--yes``).
    ``patients`` and ``draws`` replace the file's values (``--patients``, ``--draws``: a
    PSA only); ``sets`` (``--set PATH=VALUE``) apply to every strategy's scenario. All of
    them are part of the sweep's identity, so a resume never mixes points of two sizes.
    """
    from .outcomes import metric_specs
    from .runner import _plan_for
    from .scenario import load_scenario
    from .scenario.load import check_named_file, read_scenario, warn_if_outside

    path = Path(path)
    data, linemap = read_scenario(path, what="sweep file")
    if patients is not None:
        data["patients"] = patients
    if draws is not None:
        design_data = data.get("design")
        if not isinstance(design_data, dict) or design_data.get("type") != "psa":
            kind = design_data.get("type") if isinstance(design_data, dict) else None
            raise InputError(
                f"--draws {draws}: only a psa design has draws (this design is {kind!r})",
                file=str(path),
                line=linemap.line_for(("design",)),
            )
        design_data["draws"] = draws
    spec = validate(data, SweepFile, linemap, str(path))
    _refuse_overridden(spec, sets, path, linemap)
    check_strategy_names(spec, str(path), linemap, figures=False)
    check_size(spec, str(path), yes)
    text = path.read_bytes()
    here = path.parent
    if spec.base is not None:
        arms, files = ["base"], [spec.base]
    else:
        assert spec.strategies is not None
        arms, files = list(spec.strategies), list(spec.strategies.values())
    scns = []
    for arm, f in zip(arms, files, strict=True):
        target = here / Path(f).expanduser()
        # missing, a directory, a FIFO, too large: the sweep file, line and YAML path
        check_named_file(
            target,
            str(f),
            what="scenario file",
            referrer=path,
            loc=("base",) if spec.base is not None else ("strategies", arm),
            linemap=linemap,
        )
        warn_if_outside(
            target, path, f"{path}: " + ("base" if spec.base is not None else f"strategies.{arm}")
        )
        scns.append(load_scenario(target, list(sets)))
    if spec.base is not None:
        arms = [scns[0].name]
    else:
        from .comparison import check_same_patients

        try:
            check_same_patients(scns, arms, spec.seed is not None, False, "sweep")
        except InputError as err:
            raise InputError(
                f"strategies: {err.message}",
                file=str(path),
                line=linemap.line_for(("strategies",)),
                problems=err.problems,
            ) from None
    seed = spec.seed if spec.seed is not None else scns[0].seed
    known = [m.name for m in metric_specs(_plan_for(scns[0]))]
    if scns[0].center is not None:
        from .center_stats import CENTER_METRICS

        known += list(CENTER_METRICS)
        from .runner import choose_engine

        try:
            choose_engine(scns[0], spec.engine)
        except ValueError as err:
            raise InputError(
                f"engine: {err}", file=str(path), line=linemap.line_for(("engine",))
            ) from None
    for i, name in enumerate(spec.outcomes):
        if name not in known:
            import difflib

            near = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f"; known: {', '.join(known)}"
            raise InputError(
                f"outcomes[{i}]: unknown outcome '{name}'{hint}",
                file=str(path),
                line=linemap.line_for(("outcomes", i)),
            )
    design = spec.design
    if isinstance(design, PSA) and spec.strategies is None:
        raise InputError(
            "design.type psa: give strategies (at least two) to compare costs"
            " and QALYs at every draw",
            file=str(path),
            line=linemap.line_for(("design",)),
        )
    base_values, applies = _check_parameters(spec, scns, arms, path, linemap)
    pts = points_of(design, seed, base_values)
    _check_draws(spec, scns, arms, path, linemap, pts, applies)
    posterior_sha = b""
    if isinstance(design, PSA) and design.from_posterior is not None:
        posterior_sha = _add_posterior(
            design, path, linemap, scns, arms, seed, pts, base_values, applies
        )
        # a posterior column set by --set/--params would be replaced at every draw, as a
        # design parameter would (_refuse_overridden)
        hit = _overriding_set([n for n in applies if n not in design.parameters], sets)
        if hit is not None:
            name, source = hit
            raise InputError(
                f"design.from_posterior: {source} sets {name}, a column of"
                f" {design.from_posterior}, which every draw takes from the posterior, so"
                " the value would be replaced (it would have no effect). Leave it out of"
                " --params/--set, or leave the column out of the posterior",
                file=str(path),
                line=linemap.line_for(("design", "from_posterior")),
            )
    check_strategy_names(spec, str(path), linemap)
    keys = _output_keys(spec, arms)
    given = (
        json.dumps(
            {"patients": patients, "draws": draws, "set": list(sets)}, sort_keys=True
        ).encode()
        + posterior_sha
    )
    return SweepPlan(
        spec,
        path,
        hashlib.sha256(text + b"\0" + given).hexdigest(),
        arms,
        scns,
        seed,
        pts,
        base_values,
        keys,
        applies,
    )


#: The largest posterior.csv a PSA reads (``design.from_posterior``): `simulate calibrate`
#: writes up to 100,000 rows (its most ABC particles), ~25 bytes a value, so 128 MiB holds
#: ~50 parameters at that size; anything larger is not a calibration's posterior.
MAX_POSTERIOR_BYTES = 128 * 1024 * 1024


class PosteriorError(ValueError):
    """A problem in a posterior.csv, at ``line`` (1-based) when it is at one."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_posterior_bytes(path: Path, limit: int = MAX_POSTERIOR_BYTES) -> bytes:
    """The bytes of a posterior.csv: a regular file of at most ``limit`` bytes, never
    opened when it is not one (``scenario.load.read_limited``). PosteriorError for
    anything else, OSError when it cannot be read."""
    from .scenario.load import FileRefused, file_kind, read_limited

    try:
        return read_limited(path, limit)
    except FileRefused as refused:
        if refused.mode is not None:
            raise PosteriorError(
                f"must be a regular file (a CSV file), but it is {file_kind(refused.mode)}"
            ) from None
        bound = f"the limit of {limit:,} bytes ({limit // 1024 // 1024} MiB) for a posterior"
        if refused.size is None:  # it grew past the limit while read
            raise PosteriorError(f"the file is larger than {bound}") from None
        raise PosteriorError(f"the file is {refused.size:,} bytes, above {bound}") from None


def parse_posterior(raw: bytes) -> tuple[list[str], np.ndarray, np.ndarray, list[int]]:
    """A posterior.csv's parameter columns (dotted paths), their values (one row per data
    row), the ``weight`` column and the lines of the header and of each row in the file
    (``[header, row 1, row 2, ...]``); PosteriorError (with its
    line) for a file that is not one: text that is not UTF-8 or not CSV, a header without
    a weight column or with an unnamed or repeated column, a row of another length than
    the header, a value that is empty or not a finite number, weights that are negative
    or all 0. Blank lines are skipped."""
    import csv
    import io

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PosteriorError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
            raw.count(b"\n", 0, exc.start) + 1,
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if row:
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise PosteriorError(f"not a valid CSV file: {exc}", reader.line_num) from None
    if not rows or "weight" not in [h.strip() for h in rows[0][1]]:
        raise PosteriorError(
            "expected a header with the parameters and a weight column, then rows",
            rows[0][0] if rows else None,
        )
    head_line, header = rows[0][0], [h.strip() for h in rows[0][1]]
    for i, h in enumerate(header):
        if not h:
            raise PosteriorError(f"column {i + 1} of the header has no name", head_line)
        if h in header[:i]:
            raise PosteriorError(
                f"the column {h!r} appears twice in the header (columns"
                f" {header.index(h) + 1} and {i + 1}); give each column once",
                head_line,
            )
    w = header.index("weight")
    names = [h for i, h in enumerate(header) if i != w]
    if not names:
        raise PosteriorError("no parameter columns (only weight)", head_line)
    if len(rows) < 2:
        raise PosteriorError("no rows after the header", head_line)
    table = np.empty((len(rows) - 1, len(header)), dtype=float)
    for r, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise PosteriorError(
                f"this row has {len(row)} field{'s' if len(row) != 1 else ''}, the header"
                f" has {len(header)}; every row needs one value per column",
                line,
            )
        for j, cell in enumerate(row):
            where = f"column {header[j]}"
            if not cell.strip():
                raise PosteriorError(f"{where}: the value is empty", line)
            try:
                value = float(cell)
            except ValueError:
                raise PosteriorError(f"{where}: {cell[:40]!r} is not a number", line) from None
            if not math.isfinite(value):
                raise PosteriorError(f"{where}: must be a finite number, got {cell.strip()}", line)
            table[r, j] = value
    weights = table[:, w]
    lines = [line for line, _ in rows]
    negative = np.flatnonzero(weights < 0)
    if negative.size:
        raise PosteriorError(
            f"weights must be >= 0 with a positive sum, got {weights[negative[0]]:g}",
            lines[1 + negative[0]],
        )
    if not weights.sum() > 0:
        raise PosteriorError("weights must be >= 0 with a positive sum; they are all 0")
    return names, np.delete(table, w, axis=1), weights, lines


def read_posterior(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A posterior.csv: parameter columns (dotted paths), their values and the ``weight``
    column (:func:`read_posterior_bytes`, :func:`parse_posterior`)."""
    names, table, weights, _ = parse_posterior(read_posterior_bytes(path))
    return names, table, weights


def _strategies_with(scns: list[Scenario], name: str) -> tuple[list[int], Any, InputError | None]:
    """The strategies (indices) that have the parameter ``name``, its value in the first
    of them, and the first strategy's reason it is not a parameter (None when all have
    it)."""
    which: list[int] = []
    first_value: Any = None
    first_error: InputError | None = None
    for k, scn in enumerate(scns):
        dump = scn.model_dump(mode="python", by_alias=True)
        try:
            apply_overrides(dump, [f"{name}=0"], Scenario, LineMap())
            value = _get(dump, name)
        except InputError as err:
            first_error = first_error or err
            continue
        except (KeyError, IndexError, TypeError):
            continue
        if not which:
            first_value = value
        which.append(k)
    return which, first_value, first_error


def _add_posterior(
    design: PSA,
    path: Path,
    linemap: LineMap,
    scns: list[Scenario],
    arms: list[str],
    seed: int,
    pts: list[Point],
    base_values: dict[str, Any],
    applies: dict[str, list[int]],
) -> bytes:
    """Give each PSA draw one row of the posterior (resampled by weight from the seed), after
    checking that every column is a parameter of the strategies and that its values are
    valid in each strategy that has it (its lowest and highest value, and for a
    whole-number parameter its first fractional one). Returns the file's hash (part of
    the sweep's identity). Every problem names the sweep file and the line of
    ``from_posterior``, then the CSV file, its line, the column and the value."""
    from . import streams

    assert design.from_posterior is not None
    line = linemap.line_for(("design", "from_posterior"))
    file = path.parent / Path(design.from_posterior).expanduser()

    def refuse(text: str, at: int | None = None) -> InputError:
        where = f"{file}:{at}" if at is not None else f"{file}"
        return InputError(f"design.from_posterior: {where}: {text}", file=str(path), line=line)

    try:
        raw = read_posterior_bytes(file)
        names, table, weights, lines = parse_posterior(raw)
    except PosteriorError as err:
        raise refuse(err.message, err.line) from None
    except OSError as err:
        raise InputError(
            f"design.from_posterior: cannot read {file} ({err.strerror or err})",
            file=str(path),
            line=line,
        ) from None
    clash = [n for n in names if n in design.parameters]
    if clash:
        raise InputError(
            f"design.from_posterior: {', '.join(clash)} also drawn in"
            " design.parameters; give each parameter one distribution",
            file=str(path),
            line=line,
        )
    for j, n in enumerate(names):
        which, value0, error = _strategies_with(scns, n)
        if not which:
            reason = (
                error.message.split(": ", 1)[-1]
                if error is not None
                else "not a parameter of the scenario"
            )
            raise refuse(f"column {n} cannot be set in any strategy: {reason}", lines[0])
        col = table[:, j]
        rows = [int(np.argmin(col)), int(np.argmax(col))]
        whole = isinstance(value0, int) and not isinstance(value0, bool)
        fractional = np.flatnonzero(col != np.round(col)) if whole else np.array([], dtype=int)
        if fractional.size:
            rows.insert(0, int(fractional[0]))
        for r in dict.fromkeys(rows):
            value = float(col[r])
            for k in which:
                try:
                    with_overrides(scns[k], {n: value}, f"{file}: {n}")
                except InputError as err:
                    reason = err.message.removeprefix(f"{n}: ")
                    raise refuse(
                        f"column {n} = {value!r} cannot be set in strategy '{arms[k]}': {reason}",
                        lines[1 + r],
                    ) from None
        applies[n] = which
        base_values[n] = value0
    if design.groups is not None:
        known = set(design.parameters) | set(names)
        for g, members in design.groups.items():
            unknown = [m for m in members if m not in known]
            if unknown:
                raise InputError(
                    f"design.groups.{g}: parameters not in the PSA: {unknown}",
                    file=str(path),
                    line=linemap.line_for(("design", "groups")),
                )
    u = streams.uniform(seed, np.arange(len(pts)), "sweep.psa.posterior")
    rows_drawn = rows_by_weight(weights, u)
    for p, r in zip(pts, rows_drawn, strict=True):
        p.update({n: float(table[r, j]) for j, n in enumerate(names)})
    return hashlib.sha256(raw).hexdigest().encode()


def rows_by_weight(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The rows of a weighted table (a posterior.csv) at uniforms ``u``: the inverse CDF of
    the normalised cumulative weights, row i for u in [cum_(i-1), cum_i)."""
    cum = np.cumsum(weights) / weights.sum()
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def difference_arm(b: str, a: str) -> str:
    """The strategy part of an output key of strategy ``b`` against the reference ``a``:
    ``f"{difference_arm(b, a)}:{outcome}"`` (``split_key`` reads it back)."""
    return f"{b}-{a}"


def split_key(key: str, arms: Sequence[str]) -> tuple[list[str], str] | None:
    """An output key's strategies and outcome, read against the sweep's strategies (a
    strategy's name may contain '-'): 'qaly' -> ([], 'qaly'), 'rescue:qaly' ->
    (['rescue'], 'qaly'), 'first-line-iv-rescue:qaly' with strategies ['iv-rescue',
    'first-line'] -> (['first-line', 'iv-rescue'], 'qaly') (B - A, A the first
    strategy). None for a key of no known strategy."""
    arm, _, outcome = key.rpartition(":")
    if not arm:
        return [], outcome
    if arm in arms:
        return [arm], outcome
    for b in arms[1:]:
        if arm == difference_arm(b, arms[0]):
            return [b, arms[0]], outcome
    return None


STRATEGY_NAMES = (
    "a strategy name may be any text but: empty or blank; with ':' (it separates the"
    " strategy from the outcome in sweep.csv and sweep.json); spelled as the difference"
    " 'B-A' of two other strategies B and A (the rows of B - A have that name); or with"
    " the letters and digits of another (ignoring case; figure files are named after them,"
    " every other character becoming '_'). '-', spaces and other characters are fine"
)


def check_strategy_names(
    spec: SweepFile, source: str, linemap: LineMap, *, figures: bool = True
) -> None:
    """Refuse, before anything runs, strategy names that would make an output key
    (``arm:outcome``, ``B-A:outcome``) or a figure's file name ambiguous (see
    ``STRATEGY_NAMES``): an empty name, a name with ':', a name equal to the difference
    label of two other strategies, and (``figures``) names whose output keys give the
    same figure file name (``report.sweep_figures._slug``, compared ignoring case, as
    some file systems do). Names with '-' are fine otherwise ('first-line')."""
    if spec.strategies is None:
        return
    arms = list(spec.strategies)

    def refuse(name: str, why: str) -> InputError:
        return InputError(
            f"strategies: the strategy name {name!r} {why}; {STRATEGY_NAMES}",
            file=source,
            line=linemap.line_for(("strategies", name)),
        )

    for name in arms:
        if not name.strip():
            raise refuse(name, "is empty or blank")
        if ":" in name:
            raise refuse(name, "contains ':'")
    for name in arms:
        for b in arms:
            a = name[len(b) + 1 :]
            if b != name and a not in (b, name) and a in arms and name == difference_arm(b, a):
                raise refuse(
                    name,
                    f"is spelled as the difference between the strategies {b!r} and {a!r}"
                    f" ({b} - {a})",
                )
    if not figures:
        return
    # the figures' module loads matplotlib (~0.4 s): plan_sweep checks this last, so
    # that other problems are reported without waiting for it
    from .report.sweep_figures import _slug

    seen: dict[str, str] = {}
    for key in _output_keys(spec, arms):
        slug = _slug(key)
        other = seen.setdefault(slug.casefold(), key)
        if other == key:
            continue
        # blame a strategy's own name rather than a difference's label
        this, that = key.rpartition(":")[0], other.rpartition(":")[0]
        if this not in arms:
            this, that = that, this
        what = "the strategy" if that in arms else "the difference"
        raise refuse(
            this,
            f"gives the same figure file names as {what} {that!r} (the output keys"
            f" {other!r} and {key!r} are both named '{slug}' in figure files)",
        )


def _output_keys(spec: SweepFile, arms: list[str]) -> list[str]:
    outs = list(spec.outcomes)
    if isinstance(spec.design, PSA):
        for extra in (
            "cost_total",
            "qaly",
            "cost_lifetime",
            "qaly_lifetime",
            "cumulative_prednisone_g",
        ):
            if extra not in outs:
                outs.append(extra)
    if spec.strategies is None:
        return outs
    keys = [f"{a}:{o}" for a in arms for o in outs]
    keys += [f"{difference_arm(a, arms[0])}:{o}" for a in arms[1:] for o in outs]
    return keys


def _overriding_set(names: Sequence[str], sets: Sequence[Any]) -> tuple[str, str] | None:
    """The first of ``names`` (dotted paths) that a --set or --params value sets, and how
    that value was given (``--set PATH=VALUE`` or ``--params FILE line N``); None if none."""
    varied: dict[tuple[str | int, ...], str] = {}
    for name in names:
        try:
            varied[tuple(_split(name))] = name
        except ValueError:
            continue
    for s in sets:
        given = getattr(s, "path", None) or str(s).split("=", 1)[0].strip()
        try:
            key = tuple(_split(given))
        except ValueError:
            continue
        if key not in varied:
            continue
        file = getattr(s, "file", None)
        line = getattr(s, "line", None)
        source = f"--params {file}" + (f" line {line}" if line else "") if file else f"--set {s}"
        return varied[key], source
    return None


def _refuse_overridden(spec: SweepFile, sets: Sequence[str], path: Path, linemap: LineMap) -> None:
    """A --set or --params value of a parameter the design varies would be replaced at
    every point: a PSA under a --params overlay drew the overlaid parameters around the
    sweep file's own centres (the defaults') with no word. Refused, naming both."""
    hit = _overriding_set(list(spec.design.parameters), sets)
    if hit is not None:
        name, source = hit
        raise InputError(
            f"design.parameters.{name}: {source} sets this parameter, which the"
            f" {spec.design.type} design varies, so its points would replace the value"
            " (it would have no effect). Leave it out of --params/--set, or centre the"
            " design on that value in the sweep file",
            file=str(path),
            line=linemap.line_for(("design", "parameters", name)),
        )


def _check_parameters(
    spec: SweepFile, scns: list[Scenario], arms: list[str], path: Path, linemap: LineMap
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Base value of each parameter, and the arms it applies to (those that have it)."""
    design = spec.design
    base_values: dict[str, Any] = {}
    applies: dict[str, list[int]] = {}
    for name, pspec in design.parameters.items():
        line = linemap.line_for(("design", "parameters", name))
        where = f"design.parameters.{name}"
        which, value, first_error = _strategies_with(scns, name)
        if not which:
            text = first_error.message.split(": ", 1)[-1] if first_error else "not set"
            raise InputError(
                f"{where}: {text}" + ("" if len(scns) == 1 else " (in every strategy)"),
                file=str(path),
                line=line,
            )
        applies[name], base_values[name] = which, value
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and isinstance(value, int) and isinstance(design, Sobol | Morris | PSA):
            # These designs draw values anywhere between the bounds (or from a
            # distribution); a whole-number parameter would fail at the first fractional
            # point, after the sweep had started. No design rounds: refuse it here.
            raise InputError(
                f"{where}: a whole-number parameter (it is {value} in the scenario) cannot be"
                f" swept by a {design.type} design, which draws fractional values; sweep it"
                " with a grid or one_way design of whole values, or leave it out",
                file=str(path),
                line=line,
            )
        lo_hi = _extremes(design, pspec)
        if lo_hi is not None:
            if not numeric:
                raise InputError(
                    f"{where}: the base value {value!r} is not a number, so a"
                    " range cannot be swept",
                    file=str(path),
                    line=line,
                )
            lo, hi = lo_hi
            if not isinstance(design, PSA) and not lo <= value <= hi:
                raise InputError(
                    f"{where}: the range [{lo:g}, {hi:g}] excludes the base value {value:g}",
                    file=str(path),
                    line=line,
                )
            tests = [lo, hi]
        else:
            tests = list(pspec) if isinstance(design, Grid) else pspec.points()
        for v in tests:
            _check_value(scns, arms, applies[name], name, v, path, line, f"the value {v!r}")
    return base_values, applies


def _check_value(
    scns: list[Scenario],
    arms: list[str],
    which: list[int],
    name: str,
    value: Any,
    path: Path,
    line: int | None,
    what: str,
    advice: str = "",
) -> None:
    """``name`` at ``value`` must be valid in each strategy that has it (``which``), or
    the sweep is refused before anything runs: ``what`` names the value, ``advice`` says
    what to do."""
    for k in which:
        try:
            with_overrides(scns[k], {name: value}, f"{path} design.parameters.{name}")
        except InputError as err:
            raise InputError(
                f"design.parameters.{name}: {what} is not valid for scenario"
                f" '{arms[k]}': {err.message}{advice}",
                file=str(path),
                line=line,
            ) from None


def _extremes(
    design: Any, pspec: Any, drawn: Sequence[float] | None = None
) -> tuple[float, float] | None:
    """The two ends of a parameter's values to check before anything runs: a range's
    bounds, listed numbers' min and max; a PSA's 1e-4 and 1 - 1e-4 quantiles, or, once
    its points exist (``drawn``: the parameter's values over the points), the lowest
    and highest draw, which a normal or lognormal can put beyond those quantiles."""
    if drawn is not None:
        return float(np.min(drawn)), float(np.max(drawn))
    if isinstance(design, Sobol | Morris):
        return pspec.low, pspec.high
    if isinstance(design, OneWay) and pspec.values is None:
        return pspec.low, pspec.high
    if isinstance(design, OneWay):
        vals = [v for v in pspec.values if isinstance(v, int | float)]
        return (min(vals), max(vals)) if len(vals) == len(pspec.values) else None
    if isinstance(design, PSA):
        q = ppf(pspec, np.array([1e-4, 1 - 1e-4]))
        return float(q[0]), float(q[1])
    return None


def _check_draws(
    spec: SweepFile,
    scns: list[Scenario],
    arms: list[str],
    path: Path,
    linemap: LineMap,
    pts: list[Point],
    applies: dict[str, list[int]],
) -> None:
    """A PSA's points, drawn: every parameter at its lowest and highest draw (two values
    a parameter, whatever the number of draws) must be valid in each strategy that has
    it, so that no draw stops the sweep after it has started (``_extremes``). A draw
    within the quantiles ``_check_parameters`` validated already (1e-4 and 1 - 1e-4)
    is not validated again: most PSAs' draws all are, and each validation costs ~2 ms."""
    design = spec.design
    if not isinstance(design, PSA) or not pts:
        return
    for name in design.parameters:
        drawn = np.fromiter((p[name] for p in pts), dtype=float, count=len(pts))
        lo_hi = _extremes(design, design.parameters[name], drawn)
        checked = _extremes(design, design.parameters[name])
        assert lo_hi is not None and checked is not None
        for end, v in zip(("lowest", "highest"), lo_hi, strict=True):
            if checked[0] <= v <= checked[1]:
                continue
            _check_value(
                scns,
                arms,
                applies[name],
                name,
                v,
                path,
                linemap.line_for(("design", "parameters", name)),
                f"the {end} of its {len(pts):,} draws, {v!r},",
                "; narrow or truncate the distribution (low/high), or change the seed or the"
                " number of draws",
            )


# --------------------------------------------------------------------------------------
# Evaluating one point
# --------------------------------------------------------------------------------------


def evaluate_point(plan_args: tuple[Any, ...]) -> dict[str, float]:
    """Run one point: one scenario, or all strategies on the same patients. Each
    parameter is set in the strategies that have it (``SweepPlan.applies``)."""
    return _evaluate(plan_args, paired=False)[0]


#: Estimators whose per-patient values average to the point's estimate, so that two
#: points on the same patients have a paired difference (a Kaplan-Meier median and a
#: ratio of sums have none).
PAIRABLE = ("mean", "proportion")


def _patient_values(m: Any, table: dict[str, np.ndarray]) -> np.ndarray:
    col = np.asarray(table[m.column], dtype=np.float64)
    if m.kind == "proportion":
        return np.where(np.isnan(col), math.nan, (col > 0.5).astype(np.float64))
    return col


class PatientValues(Reducer):
    """Per arm and outcome, each patient's value (``PAIRABLE`` estimators only), in
    patient order: ``self.values[arm][outcome]``."""

    worker_state = ("outcomes",)

    def __init__(self, outcomes: Sequence[str]) -> None:
        self.outcomes = list(outcomes)
        self._parts: list[list[dict[str, np.ndarray]]] = []

    def part(self, chunk: Any) -> list[dict[str, np.ndarray]]:
        specs = {m.name: m for m in chunk.summaries[0].specs}
        keep = [specs[o] for o in self.outcomes if o in specs and specs[o].kind in PAIRABLE]
        return [{m.name: _patient_values(m, t) for m in keep} for t in chunk.tables]

    def merge(self, part: list[dict[str, np.ndarray]]) -> None:
        self._parts.append(part)

    @property
    def values(self) -> list[dict[str, np.ndarray]]:
        arms = len(self._parts[0])
        return [
            {o: np.concatenate([p[j][o] for p in self._parts]) for o in self._parts[0][j]}
            for j in range(arms)
        ]


PointArgs = tuple[Any, ...]
PointResult = tuple[dict[str, float], dict[str, np.ndarray]]


def _point_job(plan_args: PointArgs, paired: bool) -> tuple[Any, Callable[[], PointResult]]:
    """One point as a runner job (its chunks sized as for one process, so a point gives
    the same bytes run whole or spread over workers) and the function that turns the
    merged job into the point's outputs (and per-patient values when ``paired``)."""
    scns, arms, point, patients, seed, engine, strategies, outcomes, applies = plan_args
    scns = [
        with_overrides(s, {k: v for k, v in point.items() if i in applies[k]})
        for i, s in enumerate(scns)
    ]
    values = PatientValues(outcomes)
    extra = [values] if paired else []
    if not strategies:
        from .runner import run_job

        job, run_result = run_job(
            scns[0],
            patients=patients,
            seed=seed,
            engine=engine,
            reducers=extra,
            metrics=frozenset(outcomes),
        )
    else:
        from .comparison import compare_job

        job, cmp_result = compare_job(
            scns,
            names=arms,
            patients=patients,
            seed=seed,
            engine=engine,
            reducers=extra,
            metrics=frozenset(outcomes),
        )

    def result() -> PointResult:
        out: dict[str, float] = {}
        if not strategies:
            metrics = run_result().metrics
            for o in outcomes:
                out[o], out[o + "_se"] = _mean_se(metrics[o])
        else:
            res = cmp_result().outcomes()
            for o in outcomes:
                for a in arms:
                    out[f"{a}:{o}"], out[f"{a}:{o}_se"] = _mean_se(
                        res[o]["arms"][a], res[o]["estimator"]
                    )
                for a in arms[1:]:
                    d = res[o]["differences"][a]
                    given = {"se": d["se"]} if "se" in d else {}
                    key = f"{difference_arm(a, arms[0])}:{o}"
                    out[key], out[key + "_se"] = _mean_se(
                        {"mean": d["mean_difference"], "ci95": d["ci95"], **given}
                    )
        if not paired:
            return out, {}
        per_arm = values.values
        if not strategies:
            return out, dict(per_arm[0])
        # each arm's values; a between-arm row's change is worked out from them
        # (:func:`_paired_vs_base`)
        vectors: dict[str, np.ndarray] = {}
        for o in per_arm[0]:
            for a, v in zip(arms, per_arm, strict=True):
                vectors[f"{a}:{o}"] = v[o]
        return out, vectors

    return job, result


def _evaluate(plan_args: PointArgs, paired: bool) -> PointResult:
    """A point, whole, in this process."""
    from .runner import execute

    job, result = _point_job(plan_args, paired)
    execute(job, progress=False)
    return result()


def point_chunks(plan: SweepPlan) -> int:
    """How many chunks each point of the sweep runs in (the runner's chunks for one
    process: a few center replications, 500 SimPy or 10,000 cohort patients)."""
    from .runner import chunk_size_for, unit_kind

    n = plan.spec.patients
    return -(-n // chunk_size_for(unit_kind(plan.scenarios, plan.spec.engine), n, 1, None))


# One worker's last few point jobs, so that the chunks of a point it runs one after
# another apply the point's overrides and compile its plans once.
_JOBS: Recent[tuple[str, int], Any] = Recent(4)


def _sweep_task(args: tuple[tuple[str, int], PointArgs, bool, int | None]) -> Any:
    """A whole point (``chunk`` None): its outputs and per-patient values; or one chunk
    of a point: the reducers' parts, merged where the sweep runs (:func:`run_sweep`)."""
    key, plan_args, paired, chunk = args
    if chunk is None:
        return _evaluate(plan_args, paired)
    from .runner import arms_task

    job = _JOBS.get(key, lambda: _point_job(plan_args, paired)[0])
    return arms_task(job.tasks[chunk])[1]


def _paired_vs_base(store: PointStore, n: int, arms: list[str]) -> list[dict[str, Any]]:
    """Every point against the base case (point 0), patient by patient; the base point's
    own entry is empty. Points are read one at a time to bound memory."""
    base = store.arrays(0)
    return [{}] + [paired_differences(base, store.arrays(i), arms) for i in range(1, n)]


def paired_differences(
    base: dict[str, np.ndarray], point: dict[str, np.ndarray], arms: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per output: the change ``point - base`` of the value the sweep shows, on the same
    patients, its 95% interval and the number of pairs (patients with a value in every
    sample it compares).

    An arm's row (``arm:outcome``, or a bare outcome without strategies) is the
    difference of the two points' means, each over its own patients with a value
    (:class:`stats.PairedDifference`). A between-arm row ``B-A:outcome`` (``arms``: the
    sweep's strategies, the first the reference) is ``(B - A at the point) - (B - A at
    the base)``, each arm's mean again over its own patients, so that it is the
    difference of the B - A values shown beside it even where a patient alive at a
    visit in one arm or point died before it in another; its variance is that of a
    combination of four partially overlapping means (:func:`stats.combination_of_means`).
    When no value is missing it is the paired mean of the per-patient differences, as
    before."""
    from .stats import PairedDifference, _json_float, combination_of_means, normal_ci

    def paired(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        pd_ = PairedDifference(tol=1e-9)
        pd_.add(x, y)
        d = pd_.to_dict()
        # a proportion (0/1 values): Newcombe's paired score interval, as a comparison
        # between arms has
        ci = pd_.paired_proportion_ci()
        return {
            "mean_difference": d["mean_difference"],
            "ci95": d["ci95"] if ci is None else [ci[0], ci[1]],
            "n": d["n"],
        }

    common = sorted(set(base) & set(point))
    res = {key: paired(base[key], point[key]) for key in common}
    for key in common if len(arms) > 1 else ():
        parts = split_key(key, arms)
        if parts is None or len(parts[0]) != 1 or parts[0][0] == arms[0]:
            continue  # only a strategy's own row against the reference's
        (b_arm,), o = parts
        a_arm, a_key = arms[0], f"{arms[0]}:{o}"
        if a_key not in base or a_key not in point:
            continue
        four = (base[a_key], base[key], point[a_key], point[key])
        if not any(np.isnan(np.asarray(x, dtype=float)).any() for x in four):
            row = paired(four[1] - four[0], four[3] - four[2])
        else:
            m, se, n = combination_of_means(four, (1.0, -1.0, -1.0, 1.0))
            lo, hi = normal_ci(m, se)
            row = {
                "mean_difference": _json_float(m),
                "ci95": [_json_float(lo), _json_float(hi)],
                "n": n,
            }
        res[f"{difference_arm(b_arm, a_arm)}:{o}"] = row
    return dict(sorted(res.items()))


def _mean_se(m: dict[str, Any], estimator: str | None = None) -> tuple[float, float]:
    """An estimate and its standard error (``estimator``: the metric's, where ``m`` does
    not say it). The one given (a center metric's, whose Student-t interval over few
    centers, cut at the scale's ends, is not 2 x 1.96 of them); a proportion's binomial
    ``sqrt(p (1 - p) / n)`` (its Wilson interval is asymmetric, and never of zero width);
    none for a Kaplan-Meier median (its interval, on visit days, is asymmetric and
    implies no standard error); else from the upper half of its normal 95% interval
    (the lower limit of a nonnegative mean may be cut at 0)."""
    mean = m["mean"]
    mean = math.nan if mean is None else float(mean)
    if "se" in m:
        return mean, math.nan if m["se"] is None else float(m["se"])
    kind = estimator if estimator is not None else m.get("estimator")
    if kind == "km_median":
        return mean, math.nan
    if kind == "proportion":
        n = m.get("n") or 0
        return mean, math.sqrt(mean * (1.0 - mean) / n) if n and mean == mean else math.nan
    hi = m["ci95"][1]
    if hi is None or mean != mean:
        return mean, math.nan
    return mean, (float(hi) - mean) / 1.959963984540054


# --------------------------------------------------------------------------------------
# Running, with a resumable checkpoint of finished points
# --------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    plan: SweepPlan
    outputs: list[dict[str, float]]
    analysis: dict[str, Any]

    def to_frame(self) -> Any:
        """Long table: one row per point, arm and outcome, parameters as numeric
        columns."""
        from .frames import sweep_frame

        return sweep_frame(self.plan.points, self.outputs, self.plan.base_values)

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {
            "name": p.spec.name,
            "description": p.spec.description,
            "design": p.spec.design.type,
            "arms": p.arms,
            "seed": p.seed,
            "patients_per_point": p.spec.patients,
            "simulator_version": __version__,
            "fingerprint": p.fingerprint(),
            "base_values": p.base_values,
            "outcomes": p.spec.outcomes,
            "output_keys": p.output_keys,
            "points": [
                {"index": i, "inputs": pt, "outputs": out}
                for i, (pt, out) in enumerate(zip(p.points, self.outputs, strict=True))
            ],
            "analysis": self.analysis,
            "sweep_file": p.source.name,
            "design_spec": design_spec(p.spec.design),
            "economics": economics_json(p.scenarios[0]),
        }


def design_spec(design: Any) -> dict[str, Any]:
    """The design as the sweep file gives it (after ``--draws``): a PSA's distribution of
    each parameter (its type and parameters), correlation and EVPPI groups, a one-way's
    low and high or listed values, a global design's bounds; so that sweep.json and
    report.html state what was drawn or varied. A correlation matrix comes with
    ``correlation_parameters``, the parameters in the order of its rows and columns (the
    order of the sweep file, which also sets the draws): sweep.json's keys are written
    sorted, so ``parameters`` alone would pair the matrix with the wrong names."""
    spec = dict(design.model_dump(mode="json", exclude_none=True, by_alias=True))
    if spec.get("correlation") is not None:
        spec["correlation_parameters"] = list(design.parameters)
    return spec


def economics_json(scn: Scenario) -> dict[str, Any]:
    """What the costs and QALYs of a sweep are (the resolved base scenario's economics,
    ``--set`` applied): currency, willingness to pay, discount rate, cost-effectiveness
    horizon, perspective and price year; keyed as the compare report's incremental
    analysis (``report.comparison.economics_basis`` states them)."""
    econ = scn.economics
    return {
        "currency": econ.currency,
        "willingness_to_pay_per_qaly": econ.willingness_to_pay_per_qaly,
        "discount_rate_per_year": econ.discount_rate_per_year,
        "horizon": econ.cea_horizon,
        "horizon_days": scn.horizon_days,
        "perspective": econ.perspective,
        "price_year": econ.price_year,
    }


def keeps_vectors(design: Any) -> bool:
    """One-way sweeps keep each point's per-patient values, to compare every point with
    the base case on the same patients (paired intervals)."""
    return bool(module_for(design).KEEPS_PATIENT_VALUES)


def checkpoint(plan: SweepPlan, out: str | os.PathLike[str], paired: bool) -> PointStore:
    """The sweep's resumable store of finished points, next to its output folder."""
    return PointStore(
        out,
        plan.fingerprint(),
        len(plan.points),
        str(plan.source),
        kind="sweep",
        needs_arrays=paired,
    )


def session_workers(workers: int, dask: str | None, evaluator: Evaluator | None) -> int:
    """The workers of the process pool a sweep's points, analysis and figures share: none
    (1) when Dask or an evaluator runs the points."""
    return 1 if dask or evaluator is not None else workers


def run_sweep(
    plan: SweepPlan,
    out: str | os.PathLike[str],
    *,
    workers: int = 1,
    fresh: bool = False,
    progress: bool | None = None,
    evaluator: Evaluator | None = None,
    dask: str | None = None,
) -> SweepResult:
    """Evaluate every point (resuming from a checkpoint), analyse, return the result.

    Finished points are saved one by one into ``<out>.partial/``; running again after an
    interruption evaluates only the missing points and gives the same result as an
    uninterrupted run (each point depends only on its inputs, the seed and the patients).
    """
    import sys

    from tqdm import tqdm

    from .parallel import completed_map, pool_session

    out = Path(out)
    paired = evaluator is None and keeps_vectors(plan.spec.design)
    store = checkpoint(plan, out, paired)
    done = store.open(fresh)
    strategies = plan.spec.strategies is not None
    outcomes = list(
        dict.fromkeys(
            [k.split(":", 1)[1] for k in plan.output_keys] if strategies else plan.output_keys
        )
    )
    from .runner import choose_engine

    engine = choose_engine(plan.scenarios[0], plan.spec.engine)
    todo = [i for i in range(len(plan.points)) if i not in done]
    if done:
        log.info("resuming: %d of %d points already done", len(done), len(plan.points))
    show = sys.stderr.isatty() if progress is None else progress
    # With several workers, a point of several chunks is spread over them chunk by chunk
    # (its parts merged here in chunk order, as in one process), so that a few large
    # points, or one slow point among fast ones, keep every worker busy.
    chunks = point_chunks(plan) if (workers > 1 or dask) else 1
    bar = tqdm(
        total=len(plan.points),
        initial=len(done),
        unit="point",
        # a split point advances the bar chunk by chunk: fractions of a point
        bar_format=None
        if chunks == 1
        else "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total} points [{elapsed}<{remaining}]",
        disable=not show,
        file=sys.stderr,
        desc=plan.spec.name[:30],
        leave=False,
    )

    def task(i: int) -> tuple[Any, ...]:
        return (
            plan.scenarios,
            plan.arms,
            plan.points[i],
            plan.spec.patients,
            plan.seed,
            engine,
            strategies,
            outcomes,
            plan.applies,
        )

    preload = getattr(module_for(plan.spec.design), "preload", None)
    if preload is not None:
        preload()
    # one pool for the points and the analysis (the PSA's metamodels: session_map)
    with pool_session(session_workers(workers, dask, evaluator)):
        parts: dict[int, dict[int, Any]] = {}
        key = plan.fingerprint()
        tasks = [
            ((i, k), ((key, i), task(i), paired, None if chunks == 1 else k))
            for i in todo
            for k in range(chunks)
        ]
        try:
            if evaluator is not None:
                for i in todo:
                    done[i] = canonical(evaluator(plan.points[i]))
                    store.save(i, done[i])
                    bar.update(1)
            else:
                for (i, k), res in completed_map(_sweep_task, tasks, workers, dask):
                    if chunks > 1:
                        parts.setdefault(i, {})[k] = res
                        if len(parts[i]) < chunks:
                            bar.update(1 / chunks)
                            continue
                        job, result = _point_job(task(i), paired)
                        for kk in range(chunks):
                            job.merge(parts[i].pop(kk))
                        del parts[i]
                        res = result()
                    outputs, vectors = res
                    done[i] = canonical(outputs)
                    store.save(i, done[i], vectors if paired else None)
                    bar.update(1 / chunks if chunks > 1 else 1)
        except BaseException:
            store.discard_if_unused()  # nothing to resume: leave nothing
            raise
        finally:
            bar.close()
        outputs = [done[i] for i in range(len(plan.points))]
        analysis = analyse(
            plan.spec.design, plan.points, outputs, plan.seed, plan.base_values, plan.output_keys
        )
        if paired:
            analysis["paired_vs_base"] = _paired_vs_base(store, len(plan.points), plan.arms)
            for key, bars in analysis["tornado"].items():
                for bar in bars[1:]:
                    bar["difference_vs_base"] = [
                        analysis["paired_vs_base"][j].get(key) for j in bar["points"]
                    ]
        decision = getattr(module_for(plan.spec.design), "decision_analysis", None)
        if decision is not None:
            analysis["psa"] = decision(plan, outputs)
    return SweepResult(plan, outputs, analysis)
