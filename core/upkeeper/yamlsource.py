"""The one way upkeeper reads a YAML (or JSON) file: bounded, and remembering where every
key and item came from, so that every error names the file and line.

Every input is treated as hostile. A file must be a regular file of at most
:data:`MAX_FILE_BYTES` (checked on the open descriptor, so a FIFO or ``/dev/zero`` is
refused, not read); a document may nest :data:`MAX_DEPTH` levels and hold
:data:`MAX_NODES` nodes counting what its aliases repeat (a few hundred bytes of nested
anchors otherwise expand to gigabytes); an alias may not refer to its own anchor.
Duplicate mapping keys are an error, or with ``duplicates="warn"`` a warning (Ansible
inventories: Ansible warns and the later value wins).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

KeyPath = tuple[str | int, ...]
Duplicates = Literal["error", "warn"]

#: Largest file read (bytes).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 64
#: Most nodes in one document, each alias counted as the nodes it repeats.
MAX_NODES = 1_000_000


class SourceError(Exception):
    """Bad input in a file: the message starts with ``file:line:column:`` (as much of it
    as is known; with no file, just the reason)."""

    def __init__(self, path: str | None, line: int | None, message: str,
                 column: int | None = None) -> None:
        self.path, self.line, self.column, self.reason = path, line, column, message
        where = path or ""
        if path and line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}" if where else message)


@dataclass
class LocatedYAML:
    """Parsed YAML data plus the 1-based (line, column) of each key path."""

    path: str
    data: Any
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    #: Problems worth telling but not refusing (``file:line: ...``).
    warnings: list[str] = field(default_factory=list)

    def line_of(self, key_path: Sequence[str | int]) -> int | None:
        """Line of ``key_path``, or of its nearest ancestor that has one."""
        pos = self.position(key_path)
        return pos[0] if pos else None

    def position(self, key_path: Sequence[str | int]) -> tuple[int, int] | None:
        kp = tuple(k if isinstance(k, (str, int)) else str(k) for k in key_path)
        while True:
            if kp in self.positions:
                return self.positions[kp]
            as_key = (*kp[:-1], str(kp[-1])) if kp and isinstance(kp[-1], int) else None
            if as_key in self.positions:
                return self.positions[as_key]  # an integer mapping key, not an index
            if not kp:
                return None
            kp = kp[:-1]

    def error(self, key_path: Sequence[str | int], message: str) -> SourceError:
        pos = self.position(key_path)
        if pos is None:
            return SourceError(self.path, None, message)
        return SourceError(self.path, pos[0], message, pos[1])


class _LimitError(yaml.MarkedYAMLError):
    """A document over one of the limits (reported like a YAML syntax error)."""


try:  # libyaml's parser when present (several times faster), our composer either way
    from yaml._yaml import CParser

    class _Base(Composer, CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader  # type: ignore[misc,assignment]


class LocatedLoader(_Base):
    """PyYAML's safe loader whose composer enforces the limits and finds duplicate keys.

    Subclass it to add tags (``add_constructor``), as the inventory loader does.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, Node, Node]] = []
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event: Any = self.peek_event()
            anchored = self.anchors.get(event.anchor)
            if anchored is not None:
                size = self._sizes.get(id(anchored))
                if size is None:
                    raise _LimitError(None, None, f"alias *{event.anchor} refers to its own "
                                      f"anchor (a recursive structure)", event.start_mark)
                self._count(size, event.start_mark)
            return super().compose_node(parent, index)
        start_mark = self._mark()
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _LimitError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                              start_mark)
        start = self._nodes
        if self.check_event(ScalarEvent, SequenceStartEvent, MappingStartEvent):
            self._count(1, start_mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._nodes - start
        return node

    def _mark(self) -> Any:
        event: Any = self.peek_event()
        return event.start_mark if event is not None else None

    def _count(self, n: int, mark: Any) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise _LimitError(None, None, f"more than {MAX_NODES} nodes (counting what "
                              f"aliases repeat): refused as a likely alias bomb", mark)

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                self.duplicates.append((key_node.value, seen[ident], key_node))
            else:
                seen[ident] = key_node
        return node


def read_text(path: str | Path, limit: int = MAX_FILE_BYTES) -> str:
    """The text of a regular file of at most ``limit`` bytes (UTF-8, a byte-order mark
    dropped, as Windows editors write one).

    :raises SourceError: for anything else, naming the file.
    """
    name = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; we refuse it below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise SourceError(name, None, f"cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise SourceError(name, None, "is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(name, None, "not a regular file (a device, FIFO or socket "
                                          "is never read)")
        if st.st_size > limit:
            raise SourceError(name, None, f"file is {st.st_size} bytes, more than the "
                                          f"{limit} allowed")
        try:
            raw = f.read(limit + 1)
        except OSError as exc:
            raise SourceError(name, None, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise SourceError(name, None, f"file is more than the {limit} bytes allowed")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(name, None, f"not UTF-8 text ({exc.reason} at byte "
                                      f"{exc.start})") from None


def _walk(root: Node, out: dict[KeyPath, tuple[int, int]]) -> None:
    # Iterative, and each node's children walked once: an aliased subtree is located at
    # its anchor, and its repeats at the alias (their nearest located ancestor).
    seen: set[int] = set()
    todo: list[tuple[Node, KeyPath]] = [(root, ())]
    while todo:
        node, path = todo.pop()
        out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, ScalarNode) else str(key_node)
                child = (*path, str(key))
                # Assigned in document order: of duplicate keys the later one counts.
                out[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                todo.append((value_node, child))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                todo.append((item, (*path, i)))


def _yaml_error(name: str, exc: yaml.YAMLError) -> SourceError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        prefix = "" if isinstance(exc, _LimitError) else "invalid YAML: "
        if exc.context and exc.context_mark is not None and mark is not None \
                and exc.context_mark.line != mark.line:
            problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return SourceError(name, mark.line + 1 if mark else None, prefix + problem,
                           mark.column + 1 if mark else None)
    return SourceError(name, None, f"invalid YAML: {exc}")


def _compose(name: str, text: str, loader: type[LocatedLoader]) -> tuple[Node | None,
                                                                          LocatedLoader]:
    instance = loader(text)
    try:
        return instance.get_single_node(), instance
    except yaml.YAMLError as exc:
        raise _yaml_error(name, exc) from None
    except RecursionError:
        raise SourceError(name, None, f"nested more than {MAX_DEPTH} levels deep") from None


def within_depth(data: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether nested containers in ``data`` go at most ``limit`` levels deep (checked
    without recursion, so any depth is safe to ask about)."""
    todo = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (dict, list, tuple, set)):
            if depth > limit:
                return False
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            todo.extend((v, depth + 1) for v in items)
    return True


def _load_json(name: str, text: str, duplicates: Duplicates,
               warnings: list[str]) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                if duplicates == "error":
                    raise SourceError(name, None, f"duplicate key {key!r}")
                warnings.append(f"{name}: duplicate key {key!r}: the later value is used")
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        raise SourceError(name, None, f"nested more than {MAX_DEPTH} levels deep") from None
    if not within_depth(data):
        raise SourceError(name, None, f"nested more than {MAX_DEPTH} levels deep")
    return data


def load_yaml(path: str | Path, text: str | None = None, *,
              loader: type[LocatedLoader] = LocatedLoader,
              duplicates: Duplicates = "error", json_first: bool = False) -> LocatedYAML:
    """Parse one YAML document with positions, within the limits of this module.

    ``json_first``: text that parses as JSON is read as JSON (so ``1e3`` is a number, as
    in Ansible's loader); positions then come from reading it as YAML where that works.

    :raises SourceError: naming the file, line and column of the problem.
    """
    name = str(path)
    if text is None:
        text = read_text(path)
    elif len(text) > MAX_FILE_BYTES:
        raise SourceError(name, None, f"more than the {MAX_FILE_BYTES} bytes allowed")
    warnings: list[str] = []
    if json_first and text.lstrip()[:1] in ("{", "["):
        try:
            data = _load_json(name, text, duplicates, warnings)
        except ValueError:
            pass
        else:
            positions: dict[KeyPath, tuple[int, int]] = {}
            try:
                node, _ = _compose(name, text, loader)
            except SourceError:
                node = None
            if node is not None:
                _walk(node, positions)
            return LocatedYAML(name, data, positions, warnings)
    node, instance = _compose(name, text, loader)
    try:
        for key, first, again in instance.duplicates:
            where = f"{name}:{again.start_mark.line + 1}"
            if duplicates == "error":
                raise SourceError(name, again.start_mark.line + 1,
                                  f"duplicate key {key!r} (first at line "
                                  f"{first.start_mark.line + 1})", again.start_mark.column + 1)
            warnings.append(f"{where}: duplicate key {key!r} (first at line "
                            f"{first.start_mark.line + 1}): the later value is used")
        positions = {}
        if node is not None:
            _walk(node, positions)  # before construction, which flattens merge keys
        data = instance.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _yaml_error(name, exc) from None
    finally:
        instance.dispose()
    return LocatedYAML(name, data, positions, warnings)
