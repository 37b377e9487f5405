"""The hub's signing authority for site credentials, kept in ``STATE_DIR/sites/``.

One operator, the system account (server administration: pushing account JWTs) and one
account ``upkeeper`` that holds the hub and every site. One account is enough for
isolation: every site user carries an allow list (``subjects.worker_permissions``) and
nats-server checks each publish and subscribe against it; separate accounts would need
exports/imports for the hub to see every site's results without adding a boundary the
allow lists do not already draw. Sites are users: adding one signs a user JWT with the
account key and changes nothing on the server (no restart, no reload); revoking one adds
its public key to the account JWT's revocations and pushes that JWT to the server.

Files (directory 0700, every file 0600, seeds never printed): ``operator.nk``,
``system.nk``, ``account.nk`` (seeds), ``account.jwt`` (the last account JWT signed),
``hub.creds`` (the hub's user: the whole account), ``system.creds`` (pushes claims) and
``creds/SITE.creds`` (what a site's worker gets).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from upkeeper.sites import subjects
from upkeeper.sites.credentials_jwt import (
    Key,
    account_jwt,
    creds_text,
    decode_claims,
    new_seed,
    operator_jwt,
    user_jwt,
)

__all__ = ["ACCOUNT_NAME", "Authority", "CredentialsError", "SiteCreds", "write_private"]

ACCOUNT_NAME = "upkeeper"
SYSTEM_NAME = "SYS"
OPERATOR_NAME = "upkeeper"


class CredentialsError(RuntimeError):
    """The authority's files are missing, unreadable or not what they should be."""


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (0600 from the
    first byte: the temp file is created with that mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SiteCreds:
    """A site's newly issued user: its public key (kept in the sites table), when it was
    signed and the ``.creds`` file written for its worker."""

    site: str
    user_key: str
    issued: int
    path: Path


class Authority:
    """Load with :meth:`open` (creates the keys on first use)."""

    def __init__(self, root: Path, operator: Key, system: Key, account: Key) -> None:
        self.root = root
        self.operator = operator
        self.system = system
        self.account = account

    @classmethod
    def open(cls, state_dir: Path, *, create: bool = True) -> Authority:
        root = Path(state_dir) / "sites"
        if not (root / "account.nk").exists():
            if not create:
                raise CredentialsError(
                    f"no site authority in {root}: run 'upkeeper sites add NAME' or "
                    "'upkeeper hub nats-config' first")
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
        keys = [cls._key(root / f"{kind}.nk", prefix, create)
                for kind, prefix in (("operator", "operator"), ("system", "account"),
                                     ("account", "account"))]
        auth = cls(root, *keys)
        auth._ensure_users()
        return auth

    @staticmethod
    def _key(path: Path, kind: str, create: bool) -> Key:
        if not path.exists():
            if not create:
                raise CredentialsError(f"{path} is missing")
            write_private(path, new_seed(kind).decode() + "\n")
        if path.stat().st_mode & 0o077:
            raise CredentialsError(
                f"{path} is readable by others (mode {path.stat().st_mode & 0o777:o}):"
                f" chmod 600 {path}")
        try:
            return Key(path.read_bytes())
        except Exception as exc:  # nkeys raises its own errors and binascii/ValueError
            raise CredentialsError(f"{path} does not hold an nkey seed ({type(exc).__name__})"
                                   ) from None

    def _ensure_users(self) -> None:
        for name, account in (("hub", self.account), ("system", self.system)):
            path = self.root / f"{name}.creds"
            if not path.exists():
                user = Key(new_seed("user"))
                write_private(path, creds_text(user_jwt(account, user.public, name),
                                               user.seed_text()))

    @property
    def hub_creds(self) -> Path:
        """The hub's own user: every subject of the account (streams, all sites)."""
        return self.root / "hub.creds"

    @property
    def system_creds(self) -> Path:
        """A user of the system account: pushes account JWTs to the server."""
        return self.root / "system.creds"

    def site_creds_path(self, site: str) -> Path:
        return self.root / "creds" / f"{subjects.check_site(site)}.creds"

    def operator_jwt(self) -> str:
        return operator_jwt(self.operator, OPERATOR_NAME, self.system.public)

    def system_account_jwt(self) -> str:
        return account_jwt(self.operator, self.system.public, SYSTEM_NAME, jetstream=False,
                           iat=0)

    def account_jwt(self, revocations: dict[str, int]) -> str:
        """Sign the account with ``revocations`` and keep it as ``account.jwt``. Its
        ``iat`` always moves forward so the server's resolver takes it as newer."""
        path = self.root / "account.jwt"
        last = 0
        if path.exists():
            try:
                last = int(decode_claims(path.read_text().strip()).get("iat", 0))
            except (ValueError, TypeError):
                last = 0
        token = account_jwt(self.operator, self.account.public, ACCOUNT_NAME,
                            jetstream=True, revocations=revocations,
                            iat=max(int(time.time()), last + 1))
        write_private(path, token + "\n")
        return token

    def current_account_jwt(self, revocations: dict[str, int]) -> str:
        """The kept account JWT if it carries exactly ``revocations``, else a new one."""
        path = self.root / "account.jwt"
        if path.exists():
            token = path.read_text().strip()
            try:
                kept = decode_claims(token)["nats"].get("revocations", {})
            except (ValueError, KeyError, TypeError):
                kept = None
            if kept == revocations:
                return token
        return self.account_jwt(revocations)

    def issue_site(self, site: str, path: Path | None = None) -> SiteCreds:
        """Sign a new user for ``site`` carrying exactly ``worker_permissions(site)`` and
        write its ``.creds`` (0600) to ``path`` or the authority's ``creds/``."""
        subjects.check_site(site)
        user = Key(new_seed("user"))
        token = user_jwt(self.account, user.public, site, subjects.worker_permissions(site))
        target = path or self.site_creds_path(site)
        write_private(target, creds_text(token, user.seed_text()))
        return SiteCreds(site, user.public, int(decode_claims(token)["iat"]), target)
