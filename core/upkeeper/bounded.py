"""Plugin code run in its own thread with a time limit, so it can neither kill nor hold
the thread that calls it (checks and the hooks called during a run).

The threads are kept for the next call instead of starting one per call: a run calls
plugin code once per (host, check), and starting a thread costs a round of handing the
GIL back and forth that a busy fleet run pays in wall time. A thread whose call was
abandoned is never handed another: it ends when its call returns, so whoever tracks
hung calls sees it alive exactly as long as the call runs.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: How often a bounded call looks at its stop event.
_STOP_POLL = 0.1
#: Seconds an idle thread waits for another call before it ends.
IDLE_SECONDS = 30.0
_IDLE_NAME = "upkeeper-idle"


@dataclass
class Outcome:
    """How a call of plugin code in its own thread ended."""

    finished: bool
    value: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None
    #: The caller's stop event was set before the call finished.
    stopped: bool = False


class _Call:
    """One call handed to a thread; ``lock`` decides between finishing and abandoning."""

    __slots__ = ("abandoned", "done", "error", "finished", "fn", "lock", "name", "value")

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self.fn, self.name = fn, name
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = self.abandoned = False


class _Worker(threading.Thread):
    def __init__(self, pool: ThreadPool, call: _Call) -> None:
        super().__init__(daemon=True, name=call.name)
        self.pool = pool
        self.inbox: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._first: _Call | None = call

    def run(self) -> None:
        call, self._first = self._first, None
        while call is not None:
            self.name = call.name
            try:
                # A fresh context per call, as a new thread would have: context
                # variables one plugin call sets never reach the next.
                call.value = contextvars.Context().run(call.fn)
            except BaseException as exc:  # handed back to the caller, not swallowed
                call.error = exc
            with call.lock:
                call.finished = True
                abandoned = call.abandoned
            if abandoned:
                call.done.set()
                return
            self.name = _IDLE_NAME
            # Idle before the caller hears of the result: its next call takes this thread.
            self.pool._park(self)
            call.done.set()
            call = self.pool._next_call(self)


class ThreadPool:
    """Threads that run plugin code one call at a time, kept while they are idle for up
    to ``idle_seconds``. Use :func:`run_bounded` (the process's pool)."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            # A forked child has none of these threads.
            os.register_at_fork(after_in_child=self._idle.clear)

    def idle(self) -> int:
        """Threads waiting for a call."""
        with self._lock:
            return len(self._idle)

    def _park(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def _next_call(self, worker: _Worker) -> _Call | None:
        """The next call for a parked ``worker``; None when it was idle too long."""
        try:
            return worker.inbox.get(timeout=self.idle_seconds)
        except queue.Empty:
            with self._lock:
                if worker in self._idle:
                    self._idle.remove(worker)
                    return None
            return worker.inbox.get()  # taken just now: its call is on the way

    def run(self, fn: Callable[[], Any], limit: float | None, *, name: str,
            stop: threading.Event | None = None) -> Outcome:
        """See :func:`run_bounded`."""
        call = _Call(fn, name)
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker(self, call)
            worker.start()
        else:
            worker.inbox.put(call)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            wait = _STOP_POLL if deadline is None else min(_STOP_POLL,
                                                           deadline - time.monotonic())
            if call.done.wait(max(0.0, wait)):
                return Outcome(True, call.value, call.error, worker)
            stopped = stop is not None and stop.is_set()
            if stopped or (deadline is not None and time.monotonic() >= deadline):
                with call.lock:
                    if not call.finished:
                        call.abandoned = True
                        return Outcome(False, thread=worker, stopped=stopped)
                return Outcome(True, call.value, call.error, worker)


_POOL = ThreadPool()


def run_bounded(fn: Callable[[], Any], limit: float | None, *, name: str,
                stop: threading.Event | None = None) -> Outcome:
    """Run plugin code in a daemon thread and wait at most ``limit`` seconds (and no
    longer than until ``stop`` is set). Any ``BaseException`` it raises, ``SystemExit``
    and ``KeyboardInterrupt`` included, is handed back in the outcome: plugin code can
    neither kill the calling thread nor hold it past the limit. A call that has not
    finished is left running (``outcome.thread``, named ``name`` until the call returns,
    then ended) and must be treated as abandoned.
    """
    return _POOL.run(fn, limit, name=name, stop=stop)
