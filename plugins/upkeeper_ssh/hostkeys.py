"""Host key verification against known_hosts, fingerprints, scanning and recording keys."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
import platformdirs

from upkeeper import Status, TransportError
from upkeeper_ssh import certs
from upkeeper_ssh import known_hosts as kh

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"


def upkeeper_known_hosts() -> Path:
    """upkeeper's own known_hosts file (written by ``upkeeper hostkeys scan --accept``)."""
    return Path(platformdirs.user_data_dir("upkeeper")) / "known_hosts"


def default_files(extra: Iterable[str] = ()) -> list[str]:
    """The files checked for every host: the user's, upkeeper's, then ``ssh_known_hosts_file``."""
    files = [os.path.expanduser(USER_KNOWN_HOSTS), str(upkeeper_known_hosts())]
    files.extend(os.path.expanduser(f) for f in extra)
    return list(dict.fromkeys(files))


def host_key_name(host: str, port: int) -> str:
    """The name known_hosts uses: ``host`` on port 22, else ``[host]:port``."""
    return host if port == 22 else f"[{host}]:{port}"


def endpoint_text(host: str, port: int) -> str:
    """``host``, ``host:port`` or ``[v6]:port``: what ``upkeeper hostkeys`` accepts."""
    if port == 22:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH style ``SHA256:...`` fingerprint (unpadded base64)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def key_label(key: paramiko.PKey) -> str:
    """``ED25519``, ``ECDSA``, ``RSA``: the short type name ssh prints."""
    name = key.get_name()
    for prefix, label in (("ssh-ed25519", "ED25519"), ("ecdsa", "ECDSA"), ("ssh-rsa", "RSA"),
                          ("rsa-sha2", "RSA")):
        if name.startswith(prefix):
            return label
    return name.upper()


def describe(key: paramiko.PKey) -> str:
    return f"{key_label(key)} {fingerprint(key)}"


@dataclass
class KnownKeys:
    """The plain keys the configured files hold for one host, first entry per key type."""

    name: str
    entries: list[kh.Entry]

    @property
    def types(self) -> list[str]:
        return list(dict.fromkeys(e.key.get_name() for e in self.entries))


def lookup(host: str, port: int, files: Sequence[str]) -> KnownKeys:
    """Every plain key recorded for ``host:port`` in ``files`` (hashed entries included)."""
    name = host_key_name(host, port)
    return KnownKeys(name, kh.for_host(name, files))


def _family(t: str) -> str:
    return "rsa" if t in ("ssh-rsa", "rsa-sha2-256", "rsa-sha2-512") else t


def _same_family(a: str, b: str) -> bool:
    return _family(a) == _family(b)


def _is_revoked(blob: bytes, revoked: Sequence[kh.Entry]) -> kh.Entry | None:
    return next((e for e in revoked if e.key.asbytes() == blob), None)


def verify(display: str, host: str, port: int, key: paramiko.PKey,
           files: Sequence[str]) -> None:
    """Raise :class:`TransportError` unless known_hosts vouches for ``key``.

    Unknown keys give UNKNOWN with the command that accepts them; a changed or revoked
    key gives CRIT, because it is what an attacker in the middle would look like.
    """
    name = host_key_name(host, port)
    revoked = kh.for_host(name, files, kh.REVOKED)
    hit = _is_revoked(key.asbytes(), revoked)
    if hit is not None:
        raise TransportError(
            f"HOST KEY FOR {display} IS REVOKED: it presents {describe(key)}, which "
            f"{hit.where} marks @revoked; refusing to connect.", host=display,
            status=Status.CRIT)
    try:
        cert = certs.certificate_of(key)
    except certs.CertificateError as exc:
        raise TransportError(f"host certificate of {display} is unusable: {exc}",
                             host=display) from None
    if cert is not None and _verify_certificate(display, host, name, cert, files, revoked):
        return
    known = lookup(host, port, files)
    ktype = key.get_name()
    same_type = [e for e in known.entries if _same_family(e.key.get_name(), ktype)]
    if any(e.key.asbytes() == key.asbytes() for e in same_type):
        return
    if same_type or known.entries:
        recorded = same_type[0] if same_type else known.entries[0]
        what = (f"{recorded.where} holds {describe(recorded.key)}" if same_type else
                f"known_hosts holds only {', '.join(sorted(known.types))} keys "
                f"({recorded.where})")
        raise TransportError(
            f"HOST KEY FOR {display} HAS CHANGED: it now presents {describe(key)}, "
            f"{what} for {name}. This may be an attack (someone in the middle) or a "
            f"reinstalled host; refusing to connect. If the change is expected, run "
            f"`{forget_command(host, port, recorded.path)}` and then "
            f"`{scan_command(host, port)}`.", host=display, status=Status.CRIT)
    raise TransportError(
        f"host key for {display} is not known ({describe(key)}); run "
        f"`{scan_command(host, port)}` to trust it", host=display, status=Status.UNKNOWN)


def _verify_certificate(display: str, host: str, name: str, cert: certs.Certificate,
                        files: Sequence[str], revoked: Sequence[kh.Entry]) -> bool:
    """True if a matching ``@cert-authority`` vouches for ``cert``; False if none signed it
    (the certified key is then checked like a plain key, as ssh does)."""
    ca = certs.signing_ca(cert, kh.for_host(name, files, kh.CERT_AUTHORITY))
    if ca is None:
        return False
    hit = _is_revoked(cert.signature_key, revoked)
    if hit is not None:
        raise TransportError(
            f"HOST CERTIFICATE FOR {display} IS SIGNED BY A REVOKED CA: {hit.where} marks "
            f"the key of {ca.where} @revoked; refusing to connect.", host=display,
            status=Status.CRIT)
    try:
        certs.check(cert, host, ca)
    except certs.CertificateError as exc:
        raise TransportError(
            f"HOST CERTIFICATE FOR {display} IS NOT VALID ({exc}); the CA is "
            f"{ca.where}; refusing to connect.", host=display,
            status=Status.CRIT if exc.severe else Status.UNKNOWN) from None
    return True


def scan_command(host: str, port: int) -> str:
    return f"upkeeper hostkeys scan {endpoint_text(host, port)} --accept"


def forget_command(host: str, port: int, path: str) -> str:
    where = "" if Path(path) == upkeeper_known_hosts() else f" --known-hosts {path}"
    return f"upkeeper hostkeys forget {endpoint_text(host, port)}{where}"


def preferred_key_types(host: str, port: int, files: Sequence[str],
                        offered: Sequence[str]) -> list[str]:
    """``offered`` reordered so types already known for the host come first.

    Without this the server may pick a key type we have no record of and a known host
    would look unknown (ssh does the same). When a ``@cert-authority`` line matches the
    host, certificate types come first, as in ssh.
    """
    name = host_key_name(host, port)
    known = lookup(host, port, files).types
    plain = [t for t in offered if not t.endswith(certs.CERT_SUFFIX)]
    first = [t for t in plain if any(_same_family(t, k) for k in known)]
    ordered = first + [t for t in plain if t not in first]
    if not kh.for_host(name, files, kh.CERT_AUTHORITY):
        return ordered
    # The types this paramiko can parse: certificates of older ones are not offered.
    supported = set(getattr(paramiko.Transport, "_key_info", ()))
    with_certs = [f"{t}{certs.CERT_SUFFIX}" for t in ordered
                  if f"{t}{certs.CERT_SUFFIX}" in supported]
    return with_certs + ordered


def record(path: str | Path, host: str, port: int, key: paramiko.PKey) -> bool:
    """Append ``key`` for the host to ``path`` unless it is already there. True if written."""
    target = Path(path).expanduser()
    name = host_key_name(host, port)
    existing = lookup(host, port, [str(target)])
    if any(e.key.asbytes() == key.asbytes() for e in existing.entries):
        return False
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    with open(target, "a+", encoding="ascii") as fh:
        if fh.tell():
            fh.seek(fh.tell() - 1)
            if fh.read(1) != "\n":
                line = "\n" + line
        fh.write(line)
    return True


#: One handshake per family: a server offers one host key per negotiation.
SCAN_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("ssh-ed25519",),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"),
    ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
)


class ScanError(Exception):
    """A host could not be scanned; the message says why in one line."""


def scan(host: str, port: int = 22, timeout: float = 10.0) -> list[paramiko.PKey]:
    """The host keys ``host`` offers (one key exchange per key family, no login)."""
    found: list[paramiko.PKey] = []
    for family in SCAN_FAMILIES:
        key = _scan_family(host, port, timeout, family)
        if key is not None:
            found.append(key)
    return found


def _scan_family(host: str, port: int, timeout: float,
                 family: tuple[str, ...]) -> paramiko.PKey | None:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise ScanError(f"cannot resolve {host}: {exc.strerror}") from None
    except OSError as exc:
        raise ScanError(f"cannot connect: {exc.strerror or exc or type(exc).__name__}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ssh = paramiko.Transport(sock)
    try:
        opts = ssh.get_security_options()
        supported = tuple(t for t in family if t in opts.key_types)
        if not supported:
            return None
        opts.key_types = supported
        ssh.banner_timeout = ssh.handshake_timeout = timeout
        try:
            ssh.start_client(timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            text = str(exc).lower()
            if "incompatible" in text or "negotiat" in text:
                return None  # the server has no key of this family
            if not ssh.remote_version:
                if isinstance(exc.__context__, TimeoutError):
                    raise ScanError(f"no SSH banner within {timeout:g}s") from None
                raise ScanError("the connection closed before an SSH banner") from None
            raise ScanError(f"SSH handshake failed: {exc or type(exc).__name__}") from None
        if not (ssh.is_active() and ssh.initial_kex_done):
            if not ssh.remote_version:
                raise ScanError(f"no SSH banner within {timeout:g}s")
            raise ScanError(f"SSH key exchange did not finish within {timeout:g}s")
        return ssh.get_remote_server_key()
    finally:
        ssh.close()


def status_of(host: str, port: int, key: paramiko.PKey,
              files: Sequence[str]) -> tuple[str, kh.Entry | None]:
    """(``known``, ``new``, ``changed`` or ``revoked``; the entry that decided it)."""
    name = host_key_name(host, port)
    hit = _is_revoked(key.asbytes(), kh.for_host(name, files, kh.REVOKED))
    if hit is not None:
        return "revoked", hit
    same = [e for e in lookup(host, port, files).entries
            if _same_family(e.key.get_name(), key.get_name())]
    for entry in same:
        if entry.key.asbytes() == key.asbytes():
            return "known", entry
    return ("changed", same[0]) if same else ("new", None)
