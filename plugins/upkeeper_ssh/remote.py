"""The remote side of a command: what sshd's login shell is asked to run.

The command line that sshd sees (and ``ps`` shows) carries only markers, the timeout and
the user's command. Secrets travel on the channel's stdin: the sudo password when sudo
prompts for it, then the ``env=`` values as quoted shell assignments up to an end
marker, then the caller's own stdin.

Plain commands cost no extra process: the login shell prints its PID (the session's
process group, since sshd starts every session with setsid), reads the env block with
builtins and execs ``/bin/sh -c COMMAND``; a command that is only words (a program and
its arguments, as ``shlex.join`` writes an argv list) it execs itself, which saves
starting ``/bin/sh`` once per command (about 5% of a fleet run, measured in bench/). On
a timeout the client kills that process group through a second channel. Under sudo the
user cannot signal root's processes, so the root-side wrapper runs the command under
``timeout`` instead.
"""

from __future__ import annotations

import math
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from upkeeper import env_block as _shared_env_block
from upkeeper import read_env_sh

#: First line of stderr of every plain command: ``@@upk PID``.
PID_PREFIX = "@@upk "

# The root-side wrapper for sudo: $1 env end marker ('' = no env block), $2 ready
# marker ('' = none), $3 seconds before the command's process group is killed (0 =
# never), $4 the command. `timeout` runs the command in its own process group and kills
# the whole group, so a timed-out command cannot outlive the client's deadline.
WRAPPER = (r"""
if [ -n "$2" ]; then printf '%s\n' "$2" >&2; fi
if [ -n "$1" ]; then
  """ + read_env_sh('"$1"') + r"""
fi
if [ "$3" != 0 ] && command -v timeout >/dev/null 2>&1; then
  exec timeout -k 2 "$3" /bin/sh -c "$4"
fi
exec /bin/sh -c "$4"
""").strip()


@dataclass
class RemoteCommand:
    """What to exec on the server and the markers to watch for."""

    line: str
    env_block: bytes
    ready_marker: str
    prompt: str
    #: True when stderr starts with the ``@@upk PID`` line (plain commands).
    reports_pid: bool = False


#: Words a shell runs itself, or reads as syntax: ``exec WORD`` would differ from
#: ``/bin/sh -c`` (or fail), so commands starting with one keep the /bin/sh layer.
_SHELL_WORDS = frozenset({
    "!", ".", ":", "[", "[[", "alias", "bg", "break", "case", "cd", "command", "continue",
    "coproc", "declare", "do", "done", "echo", "elif", "else", "esac", "eval", "exec",
    "exit", "export", "false", "fc", "fg", "fi", "for", "function", "getopts", "hash",
    "if", "jobs", "kill", "let", "local", "printf", "pwd", "read", "readonly", "return",
    "select", "set", "shift", "source", "test", "then", "time", "times", "trap", "true",
    "type", "typeset", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
    "{", "}",
})


def runs_as_words(command: str) -> bool:
    """True when ``command`` is nothing but words in ``shlex.join``'s quoting (no
    operators, expansions, globs, redirections or assignments) and its first word names a
    program, not a shell builtin: the login shell then runs it exactly as ``/bin/sh -c``
    would, and can ``exec`` it itself."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    # zsh expands an unquoted word starting with "=" (=cmd is cmd's path).
    return (bool(words) and shlex.join(words) == command and "=" not in words[0]
            and not words[0].startswith("-") and words[0] not in _SHELL_WORDS
            and not any(w.startswith("=") for w in words))


def new_token() -> str:
    return secrets.token_hex(8)


def env_block(env: Mapping[str, str] | None, end_marker: str) -> bytes:
    """The shared env block (names checked, values quoted) ending with ``end_marker``;
    empty for no env. :raises ValueError: a bad name or value."""
    return _shared_env_block(env, end_marker) if env else b""


def remote_timeout(timeout: float | None) -> int:
    """Whole seconds the remote side allows: a little past the client's own deadline so
    the client always decides first and sees ``timed_out``; 0 means no limit."""
    if timeout is None or timeout <= 0:
        return 0
    return math.ceil(timeout) + 1


def build(command: str, *, timeout: float | None, env: Mapping[str, str] | None,
          sudo_user: str | None, sudo_password: bool, prompt_token: str) -> RemoteCommand:
    """The exec line for ``command``.

    With ``sudo_user`` the wrapper runs under ``sudo -u``; with ``sudo_password`` sudo
    may prompt (a unique ``prompt`` marker on stderr) and the wrapper announces itself
    with ``ready_marker`` so the client knows when sudo is done with stdin.
    """
    token = new_token()
    end_marker = f"@@upkeeper-env-{token}" if env else ""
    block = env_block(env, end_marker) if env else b""
    if not sudo_user:
        read_env = read_env_sh(end_marker) + "; " if env else ""
        run = command if runs_as_words(command) else f"/bin/sh -c {shlex.quote(command)}"
        line = f"printf '{PID_PREFIX}%s\\n' \"$$\" >&2; {read_env}exec {run}"
        return RemoteCommand(line=line, env_block=block, ready_marker="", prompt="",
                             reports_pid=True)
    ready = f"@@upkeeper-ready-{token}" if sudo_password else ""
    prompt = f"[upkeeper-sudo-{prompt_token}]" if sudo_password else ""
    argv = ["/bin/sh", "-c", WRAPPER, "upkeeper", end_marker, ready,
            str(remote_timeout(timeout)), command]
    if sudo_password:
        argv = ["sudo", "-S", "-p", prompt, "-u", sudo_user, "--", *argv]
    else:
        argv = ["sudo", "-n", "-u", sudo_user, "--", *argv]
    return RemoteCommand(line="exec " + shlex.join(argv), env_block=block,
                         ready_marker=ready, prompt=prompt)


def kill_line(pid: int) -> str:
    """Kill a plain command's whole process group (sent on a fresh channel)."""
    return f"kill -KILL -- -{pid} 2>/dev/null || kill -KILL {pid} 2>/dev/null; true"
