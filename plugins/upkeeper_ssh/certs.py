"""OpenSSH host certificates (PROTOCOL.certkeys) checked against ``@cert-authority`` keys.

paramiko negotiates certificate host keys and proves the server holds the certified
key, but never looks inside the certificate; this module does what ``ssh`` does with
it: the CA's signature, the host type, the principals, the validity window and the
critical options.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko

from upkeeper_ssh.known_hosts import Entry, pattern_match

CERT_SUFFIX = "-cert-v01@openssh.com"
HOST_CERT = 2
#: Fields of the certified public key, between the nonce and the serial.
_KEY_FIELDS = {
    "ssh-ed25519-cert-v01@openssh.com": 1,
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": 2,
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": 2,
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": 2,
}
_RSA_CERT = "ssh-rsa-cert-v01@openssh.com"
#: SHA-1 RSA signatures; OpenSSH refuses them from CAs since 8.2.
_WEAK_SIGNATURES = ("ssh-rsa",)


class CertificateError(Exception):
    """The host certificate cannot be trusted; the message says why.

    ``severe`` when it looks like an attack (a bad signature, another host's
    certificate) rather than upkeep (expired, not valid yet).
    """

    def __init__(self, message: str, *, severe: bool = False) -> None:
        super().__init__(message)
        self.severe = severe


@dataclass(frozen=True)
class Certificate:
    cert_type: str
    serial: int
    kind: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: bytes
    signature_key: bytes
    signature: bytes
    #: The bytes the CA signed (everything before the signature).
    signed: bytes


def parse(blob: bytes) -> Certificate:
    """Parse a certificate blob; :class:`CertificateError` if it is malformed."""
    try:
        msg = paramiko.Message(blob)
        cert_type = msg.get_text()
        msg.get_string()  # nonce
        if cert_type == _RSA_CERT:
            msg.get_mpint()
            msg.get_mpint()
        elif cert_type in _KEY_FIELDS:
            for _ in range(_KEY_FIELDS[cert_type]):
                msg.get_string()
        else:
            raise CertificateError(f"unsupported certificate type {cert_type!r}")
        serial = msg.get_int64()
        kind = msg.get_int()
        key_id = msg.get_text()
        names = paramiko.Message(msg.get_string())
        valid_after = msg.get_int64()
        valid_before = msg.get_int64()
        critical = msg.get_string()
        msg.get_string()  # extensions: none are defined for host certificates
        msg.get_string()  # reserved
        signature_key = msg.get_string()
        signed = blob[:msg.packet.tell()]
        signature = msg.get_string()
        principals: list[str] = []
        while names.get_remainder():
            principals.append(names.get_text())
    except CertificateError:
        raise
    except Exception as exc:  # paramiko's Message reads past the end in several ways
        raise CertificateError(f"malformed certificate ({type(exc).__name__})") from None
    if not signature:
        raise CertificateError("malformed certificate (no signature)")
    return Certificate(cert_type, serial, kind, key_id, tuple(principals), valid_after,
                       valid_before, critical, signature_key, signature, signed)


def certificate_of(key: paramiko.PKey) -> Certificate | None:
    """The certificate a server presented as its host key, if it presented one."""
    blob = key.public_blob
    if blob is None or not blob.key_type.endswith(CERT_SUFFIX):
        return None
    return parse(blob.key_blob)


def signing_ca(cert: Certificate, authorities: Sequence[Entry]) -> Entry | None:
    """The ``@cert-authority`` entry whose key signed ``cert``, if one did."""
    for entry in authorities:
        if entry.key.asbytes() == cert.signature_key:
            return entry
    return None


def check(cert: Certificate, hostname: str, ca: Entry, now: float | None = None) -> None:
    """Raise :class:`CertificateError` unless ``ca`` validly certified ``hostname``."""
    sig = paramiko.Message(cert.signature)
    algorithm = sig.get_text()
    if algorithm in _WEAK_SIGNATURES:
        raise CertificateError(f"certificate is signed with {algorithm} (SHA-1), refused")
    if not ca.key.verify_ssh_sig(cert.signed, paramiko.Message(cert.signature)):
        raise CertificateError(f"certificate signature does not verify with the CA key "
                               f"of {ca.where}", severe=True)
    if cert.kind != HOST_CERT:
        raise CertificateError("certificate is not a host certificate", severe=True)
    moment = int(time.time() if now is None else now)
    if moment < cert.valid_after:
        raise CertificateError(f"certificate is not valid yet (from "
                               f"{_when(cert.valid_after)})")
    if moment >= cert.valid_before:
        raise CertificateError(f"certificate expired {_when(cert.valid_before)}")
    if cert.critical_options:
        raise CertificateError("certificate has critical options, which host "
                               "certificates do not support")
    name = hostname.lower()
    if cert.principals and not any(pattern_match(p.lower(), name) for p in cert.principals):
        raise CertificateError(f"certificate is not for {hostname} (principals: "
                               f"{', '.join(cert.principals)})", severe=True)


def _when(stamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(min(stamp, 253402300799)))
