"""Errors raised for bad user input.

Every problem with what the user gave us (a scenario file, a ``--set`` override, a
command-line value) is reported as one :class:`InputError`. The CLI catches it, prints
``str(err)`` to stderr and exits with status 2, so the message must be complete on its own:
it names the file and line where known, the dotted YAML path and the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["InputError", "format_path"]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class InputError(Exception):
    """Bad user input. str() is the complete message shown to the user.

    Attributes mirror the constructor arguments so callers (and tests) can inspect them:
    ``message`` (the text without the location prefix), ``path`` (dotted YAML path, if the
    problem is about one value), ``file`` and ``line`` (1-based) where known, and
    ``problems`` (one text per problem when several were found at once).

    Format of ``str(err)``:

    * file and line known: ``"{file}:{line}: {message}"``
    * only the file known: ``"{file}: {message}"``
    * otherwise: ``"{message}"``

    When ``problems`` is given, the message is a one-line header and each problem follows
    on its own line, indented as ``"  - {problem}"``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        file: str | None = None,
        line: int | None = None,
        problems: list[str] | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.file = file
        self.line = line
        self.problems: list[str] = list(problems) if problems else []
        super().__init__(self._render())

    def _render(self) -> str:
        if self.file and self.line is not None:
            head = f"{self.file}:{self.line}: {self.message}"
        elif self.file:
            head = f"{self.file}: {self.message}"
        else:
            head = self.message
        if not self.problems:
            return head
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])

    def __str__(self) -> str:
        return self._render()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._render()!r})"


def format_path(loc: Iterable[str | int]) -> str:
    """Format a location tuple as a dotted YAML path.

    >>> format_path(("regimen", "sparing_agents", 0, "agent"))
    'regimen.sparing_agents[0].agent'
    >>> format_path(())
    ''

    Keys that are not plain identifiers (they contain dots, spaces, brackets, ...) are
    shown quoted in brackets, e.g. ``costs['drug.ivig']``.
    """
    out: list[str] = []
    for part in loc:
        if isinstance(part, bool) or not isinstance(part, int | str):
            out.append(f"[{part!r}]")
        elif isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{part!r}]")
    return "".join(out)
