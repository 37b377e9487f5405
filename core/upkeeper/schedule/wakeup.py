"""Waking the daemon's main loop without locks, from other threads and from signals.

A Python signal handler runs in the main thread between two bytecodes, possibly while
that thread holds a non-reentrant lock (inside ``Event.wait``, a logging handler or a
buffered writer). A handler that calls ``Event.set()`` can then wait forever on a lock
its own thread holds: the daemon stops heart-beating and ignores SIGTERM. So handlers
here only assign attributes of a :class:`SignalInbox`, the C-level handler writes the
signal number to a socket (``signal.set_wakeup_fd``), and the loop sleeps in ``select``
on that socket instead of on an Event.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any


class Wakeup:
    """A socket pair the main loop sleeps on; :meth:`wake` is safe from any thread."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        for s in (self._r, self._w):
            s.setblocking(False)

    @property
    def write_fd(self) -> int:
        return self._w.fileno()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # full: a wake-up is pending
            self._w.send(b"\0")

    def wait(self, timeout: float) -> None:
        """Sleep until woken or ``timeout`` seconds pass; swallow pending wake-ups."""
        with contextlib.suppress(InterruptedError, ValueError, OSError):
            select.select([self._r], [], [], max(0.0, timeout))
        with contextlib.suppress(BlockingIOError, OSError):
            while self._r.recv(4096):
                pass

    def close(self) -> None:
        self._r.close()
        self._w.close()


class SignalInbox:
    """Signals received, left for the main loop to act on (see the module doc)."""

    def __init__(self) -> None:
        self.stop: str | None = None
        self.reload = False

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        # Attribute stores only: no locks, no I/O, no logging.
        if signum == getattr(signal, "SIGHUP", None):
            self.reload = True
        else:
            self.stop = signal.Signals(signum).name

    def install(self, wakeup: Wakeup, stop: Iterable[int], reload: Iterable[int] = ()
                ) -> Callable[[], None]:
        """Route signals here and to ``wakeup`` (main thread only); returns a function
        that restores the previous handlers."""
        old_fd = signal.set_wakeup_fd(wakeup.write_fd, warn_on_full_buffer=False)
        previous: dict[int, Any] = {}
        for sig in (*stop, *reload):
            previous[sig] = signal.signal(sig, self.handler)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_fd)

        return restore
