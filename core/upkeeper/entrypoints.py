"""The entry points of one group, read from the installed distributions' metadata files.

What :func:`importlib.metadata.entry_points` does for a group, without importing
``importlib.metadata``: that module brings the ``email`` package, ``zipfile`` and more,
about 5% of the start-up of every ``upkeeper`` command (bench/startup.py). The format is
the packaging specification's: ``entry_points.txt`` in a ``*.dist-info`` (or
``*.egg-info``) directory of a ``sys.path`` entry, an INI file whose sections are groups
and whose lines are ``name = module[:attr] [extras]``. As in ``importlib.metadata``, the
first distribution of a name on ``sys.path`` wins. When ``sys.path`` has a zip file or an
egg on it, the whole lookup is left to ``importlib.metadata``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_META_DIRS = (".dist-info", ".egg-info")
_NORMALIZE = re.compile(r"[-_.]+")


@dataclass(frozen=True)
class EntryPoint:
    """One entry point and the distribution that declares it."""

    name: str
    value: str
    group: str
    #: The distribution's metadata directory ("" when it came from importlib.metadata).
    path: str = ""
    dist_name: str = ""
    version: str = ""

    def load(self) -> Any:
        """Import the module and return the object the entry point names."""
        module, _, attr = self.value.partition(":")
        obj: Any = importlib.import_module(module.strip())
        for part in filter(None, attr.split("[", 1)[0].strip().split(".")):
            obj = getattr(obj, part)
        return obj


def entry_points(group: str, path: Iterable[str] | None = None) -> list[EntryPoint]:
    """The entry points of ``group`` in the distributions on ``path`` (``sys.path``)."""
    entries = list(sys.path if path is None else path)
    if any(entry.lower().endswith(".egg") or os.path.isfile(entry or ".")
           for entry in entries):
        return _from_importlib(group)
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in entries:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if not name.lower().endswith(_META_DIRS):
                continue
            meta = os.path.join(entry or ".", name)
            dist = _dist_key(name)
            if dist in seen:
                continue
            seen.add(dist)
            try:
                with open(os.path.join(meta, "entry_points.txt"), encoding="utf-8",
                          errors="replace") as fh:  # a broken file must not stop the rest
                    text = fh.read()
            except OSError:
                continue
            found.extend(EntryPoint(n, v, group, meta) for n, v in _group(text, group))
    return found


def distribution(ep: EntryPoint) -> tuple[str, str]:
    """``(Name, Version)`` of the distribution declaring ``ep``, from the headers of its
    METADATA (PKG-INFO for an egg-info), read up to the first blank line only."""
    if not ep.path:
        return ep.dist_name, ep.version
    headers: dict[str, str] = {}
    for fname in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(ep.path, fname), encoding="utf-8",
                      errors="replace") as fh:
                for line in fh:
                    if not line.strip():
                        break
                    key, sep, value = line.partition(":")
                    if sep and key in ("Name", "Version"):
                        headers.setdefault(key, value.strip())
            break
        except OSError:
            continue
    return headers.get("Name", ""), headers.get("Version", "")


def _dist_key(dirname: str) -> str:
    """The normalised distribution name of a metadata directory's name
    (``Foo_Bar-1.0.dist-info`` -> ``foo-bar``)."""
    stem = dirname.rsplit(".", 1)[0]
    return _NORMALIZE.sub("-", stem.split("-", 1)[0]).lower()


def _group(text: str, group: str) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of ``[group]`` in an entry_points.txt."""
    pairs: list[tuple[str, str]] = []
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current == group:
            name, sep, value = line.partition("=")
            if sep and name.strip():
                pairs.append((name.strip(), value.strip()))
    return pairs


def _from_importlib(group: str) -> list[EntryPoint]:
    import importlib.metadata as md

    out = []
    for ep in md.entry_points(group=group):
        dist = ep.dist
        name, version = (dist.metadata["Name"], dist.version) if dist is not None else ("", "")
        out.append(EntryPoint(ep.name, ep.value, group, "", name or "", version or ""))
    return out
