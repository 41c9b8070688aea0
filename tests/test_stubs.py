"""python/fastloader/_C.pyi stays in step with the compiled module: names by mypy's stubtest,
signatures (parameter names, order, defaults, argument kinds, return kinds) against the
signature line pybind11 writes into each docstring, which stubtest cannot read."""

from __future__ import annotations

import ast
import inspect
import os
import re
import site
import subprocess
import sys
from pathlib import Path

import pytest

import fastloader
from fastloader import _C

STUB = Path(fastloader.__file__).with_name("_C.pyi")


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text())


@pytest.mark.slow
def test_stubtest_finds_no_difference():
    package_parent = str(Path(fastloader.__file__).resolve().parent.parent)
    env = dict(os.environ)
    site_dirs = {
        str(Path(p).resolve()) for p in site.getsitepackages() + [site.getusersitepackages()]
    }
    if package_parent not in site_dirs:  # an editable or source-tree install: show mypy the stub
        env["MYPYPATH"] = package_parent
    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "fastloader._C"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    errors = [block for block in run.stdout.split("error: ")[1:] if block.strip()]
    # pybind11 classes have pybind11_type as metaclass, which a stub cannot spell usefully.
    real = [e for e in errors if not ("metaclass differs" in e and "pybind11_type" in e)]
    assert not real, "\n".join(real)
    assert "checked 1 module" in run.stdout, run.stdout + run.stderr


# ---------------------------------------------------------------- signatures from docstrings


def _runtime_signature(obj: object, name: str) -> ast.FunctionDef:
    """pybind11's first docstring line, e.g. ``draw(self: X, seed: int, ...) -> None``, parsed
    as a Python ``def``."""
    doc = (obj.fget.__doc__ if isinstance(obj, property) else obj.__doc__) or ""
    line = doc.strip().splitlines()[0]
    if line.startswith("("):  # a property getter: "(arg0: X) -> int"
        line = name + line
    assert line.startswith(name + "("), f"{name}: no signature line in its docstring: {line!r}"
    function = ast.parse(f"def {line}: ...").body[0]
    assert isinstance(function, ast.FunctionDef)
    return function


def _kind(node: ast.expr | None, aliases: dict[str, ast.expr]) -> str:
    """A type annotation reduced to what both sides can spell: int, float, ndarray[dtype], ..."""
    if node is None:
        return "None"
    text = ast.unparse(node)
    if text in aliases:
        return _kind(aliases[text], aliases)
    if isinstance(node, ast.BinOp):  # a union: pybind11 3 writes SupportsInt | SupportsIndex
        kinds = {_kind(node.left, aliases), _kind(node.right, aliases)}
        kinds.discard("index")
        return "|".join(sorted(kinds))
    head = ast.unparse(node.value) if isinstance(node, ast.Subscript) else text
    head = head.rsplit(".", 1)[-1]
    if head in ("ndarray", "NDArray"):
        dtype = (
            ast.unparse(node.slice).rsplit(".", 1)[-1] if isinstance(node, ast.Subscript) else ""
        )
        return f"ndarray[{dtype}]" if dtype else "ndarray"
    return {
        "SupportsInt": "int",
        "SupportsIndex": "index",
        "SupportsFloat": "float",
        "Sequence": "sequence",
        "list": "sequence",
        "List": "sequence",
        "Dict": "dict",
    }.get(head, head)


def _same_kind(stub: str, runtime: str) -> bool:
    # pybind11 names an array argument's dtype only in return types.
    return stub == runtime or (runtime == "ndarray" and stub.startswith("ndarray["))


def _stubbed_functions() -> list[tuple[str, ast.FunctionDef, object]]:
    tree = _stub_tree()
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found.append((node.name, node, getattr(_C, node.name, None)))
        elif isinstance(node, ast.ClassDef):
            cls = getattr(_C, node.name, None)
            for member in node.body:
                if isinstance(member, ast.FunctionDef):
                    runtime = inspect.getattr_static(cls, member.name, None)
                    found.append((f"{node.name}.{member.name}", member, runtime))
    return found


def _aliases() -> dict[str, ast.expr]:
    aliases: dict[str, ast.expr] = {}
    for node in _stub_tree().body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            aliases[node.targets[0].id] = node.value
    return aliases


@pytest.mark.parametrize("qualname", [q for q, _, _ in _stubbed_functions()])
def test_stub_signature_matches_the_compiled_one(qualname):
    _, stub, runtime = next(entry for entry in _stubbed_functions() if entry[0] == qualname)
    assert runtime is not None, f"{qualname} is in the stub but not in the compiled module"
    compiled = _runtime_signature(runtime, stub.name)
    aliases = _aliases()
    stub_args, compiled_args = stub.args.args, compiled.args.args
    if "." in qualname:  # methods: pybind11 names `self` (properties: arg0)
        stub_args, compiled_args = stub_args[1:], compiled_args[1:]
    assert [a.arg for a in stub_args] == [a.arg for a in compiled_args], "parameter names"
    stub_defaults = [ast.unparse(d) for d in stub.args.defaults]
    compiled_defaults = [ast.unparse(d) for d in compiled.args.defaults]
    assert stub_defaults == compiled_defaults, "defaults"
    for stub_arg, compiled_arg in zip(stub_args, compiled_args, strict=False):
        stub_kind = _kind(stub_arg.annotation, aliases)
        compiled_kind = _kind(compiled_arg.annotation, aliases)
        assert _same_kind(stub_kind, compiled_kind), (
            f"{stub_arg.arg}: {stub_kind} vs {compiled_kind}"
        )
    stub_return, compiled_return = _kind(stub.returns, aliases), _kind(compiled.returns, aliases)
    assert _same_kind(stub_return, compiled_return), f"returns {stub_return} vs {compiled_return}"


def test_kind_reduction_tells_types_apart():
    # The comparison above can fail: the reduction keeps int, float, arrays and dtypes apart.
    def kind(text: str) -> str:
        return _kind(ast.parse(text, mode="eval").body, {})

    assert kind("typing.SupportsInt | typing.SupportsIndex") == kind("int") == "int"
    assert kind("typing.SupportsFloat | typing.SupportsIndex") == "float"
    assert kind("numpy.typing.NDArray[numpy.float64]") == kind("npt.NDArray[np.float64]")
    assert kind("npt.NDArray[np.int64]") != kind("npt.NDArray[np.float64]")
    assert not _same_kind("int", "float") and not _same_kind("bytes", "bool")
    assert re.fullmatch(r"ndarray\[float64\]", kind("npt.NDArray[np.float64]"))
