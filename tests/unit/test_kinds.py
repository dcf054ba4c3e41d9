"""Service kinds (airpods/kinds/): one module each behind one interface. Nothing outside the kinds
package and the schema compares a kind's name, and a new kind is one module plus its registration."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from airpods import kinds
from airpods.kinds import Check, Confine, ServiceKind

ROOT = Path(__file__).resolve().parents[2] / "airpods"
NAMES = set(kinds.KINDS)


def _is_kind(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "kind") \
        or (isinstance(node, ast.Name) and node.id == "kind") \
        or (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "kind")


def _names_a_kind(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in NAMES
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(_names_a_kind(e) for e in node.elts)


def kind_comparisons(tree: ast.AST) -> list[int]:
    """Lines where a kind is compared with a kind's name (==, !=, in, not in)."""
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
            and any(_is_kind(a) and _names_a_kind(b) or _is_kind(b) and _names_a_kind(a)
                    for a, b in zip([node.left, *node.comparators], node.comparators, strict=False))]


def test_no_module_outside_the_kinds_and_the_schema_compares_a_kind_name():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("kinds/") or rel == "config/schema.py":
            continue
        found += [f"{rel}:{line}" for line in kind_comparisons(ast.parse(path.read_text(encoding="utf-8")))]
    assert found == []


def test_the_comparison_finder_finds_one():
    code = 'if spec.kind == "gateway": pass\nif r["kind"] in ("ollama", "x"): pass\nif kind != "toy": pass'
    assert kind_comparisons(ast.parse(code)) == [1, 2]


def _toy_check(c: Check) -> str:
    return f"toy-check {c.port} {c.timeout:g}"


TOY = ServiceKind("toy", "a toy", check=_toy_check, confine=Confine(True, ("/scratch",), True), top=True)


@pytest.fixture
def toy():
    kinds.register(TOY)
    yield TOY
    kinds.KINDS.pop("toy")


def test_a_toy_kind_is_one_module_and_its_registration(toy, cli, write_config):
    """The schema takes its name; resolve, its health check, its hardening and its URL follow its interface."""
    path = write_config("""
[services.thing]
kind = "toy"
image = "localhost/toy:1"
ports = [{ host = 18555, container = 7000 }]
health = { interval = 30 }
""")
    result = cli("--config", path, "config", "render", "thing", "--json")
    assert result.code == 0, result.text
    data = json.loads(result.out)
    assert data["kind"] == "toy" and data["health"]["check"] == "toy-check 7000 10"
    assert data["security"]["read_only"] and data["security"]["tmpfs"] == {"/scratch": "64m"}
    assert data["url"] == "http://127.0.0.1:18555"


def test_a_kind_not_registered_is_refused_by_the_schema(cli, write_config):
    path = write_config('[services.x]\nkind = "toy"\nimage = "localhost/toy:1"\n')
    result = cli("--config", path, "config", "validate")
    assert result.code == 2 and "services.x.kind" in result.text and "llamacpp" in result.text
