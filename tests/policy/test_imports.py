"""The policy package has no import cycle: the decision core imports no policy, the policies import
the core. Every import counts (at module level, inside a function, or for type checking only)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "brightscan" / "policy"


def _graph(package: Path) -> dict[str, set[str]]:
    """``module -> modules of the same package it imports``, by module name."""
    names = {p.stem for p in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for module in modules:
                parts = module.split(".")
                if parts[:2] == ["brightscan", "policy"] and len(parts) > 2 and parts[2] in names:
                    edges.add(parts[2])
        graph[path.stem] = edges - {path.stem}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_import_cycle_in_the_policy_package():
    graph = _graph(PACKAGE)
    assert "base" not in graph["decision"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_check_finds_a_cycle(tmp_path):
    """It can fail: the round 2 layout (decision imports base for type checking) is reported."""
    for name, text in {"base.py": "from brightscan.policy.decision import decide\n",
                       "decision.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                      "    from brightscan.policy.base import BasePolicy\n"}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert sorted(set(_cycle(_graph(tmp_path)))) == ["base", "decision"]
