"""User regexes from playbooks, matched within a time bound whatever the pattern.

A backtracking pattern such as ``^(a+)+$`` takes exponential time in Python's ``re``
and holds the GIL throughout, freezing the whole process (under ``serve`` the
heartbeat too). Patterns are matched with RE2 (``google-re2``, linear time); the few it
rejects (backreferences, lookaround) run in Python's ``re`` in a child process that is
killed at the deadline. Text is cut to :data:`MAX_INPUT` characters first.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

#: Longest pattern accepted (longer ones are refused when the playbook is validated).
MAX_PATTERN = 2000
#: Characters of output a pattern is matched against (the start of the output).
MAX_INPUT = 1024 * 1024

_CHILD = (
    "import json,re,sys\n"
    "a=json.load(sys.stdin)\n"
    "m=re.search(a['p'],a['t'],re.MULTILINE)\n"
    "print(json.dumps(None if m is None else [m.group(0),list(m.groups())]))\n"
)


class RegexError(Exception):
    """A pattern did not finish matching in the time it was given, or its matcher failed."""


@dataclass
class Found:
    """The part of a match the checks use: the whole match and its groups."""

    text: str
    groups: tuple[str | None, ...]


def validate_pattern(pattern: str) -> str:
    """The pattern, if Python's ``re`` can compile it and it is not absurdly long.

    :raises ValueError: with the reason.
    """
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"regex is {len(pattern)} characters long (at most {MAX_PATTERN})")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
    return pattern


def _re2_compile(pattern: str) -> Any:
    try:
        import re2  # when a pattern is first matched: most runs match none
    except ImportError:  # pragma: no cover - without RE2 every pattern uses the child process
        return None
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(f"(?m){pattern}", options)
    except re2.error:
        return None


def search(pattern: str, text: str, time_limit: float) -> Found | None:
    """``re.search(pattern, text, re.MULTILINE)`` that returns within ``time_limit``.

    :raises RegexError: only for patterns RE2 cannot run, when Python's engine in
        the child process ran out of time.
    """
    text = text[:MAX_INPUT]
    compiled = _re2_compile(pattern)
    if compiled is not None:
        m = compiled.search(text)
        return None if m is None else Found(m.group(0), tuple(m.groups()))
    return _search_in_child(pattern, text, time_limit)


def _search_in_child(pattern: str, text: str, time_limit: float) -> Found | None:
    import subprocess  # only when RE2 is missing: most runs match no regex at all

    data = json.dumps({"p": pattern, "t": text}).encode()
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", _CHILD], input=data,
                              capture_output=True, timeout=max(0.5, time_limit), env={})
    except subprocess.TimeoutExpired:
        raise RegexError(f"regex {pattern!r} did not finish within {time_limit:.1f}s on "
                           f"{len(text)} characters of output") from None
    if proc.returncode != 0:
        raise RegexError(f"regex {pattern!r} failed in its matcher: "
                           f"{proc.stderr.decode(errors='replace').strip()[-200:]}")
    found = json.loads(proc.stdout)
    if found is None:
        return None
    return Found(found[0], tuple(found[1]))
