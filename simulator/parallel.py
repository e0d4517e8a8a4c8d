"""Where the work runs: in this process, in a local process pool, or on a Dask cluster.

Every experiment hands a list of independent tasks (chunks of patients, sweep points)
to :func:`ordered_map` or :func:`completed_map`. Results depend only on the task, never
on where or in which order it ran, so every executor gives the same answer.

Dask is optional (``pip install .[dask]``): ``dask="local"`` starts a ``LocalCluster``
with one single-threaded worker process per requested worker; any other value is the
address of a running scheduler (``tcp://host:8786``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from .errors import InputError

__all__ = ["completed_map", "default_workers", "ordered_map"]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """All cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _dask_client(dask: str, workers: int) -> Iterator[Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--dask needs the optional Dask dependencies: pip install '.[dask]'"
                         ) from None
    for name in ("distributed", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if dask == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL)
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    try:
        client = Client(dask, timeout="10s")
    except (OSError, TimeoutError) as err:
        raise InputError(f"--dask-scheduler {dask}: cannot reach the scheduler ({err})"
                         ) from None
    try:
        yield client
    finally:
        client.close()


def ordered_map(fn: Callable[[T], R], tasks: list[T], workers: int = 1,
                dask: str | None = None) -> Iterator[R]:
    """Results of fn over tasks, in task order, computed wherever asked."""
    if dask:
        with _dask_client(dask, workers) as client:
            futures = client.map(fn, tasks, pure=False)
            for fut in futures:
                yield fut.result()
                fut.release()
        return
    if workers <= 1 or len(tasks) <= 1:
        yield from map(fn, tasks)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        # submit a bounded window ahead so results stream without holding them all
        window = 2 * workers
        futures = [pool.submit(fn, t) for t in tasks[:window]]
        nxt = len(futures)
        for i in range(len(tasks)):
            yield futures[i].result()
            futures[i] = None  # type: ignore[call-overload]
            if nxt < len(tasks):
                futures.append(pool.submit(fn, tasks[nxt]))
                nxt += 1


def completed_map(fn: Callable[[T], R], tasks: list[tuple[int, T]], workers: int = 1,
                  dask: str | None = None) -> Iterator[tuple[int, R]]:
    """(key, result) pairs as tasks complete, in any order (for checkpointing)."""
    if dask:
        with _dask_client(dask, workers) as client:
            from dask.distributed import as_completed as dask_completed

            futures = {client.submit(fn, t, pure=False): k for k, t in tasks}
            for fut in dask_completed(futures):
                yield futures[fut], fut.result()
                fut.release()
        return
    if workers <= 1 or len(tasks) <= 1:
        for k, t in tasks:
            yield k, fn(t)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        futs = {pool.submit(fn, t): k for k, t in tasks}
        for fut in as_completed(futs):
            yield futs[fut], fut.result()
