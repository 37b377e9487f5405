"""A small WS-Management (WinRM) endpoint for tests: real HTTP(S), SOAP 1.2, basic or NTLM.

It answers the calls pywinrm makes (Create, Command, Send, Receive, Signal, Delete) the
way a Windows host does, including SOAP faults and 401s. Nothing is executed: a Python
handler sees each command (with the PowerShell decoded from ``-EncodedCommand`` and the
bytes received on stdin) and decides stdout, stderr and exit code.

NTLM is the real protocol: pyspnego's acceptor checks the client's NTLMv2 response
against the password in ``NTLM_USER_FILE`` (per TCP connection, as on Windows), and
messages sealed with the session key (WinRM "HTTP-SPNEGO-session-encrypted") are
unsealed and answered sealed.
"""

from __future__ import annotations

import base64
import re
import ssl
import struct
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

import spnego
from spnego.exceptions import SpnegoError

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
TRANSFER_URI = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
DONE = f"{SHELL_URI}/CommandState/Done"
RUNNING = f"{SHELL_URI}/CommandState/Running"
OPERATION_TIMEOUT_CODE = 2150858793
INVALID_SELECTORS_CODE = 2150858843


@dataclass
class Execution:
    """One command as the endpoint received it (what a handler decides from)."""

    shell_id: str
    command_id: str
    command: str
    console_mode_stdin: bool = True
    stdin: bytes = b""
    stdin_closed: bool = False

    @property
    def encoded_script(self) -> str | None:
        """The PowerShell text of ``-EncodedCommand`` (UTF-16LE base64), if any."""
        m = re.search(r"(?i)\s-(?:e|ec|enc|encodedcommand)\s+([A-Za-z0-9+/=]+)", self.command)
        if not m:
            return None
        return base64.b64decode(m.group(1)).decode("utf-16-le")

    @property
    def stdin_text(self) -> str:
        """stdin as text: base64-of-UTF-8 is decoded, anything else read as UTF-8."""
        raw = self.stdin.strip()
        if not raw:
            return ""
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return self.stdin.decode("utf-8", errors="replace")

    @property
    def script(self) -> str:
        """The user's script without the transport's wrapper.

        upkeeper sends long scripts on stdin and short ones as the single-quoted literal
        assigned to ``$__upk_src``; anything else is returned whole.
        """
        encoded = self.encoded_script
        if encoded is None:
            return self.command
        if self.stdin:
            return self.stdin_text
        m = re.search(r"\$__upk_src = '((?:[^']|'')*)'", encoded)
        return m.group(1).replace("''", "'") if m else encoded

    @property
    def text(self) -> str:
        """Everything the host would run: the decoded command line script plus stdin."""
        parts = [self.encoded_script or self.command, self.stdin_text]
        return "\n".join(p for p in parts if p)


@dataclass
class Reply:
    """What a command produces. ``delay`` seconds pass before it is done; stdout is
    spread over ``chunks`` Receive responses (the earlier ones say Running)."""

    stdout: str | bytes = ""
    stderr: str | bytes = ""
    exit_code: int = 0
    delay: float = 0.0
    chunks: int = 1


@dataclass
class Fault:
    """A SOAP fault the endpoint answers with (HTTP 500)."""

    reason: str
    wsman_code: int | None = None
    subcode: str = "w:InternalError"
    code: str = "s:Receiver"
    status: int = 500


Handler = Callable[[Execution], "Reply | str | tuple[int, str] | tuple[int, str, str] | None"]


@dataclass
class _Command:
    execution: Execution
    reply: Reply | None = None
    started: float = 0.0
    sent: int = 0
    signalled: bool = False


@dataclass
class _Shell:
    shell_id: str
    codepage: str = ""
    noprofile: str = ""
    commands: dict[str, _Command] = field(default_factory=dict)


def _b(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def _as_reply(value: Any, ex: Execution) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str | bytes):
        return Reply(stdout=value)
    if isinstance(value, tuple):
        code, out, *rest = value
        return Reply(stdout=out, stderr=rest[0] if rest else "", exit_code=int(code))
    return Reply(stderr=f"fake endpoint: no answer for {ex.command[:80]!r}", exit_code=9009)


def _seconds(value: str | None, default: float) -> float:
    m = re.fullmatch(r"PT(\d+(?:\.\d+)?)S", (value or "").strip())
    return float(m.group(1)) if m else default


class WSManServer:
    """The endpoint. Use as a context manager; ``url`` is ``http(s)://127.0.0.1:PORT/wsman``.

    ``open_shells`` counts shells created and not yet deleted, so tests can prove cleanup;
    ``executions`` and ``signals`` record commands; ``fail_next(action, fault)`` makes the
    next request with that action (Create, Command, Send, Receive, Signal, Delete) fail.
    """

    def __init__(self, handler: Handler | None = None, *, username: str = "upk-admin",
                 password: str = "Winrm-Pass-42", ssl_context: ssl.SSLContext | None = None,
                 path: str = "/wsman", auth: tuple[str, ...] = ("basic",)) -> None:
        self.handler = handler or (lambda ex: None)
        self.username = username
        self.password = password
        self.ssl_context = ssl_context
        self.path = path
        self.auth = auth
        self.encrypted_requests = 0
        self.plain_requests = 0
        self.shells: dict[str, _Shell] = {}
        self.shells_created = 0
        self.shells_deleted = 0
        self.executions: list[Execution] = []
        self.signals: list[str] = []
        self.actions: list[str] = []
        self.auth_failures = 0
        self.ignore_operation_timeout = False
        self._faults: dict[str, list[Fault]] = {}
        self._cond = threading.Condition()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}{self.path}"

    def host_vars(self) -> dict[str, Any]:
        """Inventory vars that reach this server (basic authentication, its scheme)."""
        return {"ansible_connection": "winrm", "ansible_host": "127.0.0.1",
                "ansible_port": self.port, "ansible_user": self.username,
                "ansible_password": self.password, "ansible_winrm_transport": "basic",
                "ansible_winrm_scheme": "https" if self.ssl_context else "http"}

    @property
    def open_shells(self) -> int:
        with self._cond:
            return len(self.shells)

    def fail_next(self, action: str, fault: Fault) -> None:
        with self._cond:
            self._faults.setdefault(action, []).append(fault)

    def expire_shells(self) -> None:
        """Forget every shell, as a host does after its idle timeout or a service restart."""
        with self._cond:
            self.shells.clear()

    def start(self) -> WSManServer:
        server = self

        class Handler(_RequestHandler):
            endpoint = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        if self.ssl_context is not None:
            httpd.socket = self.ssl_context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> WSManServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, body: bytes) -> tuple[int, str]:
        """Answer one SOAP request: (HTTP status, response XML)."""
        root = ET.fromstring(body)
        header = root.find("s:Header", NS)
        assert header is not None, "no SOAP header"
        action = (header.findtext("a:Action", "", NS) or "").strip()
        message_id = (header.findtext("a:MessageID", "", NS) or "").strip()
        short = action.rsplit("/", 1)[-1]
        selector = header.find("w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = selector.text if selector is not None and selector.text else None
        options = {o.get("Name", ""): (o.text or "") for o in header.iterfind(
            "w:OptionSet/w:Option", NS)}
        op_timeout = _seconds(header.findtext("w:OperationTimeout", None, NS), 20.0)
        body_el = root.find("s:Body", NS)
        with self._cond:
            self.actions.append(short)
            queued = self._faults.get(short)
            if queued:
                return self._fault(queued.pop(0), message_id)
            if short != "Create" and (shell_id is None or shell_id not in self.shells):
                return self._fault(Fault("The request for the Windows Remote Shell with "
                                         f"ShellId {shell_id} failed because the shell was not "
                                         "found on the server.", INVALID_SELECTORS_CODE,
                                         "w:InvalidSelectors", "s:Sender"), message_id)
        if short == "Create":
            return self._create(message_id, options)
        assert shell_id is not None and body_el is not None
        if short == "Command":
            return self._command(message_id, shell_id, body_el, options)
        if short == "Send":
            return self._send(message_id, shell_id, body_el)
        if short == "Receive":
            return self._receive(message_id, shell_id, body_el, op_timeout)
        if short == "Signal":
            return self._signal(message_id, shell_id, body_el)
        if short == "Delete":
            with self._cond:
                self.shells.pop(shell_id, None)
                self.shells_deleted += 1
            return 200, _envelope(f"{TRANSFER_URI}/DeleteResponse", message_id, "")
        return self._fault(Fault(f"unsupported action {action}", 2150858817,
                                 "w:ActionNotSupported", "s:Sender"), message_id)

    def _create(self, message_id: str, options: dict[str, str]) -> tuple[int, str]:
        shell_id = str(uuid.uuid4()).upper()
        with self._cond:
            self.shells[shell_id] = _Shell(shell_id, options.get("WINRS_CODEPAGE", ""),
                                           options.get("WINRS_NOPROFILE", ""))
            self.shells_created += 1
        body = (f'<x:ResourceCreated><a:Address>http://127.0.0.1/wsman</a:Address>'
                f'<a:ReferenceParameters><w:ResourceURI>{SHELL_URI}/cmd</w:ResourceURI>'
                f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector>'
                f'</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>')
        return 200, _envelope(f"{TRANSFER_URI}/CreateResponse", message_id, body)

    def _command(self, message_id: str, shell_id: str, body: ET.Element,
                 options: dict[str, str]) -> tuple[int, str]:
        line = body.find("rsp:CommandLine", NS)
        assert line is not None, "Command without rsp:CommandLine"
        text = " ".join([line.findtext("rsp:Command", "", NS) or ""]
                        + [a.text or "" for a in line.iterfind("rsp:Arguments", NS)]).strip()
        command_id = str(uuid.uuid4()).upper()
        ex = Execution(shell_id, command_id, text,
                       console_mode_stdin=options.get("WINRS_CONSOLEMODE_STDIN", "TRUE") == "TRUE")
        with self._cond:
            self.shells[shell_id].commands[command_id] = _Command(ex)
            self.executions.append(ex)
        return 200, _envelope(f"{SHELL_URI}/CommandResponse", message_id,
                              f"<rsp:CommandResponse><rsp:CommandId>{command_id}"
                              f"</rsp:CommandId></rsp:CommandResponse>")

    def _send(self, message_id: str, shell_id: str, body: ET.Element) -> tuple[int, str]:
        stream = body.find("rsp:Send/rsp:Stream", NS)
        assert stream is not None, "Send without rsp:Stream"
        with self._cond:
            cmd = self.shells[shell_id].commands[stream.get("CommandId", "")]
            cmd.execution.stdin += base64.b64decode(stream.text or "")
            if stream.get("End", "").lower() == "true":
                cmd.execution.stdin_closed = True
            self._cond.notify_all()
        return 200, _envelope(f"{SHELL_URI}/SendResponse", message_id, "<rsp:SendResponse/>")

    def _receive(self, message_id: str, shell_id: str, body: ET.Element,
                 op_timeout: float) -> tuple[int, str]:
        desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
        assert desired is not None, "Receive without rsp:DesiredStream"
        command_id = desired.get("CommandId", "")
        deadline = time.monotonic() + (3600 if self.ignore_operation_timeout else op_timeout)
        with self._cond:
            cmd = self.shells[shell_id].commands[command_id]
            # A command reading stdin (console mode off) waits until stdin is closed.
            while not cmd.execution.console_mode_stdin and not cmd.execution.stdin_closed:
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    return self._timeout(message_id)
        if cmd.reply is None:
            try:
                cmd.reply = _as_reply(self.handler(cmd.execution), cmd.execution)
            except Exception as exc:  # a broken test handler shows up as the command's error
                cmd.reply = Reply(stderr=f"fake endpoint handler failed: {exc!r}",
                                  exit_code=255)
            cmd.started = time.monotonic()
        reply = cmd.reply
        ready = cmd.started + reply.delay
        with self._cond:
            while time.monotonic() < ready and not cmd.signalled:
                wait = min(ready, deadline) - time.monotonic()
                if wait <= 0:
                    return self._timeout(message_id)
                self._cond.wait(timeout=wait)
        return 200, self._output(message_id, cmd)

    def _output(self, message_id: str, cmd: _Command) -> str:
        assert cmd.reply is not None
        reply = cmd.reply
        out = _b(reply.stdout)
        n = max(1, reply.chunks)
        size = -(-len(out) // n) if out else 0
        part = out[cmd.sent * size:(cmd.sent + 1) * size] if size else b""
        cmd.sent += 1
        last = cmd.sent >= n
        cid = cmd.execution.command_id
        streams = []
        if part:
            streams.append(f'<rsp:Stream Name="stdout" CommandId="{cid}">'
                           f'{base64.b64encode(part).decode()}</rsp:Stream>')
        if last:
            err = _b(reply.stderr)
            if err:
                streams.append(f'<rsp:Stream Name="stderr" CommandId="{cid}">'
                               f'{base64.b64encode(err).decode()}</rsp:Stream>')
            streams.append(f'<rsp:Stream Name="stdout" CommandId="{cid}" End="true"/>')
            streams.append(f'<rsp:Stream Name="stderr" CommandId="{cid}" End="true"/>')
            state = (f'<rsp:CommandState CommandId="{cid}" State="{DONE}">'
                     f'<rsp:ExitCode>{reply.exit_code}</rsp:ExitCode></rsp:CommandState>')
        else:
            state = f'<rsp:CommandState CommandId="{cid}" State="{RUNNING}"/>'
        return _envelope(f"{SHELL_URI}/ReceiveResponse", message_id,
                         f"<rsp:ReceiveResponse>{''.join(streams)}{state}</rsp:ReceiveResponse>")

    def _signal(self, message_id: str, shell_id: str, body: ET.Element) -> tuple[int, str]:
        sig = body.find("rsp:Signal", NS)
        assert sig is not None, "Signal without rsp:Signal"
        with self._cond:
            command_id = sig.get("CommandId", "")
            cmd = self.shells[shell_id].commands.pop(command_id, None)
            if cmd is not None:
                cmd.signalled = True
            self.signals.append(command_id)
            self._cond.notify_all()
        return 200, _envelope(f"{SHELL_URI}/SignalResponse", message_id,
                              "<rsp:SignalResponse/>")

    def _timeout(self, message_id: str) -> tuple[int, str]:
        return self._fault(Fault("The WS-Management service cannot complete the operation "
                                 "within the time specified in OperationTimeout.  ",
                                 OPERATION_TIMEOUT_CODE, "w:TimedOut"), message_id)

    def _fault(self, fault: Fault, message_id: str) -> tuple[int, str]:
        detail = ""
        if fault.wsman_code is not None:
            detail = (f'<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/'
                      f'1/wsmanfault" Code="{fault.wsman_code}" Machine="fake-endpoint">'
                      f'<f:Message>{escape(fault.reason)}</f:Message></f:WSManFault></s:Detail>')
        body = (f'<s:Fault><s:Code><s:Value>{fault.code}</s:Value><s:Subcode><s:Value>'
                f'{fault.subcode}</s:Value></s:Subcode></s:Code><s:Reason><s:Text '
                f'xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason>{detail}</s:Fault>')
        return fault.status, _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault",
                                       message_id, body)


def _envelope(action: str, relates_to: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xml:lang="en-US" xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" '
        f'xmlns:x="{TRANSFER_URI}" xmlns:w="{NS["w"]}" xmlns:rsp="{NS["rsp"]}" '
        'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
        f"<s:Header><a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    )


class _RequestHandler(BaseHTTPRequestHandler):
    endpoint: WSManServer
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes; without TCP_NODELAY each answer waits for
    # the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    # NTLM authenticates the TCP connection; one handler instance serves one connection.
    _ntlm: spnego.ContextProxy | None = None
    _ntlm_done = False

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _reply(self, status: int, body: bytes,
               content_type: str = "application/soap+xml;charset=UTF-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _basic_ok(self) -> bool:
        ep = self.endpoint
        expected = base64.b64encode(f"{ep.username}:{ep.password}".encode()).decode()
        return "basic" in ep.auth and self.headers.get("Authorization", "") == f"Basic {expected}"

    def _challenge(self, token: str | None = None, scheme: str = "Negotiate") -> None:
        headers = []
        if token is not None:
            headers.append(("WWW-Authenticate", f"{scheme} {token}"))
        else:
            with self.endpoint._cond:
                self.endpoint.auth_failures += 1
            if "ntlm" in self.endpoint.auth:
                headers.append(("WWW-Authenticate", "Negotiate"))
            if "basic" in self.endpoint.auth:
                headers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        self.send_response(401)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _ntlm_step(self) -> bool | None:
        """One NTLM leg on this connection: True when authenticated, None after a 401."""
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        ctx = self._ntlm
        if ctx is None or self._ntlm_done:
            ctx = self._ntlm = spnego.server(protocol="ntlm")
            self._ntlm_done = False
        try:
            out = ctx.step(base64.b64decode(token))
        except (SpnegoError, ValueError):
            self._ntlm = None
            self._challenge()
            return None
        if not ctx.complete:
            self._challenge(base64.b64encode(out or b"").decode(), scheme)
            return None
        self._ntlm_done = True
        return True

    def _unseal(self, body: bytes) -> bytes:
        parts = [p for p in body.split(_BOUNDARY + b"\r\n") if p]
        payload = parts[1].replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        if payload.endswith(_BOUNDARY + b"--\r\n"):
            payload = payload[:-len(_BOUNDARY + b"--\r\n")]
        sig_len = struct.unpack("<i", payload[:4])[0]
        assert self._ntlm is not None, "sealed message before NTLM authentication"
        data: bytes = self._ntlm.unwrap(payload[4:]).data
        assert sig_len == 16 and len(data) == int(parts[0].split(b"Length=")[1].strip())
        return data

    def _seal(self, text: bytes) -> bytes:
        assert self._ntlm is not None
        wrapped: bytes = self._ntlm.wrap(text, encrypt=True).data
        return (_BOUNDARY + b"\r\n\tContent-Type: " + _SPNEGO_ENC + b"\r\n"
                b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
                + str(len(text)).encode() + b"\r\n" + _BOUNDARY + b"\r\n"
                b"\tContent-Type: application/octet-stream\r\n"
                + struct.pack("<i", 16) + wrapped + _BOUNDARY + b"--\r\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path.split("?")[0] != self.endpoint.path:
            self._reply(404, b"")
            return
        header = self.headers.get("Authorization", "")
        if "ntlm" in self.endpoint.auth and header.split(" ")[0] in ("Negotiate", "NTLM"):
            if self._ntlm_step() is None:
                return
        elif not (self._basic_ok() or self._ntlm_done):
            self._challenge()
            return
        sealed = "multipart/encrypted" in self.headers.get("Content-Type", "")
        if sealed:
            body = self._unseal(body)
        with self.endpoint._cond:
            if sealed:
                self.endpoint.encrypted_requests += 1
            elif body:
                self.endpoint.plain_requests += 1
        if not body:
            # pywinrm's empty POST that sets up the NTLM context before sealing starts.
            self._reply(200, b"")
            return
        status, text = self.endpoint.handle(body)
        if sealed:
            self._reply(status, self._seal(text.encode("utf-8")), content_type=(
                'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";'
                'boundary="Encrypted Boundary"'))
        else:
            self._reply(status, text.encode("utf-8"))


_BOUNDARY = b"--Encrypted Boundary"
_SPNEGO_ENC = b"application/HTTP-SPNEGO-session-encrypted"
