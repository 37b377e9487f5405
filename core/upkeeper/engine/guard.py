"""Threads of plugin checks abandoned after their timeout: counted per check, bounded.

A Python check that hangs (a sleep, a lock, a socket without a timeout) cannot be killed;
the runner abandons its thread. Under ``upkeeper serve`` the same check hangs again on
the next run, so abandoned threads are counted per check name for the whole process and
a check with :data:`MAX_HUNG_PER_CHECK` of them still alive is not started again: it is
UNKNOWN "previous run still hung" until they end.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("upkeeper.engine.guard")

#: Live abandoned threads of one check after which it is no longer started.
MAX_HUNG_PER_CHECK = 4


class HungChecks:
    """Abandoned check threads of this process, by check name."""

    def __init__(self, limit: int = MAX_HUNG_PER_CHECK) -> None:
        self.limit = limit
        self._threads: dict[str, list[threading.Thread]] = {}
        self._total: dict[str, int] = {}
        self._lock = threading.Lock()

    def abandon(self, check: str, thread: threading.Thread | None) -> None:
        """Record that ``thread`` running ``check`` was given up on."""
        if thread is None or not thread.is_alive():
            return
        with self._lock:
            self._threads.setdefault(check, []).append(thread)
            self._total[check] = self._total.get(check, 0) + 1
        log.warning("check %s hung: its thread was abandoned (%d still alive)", check,
                    self.alive(check))

    def alive(self, check: str) -> int:
        """Abandoned threads of ``check`` that have not ended yet."""
        with self._lock:
            threads = [t for t in self._threads.get(check, []) if t.is_alive()]
            if threads:
                self._threads[check] = threads
            else:
                self._threads.pop(check, None)
            return len(threads)

    def refuse(self, check: str) -> str | None:
        """Why ``check`` must not start now, or None."""
        n = self.alive(check)
        if n < self.limit:
            return None
        return (f"previous run still hung: {n} abandoned thread{'s' if n > 1 else ''} of "
                f"{check} are still running (limit {self.limit}); not started")

    def counts(self) -> dict[str, dict[str, int]]:
        """``{check: {"alive": n, "abandoned": total since start}}`` for checks that hung."""
        names = list(self._total)
        return {n: {"alive": self.alive(n), "abandoned": self._total[n]} for n in names}


#: The process's hung check threads (threads belong to the process, not to one run).
HUNG = HungChecks()
