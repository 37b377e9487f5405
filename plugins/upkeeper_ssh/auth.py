"""Private keys loaded once per process, and the authentication sequence for one hop.

RSA keys are validated on load (over 100 ms for 3072 bits), so every key is read once
and shared by all connections. The cache is a small LRU checked against the file's
stamp: a replaced key file is read again, and a long-running ``serve`` holds at most
``KEY_CACHE_SIZE`` keys.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import paramiko
from paramiko.agent import Agent

from upkeeper_ssh.cache import StampedLRU, stamp_of
from upkeeper_ssh.config import DEFAULT_KEY_FILES

KEY_CACHE_SIZE = 32
_keys: StampedLRU[paramiko.PKey] = StampedLRU(KEY_CACHE_SIZE)
#: Why a key did not load, per (path, passphrase digest): never the passphrase itself.
_failures: StampedLRU[str] = StampedLRU(2 * KEY_CACHE_SIZE)


class KeyLoadError(Exception):
    """A key file is missing, unreadable, of an unknown type or its passphrase is wrong."""


def load_key(path: str, passphrase: str | None = None) -> paramiko.PKey:
    """Load an ed25519, ECDSA or RSA private key (OpenSSH or PEM format), cached."""
    real = os.path.realpath(os.path.expanduser(path))
    try:
        stamp = stamp_of(os.stat(real))
    except OSError as exc:
        raise KeyLoadError(f"cannot read private key {path}: {exc.strerror}") from None
    key = _keys.get(real, stamp)
    if key is not None:
        return key
    # Failures are remembered per passphrase digest, so a wrong passphrase costs one
    # bcrypt round per run, not one per host.
    pw_digest = hashlib.sha256((passphrase or "").encode()).hexdigest()
    failed = _failures.get((real, pw_digest), stamp)
    if failed is not None:
        raise KeyLoadError(failed)
    try:
        # Positional: the keyword is ``passphrase`` before paramiko 5, ``password`` after.
        secret: Any = passphrase.encode() if passphrase is not None else None
        key = paramiko.PKey.from_path(real, secret)
    except (paramiko.SSHException, OSError, ValueError, TypeError) as exc:
        msg = _load_error(path, exc, passphrase)
        _failures.put((real, pw_digest), stamp, msg)
        raise KeyLoadError(msg) from None
    _keys.put(real, stamp, key)
    return key


def _load_error(path: str, exc: Exception, passphrase: str | None) -> str:
    """A message for a key that did not load; paramiko's wording varies by version."""
    if passphrase is None and (isinstance(exc, (paramiko.PasswordRequiredException, TypeError))
                               or "password" in str(exc).lower()):
        return (f"private key {path} is encrypted: set ansible_ssh_private_key_passphrase "
                f"(e.g. to '{{{{ env.SSH_KEY_PASSPHRASE }}}}')")
    if passphrase is not None and not isinstance(exc, OSError):
        return f"cannot load private key {path}: wrong passphrase or unsupported key format"
    return f"cannot load private key {path}: {_scrub(str(exc), passphrase) or type(exc).__name__}"


def _scrub(text: str, secret: str | None) -> str:
    if secret and secret in text:
        return text.replace(secret, "***")
    return text


def default_keys(passphrase: str | None = None) -> list[tuple[str, paramiko.PKey]]:
    """The user's default identities that exist and load (ssh's look-for-keys)."""
    found: list[tuple[str, paramiko.PKey]] = []
    for path in DEFAULT_KEY_FILES:
        full = os.path.expanduser(path)
        if os.path.exists(full):
            try:
                found.append((path, load_key(full, passphrase)))
            except KeyLoadError:
                continue
    return found


def authenticate(transport: paramiko.Transport, user: str, *,
                 keys: Sequence[tuple[str, paramiko.PKey]] = (),
                 use_agent: bool = False, password: str | None = None) -> None:
    """Try keys, then the agent's keys, then the password. Raises AuthenticationFailed."""
    tried: list[str] = []
    for label, key in keys:
        tried.append(f"key {label}")
        if _try_key(transport, user, key):
            return
    if use_agent:
        agent = Agent()
        try:
            agent_keys = agent.get_keys()
            for key in agent_keys:
                if _try_key(transport, user, key):
                    return
            tried.append(f"ssh-agent ({len(agent_keys)} keys)")
        finally:
            agent.close()
    if password is not None:
        tried.append("password")
        if _try(lambda: transport.auth_password(user, password), transport):
            return
    methods = ", ".join(tried) or "no credentials (set ansible_ssh_private_key_file, "\
        "ansible_password or ssh_use_agent)"
    raise AuthenticationFailed(f"authentication as {user} failed (tried {methods})")


class AuthenticationFailed(Exception):
    """The server rejected every credential; never retried."""


def _try_key(transport: paramiko.Transport, user: str, key: paramiko.PKey) -> bool:
    return _try(lambda: transport.auth_publickey(user, key), transport)


def _try(attempt: Callable[[], object], transport: paramiko.Transport) -> bool:
    try:
        attempt()
    except paramiko.AuthenticationException:
        return False
    return bool(transport.is_authenticated())
