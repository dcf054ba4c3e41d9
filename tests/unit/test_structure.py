"""The package's shape (issue 29 item 8): no import circle anywhere in airpods (imports inside
functions count too: a lower module must not reach back up), and the orchestration takes the
runtime port it may ask, typed, not `Any`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "airpods"


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("airpods"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    graph[name].add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules}
    return {m: {d for d in deps if d in modules and d != m} for m, deps in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    top = stack.pop()
                    on.discard(top)
                    group.append(top)
                    if top == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_package_has_no_import_circle():
    assert cycles(import_graph()) == []


def test_the_circle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_three_circles_of_the_issue_are_broken():
    graph = import_graph()
    assert "airpods.cli.commands.models" not in graph["airpods.cli.commands.models_pull"]
    assert not graph["airpods.models.gguf_header"] & {"airpods.models.gguf", "airpods.models.store"}
    assert "airpods.runtime.connect" not in graph["airpods.runtime.podman_adapter"]


def test_no_signature_takes_the_runtime_as_any():
    offenders = [f"{p.relative_to(ROOT.parent)}:{i}" for p in ROOT.rglob("*.py")
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "runtime: Any" in line]
    assert offenders == []


# The layers, lowest first (docs/architecture.md): a package may import only packages of a lower
# rank (or its own). Equal ranks do not import each other.
LAYERS = {
    "errors": 0, "labels": 0, "paths": 0,
    "kinds": 1,
    "config": 2, "probes": 2, "chat": 2,
    "secrets": 3,
    "plan": 4,
    "runtime": 5, "gateway": 5,
    "models": 6, "health": 6, "hosts": 6, "bench": 6,
    "monitor": 7, "orchestrate": 7,
    "export": 8,
    "stack": 9,
    "cli": 10,
    "__main__": 11,
}


def layer_breaks(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a package of the same or a higher layer than the importer's."""
    def top(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else "airpods"

    breaks = []
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            a, b = top(module), top(dep)
            if a != b and "airpods" not in (a, b) and LAYERS[b] >= LAYERS[a]:
                breaks.append(f"{module} -> {dep}")
    return breaks


def test_every_package_has_a_layer():
    packages = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
                if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_no_lower_layer_imports_a_higher_one():
    assert layer_breaks(import_graph()) == []


def test_the_layer_check_finds_a_break():
    assert layer_breaks({"airpods.plan.x": {"airpods.cli.y"}, "airpods.cli.y": {"airpods.plan.x"}}) == \
        ["airpods.plan.x -> airpods.cli.y"]


def test_only_the_cli_imports_click_or_rich():
    outside = []
    for path in ROOT.rglob("*.py"):
        if path.relative_to(ROOT).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            outside += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("click", "rich")]
    assert outside == []


def test_no_command_module_imports_another():
    """Commands parse, call the stack and render; what two of them share lives outside cli/commands."""
    commands = {m for m in import_graph() if m.startswith("airpods.cli.commands.")}
    assert {m: sorted(d & commands) for m, d in import_graph().items() if m in commands and d & commands} == {}


def test_modules_and_functions_stay_small():
    """Modules of about 400 lines at most, functions of about 60 (docstrings count)."""
    big, long = [], []
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 420:
            big.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 70:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert (big, long) == ([], [])


def test_no_test_module_imports_another():
    """What tests share lives in builders.py, helpers.py and conftest.py, not in another subject's file."""
    found = []
    for path in (ROOT.parent / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1].startswith("test_"):
                found.append(f"{path.relative_to(ROOT.parent)}: {node.module}")
    assert found == []


def test_the_oom_file_is_gone():
    from pathlib import Path

    assert not (Path(__file__).resolve().parents[2] / "oom").exists()
