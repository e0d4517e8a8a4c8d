"""Where the work runs: in this process, in a local process pool, or on a Dask cluster.

Every experiment hands a list of independent tasks (chunks of patients, sweep points)
to :func:`ordered_map` or :func:`completed_map`. Results depend only on the task, never
on where or in which order it ran, so every executor gives the same answer.

Dask is optional (``pip install .[dask]``): ``dask="local"`` starts a ``LocalCluster``
with one single-threaded worker process per requested worker; any other value is the
address of a running scheduler (``tcp://host:8786``), checked by
:func:`check_dask_address` before anything runs.

Native thread pools (OpenBLAS, MKL, OpenMP) are limited to one thread in every worker
process and while tasks run in this process (:func:`one_native_thread`): the model's
matrix exponentials are tiny, a second BLAS thread only spins, and ``--workers N`` is then
the only parallelism, so it scales.

Interruption: worker processes ignore SIGINT (the parent decides), die with their
parent (``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux, and a watchdog thread polling
``os.getppid()`` everywhere), and when the parent stops early (Ctrl-C, SIGTERM, an error)
the queued tasks are cancelled and the workers killed at once instead of finishing the
queue.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from .errors import InputError

__all__ = [
    "MAX_WORKERS",
    "check_dask_address",
    "check_workers",
    "completed_map",
    "dask_session",
    "default_workers",
    "ordered_map",
    "pool_session",
    "session_map",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """All cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


#: the most worker processes ``--workers`` may ask for: a fixed limit, the same on every
#: machine (a script runs anywhere), far above any useful value (one process per core;
#: a Dask cluster of more machines has its own workers) and far below what would exhaust
#: memory by starting processes (``--dask local --workers 100000000``)
MAX_WORKERS = 1024


def workers_problem(workers: int) -> str | None:
    """Why ``workers`` is not a valid number of worker processes, or None."""
    if workers < 1:
        return f"must be at least 1, got {workers}"
    if workers > MAX_WORKERS:
        return (
            f"{workers} is above the limit of {MAX_WORKERS} worker processes (a fixed limit,"
            f" whatever the number of cores; this machine has {default_workers()})"
        )
    return None


def check_workers(workers: int) -> int:
    """``workers`` if it is a valid number of worker processes (1 to
    :data:`MAX_WORKERS`), else InputError naming ``--workers`` and the value."""
    problem = workers_problem(workers)
    if problem is not None:
        raise InputError(f"--workers {workers}: {problem}")
    return workers


_PR_SET_PDEATHSIG = 1
_DASK_ADDRESS = re.compile(
    r"^(?:(?:tcp|tls|ucx|ws|wss)://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):[0-9]{1,5}"
    r"|inproc://[^\s]+)$"
)


def check_dask_address(dask: str | None) -> None:
    """InputError unless ``dask`` is None, ``local`` or a scheduler address."""
    if dask is None or dask == "local":
        return
    m = _DASK_ADDRESS.match(dask)
    port = dask.rsplit(":", 1)[-1]
    if not m or (not dask.startswith("inproc://") and not 0 < int(port) < 65536):
        raise InputError(
            f"--dask-scheduler {dask!r}: not a scheduler address; expected"
            " tcp://HOST:PORT (or tls://, ws://, wss://, ucx://, inproc://)"
        )


def limit_native_threads() -> Any:
    """Limit every native thread pool loaded (numpy's and scipy's BLAS included) to one
    thread, for the rest of this process; returns the threadpoolctl limiter (its
    ``restore_original_limits()`` undoes it)."""
    import numpy  # noqa: F401  (load the libraries to limit before limiting them)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _limit_in_worker() -> None:
    limit_native_threads()  # nothing to send back (the limiter does not pickle)


@contextlib.contextmanager
def one_native_thread() -> Iterator[None]:
    """Native thread pools limited to one thread inside the block (tasks run in this
    process)."""
    limiter = limit_native_threads()
    try:
        yield
    finally:
        limiter.restore_original_limits()


def _die_with_parent(parent: int) -> None:
    """Worker initializer: exit when the parent process is gone, ignore Ctrl-C, and use
    one native thread (BLAS) so that the workers are the only parallelism."""
    limit_native_threads()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


@contextlib.contextmanager
def _process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers die with this process; leaving the block early (an
    exception, Ctrl-C, a closed generator) cancels queued tasks and kills the workers."""
    check_workers(workers)  # never start millions of processes (the API has no argparse)
    context = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        yield pool
    except BaseException:
        _kill_pool(pool)
        raise
    pool.shutdown(wait=True)


def _quiet_cancelled_futures_in_manager_threads() -> None:
    """Python < 3.12: once its workers are killed, a pool's manager thread marks every
    pending future as broken, and one already cancelled raises InvalidStateError there,
    printed as a traceback after the one-line "interrupted" message (CPython fixed it in
    3.12 by ignoring that error in ``terminate_broken``). The same is done here, by a
    thread exception hook that ignores exactly that error in exactly those threads and
    passes every other one on; installed once, when a pool is first killed."""
    if sys.version_info >= (3, 12) or getattr(threading.excepthook, "_simulator", False):
        return
    from concurrent.futures import InvalidStateError
    from concurrent.futures.process import _ExecutorManagerThread

    previous = threading.excepthook

    def hook(args: Any) -> None:
        if isinstance(args.thread, _ExecutorManagerThread) and isinstance(
            args.exc_value, InvalidStateError
        ):
            return
        previous(args)

    hook._simulator = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    _quiet_cancelled_futures_in_manager_threads()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    results = getattr(pool, "_result_queue", None)  # shutdown() forgets it
    manager = getattr(pool, "_executor_manager_thread", None)  # and this
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.kill()
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(timeout=5)
    # A worker killed while sending a result leaves half a message in the result pipe;
    # the pool's manager thread would wait for the rest forever (and the interpreter for
    # it at exit). With the workers gone, closing our copy of the write end gives it EOF.
    with contextlib.suppress(Exception):
        results._writer.close()  # type: ignore[union-attr]
    # Python < 3.12: at exit, concurrent.futures wakes each pool's manager thread through
    # a pipe without the lock under which the thread, as it ends, closes that pipe; a
    # thread still ending then gave "OSError: Bad file descriptor" as a traceback after
    # the one-line "interrupted" message. With the workers gone it ends at once: wait.
    if manager is not None:
        manager.join(timeout=5)


@contextlib.contextmanager
def _ignoring_sigint() -> Iterator[None]:
    """SIGINT ignored while child processes start (they inherit it: a Ctrl-C in the
    terminal then reaches only this process, which stops them without tracebacks)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _dask_client(dask: str, workers: int) -> Iterator[Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise InputError(
            "--dask needs the optional Dask dependencies: pip install '.[dask]'"
        ) from None
    for name in ("distributed", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    check_dask_address(dask)
    if dask == "local":
        check_workers(workers)  # one process per worker
        with _ignoring_sigint():
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
            )
        client = Client(cluster)
        client.run(_limit_in_worker)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    try:
        client = Client(dask, timeout="10s")
    except (OSError, TimeoutError, ValueError) as err:
        raise InputError(f"--dask-scheduler {dask}: cannot reach the scheduler ({err})") from None
    with contextlib.suppress(Exception):  # a worker without threadpoolctl still works
        client.run(_limit_in_worker)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def dask_session(dask: str | None, workers: int) -> Iterator[str | None]:
    """For a job that maps many times (a calibration: one map per evaluation): with
    ``dask="local"`` one LocalCluster for the whole job, yielding its scheduler address
    for every map to use; any other value is yielded unchanged."""
    if dask != "local":
        yield dask
        return
    with _dask_client(dask, workers) as client:
        yield str(client.scheduler.address)


# The pool of the innermost ``pool_session`` of this process: (pool, workers, pid).
_SESSION: list[tuple[ProcessPoolExecutor, int, int]] = []


def _own_session() -> tuple[ProcessPoolExecutor, int] | None:
    """The innermost ``pool_session`` of this process (pool, workers), if any (a forked
    worker inherits its parent's list, not its pool)."""
    if _SESSION and _SESSION[-1][2] == os.getpid():
        return _SESSION[-1][0], _SESSION[-1][1]
    return None


@contextlib.contextmanager
def pool_session(workers: int) -> Iterator[None]:
    """For a job that maps many times (a calibration: one map per evaluation or per
    generation): one process pool of ``workers`` for every map of the block that asks for
    that many workers or fewer, so that each worker loads the compiled loops and fills
    its caches once, not once a map. Leaving the block (normally, by an exception or
    Ctrl-C) stops the pool as ``_process_pool`` does. Inside a session of as many
    workers, a nested one makes no pool of its own."""
    own = _own_session()
    if workers <= 1 or (own is not None and own[1] == workers):
        yield  # nothing to share, or an enclosing session's pool serves this block
        return
    with _process_pool(workers) as pool:
        _SESSION.append((pool, workers, os.getpid()))
        try:
            yield
        finally:
            _SESSION.pop()


@contextlib.contextmanager
def _pool_for(workers: int) -> Iterator[ProcessPoolExecutor]:
    """The session's pool when it has at least ``workers`` workers (a map of fewer tasks
    than the session's workers asks for fewer), else a pool for this map alone."""
    own = _own_session()
    if own is not None and own[1] >= workers:
        yield own[0]
        return
    with _process_pool(workers) as pool:
        yield pool


def session_map(fn: Callable[[T], R], tasks: list[T]) -> list[R]:
    """Results of fn over tasks, in task order: on the workers of this process's
    innermost ``pool_session`` (a sweep's analysis and figures, on the pool that ran its
    points), else here with one native thread, as a single-worker run does."""
    own = _own_session()
    return list(ordered_map(fn, tasks, 1 if own is None else own[1]))


def ordered_map(
    fn: Callable[[T], R], tasks: list[T], workers: int = 1, dask: str | None = None
) -> Iterator[R]:
    """Results of fn over tasks, in task order, computed wherever asked."""
    if dask:
        with _dask_client(dask, workers) as client:
            futures = client.map(fn, tasks, pure=False)
            try:
                for fut in futures:
                    yield fut.result()
                    fut.release()
            except BaseException:
                with contextlib.suppress(Exception):
                    client.cancel(futures)
                raise
        return
    if workers <= 1 or len(tasks) <= 1:
        with one_native_thread():
            yield from map(fn, tasks)
        return
    with _pool_for(min(workers, len(tasks))) as pool:
        # submit a bounded window ahead so results stream without holding them all
        window = 2 * workers
        futures = [pool.submit(fn, t) for t in tasks[:window]]
        nxt = len(futures)
        try:
            for i in range(len(tasks)):
                yield futures[i].result()
                futures[i] = None  # type: ignore[call-overload]
                if nxt < len(tasks):
                    futures.append(pool.submit(fn, tasks[nxt]))
                    nxt += 1
        finally:  # left early: what is queued does not run (a session's pool lives on)
            for f in futures:
                if f is not None:
                    f.cancel()


def completed_map(
    fn: Callable[[T], R], tasks: list[tuple[int, T]], workers: int = 1, dask: str | None = None
) -> Iterator[tuple[int, R]]:
    """(key, result) pairs as tasks complete, in any order (for checkpointing)."""
    if dask:
        with _dask_client(dask, workers) as client:
            from dask.distributed import as_completed as dask_completed

            futures = {client.submit(fn, t, pure=False): k for k, t in tasks}
            try:
                for fut in dask_completed(futures):
                    yield futures[fut], fut.result()
                    fut.release()
            except BaseException:
                with contextlib.suppress(Exception):
                    client.cancel(list(futures))
                raise
        return
    if workers <= 1 or len(tasks) <= 1:
        with one_native_thread():
            for k, t in tasks:
                yield k, fn(t)
        return
    with _pool_for(min(workers, len(tasks))) as pool:
        futs = {pool.submit(fn, t): k for k, t in tasks}
        try:
            for fut in as_completed(futs):
                yield futs[fut], fut.result()
        finally:  # left early: what is queued does not run (a session's pool lives on)
            for fut in futs:
                fut.cancel()
