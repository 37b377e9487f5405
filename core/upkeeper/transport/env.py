"""The one way environment values (often secrets) reach a command, for every transport.

A public submodule for transport and check authors. Names are checked before anything
is built (``[A-Za-z_][A-Za-z0-9_]*``, and none of the few that change how a shell or the
dynamic loader starts); values never appear on a command line: over a pipe they travel
as a block of quoted ``NAME='value'; export NAME`` lines ending with a random marker,
which the receiving ``/bin/sh`` reads with builtins (:data:`READ_ENV_SH`). Children of
the local transport start from :func:`child_environ`, not from upkeeper's own
environment, so they never see its secrets.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator

__all__ = [
    "BASE_NAMES",
    "PASS_ENV",
    "READ_ENV_SH",
    "EnvError",
    "EnvName",
    "check_env",
    "check_env_name",
    "child_environ",
    "env_block",
    "new_end_marker",
    "read_env_sh",
]

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Names that make a shell or the dynamic loader run something; no check needs them.
_REFUSED = re.compile(r"(LD_|DYLD_).*|BASH_ENV|ENV|IFS|PS4|SHELLOPTS|BASHOPTS|CDPATH|"
                      r"GLOBIGNORE|PYTHONSTARTUP|PERL5OPT|RUBYOPT|NODE_OPTIONS")
#: Variables of upkeeper's own environment that children inherit.
BASE_NAMES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
#: Extra names to hand down (space or comma separated), e.g. ``RESTIC_CACHE_DIR
#: http_proxy``: set it in the daemon's unit file, never a secret's name.
PASS_ENV = "UPKEEPER_PASS_ENV"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"



def read_env_sh(marker: str = '"$1"') -> str:
    """POSIX sh that reads an env block (:func:`env_block`) from stdin up to the line
    ``marker`` (a shell word: ``'"$1"'``, or a marker from :func:`new_end_marker`) and
    evaluates it. ``read`` consumes no more than one line from a pipe, so the command
    still gets the rest of stdin; every value in the block is quoted and every name
    checked, so ``eval`` only assigns."""
    return ('__upk_e=; while IFS= read -r __upk_l; do [ "$__upk_l" = ' + marker
            + ' ] && break; __upk_e="$__upk_e$__upk_l\n"; done; eval "$__upk_e"; '
            'unset __upk_e __upk_l')


#: :func:`read_env_sh` for a marker given as the script's first argument.
READ_ENV_SH = read_env_sh()


class EnvError(ValueError):
    """An environment variable name or value that cannot be passed safely."""


def check_env_name(name: object) -> str:
    """``name`` when it is a plain variable name a shell cannot misread.

    :raises EnvError: naming the offending value (``repr``, so newlines show).
    """
    if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
        raise EnvError(f"invalid environment variable name {name!r} "
                       f"(letters, digits and _ only, not starting with a digit)")
    if _REFUSED.fullmatch(name):
        raise EnvError(f"environment variable {name} changes how commands start and "
                       f"cannot be set by a check")
    return name


#: A pydantic type for params that name environment variables, e.g.
#: ``env: dict[EnvName, SecretStr]``: a bad name is a param error with the playbook line.
EnvName = Annotated[str, AfterValidator(check_env_name)]


def check_env(env: Mapping[str, object] | None) -> dict[str, str]:
    """Names checked and values as text (no NUL byte, which no environment can hold).

    :raises EnvError: for the first bad name or value.
    """
    out: dict[str, str] = {}
    for name, value in (env or {}).items():
        check_env_name(name)
        text = str(value)
        if "\0" in text:
            raise EnvError(f"environment variable {name} contains a NUL byte")
        out[name] = text
    return out


def new_end_marker() -> str:
    """A marker no value can guess: ends an env block."""
    return f"@@upkeeper-env-{secrets.token_hex(8)}"


def env_block(env: Mapping[str, object], end_marker: str) -> bytes:
    """``NAME='value'; export NAME`` lines and ``end_marker``, for :data:`READ_ENV_SH`.

    :raises EnvError: a bad name or value, or a value line equal to the marker.
    """
    checked = check_env(env)
    body = "".join(f"{k}={shlex.quote(v)}; export {k}\n" for k, v in checked.items())
    if end_marker in body.split("\n"):
        raise EnvError("an environment value collides with the end marker")
    return (body + end_marker + "\n").encode()


def child_environ(extra: Mapping[str, str] | None = None,
                  environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command upkeeper starts on this machine.

    :data:`BASE_NAMES` and the names listed in ``UPKEEPER_PASS_ENV`` from ``environ``
    (upkeeper's own, by default), ``TERM=dumb``, then ``extra`` (checked).
    """
    source = os.environ if environ is None else environ
    names = list(BASE_NAMES)
    for name in re.split(r"[\s,]+", source.get(PASS_ENV, "")):
        if name and ENV_NAME_RE.fullmatch(name) and not _REFUSED.fullmatch(name):
            names.append(name)
    out = {n: source[n] for n in names if n in source}
    out.setdefault("PATH", _DEFAULT_PATH)
    out["TERM"] = "dumb"
    out.update(check_env(extra))
    return out
