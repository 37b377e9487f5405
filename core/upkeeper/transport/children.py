"""The process groups of the commands this process starts, so none outlives a killed daemon.

The local transport starts every command in its own session and process group. Two
things keep those commands from outliving ``upkeeper serve``:

- :func:`preexec_hook` asks Linux (``PR_SET_PDEATHSIG``) to SIGKILL the command when the
  thread that started it dies, which includes the daemon being killed with SIGKILL;
- a recorder (``upkeeper serve`` installs one with :func:`set_recorder`) hears of every
  group started and ended, so a successor can end what its killed predecessor left, such
  as grandchildren the parent-death signal does not reach.

Process groups and the parent-death signal belong to the whole process, so the recorder
is one per process, like signal handlers are.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("upkeeper.transport")

PR_SET_PDEATHSIG = 1


class Recorder(Protocol):
    """Told of each command's process group (its leader's pid)."""

    def started(self, pgid: int) -> None: ...

    def ended(self, pgid: int) -> None: ...


_recorder: Recorder | None = None


def set_recorder(recorder: Recorder | None) -> Recorder | None:
    """Install ``recorder`` (None removes it); returns the previous one."""
    global _recorder
    previous, _recorder = _recorder, recorder
    return previous


def started(pgid: int) -> None:
    rec = _recorder
    if rec is not None:
        try:
            rec.started(pgid)
        except Exception as exc:  # recording is a safety net; the command still runs
            log.warning("cannot record process group %d: %s", pgid, exc)


def ended(pgid: int) -> None:
    rec = _recorder
    if rec is not None:
        try:
            rec.ended(pgid)
        except Exception as exc:
            log.warning("cannot record the end of process group %d: %s", pgid, exc)


@functools.cache
def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # on first use: start-up cost

    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


def preexec_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die with the thread that starts it (Linux;
    elsewhere None, so subprocess keeps its fast spawn path)."""
    prctl = _load_prctl()  # in the parent, before any fork
    if prctl is None:
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        # Runs in the child between fork and exec: no locks, no allocation-heavy work.
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent
