"""YAML loading that remembers where every key and item came from (for file:line errors)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


class SourceError(Exception):
    """Bad input in a file: the message starts with ``file:line:column:``."""

    def __init__(self, path: str, line: int | None, message: str,
                 column: int | None = None) -> None:
        self.path, self.line, self.column, self.reason = path, line, column, message
        where = path
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


@dataclass
class LocatedYAML:
    """Parsed YAML data plus the 1-based (line, column) of each key path."""

    path: str
    data: Any
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def line_of(self, key_path: Sequence[str | int]) -> int | None:
        """Line of ``key_path``, or of its nearest ancestor that has one."""
        pos = self.position(key_path)
        return pos[0] if pos else None

    def position(self, key_path: Sequence[str | int]) -> tuple[int, int] | None:
        kp = tuple(key_path)
        while True:
            if kp in self.positions:
                return self.positions[kp]
            if not kp:
                return None
            kp = kp[:-1]

    def error(self, key_path: Sequence[str | int], message: str) -> SourceError:
        pos = self.position(key_path)
        if pos is None:
            return SourceError(self.path, None, message)
        return SourceError(self.path, pos[0], message, pos[1])


def _walk(node: yaml.Node, path: KeyPath, out: dict[KeyPath, tuple[int, int]]) -> None:
    out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*path, key)
            out[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _walk(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), out)


def load_yaml(path: str | Path, text: str | None = None) -> LocatedYAML:
    """Parse one YAML document with positions; YAML errors become :class:`SourceError`."""
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceError(name, None, f"cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise SourceError(name, None, f"not UTF-8 text: {exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SourceError(name, line, f"invalid YAML: {problem}", col) from exc
    except yaml.YAMLError as exc:
        raise SourceError(name, None, f"invalid YAML: {exc}") from exc
    positions: dict[KeyPath, tuple[int, int]] = {}
    if node is not None:
        _walk(node, (), positions)
    return LocatedYAML(name, data, positions)
