"""SSH connection settings read from a host's (Ansible-compatible) inventory variables."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any

from upkeeper import Host

DEFAULT_PORT = 22
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_KEEPALIVE = 15
#: Key files tried, like ssh does, when a host names no key and no password.
DEFAULT_KEY_FILES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


class ConfigError(ValueError):
    """A host variable has a value the SSH transport cannot use."""


@dataclass(frozen=True)
class Endpoint:
    """One hop: where to connect and as whom."""

    host: str
    port: int = DEFAULT_PORT
    user: str | None = None

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"


@dataclass
class SSHSettings:
    """Everything the transport needs to reach one host. Secrets are kept out of repr."""

    name: str
    target: Endpoint
    user: str
    password: str | None = field(default=None, repr=False)
    key_file: str | None = None
    key_passphrase: str | None = field(default=None, repr=False)
    use_agent: bool = False
    look_for_keys: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    keepalive: int = DEFAULT_KEEPALIVE
    known_hosts_files: tuple[str, ...] = ()
    host_key_checking: bool = True
    jump_hosts: tuple[Endpoint, ...] = ()
    become: bool = False
    become_user: str = "root"
    become_password: str | None = field(default=None, repr=False)
    connect_retries: int = 4


def as_bool(value: Any, name: str, default: bool) -> bool:
    """Ansible-style booleans: true/false, yes/no, on/off, 1/0."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def as_number(value: Any, name: str, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if number < 0:
        raise ConfigError(f"{name} must not be negative")
    return number


def parse_endpoint(text: str, default_user: str | None = None, *,
                   default_port: int = DEFAULT_PORT, what: str = "jump host") -> Endpoint:
    """Parse ``[user@]host[:port]`` (IPv6 as ``[::1]:2222``, or bare without a port).

    :param what: how errors name the value ("jump host", "host").
    """
    text = text.strip()
    if not text:
        raise ConfigError(f"empty {what}")
    user: str | None = default_user
    if "@" in text:
        user, _, text = text.rpartition("@")
        if not user:
            raise ConfigError(f"{what} {text!r} has an empty user")
    port = default_port
    host = text
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ConfigError(f"unclosed '[' in {what} {text!r}")
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"bad {what} {text!r} (expected [host]:port)")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    if not host:
        raise ConfigError(f"{what} {text!r} has no host name")
    if host.startswith("-"):
        raise ConfigError(f"{what} {text!r}: a host name cannot start with '-'")
    return Endpoint(host=host, port=port, user=user)


def parse_jump_hosts(value: Any) -> tuple[Endpoint, ...]:
    """``ssh_jump_host``: ProxyJump syntax, hops separated by commas, first hop first."""
    if value is None or value == "" or str(value).lower() == "none":
        return ()
    hops = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(parse_endpoint(str(h)) for h in hops if str(h).strip())


def _port(text: str, where: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"bad port in {where!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"port out of range in {where!r}")
    return port


def _secret(vars: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = vars.get(name)
        if value is not None and value != "":
            return str(value)
    return None


def settings_from_host(host: Host) -> SSHSettings:
    """Read the Ansible variables (and upkeeper's ``ssh_*`` ones) of ``host``."""
    v = host.vars
    port = _port(str(v.get("ansible_port") or v.get("ansible_ssh_port") or DEFAULT_PORT),
                 f"ansible_port of {host.name}")
    user = str(v.get("ansible_user") or v.get("ansible_ssh_user") or _local_user())
    password = _secret(v, "ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
    key_file = v.get("ansible_ssh_private_key_file") or v.get("ansible_private_key_file")
    passphrase = _secret(v, "ansible_ssh_private_key_passphrase",
                         "ssh_private_key_passphrase")
    nothing_given = not key_file and password is None
    use_agent = as_bool(v.get("ssh_use_agent"), "ssh_use_agent", nothing_given)
    look_for_keys = as_bool(v.get("ssh_look_for_keys"), "ssh_look_for_keys", nothing_given)
    known = v.get("ssh_known_hosts_file") or ()
    if isinstance(known, str):
        known = [k for k in known.split(",") if k.strip()]
    become_pw = _secret(v, "ansible_become_password", "ansible_become_pass",
                        "ansible_sudo_pass")
    return SSHSettings(
        name=host.name,
        target=Endpoint(host=host.address, port=port, user=user),
        user=user,
        password=password,
        key_file=os.path.expanduser(str(key_file)) if key_file else None,
        key_passphrase=passphrase,
        use_agent=use_agent,
        look_for_keys=look_for_keys,
        connect_timeout=as_number(v.get("ansible_ssh_timeout") or v.get("ansible_timeout"),
                                  "ansible_ssh_timeout", DEFAULT_CONNECT_TIMEOUT) or
        DEFAULT_CONNECT_TIMEOUT,
        keepalive=int(as_number(v.get("ssh_keepalive"), "ssh_keepalive", DEFAULT_KEEPALIVE)),
        known_hosts_files=tuple(os.path.expanduser(str(k).strip()) for k in known),
        host_key_checking=as_bool(v.get("ssh_host_key_checking",
                                        v.get("ansible_host_key_checking")),
                                  "ssh_host_key_checking", True),
        jump_hosts=parse_jump_hosts(v.get("ssh_jump_host")),
        become=as_bool(v.get("ansible_become"), "ansible_become", False),
        become_user=str(v.get("ansible_become_user") or "root"),
        become_password=become_pw,
        connect_retries=int(as_number(v.get("ssh_connect_retries"), "ssh_connect_retries", 4)),
    )


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"
