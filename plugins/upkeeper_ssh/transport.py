"""The SSH transport: one paramiko connection per host, a new channel per command."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Mapping, Sequence

import paramiko
from paramiko.ssh_exception import IncompatiblePeer

from upkeeper import CommandResult, Host, Transport, TransportError, command_text
from upkeeper_ssh import hostkeys
from upkeeper_ssh.auth import (
    AuthenticationFailed,
    KeyLoadError,
    authenticate,
    default_keys,
    load_key,
)
from upkeeper_ssh.config import ConfigError, Endpoint, SSHSettings, settings_from_host
from upkeeper_ssh.exchange import Exchange, short_command
from upkeeper_ssh.logs import quiet_paramiko
from upkeeper_ssh.remote import RemoteCommand, build, kill_line, new_token

log = logging.getLogger("upkeeper.ssh")

#: AES-GCM first: with an AEAD cipher paramiko skips its HMAC, whose pure-Python MAC
#: comparison otherwise costs about 15% of the client's CPU in a fleet run.
_AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")

#: Seconds close() waits for the PID line of a command that has just started: without
#: it the command cannot be killed, and sshd leaves it running once the connection goes.
_PID_WAIT = 5.0


def _prefer(offered: Sequence[str], first: Sequence[str]) -> list[str]:
    return [c for c in first if c in offered] + [c for c in offered if c not in first]


class _Transient(Exception):
    """A connection failure worth another try (refused, reset, throttled banner)."""


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
        #: Threads whose plain command may have started but has not reported its PID.
        self._awaiting_pid: list[int] = []
        self._pids = threading.Condition()
        #: Set by close(); cleared when the transport connects again.
        self.closing = False
        #: Why the last connect failed; raised again by open() until close().
        self._failed: TransportError | None = None

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
        """Connect (idempotent). A failed connect is remembered until :meth:`close`.

        Every later ``run``/``open`` raises the same :class:`TransportError` at once: the
        host's other checks must not each wait for an unreachable host again (or retry
        a rejected password into a lockout). ``close()`` then ``open()`` tries again.
        """
        with self._lock:
            if self._failed is not None:
                raise TransportError(str(self._failed), host=self.host.name,
                                     status=self._failed.status)
            if self.connected:
                return
            self._close_hops()
            self.closing = False
            try:
                self._connect_chain()
            except TransportError as exc:
                self._failed = exc
                raise
            except Exception as exc:  # a paramiko or agent surprise is still data
                log.debug("%s: connecting failed", self.host.name, exc_info=True)
                self._failed = TransportError(
                    f"SSH connection to {self.host.name} failed: {self._reason(exc)}",
                    host=self.host.name)
                raise self._failed from None

    def _reason(self, exc: BaseException) -> str:
        """One printable line from an exception (its text may come from the server),
        with the host's secrets masked."""
        text = str(exc) or type(exc).__name__
        s = self._settings
        for secret in (s.password, s.key_passphrase, s.become_password) if s else ():
            if secret:
                text = text.replace(secret, "********")
        text = "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))
        return text if len(text) <= 300 else text[:297] + "..."

    def _connect_chain(self) -> None:
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
                        f"unreachable: cannot connect to {label} ({hop.host}:{hop.port}) "
                        f"after {attempt + 1} attempts: {exc}", host=self.host.name) from None
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
            self._handshake(ssh, s, hop, label)
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

    def _handshake(self, ssh: paramiko.Transport, s: SSHSettings, hop: Endpoint,
                   label: str) -> None:
        """Banner and key exchange, each bounded by the connect timeout.

        A server that accepts TCP but sends no banner in time (hung sshd, tarpit) is
        unreachable at once, not retried: each try would cost the whole timeout again.
        """
        where = f"{label} ({hop.host}:{hop.port})"
        silent = TransportError(
            f"unreachable: {where} accepted the TCP connection but sent no SSH banner "
            f"within {s.connect_timeout:g}s", host=self.host.name)
        started = time.monotonic()
        try:
            ssh.start_client(timeout=s.connect_timeout)
        except IncompatiblePeer as exc:
            raise TransportError(f"unreachable: SSH handshake with {where} failed: "
                                 f"{self._reason(exc)}",
                                 host=self.host.name) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            # paramiko's banner timeout arrives as SSHException, its TimeoutError cause
            # sometimes lost on the way from its thread: the time spent tells too.
            waited = time.monotonic() - started >= 0.9 * s.connect_timeout
            if not ssh.remote_version and (isinstance(exc.__context__, TimeoutError)
                                           or waited):
                raise silent from None
            # Before authentication nothing is lost by trying again, and a throttled
            # or overloaded sshd (MaxStartups, a full accept queue) fails in many
            # ways: reset, EOF, a truncated packet.
            raise _Transient(f"SSH handshake failed: {self._reason(exc)}") from None
        if not (ssh.is_active() and ssh.initial_kex_done):
            # paramiko's start_client returns quietly when its own timeout expires first.
            if not ssh.remote_version:
                raise silent
            raise TransportError(f"unreachable: SSH key exchange with {where} did not "
                                 f"finish within {s.connect_timeout:g}s", host=self.host.name)

    def _open_socket(self, s: SSHSettings, hop: Endpoint,
                     label: str) -> socket.socket | paramiko.Channel:
        if self._hops:
            try:
                return self._hops[-1].open_channel(
                    "direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0),
                    timeout=s.connect_timeout)
            except paramiko.ChannelException as exc:
                if exc.code == 2:  # connect failed: the target refused, maybe restarting
                    raise _Transient(f"jump host could not connect: {self._reason(exc)}") from None
                raise TransportError(f"unreachable: jump host refused to forward to {label}: "
                                     f"{self._reason(exc)}", host=self.host.name) from None
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise TransportError(f"unreachable: jump host connection lost while opening "
                                     f"{label}: {self._reason(exc)}",
                                     host=self.host.name) from None
        where = f"{label} ({hop.host}:{hop.port})"
        try:
            sock = socket.create_connection((hop.host, hop.port), timeout=s.connect_timeout)
        except (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError) as exc:
            raise _Transient(exc.strerror or type(exc).__name__) from None
        except socket.gaierror as exc:
            raise TransportError(f"unreachable: cannot resolve {hop.host} ({label}): "
                                 f"{exc.strerror}", host=self.host.name) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise TransportError(f"unreachable: cannot connect to {where}: {reason}",
                                 host=self.host.name) from None
        # paramiko never sets TCP_NODELAY; without it Nagle and delayed ACKs add tens of
        # milliseconds to every round trip.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        # A command still running belongs to a check the runner gave up on: kill it on
        # the host first, and let its run() report the close rather than an exit code.
        # A command started but whose PID line is still on its way is waited for (a
        # moment), else closing the connection would leave it running on the host.
        self.closing = True
        me = threading.get_ident()
        with self._pids:
            self._pids.wait_for(lambda: all(t == me for t in self._awaiting_pid),
                                timeout=_PID_WAIT)
            running = list(self._running)
        for pid in running:
            self.kill_remote(pid)
        with self._lock:
            self._close_hops()
            self._failed = None

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
        me = threading.get_ident()
        if remote.reports_pid:
            with self._pids:
                if self.closing:
                    raise self.closed_error(text)
                self._awaiting_pid.append(me)
        exchange: Exchange | None = None
        try:
            started = time.monotonic()
            chan = self._open_channel(remote, text)
            exchange = Exchange(self, chan, remote, text, stdin, timeout, started)
            try:
                return exchange.run()
            finally:
                chan.close()
        finally:
            with self._pids:
                if exchange is not None and exchange.pid is not None:
                    self._running.discard(exchange.pid)
                elif remote.reports_pid:
                    self._awaiting_pid.remove(me)
                    self._pids.notify_all()

    def pid_reported(self, pid: int) -> None:
        """A plain command's PID line arrived: close() can kill it from now on; if a
        close() already gave up waiting for it, kill it now."""
        with self._pids:
            self._running.add(pid)
            self._awaiting_pid.remove(threading.get_ident())
            self._pids.notify_all()
            late = self.closing
        if late:
            self.kill_remote(pid)

    def closed_error(self, text: str) -> TransportError:
        """What a command's run() raises when close() stopped it."""
        return TransportError(f"command killed: the SSH transport to {self.host.name} was "
                              f"closed by upkeeper (run stopped or check abandoned) during "
                              f"command {short_command(text)}", host=self.host.name)

    def _open_channel(self, remote: RemoteCommand, text: str) -> paramiko.Channel:
        hops = self._hops
        if self.closing or not hops:  # close() got in between open() and here
            raise self.closed_error(text)
        try:
            chan = hops[-1].open_session(timeout=self.settings.connect_timeout)
            chan.exec_command(remote.line)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if self.closing:
                raise self.closed_error(text) from None
            raise TransportError(f"connection to {self.host.name} lost: "
                                 f"{self._reason(exc)}", host=self.host.name) from None
        return chan

    def kill_remote(self, pid: int | None) -> None:
        """Kill a timed-out command's process group through a fresh channel.

        sshd does not signal a command when its channel closes, so without this a
        stuck command would outlive the check. Best effort: a dead link cannot kill.
        """
        hops = self._hops  # close() may empty the list from another thread
        if pid is None or pid <= 1 or not hops or not hops[-1].is_active():
            return
        try:
            chan = hops[-1].open_session(timeout=5)
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
