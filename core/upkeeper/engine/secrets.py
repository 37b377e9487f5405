"""Keeping secrets out of output: which values are secrets, and masking them wherever they
appear (results, history, notifications, logs, inventory listings).

A value is a secret when its key says so (``password``, ``token``, ``*_pass`` ... at any
depth of a var, in lists too), when it is a ``SecretStr`` param, or when it comes from an
environment variable a secret names (``restic_password: "{{ env.GLOBEX_PW }}"``). Those
are found without rendering anything, so the whole run knows them before a check starts.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from upkeeper.engine.templating import (
    RESERVED,
    TemplateError,
    env_references,
    is_templated,
    referenced_names,
)

MASK = "********"
#: Key names whose values are secrets (Ansible's and ours), matched anywhere in a var.
SECRET_KEY_RE = re.compile(
    r"passw(or)?d|passphrase|(^|_)pass$|(^|_)pwd?$|secret|token|api_?key|credential|"
    r"authori[sz]ation|private_key_pass",
    re.IGNORECASE)
#: ... except names of files and directories (``password_file``), which are paths.
_PATH_KEY_RE = re.compile(r"_(file|path|dir)$", re.IGNORECASE)
_MIN_SECRET_LEN = 4


def is_secret_key(key: object) -> bool:
    text = str(key)
    return bool(SECRET_KEY_RE.search(text)) and not _PATH_KEY_RE.search(text)


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield value


def secrets_in_vars(variables: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                    also: Iterable[Any] = ()) -> set[str]:
    """Values under secret-named keys at any depth of ``variables`` (and of the values in
    ``also``, such as check params), without rendering anything.

    A templated one contributes the environment variables it reads and the values of the
    vars it names (followed the same way).
    """
    env = os.environ if environ is None else environ
    out: set[str] = set()
    followed: set[str] = set()

    def take(value: Any) -> None:
        for leaf in _leaves(value):
            if not is_templated(leaf):
                out.add(str(leaf))
                continue
            try:
                names, env_names = referenced_names(leaf), env_references(leaf)
            except TemplateError:
                out.add(str(leaf))
                continue
            out.update(env[n] for n in env_names if env.get(n))
            for name in names - followed - RESERVED:
                followed.add(name)
                if name in variables:
                    take(variables[name])

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if is_secret_key(key):
                    take(item)
                else:
                    walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(variables)
    for root in also:
        walk(root)
    return {s for s in out if s}


def secrets_in_values(variables: Mapping[str, Any]) -> set[str]:
    """Values under secret-named keys at any depth of data that is already rendered."""
    out: set[str] = set()
    for key, value in variables.items():
        if is_secret_key(key):
            out.update(str(leaf) for leaf in _leaves(value))
        elif isinstance(value, Mapping):
            out |= secrets_in_values(value)
        elif isinstance(value, (list, tuple)):
            out |= secrets_in_values({str(i): v for i, v in enumerate(value)})
    return {s for s in out if s}


def env_values_in(value: Any, environ: Mapping[str, str] | None = None) -> set[str]:
    """Every environment value any template inside ``value`` reads (for sections such as
    ``notify:`` where anything from the environment may be a token)."""
    env = os.environ if environ is None else environ
    out: set[str] = set()
    for leaf in _leaves(value):
        if isinstance(leaf, str) and is_templated(leaf):
            try:
                out.update(env[n] for n in env_references(leaf) if env.get(n))
            except TemplateError:
                continue
    return out


def secrets_for_run(playbook: Any, hosts: Iterable[Any]) -> set[str]:
    """Every secret a run can know before it starts: secret vars of all hosts and of the
    playbook, secret-named params, and what the ``notify:`` section reads from the
    environment."""
    pb_vars = dict(getattr(playbook, "vars", None) or {})
    notify = getattr(playbook, "notify", None)
    roots = [[getattr(spec, "params", None) for spec in getattr(playbook, "checks", [])],
             notify]
    out = secrets_in_vars(pb_vars, also=roots) | env_values_in(notify)
    for host in {id(h): h for h in hosts}.values():  # the same host once
        # Params name host vars ("{{ repo_key }}"): follow them on every host.
        out |= secrets_in_vars({**pb_vars, **dict(dict.items(host.vars))}, also=roots)
    return out


def mask_secret_vars(value: Any) -> Any:
    """A copy of ``value`` with everything under a secret-named key replaced by ``MASK``."""
    if isinstance(value, Mapping):
        return {k: (_masked(v) if is_secret_key(k) else mask_secret_vars(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secret_vars(v) for v in value]
    return value


#: ``NAME=value`` / ``NAME: value`` inside text (an environment line, a command line's
#: ``--password=...``, a config line): masked when NAME is a secret's name.
_ASSIGNMENT_RE = re.compile(
    r"(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)(?P<sep>\s*[=:]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&|]+)")


def mask_secret_assignments(text: str) -> str:
    """``text`` with the value of every ``NAME=value`` whose NAME is a secret's masked."""
    def repl(m: re.Match[str]) -> str:
        if not is_secret_key(m.group("key")):
            return m.group(0)
        return f"{m.group('key')}{m.group('sep')}{MASK}"

    return _ASSIGNMENT_RE.sub(repl, text) if ("=" in text or ":" in text) else text


def mask_secret_data(value: Any) -> Any:
    """:func:`mask_secret_vars`, and :func:`mask_secret_assignments` in every string:
    for data collected from hosts (facts), where a secret may sit in any value. One pass,
    key names judged once each (fact documents repeat a few keys many thousand times)."""
    kind = type(value)
    if kind is str:
        return mask_secret_assignments(value) if ("=" in value or ":" in value) else value
    if kind in _SCALARS:  # checked before the ABCs below, which are slow
        return value
    if isinstance(value, str):
        return mask_secret_assignments(value)
    if isinstance(value, Mapping):
        return {k: (_masked(v) if _secret_key_cached(k) else mask_secret_data(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secret_data(v) for v in value]
    return value


_SCALARS = frozenset({int, float, bool, type(None)})


@functools.lru_cache(maxsize=4096)
def _secret_key_cached(key: object) -> bool:
    return is_secret_key(key)


def _masked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return MASK if value not in (None, "") else value


def secrets_in_model(model: BaseModel) -> set[str]:
    """Values of ``SecretStr``/``SecretBytes`` fields (nested models included)."""
    out: set[str] = set()
    for name in type(model).model_fields:
        out |= _secrets_in(getattr(model, name, None))
    return out


#: Values that hold no secret and nothing to look into (most params): checked first,
#: since this runs for every check on every host.
_PLAIN = (str, int, float, type(None))


def _secrets_in(value: Any) -> set[str]:
    if isinstance(value, _PLAIN):
        return set()
    if isinstance(value, SecretStr):
        return {value.get_secret_value()}
    if isinstance(value, SecretBytes):
        return {value.get_secret_value().decode("utf-8", "replace")}
    if isinstance(value, BaseModel):
        return secrets_in_model(value)
    if isinstance(value, Mapping):
        return set().union(*(_secrets_in(v) for v in value.values()))
    if isinstance(value, (list, tuple, set)):
        return set().union(*(_secrets_in(v) for v in value))
    return set()


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex matching any of ``words``, longest first, shaped as a prefix tree: at each
    position of the text only the branch of its next character is tried, so thousands of
    secrets cost about what one does (a flat ``a|b|c...`` tries every one)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        out = ""
        while len(node) == 1 and "" not in node:  # a chain: no group needed
            (ch, node), = node.items()
            out += re.escape(ch)
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return out
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return out + (f"(?:{body})?" if "" in node else body)

    return build(trie)


class Redactor:
    """Replaces known secret values with ``********`` in text and nested data.

    Safe to share between threads. Every secret added is also remembered process-wide
    for :class:`MaskingFilter`, so logs never show what a result would not.
    """

    def __init__(self, secrets: Iterable[str] = (), *, remember: bool = True) -> None:
        self._lock = threading.Lock()
        self._remember = remember
        self._state: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)
        self.add(secrets)

    def __bool__(self) -> bool:
        return bool(self._state[0])

    def add(self, secrets: Iterable[Any]) -> None:
        new = {str(s) for s in secrets if s is not None and len(str(s)) >= _MIN_SECRET_LEN}
        if not new - self._state[0]:
            return
        with self._lock:
            known = self._state[0] | new
            self._state = (known, re.compile(_trie_pattern(known)))
        if self._remember:
            LOG_REDACTOR.add(new)

    def text(self, value: str) -> str:
        pattern = self._state[1]
        return pattern.sub(MASK, value) if pattern is not None else value

    def obj(self, value: Any) -> Any:
        if self._state[1] is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.obj(k): self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value


#: Every secret any redactor in this process has seen: what the log filter masks.
LOG_REDACTOR = Redactor(remember=False)


class MaskingFilter(logging.Filter):
    """Masks known secrets in a record's message, arguments and traceback.

    Attach it to handlers (a logger's own filters do not see records of its children).
    The traceback is formatted here, masked, and kept as ``exc_text``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not LOG_REDACTOR:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave the record to logging's report
            return True
        record.msg, record.args = LOG_REDACTOR.text(message), None
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = LOG_REDACTOR.text(text), None
        elif record.exc_text:
            record.exc_text = LOG_REDACTOR.text(record.exc_text)
        if record.stack_info:
            record.stack_info = LOG_REDACTOR.text(record.stack_info)
        return True


def install_log_masking(handler: logging.Handler) -> logging.Handler:
    """Add a :class:`MaskingFilter` to ``handler`` (once) and return it."""
    if not any(isinstance(f, MaskingFilter) for f in handler.filters):
        handler.addFilter(MaskingFilter())
    return handler
