"""The package's structure, checked rather than remembered: one-way layers, no import cycles, and
function-level imports of helixlab modules only where they keep heavy dependencies out of start-up."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

import helixlab

SRC = Path(helixlab.__file__).resolve().parent
PYPROJECT = SRC.parents[1] / "pyproject.toml"
# module -> why it may import helixlab modules inside functions
DEFERRED_IMPORTS = {
    "helixlab": "`import helixlab` stays light: helixlab.load imports the API (and torch) on first use",
    "helixlab.cli": "each command imports the library it calls, so --help and usage errors never load torch",
}


def test_the_layer_contract_in_pyproject_is_kept():
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True) == 0


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected sets of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(group)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_through_others():
    g = grimp.build_graph("helixlab")
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    # a package's __init__ importing its own modules (re-exports) is not a cycle of capabilities
    for m, targets in graph.items():
        targets.discard(m)
    cycles = [c for c in _cycles(graph) if not any(all(x == p or x.startswith(p + ".") for x in c) for p in c)]
    assert cycles == []


def test_helixlab_modules_are_imported_at_the_top_of_modules():
    inside: dict[str, list[int]] = {}
    for f in SRC.rglob("*.py"):
        parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(f.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and id(node) not in top and (node.module or "").startswith("helixlab"):
                inside.setdefault(module, []).append(node.lineno)
            if isinstance(node, ast.Import) and id(node) not in top and any(a.name.startswith("helixlab")
                                                                             for a in node.names):
                inside.setdefault(module, []).append(node.lineno)
    assert set(inside) <= set(DEFERRED_IMPORTS), {m: v for m, v in inside.items() if m not in DEFERRED_IMPORTS}


def test_the_documented_paths_still_work():
    import helixlab.engine
    import helixlab.models
    import helixlab.train

    assert helixlab.engine.fit is helixlab.train.fit  # documented before the package was grouped
    assert {"cnn", "gru", "cnn_gru", "window_gru", "cnn_lstm", "mlp", "kmer_linear", "bert", "legnet", "kmer_count",
            "fused", "context_count", "repeat_mixture"} == set(helixlab.models.REGISTRY)
    assert callable(helixlab.load)
