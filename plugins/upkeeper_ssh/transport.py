"""The SSH transport: one paramiko connection per host, a new channel per command."""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Mapping, Sequence

import paramiko

from upkeeper import CommandResult, Host, Transport, TransportError
from upkeeper.transport import command_text
from upkeeper_ssh import hostkeys
from upkeeper_ssh.auth import (
    AuthenticationFailed,
    KeyLoadError,
    authenticate,
    default_keys,
    load_key,
)
from upkeeper_ssh.config import ConfigError, Endpoint, SSHSettings, settings_from_host
from upkeeper_ssh.logs import quiet_paramiko
from upkeeper_ssh.remote import PID_PREFIX, RemoteCommand, build, kill_line, new_token

log = logging.getLogger("upkeeper.ssh")

#: stdin larger than this is written from a helper thread so a command that writes
#: before it reads cannot deadlock against us.
_INLINE_STDIN = 256 * 1024


#: AES-GCM first: with an AEAD cipher paramiko skips its HMAC, whose pure-Python MAC
#: comparison otherwise costs about 15% of the client's CPU in a fleet run.
_AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _prefer(offered: Sequence[str], first: Sequence[str]) -> list[str]:
    return [c for c in first if c in offered] + [c for c in offered if c not in first]


class _Transient(Exception):
    """A connection failure worth another try (refused, reset, throttled banner)."""


class _Capped:
    """Collects one output stream, keeping at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class SSHTransport(Transport):
    """Runs commands over SSH (paramiko), with host keys verified against known_hosts.

    Connects lazily on the first ``run``; every command gets its own channel on the one
    connection. See docs/ssh.md for the inventory variables.
    """

    name = "ssh"
    os_families = ("linux", "darwin", "freebsd", "openbsd", "netbsd", "sunos", "aix")

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        quiet_paramiko()
        self._lock = threading.Lock()
        self._hops: list[paramiko.Transport] = []
        self._settings: SSHSettings | None = None
        self._prompt_token = new_token()
        self._sudo_rejected: str | None = None
        #: PIDs of plain commands in flight, killed by close() before it disconnects.
        self._running: set[int] = set()

    @property
    def settings(self) -> SSHSettings:
        if self._settings is None:
            try:
                self._settings = settings_from_host(self.host)
            except ConfigError as exc:
                raise TransportError(f"{self.host.name}: {exc}", host=self.host.name) from None
        return self._settings

    @property
    def connected(self) -> bool:
        return bool(self._hops) and self._hops[-1].is_active()

    def open(self) -> None:
        with self._lock:
            if self.connected:
                return
            self._close_hops()
            s = self.settings
            files = hostkeys.default_files(s.known_hosts_files)
            keys = self._keys(s)
            chain = [*s.jump_hosts, s.target]
            try:
                for index, hop in enumerate(chain):
                    is_target = index == len(chain) - 1
                    label = self.host.name if is_target else f"jump host {hop.host}"
                    self._hops.append(self._connect_hop(s, hop, label, files, keys))
            except BaseException:
                self._close_hops()
                raise

    def _keys(self, s: SSHSettings) -> list[tuple[str, paramiko.PKey]]:
        try:
            if s.key_file:
                return [(s.key_file, load_key(s.key_file, s.key_passphrase))]
        except KeyLoadError as exc:
            raise TransportError(f"{self.host.name}: {exc}", host=self.host.name) from None
        if s.look_for_keys:
            return default_keys(s.key_passphrase)
        return []

    def _connect_hop(self, s: SSHSettings, hop: Endpoint, label: str, files: list[str],
                     keys: list[tuple[str, paramiko.PKey]]) -> paramiko.Transport:
        attempt = 0
        while True:
            try:
                return self._try_hop(s, hop, label, files, keys)
            except _Transient as exc:
                if attempt >= s.connect_retries:
                    raise TransportError(
                        f"cannot connect to {label} ({hop.host}:{hop.port}) after "
                        f"{attempt + 1} attempts: {exc}", host=self.host.name) from None
                # Backoff with jitter: many workers hitting one throttled sshd (MaxStartups)
                # must not come back in lock step.
                delay = min(3.0, 0.25 * 2 ** attempt) * (0.5 + random.random())
                log.debug("%s: %s, retrying in %.2fs", label, exc, delay)
                time.sleep(delay)
                attempt += 1

    def _try_hop(self, s: SSHSettings, hop: Endpoint, label: str, files: list[str],
                 keys: list[tuple[str, paramiko.PKey]]) -> paramiko.Transport:
        sock = self._open_socket(s, hop, label)
        ssh = paramiko.Transport(sock)
        try:
            ssh.banner_timeout = s.connect_timeout
            ssh.handshake_timeout = s.connect_timeout
            ssh.auth_timeout = s.connect_timeout
            opts = ssh.get_security_options()
            opts.ciphers = _prefer(opts.ciphers, _AEAD_CIPHERS)
            if s.host_key_checking:
                opts.key_types = hostkeys.preferred_key_types(hop.host, hop.port, files,
                                                              list(opts.key_types))
            try:
                ssh.start_client(timeout=s.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                text = str(exc) or type(exc).__name__
                if isinstance(exc, (EOFError, ConnectionError)) or "banner" in text.lower():
                    raise _Transient(text) from None
                raise TransportError(f"SSH handshake with {label} failed: {text}",
                                     host=self.host.name) from None
            server_key = ssh.get_remote_server_key()
            if s.host_key_checking:
                hostkeys.verify(label, hop.host, hop.port, server_key, files)
            else:
                log.warning("%s: host key checking is off (ssh_host_key_checking: false), "
                            "%s is not verified", label, hostkeys.describe(server_key))
            user = hop.user or s.user
            is_target = hop is s.target
            try:
                authenticate(ssh, user, keys=keys,
                             use_agent=s.use_agent or (not is_target and not keys),
                             password=s.password if is_target else None)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise TransportError(f"authentication with {label} broke off: "
                                     f"{type(exc).__name__}", host=self.host.name) from None
            except AuthenticationFailed as exc:
                raise TransportError(f"{label}: {exc}", host=self.host.name) from None
            if s.keepalive:
                ssh.set_keepalive(s.keepalive)
            return ssh
        except BaseException:
            ssh.close()
            raise

    def _open_socket(self, s: SSHSettings, hop: Endpoint,
                     label: str) -> socket.socket | paramiko.Channel:
        if self._hops:
            try:
                return self._hops[-1].open_channel(
                    "direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0),
                    timeout=s.connect_timeout)
            except paramiko.ChannelException as exc:
                if exc.code == 2:  # connect failed: the target refused, maybe restarting
                    raise _Transient(f"jump host could not connect: {exc.text}") from None
                raise TransportError(f"jump host refused to forward to {label}: {exc.text}",
                                     host=self.host.name) from None
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise TransportError(f"jump host connection lost while opening {label}: "
                                     f"{exc}", host=self.host.name) from None
        try:
            sock = socket.create_connection((hop.host, hop.port), timeout=s.connect_timeout)
        except (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError) as exc:
            raise _Transient(exc.strerror or type(exc).__name__) from None
        except socket.gaierror as exc:
            raise TransportError(f"cannot resolve {hop.host} ({label}): {exc.strerror}",
                                 host=self.host.name) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise TransportError(f"cannot connect to {label} ({hop.host}:{hop.port}): "
                                 f"{reason}", host=self.host.name) from None
        # paramiko never sets TCP_NODELAY; without it Nagle and delayed ACKs add tens of
        # milliseconds to every round trip.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        for pid in list(self._running):
            self.kill_remote(pid)
        with self._lock:
            self._close_hops()

    def _close_hops(self) -> None:
        for ssh in reversed(self._hops):
            ssh.close()
        self._hops = []

    def run(
        self,
        command: str | Sequence[str],
        timeout: float | None = None,
        sudo: bool = False,
        stdin: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        text = command_text(command)
        s = self.settings
        sudo_user = None
        if (sudo or s.become) and s.become_user != s.user:
            sudo_user = s.become_user
        if sudo_user and s.become_password is not None and self._sudo_rejected:
            raise TransportError(self._sudo_rejected, host=self.host.name)
        try:
            remote = build(text, timeout=timeout, env=env, sudo_user=sudo_user,
                           sudo_password=s.become_password is not None,
                           prompt_token=self._prompt_token)
        except ValueError as exc:
            raise TransportError(f"{self.host.name}: {exc}", host=self.host.name) from None
        self.open()
        started = time.monotonic()
        chan = self._open_channel(remote)
        exchange = _Exchange(self, chan, remote, text, stdin, timeout, started)
        try:
            return exchange.run()
        finally:
            chan.close()
            if exchange.pid is not None:
                self._running.discard(exchange.pid)

    def _open_channel(self, remote: RemoteCommand) -> paramiko.Channel:
        ssh = self._hops[-1]
        try:
            chan = ssh.open_session(timeout=self.settings.connect_timeout)
            chan.exec_command(remote.line)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise TransportError(f"connection to {self.host.name} lost: "
                                 f"{exc or type(exc).__name__}", host=self.host.name) from None
        return chan

    def kill_remote(self, pid: int | None) -> None:
        """Kill a timed-out command's process group through a fresh channel.

        sshd does not signal a command when its channel closes, so without this a
        stuck command would outlive the check. Best effort: a dead link cannot kill.
        """
        if pid is None or pid <= 1 or not self.connected:
            return
        try:
            chan = self._hops[-1].open_session(timeout=5)
            try:
                chan.exec_command(kill_line(pid))
                chan.shutdown_write()
                chan.status_event.wait(5)
            finally:
                chan.close()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.debug("%s: could not kill timed-out command %s: %s", self.host.name, pid, exc)

    def reject_sudo(self, reason: str) -> TransportError:
        """Remember a rejected become password: retrying would only lock the account."""
        self._sudo_rejected = reason
        return TransportError(reason, host=self.host.name)


class _Exchange:
    """Feeds one channel and collects its output until exit, timeout or a lost link."""

    def __init__(self, transport: SSHTransport, chan: paramiko.Channel, remote: RemoteCommand,
                 text: str, stdin: str | bytes | None, timeout: float | None,
                 started: float) -> None:
        self.t = transport
        self.chan = chan
        self.remote = remote
        self.text = text
        self.stdin = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
        self.deadline = started + timeout if timeout else None
        self.started = started
        self.out = _Capped(transport.output_limit)
        self.err = _Capped(transport.output_limit)
        self.event = threading.Event()
        chan.in_buffer.set_event(self.event)
        chan.in_stderr_buffer.set_event(self.event)
        self.pending = bytearray()
        self.password_sent = False
        self.ready = not remote.ready_marker
        self.pid: int | None = None
        self.head: bytearray | None = bytearray() if remote.reports_pid else None

    def run(self) -> CommandResult:
        if self.ready:
            self._send_input()
        timed_out = False
        while True:
            self._drain()
            if self.chan.closed or (self.chan.eof_received and self.chan.exit_status_ready()):
                self._drain()
                break
            if self.deadline is not None and time.monotonic() >= self.deadline:
                timed_out = True
                self.t.kill_remote(self.pid)
                break
            if self.chan.recv_ready() or self.chan.recv_stderr_ready():
                continue
            wait = 1.0 if self.deadline is None else max(0.0, self.deadline - time.monotonic())
            # Closed buffers keep the data event set, so after EOF wait for the exit status.
            waiter = self.chan.status_event if self.chan.eof_received else self.event
            waiter.wait(min(wait, 1.0))
        if self.head:
            self.err.feed(bytes(self.head))
        if not timed_out and not self.ready:
            self._sudo_failed_before_ready()
        exit_code = -1 if timed_out else self.chan.exit_status
        if not timed_out and exit_code == -1 and not self.t.connected:
            raise TransportError(f"connection to {self.t.host.name} lost during command "
                                 f"{_short(self.text)}", host=self.t.host.name)
        return CommandResult(
            command=self.text, exit_code=exit_code, stdout=self.out.text(),
            stderr=self.err.text(), duration=time.monotonic() - self.started,
            timed_out=timed_out, truncated=self.out.truncated or self.err.truncated)

    def _drain(self) -> None:
        chan = self.chan
        while chan.recv_ready():
            self.out.feed(chan.recv(65536))
        while chan.recv_stderr_ready():
            chunk = chan.recv_stderr(65536)
            if self.head is not None:
                chunk = self._pid_line(chunk)
            if self.ready:
                self.err.feed(chunk)
            else:
                self._handshake(chunk)

    def _pid_line(self, chunk: bytes) -> bytes:
        """Take the ``@@upk PID`` line off the front of stderr; return what follows."""
        assert self.head is not None
        self.head += chunk
        line, sep, rest = bytes(self.head).partition(b"\n")
        if not sep:
            return b""
        self.head = None
        if line.startswith(PID_PREFIX.encode()):
            with contextlib.suppress(ValueError):
                self.pid = int(line[len(PID_PREFIX):])
                self.t._running.add(self.pid)
            return rest
        return line + sep + rest

    def _send_input(self) -> None:
        data = self.remote.env_block + self.stdin
        try:
            if len(data) <= _INLINE_STDIN:
                if data:
                    self.chan.sendall(data)
                self.chan.shutdown_write()
            else:
                threading.Thread(target=_feed, args=(self.chan, data), daemon=True).start()
        except (OSError, EOFError, paramiko.SSHException):
            # The command exited (or the link dropped) before reading its input; the
            # read loop reports which.
            return

    def _handshake(self, chunk: bytes) -> None:
        """Before the wrapper's ready marker: answer sudo's prompt, spot a rejection."""
        self.pending += chunk
        prompt = self.remote.prompt.encode()
        marker = self.remote.ready_marker.encode() + b"\n"
        at = self.pending.find(marker)
        before = bytes(self.pending if at < 0 else self.pending[:at])
        prompts = before.count(prompt)
        if prompts >= 2 or (prompts and at < 0 and b"incorrect password" in before):
            self.chan.close()
            raise self.t.reject_sudo(
                f"sudo on {self.t.host.name} rejected the become password for "
                f"{self.t.settings.become_user} (check ansible_become_password); "
                f"not retried this run")
        if prompts and not self.password_sent:
            password = self.t.settings.become_password or ""
            self.chan.sendall(password.encode() + b"\n")
            self.password_sent = True
        if at >= 0:
            self.ready = True
            self.err.feed(_strip_prompts(before, prompt))
            rest = bytes(self.pending[at + len(marker):])
            self.pending.clear()
            if rest:
                self.err.feed(rest)
            self._send_input()

    def _sudo_failed_before_ready(self) -> None:
        """sudo exited before running the wrapper (not in sudoers, wrong password...)."""
        text = _strip_prompts(bytes(self.pending), self.remote.prompt.encode())
        self.pending.clear()
        if self.password_sent and b"incorrect password" in text:
            raise self.t.reject_sudo(
                f"sudo on {self.t.host.name} rejected the become password for "
                f"{self.t.settings.become_user} (check ansible_become_password)")
        self.err.feed(text)


def _strip_prompts(data: bytes, prompt: bytes) -> bytes:
    return data.replace(prompt, b"") if prompt else data


def _feed(chan: paramiko.Channel, data: bytes) -> None:
    try:
        chan.sendall(data)
        chan.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        return


def _short(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return repr(first[:60] + ("..." if len(first) > 60 or "\n" in text.strip() else ""))

