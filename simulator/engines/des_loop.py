"""The SimPy engine's compiled path: one compiled call per patient and instant.

The SimPy engine (``des``) runs every patient as a SimPy process that waits for its next
event, moves its state there and handles the event. On the Python path each event costs
~25 us of kernel calls on Python floats. Here the process calls one compiled function
instead, built from the very statements of the cohort engine's compiled loop
(``chunk_loop._Pieces``: the scheduler, the closed-form step, the clocks, each event
kind's traced handler, the visit values and the event log), so there is no second copy of
the physics: the function runs patient ``r``'s events of the present instant (``RUN``;
the Python path runs them without waiting either), then returns the time of the next
one, which the process waits for with ``env.timeout``. SimPy still owns time and the
interleaving of patients; the state lives in the chunk's arrays, as in the cohort
engine, and the results are the Python path's bytes (``tests/test_engines.py``).

Calling a numba function costs ~70 ns per argument to unbox, and the chunk loop takes
some 200 arrays: ~15-20 us a call, as slow as the Python path. So the arrays go into one
numba ``StructRef`` made once per chunk (and again after a full buffer), and the call
takes the struct's address, the row and the flag (``one_at``: unboxing the struct's
Python proxy instead costs ~0.15 us more a call, ~10 us a patient). ``one`` reads from
it only the arrays the event at hand uses, and the struct holds them as
``_loops.BorrowedArray``, which numba counts no references of: an ordinary array read
from a struct costs a call to ``NRT_incref`` and one to ``NRT_decref`` (~100 a call;
first_line, one patient's events run one after the other: ~1.2 us a call with them,
~0.78 us without).

Like the chunk loop, this path compiles once per plan structure (~15-20 s; kept in
numba's cache on disk) and is taken when it is on disk, with ``SIMULATOR_JIT=1``, or
once the Python path has lost that long in this process (rent or buy,
``chunk_loop.pays``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Generator
from typing import Any

import numpy as np

from ..kernel import disease
from ..kernel.events import Event
from .chunk_loop import (
    _EVENTS_MIN,
    _EVENTS_PER_PATIENT,
    _LOG_DTYPES,
    hand_over,
    local_table,
    pays,
)
from .fused import _PREAMBLE, _compile_module

__all__ = ["COMPILE_SECONDS", "Stepper", "patient", "stepper"]

log = logging.getLogger(__name__)

#: what compiling a plan's one-event function costs (first_line: ~15 s on 2 cores)
COMPILE_SECONDS = 15.0
_OWED: dict[str, float] = {}  # the Python path's loss so far, by source
_LOCK = threading.Lock()
_END = int(Event.END)
# what ``one`` returns when it did not run the event: the event log's buffer or the
# table of matrix exponentials is full (the caller empties it and calls again), or the
# patient's end was handled
_LOG_FULL, _TABLE_FULL, _DONE = -2.0, -3.0, -1.0


_SOURCES: dict[tuple[str, bool, tuple[Any, ...]], str] = {}  # by loop, center, argument kinds
_SOURCES_KEPT = 32  # ~170 KB each (the loop's source in the key, and this one)


def _kind(value: Any) -> Any:
    """What the numba type of an argument depends on (``source`` is the same for equal
    kinds)."""
    if isinstance(value, np.ndarray):
        f = value.flags
        return (value.dtype.str, value.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned)
    return type(value)


def _numba_type(value: Any) -> str:
    """Source text of the numba type of one argument of the chunk loop."""
    import numba

    if isinstance(value, bool | np.bool_):
        return "types.boolean"
    if isinstance(value, float):
        return "types.float64"
    if isinstance(value, int | np.integer):
        return "types.int64"
    ty = numba.typeof(value)  # type: ignore[no-untyped-call]
    dtype = "boolean" if str(ty.dtype) == "bool" else str(ty.dtype)
    # the struct holds arrays numba counts no references of (``_store``)
    return (
        f'_BorrowedArray(types.{dtype}, {ty.ndim}, "{ty.layout}",'
        f" readonly={not value.flags.writeable})"
    )


def _store(name: str, value: Any) -> str:
    """What ``build`` stores for an argument: arrays without a reference count (the
    ``Stepper`` holds them), so that reading them in ``one`` counts nothing."""
    return f"_borrowed({name})" if isinstance(value, np.ndarray) else name


def _indent(block: str) -> str:
    return "\n".join("    " + line if line else line for line in block.split("\n"))


def _dedent(block: str) -> str:
    """A piece of the chunk loop (12 spaces deep) at the depth of ``one``'s body (4)."""
    return "\n".join(line[8:] if line.startswith(" " * 8) else line for line in block.split("\n"))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _with_loads(text: str, loads: dict[str, str], loaded: set[str]) -> str:
    """``text`` (statements 4 spaces deep) with each field it reads loaded from the
    context first: the fields of its top-level statements before it (added to
    ``loaded``), those of an ``if``/``elif``/``else`` block's body at the start of that
    block: an event reads only some of the ~200."""
    fields = set(loads)
    lines = text.split("\n")
    out: list[str] = []
    top: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        code = line.split("#")[0].rstrip()  # a comment may follow the colon
        is_block = (
            line.startswith("    ")
            and not line.startswith("     ")
            and code.endswith(":")
            and code.split()[0] in ("if", "elif", "else:")
        )
        if not is_block:
            top.append(line)
            out.append(line)
            i += 1
            continue
        top.append(line)  # its condition is read before the block
        body = []
        j = i + 1
        while j < len(lines) and lines[j].startswith("     "):
            body.append(lines[j])
            j += 1
        used = sorted({w for b in body for w in _NAME.findall(b)} & fields - loaded)
        out.append(line)
        out += [f"        {loads[n]}" for n in used]
        out += body
        i = j
    first = sorted({w for b in top for w in _NAME.findall(b)} & fields - loaded)
    loaded.update(first)
    return "\n".join([*(f"    {loads[n]}" for n in first), *out])


# the counts every compiled function starts from (``COUNT``: the loop's own table rows,
# events logged) and the sizes of the tables it writes
_HEAD = (
    "    nl = COUNT[0]\n    nev = COUNT[1]\n    nrows = TABLE.shape[0]\n"
    "    nlocal = LDENSE.shape[0]"
)


def _step(pc: Any) -> str:
    """The chunk loop's step (move to the event, the clocks) at the depth of a function's
    body, returning ``_TABLE_FULL`` when the loop's own table is full."""
    return _dedent(pc.step).replace("{table_full}", f"return {_TABLE_FULL}")


def source(loop: Any, values: list[Any], center: bool = False) -> str:
    """The module of a plan's one-event function: a ``StructRef`` type holding the chunk
    loop's arguments (``COUNT`` holding the loop's ``NL``, its event count and a code),
    ``build`` making one from them, ``address`` of one, and ``one(ctx_, r, RUN)``, which
    ``one_at(address, r, RUN)`` calls on the struct at that address; with ``center``, the
    functions of an infusion center's patients too (:func:`_center_source`)."""
    names = [("COUNT" if p == "NL" else p) for p in loop.params if p != "todo"]
    fields = ",\n".join(
        f'        ("{n}", {_numba_type(v)})' for n, v in zip(names, values, strict=True)
    )
    loads = {n: f"{n} = ctx_.{n}" for n in names}
    pc = loop.pieces
    loaded: set[str] = set()
    head = _with_loads(_HEAD, loads, loaded)
    schedule = _with_loads(_dedent(pc.schedule), loads, loaded)
    step = _with_loads(
        f"    if LOG and kind != {_END} and nev >= E_day.shape[0]:\n"
        f"        return {_LOG_FULL}\n" + _step(pc),
        loads,
        loaded,
    )
    handle = _with_loads(_dedent(pc.handle), loads, loaded)
    again = _dedent(pc.schedule)  # its fields are loaded
    return f"""{chr(10).join(_PREAMBLE)}
import math
from numba.core import types
from numba.experimental import structref
from simulator._loops import (
    BorrowedArray as _BorrowedArray,
    borrowed as _borrowed,
    expm_entries as _expm_entries,
    struct_address as _struct_address,
    struct_at as _struct_at,
)
from simulator.kernel.step_generated import step_one as _step_one


@structref.register
class ContextType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


class Context(structref.StructRefProxy):
    pass


structref.define_boxing(ContextType, Context)
CONTEXT = ContextType(
    fields=[
{fields},
    ]
)


@numba.njit(cache=True)
def build({", ".join(names)}):
    ctx_ = structref.new(CONTEXT)
{chr(10).join(f"    ctx_.{n} = {_store(n, v)}" for n, v in zip(names, values, strict=True))}
    return ctx_


@numba.njit(cache=True)
def address(ctx_):
    return _struct_address(ctx_)


@numba.njit(cache=True, error_model="numpy")  # holding the GIL: called per event
def one_at(address, r, RUN):  # the struct at this address (the Stepper holds it)
    return one(_struct_at(address, CONTEXT), r, RUN)


@numba.njit(cache=True, error_model="numpy")
def one(ctx_, r, RUN):
{head}
{schedule}
    if not RUN:
        return best
    while True:  # the events of this instant, then the time of the next one
{_indent(step)}
        COUNT[0] = nl
        if kind == {_END}:
            return {_DONE}
{_indent(handle)}
        COUNT[1] = nev
{_indent(again)}
        if best > t:
            return best
""" + (_center_source(loop, loads) if center else "")


def _center_source(loop: Any, loads: dict[str, str]) -> str:
    """An infusion center's patient (``engines/center.py``) runs on four functions, so
    that the center decides each infusion day between the kernel's steps, as on the
    Python path: ``peek(ctx_, r)`` (the next event's time; its kind in ``COUNT[2]``),
    ``next_one(ctx_, r)`` (move to the next event and run it, unless it is an infusion:
    then ``COUNT[2]`` is 1 and the state waits at its time; returns the next event's
    time), ``advance_to(ctx_, r, day)`` (move the state to a later day, an infusion
    postponed) and ``infuse(ctx_, r, fraction, extra, before)`` (the infusion now, the
    fraction of the day's dose given, its record flagged ``extra``; returns its grams).
    Each returns ``_LOG_FULL`` or ``_TABLE_FULL`` having changed nothing when a buffer is
    full."""
    pc = loop.pieces
    infusion = int(Event.INFUSION)
    head = _HEAD
    log_full = f"    if LOG and nev >= E_day.shape[0]:\n        return {_LOG_FULL}\n"
    step = _step(pc)

    def body(text: str) -> str:
        return _with_loads(text, loads, set())

    peek = body(f"{_dedent(pc.schedule)}\n    COUNT[2] = kind\n    return best")
    next_one = body(
        f"""{head}
    COUNT[2] = 0
{_dedent(pc.schedule)}
    if kind != {_END}:
{_indent(log_full)}
{step}
    COUNT[0] = nl
    if kind == {_END}:
        return {_DONE}
    if kind == {infusion}:
        COUNT[2] = 1
        return t
{_dedent(pc.handle)}
    COUNT[1] = nev
{_dedent(pc.schedule)}
    return best"""
    )
    advance_to = body(
        f"""{head}
    best = day
    if s_t[r] < best:
{_indent(step)}
    COUNT[0] = nl
    return best"""
    )
    infuse = body(
        f"""{head}
{log_full}    t = s_t[r]
    kind = {infusion}
{_dedent(pc.infusion)}
    fl = fl + extra
{_dedent(pc.log)}
    COUNT[1] = nev
    return c2"""
    )
    return f"""

@numba.njit(cache=True, error_model="numpy")
def peek(ctx_, r):
{peek}


@numba.njit(cache=True, error_model="numpy")
def next_one(ctx_, r):
{next_one}


@numba.njit(cache=True, error_model="numpy")
def advance_to(ctx_, r, day):
{advance_to}


@numba.njit(cache=True, error_model="numpy")
def infuse(ctx_, r, fraction, extra, before):
{infuse}
"""


class Stepper:
    """A chunk's one-event function and the buffers it writes (the chunk loop's arrays:
    state, parameters, visit values; the event log; the matrix exponentials the
    propagator's table lacks)."""

    def __init__(
        self, loop: Any, plan: Any, st: Any, prm: Any, res: Any, center: bool = False
    ) -> None:
        n = st.t.shape[0]
        self.res = res
        self.prop = plan.propagator
        self.logging = res.events is not None
        self.cap = int(_EVENTS_PER_PATIENT * n) + _EVENTS_MIN if self.logging else 0
        self.ev = [np.empty(self.cap, dtype=d) for d in _LOG_DTYPES]
        # local table rows, events logged, a code (the center's functions)
        self.count = np.zeros(3, dtype=np.int64)
        self.local = local_table(plan)
        self.head, self.tail = loop.parts(plan, st, prm, res)
        self.const = [self.prop.matrices, disease.ENTRY_ROWS, disease.ENTRY_COLS]
        values = self._values()
        key = (loop.text, center, tuple(_kind(v) for v in values))
        with _LOCK:
            text = _SOURCES.get(key)
        if text is None:
            text = source(loop, values, center)
            with _LOCK:
                if len(_SOURCES) >= _SOURCES_KEPT:  # the oldest first
                    _SOURCES.pop(next(iter(_SOURCES)))
                _SOURCES[key] = text
        self.text = text
        self.module = _compile_module(self.text)
        self.one = self.module.one_at
        self.ctx: Any = None  # the struct of the arrays
        self.addr = 0  # its address, which ``one`` takes (``_loops.struct_at``)
        self._held: list[Any] = []  # the arrays the struct points at

    def _fast_entry(self) -> None:
        """Call the compiled ``one`` without numba's dispatcher, which types every
        argument again on each call; the dispatcher stays in place if this numba keeps
        its entry point elsewhere."""
        overloads = getattr(self.one, "overloads", {})
        if len(overloads) == 1:
            entry = getattr(next(iter(overloads.values())), "entry_point", None)
            if callable(entry):
                self.one = entry

    def _values(self) -> list[Any]:
        table, dense = self.prop.snapshot()
        return [
            self.logging,
            *self.head,
            table,
            dense,
            *self.const,
            self.count,
            *self.local,
            *self.ev,
            *self.tail,
        ]

    def start(self) -> None:
        """Make the struct of the arrays (compiling ``build`` on first use); the struct
        counts no references to them, so this object holds them while it is used."""
        values = self._values()
        self.ctx = self.module.build(*values)
        self.addr = self.module.address(self.ctx)
        self._held = values

    def service(self, code: float) -> None:
        """Empty the full buffer ``code`` names and make the struct again."""
        if code == _LOG_FULL:
            self._flush_log(grow=True)
        else:
            self._flush_table()
        self.start()

    def _flush_log(self, grow: bool) -> None:
        nev = int(self.count[1])
        if nev:
            # the log keeps these rows: later events go to new buffers
            self.res.events.extend_arrays(*(a[:nev] for a in self.ev))
            self.count[1] = 0
            if grow:
                self.ev = [np.empty(self.cap, dtype=d) for d in _LOG_DTYPES]

    def _flush_table(self) -> None:
        nl = int(self.count[0])
        if nl:
            hand_over(self.prop, self.local, nl)
            self.count[0] = 0

    def log_row(self, *fields: Any) -> None:
        """Log one event from Python (``_LOG_FIELDS``' order), after those logged so far."""
        if not self.logging:
            return
        if self.count[1] >= self.ev[0].shape[0]:
            self.service(_LOG_FULL)
        k = int(self.count[1])
        for a, v in zip(self.ev, fields, strict=True):
            a[k] = v
        self.count[1] = k + 1

    def finish(self) -> None:
        """Hand the log rows and the computed matrix exponentials over."""
        self._flush_log(grow=False)
        self._flush_table()


def stepper(
    loop: Any, plan: Any, st: Any, prm: Any, res: Any, loss_s: float, center: bool = False
) -> Stepper | None:
    """The chunk's compiled one-event function (``center``: an infusion center's
    functions), or None: not worth compiling yet (the chunk loop's rule,
    ``chunk_loop.pays``), or numba failed (then the Python path runs, with the same
    bytes)."""
    try:
        s = Stepper(loop, plan, st, prm, res, center)
    except Exception as exc:  # an argument numba has no type for
        log.warning("the SimPy engine runs on Python: %s", exc)
        return None
    first = s.module.next_one if center else s.one
    if not pays(first, s.text, loss_s, _OWED, COMPILE_SECONDS):
        return None
    try:
        s.start()
        if st.t.shape[0]:
            # compiles them: reads the next event, changes nothing
            if center:
                _compile_center(s)
            else:
                s.one(s.addr, 0, False)
                s._fast_entry()
    except Exception as exc:  # a compiler error, before anything ran
        log.warning("the SimPy engine runs on Python: numba failed (%s)", exc)
        return None
    return s


def _compile_center(s: Stepper) -> None:
    """Compile an infusion center's functions for this chunk's struct (reading the next
    event of row 0; nothing changes)."""
    from numba import typeof, types

    m, ctx = s.module, typeof(s.ctx)  # type: ignore[no-untyped-call]
    m.peek(s.ctx, 0)
    m.next_one.compile((ctx, types.int64))
    m.advance_to.compile((ctx, types.int64, types.float64))
    m.infuse.compile((ctx, types.int64, types.float64, types.int64, types.float64))


def patient(env: Any, s: Stepper, r: int) -> Generator[Any, Any, None]:
    """Patient ``r``'s SimPy process: wait for each event, then run it compiled."""
    one, timeout = s.one, env.timeout
    # SimPy's clock, kept here: a timeout of ``wait`` resumes the process at
    # ``now + wait`` computed as SimPy computes it (``Environment.schedule``)
    now = env.now
    t = one(s.addr, r, False)
    while True:
        wait = t - now
        if wait > 0:
            yield timeout(wait)
            now = now + wait
        t = one(s.addr, r, True)  # the struct's: another process may have made it again
        if t < 0:
            while t < _DONE:  # a full buffer: nothing ran
                s.service(t)
                t = one(s.addr, r, True)
            if t < 0:  # the patient's end
                return
