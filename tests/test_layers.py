"""The house's import rule: each package imports only the layers below it, and no module
imports itself back through others. Every import counts, those inside functions and
`if TYPE_CHECKING:` included: a lazy import is still a dependency."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# lower first; a package may import its own modules and any package of a lower layer
# the classifier toolkit sits beside prep, below the training loop (trainer) and evaluation,
# which know nothing of each other; research (the study and its tools) sits above the pipeline,
# beside the benchmarks: nothing on the product path imports it
LAYERS = [("foundation",), ("prep", "classifier"), ("trainer", "evaluation"), ("pipeline",),
          ("research", "benchmarks")]
LAYER = {package: i for i, packages in enumerate(LAYERS) for package in packages}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The project modules `path` imports (a `from package import module` names the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in LAYER}


def project_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for package in LAYER for p in (ROOT / package).rglob("*.py")}
    return {name: {i for i in imports(path) if i in files and i != name}
            for name, path in files.items()}


GRAPH = project_graph()


def test_the_graph_is_read():
    assert len(GRAPH) > 60
    assert "foundation.schema" in GRAPH["classifier.data"]  # an import the rule allows is seen
    assert "pipeline.run" in GRAPH["research.study"]  # and the research floor is read


def test_evaluation_imports_nothing_of_the_trainer():
    """Evaluation reads the classifier toolkit and the run folders, never the training loop."""
    wrong = {module: sorted(i for i in GRAPH[module] if i.split(".")[0] == "trainer")
             for module in GRAPH if module.split(".")[0] == "evaluation"}
    assert not {module: found for module, found in wrong.items() if found}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_down_the_layers(module):
    package = module.split(".")[0]
    wrong = sorted(i for i in GRAPH[module] if i.split(".")[0] != package
                   and LAYER[i.split(".")[0]] >= LAYER[package])
    assert not wrong, f"{module} imports {wrong}: {package} may import only " + \
        ", ".join(p for p, layer in LAYER.items() if layer < LAYER[package])


def test_no_import_cycle():
    """Depth-first search over the modules; a back edge is a cycle, printed in full."""
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
