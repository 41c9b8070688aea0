"""bench/bench_coco.py at a small scale: it runs, its table has every method, and its repeat
factors equal detectron2's and its workers read nothing (its exit status says both)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_coco.py"


@pytest.mark.slow
@pytest.mark.multiprocess
def test_bench_coco_small(tmp_path):
    pytest.importorskip("pycocotools")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--images", "400", "--annotations", "5000",
         "--categories", "60", "--rounds", "1", "--threshold", "0.05", "--folder", str(tmp_path),
         "--markdown", str(tmp_path / "coco.md")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    table = (tmp_path / "coco.md").read_text()
    for method in ("| fastloader |", "| pycocotools |", "| json.load |"):
        assert method in table
    assert "equal to detectron2's, exactly in float32: yes" in table
    assert "yes (0 of" not in table  # some images are repeated at t = 0.05
    assert "file reads per worker beyond the parent's one: [0, 0]" in table
    generated = list(tmp_path.glob("lvis_400_5000_60.json"))
    assert len(generated) == 1 and generated[0].stat().st_size > 100_000
