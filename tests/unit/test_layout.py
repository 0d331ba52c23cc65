"""The package's layout (ARCHITECTURE.md, "Layers"): no import cycle between its modules, and
every import points down the layers, never up. Every import counts — at the top of a module,
under `TYPE_CHECKING` and inside functions — since each one ties the two modules together."""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "pulsarjobs"
MAX_LINES = 400

# Each module's layer, lowest first, by the first pattern its dotted name (without the leading
# `pulsarjobs.`) matches. A module imports its own layer and the layers below it.
LAYERS: list[tuple[str, str]] = [
    ("vocabulary", r"errors|retry|settings|clock"),
    ("wire", r"wire(\..+)?"),
    ("hooks", r"middleware|logs|tracing"),
    ("transport", r"transport(\..+)?"),
    ("broker", r"broker(\..+)?"),
    ("jobs", r"jobs|snooze|app_view|grouping\.options"),
    ("features", r"(scheduling|flow|workflows|outbox|grouping)(\..+)?"),
    ("operations", r"operations(\..+)?"),
    ("worker", r"worker(\..+)?"),
    ("app", r"pulsarjobs|app|calls|testing|stand_ins|loading|processes"),
    ("interfaces", r"(cli|dashboard)(\..+)?|__main__"),
]
# Imports up the layers that stay for now, each with the reason.
UPWARD: dict[tuple[str, str], str] = {}


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["pulsarjobs", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported(module: str, path: Path, modules: set[str]) -> Iterator[str]:
    """Every pulsarjobs module that `module` imports, wherever in it the import is."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _enclosing(alias.name, modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                if f"{source}.{alias.name}" in modules:
                    yield f"{source}.{alias.name}"
                else:
                    yield from _enclosing(source, modules)


def _enclosing(name: str, modules: set[str]) -> Iterator[str]:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    if name:
        yield name


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {
        module: set(imported(module, path, set(modules))) - {module}
        for module, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def layer(module: str) -> int:
    short = module.removeprefix("pulsarjobs.")
    for rank, (_name, pattern) in enumerate(LAYERS):
        if re.fullmatch(pattern, short):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "pulsarjobs.worker.feed" in graph["pulsarjobs.worker.worker"]  # at the top
    assert "pulsarjobs.app_view" in graph["pulsarjobs.worker.execution"]  # under TYPE_CHECKING
    assert "pulsarjobs.cli.main" in graph["pulsarjobs.cli"]  # `from pkg import submodule`


def test_a_cycle_is_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_itself_back() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles, each among: " + "; ".join(", ".join(c) for c in found)


def test_imports_point_down_the_layers() -> None:
    upward = sorted(
        f"{module} ({LAYERS[layer(module)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
        for module, targets in import_graph().items()
        for target in targets
        if layer(target) > layer(module)
        and (module.removeprefix("pulsarjobs."), target.removeprefix("pulsarjobs.")) not in UPWARD
    )
    assert upward == []


def test_every_module_opens_with_its_charter_and_stays_short() -> None:
    for module, path in module_names().items():
        text = path.read_text()
        assert text.startswith('"""'), f"{module} opens with no docstring"
        assert len(text.splitlines()) <= MAX_LINES, f"{module} is over {MAX_LINES} lines"
