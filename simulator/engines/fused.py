"""Traces of the handlers written out as numba code.

``kernel.trace`` records what ``handlers.handle`` (or ``handlers.advance_clocks``) does
for one patient under a plan; :class:`_Source` writes that record out as statements for
one row ``r`` of the chunk's arrays: read each input at the row, compute every value in
the traced order with the type numpy gives it, write the changed state fields back.
``chunk_loop`` puts the statements of every event kind into one loop over a chunk's
patients; :class:`_Kernel` runs one trace as a loop over given rows (the form the tests
check single operations with).

The code gives the numpy path's bytes: the same IEEE operations in the same order (numba
contracts nothing without ``fastmath``), ``exp`` and ``log`` from ``simulator._loops``
(``fmath``'s algorithms), scipy's own ``ndtri`` for inverse CDFs, ``minimum``/``maximum``
with numpy's NaN and signed-zero rules, and explicit conversions wherever numpy converts
(int to float in mixed arithmetic, bool to number, float to int on assignment to an int
field). Stream draws are made in the loop, from the stream keys of the chunk's seed.
``tests/test_engines.py`` runs every shipped scenario with and without numba and
compares every output byte for byte.

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
from scipy import special

from ..kernel.trace import (
    BOOL,
    DTYPES,
    FLOAT,
    INT,
    Node,
    Traced,
    TraceError,
    dtype_code,
)
from ..scenario.schema import lognormal_params
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
_ARG_ORDER = ("st", "stl", "prm", "table", "const_table", "arg", "out")
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
    """The generated code of a trace and the arguments it takes, in order: the loop over
    ``sel`` (``text``), or, with a ``prefix``, only the statements for row ``r`` (``body``,
    for ``chunk_loop``; the trace's outputs become locals ``o{prefix}_{name}`` and its
    argument ``t`` the local ``t``)."""

    def __init__(
        self, tr: Traced, st_dtypes: dict[tuple[Any, ...], str], prefix: str | None = None
    ) -> None:
        self.tr = tr
        self.prefix = prefix
        p = prefix or ""
        self.kf, self.ki, self.ku, self.v = f"KF{p}", f"KI{p}", f"KU{p}", f"v{p}_"
        self.args: list[tuple[Any, ...]] = []  # ("st", name) ... in the call's order
        self._arg_names: dict[tuple[Any, ...], str] = {}
        self.st_dtypes = st_dtypes
        self.ppf_consts: list[float] = []  # after the graph's own float constants in KF
        self.body = self._body()
        self.text = "" if prefix is not None else self._loop()

    def float_consts(self) -> np.ndarray:
        """The values of KF: the graph's constants, then those of the inverse CDFs."""
        return np.array([*self.tr.graph.float_consts, *self.ppf_consts], dtype=np.float64)

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
                name = f"T{self.prefix or ''}_{key[1]}"
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
                return name if self.prefix is not None else f"{self._arg(('arg', name))}[ii]"
            cols = ", ".join(str(j) for j in a[2:])
            return f"{self._arg(('table', name))}[r, {cols}]"
        if op == "kfloat":
            return f"{self.kf}[{a[0]}]"
        if op == "kint":
            return f"{self.ki}[{a[0]}]"
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
            u = f"_uniform({self.ku}[{a[0]}], {pid}, {idx})"
            return u if op == "uniform" else f"(-_log({u}))"
        if op == "ppf":
            return self._ppf(a[0], _cv(v(a[1]), a[1].dtype, FLOAT))
        if op == "thin":  # one of xp.thin's results, from the call ``_body`` wrote
            which = a[0]
            got = f"{self.v}{n.id - which}_t[{which}]"
            return f"np.int64({got})" if which == 0 else got
        raise TraceError(f"no loop code for {op}")

    def _thin_call(self, n: Node, v: Callable[[Node], str]) -> str:
        """The one call of ``_loops.thin`` that gives the three results of an ``xp.thin``
        (the loop over passed-over candidates runs once)."""
        sg, sa = n.args[1], n.args[2]
        rest = ", ".join(v(x) for x in n.args[3:])
        return f"_thin({self.ku}[{sg}], {self.ku}[{sa}], {rest})"

    def _ppf(self, dist: Any, u: str) -> str:
        """``population.ppf(dist, u)`` for one value: the same operations in the same
        order, scipy's own ``ndtri``; the distribution's numbers are constants in KF."""

        def k(x: Any) -> str:
            self.ppf_consts.append(float(x))
            return f"{self.kf}[{len(self.tr.graph.float_consts) + len(self.ppf_consts) - 1}]"

        if dist.dist == "fixed":
            return k(dist.value)
        if dist.dist == "uniform":
            return f"({k(dist.low)} + {k(dist.high - dist.low)} * {u})"
        lo, hi = dist.standard_bounds()
        if lo == -np.inf and hi == np.inf:
            z = f"_ndtri({u})"
        elif lo > 0:  # population._truncated_std_normal
            a, b = special.ndtr(-lo), special.ndtr(-hi)
            z = f"(-_ndtri({k(a)} - {u} * {k(a - b)}))"
        else:
            a, b = special.ndtr(lo), special.ndtr(hi)
            z = f"_ndtri({k(a)} + {u} * {k(b - a)})"
        if dist.dist == "lognormal":
            mu, sigma = lognormal_params(dist)
            return f"_exp({k(mu)} + {k(sigma)} * {z})"
        return f"({k(float(dist.mean))} + {k(float(dist.sd))} * {z})"

    def _body(self) -> list[str]:
        """The statements for row ``r``: the live values in the traced order, then the
        state writes and the outputs."""
        tr = self.tr
        nodes = tr.graph.nodes
        # the nodes the outputs and writes need: one sweep from the last node back (a
        # node's operands come before it)
        live = bytearray(len(nodes))
        for _, n in (*tr.outputs, *tr.writes):
            live[n.id] = 1
        for n in reversed(nodes):
            if live[n.id]:
                for a in n.args:
                    if type(a) is Node:
                        live[a.id] = 1
        body: list[str] = []
        name = self.v

        # constants are written into the expressions that use them, not given statements
        # of their own (numba's compile time grows with the number of statements)
        inline = {
            n.id: self._expr(n, lambda x: f"{name}{x.id}")
            for n in nodes
            if live[n.id] and n.op in ("kfloat", "kint", "bool")
        }

        def v(n: Node) -> str:
            return inline.get(n.id) or f"{name}{n.id}"

        thin_calls: set[int] = set()
        for n in nodes:
            if live[n.id] and n.id not in inline:
                if n.op == "thin":  # xp.thin's three results: its nodes n - which
                    first = n.id - n.args[0]
                    if first not in thin_calls:
                        thin_calls.add(first)
                        body.append(f"{name}{first}_t = {self._thin_call(n, v)}")
                body.append(f"{name}{n.id} = {self._expr(n, v)}")
        for key, n in tr.writes:
            target = self._arg(key)
            body.append(f"{target}[r] = {_cv(v(n), n.dtype, self.st_dtypes[key])}")
        for out, n in tr.outputs:
            if self.prefix is not None:
                body.append(f"o{self.prefix}_{out} = {v(n)}")
            else:
                body.append(f"{self._arg(('out', out))}[ii] = {v(n)}")
        # arguments grouped by where they come from, so a call gathers them in a few
        # steps (``_Kernel.__call__``)
        self.args.sort(key=lambda k: _ARG_ORDER.index(k[0]))
        return body

    def _loop(self) -> str:
        params = ", ".join(["sel", "KF", "KI", "KU", *(self._arg_names[k] for k in self.args)])
        lines = [
            *_PREAMBLE,
            '@numba.njit(cache=True, nogil=True, error_model="numpy")',
            f"def fused({params}):",
            "    for ii in range(sel.shape[0]):",
            "        r = sel[ii]",
            *("        " + line for line in self.body),
            "",
        ]
        return "\n".join(lines)


_PREAMBLE = (
    "# generated by simulator/engines/fused.py from a trace of kernel/handlers.py",
    "import numba",
    "import numpy as np",
    "from simulator._loops import exp_one as _exp, log_one as _log, ndtri as _ndtri",
    "from simulator._loops import fmin as _fmin, fmax as _fmax",
    "from simulator._loops import imin as _imin, imax as _imax",
    "from simulator._loops import uniform_draw as _uniform, select as _select",
    "from simulator._loops import thin as _thin",
    "",
    "",
)


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
    return _compile_module(text).fused


def _compile_module(text: str) -> Any:
    """The module of a generated source, its functions compiled by numba on first call
    (and kept in numba's cache next to the source)."""
    if not _DIGEST:
        _DIGEST.append(_loops_digest())
    key = hashlib.sha256((_DIGEST[0] + text).encode()).hexdigest()[:24]
    with _LOCK:
        got = _COMPILED.get(key)
        if got is not None:
            return got
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
        _COMPILED[key] = module
        return module


class _Kernel:
    """One event kind's compiled loop for one plan, and how to call it."""

    def __init__(self, tr: Traced, st: Any) -> None:
        dtypes = {key: dtype_code(_field(st, key).dtype) for key, _ in tr.writes}
        src = _Source(tr, dtypes)
        self.tr = tr
        self.fn = _compile(src.text)
        self.kf = src.float_consts()
        self.ki = np.array(tr.graph.int_consts, dtype=np.int64)
        self.ready = False  # called once without error (numba compiled it)
        # the arguments after (sel, KF, KI, KU), in the source's order: state fields,
        # state list entries, parameters, constant tables, call arrays, outputs
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
        call: list[Any] = [sel, self.kf, self.ki, stream_keys(self.tr, prm)]
        call += [getattr(st, name) for name in self._st]
        call += [getattr(st, name)[j] for name, j in self._stl]
        call += [getattr(prm, name) for name in self._prm]
        call += self._tables
        call += [arrays[name] for name in self._call_args]
        outs: list[np.ndarray] = [np.empty(sel.size, dtype=dt) for dt in self._out_dtypes]
        call += outs
        self.fn(*call)
        return dict(zip(self._outs, outs, strict=True))


class FusedHandlers:
    """The compiled loop of one plan (``chunk_loop.ChunkLoop``), traced and compiled on
    first use; None when the plan cannot be traced (the numpy path runs it). Holds no
    reference to the plan (``for_plan`` keeps one per living plan)."""

    def __init__(self) -> None:
        self._chunk: Any = None
        self._chunk_built = False

    def chunk_loop(self, plan: Any, st: Any, prm: Any) -> Any:
        """The plan's whole-chunk loop, or None (the numpy path runs the chunk)."""
        if not self._chunk_built:
            from .chunk_loop import build

            self._chunk_built = True
            self._chunk = build(plan, st, prm)
        if self._chunk is not None and self._chunk.failed:
            self._chunk = None
        return self._chunk


def stream_keys(tr: Traced, prm: Any) -> np.ndarray:
    """The key of each stream a trace draws from (``KU``), for this chunk's seed."""
    streams = tr.graph.streams
    if not streams:
        return _NO_KEYS
    keys = [stream_key(int(getattr(prm, field)), purpose) for field, purpose in streams]
    return np.array(keys, dtype=np.uint64)


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
