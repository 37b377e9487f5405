"""Shared helpers for the patching tests: fixture files and marker-separated outputs."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "patching"


def data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def sections(**parts: str | tuple[str, int]) -> str:
    """Status-script output: ``name=text`` or ``name=(text, rc)`` (``_`` for ``-``)."""
    out = []
    for name, value in parts.items():
        text, rc = (value, None) if isinstance(value, str) else value
        out.append(f"@@upk:{name.replace('_', '-')}")
        out.append(text.rstrip("\n"))
        if rc is not None:
            out.append(f"@@upk-rc {rc}")
    return "\n".join(out) + "\n"
