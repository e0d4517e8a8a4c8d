"""Read scenario YAML files into validated pydantic models, with clear error messages.

Pipeline (:func:`load` runs all of it)::

    read_yaml        one file -> (dict, LineMap); duplicate keys, syntax errors, ... rejected
    read_scenario    read_yaml + ``extends:`` (base files deep-merged under the child)
    apply_overrides  ``--set dotted.path=VALUE`` strings, path checked against the model
    validate         model.model_validate, every pydantic error turned into one InputError

Every failure we can foresee is raised as :class:`simulator.errors.InputError`, whose
``str()`` is the complete message for the user: it names the file and line where known,
the dotted YAML path (``regimen.sparing_agents[0].agent``) and the offending value.

The code works with any pydantic ``BaseModel`` class; it only looks at ``model_fields`` and
type annotations (nested models, ``X | None``, ``list[Model]``, ``dict[str, X]``, unions).
"""

from __future__ import annotations

import collections.abc as cabc
import copy
import dataclasses
import datetime
import difflib
import json
import logging
import os
import re
import stat
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import AliasChoices, BaseModel, RootModel, ValidationError

from simulator.errors import InputError, format_path
from simulator.limits import MAX_INPUT_BYTES, MAX_LISTED_PROBLEMS

__all__ = [
    "OVERRIDE_SOURCE",
    "PARAMS_FILE",
    "LineMap",
    "Loc",
    "Override",
    "apply_overrides",
    "check_named_file",
    "deep_merge",
    "error_at",
    "load",
    "load_dict",
    "read_params",
    "read_scenario",
    "read_yaml",
    "validate",
]

logger = logging.getLogger(__name__)

Loc = tuple[str | int, ...]
"""A location in the data: keys and list indices, e.g. ``("visits", 0, "week")``."""

OVERRIDE_SOURCE = "--set"
"""The pseudo file name a :class:`LineMap` records for values set by an override."""

M = TypeVar("M", bound=BaseModel)

_MAX_REPR = 60
_MAX_ENTRIES = 1_000_000  # guard against alias bombs ("billion laughs")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_STR_TAG = "tag:yaml.org,2002:str"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


# --------------------------------------------------------------------------------------
# LineMap
# --------------------------------------------------------------------------------------


class LineMap:
    """Where each value came from: maps a location tuple to ``(file, line)``.

    Locations are tuples of keys and list indices, e.g. ``("regimen", "ivig",
    "dose_g_per_kg")`` or ``("visits", 0)``; lines are 1-based. Values set by an override
    are recorded with file :data:`OVERRIDE_SOURCE` (``"--set"``) and line ``None``.
    """

    __slots__ = ("_entries", "_overrides")

    def __init__(
        self,
        entries: Mapping[Loc, tuple[str, int | None]] | None = None,
        overrides: Iterable[Loc] = (),
    ) -> None:
        self._entries: dict[Loc, tuple[str, int | None]] = dict(entries or {})
        # locations set by an override (--set, or an entry of a --params file), in the
        # order they were set: a problem found above them is blamed on the override
        self._overrides: dict[Loc, None] = dict.fromkeys(overrides)

    def record(self, loc: Iterable[str | int], file: str, line: int | None) -> None:
        """Record that the value at ``loc`` came from ``file`` at ``line``."""
        self._entries[tuple(loc)] = (file, line)

    def get(self, loc: Iterable[str | int]) -> tuple[str, int | None] | None:
        """The exact ``(file, line)`` recorded for ``loc``, or None."""
        return self._entries.get(tuple(loc))

    def locate(self, loc: Iterable[str | int]) -> tuple[str, int | None] | None:
        """``(file, line)`` of the longest prefix of ``loc`` that is known, or None."""
        key = tuple(loc)
        for n in range(len(key), -1, -1):
            found = self._entries.get(key[:n])
            if found is not None:
                return found
        return None

    def line_for(self, loc: Iterable[str | int]) -> int | None:
        """Line of the longest known prefix of ``loc`` (a missing key -> its parent's line)."""
        found = self.locate(loc)
        return found[1] if found else None

    def file_for(self, loc: Iterable[str | int]) -> str | None:
        """File of the longest known prefix of ``loc``."""
        found = self.locate(loc)
        return found[0] if found else None

    def is_override(self, loc: Iterable[str | int]) -> bool:
        """True when the value at ``loc`` (or an enclosing value) was set by ``--set``."""
        return self.file_for(loc) == OVERRIDE_SOURCE

    def blame(self, loc: Iterable[str | int]) -> tuple[tuple[str, int | None] | None, bool]:
        """Where a problem with the value at ``loc`` comes from, and whether that is an
        override (``--set``, a ``--params`` entry): like :meth:`locate`, but when ``loc``
        itself is from a file and a value inside it was set by an override, the (last)
        override: a problem found at a block (``population.age_years``) after ``--set
        population.age_years.sd=-1`` is the override's, not the file's."""
        key = tuple(loc)
        found = self.locate(key)
        if any(key[:n] in self._overrides for n in range(len(key) + 1)):
            return found, True  # the value (or a block holding it) is itself an override
        n = len(key)
        below = [k for k in self._overrides if len(k) > n and k[:n] == key]
        if below and below[-1] in self._entries:
            return self._entries[below[-1]], True
        return found, False

    def drop(self, loc: Iterable[str | int]) -> None:
        """Forget ``loc`` and everything below it."""
        key = tuple(loc)
        n = len(key)
        for k in [k for k in self._entries if k[:n] == key]:
            del self._entries[k]
        for k in [k for k in self._overrides if k[:n] == key]:
            del self._overrides[k]

    def mark_override(
        self, loc: Iterable[str | int], file: str = OVERRIDE_SOURCE, line: int | None = None
    ) -> None:
        """Record that the value at ``loc`` (and everything below it) was set by an
        override: ``--set`` by default, or an entry at ``line`` of a ``--params`` ``file``."""
        key = tuple(loc)
        self.drop(key)
        self._entries[key] = (file, line)
        self._overrides[key] = None

    def update(self, other: LineMap) -> None:
        self._entries.update(other._entries)
        for k in other._overrides:
            self._overrides.pop(k, None)
            self._overrides[k] = None

    def copy(self) -> LineMap:
        return LineMap(self._entries, self._overrides)

    def items(self) -> Iterator[tuple[Loc, tuple[str, int | None]]]:
        return iter(self._entries.items())

    def __contains__(self, loc: object) -> bool:
        return loc in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LineMap) and self._entries == other._entries

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LineMap({len(self._entries)} entries)"


# --------------------------------------------------------------------------------------
# YAML reading
# --------------------------------------------------------------------------------------


class _ScenarioLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float and checks/maps the node tree.

    PyYAML (YAML 1.1) only treats numbers with a dot as floats, so ``1e-3`` would silently
    be the string ``"1e-3"``. The extra resolver fixes that.
    """

    def check_and_map(self, root: yaml.Node, file: str) -> LineMap:
        """Walk the composed node tree before construction.

        Rejects duplicate keys, non-string keys, unknown tags and recursive aliases, and
        records the line of every mapping key and sequence item.
        """
        linemap = LineMap()
        self._budget = _MAX_ENTRIES
        self._walk(root, (), file, linemap, set())
        return linemap

    def _walk(
        self, node: yaml.Node, loc: Loc, file: str, linemap: LineMap, stack: set[int]
    ) -> None:
        if isinstance(node, yaml.ScalarNode):
            self._check_scalar(node, loc, file)
            return
        if id(node) in stack:
            raise InputError(
                f"{_where(loc)}: recursive YAML alias (a value that contains itself) "
                "is not supported",
                path=format_path(loc),
                file=file,
                line=node.start_mark.line + 1,
            )
        if node.tag not in self.yaml_constructors:
            raise _unknown_tag(node, loc, file)
        stack.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                self._walk_mapping(node, loc, file, linemap, stack)
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    self._spend(loc, file, item)
                    linemap.record((*loc, i), file, item.start_mark.line + 1)
                    self._walk(item, (*loc, i), file, linemap, stack)
        finally:
            stack.discard(id(node))

    def _walk_mapping(
        self, node: yaml.MappingNode, loc: Loc, file: str, linemap: LineMap, stack: set[int]
    ) -> None:
        # Duplicates among the keys written in this mapping ("<<" merges may be overridden).
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, loc, file)
            line = key_node.start_mark.line + 1
            if key in seen:
                where = "at the top level" if not loc else f"in '{format_path(loc)}'"
                raise InputError(
                    f"duplicate key {key!r} {where} (first at line {seen[key]}, "
                    f"again at line {line})",
                    path=format_path((*loc, key)),
                    file=file,
                    line=line,
                )
            seen[key] = line
        self.flatten_mapping(node)  # resolve "<<" merge keys (in place, idempotent)
        last: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            last[self._key(key_node, loc, file)] = (key_node, value_node)
        for key, (key_node, value_node) in last.items():
            self._spend(loc, file, key_node)
            linemap.record((*loc, key), file, key_node.start_mark.line + 1)
            self._walk(value_node, (*loc, key), file, linemap, stack)

    def _spend(self, loc: Loc, file: str, node: yaml.Node) -> None:
        self._budget -= 1
        if self._budget < 0:
            raise InputError(
                f"{_where(loc)}: too many entries after expanding YAML aliases "
                f"(more than {_MAX_ENTRIES:,})",
                path=format_path(loc),
                file=file,
                line=node.start_mark.line + 1,
            )

    def _key(self, key_node: yaml.Node, loc: Loc, file: str) -> str:
        line = key_node.start_mark.line + 1
        under = "at the top level" if not loc else f"under '{format_path(loc)}'"
        if not isinstance(key_node, yaml.ScalarNode):
            kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
            raise InputError(
                f"keys must be plain text, but a {kind} is used as a key {under}",
                path=format_path(loc),
                file=file,
                line=line,
            )
        if key_node.tag in (_STR_TAG, _VALUE_TAG):
            return "=" if key_node.tag == _VALUE_TAG else str(key_node.value)
        raw = str(key_node.value)
        try:
            value = self.construct_object(key_node)
            read_as = f"{_kind_name(value)}"
        except Exception:  # any failure only changes the wording of the message
            read_as = f"a value of type {key_node.tag}"
        raise InputError(
            f"keys must be text, but the key {raw!r} {under} was read as {read_as}; "
            f'put it in quotes ("{raw}") to use it as a key',
            path=format_path(loc),
            file=file,
            line=line,
        )

    def _check_scalar(self, node: yaml.ScalarNode, loc: Loc, file: str) -> None:
        if node.tag not in self.yaml_constructors:
            raise _unknown_tag(node, loc, file)
        if node.tag == _TIMESTAMP_TAG:
            try:
                self.construct_object(node)
            except (ValueError, OverflowError) as exc:
                raise InputError(
                    f"{_where(loc)}: {node.value!r} looks like a date but is not a valid "
                    f"one ({exc}); put it in quotes if it is meant as text",
                    path=format_path(loc),
                    file=file,
                    line=node.start_mark.line + 1,
                ) from None


_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_ScenarioLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _unknown_tag(node: yaml.Node, loc: Loc, file: str) -> InputError:
    return InputError(
        f"{_where(loc)}: unsupported YAML tag {node.tag!r}; scenario files may only "
        "contain plain values, lists and mappings",
        path=format_path(loc),
        file=file,
        line=node.start_mark.line + 1,
    )


def _where(loc: Loc) -> str:
    return format_path(loc) or "<top level>"


def _kind_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({_short_repr(value)})"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__} ({_short_repr(value)})"


def _kind_only(value: Any) -> str:
    """What a value is, without its content."""
    if value is None:
        return "null (empty)"
    for kind, name in (
        (bool, "a boolean"),
        (int | float, "a number"),
        (str, "a text string"),
        (list | tuple, "a list"),
    ):
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _yaml_error(exc: yaml.YAMLError, file: str, text: str) -> InputError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        constructing = isinstance(exc, yaml.constructor.ConstructorError)
        kind = "YAML error" if constructing else "YAML syntax error"
        if mark is None:
            return InputError(f"{kind}: {problem}", file=file)
        msg = f"{kind} at line {mark.line + 1}, column {mark.column + 1}: {problem}"
        cmark = exc.context_mark
        if exc.problem and exc.context and cmark is not None and cmark.line != mark.line:
            msg += f" ({exc.context} at line {cmark.line + 1})"
        if "'\\t'" in problem:
            msg += "; YAML does not allow tab characters for indentation, use spaces"
        return InputError(msg, file=file)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character
        code = char if isinstance(char, int) else ord(char)
        return InputError(
            f"the file contains a special character that YAML does not allow "
            f"(#x{code:04x}) at line {line}",
            file=file,
            line=line,
        )
    return InputError(f"cannot read YAML: {exc}", file=file)


def _parse_text(text: str, file: str) -> tuple[Any, LineMap, yaml.Node | None]:
    """Parse YAML text: (data, linemap, root node). Raises InputError."""
    loader: _ScenarioLoader | None = None
    try:
        loader = _ScenarioLoader(text)  # the reader already rejects special characters
        root = loader.get_single_node()
        if root is None:
            return None, LineMap(), None
        linemap = loader.check_and_map(root, file)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, file, text) from None
    except RecursionError:
        raise InputError("the YAML is nested too deeply", file=file) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"cannot read a value in the YAML: {exc}", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, linemap, root


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is ("a directory", "a named pipe (FIFO)")."""
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


def _not_regular(mode: int, what: str, display: str) -> InputError:
    return InputError(f"{what} must be a regular file, but {display} is {file_kind(mode)}")


class FileRefused(Exception):
    """:func:`read_limited` would not read the file: ``mode`` set when it is not a regular
    file, else ``size`` (bytes, None when it grew past the limit while read)."""

    def __init__(self, mode: int | None = None, size: int | None = None) -> None:
        super().__init__(mode, size)
        self.mode = mode
        self.size = size


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes: checked with
    os.stat before it is opened (a FIFO, a device or a directory is never opened: it
    could block for ever or never end), opened with O_NONBLOCK (a FIFO swapped in between
    cannot block) and checked again with fstat; at most ``limit + 1`` bytes are read, so a
    file that lies about its size (``/proc``) or grows cannot make us read more.
    FileRefused for a file that is not one, OSError when it cannot be read."""

    def check(st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(mode=st.st_mode)
        if st.st_size > limit:
            raise FileRefused(size=st.st_size)

    check(os.stat(path))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    with os.fdopen(os.open(path, flags), "rb") as f:
        check(os.fstat(f.fileno()))
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise FileRefused()
    return raw


def _too_large(size: int, what: str, display: str) -> str:
    limit = MAX_INPUT_BYTES
    return (
        f"{what} {display} is {size:,} bytes, above the limit of {limit:,} bytes"
        f" ({limit // 1024 // 1024} MiB) for input files"
    )


def _named_file_problem(target: Path, name: str, what: str) -> str | None:
    """What is wrong with ``target`` as an input file (missing, a directory, a FIFO or
    other special file, unreadable, above MAX_INPUT_BYTES), or None. ``name`` is the path
    as the user wrote it; the path looked for is added when it differs. Checked with
    os.stat only: nothing is opened."""
    looked = "" if os.fspath(target) == name else f" (looked for {target})"
    try:
        st = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        return f"{what} not found: {name}{looked}"
    except PermissionError:
        return f"cannot read {what} {name}{looked}: permission denied"
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return f"cannot read {what} {name}{looked}: {reason}"
    if stat.S_ISDIR(st.st_mode):
        return f"{what} is a directory, not a file: {name}{looked}"
    if not stat.S_ISREG(st.st_mode):
        return _not_regular(st.st_mode, what, f"{name}{looked}").message
    if st.st_size > MAX_INPUT_BYTES:
        return _too_large(st.st_size, what, f"{name}{looked}")
    return None


def check_named_file(
    target: str | os.PathLike[str],
    name: str,
    *,
    what: str,
    referrer: str | os.PathLike[str],
    loc: Loc,
    linemap: LineMap | None = None,
) -> None:
    """InputError unless ``target`` -- the file that the value at ``loc`` of the YAML file
    ``referrer`` names (``name``, as written there) -- is an existing regular file within
    the size limit for input files. The message names the referring file, the line of
    the value (from ``linemap``), its YAML path and the file named, whatever the problem
    (missing, a directory, a FIFO, too large, unreadable), e.g. ``study.yaml:12:
    arms.first_line: scenario file is a directory, not a file: scenarios``."""
    problem = _named_file_problem(Path(target), name, what)
    if problem is None:
        return
    where = format_path(loc)
    raise InputError(
        f"{where}: {problem}",
        path=where,
        file=os.fspath(referrer),
        line=linemap.line_for(loc) if linemap is not None else None,
    )


def _read_bytes(path: Path, display: str, what: str) -> bytes:
    """The bytes of a regular file of at most MAX_INPUT_BYTES (:func:`read_limited`);
    InputError for anything else."""
    limit = MAX_INPUT_BYTES
    try:
        return read_limited(path, limit)
    except FileRefused as refused:
        if refused.mode is not None:
            raise _not_regular(refused.mode, what, display) from None
        if refused.size is not None:
            raise InputError(_too_large(refused.size, what, display)) from None
        raise InputError(
            f"{what} {display} is larger than the limit of {limit:,} bytes"
            f" ({limit // 1024 // 1024} MiB) for input files"
        ) from None
    except FileNotFoundError:
        raise InputError(f"{what} not found: {display}") from None
    except IsADirectoryError:
        raise InputError(f"{what} is a directory, not a file: {display}") from None
    except PermissionError:
        raise InputError(f"cannot read {what} {display}: permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {display}: {exc.strerror or exc}") from None


def _read_text(path: Path, display: str, *, what: str = "scenario file") -> str:
    if path.is_dir():
        raise InputError(f"{what} is a directory, not a file: {display}")
    raw = _read_bytes(path, display, what)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("the file is UTF-16 text; save it as UTF-8", file=display)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"the file is not valid UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); "
            "save it as UTF-8",
            file=display,
            line=line,
        ) from None


def read_yaml(
    path: str | os.PathLike[str], *, what: str = "scenario file"
) -> tuple[dict[str, Any], LineMap]:
    """Read one YAML file (no ``extends`` processing) into a dict and its :class:`LineMap`.

    Raises InputError for: a missing file, a directory, an unreadable file, text that is
    not UTF-8, a YAML syntax error, an empty file, a top level that is not a mapping,
    duplicate keys (at any depth), keys that are not strings and unsupported YAML tags.
    ``what`` names the kind of file in the messages ("sweep file", "study file", ...).
    """
    display = os.fspath(path)
    text = _read_text(Path(display).expanduser(), display, what=what)
    return _parse_top(text, display, what)


def _noun(what: str) -> str:
    """ "scenario file" -> "scenario" (the word the messages have always used)."""
    return "scenario" if what == "scenario file" else what


def _parse_top(text: str, file: str, what: str = "scenario file") -> tuple[dict[str, Any], LineMap]:
    data, linemap, root = _parse_text(text, file)
    if root is None:
        raise InputError(f"the {what} is empty", file=file)
    if not isinstance(data, dict):
        # The text is not echoed: a file given by mistake (extends: /etc/passwd) reads as
        # one long YAML string, and its content is none of the message's business.
        line = root.start_mark.line + 1
        raise InputError(
            f"not a {_noun(what)} (a mapping of keys): the top level must be a mapping of keys"
            f" to values, but this file is {_kind_only(data)}",
            file=file,
            line=line,
        )
    return data, linemap


# --------------------------------------------------------------------------------------
# extends
# --------------------------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` onto ``base``: mappings merge recursively, anything else
    (scalars, lists, None) in ``override`` replaces the base value. Inputs are not changed.
    """
    return _merge(dict(base), LineMap(), dict(override), LineMap())[0]


def _merge(
    base: dict[str, Any], base_lm: LineMap, child: dict[str, Any], child_lm: LineMap
) -> tuple[dict[str, Any], LineMap]:
    replaced: set[Loc] = set()

    def rec(b: Mapping[str, Any], c: Mapping[str, Any], loc: Loc) -> dict[str, Any]:
        out = dict(b)
        for key, value in c.items():
            if key in out and isinstance(out[key], Mapping) and isinstance(value, Mapping):
                out[key] = rec(out[key], value, (*loc, key))
            else:
                if key in out:
                    replaced.add((*loc, key))
                out[key] = value
        return out

    merged = rec(base, child, ())
    linemap = LineMap(
        {
            loc: where
            for loc, where in base_lm.items()
            if not any(loc[:n] in replaced for n in range(1, len(loc) + 1))
        }
    )
    linemap.update(child_lm)
    return merged, linemap


def read_scenario(
    path: str | os.PathLike[str], *, what: str = "scenario file"
) -> tuple[dict[str, Any], LineMap]:
    """:func:`read_yaml` plus ``extends``.

    If the top level has ``extends: base.yaml`` (a path relative to the file, or a list of
    such paths applied in order), the base files are read first (recursively) and the
    file's own values are deep-merged on top (see :func:`deep_merge`). The ``extends`` key
    is removed. The LineMap gives, for each path, the file and line of its final value.
    ``what`` names the kind of file in the messages ("sweep file", "study file", ...).
    """
    display = os.fspath(path)
    return _read_with_extends(Path(display).expanduser(), display, (), what)


def _read_with_extends(
    path: Path, display: str, chain: tuple[tuple[Path, str], ...], what: str = "scenario file"
) -> tuple[dict[str, Any], LineMap]:
    data, linemap = _read_yaml_at(path, display, what)
    if "extends" not in data:
        return data, linemap
    data = dict(data)
    spec = data.pop("extends")
    own_lm = linemap.copy()
    own_lm.drop(("extends",))

    entries: list[tuple[Any, Loc]]
    if spec is None:
        entries = []
    elif isinstance(spec, list):
        entries = [(item, ("extends", i)) for i, item in enumerate(spec)]
    else:
        entries = [(spec, ("extends",))]

    me = (_identity(path), display)
    merged: dict[str, Any] = {}
    merged_lm = LineMap()
    for name, loc in entries:  # check them all before reading any
        if not isinstance(name, str) or not name.strip():
            raise InputError(
                f"{format_path(loc)}: expected a file name or a list of file names "
                f"(got {_short_repr(name)})",
                path=format_path(loc),
                file=display,
                line=linemap.line_for(loc),
            )
    for name, loc in entries:
        line = linemap.line_for(loc)
        rel = Path(name).expanduser()
        base_path = rel if rel.is_absolute() else path.parent / rel
        if rel.is_absolute():
            base_display = name
        else:
            base_display = os.path.normpath(os.path.join(os.path.dirname(display), name))
        ident = _identity(base_path)
        visited = (*chain, me)
        start = next((i for i, (p, _) in enumerate(visited) if p == ident), None)
        if start is not None:
            cycle = " -> ".join([*(d for _, d in visited[start:]), base_display])
            raise InputError(
                f"{format_path(loc)}: circular chain of base files: {cycle}",
                path=format_path(loc),
                file=display,
                line=line,
            )
        if not base_path.exists():
            raise InputError(
                f"{format_path(loc)}: base file not found: {name!r} (looked for {base_display})",
                path=format_path(loc),
                file=display,
                line=line,
            )
        if base_path.is_dir():
            raise InputError(
                f"{format_path(loc)}: {name!r} is a directory, not a file",
                path=format_path(loc),
                file=display,
                line=line,
            )
        try:
            mode = base_path.stat().st_mode
        except OSError:
            mode = stat.S_IFREG  # let the read below report it
        if not stat.S_ISREG(mode):
            kind = _not_regular(mode, "", "").message.rsplit(" is ", 1)[-1]
            raise InputError(
                f"{format_path(loc)}: {name!r} must be a regular file, but it is {kind}",
                path=format_path(loc),
                file=display,
                line=line,
            )
        check_named_file(
            base_path, base_display, what="base file", referrer=display, loc=loc, linemap=linemap
        )
        warn_if_outside(base_path, path, f"{display}: {format_path(loc)}")
        logger.debug("%s extends %s", display, base_display)
        base, base_lm = _read_with_extends(base_path, base_display, (*chain, me), what)
        merged, merged_lm = _merge(merged, merged_lm, base, base_lm)
    return _merge(merged, merged_lm, data, own_lm)


def warn_if_outside(target: Path, referrer: Path, where: str) -> None:
    """Log a warning when a file named in ``referrer`` lies outside both ``referrer``'s
    folder and the current working directory.

    Such paths (absolute, or with ``..``) are allowed, so shared base files can live
    anywhere (the shipped sweeps say ``base: ../first_line.yaml``), but the warning names
    the resolved path: a scenario from someone else cannot quietly read files elsewhere on
    this machine. The content of a file that is not a scenario is never echoed.

    Callers check first that ``target`` is an input file at all (:func:`check_named_file`).
    """
    resolved = _identity(target)
    homes = (_identity(referrer).parent, _identity(Path.cwd()))
    if not any(resolved.is_relative_to(home) for home in homes):
        logger.warning(
            "%s reads %s, outside the folder of %s and the working directory",
            where,
            resolved,
            referrer,
        )


def _read_yaml_at(
    path: Path, display: str, what: str = "scenario file"
) -> tuple[dict[str, Any], LineMap]:
    """Like :func:`read_yaml`, but with a separate display name for messages."""
    return _parse_top(_read_text(path, display, what=what), display, what)


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


# --------------------------------------------------------------------------------------
# Walking a pydantic model's annotations
# --------------------------------------------------------------------------------------

_NONE_TYPE = type(None)
_MAPPING_ORIGINS = (dict, cabc.Mapping, cabc.MutableMapping)
_SEQUENCE_ORIGINS = (list, cabc.Sequence, cabc.MutableSequence, set, frozenset, cabc.Set)


def _flatten_type(tp: Any) -> list[Any]:
    """Strip Annotated / type aliases and split unions (dropping None)."""
    for _ in range(50):  # unwrap nested Annotated / aliases
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif type(tp).__name__ == "TypeAliasType" and hasattr(tp, "__value__"):
            tp = tp.__value__
        elif isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        else:
            break
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in typing.get_args(tp):
            out.extend(_flatten_type(arg))
        return out
    if tp is _NONE_TYPE or tp is None:
        return []
    return [tp]


def _model_keys(model: type[BaseModel]) -> tuple[dict[str, Any], bool]:
    """Input keys accepted by ``model`` -> annotation, and whether extra keys are allowed."""
    cfg = model.model_config
    by_name = bool(cfg.get("populate_by_name") or cfg.get("validate_by_name"))
    by_alias = cfg.get("validate_by_alias", True) is not False
    keys: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        aliases: list[str] = []
        va = field.validation_alias
        if isinstance(va, str):
            aliases = [va]
        elif isinstance(va, AliasChoices):
            aliases = [c for c in va.choices if isinstance(c, str)]
        elif field.alias:
            aliases = [field.alias]
        if not aliases or by_name or not by_alias:
            keys[name] = field.annotation
        if by_alias:
            for alias in aliases:
                keys[alias] = field.annotation
    return keys, cfg.get("extra") == "allow"


def _struct_keys(tp: Any) -> tuple[dict[str, Any], bool] | None:
    """Keys of a structured type (model, dataclass, TypedDict), or None if not one."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _model_keys(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        fields = getattr(tp, "__pydantic_fields__", None)
        if fields:
            return {n: f.annotation for n, f in fields.items()}, False
        try:
            hints = typing.get_type_hints(tp, include_extras=True)
        except Exception:  # unresolved forward references: accept the names, any type
            hints = {}
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(tp)}, False
    if typing.is_typeddict(tp):
        try:
            return dict(typing.get_type_hints(tp, include_extras=True)), False
        except Exception:
            return dict.fromkeys(getattr(tp, "__annotations__", {}), Any), False
    return None


class _Step:
    """Result of following one path segment through a set of candidate types."""

    def __init__(self) -> None:
        self.next_types: list[Any] = []
        self.as_key = False  # accepted as a mapping key
        self.as_index = False  # accepted as a list index
        self.names: set[str] = set()  # field names offered by structured candidates
        self.structured = False  # some candidate is a model / mapping
        self.sequence = False  # some candidate is a list
        self.leaves: list[Any] = []  # candidates that are plain values


def _expand(types_: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for tp in types_:
        for t in _flatten_type(tp):
            if isinstance(t, type) and issubclass(t, RootModel):
                root = t.model_fields.get("root")
                out.extend(_expand([root.annotation if root else Any]))
            else:
                out.append(t)
    return out


def _step(types_: Iterable[Any], seg: str | int) -> _Step:
    st = _Step()
    is_int = isinstance(seg, int)
    for tp in _expand(types_):
        if tp is Any or tp is object or isinstance(tp, TypeVar):
            st.next_types.append(Any)
            st.as_key = st.as_key or not is_int
            st.as_index = True
            st.structured = st.sequence = True
            continue
        struct = _struct_keys(tp)
        if struct is not None:
            keys, extra = struct
            st.structured = True
            st.names.update(keys)
            if not is_int and seg in keys:
                st.next_types.append(keys[seg])
                st.as_key = True
            elif not is_int and extra:
                st.next_types.append(Any)
                st.as_key = True
            continue
        origin = typing.get_origin(tp) or tp
        args = typing.get_args(tp)
        if origin in _MAPPING_ORIGINS or (isinstance(origin, type) and issubclass(origin, dict)):
            st.structured = True
            if not is_int:
                st.next_types.append(args[1] if len(args) == 2 else Any)
                st.as_key = True
            continue
        if origin is tuple:
            st.sequence = True
            if is_int:
                if len(args) == 2 and args[1] is Ellipsis:
                    st.next_types.append(args[0])
                elif not args:
                    st.next_types.append(Any)
                elif 0 <= seg < len(args):
                    st.next_types.append(args[seg])
                else:
                    continue
                st.as_index = True
            continue
        if origin in _SEQUENCE_ORIGINS and origin not in (str, bytes):
            st.sequence = True
            if is_int:
                st.next_types.append(args[0] if args else Any)
                st.as_index = True
            continue
        st.leaves.append(tp)
    return st


def _types_at(model: type[BaseModel], loc: Loc) -> list[Any] | None:
    """Candidate types at ``loc`` (walking annotations from ``model``), None if unknown."""
    types_: list[Any] = [model]
    for seg in loc:
        st = _step(types_, seg)
        if not st.next_types:
            return None
        types_ = st.next_types
    return types_


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or repr(tp)


def _suggest(key: str, names: Iterable[str]) -> str:
    names = sorted(names)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if not names:
        return "no keys are allowed here"
    shown = ", ".join(names[:25]) + (", ..." if len(names) > 25 else "")
    return f"allowed keys: {shown}"


# --------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------


def _parse_override_path(
    path: str, fail: typing.Callable[[str], InputError]
) -> list[tuple[str | int, bool]]:
    """Split ``a.b[0].c`` / ``a.b.0.c`` into [(segment, is_bracket_index)]."""
    segs: list[tuple[str | int, bool]] = []
    i, n = 0, len(path)
    while True:
        j = i
        while j < n and path[j] not in ".[]":
            j += 1
        name = path[i:j].strip()
        if name:
            segs.append((name, False))
        elif j >= n or path[j] != "[" or not segs:
            raise fail(f"empty key in the path {path!r}")
        i = j
        while i < n and path[i] == "[":
            close = path.find("]", i)
            if close < 0:
                raise fail(f"missing ']' in the path {path!r}")
            inner = path[i + 1 : close].strip()
            if not inner.isdigit():
                raise fail(f"list index must be a whole number >= 0, got [{inner}]")
            segs.append((int(inner), True))
            i = close + 1
        if i >= n:
            return segs
        if path[i] != ".":
            raise fail(f"unexpected {path[i]!r} in the path {path!r}")
        i += 1
        if i >= n:
            raise fail(f"empty key in the path {path!r}")


# Plain decimals (what a sweep or a calibration writes): read directly, as YAML reads them.
_PLAIN_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_PLAIN_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+")


def _parse_override_value(text: str, fail: typing.Callable[[str], InputError]) -> Any:
    s = text.strip()
    if not s:
        raise fail("no value after '='; write null for None, or '' for an empty string")
    if _PLAIN_FLOAT.fullmatch(s):
        return float(s)
    if _PLAIN_INT.fullmatch(s):
        return int(s)
    flow = s[0] in "[{"
    try:
        value, _, _ = _parse_text(s, OVERRIDE_SOURCE)
    except InputError as exc:
        if flow:
            raise fail(f"cannot read the value {s!r}: {exc.message}") from None
        return s  # not valid YAML: take it as plain text
    if not flow and isinstance(value, dict | list):
        return s  # e.g. "a: b" or "- x": meant as text, not a block mapping / list
    return value


class Override(str):
    """One entry of a parameter file (``--params``) used as an override.

    ``str()`` is the ``PATH=VALUE`` text ``--set`` would take (so lists of overrides stay
    lists of strings: sweeps hash them, ``json.dumps`` writes them); the entry also keeps
    the value as read from the file, the file and the line, so :func:`apply_overrides`
    sets that value (not a re-read of the text) and every message names the file and line
    instead of ``--set``.
    """

    path: str
    value: Any
    file: str
    line: int | None

    def __new__(cls, path: str, value: Any, file: str, line: int | None) -> Override:
        self = super().__new__(cls, f"{path}={json.dumps(value)}")
        self.path, self.value, self.file, self.line = path, value, file, line
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Override, (self.path, self.value, self.file, self.line))


PARAMS_FILE = "parameter file"
"""What messages call a ``--params`` file."""


def _plain_value(value: Any, loc: Loc, file: str, linemap: LineMap) -> None:
    """Refuse a value that is not plain data (a number, true/false, text, null, or a list
    or mapping of them): a date, binary data, a set."""
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _plain_value(item, (*loc, i), file, linemap)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            _plain_value(item, (*loc, k), file, linemap)
        return
    if isinstance(value, datetime.date):
        kind = f"a date ({value.isoformat()})"
        hint = "; put it in quotes if it is meant as text"
    elif isinstance(value, bytes):
        kind, hint = "binary data (!!binary)", ""
    else:
        kind, hint = f"a {type(value).__name__}", ""
    # the entry's key is a dotted path itself: shown as written, not quoted
    shown = str(loc[0]) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    raise InputError(
        f"{shown}: {kind} is not a parameter value: give a number, true or false,"
        f" text or null{hint}",
        path=shown,
        file=file,
        line=linemap.line_for(loc),
    )


def read_params(path: str | os.PathLike[str]) -> list[Override]:
    """A parameter file (``--params``, e.g. the calibrated.yaml of ``simulate calibrate``):
    a mapping of dotted path -> value, one :class:`Override` per entry in file order.

    The file is read as a scenario file is (size and alias limits, duplicate keys, UTF-8,
    no FIFO or device, line numbers); InputError names the file and line."""
    display = os.fspath(path)
    data, linemap = read_yaml(display, what=PARAMS_FILE)
    if not data:
        raise InputError(
            "no parameters: give one `dotted.path: value` per line, e.g."
            " `disease.steroid.emax_per_day: 0.12`",
            file=display,
        )
    out = []
    for key, value in data.items():
        _plain_value(value, (key,), display, linemap)
        out.append(Override(key, value, display, linemap.line_for((key,))))
    return out


def apply_overrides(
    data: Mapping[str, Any],
    overrides: Iterable[str],
    model: type[BaseModel],
    linemap: LineMap | None = None,
) -> dict[str, Any]:
    """Apply ``--set`` overrides ``"dotted.path=VALUE"`` and return a new dict.

    Path segments are separated by dots; list indices are written ``name[0]`` or
    ``name.0``. VALUE is read as a YAML flow value (``1``, ``1.5``, ``true``, ``null``,
    ``[1, 2]``, ``{dist: normal, mean: 3}``, or a bare string). The path is checked against
    ``model`` first (unknown keys get a "did you mean" suggestion). Absent intermediate
    mappings are created; a path through a block set to null (``regimen.ivig: null``, a
    regimen the scenario left out) is an InputError that says how to set the whole block.
    ``data`` is not changed; ``linemap`` (if given) is
    updated in place so that the overridden paths are reported as coming from ``--set``.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    result: dict[str, Any] = dict(data)
    for override in overrides:
        result = _apply_one(
            result, override if isinstance(override, Override) else str(override), model, linemap
        )
    return result


def _apply_one(
    data: dict[str, Any], override: str, model: type[BaseModel], linemap: LineMap | None
) -> dict[str, Any]:
    text = override.strip()
    entry = override if isinstance(override, Override) else None
    fail: typing.Callable[..., InputError]

    if entry is not None:
        # an entry of a --params file: its file and line, its path and the value it gives
        shown = _short_repr(entry.value)

        def fail(msg: str, path: str | None = None) -> InputError:
            return InputError(
                f"{entry.path}: {msg} (got {shown})",
                path=path or entry.path,
                file=entry.file,
                line=entry.line,
            )

        if not entry.path.strip():
            raise fail("empty key: give a dotted path, e.g. disease.steroid.emax_per_day")
        segs = _parse_override_path(entry.path.strip(), fail)
        value = copy.deepcopy(entry.value)  # the entry is applied to every scenario
        raw_value = _flow_text(value)
    else:

        def fail(msg: str, path: str | None = None) -> InputError:
            return InputError(f"{OVERRIDE_SOURCE} {text}: {msg}", path=path)

        if "=" not in text:
            raise fail("expected KEY=VALUE, e.g. regimen.ivig.dose_g_per_kg=0.4")
        raw_path, raw_value = text.split("=", 1)
        if not raw_path.strip():
            raise fail("missing the key path before '='")
        segs = _parse_override_path(raw_path.strip(), fail)
        value = _parse_override_value(raw_value, fail)

    # 1. Check the path against the model (and pick int/str for "name.0" segments).
    loc: list[str | int] = []
    types_: list[Any] = [model]
    cur: Any = data
    for seg, bracket in segs:
        here = format_path(loc)
        candidates: list[str | int] = [seg]
        if not bracket and isinstance(seg, str) and seg.isdigit():
            # "name.0": an index if the value here is (or must be) a list
            candidates = [int(seg), seg] if isinstance(cur, list) else [seg, int(seg)]
        chosen: str | int | None = None
        st: _Step | None = None
        for cand in candidates:
            st = _step(types_, cand)
            if st.next_types:
                chosen = cand
                break
        if chosen is None:
            st = _step(types_, seg)
            if isinstance(seg, int):
                if st.sequence:
                    raise fail(f"index {seg} is out of range for '{here}'", here)
                raise fail(
                    f"'{here or '<top level>'}' is not a list, so it cannot be indexed "
                    f"with [{seg}]",
                    here,
                )
            if st.structured:
                where = f"under '{here}'" if here else "at the top level"
                raise fail(
                    f"unknown key {seg!r} {where} ({_suggest(seg, st.names)})",
                    format_path([*loc, seg]),
                )
            if st.sequence:
                raise fail(f"'{here}' is a list; select an item with {here}[0]", here)
            kind = _type_name(st.leaves[0]) if st.leaves else "a plain value"
            raise fail(f"'{here}' is a single value ({kind}), it has no key {seg!r}", here)
        assert st is not None
        loc.append(chosen)
        types_ = st.next_types
        cur = _child(cur, chosen)

    # 2. Set the value, copying the containers along the path (the input is not mutated).
    created: list[Loc] = []
    result = _set_path(
        data, tuple(loc), value, created, fail, raw_value.strip(), as_entry=entry is not None
    )
    if linemap is not None:
        file, line = (entry.file, entry.line) if entry is not None else (OVERRIDE_SOURCE, None)
        for c in created:
            linemap.mark_override(c, file, line)
        linemap.mark_override(tuple(loc), file, line)
    logger.debug("override %s -> %r", format_path(loc), value)
    return result


def _flow_text(value: Any) -> str:
    """A value as YAML flow text (for the examples in messages)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _flow_example(rest: Loc, raw_value: str) -> str:
    """``{a: {b: VALUE}}`` for the path rest ``(a, b)`` (list indices become ``[VALUE]``)."""
    text = raw_value
    for seg in reversed(rest):
        text = f"[{text}]" if isinstance(seg, int) else f"{{{seg}: {text}}}"
    return text


def _child(cur: Any, seg: str | int) -> Any:
    if isinstance(cur, Mapping) and isinstance(seg, str):
        return cur.get(seg, _MISSING)
    if isinstance(cur, list) and isinstance(seg, int) and 0 <= seg < len(cur):
        return cur[seg]
    return _MISSING


def _set_path(
    data: dict[str, Any],
    loc: Loc,
    value: Any,
    created: list[Loc],
    fail: typing.Callable[..., InputError],
    raw_value: str = "VALUE",
    *,
    as_entry: bool = False,
) -> dict[str, Any]:
    root: dict[str, Any] = dict(data)
    parent: Any = root
    for i, seg in enumerate(loc):
        here = format_path(loc[:i])
        if isinstance(seg, int):
            if not isinstance(parent, list):
                raise fail(
                    f"'{here}' holds {_kind_name(parent)}, not a list, so it has no item [{seg}]",
                    here,
                )
            if seg >= len(parent):
                raise fail(
                    f"index {seg} is out of range for '{here}' (it has "
                    f"{len(parent)} item{'s' if len(parent) != 1 else ''})",
                    format_path(loc[: i + 1]),
                )
        elif not isinstance(parent, dict):
            raise fail(
                f"'{here}' holds {_kind_name(parent)}, not a mapping, so it has no key {seg!r}",
                here,
            )
        if i == len(loc) - 1:
            parent[seg] = value
            break
        child = parent[seg] if isinstance(seg, int) else parent.get(seg)
        nxt = loc[i + 1]
        if child is None and (isinstance(seg, int) or seg in parent):
            # A block the scenario switched off (``ivig: null``): setting one value inside
            # it must not quietly build the whole block from defaults.
            block = format_path(loc[: i + 1])
            inner = _flow_example(loc[i + 1 :], raw_value)
            example = f"{block}: {inner}" if as_entry else f"--set '{block}={inner}'"
            raise fail(
                f"{block} is null (off) in this scenario; to switch it on set the whole "
                f"block, e.g. {example}",
                block,
            )
        if child is None:
            if isinstance(nxt, int):
                raise fail(
                    f"'{format_path(loc[: i + 1])}' is not set, so it has no item [{nxt}]",
                    format_path(loc[: i + 1]),
                )
            child = {}
            created.append(loc[: i + 1])
        elif isinstance(child, Mapping):
            child = dict(child)
        elif isinstance(child, list):
            child = list(child)
        parent[seg] = child
        parent = child
    return root


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------

_PREFIXES = ("Value error, ", "Assertion failed, ")


def _clean_loc(data: Any, loc: Iterable[Any], missing: bool) -> Loc:
    """Keep only the loc elements that are real keys / indices in ``data``.

    Drops pydantic's union member names, tags and function-validator names. For a
    'missing' error the last element (the absent key) is kept.
    """
    parts = list(loc)
    out: list[str | int] = []
    cur: Any = data
    for i, part in enumerate(parts):
        in_mapping = isinstance(cur, Mapping) and isinstance(part, str) and part in cur
        in_list = (
            isinstance(cur, list | tuple)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(cur)
        )
        if in_mapping or in_list:
            out.append(part)
            cur = cur[part]
        elif missing and i == len(parts) - 1 and isinstance(part, str):
            out.append(part)
    return tuple(out)


def _discriminator_key(ctx: Mapping[str, Any] | None) -> str | None:
    raw = str((ctx or {}).get("discriminator", ""))
    m = re.fullmatch(r"'([^']+)'", raw)
    return m.group(1) if m else None


def _problem(err: Mapping[str, Any], data: Any, model: type[BaseModel]) -> tuple[Loc, str, Any]:
    """(clean loc, text, offending value or _MISSING) for one pydantic error."""
    etype = err.get("type", "")
    loc = _clean_loc(data, err.get("loc", ()), etype == "missing")
    value: Any = err.get("input", _MISSING)
    msg = str(err.get("msg", "invalid value"))
    for prefix in _PREFIXES:
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    ctx = err.get("ctx")
    if etype == "missing":
        return loc, "required key missing", _MISSING
    if etype == "finite_number":
        return loc, f"must be a finite number, got {value}", value
    if etype == "int_parsing_size":
        return loc, "too large for a whole number", value
    if etype == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        types_ = _types_at(model, loc[:-1])
        text = f"unknown key {key!r}"
        if types_ is not None:
            st = _step(types_, key)
            if st.names:
                text += f" ({_suggest(key, st.names)})"
        return loc, text, value
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        key = _discriminator_key(ctx)
        if key is not None:
            loc = (*loc, key)
        if etype == "union_tag_not_found":
            return loc, "required key missing", _MISSING
        expected = (ctx or {}).get("expected_tags", "")
        tag = (ctx or {}).get("tag", value)
        return loc, f"should be one of {expected}" if expected else msg, tag
    if etype in ("model_type", "model_attributes_type", "dict_type"):
        msg = "should be a mapping of keys to values"
    if isinstance(value, Mapping):
        value = _MISSING  # the path already points at the mapping; its repr is noise
    return loc, msg, value


def validate(
    data: Mapping[str, Any],
    model: type[M],
    linemap: LineMap | None = None,
    source: str = "<dict>",
) -> M:
    """``model.model_validate(data)``, with a ValidationError turned into one InputError.

    The message lists every problem with its dotted path, text, offending value and the
    line it came from (``[line N]``, ``[other.yaml line N]`` for values from a base file,
    ``[from --set]`` for overridden values).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _convert(exc, data, model, linemap or LineMap(), source) from exc


def error_at(
    body: str,
    path: str,
    where: tuple[str, int | None] | None,
    by_override: bool,
    source: str,
    fallback: str | None,
) -> InputError:
    """One problem of ``source`` as an InputError naming where its value came from
    (:meth:`LineMap.blame`): its file and line; ``[from --set]``; a ``--params`` entry's
    file and line with ``[applied to source]``; or, with no location, ``fallback``."""
    if where is None:
        return InputError(body, path=path, file=fallback)
    file, line = where
    if file == OVERRIDE_SOURCE:
        return InputError(f"{body} [from {OVERRIDE_SOURCE}]", path=path, file=fallback)
    if by_override and file != source:  # an entry of a --params file
        return InputError(f"{body} [applied to {source}]", path=path, file=file, line=line)
    return InputError(body, path=path, file=file, line=line)


def _input_noun(model: type[BaseModel]) -> str:
    """What the messages call a file of this model: its ``input_kind`` class variable
    ("sweep file", "study file", ...), else "scenario"."""
    kind = getattr(model, "input_kind", None)
    return kind if isinstance(kind, str) else "scenario"


def _convert(
    exc: ValidationError,
    data: Mapping[str, Any],
    model: type[BaseModel],
    linemap: LineMap,
    source: str,
) -> InputError:
    found: list[tuple[str, str, tuple[str, int | None] | None, bool]] = []
    seen: set[tuple[str, str]] = set()
    # Only the first MAX_LISTED_PROBLEMS problems are worded (suggestions, line numbers);
    # the rest are only counted, so a file with a million unknown keys is answered fast.
    more: set[tuple[Any, ...]] = set()
    for err in exc.errors(include_url=False):
        if len(found) >= MAX_LISTED_PROBLEMS:
            more.add((tuple(map(str, err.get("loc", ()))), err.get("type"), err.get("msg")))
            continue
        loc, text, value = _problem(err, data, model)
        path = format_path(loc) or "<top level>"
        body = f"{path}: {text}"
        # a problem found at a block whose value an override changed is the override's
        where, by_override = linemap.blame(loc)
        if (
            err.get("type") == "extra_forbidden"
            and where
            and where[0] not in (source, OVERRIDE_SOURCE)
            and not by_override
        ):
            value = _MISSING  # an unknown key in a base file: its value is not ours to show
        if value is not _MISSING and not text.endswith(f"got {value}") and "(got " not in text:
            body += f" (got {_short_repr(value)})"
        if (path, body) in seen:
            continue
        seen.add((path, body))
        found.append((path, body, where, by_override))

    if len(found) == 1 and not more:
        path, body, where, by_override = found[0]
        return error_at(body, path, where, by_override, source, source)

    problems: list[str] = []
    for _path, body, where, _ in found:
        if where is None:
            problems.append(body)
        elif where[0] == OVERRIDE_SOURCE:
            problems.append(f"{body} [from {OVERRIDE_SOURCE}]")
        elif where[1] is None:
            problems.append(f"{body} [{where[0]}]")
        elif where[0] == source:
            problems.append(f"{body} [line {where[1]}]")
        else:
            problems.append(f"{body} [{where[0]} line {where[1]}]")
    noun = _input_noun(model)
    if not more:
        return InputError(
            f"{len(problems)} problems in the {noun}:", file=source, problems=problems
        )
    problems.append(f"and {len(more):,} more problems")
    return InputError(
        f"{len(found) + len(more):,} problems in the {noun} (the first {len(found)} are listed):",
        file=source,
        problems=problems,
    )


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def _check_model(model: Any) -> None:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"model must be a pydantic BaseModel subclass, got {model!r}")


def load(
    path: str | os.PathLike[str] | None,
    model: type[M],
    overrides: Iterable[str] = (),
    *,
    data: Mapping[str, Any] | None = None,
) -> M:
    """Read, merge (``extends``), override (``--set``) and validate a scenario.

    This is the one call the rest of the package uses. With ``path=None`` the scenario is
    taken from ``data`` instead (see :func:`load_dict`). Raises InputError for bad input.
    """
    _check_model(model)
    if path is None:
        if data is None:
            raise TypeError("load() needs a path or data=")
        return load_dict(data, model, overrides)
    if data is not None:
        raise TypeError("load() takes a path or data=, not both")
    source = os.fspath(path)
    raw, linemap = read_scenario(source)
    raw = apply_overrides(raw, overrides, model, linemap)
    logger.debug("validating %s against %s", source, model.__name__)
    return validate(raw, model, linemap, source)


def load_dict(
    data: Mapping[str, Any],
    model: type[M],
    overrides: Iterable[str] = (),
    source: str = "<dict>",
) -> M:
    """Like :func:`load` for a scenario given as a dict (no ``extends`` processing)."""
    _check_model(model)
    if not isinstance(data, Mapping):
        raise InputError(
            f"the top level must be a mapping of keys to values, got {_kind_name(data)}",
            file=source,
        )
    linemap = LineMap()
    result = apply_overrides(dict(data), overrides, model, linemap)
    return validate(result, model, linemap, source)
