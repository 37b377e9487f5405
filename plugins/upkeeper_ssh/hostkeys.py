"""Host key verification: known_hosts files, fingerprints, and recording accepted keys."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
import platformdirs

from upkeeper import Status, TransportError

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"

_cache_lock = threading.Lock()
_cache: dict[tuple[str, int, int], paramiko.HostKeys] = {}


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


def _load(path: str) -> paramiko.HostKeys | None:
    """One known_hosts file, parsed once per (path, mtime, size) for the whole process."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    ident = (path, st.st_mtime_ns, st.st_size)
    with _cache_lock:
        found = _cache.get(ident)
        if found is None:
            found = paramiko.HostKeys()
            try:
                found.load(path)
            except (OSError, UnicodeDecodeError):
                return None
            _cache[ident] = found
        return found


@dataclass
class KnownKeys:
    """The keys the configured files hold for one host, by key type."""

    name: str
    keys: dict[str, paramiko.PKey]

    @property
    def types(self) -> list[str]:
        return list(self.keys)


def lookup(host: str, port: int, files: Sequence[str]) -> KnownKeys:
    """Every key recorded for ``host:port`` in ``files`` (hashed entries included)."""
    name = host_key_name(host, port)
    keys: dict[str, paramiko.PKey] = {}
    for path in files:
        hk = _load(path)
        if hk is None:
            continue
        entry = hk.lookup(name)
        if entry is None:
            continue
        for ktype in entry:
            keys.setdefault(ktype, entry[ktype])
    return KnownKeys(name, keys)


def _same_family(a: str, b: str) -> bool:
    def family(t: str) -> str:
        return "rsa" if t in ("ssh-rsa", "rsa-sha2-256", "rsa-sha2-512") else t
    return family(a) == family(b)


def verify(display: str, host: str, port: int, key: paramiko.PKey,
           files: Sequence[str]) -> None:
    """Raise :class:`TransportError` unless ``key`` is what known_hosts says for the host.

    Unknown keys give UNKNOWN with the command that accepts them; a changed key gives
    CRIT, because it is what an attacker in the middle would look like.
    """
    known = lookup(host, port, files)
    ktype = key.get_name()
    for known_type, known_key in known.keys.items():
        if _same_family(known_type, ktype):
            if known_key.asbytes() == key.asbytes():
                return
            raise TransportError(
                f"HOST KEY FOR {display} HAS CHANGED: it now presents {describe(key)}, "
                f"known_hosts holds {describe(known_key)} for {known.name}. This may be "
                f"an attack (someone in the middle) or a reinstalled host; refusing to "
                f"connect. If the change is expected, remove the old entry and run "
                f"`{scan_command(host, port)}`.",
                host=display, status=Status.CRIT)
    if known.keys:
        others = ", ".join(sorted(known.types))
        raise TransportError(
            f"HOST KEY FOR {display} HAS CHANGED: it presents {describe(key)} but "
            f"known_hosts holds only {others} keys for {known.name}; refusing to connect. "
            f"If the change is expected, run `{scan_command(host, port)}`.",
            host=display, status=Status.CRIT)
    raise TransportError(
        f"host key for {display} is not known ({describe(key)}); run "
        f"`{scan_command(host, port)}` to trust it",
        host=display, status=Status.UNKNOWN)


def scan_command(host: str, port: int) -> str:
    port_opt = "" if port == 22 else f" --port {port}"
    return f"upkeeper hostkeys scan {host}{port_opt} --accept"


def preferred_key_types(host: str, port: int, files: Sequence[str],
                        offered: Sequence[str]) -> list[str]:
    """``offered`` reordered so types already known for the host come first.

    Without this the server may pick a key type we have no record of and a known host
    would look unknown (ssh does the same).
    """
    known = lookup(host, port, files).types
    first = [t for t in offered if any(_same_family(t, k) for k in known)]
    return first + [t for t in offered if t not in first]


def record(path: str | Path, host: str, port: int, key: paramiko.PKey) -> bool:
    """Append ``key`` for the host to ``path`` unless it is already there. True if written."""
    target = Path(path).expanduser()
    name = host_key_name(host, port)
    existing = lookup(host, port, [str(target)])
    for ktype, known_key in existing.keys.items():
        if _same_family(ktype, key.get_name()) and known_key.asbytes() == key.asbytes():
            return False
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    with open(target, "a", encoding="ascii") as fh:
        fh.write(line)
    return True


#: One handshake per family: a server offers one host key per negotiation.
SCAN_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("ssh-ed25519",),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"),
    ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
)


def scan(host: str, port: int = 22, timeout: float = 10.0) -> list[paramiko.PKey]:
    """The host keys ``host`` offers (one key exchange per key family, no login)."""
    found: list[paramiko.PKey] = []
    for family in SCAN_FAMILIES:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ssh = paramiko.Transport(sock)
        try:
            opts = ssh.get_security_options()
            supported = tuple(t for t in family if t in opts.key_types)
            if not supported:
                continue
            opts.key_types = supported
            ssh.banner_timeout = ssh.handshake_timeout = timeout
            ssh.start_client(timeout=timeout)
            found.append(ssh.get_remote_server_key())
        except paramiko.SSHException as exc:
            if "incompatible" in str(exc).lower() or "negotiat" in str(exc).lower():
                continue
            raise
        finally:
            ssh.close()
    return found


def status_of(host: str, port: int, key: paramiko.PKey, files: Sequence[str]) -> str:
    """``known``, ``new`` or ``changed`` for one scanned key."""
    known = lookup(host, port, files)
    for ktype, known_key in known.keys.items():
        if _same_family(ktype, key.get_name()):
            return "known" if known_key.asbytes() == key.asbytes() else "changed"
    return "new"
