"""Turn pywinrm and requests exceptions into TransportErrors an engineer can act on."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import requests
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)

from upkeeper import TransportError

from .config import WinRMConfig

_WSMAN_FAULT_NS = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
#: WSManFault code for "the shell was not found" (closed by the server, idle timeout).
SHELL_NOT_FOUND = 2150858843

_HINTS = {
    2150858770: "the WinRM service is not reachable or not configured on the host",
    2150859174: "the user has too many open shells (MaxShellsPerUser)",
    2150858843: "the remote shell no longer exists (closed by the server or idle timeout)",
    5: "access denied: the user needs to be an administrator or in Remote Management Users",
}


def fault_message(response: str) -> str | None:
    """The human message inside a SOAP fault's ``f:WSManFault`` (``f:Message`` text)."""
    try:
        root = ET.fromstring(response)
    except ET.ParseError:
        return None
    for node in root.iter(f"{{{_WSMAN_FAULT_NS}}}WSManFault"):
        texts = [t.strip() for t in node.itertext() if t.strip()]
        if texts:
            return " ".join(texts)
    return None


def describe_fault(exc: WSManFaultError) -> str:
    """``reason (WSManFault code N, subcode)``, preferring the fault's own message text."""
    message = fault_message(exc.response or "") or (exc.reason or "").strip()
    message = " ".join(message.split()) or "(no message in the fault)"
    bits = []
    if exc.wsman_fault_code is not None:
        bits.append(f"WSManFault code {exc.wsman_fault_code}")
    if exc.fault_subcode:
        bits.append(exc.fault_subcode)
    if exc.wmierror_code is not None:
        bits.append(f"WMI error {exc.wmierror_code}")
    hint = _HINTS.get(exc.wsman_fault_code or -1)
    text = f"{message} ({', '.join(bits)})" if bits else message
    return f"{text}: {hint}" if hint else text


def _root_reason(exc: BaseException) -> str:
    """The innermost useful text of a requests/urllib3 exception chain."""
    text = str(exc)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed",
                   "Connection refused", "Name or service not known", "timed out",
                   "No route to host", "hostname", "doesn't match"):
        if marker in text:
            start = text.find(marker)
            end = text.find("'", start)
            snippet = text[start:end if end > start else None]
            return re.sub(r"[\s()'\"]+$", "", snippet)[:200]
    return text[:200]


def _tls_error(exc: requests.exceptions.SSLError, cfg: WinRMConfig) -> TransportError:
    text = str(exc)
    m = re.search(r"certificate verify failed: ([^(')\"]+)", text)
    if m or "CERTIFICATE_VERIFY_FAILED" in text or "match" in text:
        reason = m.group(1).strip() if m else _root_reason(exc)
        return TransportError(
            f"TLS certificate of {cfg.target} ({cfg.host}) could not be verified: {reason}. "
            "Trust the CA that signed it with ansible_winrm_ca_trust_path: /path/to/ca.pem "
            "(a PEM bundle), or, not recommended, set "
            "ansible_winrm_server_cert_validation: ignore", host=cfg.host)
    m = re.search(r"\[SSL: (\w+)\]", text)
    reason = m.group(1) if m else _root_reason(exc)
    return TransportError(
        f"TLS handshake with {cfg.target} ({cfg.host}) failed ({reason}); is the listener on "
        f"port {cfg.port} really HTTPS? (5985 is normally HTTP: ansible_winrm_scheme: http)",
        host=cfg.host)


def translate(exc: BaseException, cfg: WinRMConfig, action: str) -> TransportError:
    """A :class:`TransportError` for ``exc`` raised while doing ``action`` (e.g. "open shell").

    Messages name the host, endpoint, user and auth method where they help, and never
    the password (it is masked even if a library put it into its own message).
    """
    err = _translate(exc, cfg, action)
    text = str(err)
    if cfg.password and cfg.password in text:
        err = TransportError(text.replace(cfg.password, "********"), host=cfg.host)
    return err


def _translate(exc: BaseException, cfg: WinRMConfig, action: str) -> TransportError:
    where = f"{cfg.host} ({cfg.endpoint})"
    if isinstance(exc, InvalidCredentialsError):
        return TransportError(
            f"WinRM authentication failed on {where}: user {cfg.user!r} was rejected "
            f"(HTTP 401) using {cfg.auth} authentication; check ansible_user/ansible_password "
            f"and that {cfg.auth} auth is enabled in the host's WinRM service config",
            host=cfg.host)
    if isinstance(exc, WSManFaultError):
        return TransportError(f"WinRM fault from {where} while trying to {action}: "
                              f"{describe_fault(exc)}", host=cfg.host)
    if isinstance(exc, WinRMTransportError):
        body = " ".join((exc.response_text or "").split())[:200]
        return TransportError(f"WinRM endpoint {where} answered HTTP {exc.code} while trying "
                              f"to {action}" + (f": {body}" if body else ""), host=cfg.host)
    if isinstance(exc, WinRMOperationTimeoutError):
        return TransportError(f"WinRM operation timed out on {where} while trying to {action}",
                              host=cfg.host)
    if isinstance(exc, requests.exceptions.SSLError):
        return _tls_error(exc, cfg)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return TransportError(f"cannot connect to {cfg.target} ({cfg.host}): connection timed "
                              f"out after {cfg.read_timeout}s", host=cfg.host)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return TransportError(
            f"no answer from {cfg.target} ({cfg.host}) within {cfg.read_timeout}s "
            f"(ansible_winrm_read_timeout_sec) while trying to {action}", host=cfg.host)
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = _root_reason(exc)
        if "refused" in reason.lower():
            return TransportError(
                f"cannot connect to {cfg.target} ({cfg.host}): connection refused; is the "
                f"WinRM {cfg.scheme.upper()} listener enabled on port {cfg.port}?",
                host=cfg.host)
        return TransportError(f"cannot connect to {cfg.target} ({cfg.host}): {reason}",
                              host=cfg.host)
    if isinstance(exc, WinRMError):
        return TransportError(f"WinRM error on {where} while trying to {action}: {exc}",
                              host=cfg.host)
    return TransportError(f"WinRM failure on {where} while trying to {action}: "
                          f"{type(exc).__name__}: {exc}", host=cfg.host)
