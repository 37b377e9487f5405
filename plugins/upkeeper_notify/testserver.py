"""Real loopback servers for notifier tests: aiosmtpd (STARTTLS, implicit TLS, AUTH) and
an http.server that records webhook requests and answers from a script of statuses."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMTP_USER = "alerts@msp.example"
SMTP_PASSWORD = "s3cret-smtp-pw"


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 (its own CA for the client)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    """What the SMTP server received."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.tls.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, pw = auth_data.login.decode(), auth_data.password.decode()
            if user == SMTP_USER and pw == SMTP_PASSWORD:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@dataclass
class SMTPServer:
    host: str
    port: int
    mailbox: Mailbox
    ca_file: str
    mode: str


@contextmanager
def smtp_server(cert: tuple[Path, Path], mode: str = "starttls") -> Iterator[SMTPServer]:
    """``mode``: starttls (TLS required before AUTH/MAIL) or ssl (implicit TLS)."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(cert[0]), str(cert[1]))
    box = Mailbox()
    port = free_port()
    common: dict[str, Any] = {"authenticator": box.authenticate, "auth_required": True,
                              "auth_require_tls": True}
    ctl: Controller
    if mode == "ssl":
        # aiosmtpd 1.4 does not count implicit TLS as TLS for AUTH; the socket is TLS anyway.
        common["auth_require_tls"] = False
        ctl = Controller(box, hostname="127.0.0.1", port=port, ssl_context=tls,
                             server_hostname="localhost", **common)
    else:
        ctl = Controller(box, hostname="127.0.0.1", port=port, tls_context=tls,
                         require_starttls=True, server_hostname="localhost", **common)
    ctl.start()
    try:
        yield SMTPServer("127.0.0.1", port, box, str(cert[0]), mode)
    finally:
        ctl.stop()


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookServer:
    url: str
    hits: list[Hit]
    script: list[int]  # statuses to answer, in order; 200 once it runs out


@contextmanager
def webhook_server(script: list[int] | None = None) -> Iterator[WebhookServer]:
    state = WebhookServer("", [], list(script or []))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with lock:
                state.hits.append(Hit(self.command, self.path, dict(self.headers.items()),
                                      body))
                status = state.script.pop(0) if state.script else 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": %s}' % (b"true" if status < 400 else b"false"))

        do_POST = do_PUT = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output clean

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
