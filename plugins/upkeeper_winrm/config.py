"""WinRM connection settings read from a host's Ansible variables (validated, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upkeeper import TransportError

AUTH_TRANSPORTS = ("ntlm", "kerberos", "credssp", "basic", "certificate")
DEFAULT_OPERATION_TIMEOUT = 20
DEFAULT_READ_TIMEOUT = 30
HTTP_PORT = 5985
HTTPS_PORT = 5986


@dataclass(frozen=True)
class WinRMConfig:
    """Everything needed to build a pywinrm ``Protocol`` for one host.

    ``password`` is excluded from ``repr`` so a logged config never shows it.
    """

    host: str
    address: str
    port: int
    scheme: str
    path: str
    user: str
    password: str = field(repr=False, default="")
    auth: str = "ntlm"
    cert_validation: str = "validate"
    ca_trust_path: str | None = None
    message_encryption: str = "auto"
    operation_timeout: int = DEFAULT_OPERATION_TIMEOUT
    read_timeout: int = DEFAULT_READ_TIMEOUT
    cert_pem: str | None = None
    cert_key_pem: str | None = None
    kerberos_delegation: bool = False
    kerberos_hostname_override: str | None = None
    service: str = "HTTP"

    @property
    def endpoint(self) -> str:
        """The WS-Management URL, e.g. ``https://srv01.example.com:5986/wsman``."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def target(self) -> str:
        """``address:port`` as used in error messages."""
        return f"{self.address}:{self.port}"

    @property
    def pywinrm_transport(self) -> str:
        """pywinrm's name for the auth method (it calls HTTP basic ``basic`` too)."""
        return self.auth


def _first(vars_: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = vars_.get(name)
        if value is not None and value != "":
            return value
    return None


def _int_var(host: str, vars_: Mapping[str, Any], name: str, default: int) -> int:
    raw = vars_.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise TransportError(f"{name} must be a whole number of seconds, got {raw!r}",
                             host=host) from None
    if value < 1:
        raise TransportError(f"{name} must be at least 1, got {value}", host=host)
    return value


def _port(host: str, raw: Any) -> int:
    """The port from ``ansible_port``, or 0 when unset (the scheme picks the default)."""
    if raw is None:
        return 0
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise TransportError(f"ansible_port must be a number, got {raw!r}", host=host) from None
    if not 0 < port < 65536:
        raise TransportError(f"ansible_port {port} is out of range", host=host)
    return port


def _bool_var(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y")


def _auth(host: str, raw: Any) -> str:
    # Ansible accepts a list (or comma-separated string) and uses the first usable one.
    if raw is None:
        return "ntlm"
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    names = [str(i).strip().lower() for i in items if str(i).strip()]
    if not names:
        return "ntlm"
    name = {"plaintext": "basic", "ssl": "basic", "negotiate": "ntlm"}.get(names[0], names[0])
    if name not in AUTH_TRANSPORTS:
        raise TransportError(
            f"ansible_winrm_transport {names[0]!r} is not supported "
            f"(use one of: {', '.join(AUTH_TRANSPORTS)})", host=host)
    return name


def config_from_vars(host: str, vars_: Mapping[str, Any]) -> WinRMConfig:
    """Build a :class:`WinRMConfig` from Ansible variables, with Ansible's defaults.

    :raises TransportError: a variable is missing or invalid (the message names it).
    """
    address = str(_first(vars_, "ansible_host") or host)
    port = _port(host, _first(vars_, "ansible_port", "ansible_winrm_port"))
    scheme_raw = _first(vars_, "ansible_winrm_scheme")
    if scheme_raw is None:
        # Ansible's rule: https unless the port is the well-known HTTP one.
        scheme = "http" if port == HTTP_PORT else "https"
    else:
        scheme = str(scheme_raw).strip().lower()
        if scheme not in ("http", "https"):
            raise TransportError(f"ansible_winrm_scheme must be http or https, got {scheme_raw!r}",
                                 host=host)
    if not port:
        port = HTTPS_PORT if scheme == "https" else HTTP_PORT
    path = str(_first(vars_, "ansible_winrm_path") or "/wsman")
    if not path.startswith("/"):
        path = "/" + path

    auth = _auth(host, _first(vars_, "ansible_winrm_transport"))
    user = str(_first(vars_, "ansible_user", "ansible_winrm_user") or "")
    password = _first(vars_, "ansible_password", "ansible_winrm_password", "ansible_winrm_pass")
    cert_pem = _first(vars_, "ansible_winrm_cert_pem")
    cert_key_pem = _first(vars_, "ansible_winrm_cert_key_pem")
    if auth == "certificate":
        if not cert_pem or not cert_key_pem:
            raise TransportError("ansible_winrm_transport certificate needs "
                                 "ansible_winrm_cert_pem and ansible_winrm_cert_key_pem", host=host)
    elif auth != "kerberos":
        if not user:
            raise TransportError(f"ansible_user is required for WinRM {auth} authentication",
                                 host=host)
        if password is None:
            raise TransportError(f"ansible_password is required for WinRM {auth} authentication "
                                 f"(user {user})", host=host)

    validation = str(_first(vars_, "ansible_winrm_server_cert_validation") or "validate").lower()
    if validation not in ("validate", "ignore"):
        raise TransportError("ansible_winrm_server_cert_validation must be validate or ignore, "
                             f"got {validation!r}", host=host)
    encryption = str(_first(vars_, "ansible_winrm_message_encryption") or "auto").lower()
    if encryption not in ("auto", "always", "never"):
        raise TransportError("ansible_winrm_message_encryption must be auto, always or never, "
                             f"got {encryption!r}", host=host)
    if encryption == "always" and auth in ("basic", "certificate"):
        raise TransportError(
            f"ansible_winrm_message_encryption: always needs ntlm, kerberos or credssp; {auth} "
            "authentication is only encrypted by HTTPS (use ansible_winrm_scheme: https)",
            host=host)

    op_timeout = _int_var(host, vars_, "ansible_winrm_operation_timeout_sec",
                          DEFAULT_OPERATION_TIMEOUT)
    read_default = max(DEFAULT_READ_TIMEOUT, op_timeout + 10)
    read_timeout = _int_var(host, vars_, "ansible_winrm_read_timeout_sec", read_default)
    if read_timeout <= op_timeout:
        # pywinrm's rule: the server may hold a Receive for the whole operation timeout.
        raise TransportError(
            f"ansible_winrm_read_timeout_sec ({read_timeout}) must be greater than "
            f"ansible_winrm_operation_timeout_sec ({op_timeout})", host=host)

    ca = _first(vars_, "ansible_winrm_ca_trust_path")
    return WinRMConfig(
        host=host, address=address, port=port, scheme=scheme, path=path, user=user,
        password="" if password is None else str(password), auth=auth,
        cert_validation=validation, ca_trust_path=str(ca) if ca else None,
        message_encryption=encryption, operation_timeout=op_timeout,
        read_timeout=read_timeout,
        cert_pem=str(cert_pem) if cert_pem else None,
        cert_key_pem=str(cert_key_pem) if cert_key_pem else None,
        kerberos_delegation=_bool_var(vars_.get("ansible_winrm_kerberos_delegation", False)),
        kerberos_hostname_override=_first(vars_, "ansible_winrm_kerberos_hostname_override"),
        service=str(_first(vars_, "ansible_winrm_service") or "HTTP"),
    )
