"""A small, thread-safe LRU for things loaded from files (keys, known_hosts).

Each value is stored with the file's stamp (device, inode, mtime, size), so an edited,
replaced or rewritten file is loaded again, and the cache never holds more than
``maxsize`` files however many a long-running ``upkeeper serve`` sees.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

Stamp = tuple[int, int, int, int]


def stamp_of(st: os.stat_result) -> Stamp:
    """What identifies one version of a file: a rewrite or replacement changes it."""
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def file_stamp(path: str) -> Stamp | None:
    """The stamp of ``path``, or None if it cannot be read."""
    try:
        return stamp_of(os.stat(path))
    except OSError:
        return None


class StampedLRU(Generic[V]):
    """key -> (stamp, value); a lookup with another stamp is a miss."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, tuple[Stamp, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp: Stamp) -> V | None:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                return None
            if found[0] != stamp:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return found[1]

    def put(self, key: Hashable, stamp: Stamp, value: V) -> None:
        with self._lock:
            self._data[key] = (stamp, value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
