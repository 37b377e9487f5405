"""The worker's outbox: a result is written to disk before it is sent and removed once
the results stream acknowledged it, so results produced while the hub (or the NATS
server) is unreachable survive a worker restart and are sent later; the hub drops the
duplicates a resend may create."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, key: str) -> Path:
        return self.dir / (hashlib.sha256(key.encode()).hexdigest()[:40] + ".json")

    def put(self, key: str, data: bytes) -> Path:
        """Store ``data`` durably (write, fsync, rename) under ``key``."""
        path = self._path(key)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return path

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def pending(self) -> Iterator[tuple[Path, bytes]]:
        for path in sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                yield path, path.read_bytes()
            except OSError:
                continue

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*.json"))
