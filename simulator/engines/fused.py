"""The cohort engine's handlers as compiled loops, generated from their traces.

For each event kind, ``kernel.trace`` records what ``handlers.handle`` does for one
patient under a plan; this module writes that record out as the body of a numba loop
over the patients whose event it is (``sel``, rows of the working arrays): read each
input at the patient's row, compute every value in the traced order with the type numpy
gives it, write the changed state fields back. One call replaces the hundreds of numpy
calls, gathers and scatters that the same event costs on arrays (``_StateView``).

The loop gives the numpy path's bytes: the same IEEE operations in the same order
(numba contracts nothing without ``fastmath``), ``exp`` and ``log`` from
``simulator._loops`` (``fmath``'s algorithms), ``minimum``/``maximum`` with numpy's NaN
and signed-zero rules, and explicit conversions wherever numpy converts (int to float in
mixed arithmetic, bool to number, float to int on assignment to an int field). Stream
draws and inverse CDFs are computed before the loop with numpy (``trace.Graph.hoisted``).
``tests/test_engines.py`` runs every shipped scenario with and without the loops and
compares every output file byte for byte.

Numbers of the plan are passed in arrays, so the generated source depends only on the
plan's structure (its rules, adverse events, switches): plans that differ only in
numbers share one compiled loop. Sources are written once to a cache directory (by the
hash of the source and of ``_loops.py``) and compiled with numba's cache, so a process
loads a loop compiled by an earlier one in milliseconds.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..kernel import handlers
from ..kernel.events import Event
from ..kernel.trace import (
    BOOL,
    DTYPES,
    FLOAT,
    INT,
    Node,
    Traced,
    TraceError,
    dtype_code,
    trace_clocks,
    trace_handle,
)
from ..kernel.xp import ARRAY
from ..streams import stream_key

__all__ = ["FusedHandlers", "for_plan"]

log = logging.getLogger(__name__)

_GENERATOR_VERSION = "1"
_SYM = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "truediv": "/",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "eq": "==",
    "ne": "!=",
}
_COMPARE = ("lt", "le", "gt", "ge", "eq", "ne")
_HELPERS = {"exp": "_exp", "log": "_log"}
_ARG_ORDER = ("st", "stl", "prm", "table", "const_table", "hoisted", "arg", "out")
_NO_KEYS = np.zeros(0, dtype=np.uint64)


def _cv(expr: str, have: str, want: str) -> str:
    """``expr`` of type ``have`` as numpy converts it to ``want``."""
    if have == want:
        return expr
    if want == FLOAT:  # from int, or from bool (True is 1.0)
        return f"np.float64({expr})"
    if want == INT:  # from bool, or from float (truncated, as numpy assigns)
        return f"np.int64({expr})"
    return f"({expr} != 0)"  # to bool: nonzero (NaN is True, as in numpy)


def _common(a: str, b: str) -> str:
    return FLOAT if FLOAT in (a, b) else INT if INT in (a, b) else BOOL


class _Source:
    """The generated loop's source and the arguments it takes, in order."""

    def __init__(self, tr: Traced, st_dtypes: dict[tuple[Any, ...], str]) -> None:
        self.tr = tr
        self.args: list[tuple[Any, ...]] = []  # ("st", name) ... in the call's order
        self._arg_names: dict[tuple[Any, ...], str] = {}
        self.st_dtypes = st_dtypes
        self.text = self._generate()

    def _arg(self, key: tuple[Any, ...]) -> str:
        name = self._arg_names.get(key)
        if name is None:
            kind = key[0]
            if kind == "st":
                name = f"s_{key[1]}"
            elif kind == "stl":
                name = f"sl_{key[1]}_{key[2]}"
            elif kind in ("prm", "table"):
                name = f"p_{key[1]}"
            elif kind == "const_table":
                name = f"T{key[1]}"
            elif kind == "hoisted":
                name = f"H{key[1]}"
            elif kind == "arg":
                name = f"a_{key[1]}"
            else:  # ("out", name)
                name = f"o_{key[1]}"
            self._arg_names[key] = name
            self.args.append(key)
        return name

    def _expr(self, n: Node, v: Callable[[Node], str]) -> str:
        op, a = n.op, n.args
        if op == "in":
            kind, name = a[0], a[1]
            if kind == "st":
                return f"{self._arg(('st', name))}[r]"
            if kind == "stl":
                return f"{self._arg(('stl', name, a[2]))}[r]"
            if kind == "prm":
                return f"{self._arg(('prm', name))}[r]"
            if kind == "arg":  # an array of the call, one value per row of sel
                return f"{self._arg(('arg', name))}[ii]"
            cols = ", ".join(str(j) for j in a[2:])
            return f"{self._arg(('table', name))}[r, {cols}]"
        if op == "kfloat":
            return f"KF[{a[0]}]"
        if op == "kint":
            return f"KI[{a[0]}]"
        if op == "bool":
            return "True" if a[0] else "False"
        if op in ("add", "sub", "mul") and n.dtype == BOOL:
            if op == "sub":
                raise TraceError("boolean subtraction")
            x, y = _cv(v(a[0]), a[0].dtype, BOOL), _cv(v(a[1]), a[1].dtype, BOOL)
            return f"({x} | {y})" if op == "add" else f"({x} & {y})"
        if op in ("add", "sub", "mul", "truediv"):
            want = FLOAT if op == "truediv" else n.dtype
            x, y = _cv(v(a[0]), a[0].dtype, want), _cv(v(a[1]), a[1].dtype, want)
            return f"({x} {_SYM[op]} {y})"
        if op in _COMPARE:
            c = _common(a[0].dtype, a[1].dtype)
            x, y = _cv(v(a[0]), a[0].dtype, c), _cv(v(a[1]), a[1].dtype, c)
            return f"({x} {_SYM[op]} {y})"
        if op == "neg":
            if n.dtype == BOOL:
                raise TraceError("boolean negation")
            return f"(-{_cv(v(a[0]), a[0].dtype, n.dtype)})"
        if op in _HELPERS:
            return f"{_HELPERS[op]}({_cv(v(a[0]), a[0].dtype, FLOAT)})"
        if op in ("minimum", "maximum"):
            if n.dtype == BOOL:
                raise TraceError("minimum of booleans")
            fn = ("_f" if n.dtype == FLOAT else "_i") + op[:3]
            x, y = _cv(v(a[0]), a[0].dtype, n.dtype), _cv(v(a[1]), a[1].dtype, n.dtype)
            return f"{fn}({x}, {y})"
        if op == "where":
            c = _cv(v(a[0]), a[0].dtype, BOOL)
            x, y = _cv(v(a[1]), a[1].dtype, n.dtype), _cv(v(a[2]), a[2].dtype, n.dtype)
            return f"_select({c}, {x}, {y})"
        if op in ("logical_and", "logical_or"):
            x, y = _cv(v(a[0]), a[0].dtype, BOOL), _cv(v(a[1]), a[1].dtype, BOOL)
            return f"({x} {'&' if op == 'logical_and' else '|'} {y})"
        if op == "logical_not":
            return f"(not {_cv(v(a[0]), a[0].dtype, BOOL)})"
        if op == "floor":
            if a[0].dtype == BOOL:
                raise TraceError("floor of a boolean")
            return f"np.floor({_cv(v(a[0]), a[0].dtype, FLOAT)})"
        if op == "pick":
            table, k = a
            cols = "".join(f"{j}, " for j in table.fixed)
            return f"{self._arg(('table', table.name))}[r, {cols}{_cv(v(k), k.dtype, INT)}]"
        if op == "take":
            return f"{self._arg(('const_table', a[0]))}[{_cv(v(a[1]), a[1].dtype, INT)}]"
        if op == "take2":
            i, j = _cv(v(a[1]), a[1].dtype, INT), _cv(v(a[2]), a[2].dtype, INT)
            return f"{self._arg(('const_table', a[0]))}[{i}, {j}]"
        if op in ("uniform", "exponential"):  # draw ``index`` of a patient's stream
            pid, idx = v(a[1]), v(a[2])
            u = f"_uniform(KU[{a[0]}], {pid}, {idx})"
            return u if op == "uniform" else f"(-_log({u}))"
        if op == "ppf":  # computed before the loop (``_Kernel._hoisted``)
            return f"{self._arg(('hoisted', a[0]))}[ii]"
        raise TraceError(f"no loop code for {op}")

    def _generate(self) -> str:
        tr = self.tr
        roots = [n for _, n in tr.outputs] + [n for _, n in tr.writes]
        live: set[int] = set()
        stack = list(roots)
        while stack:
            x = stack.pop()
            if x.id in live:
                continue
            live.add(x.id)
            if x.op != "ppf":  # its argument is read before the loop
                stack.extend(a for a in x.args if isinstance(a, Node))
        body: list[str] = []

        # constants are written into the expressions that use them, not given statements
        # of their own (numba's compile time grows with the number of statements)
        inline = {
            n.id: self._expr(n, lambda x: f"v{x.id}")
            for n in tr.graph.nodes
            if n.id in live and n.op in ("kfloat", "kint", "bool")
        }

        def v(n: Node) -> str:
            return inline.get(n.id) or f"v{n.id}"

        for n in tr.graph.nodes:
            if n.id in live and n.id not in inline:
                body.append(f"v{n.id} = {self._expr(n, v)}")
        for key, n in tr.writes:
            target = self._arg(key)
            body.append(f"{target}[r] = {_cv(v(n), n.dtype, self.st_dtypes[key])}")
        for name, n in tr.outputs:
            body.append(f"{self._arg(('out', name))}[ii] = {v(n)}")
        # arguments grouped by where they come from, so a call gathers them in a few
        # steps (``_Kernel.__call__``)
        self.args.sort(key=lambda k: _ARG_ORDER.index(k[0]))
        params = ", ".join(["sel", "KF", "KI", "KU", *(self._arg_names[k] for k in self.args)])
        lines = [
            "# generated by simulator/engines/fused.py from a trace of kernel/handlers.py",
            "import numba",
            "import numpy as np",
            "from simulator._loops import exp_one as _exp, log_one as _log",
            "from simulator._loops import fmin as _fmin, fmax as _fmax",
            "from simulator._loops import imin as _imin, imax as _imax",
            "from simulator._loops import uniform_draw as _uniform, select as _select",
            "",
            "",
            '@numba.njit(cache=True, nogil=True, error_model="numpy")',
            f"def fused({params}):",
            "    for ii in range(sel.shape[0]):",
            "        r = sel[ii]",
            *("        " + line for line in body),
            "",
        ]
        return "\n".join(lines)


_COMPILED: dict[str, Any] = {}
_LOCK = threading.Lock()


def _cache_dir() -> Path:
    base = os.environ.get("SIMULATOR_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "simulator",
    )
    return Path(base) / f"fused-{_GENERATOR_VERSION}"


def _loops_digest() -> str:
    from .. import _loops, fmath

    h = hashlib.sha256()
    for mod in (_loops, fmath):
        h.update(Path(str(mod.__file__)).read_bytes())
    return h.hexdigest()[:16]


_DIGEST: list[str] = []
_FALLBACK: list[Path] = []


def _compile(text: str) -> Any:
    """The compiled ``fused`` of a generated source (written once to the cache
    directory; numba's cache keeps the machine code next to it)."""
    if not _DIGEST:
        _DIGEST.append(_loops_digest())
    key = hashlib.sha256((_DIGEST[0] + text).encode()).hexdigest()[:24]
    with _LOCK:
        fn = _COMPILED.get(key)
        if fn is not None:
            return fn
        name = f"k_{key}"
        try:
            folder = _cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:  # not writable: this process's own folder, removed at exit
            if not _FALLBACK:
                _FALLBACK.append(Path(tempfile.mkdtemp(prefix="simulator-fused-")))
                atexit.register(shutil.rmtree, _FALLBACK[0], True)
            folder = _FALLBACK[0]
        path = folder / f"{name}.py"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(f"simulator_fused_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # numba's cache finds the module's globals there
        spec.loader.exec_module(module)
        fn = _COMPILED[key] = module.fused
        return fn


class _Kernel:
    """One event kind's compiled loop for one plan, and how to call it."""

    def __init__(self, tr: Traced, st: Any) -> None:
        dtypes = {key: dtype_code(_field(st, key).dtype) for key, _ in tr.writes}
        src = _Source(tr, dtypes)
        self.tr = tr
        self.fn = _compile(src.text)
        self.kf = np.array(tr.graph.float_consts, dtype=np.float64)
        self.ki = np.array(tr.graph.int_consts, dtype=np.int64)
        self.ready = False  # called once without error (numba compiled it)
        # the arguments after (sel, KF, KI, KU), in the source's order: state fields,
        # state list entries, parameters, constant tables, hoisted values, call arrays,
        # outputs
        keys = src.args
        self._st = [k[1] for k in keys if k[0] == "st"]
        self._stl = [(k[1], k[2]) for k in keys if k[0] == "stl"]
        self._prm = [k[1] for k in keys if k[0] in ("prm", "table")]
        self._tables = [tr.graph.tables[k[1]] for k in keys if k[0] == "const_table"]
        self._call_args = [k[1] for k in keys if k[0] == "arg"]
        self._outs = [k[1] for k in keys if k[0] == "out"]
        self._out_dtypes = [DTYPES[dict(tr.outputs)[name].dtype] for name in self._outs]

    def __call__(self, st: Any, prm: Any, sel: np.ndarray, **arrays: np.ndarray) -> dict[str, Any]:
        """Run the loop on rows ``sel``; its outputs by name."""
        call: list[Any] = [sel, self.kf, self.ki, self._stream_keys(prm)]
        call += [getattr(st, name) for name in self._st]
        call += [getattr(st, name)[j] for name, j in self._stl]
        call += [getattr(prm, name) for name in self._prm]
        call += self._tables
        call += [self._hoisted(st, prm, sel, n) for n in self.tr.graph.hoisted]
        call += [arrays[name] for name in self._call_args]
        outs: list[np.ndarray] = [np.empty(sel.size, dtype=dt) for dt in self._out_dtypes]
        call += outs
        self.fn(*call)
        return dict(zip(self._outs, outs, strict=True))

    def first_call(
        self, label: str, st: Any, prm: Any, sel: np.ndarray, **arrays: np.ndarray
    ) -> dict[str, Any] | None:
        """A call; the first one returns None, with a log line, if numba fails to compile
        the loop (it compiles at the first call, before the loop changes anything)."""
        if self.ready:
            return self(st, prm, sel, **arrays)
        try:
            out = self(st, prm, sel, **arrays)
        except Exception as exc:  # a compiler error: numpy gives the same bits
            log.warning("%s runs on numpy: numba failed (%s)", label, exc)
            return None
        self.ready = True
        return out

    def _stream_keys(self, prm: Any) -> np.ndarray:
        """The key of each stream the loop draws from, for this chunk's seed."""
        streams = self.tr.graph.streams
        if not streams:
            return _NO_KEYS
        keys = [stream_key(int(getattr(prm, field)), purpose) for field, purpose in streams]
        return np.array(keys, dtype=np.uint64)

    @staticmethod
    def _hoisted(st: Any, prm: Any, sel: np.ndarray, n: Node) -> np.ndarray:
        """An inverse CDF of the loop, computed with numpy on the input's rows ``sel``."""
        _, dist, u = n.args
        kind, name = u.args[0], u.args[1]
        full = getattr(st if kind in ("st", "stl") else prm, name)
        if kind == "stl":
            full = full[u.args[2]]
        rows = full[(sel, *u.args[2:])] if kind == "prmcol" else full[sel]
        return np.ascontiguousarray(ARRAY.ppf(dist, rows), dtype=np.float64)


class FusedHandlers:
    """The compiled loops of one plan, traced and compiled on first use of each kind;
    None for a kind the trace cannot express (the numpy path runs it). Holds no
    reference to the plan (``for_plan`` keeps one per living plan)."""

    def __init__(self) -> None:
        self.kernels: dict[int, _Kernel | None] = {}
        self._clocks: _Kernel | None = None
        self._clocks_traced = False
        self._rows: dict[int, np.ndarray] = {}

    def run(
        self, plan: Any, kind: int, st: Any, prm: Any, sel: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None, np.ndarray] | None:
        """Run event ``kind`` for rows ``sel`` of the working arrays (what
        ``handlers.handle`` returns); None when the numpy path must run it."""
        if kind not in self.kernels:
            self.kernels[kind] = _build(
                f"event {Event(kind).name}", lambda: trace_handle(plan, prm, st, kind), st
            )
        kernel = self.kernels[kind]
        if kernel is None:
            return None
        out = kernel.first_call(f"event {Event(kind).name}", st, prm, sel)
        if out is None:
            self.kernels[kind] = None
            return None
        values = tuple(out[f"value{i}"] for i in range(kernel.tr.n_values)) or None
        return out["flags"], values, out["grams"]

    def clocks(self, plan: Any, st: Any, prm: Any) -> Callable[[np.ndarray], None] | None:
        """``handlers.advance_clocks`` for every working row as a function of ``t``, or
        None (numpy runs it)."""
        if not self._clocks_traced:
            self._clocks_traced = True
            self._clocks = _build("the clocks", lambda: trace_clocks(plan, prm, st), st)
        kernel = self._clocks
        if kernel is None:
            return None

        def run(t: np.ndarray) -> None:
            rows = self._rows.get(t.size)
            if rows is None:
                rows = self._rows[t.size] = np.arange(t.size)
            if kernel.first_call("the clocks", st, prm, rows, t=t) is None:
                self._clocks = None  # numba failed before anything changed: numpy
                handlers.advance_clocks(ARRAY, plan, prm, st, t, t - st.t)

        return run


def _build(label: str, make_trace: Callable[[], Traced], st: Any) -> _Kernel | None:
    """The compiled loop of a trace, or None (logged) when the trace cannot be made."""
    try:
        return _Kernel(make_trace(), st)
    except TraceError as exc:
        log.debug("%s runs on numpy: %s", label, exc)
    except Exception as exc:  # a handler the tracer does not know: numpy runs it
        log.warning("%s runs on numpy: tracing failed (%r)", label, exc)
    return None


def _field(st: Any, key: tuple[Any, ...]) -> np.ndarray:
    """The state array of a write's key: ("st", name) or ("stl", name, j)."""
    full = getattr(st, key[1])
    return full[key[2]] if key[0] == "stl" else full  # type: ignore[no-any-return]


_BY_PLAN: dict[int, tuple[weakref.ref[Any], FusedHandlers]] = {}


def for_plan(plan: Any) -> FusedHandlers:
    """The plan's compiled handlers, kept while the plan lives."""
    key = id(plan)
    with _LOCK:
        got = _BY_PLAN.get(key)
        if got is not None and got[0]() is plan:
            return got[1]
        handlers = FusedHandlers()
        _BY_PLAN[key] = (weakref.ref(plan), handlers)
        weakref.finalize(plan, _BY_PLAN.pop, key, None)
        return handlers
