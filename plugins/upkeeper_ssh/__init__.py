"""upkeeper built-in plugin: the SSH transport (paramiko), ``ansible_connection: ssh``.

paramiko is imported only when a host uses SSH, and then without invoke (see
:func:`_defer_invoke`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import TYPE_CHECKING, Any

from upkeeper import Transport, hookimpl, lazy_transport

if TYPE_CHECKING:
    import click

    from upkeeper_ssh.transport import SSHTransport

__all__ = ["SSHTransport"]


_INVOKE_LOCK = threading.Lock()


class _InvokeOnFirstUse(types.ModuleType):
    """Stands in for ``invoke`` until an attribute of it is used, then imports it."""

    def __getattr__(self, name: str) -> Any:
        with _INVOKE_LOCK:
            if sys.modules.get("invoke") is self:
                del sys.modules["invoke"]
            real = importlib.import_module("invoke")
        return getattr(real, name)


def _defer_invoke() -> None:
    """Let paramiko's ``import invoke`` cost nothing until invoke is used.

    paramiko imports invoke (with its own copy of PyYAML: ~50 ms, about 40% of importing
    paramiko) only to run ``Match exec`` lines of OpenSSH config files, which upkeeper
    never reads. Until then ``invoke`` is a stand-in; using any of its attributes, from
    paramiko or anything else in the process, imports the real module.
    """
    if "invoke" in sys.modules or "paramiko" in sys.modules:
        return  # too late, or someone already chose
    spec = importlib.util.find_spec("invoke")
    if spec is None:
        return  # not installed: paramiko copes
    stand_in = _InvokeOnFirstUse("invoke")
    stand_in.__spec__ = spec  # what the import system looks at when it finds it here
    sys.modules["invoke"] = stand_in


# Runs before any submodule of this package imports paramiko.
_defer_invoke()

_Lazy = lazy_transport("ssh", "upkeeper_ssh.transport:SSHTransport",
                       ("linux", "darwin", "freebsd", "openbsd", "netbsd", "sunos", "aix"))


def __getattr__(name: str) -> Any:
    if name == "SSHTransport":
        from upkeeper_ssh.transport import SSHTransport

        return SSHTransport
    raise AttributeError(name)


@hookimpl
def upkeeper_register_transports() -> list[type[Transport]]:
    return [_Lazy]


@hookimpl
def upkeeper_register_commands() -> list[click.Command]:
    from upkeeper_ssh.cli import hostkeys  # paramiko: only when the command is used

    return [hostkeys]
