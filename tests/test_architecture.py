"""The package's layers import one way (docs/architecture.md): each folder or module only what the table allows.

Every ``import`` and ``from ... import`` of the package's own modules counts,
at module level or inside a function. The table is the design; a change that
needs another arrow changes the table and docs/architecture.md together.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "pcw_keras"
LEAVES = {"choices", "normalization", "io", "paper", "machine"}
BELOW = {
    # unit: the units it may import (besides the leaves, which import nothing of the package)
    "choices": set(), "normalization": set(), "io": set(), "paper": set(), "machine": set(),
    "layers": set(),
    "models": {"layers"},
    "data": {"layers"},
    "evaluation": {"data", "models", "layers"},
    "export": {"data", "models", "layers"},
    "recipes": {"evaluation", "data", "models", "layers"},
    "scales": {"recipes"},
    "runs": {"recipes", "export", "evaluation", "data", "models", "layers"},
    "training": {"runs", "recipes", "evaluation", "data", "models", "layers"},
    "report": {"runs", "recipes", "export", "evaluation", "data", "models", "layers"},
    "backends": set(),
    "demo_plots": set(),
    "demo_verdict": set(),
    "reproduce": {"training", "runs", "scales", "recipes", "evaluation", "data", "models", "layers"},
    "demo": {"demo_plots", "demo_verdict", "training", "runs", "scales", "recipes", "evaluation", "data", "models",
             "layers"},
    "commands": {"demo", "reproduce", "report", "training", "runs", "recipes", "export", "evaluation", "data", "models",
                 "layers", "backends"},
    "cli": {"commands", "demo", "reproduce", "report", "training", "runs", "recipes", "export", "evaluation", "data", "models",
            "layers", "backends"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """``{module: the package's modules it imports}`` over every file of the package."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pcw_keras"):
                for alias in node.names:  # `from pcw_keras.x import y` may import the module pcw_keras.x.y
                    candidate = f"{node.module}.{alias.name}"
                    targets.add(candidate if candidate in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name.startswith("pcw_keras")}
        graph[name] = {target for target in targets if target != name and target in modules}
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pcw_keras"


def _offenders(graph: dict[str, set[str]]) -> list[str]:
    """The imports of ``graph`` that the table does not allow."""
    allowed = {unit: below | LEAVES for unit, below in BELOW.items()}
    allowed = {unit: targets - {unit} if unit in LEAVES else targets for unit, targets in allowed.items()}
    allowed["pcw_keras"] = set()  # the root registers its classes by module name, importing nothing directly
    offenders = []
    for module, targets in sorted(graph.items()):
        source = _unit(module)
        if source not in allowed:
            offenders.append(f"{module}: a unit not in the table of tests/test_architecture.py")
            continue
        offenders += [f"{module} -> {target}" for target in sorted(targets)
                      if _unit(target) != source and _unit(target) not in allowed[source]]
    return offenders


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_every_import_between_the_packages_layers_goes_down():
    assert _offenders(_imports()) == []


def test_the_import_graph_has_no_circle():
    assert _circle(_imports()) is None


def test_the_checks_refuse_an_upward_import_and_find_a_circle():
    graph = _imports()
    assert ("pcw_keras.export.api" in graph) and _circle(graph) is None
    upward = {**graph, "pcw_keras.export.api": graph["pcw_keras.export.api"] | {"pcw_keras.runs"}}
    assert _offenders(upward) == ["pcw_keras.export.api -> pcw_keras.runs"]
    circle = {**graph, "pcw_keras.normalization": {"pcw_keras.layers"}}
    found = _circle(circle)
    assert found is not None and "pcw_keras.normalization" in found and "pcw_keras.layers" in found
    assert "pcw_keras.normalization -> pcw_keras.layers" in _offenders(circle)


def test_the_docs_name_every_unit_and_the_readme_table_follows_them():
    import re

    root = PACKAGE.parent
    architecture = (root / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [unit for unit in BELOW if not re.search(rf"\b{unit}\b", architecture)]
    assert missing == [], f"docs/architecture.md does not place {missing}"
    readme = (root / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| module | what |"):].split("\n\n", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines()[2:] if "pcw_keras" in line.split("|")[1]]
    units = [first or second for cell in first_cells
             for first, second in re.findall(r"`pcw_keras\.(\w+)`|`\.(\w+)`", cell)]
    assert units and set(units) <= set(BELOW), set(units) - set(BELOW)
    ranks = {unit: index for index, unit in enumerate(BELOW)}  # the table's order: leaves first, up to the CLI
    assert [ranks[unit] for unit in units] == sorted(ranks[unit] for unit in units), units
