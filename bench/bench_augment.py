"""Detection augmentation on one core: fastloader's retinaface(640) preset (fused: only the
crop's rectangle decoded, then the native augment; and the per-sample call on a whole decode)
against Pytorch_Retinaface's way (cv2.imread + preproc(640, (104, 117, 123))) on the same
~1024-wide JPEGs, with the whole-image decode alone as the floor.

    .venv/bin/python bench/bench_augment.py [--images 24] [--rounds 5] [--markdown out.md]
    .venv/bin/python bench/bench_augment.py --end-to-end [--images 256] [--rounds 3] \
        [--markdown bench/results/augment_end_to_end.md]

--end-to-end: whole DataLoaders on a synthetic WIDER-FACE-layout folder (1024-wide JPEGs, under
the temp directory), num_workers=2, batch 32, 640x640 float32: Pytorch_Retinaface's dataset
(cv2.imread + preproc) + WeightedRandomSampler + detection_collate against WIDERFace(transform=
retinaface(640)) + FastWeightedBatchSampler + DetectionCollate(shared_ring=True), each against its
per-sample floor (fastloader.bench.augmented).

Needs opencv-python-headless and simplejpeg (the bench extra). Prints per-sample medians over
interleaved rounds (fastloader.bench.harness) with their min-max spread, wall clock and process
CPU time side by side, and the speed-up as the median of per-round ratios. The stock side is
`fastloader.bench.augmented.stock_preproc`: Pytorch_Retinaface's data/data_augment.py `preproc`
(MIT) rewritten op for op with the same cv2 / numpy calls.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

try:
    import cv2
    import simplejpeg
except ImportError as error:  # pragma: no cover - bench extras
    sys.exit(f"bench_augment needs opencv-python-headless and simplejpeg: {error}")

from fastloader.bench.augmented import augmented_section, stock_preproc
from fastloader.bench.harness import (
    Section,
    duration,
    load_average,
    ratio,
    run_rounds,
    write_report,
)
from fastloader.transforms import retinaface

# --- data ----------------------------------------------------------------------------------------


def make_images(folder: str, count: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """~1024x768 JPEGs (quality 90) of smooth colour fields with texture, and 1-8 faces each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        w, h = 1024, int(rng.choice([683, 768, 576]))
        small = rng.integers(0, 256, (h // 32 + 1, w // 32 + 1, 3), dtype=np.uint8)
        field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        field += rng.integers(-12, 13, field.shape, dtype=np.int16)
        image = np.clip(field, 0, 255).astype(np.uint8)
        path = os.path.join(folder, f"img{i:03d}.jpg")
        with open(path, "wb") as f:
            f.write(simplejpeg.encode_jpeg(image, quality=90, colorspace="BGR"))
        n = int(rng.integers(1, 9))
        x1 = rng.uniform(0, w - 120, n)
        y1 = rng.uniform(0, h - 120, n)
        side = rng.uniform(16, 110, n)
        boxes = np.stack([x1, y1, x1 + side, y1 + side], 1)
        points = np.stack(
            [
                x1[:, None] + side[:, None] * np.array([0.3, 0.7, 0.5, 0.35, 0.65]),
                y1[:, None] + side[:, None] * np.array([0.4, 0.4, 0.55, 0.75, 0.75]),
            ],
            -1,
        )
        target = np.concatenate([boxes, points.reshape(n, 10), np.ones((n, 1))], 1).astype(
            np.float32
        )
        out.append((path, target))
    return out


# --- timing --------------------------------------------------------------------------------------


def _per_sample(start: float, cpu: float, count: int) -> tuple[float, float]:
    """(wall, CPU) seconds per sample since (start, cpu): CPU time is what the process itself
    used, so it shows the kernels' cost when other jobs share the cores."""
    return (time.perf_counter() - start) / count, (time.process_time() - cpu) / count


def run_stock(samples) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    for path, target in samples:
        image = cv2.imread(path)
        stock_preproc(image, target)
    return _per_sample(start, cpu, len(samples))


def run_decode(samples) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    for path, _ in samples:
        with open(path, "rb") as f:
            simplejpeg.decode_jpeg(f.read(), colorspace="BGR")
    return _per_sample(start, cpu, len(samples))


def make_ours(pipe):
    """The per-sample callable on a whole decoded image (for people who keep their Dataset)."""

    def run(samples) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for index, (path, target) in enumerate(samples):
            with open(path, "rb") as f:
                image = simplejpeg.decode_jpeg(f.read(), colorspace="BGR")
            pipe(image, target, index=index)
        return _per_sample(start, cpu, len(samples))

    return run


def make_fused(pipe):
    """What the fused path does per sample (WIDERFace(transform=...) + DetectionCollate): plan
    from the header, decode only the crop, render into a tensor (here one of its own)."""

    def run(samples) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for index, (path, target) in enumerate(samples):
            image, _ = pipe.defer(path, target, index=index)
            image.materialize()
        return _per_sample(start, cpu, len(samples))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", help="also write the tables to this markdown file")
    parser.add_argument("--end-to-end", action="store_true", help="whole DataLoaders (above)")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per round")
    args = parser.parse_args()
    if args.end_to_end:
        end_to_end(args)
        return
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    random.seed(0)
    load = load_average()
    pipe = retinaface(640, input_order="BGR", seed=0)
    names = (
        "stock: cv2.imread + preproc",
        "fastloader: retinaface(640), fused (crop decoded only)",
        "fastloader: simplejpeg + retinaface(640) per-sample call",
        "floor: simplejpeg decode only (whole image)",
    )
    cpu: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as folder:
        samples = make_images(folder, args.images)
        runners = dict(
            zip(names, (run_stock, make_fused(pipe), make_ours(pipe), run_decode), strict=True)
        )
        for run in runners.values():  # warm-up: page cache, imports, first allocations
            run(samples[:4])

        def case(name: str):
            def timed() -> float:
                wall, used = runners[name](samples)
                cpu[name].append(used)
                return wall

            return timed

        wall = run_rounds({name: case(name) for name in names}, args.rounds)
    stock, ours, per_sample, floor = names
    section = Section(
        f"{args.images} JPEGs ~1024 wide to 640x640 float32 CHW, one core: per sample, "
        f"{args.rounds} interleaved rounds"
    )
    section.table(
        ["", "wall clock", "process CPU time"],
        [[name, duration(wall[name], "ms"), duration(cpu[name], "ms")] for name in names]
        + [
            [
                "speed-up over stock: fused",
                ratio(wall[stock], wall[ours]),
                ratio(cpu[stock], cpu[ours]),
            ],
            [
                "speed-up over stock: per-sample call",
                ratio(wall[stock], wall[per_sample]),
                ratio(cpu[stock], cpu[per_sample]),
            ],
            [
                "whole-image decode over fastloader's fused time",
                f"{100 * statistics.median(wall[floor]) / statistics.median(wall[ours]):.0f}%",
                f"{100 * statistics.median(cpu[floor]) / statistics.median(cpu[ours]):.0f}%",
            ],
        ],
    )
    section.note(
        "Ratios are medians of per-round ratios (min-max over rounds). Process CPU time is what "
        "each side itself used: the steadier figure when other jobs share the cores. Stock: "
        "cv2.imread + Pytorch_Retinaface's preproc(640, (104, 117, 123)) (cv2.setNumThreads(1)); "
        "fastloader fused: transforms.retinaface(640, input_order='BGR').defer(path) + "
        "materialize() (the crop's rectangle decoded by libjpeg-turbo, io.jpeg_region); "
        "per-sample call: simplejpeg.decode_jpeg(colorspace='BGR') + the pipeline on the array; "
        "floor: the whole-image decode alone (the fused path decodes less than it). Synthetic "
        "~1024x(576-768) JPEGs (quality 90), 1-8 faces each with 5 landmarks."
    )
    print(section.text())
    if args.markdown:
        path = write_report(
            args.markdown,
            "fastloader: detection augmentation on one core",
            "python bench/bench_augment.py" + (f" --images {args.images} --rounds {args.rounds}"),
            [section],
            extra=f", OpenCV {cv2.__version__} (1 thread), simplejpeg {simplejpeg.__version__}",
            load=load,
        )
        print(f"written to {path}")


def end_to_end(args: argparse.Namespace) -> None:
    from fastloader.datasets import synthetic_widerface

    load = load_average()
    images = args.images if args.images != 24 else 256
    root = synthetic_widerface(
        os.path.join(tempfile.gettempdir(), f"fastloader-bench-widerface-{images}"),
        images,
        seed=0,
        width=1024,
    )
    for path in root.rglob("*.jpg"):
        path.read_bytes()  # into the page cache
    section = augmented_section(
        root,
        size=640,
        num_workers=args.num_workers,
        batch_size=args.batch_size,
        batches=args.batches,
        rounds=args.rounds,
        floor_seconds=1.5,
    )
    print(section.text())
    if args.markdown:
        command = (
            f"python bench/bench_augment.py --end-to-end --images {images} "
            f"--rounds {args.rounds} --batches {args.batches}"
        )
        path = write_report(
            args.markdown,
            "fastloader: detection augmentation end to end",
            command,
            [section],
            extra=f", OpenCV {cv2.__version__}, simplejpeg {simplejpeg.__version__}",
            load=load,
        )
        print(f"written to {path}")


if __name__ == "__main__":
    main()
