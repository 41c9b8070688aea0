"""Opening a COCO-format file at LVIS scale: COCODetection against pycocotools.COCO, in one run.

    python bench/bench_coco.py                  # LVIS v1 train scale: 100k images, 1.27M
                                                # annotations with polygons, 1,203 categories
    python bench/bench_coco.py --quick          # a tenth of that
    python bench/bench_coco.py --markdown bench/results/coco.md

The file is generated once under the temp directory (never the repository), reused while its
parameters match. Each measurement runs in a fresh process that imports everything first, then
times the open and reads the peak resident-memory growth from /proc (VmHWM, reset after the
imports): COCODetection(image_root, path) (the native reader: index built, classes resolved),
pycocotools.COCO(path) (json.load + its per-annotation index dicts) and json.load alone. Rounds
are interleaved (the order rotates each round); medians with min-max spread.

Then, in this process: LVIS repeat factors (t = 0.001) from COCODetection.labels() through
fastloader.repeat_factors against detectron2's repeat_factors_from_category_frequency
(reproduced below) on the same annotations, compared exactly as float32; and the dataset in a
DataLoader with 2 fork workers, counting the file reads each worker makes (0 expected).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rss_probe import RSS_HELPERS  # noqa: E402
from fastloader import COCODetection, repeat_factors  # noqa: E402
from fastloader.datasets import coco  # noqa: E402

# -- the file -----------------------------------------------------------------------------------


def generate(path: Path, num_images: int, num_annotations: int, num_categories: int) -> None:
    """An LVIS-shaped file: Zipf-distributed categories with LVIS frequency groups, 1 to 3
    polygons of 6 to 40 points per annotation (coordinates with 2 decimals, as LVIS writes them),
    images named by coco_url with LVIS's per-image category lists."""
    rng = np.random.default_rng(0)
    zipf = 1.0 / np.arange(1, num_categories + 1) ** 1.1
    categories = rng.choice(num_categories, size=num_annotations, p=zipf / zipf.sum()) + 1
    images = rng.integers(0, num_images, size=num_annotations) + 1
    # A pool of polygon texts: parsing cost is the same whether a text repeats or not.
    pool = []
    for _ in range(4096):
        parts = []
        for _ in range(int(rng.integers(1, 4))):
            points = rng.uniform(0, 640, size=2 * int(rng.integers(6, 41)))
            parts.append("[" + ",".join(f"{v:.2f}" for v in points) + "]")
        pool.append("[" + ",".join(parts) + "]")
    picks = rng.integers(0, len(pool), size=num_annotations)
    boxes = rng.uniform(1, 300, size=(num_annotations, 4)).round(2)
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write('{"info": {"description": "fastloader bench, LVIS-shaped"}, "licenses": [],')
        out.write('"images": [')
        for i in range(1, num_images + 1):
            out.write(
                ("," if i > 1 else "")
                + f'{{"date_captured": "2013-11-14 16:28:13", "neg_category_ids": '
                f"[{rng.integers(1, num_categories + 1)}], "
                f'"id": {i}, "license": 1, "height": 480, "width": 640, "flickr_url": '
                f'"http://farm4.staticflickr.com/x/{i}.jpg", "coco_url": '
                f'"http://images.cocodataset.org/train2017/{i:012d}.jpg", '
                f'"not_exhaustive_category_ids": []}}'
            )
        out.write('], "annotations": [')
        chunk = []
        for j in range(num_annotations):
            x, y, w, h = boxes[j]
            chunk.append(
                f'{{"area": {w * h:.2f}, "id": {j + 1}, "segmentation": {pool[picks[j]]}, '
                f'"image_id": {images[j]}, "bbox": [{x}, {y}, {w}, {h}], '
                f'"category_id": {categories[j]}}}'
            )
            if len(chunk) == 10000:
                out.write(("," if j >= 10000 else "") + ",".join(chunk))
                chunk = []
        if chunk:
            out.write(("," if num_annotations > len(chunk) else "") + ",".join(chunk))
        out.write('], "categories": [')
        groups = np.array(["f", "c", "r"])[
            np.minimum(np.arange(num_categories) * 3 // num_categories, 2)
        ]
        out.write(
            ",".join(
                f'{{"frequency": "{groups[c]}", "id": {c + 1}, "synset": "s{c}.n.01", '
                f'"image_count": 0, "instance_count": 0, "synonyms": ["c{c}"], '
                f'"def": "category {c}", "name": "category_{c}"}}'
                for c in range(num_categories)
            )
        )
        out.write("]}")
    tmp.rename(path)


# -- one measurement, in a fresh process --------------------------------------------------------

_PROBE = (
    RSS_HELPERS
    + r"""
import contextlib, io, json, sys, time
import fastloader
from fastloader import COCODetection
from pycocotools.coco import COCO
method, path = sys.argv[1], sys.argv[2]
before = status("VmRSS:")
reset_peak()
start = time.perf_counter()
if method == "fastloader":
    result = COCODetection("/nonexistent", path)
elif method == "pycocotools":
    with contextlib.redirect_stdout(io.StringIO()):  # its progress prints
        result = COCO(path)
else:
    with open(path, "rb") as f:
        result = json.load(f)
elapsed = time.perf_counter() - start
print(elapsed, status("VmHWM:") - before)
"""
)

METHODS = ("fastloader", "pycocotools", "json.load")


def measure(method: str, path: Path) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, method, str(path)], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{out.stderr}")
    seconds, grown = out.stdout.split()
    return float(seconds), int(grown) / 2**20


# -- detectron2's repeat factors, reproduced ----------------------------------------------------


def detectron2_repeat_factors(dataset_dicts: list[dict], repeat_thresh: float) -> torch.Tensor:
    """RepeatFactorTrainingSampler.repeat_factors_from_category_frequency
    (detectron2/data/samplers/distributed_sampler.py): f(c) = images holding c / images,
    r(c) = max(1, sqrt(t / f(c))), r(I) = max over I's categories (1.0 for none), float32."""
    category_freq: dict[int, float] = defaultdict(int)
    for record in dataset_dicts:
        for cat_id in {ann["category_id"] for ann in record["annotations"]}:
            category_freq[cat_id] += 1
    num_images = len(dataset_dicts)
    for k, v in category_freq.items():
        category_freq[k] = v / num_images
    category_rep = {c: max(1.0, math.sqrt(repeat_thresh / f)) for c, f in category_freq.items()}
    factors = [
        max({category_rep[ann["category_id"]] for ann in record["annotations"]}, default=1.0)
        for record in dataset_dicts
    ]
    return torch.tensor(factors, dtype=torch.float32)


class _LoadsProbe(Dataset):
    """Item i: (worker pid, native file reads in that process, objects of image i)."""

    def __init__(self, dataset: COCODetection) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> tuple[int, int, int]:
        return os.getpid(), coco.index_reads(), len(self.dataset.annotation(index)["labels"])


def spread(values: list[float], digits: int) -> str:
    low, high = min(values), max(values)
    return f"{statistics.median(values):.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=1_270_000)
    parser.add_argument("--categories", type=int, default=1203)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.001, help="repeat-factor t (LVIS's)")
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of the images and annotations"
    )
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "fastloader_bench"))
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.images //= 10
        args.annotations //= 10
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"lvis_{args.images}_{args.annotations}_{args.categories}.json"
    if not path.exists():
        start = time.perf_counter()
        generate(path, args.images, args.annotations, args.categories)
        print(f"generated {path} in {time.perf_counter() - start:.0f} s")
    size_mb = path.stat().st_size / 2**20
    print(f"{path}: {size_mb:.0f} MiB, {args.images} images, {args.annotations} annotations, "
          f"{args.categories} categories")  # fmt: skip

    times: dict[str, list[float]] = {m: [] for m in METHODS}
    memory: dict[str, list[float]] = {m: [] for m in METHODS}
    for round_index in range(args.rounds):
        order = METHODS[round_index % 3 :] + METHODS[: round_index % 3]
        for method in order:
            seconds, grown = measure(method, path)
            times[method].append(seconds)
            memory[method].append(grown)
            print(f"  round {round_index + 1} {method:12s} {seconds:7.2f} s  +{grown:7.0f} MiB")

    base_time = statistics.median(times["pycocotools"])
    base_memory = statistics.median(memory["pycocotools"])
    lines = [
        f"Open + index of a {size_mb:.0f} MiB COCO-format file ({args.images} images, "
        f"{args.annotations} annotations with polygons, {args.categories} categories), "
        f"medians of {args.rounds} interleaved rounds (min-max):",
        "",
        "| method | seconds | peak RSS growth (MiB) | time vs pycocotools "
        "| memory vs pycocotools |",
        "|---|---|---|---|---|",
    ]
    for method in METHODS:
        t, m = statistics.median(times[method]), statistics.median(memory[method])
        lines.append(
            f"| {method} | {spread(times[method], 2)} | {spread(memory[method], 0)} | "
            f"{base_time / t:.1f}x faster | {m / base_memory:.2f}x |"
        )

    # Repeat factors against detectron2's, on the same annotations.
    dataset = COCODetection(folder, path)
    ours = torch.from_numpy(
        repeat_factors(dataset.labels(), args.threshold, num_classes=dataset.num_classes)
    )
    with open(path, "rb") as f:
        data = json.load(f)
    records = {image["id"]: {"annotations": []} for image in data["images"]}
    for ann in data["annotations"]:
        records[ann["image_id"]]["annotations"].append(ann)
    del data
    expected = detectron2_repeat_factors(list(records.values()), args.threshold)
    equal = torch.equal(ours.to(torch.float32), expected)
    repeated = int((expected > 1).sum())
    lines += ["", f"Repeat factors (t = {args.threshold}) equal to detectron2's, exactly in "
              f"float32: {'yes' if equal else 'NO'} ({repeated} of {len(expected)} "
              f"images repeated, max {float(expected.max()):.3f})."]  # fmt: skip

    # Two fork workers: the index is inherited, never read again.
    parent = coco.index_reads()
    loader = DataLoader(_LoadsProbe(dataset), batch_size=None, num_workers=2,
                        multiprocessing_context="fork")  # fmt: skip
    start = time.perf_counter()
    seen = list(loader)
    elapsed = time.perf_counter() - start
    workers = sorted({pid for pid, _, _ in seen})
    extra = {pid: max(loads for p, loads, _ in seen if p == pid) - parent for pid in workers}
    lines += [f"DataLoader with 2 fork workers: {len(workers)} workers served {len(seen)} items "
              f"in {elapsed:.2f} s, file reads per worker beyond the parent's one: "
              f"{sorted(extra.values())}."]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        command = "python bench/bench_coco.py" + (" --quick" if args.quick else "")
        Path(args.markdown).write_text(f"# COCO reader\n\n`{command}`\n\n{text}\n")
    return 0 if equal and all(v == 0 for v in extra.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
