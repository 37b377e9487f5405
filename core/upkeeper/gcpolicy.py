"""When the cycle collector runs in an ``upkeeper`` process.

Start-up imports and builds tens of thousands of objects that live as long as the process
(modules, classes, pydantic validators, plugin registries). With CPython's default
thresholds the collector walks them about ninety times before the first host is contacted,
and again on every collection of the oldest generation while hosts are checked: about 5%
of a run's CPU, measured in bench/ (README "Speed").

So the command line (:mod:`upkeeper.cli.entry`) raises the youngest generation's
threshold while it starts, and :func:`settle` (called when a run starts its hosts)
moves everything alive then into the permanent generation (:func:`gc.freeze`) and puts
the thresholds back. Garbage cycles are still collected throughout: only less often
during start-up, and without walking the start-up objects afterwards.

At exit the interpreter collects several times over everything still alive while it
tears the modules down (a sixth of a short command's time, paramiko's objects
included). The last exit handler freezes them too: they are still released one by one,
and their finalizers run, but no collection walks them again. A process that never calls
:func:`startup` (a library user, the test suite) is not touched.
"""

from __future__ import annotations

import atexit
import gc
import threading

#: Allocations of container objects between collections of the youngest generation while
#: starting (CPython's default is 700).
STARTUP_THRESHOLD = 50_000

_lock = threading.Lock()
_saved: tuple[int, ...] | None = None
_settled = False


def startup() -> None:
    """Collect rarely until :func:`settle`: call first thing in the process."""
    global _saved
    with _lock:
        if _saved is None and not _settled:
            _saved = gc.get_threshold()
            gc.set_threshold(max(STARTUP_THRESHOLD, _saved[0]), *_saved[1:])
            # Registered first, so it runs last, after every other exit handler.
            atexit.register(gc.freeze)


def settle() -> None:
    """Start-up is over: freeze what is alive and collect as usual from now on.

    Only the first call in a process that called :func:`startup` does anything, so a
    long-running ``serve`` freezes once (what it holds at its first run), not at every
    run."""
    global _saved, _settled
    with _lock:
        if _settled or _saved is None:
            return
        _settled = True
        gc.freeze()
        gc.set_threshold(*_saved)
        _saved = None
