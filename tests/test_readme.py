"""The README's python code blocks run as written (issue 18 item 27): each block in a fresh
interpreter, all of them sharing one temp dir so the synthetic dataset is written once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 7  # quick start and one per capability


@pytest.fixture(scope="module")
def shared_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("readme")


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i}")
def test_readme_block_runs_as_written(index, shared_tmp):
    env = dict(os.environ, TMPDIR=str(shared_tmp), MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=shared_tmp,
    )
    assert done.returncode == 0, f"README block {index}:\n{BLOCKS[index]}\n{done.stderr[-3000:]}"
