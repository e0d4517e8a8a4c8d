"""The few most recently used values of something costly to make, per process.

Compiled plans (``runner``), shared propagators (``kernel.disease``) and a sweep worker's
point jobs (``sweeps``) are each kept this way. A Dask worker may run chunks in several
threads, so lookups hold a lock (reentrant: making one value may look up another).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Recent"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Up to ``kept`` values by key; the least recently used goes first."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for ``key``, else ``make()``, kept from now on."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = self._items[key] = make()
            while len(self._items) > self.kept:
                self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
