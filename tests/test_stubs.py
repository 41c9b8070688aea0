"""The hand-written stub python/fastloader/_C.pyi stays in step with the compiled module."""

import ast
import inspect
from pathlib import Path

import fastloader
from fastloader import _C


def stub_names() -> dict[str, set[str]]:
    stub = Path(fastloader.__file__).with_name("_C.pyi")
    tree = ast.parse(stub.read_text())
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"
            }
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = set()
    return names


def test_stub_lists_exactly_the_public_names_of_the_module():
    stubbed = stub_names()
    compiled = {name for name in dir(_C) if not name.startswith("_")}
    assert set(stubbed) == compiled
    for name, methods in stubbed.items():
        obj = getattr(_C, name)
        if inspect.isclass(obj):
            public = {m for m in vars(obj) if not m.startswith("_") or m == "__len__"}
            assert methods == public, name
