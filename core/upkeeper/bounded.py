"""Plugin code run in its own thread with a time limit, so it can neither kill nor hold
the thread that calls it (checks and the hooks called during a run)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: How often a bounded call looks at its stop event.
_STOP_POLL = 0.1


@dataclass
class Outcome:
    """How a call of plugin code in its own thread ended."""

    finished: bool
    value: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None
    #: The caller's stop event was set before the call finished.
    stopped: bool = False


def run_bounded(fn: Callable[[], Any], limit: float | None, *, name: str,
                stop: threading.Event | None = None) -> Outcome:
    """Run plugin code in a daemon thread and wait at most ``limit`` seconds (and no
    longer than until ``stop`` is set). Any ``BaseException`` it raises, ``SystemExit``
    and ``KeyboardInterrupt`` included, is handed back in the outcome: plugin code can
    neither kill the calling thread nor hold it past the limit. A call that has not
    finished is left running (``outcome.thread``) and must be treated as abandoned.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller, not swallowed
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, daemon=True, name=name)
    thread.start()
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        wait = _STOP_POLL if deadline is None else min(_STOP_POLL, deadline - time.monotonic())
        if done.wait(max(0.0, wait)):
            return Outcome(True, box.get("value"), box.get("error"), thread)
        if stop is not None and stop.is_set():
            return Outcome(False, thread=thread, stopped=True)
        if deadline is not None and time.monotonic() >= deadline:
            return Outcome(False, thread=thread)
