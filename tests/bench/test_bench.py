"""`python -m fastloader.bench --quick` (shrunk further here) writes every section, with spreads"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastloader import DetectionCollate, SyntheticDetection
from fastloader.bench import loaders as bench_loaders
from fastloader.bench import main_job as bench


@pytest.mark.multiprocess
@pytest.mark.slow
def test_quick_bench_writes_every_section(tmp_path):
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "fastloader.bench", "--quick", "--no-progress",
        "--out", str(out), "--root", str(tmp_path / "data"),
        "--num-images", "8", "--image-size", "48", "--batch-size", "4",
        "--sampler-n", "100000", "--seconds", "0.2", "--rounds", "3",
        "--candidates", "0", "1", "--annotations", "50",
    ]  # fmt: skip
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    markdown = (out / "latest.md").read_text()
    for heading in (
        "## Summary: headline ratios",
        "## Sampler: WeightedRandomSampler vs FastWeightedSampler",
        "## Collate: detection_collate vs fast_detection_collate",
        "## End to end: DataLoader batches/s by num_workers, against the decode floor",
        "## Annotations: labels, weights and sizes from the XML alone",
    ):
        assert heading in markdown
        assert heading.replace("## ", "== ") + " ==" in done.stdout  # also printed
    assert "`python -m fastloader.bench --quick" in markdown and " UTC: " in markdown
    for n in ("8", "100,000"):
        assert f"| {n} | epoch as a tensor |" in markdown
        assert f"| {n} | build the sampler |" in markdown
    assert all(f"| class_{k:02d} |" in markdown for k in range(20))
    collate = markdown.split("## Collate")[1].split("## End to end")[0]
    collate_rows = [line for line in collate.splitlines() if line.startswith(("| same", "| var"))]
    assert len(collate_rows) == 2 and all(r.rstrip(" |").endswith(")") for r in collate_rows)
    # every end-to-end row: both formats, each num_workers, rates with % of floor, ratio spreads
    end_to_end = markdown.split("## End to end")[1].split("## Annotations")[0]
    rows = [line for line in end_to_end.splitlines() if line.startswith(("| JPEG", "| .npy"))]
    assert len(rows) == 4
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert all("%)" in cell for cell in cells[3:6])
        assert all(cell.endswith(")") and "x (" in cell for cell in cells[6:8])
    assert "tune_num_workers picks num_workers=" in end_to_end
    cuda_line = "not measured: no CUDA device"
    assert (cuda_line in end_to_end) != torch.cuda.is_available()
    summary = markdown.split("## Summary")[1].split("## Sampler")[0]
    assert "full stack" in summary and "collate only, stock dataset" in summary
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in done.stdout
    else:
        assert (out / "latest.png").stat().st_size > 1000


def test_paired_timing_gives_one_ratio_per_repeat():
    calls = []
    timing = bench.paired(lambda: calls.append("s"), lambda: calls.append("f"), repeats=4)
    assert len(timing.ratios) == 4 and all(r > 0 for r in timing.ratios)
    assert calls[0] == "s" and "f" in calls
    assert bench.spread([1.0, 3.0, 2.0]) == "2.00x (1.00-3.00)"
    assert bench.spread([]) == "-"


def test_stock_dataset_gives_the_same_samples_as_voc_detection(tmp_path):
    for image_format in ("jpeg", "npy"):
        fast = SyntheticDetection(
            tmp_path / "d", 5, min_size=20, max_size=30, image_format=image_format
        )
        stock = bench_loaders.StockVOC(fast)
        for index in range(5):
            (image_s, target_s), (image_f, target_f) = stock[index], fast[index]
            assert torch.equal(image_s, image_f) and image_s.shape == image_f.shape
            assert torch.equal(target_s, target_f) and target_s.dtype == torch.float32


@pytest.mark.parametrize("image_format", ["jpeg", "npy"])
def test_recommended_collate_matches_the_stock_collate_in_workers(tmp_path, image_format):
    fast = SyntheticDetection(
        tmp_path / "d", 8, min_size=24, max_size=24, image_format=image_format
    )
    collate = bench_loaders.recommended_collate(image_format, shared_ring=True)
    assert isinstance(collate, DetectionCollate)
    loader = torch.utils.data.DataLoader(fast, batch_size=4, num_workers=2, collate_fn=collate)
    stock = torch.utils.data.DataLoader(
        fast, batch_size=4, collate_fn=bench_loaders.detection_collate
    )
    for got, expected in zip(loader, stock, strict=False):
        assert torch.equal(got.images, expected[0])
        assert got.images.is_contiguous(
            memory_format=torch.channels_last if image_format == "jpeg" else torch.contiguous_format
        )
        assert [t.tolist() for t in got.per_image("target")] == [t.tolist() for t in expected[1]]


def test_decode_floor_counts_samples_from_every_process():
    class Slow(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, index):
            import time

            time.sleep(0.01)
            return index

    rate = bench_loaders.decode_floor(Slow(), seconds=0.3, processes=2)
    assert 60 < rate < 220  # two processes of at most 100 samples/s each


def test_detectron2_style_padding_reference():
    images = [torch.ones(3, 5, 7, dtype=torch.uint8), torch.full((3, 9, 4), 2, dtype=torch.uint8)]
    padded = bench.pad_like_detectron2(images, 8)
    assert padded.shape == (2, 3, 16, 8) and padded.dtype == torch.uint8
    assert padded[0, :, :5, :7].eq(1).all() and padded[0, :, 5:].eq(0).all()
    assert padded[1, :, :9, :4].eq(2).all() and padded[1, :, :, 4:].eq(0).all()
    assert np.array_equal(padded[1, 0, :9, :4].numpy(), np.full((9, 4), 2, dtype=np.uint8))


def test_ring_only_compares_the_set_up_with_and_without_the_ring(tmp_path):
    out = tmp_path / "results"
    code = bench.main(
        ["--ring-only", "--num-images", "6", "--image-size", "32", "--seconds", "0.1",
         "--rounds", "3", "--candidates", "0", "1", "--root", str(tmp_path / "d"),
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    markdown = (out / "ring.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith(("| jpeg", "| npy"))]
    assert len(rows) == 4 and all(row.rstrip(" |").endswith(")") for row in rows)
    assert "'fallbacks': 0" in markdown and "3 interleaved rounds" in markdown


def test_endless_batches_run_on_past_the_end_of_an_epoch():
    loader = torch.utils.data.DataLoader(range(5), batch_size=2)
    batches = bench_loaders.endless_batches(loader)
    firsts = [next(batches)[0].item() for _ in range(7)]
    assert firsts == [0, 2, 4, 0, 2, 4, 0]


def test_endless_batches_refuse_an_empty_loader():
    with pytest.raises(ValueError, match="no batch"):
        next(bench_loaders.endless_batches([]))
