"""Test material for docs.collect: certificates with chosen lifetimes, a TLS listener on
loopback, a listening process with a planted secret in its environment and argv."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DATA = Path(__file__).resolve().parents[2] / "data" / "docs"
#: Planted secrets: none of them may appear in any fact document.
ENV_SECRET = "Env-Secret-7c1d9e"
ARGV_SECRET = "Argv-Secret-4b8f2a"
FILE_SECRET = "File-Secret-93e0aa"


def make_cert(cn: str, days: int, sans: tuple[str, ...] = ()) -> tuple[x509.Certificate, bytes]:
    """A self-signed certificate expiring in ``days`` days, and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=days)))
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert, key_pem


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def not_after(cert: x509.Certificate) -> str:
    return cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


class TLSListener:
    """A TLS server on 127.0.0.1 serving ``cert`` until closed."""

    def __init__(self, directory: Path, cert: x509.Certificate, key_pem: bytes) -> None:
        (directory / "tls.pem").write_bytes(pem(cert))
        (directory / "tls.key").write_bytes(key_pem)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(directory / "tls.pem", directory / "tls.key")
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


_LISTENER = """
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
time.sleep(600)
"""


def secret_listener() -> tuple[subprocess.Popen[str], int]:
    """A process listening on loopback with a secret in its environment and argv."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _LISTENER, f"--db-password={ARGV_SECRET}"],
        stdout=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "DB_PASSWORD": ENV_SECRET})
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


@dataclass
class Planted:
    soon: Path
    later: Path
    config: Path
    soon_cert: x509.Certificate
    later_cert: x509.Certificate


def planted_files(directory: Path) -> Planted:
    """Certificate files expiring in 20 and 60 days (the 60-day one bundled with its
    private key and a password line), and a config file holding a password."""
    soon, _ = make_cert("soon.example.test", 20, ("soon.example.test",))
    later, later_key = make_cert("later.example.test", 60)
    out = Planted(directory / "soon.crt", directory / "later-bundle.pem",
                  directory / "app.conf", soon, later)
    out.soon.write_bytes(pem(soon))
    out.later.write_bytes(later_key + f"# password={FILE_SECRET}\n".encode() + pem(later))
    out.config.write_text(f"[db]\nuser = app\npassword = {FILE_SECRET}\n")
    return out


def assert_no_secrets(doc: Any) -> None:
    text = json.dumps(doc)
    for secret in (ENV_SECRET, ARGV_SECRET, FILE_SECRET, "PRIVATE KEY", "--db-password"):
        assert secret not in text, f"{secret!r} leaked into the facts"


def section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    sec: dict[str, Any] = doc["sections"][name]
    return sec
