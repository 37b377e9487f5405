"""One command on an open channel: feed its input, collect capped output, watch the clock.

Also answers sudo's password prompt and takes the ``@@upk PID`` line out of stderr.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

import paramiko

from upkeeper import CappedOutput, CommandResult, TransportError
from upkeeper_ssh.remote import PID_PREFIX, RemoteCommand

if TYPE_CHECKING:
    from upkeeper_ssh.transport import SSHTransport

#: stdin larger than this is written from a helper thread so a command that writes
#: before it reads cannot deadlock against us.
_INLINE_STDIN = 256 * 1024


class Exchange:
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
        self.out = CappedOutput(transport.output_limit)
        self.err = CappedOutput(transport.output_limit)
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
        if not timed_out and exit_code == -1 and self.t.closing:
            raise self.t.closed_error(self.text)
        if not timed_out and exit_code == -1 and not self.t.connected:
            raise TransportError(f"connection to {self.t.host.name} lost during command "
                                 f"{short_command(self.text)}", host=self.t.host.name)
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
        """Take the ``@@upk PID`` line out of stderr; return the rest as it arrives.

        It is normally the first line, but a noisy rc file of the login shell may print
        before it, so the first 64 KiB are searched.
        """
        assert self.head is not None
        self.head += chunk
        data = bytes(self.head)
        prefix = PID_PREFIX.encode()
        at = 0 if data.startswith(prefix) else data.find(b"\n" + prefix) + 1
        if at > 0 or data.startswith(prefix):
            end = data.find(b"\n", at)
            if end < 0:
                return b""
            self.head = None
            with contextlib.suppress(ValueError):
                self.pid = int(data[at + len(prefix):end])
            if self.pid is not None:
                self.t.pid_reported(self.pid)
            return data[:at] + data[end + 1:]
        if len(data) > 65536:
            self.head = None
            return data
        # Hold back only what might still become the marker line.
        cut = data.rfind(b"\n") + 1
        self.head = bytearray(data[cut:])
        return data[:cut]

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


def short_command(text: str) -> str:
    """The first line of a command, shortened, quoted: for error messages."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return repr(first[:60] + ("..." if len(first) > 60 or "\n" in text.strip() else ""))

