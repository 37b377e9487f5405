"""NATS decentralized-auth tokens: nkeys made and loaded, operator/account/user JWTs
signed (the ``ed25519-nkey`` JWT format nats-server verifies), and ``.creds`` files.

Small on purpose: nkeys.py signs; the claims are the few fields nats-server reads. The
only PyPI JWT encoder for NATS pulls in four more dependencies and calls itself untested.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from typing import Any

import nkeys

__all__ = ["KINDS", "Key", "account_jwt", "creds_text", "decode_claims", "new_seed",
           "operator_jwt", "user_jwt"]

KINDS = {"operator": nkeys.PREFIX_BYTE_OPERATOR, "account": nkeys.PREFIX_BYTE_ACCOUNT,
         "user": nkeys.PREFIX_BYTE_USER}
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
#: No limit (-1) on everything an account may hold, JetStream included: the hub's
#: account holds every site's streams; per-site limits are in the stream configs.
_UNLIMITED_JS = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
                 "max_ack_pending": -1, "mem_max_stream_bytes": -1,
                 "disk_max_stream_bytes": -1, "max_bytes_required": False}
_UNLIMITED_NATS = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                   "wildcards": True, "conn": -1, "leaf": -1}


def new_seed(kind: str) -> bytes:
    """A fresh random seed (``SO...``, ``SA...``, ``SU...``) for an nkey of ``kind``."""
    return bytes(nkeys.encode_seed(os.urandom(32), KINDS[kind]))


class Key:
    """One nkey loaded from its seed; the seed never leaves except through
    :meth:`seed_text` (for files written 0600)."""

    def __init__(self, seed: bytes) -> None:
        self._kp = nkeys.from_seed(bytearray(seed.strip()))
        self.public = bytes(self._kp.public_key).decode()

    def sign(self, data: bytes) -> bytes:
        return bytes(self._kp.sign(data))

    def seed_text(self) -> str:
        return bytes(self._kp.seed).decode()

    def __repr__(self) -> str:
        return f"Key({self.public})"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode(issuer: Key, subject: str, name: str, nats: dict[str, Any],
            iat: int | None = None) -> str:
    claims: dict[str, Any] = {"jti": "", "iat": int(iat if iat is not None else time.time()),
                              "iss": issuer.public, "name": name, "sub": subject,
                              "nats": {**nats, "version": 2}}
    # The id is the hash of the claims without it, as the Go jwt library makes it.
    digest = hashlib.new("sha512_256", json.dumps(claims).encode()).digest()
    claims["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    signing_input = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of ``token`` (not verified: for showing and tests)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT (expected three dot-separated parts)")
    claims = json.loads(_unb64(parts[1]))
    if not isinstance(claims, dict):
        raise ValueError("JWT claims are not an object")
    return claims


def operator_jwt(operator: Key, name: str, system_account: str) -> str:
    return _encode(operator, operator.public, name,
                   {"type": "operator", "system_account": system_account})


def account_jwt(operator: Key, account: str, name: str, *, jetstream: bool,
                revocations: dict[str, int] | None = None, iat: int | None = None) -> str:
    """An account signed by the operator. ``revocations`` maps a user's public key to a
    unix time: that user's JWTs issued at or before it are refused and its connections
    dropped when the server gets this JWT."""
    limits: dict[str, Any] = dict(_UNLIMITED_NATS)
    if jetstream:
        limits.update(_UNLIMITED_JS)
    nats: dict[str, Any] = {"type": "account", "limits": limits,
                            "default_permissions": {"pub": {}, "sub": {}}}
    if revocations:
        nats["revocations"] = dict(sorted(revocations.items()))
    return _encode(operator, account, name, nats, iat)


def user_jwt(account: Key, user: str, name: str,
             permissions: dict[str, dict[str, list[str]]] | None = None) -> str:
    """A user of ``account``. With ``permissions`` (the ``publish``/``subscribe`` allow
    lists of :func:`upkeeper.sites.subjects.worker_permissions`) the user may use those
    subjects and nothing else, and may not answer requests (no ``resp``); without, the
    user has the whole account (the hub's own user)."""
    nats: dict[str, Any] = {"type": "user", "subs": -1, "data": -1, "payload": -1}
    if permissions is not None:
        nats["pub"] = {"allow": list(permissions["publish"]["allow"])}
        nats["sub"] = {"allow": list(permissions["subscribe"]["allow"])}
    return _encode(account, user, name, nats)


def creds_text(jwt: str, user_seed: str) -> str:
    """A standard ``.creds`` file (what ``nats.connect(user_credentials=...)`` and the
    nats CLI read)."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user_seed}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n")
