"""Makes the test helpers (`tests.helpers`) importable from the processes tests start (spawned
DataLoader workers, scripts run with `python -m tests.helpers...`), and keeps the `gpu` marker
complete: `make gpu-check` runs `-m gpu`, so a CUDA test without it would
never run on a GPU host."""

import os

import pytest

# pytest imports the tests as the package `tests` (each folder has an __init__.py, the default
# "prepend" import mode puts the repository root on sys.path), so same-named test files in two
# folders do not clash. Child processes get the root from PYTHONPATH.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
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
