"""What callgate will read at all: limits on a document's (or scenario file's) size, nesting depth
and YAML alias expansion, checked before the text is turned into data.

The limits are set to what the runtime can run: a document `validate` accepts must also run, be
recorded and be reported. Past the limits the reader refuses with `LimitExceeded` (its path and
line), never a RecursionError, a hang or a huge allocation:
- `MAX_DOCUMENT_BYTES`: a document of more bytes is not parsed (nor fetched past that size);
- `MAX_DEPTH`: objects and lists nested more than this many levels (the top-level object is level
  1); deep copies, JSON encoding and template rendering recurse once per level;
- `MAX_EXPANDED_VALUES`: YAML aliases may repeat a value, but the whole may not stand for more values
  than this once every alias is expanded ("billion laughs"), and an alias may not contain itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from callgate.swml.lines import Loc, format_path

MAX_DOCUMENT_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_EXPANDED_VALUES = 200_000


class LimitExceeded(ValueError):
    """The text is beyond a reading limit: `loc` is the field path where it went past, `line` its line."""

    def __init__(self, message: str, *, loc: Loc = (), line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.line = line


def too_deep(loc: Loc, max_depth: int, line: int | None = None) -> LimitExceeded:
    where = f" at {format_path(loc)}" if loc else ""
    return LimitExceeded(f"nested more than {max_depth} levels deep{where}", loc=loc, line=line)


def check_size(size: int, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
    if size > max_bytes:
        raise LimitExceeded(f"{size} bytes is larger than the {max_bytes}-byte limit for a document")


def _children(value: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(value, Mapping):
        return ((key if isinstance(key, str | int) else str(key), item) for key, item in value.items())
    if isinstance(value, list):
        return enumerate(value)
    return iter(())


def check_data_depth(data: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise LimitExceeded if parsed data nests objects/lists more than `max_depth` levels."""
    if not isinstance(data, Mapping | list):
        return
    # Iterative, so depth itself can never overflow the stack here.
    stack: list[tuple[Loc, Iterator[tuple[str | int, Any]]]] = [((), _children(data))]
    while stack:
        loc, children = stack[-1]
        for key, value in children:
            if isinstance(value, Mapping | list):
                if len(stack) >= max_depth:
                    raise too_deep((*loc, key), max_depth)
                stack.append(((*loc, key), _children(value)))
                break
        else:
            stack.pop()


def _node_children(node: yaml.Node) -> list[tuple[str | int, yaml.Node]]:
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        out: list[tuple[str | int, yaml.Node]] = []
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            out += [(name, key), (name, value)]
        return out
    return []


def check_nodes(
    root: yaml.Node, *, max_depth: int = MAX_DEPTH, max_values: int = MAX_EXPANDED_VALUES
) -> None:
    """Check a composed YAML node graph before it is constructed: its depth (aliases included), the
    number of values it expands to, and no alias inside its own anchor. Each node is visited once."""
    # id(node) -> (levels of collections from it down, values it stands for), once finished.
    done: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    # Frames: node, its path, its children, the next child to visit, levels below, values so far.
    stack: list[list[Any]] = []

    def enter(node: yaml.Node, loc: Loc) -> None:
        if len(stack) >= max_depth and isinstance(node, yaml.CollectionNode):
            raise too_deep(loc, max_depth, node.start_mark.line + 1)
        on_path.add(id(node))
        stack.append([node, loc, _node_children(node), 0, 0, 1])

    enter(root, ())
    while stack:
        frame = stack[-1]
        node, loc, children, index = frame[0], frame[1], frame[2], frame[3]
        if index < len(children):
            frame[3] = index + 1
            key, child = children[index]
            child_loc = (*loc, key)
            if id(child) in on_path:
                raise LimitExceeded(
                    "a YAML alias refers to a value that contains it",
                    loc=child_loc,
                    line=child.start_mark.line + 1,
                )
            known = done.get(id(child))
            if known is None:
                enter(child, child_loc)
                continue
            _add(frame, known, stack, max_depth, max_values, child_loc, child)
            continue
        stack.pop()
        on_path.discard(id(node))
        levels = frame[4] + (1 if isinstance(node, yaml.CollectionNode) else 0)
        done[id(node)] = (levels, frame[5])
        if stack:
            _add(stack[-1], done[id(node)], stack, max_depth, max_values, loc, node)


def _add(
    parent: list[Any],
    child: tuple[int, int],
    stack: list[list[Any]],
    max_depth: int,
    max_values: int,
    loc: Loc,
    node: yaml.Node,
) -> None:
    levels, values = child
    if len(stack) + levels > max_depth:  # an aliased subtree placed deep down
        raise too_deep(loc, max_depth, node.start_mark.line + 1)
    parent[4] = max(parent[4], levels)
    parent[5] += values
    if parent[5] > max_values:
        raise LimitExceeded(
            f"the document expands to more than {max_values} values (YAML aliases)",
            loc=loc,
            line=node.start_mark.line + 1,
        )


def load_yaml(
    text: str, loader_class: type[yaml.SafeLoader], *, max_depth: int = MAX_DEPTH
) -> tuple[Any, yaml.Node | None]:
    """Compose, check (`check_nodes`) and only then construct one YAML document: (data, root node).

    Raises yaml.YAMLError for bad syntax and LimitExceeded past the limits (a text too deep for the
    composer's own recursion included)."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_nodes(node, max_depth=max_depth)
        return loader.construct_document(node), node
    except RecursionError:  # deeper than the composer can go: far past the limit
        raise too_deep((), max_depth) from None
    finally:
        loader.dispose()


def load_json(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` within the depth limit (raises json.JSONDecodeError or LimitExceeded)."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise too_deep((), max_depth) from None
    check_data_depth(data, max_depth)
    return data
