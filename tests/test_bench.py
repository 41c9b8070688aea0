"""`python -m fastloader.bench --quick` (shrunk further here) writes every section and a verdict."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.multiprocess
@pytest.mark.slow
def test_quick_bench_writes_every_section(tmp_path):
    out = tmp_path / "results"
    command = [
        sys.executable,
        "-m",
        "fastloader.bench",
        "--quick",
        "--no-progress",
        "--out",
        str(out),
        "--root",
        str(tmp_path / "data"),
        "--num-images",
        "8",
        "--image-size",
        "48",
        "--batch-size",
        "4",
        "--sampler-n",
        "100000",
        "--seconds",
        "0.3",
        "--rounds",
        "1",
        "--candidates",
        "0",
        "1",
    ]
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    markdown = (out / "latest.md").read_text()
    for heading in (
        "## Sampler: WeightedRandomSampler vs FastWeightedSampler",
        "## Collate: detection_collate vs fast_detection_collate",
        "## End to end: DataLoader batches/s by num_workers",
    ):
        assert heading in markdown
        assert heading.replace("## ", "== ") + " ==" in done.stdout  # also printed
    assert "`python -m fastloader.bench --quick" in markdown
    # sampler rows at both sizes, and the class histogram of every class
    for n in ("8", "100,000"):
        assert f"| {n} | epoch as a tensor |" in markdown
        assert f"| {n} | build the sampler |" in markdown
    assert all(f"| class_{k:02d} |" in markdown for k in range(20))
    # the collate section measured both cases, each with a ratio
    collate = markdown.split("## Collate")[1].split("## End to end")[0]
    collate_rows = [line for line in collate.splitlines() if line.startswith(("| same", "| var"))]
    assert len(collate_rows) == 2 and all(r.rstrip(" |").endswith("x") for r in collate_rows)
    # one end-to-end row per candidate, with a ratio
    end_to_end = markdown.split("## End to end")[1]
    comparison = end_to_end.split("Stock:")[0]
    rows = [line for line in comparison.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert len(rows) == 2 and all(row.split("|")[4].strip().endswith("x") for row in rows)
    assert "tune_num_workers picks num_workers=" in end_to_end
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in done.stdout
    else:
        assert (out / "latest.png").stat().st_size > 1000


def test_collate_section_times_both_cases_with_the_native_collate():
    from fastloader import bench

    section = bench.collate_section(repeats=1, batch_size=2, progress=bench._Progress(2, False))
    rows = [
        line
        for line in section.markdown().splitlines()
        if line.startswith("| same size") or line.startswith("| variable size")
    ]
    assert len(rows) == 2 and all(row.rstrip(" |").endswith("x") for row in rows)


def test_detectron2_style_padding_reference():
    import torch

    from fastloader.bench import pad_like_detectron2

    images = [torch.ones(3, 5, 7, dtype=torch.uint8), torch.full((3, 9, 4), 2, dtype=torch.uint8)]
    padded = pad_like_detectron2(images, 8)
    assert padded.shape == (2, 3, 16, 8) and padded.dtype == torch.uint8
    assert padded[0, :, :5, :7].eq(1).all() and padded[0, :, 5:].eq(0).all()
    assert padded[1, :, :9, :4].eq(2).all() and padded[1, :, :, 4:].eq(0).all()
