"""Text from hosts made safe to show: no terminal escape sequences, no control characters.

Check output is hostile input: an ANSI or OSC sequence in a summary can rewrite a
terminal (hide lines, set the title, plant a hyperlink), and bidi overrides reorder what a
reader sees. Everything printed to a terminal or put in a notification goes through
:func:`clean_text`.
"""

from __future__ import annotations

import re
from typing import Any

# ESC-introduced sequences (CSI ... final byte, OSC/DCS/SOS/PM/APC ... terminator, and
# two-byte escapes), and their 8-bit C1 forms.
_ESCAPES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]                      # CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)  # OSC, DCS ...
    | \x1b[ -/]*[0-~]                                     # other ESC sequences
    """,
    re.VERBOSE | re.DOTALL,
)
# C0 controls except tab and newline, DEL, C1 controls, and bidi embedding/override/
# isolate marks (U+202A-U+202E, U+2066-U+2069).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: Any, *, single_line: bool = False) -> str:
    """``value`` as text without escape sequences or control characters.

    :param single_line: also fold every run of whitespace (newlines included) into one
        space, for subjects, table cells and one-line summaries.
    """
    text = value if isinstance(value, str) else str(value if value is not None else "")
    text = text.replace("\r\n", "\n")
    text = _CONTROLS.sub("", _ESCAPES.sub("", text))
    if single_line:
        return " ".join(text.split())
    return text


def clean_data(value: Any) -> Any:
    """:func:`clean_text` applied to every string inside dicts and lists."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_data(k): clean_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_data(v) for v in value]
    return value
