"""The ``winrm`` transport: one remote shell per host per run, driven through pywinrm."""

from __future__ import annotations

import logging
import math
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from winrm.exceptions import (
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from upkeeper import CommandResult, Host, Transport, TransportError
from upkeeper.powershell import PowerShellError, run_powershell_json

from .clixml import decode_clixml
from .config import WinRMConfig, config_from_vars
from .errors import SHELL_NOT_FOUND, translate
from .facts import FACTS_SCRIPT, parse_windows_facts
from .scripts import Invocation, cmd_join, cmd_with_env_script, powershell_invocation

log = logging.getLogger("upkeeper.winrm")

#: Everything pywinrm lets escape from a call that went wrong on the wire. StopIteration
#: and AssertionError are how it reports a malformed or mismatched response.
WIRE_ERRORS: tuple[type[BaseException], ...] = (
    WinRMError, WinRMTransportError, WinRMOperationTimeoutError, requests.RequestException,
    ET.ParseError, StopIteration, AssertionError, ValueError,
)
#: What pywinrm raises for a configuration it cannot use (e.g. encryption "always" with basic).
WINRM_SETUP_ERRORS: tuple[type[BaseException], ...] = (WinRMError, ValueError)
#: Auth methods that may work without a password (ticket cache, client certificate).
_NO_PASSWORD = ("certificate", "kerberos")
#: Bytes of stdin sent per WS-Man Send message (well under the 150 KiB envelope limit
#: of older servers once base64-encoded).
STDIN_CHUNK = 48 * 1024
#: Code page of the remote shell: UTF-8, so non-ASCII output survives.
UTF8_CODEPAGE = 65001


class WinRMTransport(Transport):
    """Runs cmd.exe commands and PowerShell scripts on a Windows host over WinRM.

    The shell is created on first use and reused by every command of the run; ``close``
    deletes it (also after errors). Variables follow Ansible's winrm connection plugin.
    """

    name = "winrm"
    os_families = ("windows",)

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._config: WinRMConfig | None = None
        self._protocol: Protocol | None = None
        self._shell_id: str | None = None
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._warned_sudo = False

    @property
    def config(self) -> WinRMConfig:
        """Settings from the host's variables (validated on first use)."""
        if self._config is None:
            self._config = config_from_vars(self.host.name, self.host.vars)
        return self._config

    @property
    def shell_id(self) -> str | None:
        return self._shell_id

    def _make_protocol(self, cfg: WinRMConfig) -> Protocol:
        try:
            return Protocol(
                endpoint=cfg.endpoint,
                transport=cfg.pywinrm_transport,  # type: ignore[arg-type]
                username=cfg.user or None,
                password=cfg.password or None if cfg.auth in _NO_PASSWORD else cfg.password,
                service=cfg.service,
                # Unset: like Ansible, fall back to REQUESTS_CA_BUNDLE / the system bundle.
                ca_trust_path=cfg.ca_trust_path or (
                    "legacy_requests" if cfg.scheme == "https" else None),  # type: ignore[arg-type]
                cert_pem=cfg.cert_pem,
                cert_key_pem=cfg.cert_key_pem,
                server_cert_validation=cfg.cert_validation,  # type: ignore[arg-type]
                kerberos_delegation=cfg.kerberos_delegation,
                kerberos_hostname_override=cfg.kerberos_hostname_override,
                read_timeout_sec=cfg.read_timeout,
                operation_timeout_sec=cfg.operation_timeout,
                message_encryption=cfg.message_encryption,  # type: ignore[arg-type]
            )
        except WINRM_SETUP_ERRORS as exc:
            raise TransportError(f"cannot set up WinRM for {cfg.host} ({cfg.endpoint}, "
                                 f"{cfg.auth} auth): {exc}", host=cfg.host) from exc

    def open(self) -> None:
        with self._lock:
            if self._shell_id is not None:
                return
            cfg = self.config
            if cfg.scheme == "https" and cfg.cert_validation == "ignore":
                log.warning("%s: WinRM server certificate validation is disabled "
                            "(ansible_winrm_server_cert_validation: ignore); the connection to "
                            "%s can be intercepted. Set ansible_winrm_ca_trust_path instead.",
                            cfg.host, cfg.target)
            if cfg.scheme == "http" and cfg.auth == "basic":
                log.warning("%s: basic authentication over plain HTTP sends the password of "
                            "%r unencrypted; use https (port 5986) or ntlm/kerberos", cfg.host,
                            cfg.user)
            if self._protocol is None:
                self._protocol = self._make_protocol(cfg)
            try:
                self._shell_id = self._protocol.open_shell(codepage=UTF8_CODEPAGE,
                                                           noprofile=True)
            except WIRE_ERRORS as exc:
                raise translate(exc, cfg, "open a shell") from exc
            log.debug("%s: opened WinRM shell %s on %s", cfg.host, self._shell_id, cfg.endpoint)

    def close(self) -> None:
        cfg = self._config
        # Tell a command still polling for output (the runner closes a hung host from
        # another thread) to give up; it notices within one Receive round trip.
        self._closing.set()
        wait = (cfg.read_timeout + 5) if cfg else 5
        locked = self._lock.acquire(timeout=wait)
        try:
            shell, proto = self._shell_id, self._protocol
            # pywinrm closes its HTTP session with the shell; a later open starts afresh.
            self._shell_id, self._protocol = None, None
            if shell is None or proto is None:
                return
            try:
                proto.close_shell(shell)
            except WIRE_ERRORS as exc:
                log.warning("%s", translate(exc, self.config, f"delete shell {shell}"))
            else:
                log.debug("%s: deleted WinRM shell %s", self.host.name, shell)
        finally:
            self._closing.clear()
            if locked:
                self._lock.release()

    def run(
        self,
        command: str | Sequence[str],
        timeout: float | None = None,
        sudo: bool = False,
        stdin: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run a cmd.exe command line (an argument list is quoted for cmd.exe).

        ``sudo`` has no meaning over WinRM (commands run as ``ansible_user``) and is
        ignored. With ``env`` the command is started from PowerShell sent over stdin, so
        the values never appear on a command line.
        """
        text = command if isinstance(command, str) else cmd_join([str(a) for a in command])
        if sudo and not self._warned_sudo:
            self._warned_sudo = True
            log.info("%s: sudo is ignored over WinRM; commands run as %s", self.host.name,
                     self.config.user or "the connecting user")
        if env:
            if stdin is not None:
                return CommandResult(text, -1, "", "stdin together with env is not supported "
                                                   "by the winrm transport")
            inv = powershell_invocation(cmd_with_env_script(text, env), force_stdin=True)
            res = self._execute(inv, timeout, label=text)
            res.stderr = decode_clixml(res.stderr)
            return res
        data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
        return self._execute(Invocation(text, data), timeout, label=text)

    def run_powershell(self, script: str, timeout: float | None = None) -> CommandResult:
        """Run a PowerShell script of any length; stderr CLIXML is made readable.

        The exit code is the script's ``exit N``, 1 after a terminating error (the
        error text is on stderr), else the last native command's non-zero exit code, else 0.
        """
        res = self._execute(powershell_invocation(script), timeout, label=script)
        res.stderr = decode_clixml(res.stderr)
        return res

    def gather_facts(self, timeout: float | None = 30) -> dict[str, Any]:
        """OS caption, version, build, hostname and domain from one CIM query."""
        try:
            data = run_powershell_json(self, FACTS_SCRIPT, timeout=timeout)
        except PowerShellError as exc:
            if exc.result.timed_out:
                raise TransportError(f"gathering Windows facts timed out after {timeout}s",
                                     host=self.host.name) from exc
            log.warning("%s: gathering Windows facts failed: %s", self.host.name, exc)
            return {"os_family": "windows", "facts_error": str(exc)}
        return parse_windows_facts(data)

    def _execute(self, inv: Invocation, timeout: float | None, label: str) -> CommandResult:
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        with self._lock:
            self.open()
            cfg = self.config
            proto = self._protocol
            assert proto is not None
            command_id = self._start_command(proto, inv)
            try:
                if inv.stdin is not None:
                    self._send_stdin(proto, command_id, inv.stdin)
                out, err, code, timed_out, truncated = self._receive(proto, command_id, deadline)
            except WIRE_ERRORS as exc:
                raise translate(exc, cfg, "run a command") from exc
            finally:
                self._signal(proto, command_id)
        return CommandResult(
            command=label,
            exit_code=-1 if timed_out else code,
            stdout=out.decode("utf-8", errors="replace"),
            stderr=err.decode("utf-8", errors="replace"),
            duration=time.monotonic() - started,
            timed_out=timed_out,
            truncated=truncated,
        )

    def _start_command(self, proto: Protocol, inv: Invocation) -> str:
        cfg = self.config
        for attempt in (1, 2):
            assert self._shell_id is not None
            try:
                return proto.run_command(self._shell_id, inv.command,
                                         console_mode_stdin=not inv.uses_stdin)
            except WSManFaultError as exc:
                if exc.wsman_fault_code == SHELL_NOT_FOUND and attempt == 1:
                    # The server dropped the shell (idle timeout, service restart): start over.
                    log.info("%s: WinRM shell %s is gone, opening a new one", cfg.host,
                             self._shell_id)
                    self._shell_id = None
                    self.open()
                    continue
                raise translate(exc, cfg, "start a command") from exc
            except WIRE_ERRORS as exc:
                raise translate(exc, cfg, "start a command") from exc
        raise AssertionError("unreachable")

    def _send_stdin(self, proto: Protocol, command_id: str, data: bytes) -> None:
        assert self._shell_id is not None
        chunks = [data[i:i + STDIN_CHUNK] for i in range(0, len(data), STDIN_CHUNK)] or [b""]
        for i, chunk in enumerate(chunks):
            proto.send_command_input(self._shell_id, command_id, chunk,
                                     end=i == len(chunks) - 1)

    def _receive(self, proto: Protocol, command_id: str, deadline: float | None
                 ) -> tuple[bytes, bytes, int, bool, bool]:
        """Poll Receive until the command is done or ``deadline`` passes.

        Each Receive asks the server to hold it no longer than the time left (pywinrm
        puts ``operation_timeout_sec`` into the request), so a deadline is met within a
        second instead of a whole operation timeout.
        """
        assert self._shell_id is not None
        cfg = self.config
        out, err = bytearray(), bytearray()
        truncated = False
        try:
            while True:
                if self._closing.is_set():
                    raise TransportError(f"{cfg.host}: the connection was closed while a "
                                         "command was still running", host=cfg.host)
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return bytes(out), bytes(err), -1, True, truncated
                    proto.operation_timeout_sec = max(1, min(cfg.operation_timeout,
                                                             math.ceil(left)))
                try:
                    o, e, code, done = proto.get_command_output_raw(self._shell_id, command_id)
                except WinRMOperationTimeoutError:
                    continue
                truncated |= _append(out, o, self.output_limit)
                truncated |= _append(err, e, self.output_limit)
                if done:
                    return bytes(out), bytes(err), code, False, truncated
        finally:
            proto.operation_timeout_sec = cfg.operation_timeout

    def _signal(self, proto: Protocol, command_id: str) -> None:
        """Terminate the command and free it on the server (Windows keeps it otherwise)."""
        if self._shell_id is None:
            return
        try:
            proto.cleanup_command(self._shell_id, command_id)
        except WIRE_ERRORS as exc:
            log.warning("%s", translate(exc, self.config, f"signal command {command_id}"))


def _append(buf: bytearray, data: bytes, limit: int) -> bool:
    """Append ``data`` keeping ``buf`` under ``limit`` bytes; True when something was cut."""
    room = limit - len(buf)
    if room > 0:
        buf += data[:room]
    return len(data) > max(room, 0)
