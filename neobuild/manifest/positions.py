"""Where a value was written: a parsed file's node tree, and where a model came from.

Positions come from the YAML nodes (``node.start_mark``), so a problem points at the
line and column the value was written at, which may be a ``defaults`` block.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ruamel.yaml.nodes import MappingNode, Node

#: A path into a manifest's data: mapping keys and list indexes.
PathKey = tuple[str | int, ...]


@dataclass
class Doc:
    """One parsed manifest file."""

    path: Path  # absolute
    rel_dir: str  # its directory, relative to the root ("" for the root)
    index: int  # 0 = top level
    data: Any = None
    node: Node | None = None
    digest: str = ""
    _index: dict[int, dict[str, tuple[Node, Node]]] = field(default_factory=dict, repr=False)

    def node_at(self, path: PathKey, *, at: str = "value") -> tuple[Node | None, bool]:
        """The node at ``path`` (or the deepest one on the way) and whether it was found.

        ``at="key"`` returns the key node of the last mapping step.
        """
        from ruamel.yaml.nodes import MappingNode, SequenceNode

        node = self.node
        found = True
        key_node: Node | None = None
        for i, step in enumerate(path):
            last = i == len(path) - 1
            nxt: Node | None = None
            if isinstance(node, MappingNode):
                pair = self.pairs(node).get(str(step))
                if pair is not None:
                    key_node, nxt = pair
                if nxt is not None and last and at == "key":
                    return key_node, True
            elif (
                isinstance(node, SequenceNode)
                and isinstance(step, int)
                and 0 <= step < len(node.value)
            ):
                nxt = node.value[step]
            if nxt is None:
                found = False
                break
            node = nxt
        return node, found

    def pairs(self, node: MappingNode) -> dict[str, tuple[Node, Node]]:
        """A mapping node's scalar keys -> (key node, value node); the first one wins."""
        from ruamel.yaml.nodes import ScalarNode

        index = self._index.get(id(node))
        if index is None:
            index = {}
            for k, v in node.value:
                if isinstance(k, ScalarNode):
                    index.setdefault(str(k.value), (k, v))
                    # data paths name null and boolean keys by their Python text
                    tag = str(getattr(k, "tag", ""))
                    if tag.endswith(":null"):
                        index.setdefault("None", (k, v))
                    elif tag.endswith(":bool"):
                        text = "True" if str(k.value).lower() == "true" else "False"
                        index.setdefault(text, (k, v))
            self._index[id(node)] = index
        return index

    def position(self, path: PathKey, *, at: str = "value") -> tuple[int, int]:
        node, _ = self.node_at(path, at=at)
        if node is None or node.start_mark is None:
            return 1, 1
        return node.start_mark.line + 1, node.start_mark.column + 1

    def text(self, path: PathKey) -> str | None:
        """The original text of the scalar at ``path`` (``2.10`` as written)."""
        from ruamel.yaml.nodes import ScalarNode

        node, found = self.node_at(path)
        if found and isinstance(node, ScalarNode):
            return str(node.value)
        return None

    def has(self, path: PathKey) -> bool:
        value = self.data
        for step in path:
            if isinstance(value, Mapping):
                if step not in value:
                    # a non-string key (``1:``) is addressed by its text
                    step = next((k for k in value if str(k) == step), step)
                    if step not in value:
                        return False
            elif not (isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value)):
                return False
            value = value[step]
        return True


@dataclass
class ModelSource:
    """Where a model was declared, and the defaults that apply to it (lowest first)."""

    name: str
    doc: Doc
    defaults: list[tuple[Doc, PathKey]]  # (doc, ("defaults",)), top-level first

    @property
    def path(self) -> PathKey:
        return ("models", self.name)

    def candidates(self) -> Iterator[tuple[Doc, PathKey]]:
        """Where a merged value may have come from, most specific first."""
        yield self.doc, self.path
        yield from reversed(self.defaults)

    def locate(self, sub: PathKey) -> tuple[Doc, PathKey]:
        """The file and full path a merged value was written at (most specific first)."""
        for doc, base in self.candidates():
            if doc.has(base + sub):
                return doc, base + sub
        # not written anywhere (a missing key): point at the model's name
        return self.doc, self.path

    def origin(self, key: str) -> Doc:
        """The file a model's top-level key was written in (for relative paths)."""
        doc, _ = self.locate((key,))
        return doc


def dotted(path: PathKey) -> str:
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out
