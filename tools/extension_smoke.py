"""Smoke test of an installed fastloader._C without torch: a sampler and the collate kernels on
numpy buffers, the sampler streams checked against the digests frozen in
tests/sampling/test_weighted.py.

Run by `make wheel-all` with every CPython version we claim (most have no torch build here).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import platform
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

# Same weights and seed as tests/sampling/test_weighted.py::test_frozen_stream, whose digests are
# read below.
SEED = 20261125
SAMPLER_TESTS = Path(__file__).resolve().parents[1] / "tests" / "sampling" / "test_weighted.py"


def frozen_digests() -> dict[bool, str]:
    """The FROZEN {replacement: sha256} table of tests/sampling/test_weighted.py (one copy)."""
    for node in ast.parse(SAMPLER_TESTS.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FROZEN" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise SystemExit(f"no FROZEN digests in {SAMPLER_TESTS}")


def load_extension() -> ModuleType:
    """Imports fastloader._C alone: the package's __init__ would import torch."""
    package = importlib.util.find_spec("fastloader")
    if package is None or not package.submodule_search_locations:
        raise SystemExit("fastloader is not installed in this interpreter")
    folder = Path(list(package.submodule_search_locations)[0])
    candidates = sorted(folder.glob("_C.*.so")) + sorted(folder.glob("_C.*.pyd"))
    if not candidates:
        raise SystemExit(f"no compiled _C module in {folder}")
    spec = importlib.util.spec_from_file_location("fastloader._C", candidates[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digest(indices: np.ndarray) -> str:
    return hashlib.sha256(indices.astype("<i8").tobytes()).hexdigest()


def check_samplers(ext: ModuleType) -> None:
    frozen = frozen_digests()
    weights = 1.0 / np.arange(1, 20_001)
    for threads in (1, 2):
        drawn = np.empty(10_000, dtype=np.int64)
        ext.AliasTable(weights).draw(SEED, 0, 0, drawn, 10_000, threads)
        assert digest(drawn) == frozen[True], f"alias stream, threads={threads}"
        work = np.empty(20_000, dtype=np.int64)
        ext.sample_without_replacement(weights, 10_000, SEED, 0, work, threads)
        assert digest(work[:10_000]) == frozen[False], f"keys, threads={threads}"
    try:
        ext.AliasTable(np.array([1.0, -1.0]))
    except ValueError:
        pass
    else:
        raise AssertionError("a negative weight was accepted")


def check_collate(ext: ModuleType) -> None:
    small = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    tall = np.full((2, 3, 1), 200, dtype=np.uint8)
    out = np.empty((2, 2, 3, 3), dtype=np.uint8)
    ext.pad_images([small, tall], 2, 3, 3, b"\x07", False, out.reshape(-1))
    expected = np.full((2, 2, 3, 3), 7, dtype=np.uint8)
    expected[0, :, :2, :3] = small
    expected[1, :, :3, :1] = tall
    assert np.array_equal(out, expected), "pad_images"

    boxes = [np.arange(8, dtype=np.float32).reshape(2, 4), np.ones((1, 4), np.float32)[:, ::-1]]
    packed = np.empty((3, 4), dtype=np.float32)
    ext.pack_arrays(boxes, 4, packed.reshape(-1).view(np.uint8), 2)
    assert np.array_equal(packed, np.concatenate(boxes)), "pack_arrays"

    # counts [B] | offsets [B+1] | image_sizes [B, 2] | batch_index [sum counts]
    block = np.empty(3 + 4 + 6 + 3, dtype=np.int64)
    ext.write_index_block([2, 0, 1], [4, 5, 6, 7, 8, 9], block)
    assert block.tolist() == [2, 0, 1, 0, 2, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 2], "index block"


def main() -> None:
    ext = load_extension()
    check_samplers(ext)
    check_collate(ext)
    print(f"extension ok: CPython {platform.python_version()} {ext.__file__}", file=sys.stdout)


if __name__ == "__main__":
    main()
