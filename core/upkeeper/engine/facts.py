"""Facts of a host gathered lazily: the runner asks the transport only when a check looks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any


class LazyFacts(MutableMapping[str, Any]):
    """Facts gathered on first use, once, by calling ``loader``.

    Hosts whose checks never look at facts cost no extra round trip.
    """

    def __init__(self, loader: Callable[[], Mapping[str, Any]],
                 initial: Mapping[str, Any] | None = None) -> None:
        self._loader: Callable[[], Mapping[str, Any]] | None = loader
        self._data: dict[str, Any] = dict(initial or {})
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._loader is None

    def _load(self) -> dict[str, Any]:
        if self._loader is not None:
            with self._lock:
                if self._loader is not None:
                    gathered = dict(self._loader())
                    gathered.update(self._data)
                    self._data = gathered
                    self._loader = None
        return self._data

    def peek(self, key: str, default: Any = None) -> Any:
        """A fact if already known, without gathering."""
        return self._data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return f"LazyFacts({self._data!r}, loaded={self.loaded})"
