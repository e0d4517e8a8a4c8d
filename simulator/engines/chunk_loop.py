"""A whole chunk of the cohort engine as one compiled loop over its patients.

The step-wise cohort engine (``cohort.run_chunk``) moves every patient of a chunk to its
next event, then runs each event kind for the patients whose event it is, as numpy calls
or as one compiled loop per kind (``fused``): about 135 steps a chunk, each paying for
the scheduler, the closed-form step, the clocks and the dispatch in Python and numpy,
over arrays much larger than the cache at 10,000 patients.

Patients do not interact in the cohort engine, so running each patient from start to
end, one after the other, gives the same bits for every patient. This module writes that
loop out: for each patient, until its end, the scheduler of ``handlers.next_event`` (the
earliest time, ties to the lower kind, a NaN as ``argmin`` treats it), the closed-form
step (``step_generated.step_one`` on the propagator's table row, as
``handlers._advance_vector``), the clocks and the event's handler (their traces, as
``fused`` generates them, one branch per kind), the visit values and the event log. The
state lives in the chunk's arrays, so a patient's fields stay in the cache while it runs.

A step whose matrix exponential the propagator's table does not hold yet (every step at
first, on a fresh table; a death between whole days) is computed in the loop
(``_loops.expm_entries``: ``disease.expm_many``'s operations, so the propagator's bits).
Whole-day steps go to a table of the loop's own, which is handed to the propagator when
it fills and at the end of the chunk (the shared table is only ever written under its
lock); a step between whole days is computed for that step alone. A full event-log
buffer stops the pass: the records go to the chunk's ``EventLog`` and the next pass goes
on from the patient that stood, so the log comes out grouped by patient, in order.

``tests/test_engines.py`` compares every shipped scenario run this way with the numpy
engine, byte for byte, and ``tests/test_fused.py`` the loop's stops and fallbacks.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import jit
from ..invariants import undefined_time
from ..kernel import disease, handlers
from ..kernel.events import Event
from ..kernel.handlers import VISIT_VALUES
from ..kernel.plan_symbols import Num, PlanProxy, Recording, evaluate
from ..kernel.trace import (
    FLOAT,
    INT,
    Traced,
    TraceError,
    dtype_code,
    same_trace,
    trace_clocks,
    trace_handle,
)
from ..records import EventLog
from .fused import _PREAMBLE, _compile, _cv, _field, _Source, stream_keys

__all__ = ["ChunkLoop", "build"]

log = logging.getLogger(__name__)

# The scheduler's candidates in ``handlers.next_event``'s order (its kind is the index).
_TIMES = ("pulse_end", "spar_onset", "flare_next", None, "taper_next", "ivig_next", "death_next")
_STEPPED = handlers.STEPPED_FIELDS
# state fields and parameters the loop reads besides those of the traces
_ST_FLOAT = ("t", "pred", "death_day", "c", *_STEPPED, *(n for n in _TIMES if n))
_ST_INT = ("visit_k",)
_PRM = {"drive": FLOAT, "ivig_gain": FLOAT, "node": INT, "patient": INT}
_KINDS = tuple(int(k) for k in Event if k != Event.END)
_LOG_FIELDS = ("patient", "day", "kind", "flags", "cpk", "myoglobin", "value", "pred", "before")
_LOG_DTYPES = tuple(np.dtype(d) for d in EventLog.DTYPES)
# the event-log buffer of a loop's first pass, per patient, and its floor (first_line
# logs ~79 events a patient); a loop's later chunks size it by what earlier ones logged,
# and a pass that fills it sizes the next by the events a patient logged in it
_EVENTS_PER_PATIENT, _EVENTS_MIN = 32, 4096
# the loop's own table of matrix exponentials (steps the propagator's table lacks)
_LOCAL_ROWS = 512
#: what compiling a new loop costs (first_line: ~10 s on this project's 2-core machines)
COMPILE_SECONDS = 10.0
_OWED: dict[str, float] = {}  # numpy's loss so far, by loop source
_EVENT_RATE: dict[str, float] = {}  # the last chunk's events a patient (+25%), by source
_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Pieces:
    """The statements of one event of patient ``r`` (12 spaces deep, as in the loop):
    ``schedule`` picks the next event (``best``, ``kind``); ``step`` moves the state to
    it in closed form and runs the clocks (``{table_full}`` marks what to do when the
    loop's own table of matrix exponentials is full); ``handle`` runs the event's handler,
    writes the visit values and logs the event. ``des_loop`` builds the SimPy engine's
    one-event function from the same statements, and the infusion center's functions
    from ``infusion`` (the infusion's handler for the fraction ``fraction`` of the day's
    dose, setting ``fl`` and ``c0``-``c2``; ``handle`` gives it ``fraction = 1.0``) and
    ``log`` (the event's record, from ``fl``, ``c0``-``c2`` and ``before``)."""

    schedule: str
    step: str
    handle: str
    infusion: str
    log: str


class ChunkLoop:
    """The compiled loop of one plan (traced from the chunk's arrays). With ``record``,
    the plan is traced a second time through a ``PlanProxy``; when that trace is the same
    as the plain one, ``recording`` keeps what it read and decided, and ``plan_consts``
    each label's constants computed from the plan's numbers (else both are None)."""

    def __init__(self, plan: Any, st: Any, prm: Any, record: bool = False) -> None:
        for name in _ST_FLOAT:
            if dtype_code(getattr(st, name).dtype) != FLOAT:
                raise TraceError(f"state field {name} is not float64")
        if dtype_code(st.visit_k.dtype) != INT:
            raise TraceError("visit_k is not int64")
        for name, code in _PRM.items():
            if dtype_code(getattr(prm, name).dtype) != code:
                raise TraceError(f"parameter {name} has the wrong type")
        traces = _traces(plan, st, prm)
        n_values = traces[str(int(Event.VISIT))].n_values
        if n_values != len(VISIT_VALUES):
            raise TraceError("the visit returns another number of values")
        # One function, each kind's statements in a branch of it (its values named
        # with the kind as prefix): numba inlines nothing across compiled functions
        # without relinking and reoptimising them, and a call through a pointer costs
        # ~0.7 us with this many arrays (4x slower than the inlined loop, measured).
        self.sources: dict[str, _Source] = {}
        for label, tr in traces.items():
            dtypes = {key: dtype_code(_field(st, key).dtype) for key, _ in tr.writes}
            self.sources[label] = _Source(tr, dtypes, prefix=label)
        self.n_values = n_values
        self.text, self.keys = self._generate()
        self.recording: Recording | None = None
        self.plan_consts: dict[str, list[tuple[int, Num]]] | None = None
        if record and self.text not in _NOT_REUSABLE:
            self._record(plan, st, prm, traces)
        self.fn = _compile(self.text)
        self.kf = {label: src.float_consts() for label, src in self.sources.items()}
        self.ki = {
            label: np.array(src.tr.graph.int_consts, dtype=np.int64)
            for label, src in self.sources.items()
        }
        for src in self.sources.values():
            src.tr.release()  # the code is written: only constants, tables, streams
        self.ready = False  # called once without error (numba compiled it)
        self.failed = False  # numba failed to compile it

    def _record(self, plan: Any, st: Any, prm: Any, traces: dict[str, Traced]) -> None:
        rec = Recording()
        try:
            symbolic = _traces(PlanProxy(plan, rec), st, prm)
        except Exception as exc:  # something a plan number cannot follow: not reused
            log.debug("the plan's trace is not reusable: %r", exc)
            _NOT_REUSABLE.add(self.text)
            return
        if list(symbolic) != list(traces) or not all(
            same_trace(traces[label], tr) for label, tr in symbolic.items()
        ):
            log.debug("the plan's trace is not reusable: the symbolic trace differs")
            _NOT_REUSABLE.add(self.text)
            return
        self.recording = rec
        self.plan_consts = {label: tr.graph.plan_consts for label, tr in symbolic.items()}

    def with_numbers(self, floats: list[Any]) -> ChunkLoop:
        """This loop for another plan of the same structure, whose floats at the
        recording's paths are ``floats``: the same code, its constants recomputed."""
        assert self.plan_consts is not None
        other = copy.copy(self)
        memo: dict[int, Any] = {}
        kf = {}
        for label, consts in self.plan_consts.items():
            values = self.kf[label].copy()
            for slot, num in consts:
                values[slot] = evaluate(num, floats, memo)
            kf[label] = values
        other.kf = kf
        return other

    def worth_it(self, numpy_loss_s: float) -> bool:
        """Whether to run the loop for work that numpy does ``numpy_loss_s`` slower:
        yes once it is compiled (in this process or in numba's cache on disk) or
        ``SIMULATOR_JIT=1``; otherwise once the loss on numpy of every plan with this
        loop's source, in this process, reaches what compiling it costs (rent or buy:
        a short run of a new structure never waits for the compiler, a long one pays at
        most twice the best choice in hindsight)."""
        return self.ready or pays(self.fn, self.text, numpy_loss_s, _OWED, COMPILE_SECONDS)

    # -- source ------------------------------------------------------------------------

    def _generate(self) -> tuple[str, list[tuple[Any, ...]]]:
        keys: list[tuple[Any, ...]] = []  # the arrays after the fixed arguments
        names: dict[str, tuple[Any, ...]] = {}

        def need(name: str, key: tuple[Any, ...]) -> str:
            if name not in names:
                names[name] = key
                keys.append(key)
            return name

        for name in (*_ST_FLOAT, *_ST_INT):
            need(f"s_{name}", ("st", name))
        for name in _PRM:
            need(f"p_{name}", ("prm", name))
        for label, src in self.sources.items():
            for key in src.args:
                if key[0] == "const_table":
                    need(src._arg_names[key], ("const_table", label, key[1]))
                else:
                    need(src._arg_names[key], key)
        consts = [f"K{x}{label}" for label in self.sources for x in "FIU"]
        stepped = ", ".join(f"s_{n}[r]" for n in _STEPPED)
        times = "\n".join(
            f"""            x = {"VDAYS[vk]" if name is None else f"s_{name}[r]"}
            if best == best and (x != x or x < best):
                best = x
                kind = {j}"""
            for j, name in enumerate(_TIMES)
            if j > 0
        )
        visit, infusion = int(Event.VISIT), int(Event.INFUSION)
        branches: list[str] = []
        infusion_lines: list[str] = []
        for k in _KINDS:
            label = str(k)
            src = self.sources[label]
            got = _returns(label, src.tr, f"o{label}_")
            lines = [*src.body, f"fl = {got[0]}"]
            if k == visit:
                lines += [f"V{i}[r, vk] = {e}" for i, e in enumerate(got[1:])]
                lines += ["VP[r, vk] = s_pred[r]", "VF[r, vk] = fl"]
                lines += [f"c{i} = V{i}[r, vk]" for i in range(3)]
            else:
                lines += ["c0 = math.nan", "c1 = math.nan", f"c2 = {got[1]}"]
            if k == infusion:
                infusion_lines = lines
                lines = ["fraction = 1.0", *lines]  # a whole day's dose
            branches.append(f"            {'if' if not branches else 'elif'} kind == {k}:")
            branches += ["                " + line for line in lines]
        clocks = "\n".join("            " + line for line in self.sources["clocks"].body)
        params = [
            "todo",
            "LOG",
            "VDAYS",
            "HORIZON",
            "TABLE",
            "DENSE",
            "MATS",
            "EROWS",
            "ECOLS",
            "NL",
            "LDENSE",
            "LTABLE",
            "LKEY",
            "SCRATCH",
            *(f"E_{f}" for f in _LOG_FIELDS),
            *(f"V{i}" for i in range(self.n_values)),
            "VP",
            "VF",
            *consts,
            *names,
        ]
        self.params = params
        log = """            if LOG:
                E_patient[nev] = p_patient[r]
                E_day[nev] = t
                E_kind[nev] = kind
                E_flags[nev] = fl
                E_cpk[nev] = c0
                E_myoglobin[nev] = c1
                E_value[nev] = c2
                E_pred[nev] = s_pred[r]
                E_before[nev] = before
                nev += 1"""
        self.pieces = _Pieces(
            schedule=f"""            vk = s_visit_k[r]
            best = s_pulse_end[r]
            kind = 0
{times}
            end = _fmin(s_death_day[r], HORIZON)
            if best == best and (end != end or end < best):
                best = end
                kind = {int(Event.END)}""",
            step=f"""            t = best
            tau = t - s_t[r]
            node = p_node[r]
            row = -1
            key = np.int64(-1)
            if tau == np.floor(tau) and tau <= HORIZON:  # a whole day: its key fits LDENSE
                key = np.int64(tau) * {disease.RATE_NODES} + node
                if key < DENSE.shape[0]:
                    row = DENSE[key]
            if row >= 0 and row < nrows:
                coef = TABLE[row]
            elif key >= 0 and key < nlocal:
                lrow = LDENSE[key]
                if lrow < 0:
                    if nl == LTABLE.shape[0]:  # full: the caller hands it to the propagator
                        {{table_full}}
                    _expm_entries(MATS[node], tau, EROWS, ECOLS, LTABLE[nl])
                    LDENSE[key] = nl
                    LKEY[nl] = key
                    lrow = nl
                    nl += 1
                coef = LTABLE[lrow]
            else:  # between whole days (a death): computed for this step alone
                _expm_entries(MATS[node], tau, EROWS, ECOLS, SCRATCH)
                coef = SCRATCH
            res = _step_one(coef, {stepped}, p_drive[r], s_c[r], p_ivig_gain[r])
{chr(10).join(f"            s_{n}[r] = res[{i}]" for i, n in enumerate(_STEPPED))}
{clocks}""",
            handle=f"""            before = s_pred[r]
{chr(10).join(branches)}
            else:
                fl = np.int64(0)
                c0 = math.nan
                c1 = math.nan
                c2 = math.nan
{log}""",
            infusion="\n".join("            " + line for line in infusion_lines),
            log=log,
        )
        pc = self.pieces
        signature = ", ".join(params)
        step = pc.step.replace("{table_full}", "return nl, ii, nev")
        text = f"""{chr(10).join(_PREAMBLE)}
import math
from simulator._loops import expm_entries as _expm_entries
from simulator.kernel.step_generated import step_one as _step_one


@numba.njit(cache=True, nogil=True, error_model="numpy")
def fused({signature}):
    nev = 0
    nl = NL
    nrows = TABLE.shape[0]
    nlocal = LDENSE.shape[0]
    for ii in range(todo.shape[0]):
        r = todo[ii]
        while True:
{pc.schedule}
            if best != best:  # no time (NaN): stop here, never spin on it
                return nl, -1 - ii, nev
            if LOG and kind != {int(Event.END)} and nev >= E_day.shape[0]:
                return nl, ii, nev
{step}
            if kind == {int(Event.END)}:
                break
{pc.handle}
    return nl, todo.shape[0], nev
"""
        return text, keys

    # -- running -----------------------------------------------------------------------

    def _arrays(self, st: Any, prm: Any) -> list[Any]:
        out: list[Any] = []
        for key in self.keys:
            kind = key[0]
            if kind == "st":
                out.append(getattr(st, key[1]))
            elif kind == "stl":
                out.append(getattr(st, key[1])[key[2]])
            elif kind in ("prm", "table"):
                out.append(getattr(prm, key[1]))
            else:  # ("const_table", label, index)
                out.append(self.sources[key[1]].tr.graph.tables[key[2]])
        return out

    def _consts(self, prm: Any) -> list[Any]:
        out: list[Any] = []
        for label, src in self.sources.items():
            out += [self.kf[label], self.ki[label], stream_keys(src.tr, prm)]
        return out

    def parts(self, plan: Any, st: Any, prm: Any, res: Any) -> tuple[list[Any], list[Any]]:
        """The loop's arguments that do not change while a chunk runs: those before the
        propagator's table (visit days, horizon) and those after the event log's
        buffers (visit values, constants, state and parameters). Makes the state's
        fields writable in place."""
        _own_arrays(st)
        head = [np.append(plan.visit_days, np.inf).astype(np.float64), float(plan.horizon_days)]
        tail = [
            *(res.visits[name] for name in VISIT_VALUES),
            res.visit_prednisone,
            res.visit_flags,
            *self._consts(prm),
            *self._arrays(st, prm),
        ]
        return head, tail

    def run(self, plan: Any, st: Any, prm: Any, res: Any) -> bool:
        """Run every patient of the chunk to its end, writing the state ``st``, the visit
        values and the event log of ``res``. False (nothing changed) if numba fails to
        compile the loop."""
        n = st.t.shape[0]
        head, tail = self.parts(plan, st, prm, res)
        logging_on = res.events is not None
        per_patient = _EVENT_RATE.get(self.text, _EVENTS_PER_PATIENT)
        cap = int(per_patient * n) + _EVENTS_MIN if logging_on else 0
        ev = [np.empty(cap, dtype=d) for d in _LOG_DTYPES]
        prop = plan.propagator
        local = local_table(plan)
        const = [prop.matrices, disease.ENTRY_ROWS, disease.ENTRY_COLS]
        nl = 0
        logged = 0
        todo = np.arange(n, dtype=np.int64)
        while todo.size:
            table, dense = prop.snapshot()
            call = [todo, logging_on, *head, table, dense, *const, nl, *local, *ev, *tail]
            if self.ready:
                nl, stop, nev = self.fn(*call)
            else:
                try:
                    nl, stop, nev = self.fn(*call)
                except Exception as exc:  # a compiler error, before anything ran
                    log.warning("the chunk loop runs on numpy: numba failed (%s)", exc)
                    self.failed = True
                    return False
                self.ready = True
            if stop < 0:
                r = int(todo[-1 - stop])
                raise undefined_time(int(prm.patient[r]), float(st.t[r]))
            if nev:
                # the log keeps these rows: the next pass writes a new buffer, sized by
                # the events a patient logged in this one
                res.events.extend_arrays(*(a[:nev] for a in ev))
                logged += nev
                if stop < todo.size:
                    cap = int(nev / max(stop, 1) * (todo.size - stop) * 1.25) + _EVENTS_MIN
                    cap = max(cap, 16)  # room for a patient's next event at least
                    ev = [np.empty(cap, dtype=d) for d in _LOG_DTYPES]
            if nl == _LOCAL_ROWS or stop == todo.size:
                hand_over(prop, local, nl)
                nl = 0
            todo = todo[stop:]
        if logging_on and n:
            _EVENT_RATE[self.text] = 1.25 * logged / n
        return True


def pays(fn: Any, text: str, loss_s: float, owed: dict[str, float], compile_s: float) -> bool:
    """Rent or buy: whether to run the compiled ``fn`` (of source ``text``) for work the
    slower path does ``loss_s`` slower: yes when it is in numba's cache on disk or
    ``SIMULATOR_JIT=1``; otherwise once the loss of every call with this source, in this
    process (kept in ``owed``), reaches what compiling costs (``compile_s``): a short
    run of a new structure never waits for the compiler, a long one pays at most twice
    the best choice in hindsight."""
    if jit.mode() == "1" or _on_disk(fn):
        return True
    with _LOCK:
        total = owed[text] = owed.get(text, 0.0) + loss_s
    return total >= compile_s


def local_table(plan: Any) -> list[np.ndarray]:
    """A run's own table of the matrix exponentials the propagator's table lacks,
    computed in the loop (``_loops.expm_entries``, the propagator's bits) and handed to
    the propagator when it fills and at the end: the index by whole-day step and rate
    node, ``_LOCAL_ROWS`` rows, their keys, and a row for a step between whole days."""
    return [
        np.full((int(plan.horizon_days) + 2) * disease.RATE_NODES, -1, dtype=np.int64),
        np.empty((_LOCAL_ROWS, disease.ENTRY_ROWS.size)),
        np.empty(_LOCAL_ROWS, dtype=np.int64),
        np.empty(disease.ENTRY_ROWS.size),
    ]


def hand_over(prop: Any, local: list[np.ndarray], rows: int) -> None:
    """Give the propagator the first ``rows`` rows of a ``local_table`` and empty it."""
    prop.add_computed(local[2][:rows], local[1][:rows])
    local[0].fill(-1)


def _returns(label: str, tr: Any, o: str) -> list[str]:
    """A kind's results as the loop keeps them: its flags as int64 (the visit flags' and
    the event log's type), then the visit values (float64), or the grams of IVIG."""
    out = dict(tr.outputs)
    got = [_cv(f"{o}flags", out["flags"].dtype, INT)]
    if tr.n_values:
        got += [_cv(f"{o}value{i}", out[f"value{i}"].dtype, FLOAT) for i in range(tr.n_values)]
    else:
        got.append(_cv(f"{o}grams", out["grams"].dtype, FLOAT))
    return got


def _on_disk(fn: Any) -> bool:
    """Whether numba's cache holds the compiled loop (its index file exists)."""
    try:
        return os.path.exists(fn._cache._cache_file._index_path)
    except AttributeError:  # another numba: treat it as not compiled yet
        return False


def _own_arrays(st: Any) -> None:
    """Give every state field memory of its own, writable and contiguous (the loop
    writes the fields in place; the numpy path only ever replaces them, so it may leave
    two fields on one buffer, or a read-only broadcast)."""
    fields: list[tuple[str, int | None, np.ndarray]] = []
    for name in type(st).__slots__:
        value = getattr(st, name)
        if isinstance(value, list):
            fields += [(name, j, a) for j, a in enumerate(value)]
        else:
            fields.append((name, None, value))
    spans = []
    for k, (_, _, a) in enumerate(fields):
        start = a.__array_interface__["data"][0]
        spans.append((start, start + max(a.nbytes, 1), k))
    spans.sort()
    bad = {k for _, _, k in spans if not _writable(fields[k][2])}
    reach, owner = -1, -1  # the furthest end so far, and its field
    for start, end, k in spans:
        if start < reach:  # overlaps an earlier field: copy both (then none overlap)
            bad.update((k, owner))
        if end > reach:
            reach, owner = end, k
    for k in bad:
        name, j, a = fields[k]
        fresh = np.array(a, copy=True)
        if j is None:
            setattr(st, name, fresh)
        else:
            getattr(st, name)[j] = fresh


def _writable(a: np.ndarray) -> bool:
    return bool(a.flags.c_contiguous and a.flags.writeable) and a.strides[0] == a.itemsize


def _traces(plan: Any, st: Any, prm: Any) -> dict[str, Traced]:
    """Every event kind's handler and the clocks, traced under ``plan``. An infusion
    center gives part of a day's dose when short of IVIG: the infusion's fraction is an
    input (1.0 here, the center's in ``des_loop``)."""
    infusion = int(Event.INFUSION)
    traces = {str(k): trace_handle(plan, prm, st, k, k == infusion) for k in _KINDS}
    traces["clocks"] = trace_clocks(plan, prm, st)
    return traces


# Loops whose plans were traced through a ``PlanProxy``, most recent first: a plan that
# reads the same and decides the same takes one with its own constants, untraced.
_REUSABLE: list[tuple[tuple[Any, ...], ChunkLoop]] = []
_REUSABLE_MAX = 32
_NOT_REUSABLE: set[str] = set()  # loop sources whose symbolic trace differed or failed


def _layout(st: Any, prm: Any) -> tuple[Any, ...]:
    """The types and shapes a trace reads from the chunk's arrays (not their values)."""
    out: list[Any] = []
    for obj in (st, prm):
        names = getattr(type(obj), "__slots__", None) or sorted(vars(obj))
        for name in names:
            value = getattr(obj, name, None)
            if isinstance(value, list):
                out.append((name, tuple((a.dtype.str, a.ndim) for a in value)))
            elif isinstance(value, np.ndarray):
                out.append((name, value.dtype.str, value.ndim))
            else:
                out.append((name, type(value)))
    return tuple(out)


def build(plan: Any, st: Any, prm: Any) -> ChunkLoop | None:
    """The plan's chunk loop, or None (logged) when some part cannot be traced. A plan
    that differs from an earlier one only in numbers its trace used as constants takes
    that plan's loop with its own constants (``plan_symbols``), without a trace."""
    try:
        layout = _layout(st, prm)
        with _LOCK:
            known = list(_REUSABLE)
        for j, (shape, loop) in enumerate(known):
            if shape != layout:
                continue
            assert loop.recording is not None
            floats = loop.recording.inputs(plan)
            if floats is not None:
                if j:
                    with _LOCK:
                        if (shape, loop) in _REUSABLE:
                            _REUSABLE.remove((shape, loop))
                            _REUSABLE.insert(0, (shape, loop))
                return loop.with_numbers(floats)
        built = ChunkLoop(plan, st, prm, record=True)
        if built.recording is not None:
            with _LOCK:
                _REUSABLE.insert(0, (layout, built))
                del _REUSABLE[_REUSABLE_MAX:]
        return built
    except TraceError as exc:
        log.debug("the chunk loop is not used: %s", exc)
    except Exception as exc:  # a handler the tracer does not know
        log.warning("the chunk loop is not used: tracing failed (%r)", exc)
    return None
