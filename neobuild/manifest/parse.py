"""Parse one manifest file safely: the data, its node tree, and a positioned problem.

ruamel's C safe loader keeps the node tree for positions and the scalars' original
text (``2.10`` stays ``2.10``). Before the data is built, the tree is checked for
alias bombs, absurd nesting and huge integers; text that is not UTF-8 and control
characters are reported at their position.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild.errors import Problem
from neobuild.manifest.positions import Doc

if TYPE_CHECKING:
    from ruamel.yaml.nodes import Node


def parse(doc: Doc, data: bytes) -> Problem | None:
    """Fill ``doc.data``/``doc.node`` from ``data``; a positioned Problem on a syntax error."""
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.reader import ReaderError

    try:  # the C parser is much faster; the pure one has the same interface
        from ruamel.yaml.cyaml import CSafeLoader as _Loader
    except ImportError:  # pragma: no cover - no compiler on this platform
        from ruamel.yaml.loader import SafeLoader as _Loader  # type: ignore[assignment]

    doc.digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _not_utf8(doc.path, data, exc)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc.node = node
        too_big = _size_problem(doc.path, node) if node is not None else None
        if too_big is not None:
            return too_big
        with warnings.catch_warnings():  # ruamel warns on stderr about YAML 1.1 floats
            warnings.simplefilter("ignore")
            doc.data = loader.construct_document(node) if node is not None else None
    except ReaderError as exc:  # a character YAML does not allow (a control character)
        line, col = _line_col(text, exc.position)
        return Problem(
            f"invalid YAML: {exc.reason} (character U+{_code_point(exc.character):04X})",
            file=doc.path,
            line=line,
            col=col,
            hint="remove the control character, or write it as an escape inside double quotes",
        )
    except (ValueError, OverflowError) as exc:  # a scalar its constructor refuses
        mark = getattr(exc, "problem_mark", None)
        return Problem(
            f"invalid YAML value: {str(exc).splitlines()[0]}",
            file=doc.path,
            line=(mark.line + 1) if mark is not None else 1,
            col=(mark.column + 1) if mark is not None else 1,
            hint="quote the value to keep it a string",
        )
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = str(exc.problem or exc.context or "invalid YAML")
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context.strip()})"
        hint = "fix the YAML syntax at this position"
        if "unexpected ':'" in message:
            hint = 'inside { } and [ ], quote values that contain ":", e.g. "s3://bucket/x"'
        return Problem(
            f"invalid YAML: {message}",
            file=doc.path,
            line=(mark.line + 1) if mark is not None else 0,
            col=(mark.column + 1) if mark is not None else 0,
            hint=hint,
        )
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose is not None:
            dispose()
    return None


#: Values one file may expand to through YAML aliases: a fixed allowance plus a few per
#: node written, so an anchor reused by every model passes and an alias bomb ("billion
#: laughs": each level aliases the one below ten times) is refused before it is built.
_ALIAS_ALLOWANCE = 100_000
_ALIAS_FACTOR = 10
#: Nesting deeper than this is no manifest (and would exhaust the recursion of later steps).
_MAX_DEPTH = 64
#: Longer integers cannot even be printed (Python's int_max_str_digits is 4300).
_MAX_INT_TEXT = 100


def _size_problem(path: Path, root: Node) -> Problem | None:
    """A problem when the node tree nests too deep or aliases expand it too far.

    Each distinct node is visited once (sizes are memoised), so this is linear in the
    file however far its aliases would expand.
    """
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}  # the depth below a node, aliases followed
    reused: dict[int, Node] = {}
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    active: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes.get(id(c), 1) for c in children)
            heights[key] = 1 + max((heights.get(id(c), 1) for c in children), default=0)
            continue
        if key in sizes:
            reused[key] = node
            continue
        if key in active:
            return _node_problem(
                path,
                node,
                "an alias refers to the mapping or list that contains it",
                "a manifest cannot contain itself: remove the recursive alias",
            )
        if depth > _MAX_DEPTH:
            return _node_problem(
                path,
                node,
                f"values nest more than {_MAX_DEPTH} levels deep",
                "flatten the structure; no manifest key nests this deep",
            )
        if not isinstance(node, MappingNode | SequenceNode):
            if str(node.tag).endswith(":int") and len(str(node.value)) > _MAX_INT_TEXT:
                return _node_problem(
                    path,
                    node,
                    f"an integer of {len(str(node.value))} characters",
                    "no manifest value needs a number this large; quote it if it is text",
                )
            sizes[key] = 1
            continue
        active.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in _children(node))
    deepest = root
    if heights.get(id(root), 1) > _MAX_DEPTH:  # nested through aliases: find where
        while heights.get(id(deepest), 1) > _MAX_DEPTH and _children(deepest):
            deepest = max(_children(deepest), key=lambda c: heights.get(id(c), 1))
        return _node_problem(
            path,
            deepest,
            f"values nest more than {_MAX_DEPTH} levels deep through aliases",
            "flatten the structure; no manifest key nests this deep",
        )
    total = sizes[id(root)]
    limit = _ALIAS_ALLOWANCE + _ALIAS_FACTOR * len(sizes)
    if total <= limit:
        return None
    biggest = max(reused.values(), key=lambda n: sizes[id(n)])
    return _node_problem(
        path,
        biggest,
        f"YAML aliases expand this file to {total:,} values (at most {limit:,} here); "
        f"the anchor here ({sizes[id(biggest)]:,} values) is reused",
        "write the values out, or use `defaults:` instead of nested aliases",
    )


def _children(node: Node) -> list[Node]:
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _node_problem(path: Path, node: Node, message: str, hint: str) -> Problem:
    mark = node.start_mark
    return Problem(
        message,
        file=path,
        line=(mark.line + 1) if mark is not None else 1,
        col=(mark.column + 1) if mark is not None else 1,
        hint=hint,
    )


def _code_point(character: Any) -> int:
    """ruamel's ReaderError holds the bad character as an int or a one-character str."""
    return ord(character) if isinstance(character, str) and len(character) == 1 else int(character)


def _line_col(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    position = max(0, min(position, len(text)))
    line_start = text.rfind("\n", 0, position) + 1
    return text.count("\n", 0, position) + 1, position - line_start + 1


def _not_utf8(path: Path, data: bytes, exc: UnicodeDecodeError) -> Problem:
    """The problem for a file that is not UTF-8, positioned at the first bad byte."""
    start = exc.start
    line_start = data.rfind(b"\n", 0, start) + 1
    line = data.count(b"\n", 0, start) + 1
    col = len(data[line_start:start].decode("utf-8", errors="replace")) + 1
    message = f"not UTF-8 text: {exc.reason} (byte 0x{data[start]:02x} at offset {start})"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        message = "not UTF-8 text: the file starts with a UTF-16 byte order mark"
    return Problem(
        message,
        file=path,
        line=line,
        col=col,
        hint="save it as UTF-8 (a UTF-16 BOM is the usual cause)",
    )
