"""YAML for policy files, loaded with bounds: no alias bomb, no recursive alias, no duplicate key.

PyYAML's safe loader shares aliased nodes, so composing a "billion laughs" file is cheap;
what hangs is everything that walks the expanded tree afterwards (validation, line
maps). So the composed graph is measured before anything walks it: its expanded size and
depth are bounded, an alias to an anchor still being composed (a cycle) is refused, and
so is a mapping that names a key twice (YAML says keys are unique; PyYAML silently keeps
the last). Every refusal carries the line it is about.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1024 * 1024
MAX_ALIASES = 200
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 50
MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlProblem(Exception):
    """A policy file refused before validation; `line` is 1-based (0: the file as a whole)."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and refuses one that points into its own anchor."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._open: list[str] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            anchor = getattr(event, "anchor", None)
            line = event.start_mark.line + 1
            if anchor in self._open:
                raise YamlProblem(line, f"alias *{anchor} refers to its own anchor (a cycle)")
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlProblem(line, f"more than {MAX_ALIASES} aliases")
        return super().compose_node(parent, index)

    def _composing(self, method: Any, anchor: str | None) -> Any:
        if anchor is not None:
            self._open.append(anchor)
        try:
            return method(anchor)
        finally:
            if anchor is not None:
                self._open.pop()

    def compose_sequence_node(self, anchor: str | None) -> Node:  # type: ignore[override]
        return self._composing(super().compose_sequence_node, anchor)  # type: ignore[no-any-return]

    def compose_mapping_node(self, anchor: str | None) -> Node:  # type: ignore[override]
        return self._composing(super().compose_mapping_node, anchor)  # type: ignore[no-any-return]


def _measure(root: Node) -> None:
    """Expanded size and depth of the node graph (shared nodes counted each time they are used)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise YamlProblem(node.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")
        children = _children(node)
        if done:
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_EXPANDED_NODES:
                raise YamlProblem(
                    node.start_mark.line + 1,
                    f"expands to more than {MAX_EXPANDED_NODES} values (aliases multiply what they repeat)",
                )
            sizes[id(node)] = total
            continue
        if id(node) in sizes:
            continue
        if isinstance(node, MappingNode):
            _no_duplicate_keys(node)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _no_duplicate_keys(node: MappingNode) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == MERGE_TAG:
            continue
        ident = (key.tag, key.value)
        line = key.start_mark.line + 1
        if ident in seen:
            raise YamlProblem(line, f"duplicate key {key.value!r} (first on line {seen[ident]})")
        seen[ident] = line


def line_map(root: Node | None) -> dict[tuple[Any, ...], int]:
    """Path (keys and indexes from the top) -> the 1-based line it starts on, for error messages."""
    out: dict[tuple[Any, ...], int] = {}
    if root is not None:
        _line_map(root, (), out)
    return out


def _line_map(node: Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, ScalarNode) else str(k)
            out[(*path, key)] = k.start_mark.line + 1
            _line_map(v, (*path, key), out)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)


def load(text: str) -> tuple[Node | None, Any]:
    """(the composed root node, the constructed data) or YamlProblem / yaml.YAMLError."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise YamlProblem(0, f"the file is {size} bytes, more than the {MAX_BYTES}-byte limit")
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _measure(root)
        return root, loader.construct_document(root)
    finally:
        loader.dispose()
