"""The kernel's handlers as data: run one with symbols instead of numbers, and record
every operation it makes.

The handlers are written once, against ``xp`` (``kernel.xp``), and run on floats (the
SimPy engine) and on numpy arrays (the cohort engine). This module gives them a third
namespace, ``TRACE``, whose values are :class:`Node` objects: running
``handlers.handle(TRACE, plan, params, state, kind)`` on a symbolic state and parameters
returns, instead of numbers, the graph of every operation the numpy path would make for
one patient, in the order it makes them, with the result type numpy gives each one
(float64, int64 or bool, found by asking numpy on one-element arrays). Everything the
plan decides in Python (which rules exist, how many adverse events, whether deaths are
on) is resolved while tracing; a branch on a traced value raises :class:`TraceError`.

``simulator.engines.fused`` writes a graph out as numba code for one patient's row, and
``simulator.engines.chunk_loop`` puts the code of every event kind into one loop over a
chunk's patients. Numbers of the plan (doses, rates, thresholds) become entries of
constant arrays, not literals, so plans that differ only in their numbers (the draws of
a PSA, the points of a sweep) share one compiled loop. Draws from a patient's stream are
computed in the loop, the stream's key (which depends on the chunk's seed) passed with
each call; inverse CDFs call scipy's own ``ndtri``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .plan_symbols import Num, concrete, plain, same_bits
from .xp import ARRAY, Ops

if TYPE_CHECKING:
    from .params import Params
    from .state import State

__all__ = [
    "TRACE",
    "Graph",
    "Node",
    "ParamScalar",
    "TableRef",
    "TraceError",
    "dtype_code",
    "trace_clocks",
    "trace_handle",
]

FLOAT, INT, BOOL = "f", "i", "b"
#: the numpy type of each code
DTYPES = {FLOAT: np.dtype(np.float64), INT: np.dtype(np.int64), BOOL: np.dtype(np.bool_)}
_KIND_OF = {d.kind: code for code, d in DTYPES.items()}
_SAMPLE = {code: np.ones(1, dtype=d) for code, d in DTYPES.items()}


STREAM_KINDS = ("uniform", "exponential")

# numpy's result type by (operation, operand types): the same in every trace
_DTYPES: dict[tuple[Any, ...], str] = {}


class TraceError(Exception):
    """The handler did something a compiled loop cannot reproduce exactly."""


def dtype_code(dtype: np.dtype[Any]) -> str:
    """FLOAT, INT or BOOL for float64, int64 or bool; TraceError for any other type."""
    code = _KIND_OF.get(dtype.kind)
    if code is None or dtype != DTYPES[code]:
        raise TraceError(f"unsupported dtype {dtype}")
    return code


@dataclass(eq=False)
class Graph:
    """Nodes in the order the handler made them (so in dependency order)."""

    nodes: list[Node] = field(default_factory=list)
    # inputs, by key: ("st", name), ("stl", name, j), ("prm", name), ("prmcol", name, j),
    # ("arg", name)
    inputs: dict[tuple[Any, ...], Node] = field(default_factory=dict)
    float_consts: list[float] = field(default_factory=list)
    int_consts: list[int] = field(default_factory=list)
    tables: list[np.ndarray] = field(default_factory=list)  # constant lookup tables
    streams: list[tuple[str, str]] = field(default_factory=list)  # (seed field, purpose)
    # constants computed from the plan's numbers (traced under a ``PlanProxy``): (index
    # in ``float_consts``, its ``Num``)
    plan_consts: list[tuple[int, Num]] = field(default_factory=list)

    def node(self, op: str, args: tuple[Any, ...], dtype: str) -> Node:
        nodes = self.nodes
        n = Node(self, len(nodes), op, args, dtype)
        nodes.append(n)
        return n

    def const(self, value: Any) -> Node:
        """A number of the plan: an entry of the float or int constant array."""
        if type(value) is float:  # most constants (the checks below, in one step)
            self.float_consts.append(value)
            return self.node("kfloat", (len(self.float_consts) - 1,), FLOAT)
        if type(value) is Num:
            self.plan_consts.append((len(self.float_consts), value))
            self.float_consts.append(float(value.value))
            return self.node("kfloat", (len(self.float_consts) - 1,), FLOAT)
        if isinstance(value, (bool, np.bool_)):
            return self.node("bool", (bool(value),), BOOL)
        if isinstance(value, (int, np.integer)):
            self.int_consts.append(int(value))
            return self.node("kint", (len(self.int_consts) - 1,), INT)
        if isinstance(value, (float, np.floating)):
            self.float_consts.append(float(value))
            return self.node("kfloat", (len(self.float_consts) - 1,), FLOAT)
        raise TraceError(f"unsupported constant {value!r}")

    def input(self, key: tuple[Any, ...], dtype: np.dtype[Any]) -> Node:
        found = self.inputs.get(key)
        if found is None:
            found = self.inputs[key] = self.node("in", key, dtype_code(dtype))
        return found

    def result_dtype(self, fn: Callable[..., Any], name: str, args: tuple[Any, ...]) -> str:
        """The type numpy gives ``fn(*args)`` with these operand types (Python numbers
        stay Python numbers: numpy 2 treats them as weak)."""
        key = (name, *[a.dtype if type(a) is Node else _number_type(a) for a in args])
        return _DTYPES.get(key) or self._result_dtype(fn, key, args)

    @staticmethod
    def _result_dtype(fn: Callable[..., Any], key: tuple[Any, ...], args: tuple[Any, ...]) -> str:
        """:meth:`result_dtype` for an operation not seen yet (``key``: its name and
        operand types), asked of numpy and remembered."""
        sample = tuple(
            _SAMPLE[a.dtype] if isinstance(a, Node) else a.value if type(a) is Num else a
            for a in args
        )
        try:
            with np.errstate(all="ignore"):
                out = np.asarray(fn(*sample))
        except TypeError as exc:
            raise TraceError(f"{key[0]} on {key[1:]}: {exc}") from None
        code = _DTYPES[key] = dtype_code(out.dtype)
        return code


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, bool, np.integer, np.floating, np.bool_, Num))


def _number_type(x: Any) -> type:
    """The type numpy's result depends on: a plan number's own (float or float64)."""
    return x.kind if type(x) is Num else type(x)


class Node:
    """One value of the traced handler, for one patient."""

    __slots__ = ("args", "dtype", "graph", "id", "op")
    # numpy scalars and arrays defer to the node's reflected operators (np.float64(2) *
    # node is node.__rmul__, not a 0-d object array holding a node)
    __array_ufunc__ = None

    def __init__(self, graph: Graph, id_: int, op: str, args: tuple[Any, ...], dtype: str):
        self.graph = graph
        self.id = id_
        self.op = op
        self.args = args
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"Node({self.id}, {self.op}, {self.dtype})"

    def _binary(self, name: str, other: Any, reverse: bool = False) -> Node:
        graph = self.graph
        to = type(other)
        if to is Node:
            key = (name, other.dtype, self.dtype) if reverse else (name, self.dtype, other.dtype)
            o = other
        elif _is_number(other):
            if to is Num:
                to = other.kind
            key = (name, to, self.dtype) if reverse else (name, self.dtype, to)
            o = graph.const(other)
        else:
            return NotImplemented  # type: ignore[no-any-return]
        a, b = (other, self) if reverse else (self, other)
        dtype = _DTYPES.get(key) or graph._result_dtype(getattr(operator, name), key, (a, b))
        return graph.node(name, (o, self) if reverse else (self, o), dtype)

    def __add__(self, o: Any) -> Node:
        return self._binary("add", o)

    def __radd__(self, o: Any) -> Node:
        return self._binary("add", o, True)

    def __sub__(self, o: Any) -> Node:
        return self._binary("sub", o)

    def __rsub__(self, o: Any) -> Node:
        return self._binary("sub", o, True)

    def __mul__(self, o: Any) -> Node:
        return self._binary("mul", o)

    def __rmul__(self, o: Any) -> Node:
        return self._binary("mul", o, True)

    def __truediv__(self, o: Any) -> Node:
        return self._binary("truediv", o)

    def __rtruediv__(self, o: Any) -> Node:
        return self._binary("truediv", o, True)

    def __lt__(self, o: Any) -> Node:
        return self._binary("lt", o)

    def __le__(self, o: Any) -> Node:
        return self._binary("le", o)

    def __gt__(self, o: Any) -> Node:
        return self._binary("gt", o)

    def __ge__(self, o: Any) -> Node:
        return self._binary("ge", o)

    def __eq__(self, o: Any) -> Node:  # type: ignore[override]
        return self._binary("eq", o)

    def __ne__(self, o: Any) -> Node:  # type: ignore[override]
        return self._binary("ne", o)

    def __neg__(self) -> Node:
        dtype = self.graph.result_dtype(operator.neg, "neg", (self,))
        return self.graph.node("neg", (self,), dtype)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise TraceError("a branch on a traced value")

    def __index__(self) -> int:
        raise TraceError("a traced value used as a Python integer")

    def __float__(self) -> float:
        raise TraceError("a traced value used as a Python float")


def _operand(graph: Graph, x: Any) -> Node:
    return x if isinstance(x, Node) else graph.const(x)


def _graph_of(*args: Any) -> Graph | None:
    for a in args:
        if isinstance(a, Node):
            return a.graph
        if isinstance(a, TableRef):
            return a.graph
    return None


@dataclass(frozen=True)
class ParamScalar:
    """A parameter that is one number for the whole chunk (the seed): it may only be
    passed to a stream draw, whose key the loop is given with each call, from that
    chunk's parameters (a chunk of another run may have another seed)."""

    name: str


@dataclass(frozen=True, eq=False)
class TableRef:
    """A per-patient table of the parameters (patients x draws, or patients x types x
    draws), read only through ``xp.pick`` and ``xp.column``."""

    graph: Graph
    name: str
    ndim: int
    dtype: str
    fixed: tuple[int, ...] = ()  # columns chosen by xp.column


def _function(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A traced ``xp`` function: a node when any argument is traced, else what the
    array namespace gives for plain numbers."""

    def traced(*args: Any) -> Any:
        graph = _graph_of(*args)
        if graph is None:
            return fn(*[plain(a) for a in args])
        dtype = graph.result_dtype(fn, name, args)
        return graph.node(name, tuple([_operand(graph, a) for a in args]), dtype)

    traced.__name__ = name
    return traced


def _pick(table: Any, k: Any) -> Node:
    if not isinstance(table, TableRef) or len(table.fixed) != table.ndim - 2:
        raise TraceError("xp.pick on something other than a per-patient table")
    graph = table.graph
    return graph.node("pick", (table, _operand(graph, k)), table.dtype)


def _column(table: Any, j: int) -> Any:
    if not isinstance(table, TableRef):
        raise TraceError("xp.column on something other than a per-patient table")
    if table.ndim - len(table.fixed) == 2:  # (patients, types): type j is an input
        key = ("prmcol", table.name, *table.fixed, j)
        return table.graph.input(key, DTYPES[table.dtype])
    return TableRef(table.graph, table.name, table.ndim, table.dtype, (*table.fixed, int(j)))


def _take(values: Any, idx: Any) -> Any:
    if not isinstance(idx, Node):
        return ARRAY.take(values, idx)
    graph = idx.graph
    graph.tables.append(np.ascontiguousarray(np.asarray(values, dtype=np.float64)))
    return graph.node("take", (len(graph.tables) - 1, idx), FLOAT)


def _take2(table: np.ndarray, i: Any, j: Any) -> Any:
    graph = _graph_of(i, j)
    if graph is None:
        return ARRAY.take2(table, i, j)
    graph.tables.append(np.ascontiguousarray(np.asarray(table, dtype=np.float64)))
    k = len(graph.tables) - 1
    return graph.node("take2", (k, _operand(graph, i), _operand(graph, j)), FLOAT)


def _ppf(dist: Any, u: Any) -> Any:
    """The inverse CDF of a scenario distribution (``population.ppf``; the loop calls
    scipy's own ``ndtri``)."""
    dist = concrete(dist)
    if not isinstance(u, Node):
        return ARRAY.ppf(dist, u)
    if u.dtype != FLOAT:
        raise TraceError("an inverse CDF of a non-float value")
    return u.graph.node("ppf", (dist, u), FLOAT)


def _stream(kind: str, seed: Any, patient: Any, purpose: str, index: Any) -> Any:
    """Draw ``index`` of each patient's stream ``purpose``, computed in the loop: the
    stream's key (from the chunk's seed) is an argument of each call."""
    graph = _graph_of(patient, index)
    if graph is None or not isinstance(seed, ParamScalar) or kind not in STREAM_KINDS:
        raise TraceError("a draw outside a patient's stream")
    args = (_operand(graph, patient), _operand(graph, index))
    if any(a.dtype != INT for a in args):
        raise TraceError("a stream draw needs integer patient ids and indices")
    graph.streams.append((seed.name, purpose))
    return graph.node(kind, (len(graph.streams) - 1, *args), FLOAT)


def _thin(
    seed: Any,
    patient: Any,
    gap_purpose: str,
    accept_purpose: str,
    k: Any,
    time: Any,
    day: Any,
    rate: Any,
    bound: Any,
    last_day: Any,
) -> tuple[Node, Node, Node]:
    """``xp.thin`` (the loop over passed-over candidates runs in the compiled code): one
    node for each of its three results, ``("thin", which, gap stream, accept stream,
    patient, k, time, day, rate, bound, last_day)``, made one after the other (ids ``first +
    which``: the generated code calls the loop once for the three)."""
    graph = _graph_of(patient, k, time, day, bound)
    if graph is None or not isinstance(seed, ParamScalar):
        raise TraceError("a thinned process outside a patient's streams")
    args = tuple(_operand(graph, x) for x in (patient, k, time, day, rate, bound, last_day))
    if [a.dtype for a in args] != [INT, INT, FLOAT, FLOAT, FLOAT, FLOAT, FLOAT]:
        raise TraceError("a thinned process needs integer ids and indices, float times")
    graph.streams.append((seed.name, gap_purpose))
    graph.streams.append((seed.name, accept_purpose))
    sg = len(graph.streams) - 2
    out = tuple(
        graph.node("thin", (which, sg, sg + 1, *args), INT if which == 0 else FLOAT)
        for which in range(3)
    )
    return out[0], out[1], out[2]


class _Trace(Ops):
    exp = staticmethod(_function("exp", ARRAY.exp))
    expm1 = staticmethod(_function("expm1", ARRAY.expm1))
    log = staticmethod(_function("log", ARRAY.log))
    sqrt = staticmethod(_function("sqrt", ARRAY.sqrt))
    minimum = staticmethod(_function("minimum", ARRAY.minimum))
    maximum = staticmethod(_function("maximum", ARRAY.maximum))
    where = staticmethod(_function("where", ARRAY.where))
    logical_and = staticmethod(_function("logical_and", ARRAY.logical_and))
    logical_or = staticmethod(_function("logical_or", ARRAY.logical_or))
    logical_not = staticmethod(_function("logical_not", ARRAY.logical_not))
    floor = staticmethod(_function("floor", ARRAY.floor))
    pick = staticmethod(_pick)
    column = staticmethod(_column)
    take = staticmethod(_take)
    take2 = staticmethod(_take2)
    ppf = staticmethod(_ppf)
    stream = staticmethod(_stream)
    thin = staticmethod(_thin)
    vector = True
    traced = True


TRACE: Ops = _Trace()


class _StateSymbols:
    """A state whose fields are input nodes (created when first read, typed like the
    real arrays); assignments replace them, as on a ``_StateView``."""

    def __init__(self, graph: Graph, real: Any) -> None:
        object.__setattr__(self, "_graph", graph)
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_initial", {})

    def __getattr__(self, name: str) -> Any:
        full = getattr(self._real, name)
        value: Any
        if isinstance(full, list):
            value = [self._graph.input(("stl", name, j), a.dtype) for j, a in enumerate(full)]
            self._initial[name] = list(value)
        else:
            value = self._graph.input(("st", name), full.dtype)
            self._initial[name] = value
        object.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.__dict__:
            getattr(self, name)  # the field's type and its input node
        object.__setattr__(self, name, value)

    def writes(self) -> list[tuple[tuple[Any, ...], Any]]:
        """((``"st"``, name) or (``"stl"``, name, j), value) of every field changed."""
        out: list[tuple[tuple[Any, ...], Any]] = []
        for name, before in self._initial.items():
            now = self.__dict__[name]
            if isinstance(before, list):
                if not isinstance(now, list) or len(now) != len(before):
                    raise TraceError(f"state list {name} replaced")
                pairs = enumerate(zip(before, now, strict=True))
                out.extend((("stl", name, j), v) for j, (b, v) in pairs if v is not b)
            elif now is not before:
                out.append((("st", name), now))
        return out


class _ParamsSymbols:
    def __init__(self, graph: Graph, real: Any) -> None:
        self._graph = graph
        self._real = real

    def __getattr__(self, name: str) -> Any:
        full = getattr(self._real, name)
        if not isinstance(full, np.ndarray):  # the seed: read at each call, never baked in
            return ParamScalar(name)
        if full.ndim == 1:
            value: Any = self._graph.input(("prm", name), full.dtype)
        else:
            value = TableRef(self._graph, name, full.ndim, dtype_code(full.dtype))
        setattr(self, name, value)
        return value


@dataclass
class Traced:
    """A handler traced for one plan and event kind."""

    graph: Graph
    outputs: list[tuple[str, Node]]  # ("flags" | "grams" | "value{i}", node)
    writes: list[tuple[tuple[Any, ...], Node]]
    n_values: int

    def release(self) -> None:
        """Drop the nodes once code is generated from them, keeping what a call reads
        (the constants, lookup tables and streams). A trace holds ~2,000 nodes, and the
        plans a process keeps hold their traces: released, they are freed at once
        instead of adding to every full garbage collection (a PSA point built its loops
        in ~40% less time)."""
        self.graph.nodes = []
        self.graph.inputs = {}
        self.outputs = []
        self.writes = []


def trace_handle(plan: Any, prm: Any, st: Any, kind: int, fraction: bool = False) -> Traced:
    """Trace ``handlers.handle`` for event ``kind`` under ``plan``; ``prm`` and ``st``
    are the real working arrays (for the fields' types and the state lists' lengths).
    With ``fraction``, the fraction of an infusion day's dose given is an input
    (``("arg", "fraction")``, float64), not the constant 1."""
    from . import handlers

    graph = Graph()
    sst = _StateSymbols(graph, st)
    given: Any = graph.input(("arg", "fraction"), np.dtype(np.float64)) if fraction else 1.0
    # the symbols stand in for a Params and a State (the cohort engine's views do too)
    flags, values, grams = handlers.handle(
        TRACE, plan, cast("Params", _ParamsSymbols(graph, prm)), cast("State", sst), kind, given
    )
    outputs = [("flags", _operand(graph, flags)), ("grams", _operand(graph, grams))]
    n_values = 0
    if values is not None:
        n_values = len(values)
        outputs += [(f"value{i}", _operand(graph, v)) for i, v in enumerate(values)]
    writes = [(key, _operand(graph, v)) for key, v in sst.writes()]
    return Traced(graph, outputs, writes, n_values)


def trace_clocks(plan: Any, prm: Any, st: Any) -> Traced:
    """Trace ``handlers.advance_clocks`` to the times of an input array ``t`` (one per
    row, read at the row's position in the call)."""
    from . import handlers

    graph = Graph()
    sst = _StateSymbols(graph, st)
    t = graph.input(("arg", "t"), np.dtype(np.float64))
    psym = cast("Params", _ParamsSymbols(graph, prm))
    handlers.advance_clocks(TRACE, plan, psym, cast("State", sst), t, t - sst.t)
    writes = [(key, _operand(graph, v)) for key, v in sst.writes()]
    return Traced(graph, [], writes, 0)


def same_trace(a: Traced, b: Traced) -> bool:
    """Whether two traces are the same graph with the same constants (bit for bit), the
    same tables and streams, outputs and writes: the same generated code and arguments."""
    ga, gb = a.graph, b.graph
    if (
        a.n_values != b.n_values
        or len(ga.nodes) != len(gb.nodes)
        or len(ga.float_consts) != len(gb.float_consts)
        or ga.int_consts != gb.int_consts
        or ga.streams != gb.streams
        or len(ga.tables) != len(gb.tables)
        or list(ga.inputs) != list(gb.inputs)
    ):
        return False
    if not all(same_bits(x, y) for x, y in zip(ga.float_consts, gb.float_consts, strict=True)):
        return False
    for x, y in zip(ga.tables, gb.tables, strict=True):
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            return False
    for na, nb in zip(ga.nodes, gb.nodes, strict=True):
        if na.op != nb.op or na.dtype != nb.dtype or not _same_arg(na.args, nb.args):
            return False
    return _same_arg(a.outputs, b.outputs) and _same_arg(a.writes, b.writes)


def _same_arg(x: Any, y: Any) -> bool:
    if type(x) is not type(y):
        return False
    if type(x) is Node:
        return bool(x.id == y.id)
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(_same_arg(p, q) for p, q in zip(x, y, strict=True))
    if type(x) is TableRef:
        return (x.name, x.ndim, x.dtype, x.fixed) == (y.name, y.ndim, y.dtype, y.fixed)
    if isinstance(x, float):
        return same_bits(x, y)
    return x is y or bool(x == y)
