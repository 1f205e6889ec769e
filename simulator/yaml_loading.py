"""YAML for configs and ``--set`` values, read with limits on size, nesting, aliases and keys.

PyYAML's safe loader runs no code, but it trusts the size of what it reads. An alias is one
event however large the node it names, so a 1.6 KB file of 25 nested anchors expands into 2**25
nodes once anything walks it (validation hung at 1.9 GB); nesting 20,000 deep exhausts the
recursion of the pure-Python composer (a RecursionError) and, 200,000 deep, crashes libyaml's
compiled composer outright (a segmentation fault); a key given twice silently keeps the last
value; an integer past Python's 4,300-digit conversion limit raises ValueError.

Here the parser's event stream (libyaml's when available: a state machine without recursion)
is composed into nodes by a loop that counts as it goes: every node, with an alias counted as
the whole node it stands for, and the nesting, aliases included. Past ``MAX_NODES`` or
``MAX_DEPTH`` it stops at once with the line it reached, before anything is built. A recursive
alias (a collection containing itself) is refused the same way. The nodes are then constructed
by PyYAML's safe constructor, which also refuses duplicate keys (naming the key and both lines)
and reports unreadable scalars (an over-long integer, a date like 2024-13-45) at their line.
Valid YAML within the limits gives the same data as ``yaml.safe_load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import (
    AliasEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: Largest config file read: far above any config (a 10,000-worker slowdown list is 60 KB),
#: and at most seconds of parsing (a 2 MiB list of 400,000 floats: about 4 s here, busy).
MAX_BYTES = 2 * 2**20
#: Most nodes once aliases are expanded: what validation will walk (and pydantic build). A
#: file within MAX_BYTES without aliases stays below it (a value takes 2 bytes at the least).
MAX_NODES = 1_000_000
#: Deepest nesting, aliases expanded (a config is about 6 deep; nested bimodals add one a level).
MAX_DEPTH = 64

_MERGE = "tag:yaml.org,2002:merge"
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LimitError(yaml.MarkedYAMLError):
    """Well-formed YAML that is larger, deeper or more repetitive than a config may be."""


def read_text(path: str | Path, limit: int = MAX_BYTES) -> str:
    """The text of a config file: at most ``limit`` bytes of UTF-8 (ValueError otherwise, with
    a message for the user; OSError passes through)."""
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ValueError(
            f"is larger than {_size(limit)}, the most a config file may be (keep large data in "
            "the files a config names: an empirical distribution's file, an assignment_file)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"is not UTF-8 text (byte {exc.start}, line {line}: {data[exc.start : exc.start + 1]!r}"
            "); save it as UTF-8"
        ) from None


def load(text: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> Any:
    """The data of a single YAML document (None if empty), as ``yaml.safe_load`` gives it, or
    ``yaml.YAMLError`` (``LimitError`` past the limits, with the line)."""
    loader = _Loader(text)
    try:
        root = _compose(loader, max_nodes, max_depth)
        return None if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        # PyYAML >= 6.0.4's own parser stops deep nesting before the composer sees it: the
        # same limit, said the same way whatever the version.
        if "nesting depth" in (exc.problem or "") and not isinstance(exc, LimitError):
            raise LimitError(None, None, f"nesting deeper than {max_depth} levels",
                             exc.problem_mark) from None  # fmt: skip
        raise
    finally:
        loader.dispose()


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit:,} bytes"


class _Open:
    """A collection being composed: its node, the count of nodes when it opened, its
    expanded height so far and, in a mapping, the key waiting for its value."""

    __slots__ = ("node", "anchor", "first", "height", "key")

    def __init__(self, node: Node, anchor: str | None, first: int):
        self.node, self.anchor, self.first, self.height = node, anchor, first, 1
        self.key: Node | None = None


def _compose(loader: Any, max_nodes: int, max_depth: int) -> Node | None:
    """The single document of the stream as a node graph (aliases shared, not copied),
    counting expanded nodes and nesting as the events arrive."""
    loader.get_event()  # stream start
    if loader.check_event(StreamEndEvent):
        loader.get_event()
        return None
    loader.get_event()  # document start
    anchors: dict[str, Node] = {}
    finished: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (expanded nodes, height)
    stack: list[_Open] = []
    total = 0  # nodes so far, aliases expanded
    while True:
        event = loader.get_event()
        mark = event.start_mark
        if isinstance(event, AliasEvent):
            node = anchors.get(event.anchor)
            if node is None:
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", mark)
            if id(node) not in finished:
                raise LimitError(
                    None, None, f"alias *{event.anchor} is inside the node it names (a recursive "
                    "structure, which no config key accepts)", mark,
                )  # fmt: skip
            size, height = finished[id(node)]
            total += size
            if len(stack) + height > max_depth:
                raise LimitError(
                    None, None, f"alias *{event.anchor} nests deeper than {max_depth} levels "
                    "once expanded", mark,
                )  # fmt: skip
        elif isinstance(event, ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(ScalarNode, event.value, event.implicit)
            node = ScalarNode(tag, event.value, mark, event.end_mark, style=event.style)
            _anchor(anchors, event.anchor, node, mark)
            size, height = 1, 1
            total += 1
            if event.anchor is not None:
                finished[id(node)] = (1, 1)
        elif isinstance(event, SequenceStartEvent | MappingStartEvent):
            kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(kind, None, event.implicit)
            node = kind(tag, [], mark, None, flow_style=event.flow_style)
            _anchor(anchors, event.anchor, node, mark)
            total += 1
            if len(stack) + 1 > max_depth:
                raise LimitError(None, None, f"nesting deeper than {max_depth} levels", mark)
            stack.append(_Open(node, event.anchor, total - 1))
            _check_total(total, max_nodes, mark)
            continue
        else:  # the end of a collection
            done = stack.pop()
            node = done.node
            node.end_mark = event.end_mark
            size, height = total - done.first, done.height
            if done.anchor is not None:
                finished[id(node)] = (size, height)
        _check_total(total, max_nodes, mark)
        if not stack:
            loader.get_event()  # document end
            if not loader.check_event(StreamEndEvent):
                raise ComposerError(
                    "expected a single document in the stream", node.start_mark,
                    "but found another document", loader.get_event().start_mark,
                )  # fmt: skip
            loader.get_event()
            return node
        parent = stack[-1]
        parent.height = max(parent.height, height + 1)
        if isinstance(parent.node, SequenceNode):
            parent.node.value.append(node)
        elif parent.key is None:
            parent.key = node
        else:
            parent.node.value.append((parent.key, node))
            parent.key = None


def _anchor(anchors: dict[str, Node], name: str | None, node: Node, mark: Any) -> None:
    if name is None:
        return
    if name in anchors:
        raise ComposerError(
            f"found duplicate anchor {name!r}; first occurrence", anchors[name].start_mark,
            "second occurrence", mark,
        )  # fmt: skip
    anchors[name] = node


def _check_total(total: int, max_nodes: int, mark: Any) -> None:
    if total > max_nodes:
        raise LimitError(
            None, None, f"more than {max_nodes:,} values once aliases are expanded (a config "
            "holds a few hundred; anchors that refer to anchors multiply)", mark,
        )  # fmt: skip


class _Loader(_Base):
    """The safe loader with two refusals of its own: a key given twice in one mapping, and a
    scalar Python cannot convert (reported at its line instead of as a bare ValueError)."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(
                None, None, f"cannot read {_excerpt(node)}: {exc}", node.start_mark
            ) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                    continue  # merged keys may be overridden; complex keys are refused later
                key = self.construct_object(key_node)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue
                if first is not key_node:
                    raise ConstructorError(
                        None, None, f"key {key!r} is given twice in one mapping (first at "
                        f"line {first.start_mark.line + 1}); keep one", key_node.start_mark,
                    )  # fmt: skip
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            digits = sum(c.isdigit() for c in node.value)
            raise LimitError(
                None, None, f"an integer with {digits:,} digits: at most 4,300 are read",
                node.start_mark,
            ) from None  # fmt: skip


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _excerpt(node: Node) -> str:
    if isinstance(node, ScalarNode):
        text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        return repr(text)
    return "this value"
