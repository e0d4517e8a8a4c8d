"""A plan whose numbers are symbols: trace the handlers once per plan structure.

``chunk_loop`` traces every event kind's handler under a plan (``kernel.trace``) and
writes the traces out as one compiled loop. The plan's numbers become entries of
constant arrays, so plans that differ only in their numbers (the draws of a PSA, the
points of a sweep, the evaluations of a calibration) share the compiled loop; but each
plan was traced again for its constants (6-10 ms an arm: 13% of a one-worker PSA's time).

Traced through a :class:`PlanProxy`, every float of the plan is read as a :class:`Num`:
a number that remembers how it was computed from the plan's floats (an expression) and
records every decision made on it (a guard: a comparison and its result, or its exact
value where it leaves the arithmetic). Everything else read from the plan (integers,
flags, names, arrays, compiled rules, scenario models) is recorded with its value. The
constants of the trace that came from the plan are kept as expressions. For another
plan, :meth:`Recording.constants` reads the same paths: when every recorded value is
equal and every guard decides the same, the handlers would take the same path and make
the same graph, and the constants are the expressions evaluated on the new numbers, with
the same Python operations on the same types as the handlers (so the same bits).
Anything a :class:`Num` cannot follow raises, and the plan is traced as before.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import struct
import types
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Num", "PlanProxy", "Recording", "concrete", "evaluate", "plain", "same_bits"]

_FLOATS = (float, np.floating)
_EXACT = (bool, int, str, bytes, type(None), np.integer, np.bool_)


def same_bits(a: Any, b: Any) -> bool:
    """Whether two numbers are the same type and the same bits (0.0 is not -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, _FLOATS):
        return struct.pack("<d", float(a)) == struct.pack("<d", float(b))
    return bool(a == b)


class Num:
    """A float read from (or computed from) the plan while tracing.

    ``value`` is the number the handler would have had (its type too: a Python float or
    a numpy float64); ``expr`` says how to compute it from the plan's floats:
    ``("in", i)`` (the i-th float read), ``("op", name, a, b)``, ``("neg", a)`` or
    ``("abs", a)`` with operands that are :class:`Num` or plain numbers."""

    __slots__ = ("expr", "rec", "value")
    # numpy defers to the reflected operators (np.float64(2) * num is num.__rmul__)
    __array_ufunc__ = None

    def __init__(self, rec: Recording, value: Any, expr: tuple[Any, ...]) -> None:
        self.rec = rec
        self.value = value
        self.expr = expr

    @property
    def kind(self) -> type:
        return type(self.value)

    def __repr__(self) -> str:
        return f"Num({self.value!r})"

    # -- arithmetic: a new Num ----------------------------------------------------------

    def _op(self, name: str, other: Any, reverse: bool) -> Any:
        if isinstance(other, Num):
            ov = other.value
        elif isinstance(other, _FLOATS) or (
            isinstance(other, (int, np.integer)) and not isinstance(other, (bool, np.bool_))
        ):
            ov = other
        else:
            return NotImplemented  # a traced Node, an array: their own reflected operator
        fn = _BINARY[name]
        a, b = (other, self) if reverse else (self, other)
        value = fn(ov, self.value) if reverse else fn(self.value, ov)
        if not isinstance(value, _FLOATS):
            raise TypeError(f"{name} of plan numbers gave {type(value).__name__}")
        return Num(self.rec, value, ("op", name, a, b))

    def __add__(self, o: Any) -> Any:
        return self._op("add", o, False)

    def __radd__(self, o: Any) -> Any:
        return self._op("add", o, True)

    def __sub__(self, o: Any) -> Any:
        return self._op("sub", o, False)

    def __rsub__(self, o: Any) -> Any:
        return self._op("sub", o, True)

    def __mul__(self, o: Any) -> Any:
        return self._op("mul", o, False)

    def __rmul__(self, o: Any) -> Any:
        return self._op("mul", o, True)

    def __truediv__(self, o: Any) -> Any:
        return self._op("truediv", o, False)

    def __rtruediv__(self, o: Any) -> Any:
        return self._op("truediv", o, True)

    def __pow__(self, o: Any) -> Any:
        return self._op("pow", o, False)

    def __rpow__(self, o: Any) -> Any:
        return self._op("pow", o, True)

    def __neg__(self) -> Num:
        return Num(self.rec, -self.value, ("neg", self))

    def __pos__(self) -> Num:
        return self

    def __abs__(self) -> Num:
        return Num(self.rec, abs(self.value), ("abs", self))

    # -- decisions: a guard -------------------------------------------------------------

    def _compare(self, name: str, other: Any) -> Any:
        if isinstance(other, Num):
            ov = other.value
        elif isinstance(other, (*_FLOATS, int, np.integer)):
            ov = other
        else:
            return NotImplemented
        result = bool(_COMPARE[name](self.value, ov))
        self.rec.guards.append(("cmp", name, self, other, result))
        return result

    def __lt__(self, o: Any) -> Any:
        return self._compare("lt", o)

    def __le__(self, o: Any) -> Any:
        return self._compare("le", o)

    def __gt__(self, o: Any) -> Any:
        return self._compare("gt", o)

    def __ge__(self, o: Any) -> Any:
        return self._compare("ge", o)

    def __eq__(self, o: Any) -> Any:
        return self._compare("eq", o)

    def __ne__(self, o: Any) -> Any:
        return self._compare("ne", o)

    def __bool__(self) -> bool:
        result = bool(self.value)
        self.rec.guards.append(("cmp", "ne", self, 0.0, result))
        return result

    # -- the number leaves the arithmetic: its exact value is a guard --------------------

    def pin(self) -> Any:
        """The plain number, recorded as a guard on its exact bits."""
        self.rec.guards.append(("pin", self))
        return self.value

    def __float__(self) -> float:
        return float(self.pin())

    def __int__(self) -> int:
        return int(self.pin())

    def __index__(self) -> int:
        return operator.index(self.pin())

    def __round__(self, n: Any = None) -> Any:
        return round(self.pin(), n)

    def __trunc__(self) -> int:
        x: float = self.pin()
        return math.trunc(x)

    def __floor__(self) -> int:
        x: float = self.pin()
        return math.floor(x)

    def __ceil__(self) -> int:
        x: float = self.pin()
        return math.ceil(x)

    def __hash__(self) -> int:
        return hash(self.pin())

    def __format__(self, spec: str) -> str:
        return format(self.pin(), spec)

    def __str__(self) -> str:
        return str(self.pin())


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "pow": operator.pow,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
}


def plain(x: Any) -> Any:
    """``x`` with a :class:`Num` replaced by its pinned value (for code that needs the
    number itself)."""
    return x.pin() if isinstance(x, Num) else x


class Recording:
    """What a trace under a :class:`PlanProxy` read from the plan and decided on it."""

    def __init__(self) -> None:
        self.paths: list[tuple[Any, ...]] = []  # the floats read, by path (Num inputs)
        self.kinds: list[type] = []  # their types
        self.values: list[tuple[tuple[Any, ...], str, Any]] = []  # (path, how, value)
        self.guards: list[tuple[Any, ...]] = []

    # -- reading -----------------------------------------------------------------------

    def read(self, value: Any, path: tuple[Any, ...]) -> Any:
        """What the traced handler sees for ``value``, found at ``path`` of the plan."""
        if isinstance(value, _FLOATS):
            self.paths.append(path)
            self.kinds.append(type(value))
            return Num(self, value, ("in", len(self.paths) - 1))
        if isinstance(value, _EXACT):
            self.values.append((path, "eq", value))
            return value
        if isinstance(value, tuple):
            self.values.append((path, "len", len(value)))
            return tuple(self.read(v, (*path, ("item", j))) for j, v in enumerate(value))
        if isinstance(value, np.ndarray):
            self.values.append((path, "array", value))
            return value
        if (dataclasses.is_dataclass(value) and not isinstance(value, type)) or _model(value):
            self.values.append((path, "type", type(value)))
            return PlanProxy(value, self, path)
        rule = getattr(value, "rule", None)
        if callable(value) and rule is not None:  # a compiled rule: equal when its rule is
            self.values.append((path, "rule", rule))
            return value
        self.values.append((path, "is", value))
        return value

    def whole(self, proxy: PlanProxy) -> Any:
        """The object behind a proxy, used as a whole (not field by field): another
        plan's must be equal to it (a scenario model: field by field)."""
        obj = proxy._obj
        self.values.append((proxy._path, "eq" if _model(obj) else "is", obj))
        return obj

    # -- reusing -----------------------------------------------------------------------

    def inputs(self, plan: Any) -> list[Any] | None:
        """The floats another plan has at this recording's paths, if everything else
        read from it is equal and every guard decides the same; else None."""
        for path, how, value in self.values:
            now = _resolve(plan, path)
            if now is _ABSENT or not _matches(how, value, now):
                return None
        floats = [_resolve(plan, path) for path in self.paths]
        if any(type(f) is not kind for f, kind in zip(floats, self.kinds, strict=True)):
            return None  # absent, or another type
        memo: dict[int, Any] = {}
        for guard in self.guards:
            if guard[0] == "pin":
                if not same_bits(evaluate(guard[1], floats, memo), guard[1].value):
                    return None
            else:
                _, name, a, b, result = guard
                av = evaluate(a, floats, memo)
                bv = evaluate(b, floats, memo)
                if bool(_COMPARE[name](av, bv)) is not result:
                    return None
        return floats


def evaluate(x: Any, floats: list[Any], memo: dict[int, Any]) -> Any:
    """The value of ``x`` (a :class:`Num` or a plain number) with the plan's floats
    ``floats``: the recorded operations, in the recorded order of operands."""
    if not isinstance(x, Num):
        return x
    got = memo.get(id(x))
    if got is not None:
        return got[1]
    e = x.expr
    if e[0] == "in":
        value = floats[e[1]]
    elif e[0] == "op":
        value = _BINARY[e[1]](evaluate(e[2], floats, memo), evaluate(e[3], floats, memo))
    elif e[0] == "neg":
        value = -evaluate(e[1], floats, memo)
    else:  # "abs"
        value = abs(evaluate(e[1], floats, memo))
    memo[id(x)] = (x, value)  # the Num kept alive so that its id is not reused
    return value


class PlanProxy:
    """A plan (or a dataclass inside it) read through a :class:`Recording`: its floats
    are :class:`Num`, its methods and properties run on the proxy."""

    def __init__(self, obj: Any, rec: Recording, path: tuple[Any, ...] = ()) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_rec", rec)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_seen", {})

    def __getattr__(self, name: str) -> Any:
        seen = self._seen
        if name in seen:
            return seen[name]
        obj = self._obj
        desc = getattr(type(obj), name, None)
        if isinstance(desc, types.FunctionType):
            value: Any = types.MethodType(desc, self)
        elif isinstance(desc, property):
            value = desc.__get__(self, type(obj))
        elif isinstance(desc, functools.cached_property):
            value = desc.func(self)
        else:
            value = self._rec.read(getattr(obj, name), (*self._path, ("attr", name)))
        seen[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a traced plan is read only")


_ABSENT = object()  # what _resolve gives for a path another plan does not have


def _resolve(obj: Any, path: tuple[Any, ...]) -> Any:
    try:
        for how, key in path:
            obj = getattr(obj, key) if how == "attr" else obj[key]
    except (AttributeError, IndexError, TypeError):
        return _ABSENT
    return obj


def _model(value: Any) -> bool:
    """A scenario model (pydantic): read field by field, or compared by its fields."""
    return hasattr(type(value), "model_fields")


def concrete(x: Any) -> Any:
    """``x``, or the object behind it if it is a :class:`PlanProxy` (recorded as used
    whole), for code that needs the object itself."""
    return x._rec.whole(x) if isinstance(x, PlanProxy) else x


def _matches(how: str, was: Any, now: Any) -> bool:
    if how == "eq":
        return type(was) is type(now) and bool(was == now)
    if how == "len":
        return isinstance(now, tuple) and len(now) == was
    if how == "array":
        return (
            isinstance(now, np.ndarray)
            and now.dtype == was.dtype
            and now.shape == was.shape
            and (now is was or now.tobytes() == was.tobytes())
        )
    if how == "type":
        return type(now) is was
    if how == "rule":
        rule = getattr(now, "rule", None)
        return callable(now) and rule is not None and type(rule) is type(was) and rule == was
    return now is was  # "is"
