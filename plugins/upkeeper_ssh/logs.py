"""Keep paramiko's own logging (tracebacks from its transport thread) off stderr."""

from __future__ import annotations

import logging

_ROUTED = "upkeeper.ssh.paramiko"


class _Demote(logging.Handler):
    """Re-emits paramiko records at DEBUG on ``upkeeper.ssh.paramiko``.

    paramiko logs an ERROR with a traceback for every failed connection, which the
    transport already reports as a result; shown with ``-v`` (debug) only.
    """

    def emit(self, record: logging.LogRecord) -> None:
        target = logging.getLogger(_ROUTED)
        if target.isEnabledFor(logging.DEBUG):
            target.debug("%s", record.getMessage())


def quiet_paramiko() -> None:
    """Route the ``paramiko`` logger through :class:`_Demote` (idempotent)."""
    plog = logging.getLogger("paramiko")
    if any(isinstance(h, _Demote) for h in plog.handlers):
        return
    plog.addHandler(_Demote())
    plog.propagate = False
