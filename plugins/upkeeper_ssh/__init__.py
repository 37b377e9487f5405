"""upkeeper built-in plugin: the SSH transport (paramiko), ``ansible_connection: ssh``."""

from __future__ import annotations

from upkeeper import Transport, hookimpl
from upkeeper_ssh.transport import SSHTransport

__all__ = ["SSHTransport"]


@hookimpl
def upkeeper_register_transports() -> list[type[Transport]]:
    return [SSHTransport]
