"""No import circle among the repository's modules (issue 13, point 4).

The graph has an edge a -> b for every `import` / `from ... import` in module a (at any depth, so an import
inside a function counts: deferring an import hides a circle at load time but keeps the two modules
knowing each other) that names a module of this repository. A strongly connected component of more than
one module is a circle. 1d7b4f1 had one: baselines/base.py imported its plugins, which import it back.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"tests", "build", "docs", "models"}


def repo_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file outside tests/ and hidden folders."""
    mods = {}
    for p in root.rglob("*.py"):
        rel = p.relative_to(root)
        if rel.parts[0] in SKIP or any(part.startswith(".") for part in rel.parts):
            continue
        name = ".".join(rel.with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


def _targets(mod: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement in `mod` may load (module and module.attribute)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    target = node.module if not node.level else (f"{base}.{node.module}" if node.module else base)
    return [target] + [f"{target}.{a.name}" for a in node.names]


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the repository modules it imports."""
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _targets(mod, path, node):
                    while name and name not in mods:
                        name = name.rpartition(".")[0]
                    if name and name != mod:
                        deps.add(name)
        graph[mod] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_circle_finder_sees_a_circle_and_a_deferred_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("def load():\n    from . import plugin\n")
    (pkg / "plugin.py").write_text("from .base import load\n")
    (pkg / "other.py").write_text("import pkg.base\n")
    assert circles(import_graph(repo_modules(tmp_path))) == [["pkg.base", "pkg.plugin"]]


def test_no_import_circle_in_the_repository() -> None:
    mods = repo_modules()
    assert {"train", "diffusion.model", "baselines.base", "training.engine"} <= set(mods)
    assert circles(import_graph(mods)) == []
