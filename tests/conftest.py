"""Makes the test helpers in this folder importable (also from DataLoader spawn workers), and
keeps the `gpu` marker complete: `make gpu-check` runs `-m gpu`, so a CUDA test without it would
never run on a GPU host."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [os.path.dirname(__file__)]
    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if item.get_closest_marker("gpu") is None
        and any(
            "CUDA" in str(mark.kwargs.get("reason", "")) for mark in item.iter_markers("skipif")
        )
    ]
    if unmarked:
        raise pytest.UsageError(f"tests that skip without CUDA lack @pytest.mark.gpu: {unmarked}")
