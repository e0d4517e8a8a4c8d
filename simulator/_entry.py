"""The ``simulate`` command's entry point, importing as little as it can before it stops
Ctrl-C from printing a traceback.

Python turns SIGINT into ``KeyboardInterrupt`` from its first instruction, but
``simulator.cli`` installs its own handlers only once it has imported argparse, logging
and concurrent.futures (~40 ms, more on a cold disk). A Ctrl-C in that window used to
print a traceback of the import. Importing this module installs a handler that ends the
process quietly with status 130 (nothing has been written yet); ``cli.main`` replaces it
with its own for the command and restores it afterwards. A SIGINT that the parent told
this process to ignore (a background job of a non-interactive shell) stays ignored.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

__all__ = ["main"]


def _stop_before_start(signum: int, frame: Any) -> None:
    try:
        sys.stderr.write("interrupted: no results were written\n")
        sys.stderr.flush()
    finally:
        os._exit(128 + signum)


if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
    signal.signal(signal.SIGINT, _stop_before_start)


def main() -> int:
    from .cli import main as cli_main

    return cli_main()
