"""The package's shape: no import cycle, and the inference side never imports the training side.

Read from the source with :mod:`ast` (nothing is imported): every ``import`` and ``from … import``
of a ``facever`` module counts, at module level or inside a function (a lazy import is still an
arrow), except under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "facever"

#: The training side: Keras / TensorFlow, scikit-learn; it may import the inference side.
TRAINING = "facever.training"

#: Cycles that remain, each with why. Every other cycle fails the test, and so does an entry here
#: that no longer exists (remove it then).
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: the facever modules it imports}`` for every ``.py`` file under ``root``."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skip = _type_checking_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # ``from facever import config`` imports the module facever.config
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in files and t != name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (each holds at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm (the graph has ~150 nodes: recursion is fine)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _unit(module: str) -> str:
    """A sub-package of facever (``facever.gallery``) for its modules; a top-level module for itself."""
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_lazy_and_relative_imports(graph):
    # guards the parser itself: a lazy import inside a function, a ``from facever import x`` form
    assert "facever.training.finetune" in graph["facever.training.finetune_recipe"]
    assert "facever.config" in graph["facever.api"]
    assert len(graph) > 80  # every module was read


def test_no_import_cycle_between_modules(graph):
    found = set(cycles(graph))
    new = [sorted(c) for c in found if c not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_no_import_cycle_between_subpackages(graph):
    units: dict[str, set[str]] = {}
    for module, deps in graph.items():
        units.setdefault(_unit(module), set()).update(_unit(d) for d in deps if _unit(d) != _unit(module))
    assert not cycles(units), f"sub-packages import each other: {[sorted(c) for c in cycles(units)]}"


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """``"module → training module"`` for every arrow from the inference side into the training side."""
    def training(m: str) -> bool:
        return m == TRAINING or m.startswith(TRAINING + ".")

    return sorted(f"{m} → {d}" for m, deps in graph.items() if not training(m) for d in deps if training(d))


def test_inference_never_imports_training(graph):
    wrong = wrong_way(graph)
    assert not wrong, "the inference side imports the training side:\n" + "\n".join(wrong)


def test_cycles_and_arrows_are_detected(tmp_path):
    """The checks can fail: a small package with a lazy cycle and a wrong-way arrow."""
    pkg = tmp_path / "facever"
    (pkg / "training").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "detection.py").write_text("def default():\n    from facever.mtcnn_onnx import Detector\n")
    (pkg / "mtcnn_onnx.py").write_text("from facever.detection import default\n")
    (pkg / "training" / "__init__.py").write_text("")
    (pkg / "training" / "lfw.py").write_text("import numpy\n")
    (pkg / "api.py").write_text("from facever.training import lfw\n")
    g = import_graph(pkg)
    assert cycles(g) == [frozenset({"facever.detection", "facever.mtcnn_onnx"})]
    assert wrong_way(g) == ["facever.api → facever.training.lfw"]
