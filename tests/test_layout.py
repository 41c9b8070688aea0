"""The package layout's rules (ARCHITECTURE.md): imports point one way between subpackages,
nothing in the product imports bench, no module imports another subpackage's private name, and
every public name is still importable from the package root."""

from __future__ import annotations

import ast
from pathlib import Path

import fastloader

PACKAGE = Path(fastloader.__file__).resolve().parent
# Which subpackages each may import (besides itself and the compiled _C).
ALLOWED = {
    "_util": set(),
    "io": {"_util"},
    "transforms": {"_util", "io"},
    "datasets": {"_util", "io", "transforms"},
    "sampling": {"_util"},
    "collate": {"_util", "io", "transforms"},
    "tuning": {"_util"},
    "bench": {"_util", "io", "datasets", "sampling", "collate", "tuning", "transforms"},
    "": {"_util", "io", "datasets", "sampling", "collate", "tuning", "transforms"},  # root
}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module under fastloader, imported names) of every relative import in a file."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    package = list(parts[:-1]) if parts[-1] != "__init__" else list(parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            module = [*base, *(node.module.split(".") if node.module else [])]
            found.append((".".join(module), [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fastloader."):
            found.append((node.module[len("fastloader.") :], [a.name for a in node.names]))
    return found


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_point_one_way_and_nothing_imports_bench():
    wrong = []
    for path in _files():
        parts = path.relative_to(PACKAGE).parts
        owner = parts[0] if len(parts) > 1 else ""
        for module, names in _imports(path):
            if module == "":  # the package root: only the compiled module and the version
                if set(names) - {"_C", "__version__"}:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {names} from the root")
                continue
            target = module.split(".")[0]
            if target != owner and target not in ALLOWED[owner]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module} {names}")
    assert wrong == []


def test_no_module_imports_another_subpackages_private_names():
    wrong = []
    for path in _files():
        parts = path.relative_to(PACKAGE).parts
        owner = parts[0] if len(parts) > 1 else ""
        for module, names in _imports(path):
            segments = module.split(".") if module else []
            if not segments or segments[0] in (owner, "_util", "_C"):
                continue  # its own subpackage, the shared helpers, the compiled module
            private = [s for s in segments[1:] if s.startswith("_")]
            private += [n for n in names if n.startswith("_") and n != "__version__"]
            if private:
                wrong.append(f"{path.relative_to(PACKAGE)}: {module} {private}")
    assert wrong == []


def test_every_public_name_is_importable_from_the_root_and_its_subpackage():
    before_the_move = {
        "FastWeightedSampler", "FastWeightedBatchSampler", "DistributedWeightedSampler",
        "DistributedWeightedBatchSampler", "broadcast_seed", "RepeatFactorSampler",
        "ClassAwareSampler", "AspectRatioGroupedBatchSampler", "create_aspect_ratio_groups",
        "repeat_factors", "class_balanced_weights", "power_weights", "image_weights",
        "class_image_counts", "DetectionCollate", "DetectionBatch", "fast_detection_collate",
        "buffer_pool_stats", "set_buffer_pool_limit", "clear_buffer_pool", "SharedRing",
        "SyntheticDetection", "VOCDetection", "tune_num_workers", "TuneReport",
        "WorkerMeasurement", "SampleLoadError",
    }  # fmt: skip
    assert before_the_move <= set(fastloader.__all__)
    for name in fastloader.__all__:
        assert getattr(fastloader, name).__module__.startswith("fastloader.")
    from fastloader.collate import DetectionBatch, DetectionCollate, fast_detection_collate
    from fastloader.datasets import SyntheticDetection, VOCDetection

    assert fastloader.DetectionCollate is DetectionCollate
    assert fastloader.DetectionBatch is DetectionBatch
    assert fastloader.fast_detection_collate is fast_detection_collate
    assert fastloader.VOCDetection is VOCDetection
    assert fastloader.SyntheticDetection is SyntheticDetection
