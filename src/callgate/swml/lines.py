"""Field paths (`sections.main[0].ai.SWAIG.functions[2].function`) and the path → line map of a document."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import yaml

Loc = tuple[str | int, ...]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(loc: Loc) -> str:
    """`("sections", "main", 0, "ai")` → `sections.main[0].ai`; odd keys are quoted: `headers["X-Key"]`."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif not isinstance(part, str):
            out += f"[{json.dumps(str(part))}]"  # YAML allows null, bool or float keys
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


@dataclass
class LineMap:
    """1-based line of every mapping key and list item of a YAML/JSON text, by field path."""

    lines: dict[Loc, int] = field(default_factory=dict)
    duplicates: list[tuple[Loc, int]] = field(default_factory=list)

    def line_for(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest ancestor present in the text (e.g. for a missing field)."""
        probe = tuple(loc)
        while True:
            line = self.lines.get(probe)
            if line is not None:
                return line
            if not probe:
                return None
            probe = probe[:-1]

    @classmethod
    def from_node(cls, node: yaml.Node) -> LineMap:
        result = cls()
        result.lines[()] = node.start_mark.line + 1
        _walk(node, (), result, set())
        return result


def _walk(node: yaml.Node, loc: Loc, out: LineMap, seen_nodes: set[int]) -> None:
    # An aliased node is walked once (at its anchor): paths through an alias fall back to its line.
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = (*loc, key)
            line = key_node.start_mark.line + 1
            if key in seen:
                # YAML keeps only the last value of a repeated key: the loader warns about it.
                out.duplicates.append((child, line))
            seen.add(key)
            out.lines[child] = line
            _walk(value_node, child, out, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            out.lines[child] = item.start_mark.line + 1
            _walk(item, child, out, seen_nodes)
