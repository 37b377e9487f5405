"""Values that become command-line arguments of external tools: checks and param types.

A value from a playbook, an inventory or another command's output that lands in an
argv must never be read as an option (``path: "-delete/*.gz"`` made ``find`` delete
files). Put ``--`` before operands wherever the tool supports it, pass option values as
``--option=value``, and validate with these where neither is possible (``find``)::

    from upkeeper.argv import ArgPath, Operand

    class MyParams(Params):
        device: ArgPath          # absolute, or ./relative
        label: Operand           # never starts with "-"
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["ArgPath", "Operand", "check_operand", "check_path"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(f"must not contain control characters (found {bad.group()!r}): "
                         f"{value!r}")
    return value


def check_operand(value: str) -> str:
    """``value`` when it can only be read as an operand: not empty, not starting with
    ``-``, no control characters (newline, NUL). Raises ``ValueError`` saying why."""
    _printable(value)
    if not value:
        raise ValueError("must not be empty")
    if value.startswith("-"):
        raise ValueError(f"must not start with '-' (a tool would read it as an option): "
                         f"{value!r}")
    return value


def check_path(value: str) -> str:
    """``value`` when it is an absolute path or starts with ``./``, with no control
    characters. Raises ``ValueError`` saying why."""
    _printable(value)
    if not (value.startswith("/") or value.startswith("./")):
        raise ValueError(f"must be an absolute path (or start with ./): {value!r}")
    return value


#: A params field type for a value placed in an argv as an operand.
Operand = Annotated[str, AfterValidator(check_operand)]
#: A params field type for a path placed in an argv: absolute or ``./relative``.
ArgPath = Annotated[str, AfterValidator(check_path)]
