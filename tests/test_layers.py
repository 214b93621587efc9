"""The layer rules of DESIGN §2, checked on the source: a forbidden import or an import cycle fails.

Walks every module under src/callgate with `ast` (imports inside functions count too; imports under
`if TYPE_CHECKING:` count for the layer rules but not for cycles, since they never run).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# swml/template/swaig/llm know nothing of calls or audio. The clock is time, not telephony: the
# model client takes one for back-off, so `telephony.clock` is allowed everywhere.
PURE = {"swml", "template", "swaig", "llm"}
PURE_FORBIDDEN = {
    "agent",
    "channels",
    "cli",
    "control",
    "records",
    "runtime",
    "scenario",
    "server",
    "speech",
    "telephony",
}
# agent/control see telephony only through telephony.base (and the clock).
AGENT_CONTROL = {"agent", "control"}
AGENT_CONTROL_FORBIDDEN = {"channels", "cli", "runtime", "scenario", "server", "speech"}
TELEPHONY_ALLOWED = ("callgate.telephony.base", "callgate.telephony.clock")
# A channel imports no agent code (nor anything that wires agents).
CHANNEL_FORBIDDEN = {"agent", "cli", "control", "runtime", "scenario", "server"}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    path: Path
    line: int
    type_checking: bool


def _modules() -> dict[str, tuple[Path, bool]]:
    found: dict[str, tuple[Path, bool]] = {}
    for path in (SRC / "callgate").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    nodes: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for statement in node.body:
                nodes.update(id(child) for child in ast.walk(statement))
    return nodes


def _imports(name: str) -> list[Import]:
    path, is_package = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = _type_checking_nodes(tree)
    package = name if is_package else name.rsplit(".", 1)[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                targets.append(full if full in MODULES else module)
        for target in targets:
            if target == "callgate" or target.startswith("callgate."):
                found.append(Import(name, target, path, node.lineno, id(node) in guarded))
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _violation(imp: Import) -> str | None:
    source, target = _layer(imp.source), _layer(imp.target)
    if source == target:
        return None
    if target == "cli":
        return "only the cli imports the cli"
    if imp.target.startswith("callgate.telephony.clock"):
        return None
    if source in PURE and target in PURE_FORBIDDEN:
        return f"{source} is pure and must not import {target}"
    if source == "agent" and target == "control":
        return "the agent emits decisions; it does not call control"
    if source in AGENT_CONTROL:
        if target in AGENT_CONTROL_FORBIDDEN:
            return f"{source} must not import {target}"
        if target == "telephony" and not imp.target.startswith(TELEPHONY_ALLOWED):
            return f"{source} sees telephony only through telephony.base"
    if source == "channels" and target in CHANNEL_FORBIDDEN:
        return f"a channel must not import {target}"
    return None


def _resolve(target: str) -> str:
    while target and target not in MODULES:
        target = target.rsplit(".", 1)[0] if "." in target else ""
    return target


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop()
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph.get(child, set()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


ALL_IMPORTS = [imp for name in sorted(MODULES) for imp in _imports(name)]


def test_the_walk_sees_the_package() -> None:
    # Guards against a walk that silently finds nothing (and so can never fail).
    assert "callgate.agent.session" in MODULES
    assert any(imp.source == "callgate.agent.session" for imp in ALL_IMPORTS)


def test_no_import_crosses_a_layer_boundary() -> None:
    problems = [
        f"{imp.path.relative_to(SRC.parent)}:{imp.line}: {imp.source} imports {imp.target}: {why}"
        for imp in ALL_IMPORTS
        if (why := _violation(imp)) is not None
    ]
    assert problems == []


def test_the_rules_catch_a_violation() -> None:
    here = Path(__file__)
    assert _violation(Import("callgate.swml.model", "callgate.channels.sim", here, 1, False))
    assert _violation(Import("callgate.agent.session", "callgate.runtime.live", here, 1, False))
    assert _violation(Import("callgate.control.timers", "callgate.telephony.x", here, 1, False))
    assert _violation(Import("callgate.channels.sim", "callgate.agent.session", here, 1, False))
    assert _violation(Import("callgate.runtime.live", "callgate.cli.serve", here, 1, False))
    assert _violation(Import("callgate.agent.session", "callgate.control.timers", here, 1, False))
    assert _violation(Import("callgate.agent.session", "callgate.telephony.base", here, 1, False)) is None


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in ALL_IMPORTS:
        target = _resolve(imp.target)
        if not imp.type_checking and target and target != imp.source:
            graph[imp.source].add(target)
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
