"""`python -m fastloader.bench --quick` (shrunk further here) writes every section and a verdict."""

from __future__ import annotations

import os
import subprocess
import sys


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
    # the collate section either measured or says why it did not
    collate = markdown.split("## Collate")[1].split("## End to end")[0]
    assert (
        "skipped: fast_detection_collate is not in this build" in collate or "speed-up" in collate
    )
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


def test_collate_section_measures_when_the_collate_is_present(monkeypatch):
    # Stand-ins with the issue-3 API, so this section's code runs before the real collate lands.
    from fastloader import bench

    calls = []

    class PaddingCollate:
        def __init__(self, size_divisibility=0):
            self.size_divisibility = size_divisibility

        def __call__(self, batch):
            calls.append(("padded", len(batch)))
            return bench.pad_like_detectron2([image for image, _ in batch], self.size_divisibility)

    def stacking_collate(batch):
        calls.append(("stacked", len(batch)))
        return bench.detection_collate(batch)

    monkeypatch.setattr(bench, "fast_detection_collate", stacking_collate)
    monkeypatch.setattr(bench, "DetectionCollate", PaddingCollate)
    section = bench.collate_section(repeats=1, batch_size=2, progress=bench._Progress(2, False))
    markdown = section.markdown()
    assert "skipped" not in markdown
    rows = [
        line
        for line in markdown.splitlines()
        if line.startswith("| same size") or line.startswith("| variable size")
    ]
    assert len(rows) == 2 and all(row.rstrip(" |").endswith("x") for row in rows)
    assert ("stacked", 2) in calls and ("padded", 2) in calls


def test_detectron2_style_padding_reference():
    import torch

    from fastloader.bench import pad_like_detectron2

    images = [torch.ones(3, 5, 7, dtype=torch.uint8), torch.full((3, 9, 4), 2, dtype=torch.uint8)]
    padded = pad_like_detectron2(images, 8)
    assert padded.shape == (2, 3, 16, 8) and padded.dtype == torch.uint8
    assert padded[0, :, :5, :7].eq(1).all() and padded[0, :, 5:].eq(0).all()
    assert padded[1, :, :9, :4].eq(2).all() and padded[1, :, :, 4:].eq(0).all()
