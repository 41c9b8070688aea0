"""Detection augmentation on one core: fastloader's retinaface(640) preset (simplejpeg decode +
native augment) against Pytorch_Retinaface's way (cv2.imread + preproc(640, (104, 117, 123)))
on the same ~1024-wide JPEGs, with the decode alone as the floor.

    .venv/bin/python bench/bench_augment.py [--images 24] [--rounds 5] [--markdown out.md]

Needs opencv-python-headless and simplejpeg (the bench extra). Prints per-sample medians over
interleaved rounds (fastloader.bench.harness) with their min-max spread, wall clock and process
CPU time side by side, and the speed-up as the median of per-round ratios. The stock side is
`stock_preproc` below: Pytorch_Retinaface's data/data_augment.py `preproc` (MIT) rewritten op
for op with the same cv2 / numpy calls (random.* draws, cv2.cvtColor HSV round trip, cv2.resize
with one of five interpolations).
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

from fastloader.bench.harness import (
    Section,
    duration,
    load_average,
    ratio,
    run_rounds,
    write_report,
)
from fastloader.transforms import retinaface

MEANS = (104, 117, 123)
INTERPOLATIONS = (
    cv2.INTER_LINEAR,
    cv2.INTER_CUBIC,
    cv2.INTER_AREA,
    cv2.INTER_NEAREST,
    cv2.INTER_LANCZOS4,
)


# --- the stock pipeline: Pytorch_Retinaface's preproc, op for op ------------------------------


def _iof(boxes: np.ndarray, roi: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[:, :2], roi[:2])
    rb = np.minimum(boxes[:, 2:], roi[2:])
    inter = np.prod(rb - lt, axis=1) * (lt < rb).all(axis=1)
    return inter / np.maximum(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1), 1)


def _stock_crop(image, boxes, labels, landm, img_dim):
    height, width, _ = image.shape
    for _ in range(250):
        scale = 1.0 if random.uniform(0, 1) <= 0.2 else random.uniform(0.3, 1.0)
        side = int(scale * min(width, height))
        left = 0 if width == side else random.randrange(width - side)
        top = 0 if height == side else random.randrange(height - side)
        roi = np.array((left, top, left + side, top + side))
        if not (_iof(boxes, roi) >= 1).any():
            continue
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = np.logical_and(roi[:2] < centers, centers < roi[2:]).all(axis=1)
        boxes_t, labels_t = boxes[inside].copy(), labels[inside].copy()
        landms_t = landm[inside].copy().reshape(-1, 5, 2)
        if boxes_t.shape[0] == 0:
            continue
        image_t = image[roi[1] : roi[3], roi[0] : roi[2]]
        boxes_t[:, :2] = np.maximum(boxes_t[:, :2], roi[:2]) - roi[:2]
        boxes_t[:, 2:] = np.minimum(boxes_t[:, 2:], roi[2:]) - roi[:2]
        landms_t = np.minimum(np.maximum(landms_t - roi[:2], 0), roi[2:] - roi[:2]).reshape(-1, 10)
        keep = (
            np.minimum(
                (boxes_t[:, 2] - boxes_t[:, 0] + 1) / side * img_dim,
                (boxes_t[:, 3] - boxes_t[:, 1] + 1) / side * img_dim,
            )
            > 0.0
        )
        if not keep.any():
            continue
        return image_t, boxes_t[keep], labels_t[keep], landms_t[keep], False
    return image, boxes, labels, landm, True


def _convert(image, alpha=1.0, beta=0.0):
    tmp = image.astype(float) * alpha + beta
    tmp[tmp < 0] = 0
    tmp[tmp > 255] = 255
    image[:] = tmp


def _stock_distort(image):
    image = image.copy()
    contrast_first = random.randrange(2)
    if random.randrange(2):
        _convert(image, beta=random.uniform(-32, 32))
    if contrast_first and random.randrange(2):
        _convert(image, alpha=random.uniform(0.5, 1.5))
    image = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    if random.randrange(2):
        _convert(image[:, :, 1], alpha=random.uniform(0.5, 1.5))
    if random.randrange(2):
        hue = image[:, :, 0].astype(int) + random.randint(-18, 18)
        image[:, :, 0] = hue % 180
    image = cv2.cvtColor(image, cv2.COLOR_HSV2BGR)
    if not contrast_first and random.randrange(2):
        _convert(image, alpha=random.uniform(0.5, 1.5))
    return image


def stock_preproc(image, targets, img_dim=640, rgb_means=MEANS):
    boxes, labels, landm = targets[:, :4].copy(), targets[:, -1].copy(), targets[:, 4:-1].copy()
    image_t, boxes_t, labels_t, landm_t, pad = _stock_crop(image, boxes, labels, landm, img_dim)
    image_t = _stock_distort(image_t)
    if pad:
        height, width, _ = image_t.shape
        square = np.empty((max(height, width), max(height, width), 3), dtype=image_t.dtype)
        square[:, :] = rgb_means
        square[:height, :width] = image_t
        image_t = square
    _, width, _ = image_t.shape
    if random.randrange(2):
        image_t = image_t[:, ::-1]
        boxes_t = boxes_t.copy()
        boxes_t[:, 0::2] = width - boxes_t[:, 2::-2]
        landm_t = landm_t.copy().reshape(-1, 5, 2)
        landm_t[:, :, 0] = width - landm_t[:, :, 0]
        landm_t[:, [0, 1]] = landm_t[:, [1, 0]]
        landm_t[:, [3, 4]] = landm_t[:, [4, 3]]
        landm_t = landm_t.reshape(-1, 10)
    height, width, _ = image_t.shape
    image_t = cv2.resize(
        image_t, (img_dim, img_dim), interpolation=INTERPOLATIONS[random.randrange(5)]
    )
    image_t = image_t.astype(np.float32)
    image_t -= rgb_means
    image_t = image_t.transpose(2, 0, 1)
    boxes_t[:, 0::2] /= width
    boxes_t[:, 1::2] /= height
    landm_t[:, 0::2] /= width
    landm_t[:, 1::2] /= height
    return image_t, np.hstack((boxes_t, landm_t, labels_t[:, None]))


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
    def run(samples) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for index, (path, target) in enumerate(samples):
            with open(path, "rb") as f:
                image = simplejpeg.decode_jpeg(f.read(), colorspace="BGR")
            pipe(image, target, index=index)
        return _per_sample(start, cpu, len(samples))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", help="also write the tables to this markdown file")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    random.seed(0)
    load = load_average()
    pipe = retinaface(640, input_order="BGR", seed=0)
    names = (
        "stock: cv2.imread + preproc",
        "fastloader: simplejpeg + retinaface(640)",
        "floor: simplejpeg decode only",
    )
    cpu: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as folder:
        samples = make_images(folder, args.images)
        runners = dict(zip(names, (run_stock, make_ours(pipe), run_decode), strict=True))
        for run in runners.values():  # warm-up: page cache, imports, first allocations
            run(samples[:4])

        def case(name: str):
            def timed() -> float:
                wall, used = runners[name](samples)
                cpu[name].append(used)
                return wall

            return timed

        wall = run_rounds({name: case(name) for name in names}, args.rounds)
    stock, ours, floor = names
    section = Section(
        f"{args.images} JPEGs ~1024 wide to 640x640 float32 CHW, one core: per sample, "
        f"{args.rounds} interleaved rounds"
    )
    section.table(
        ["", "wall clock", "process CPU time"],
        [[name, duration(wall[name], "ms"), duration(cpu[name], "ms")] for name in names]
        + [
            ["speed-up over stock", ratio(wall[stock], wall[ours]), ratio(cpu[stock], cpu[ours])],
            [
                "decode share of fastloader's time",
                f"{100 * statistics.median(wall[floor]) / statistics.median(wall[ours]):.0f}%",
                f"{100 * statistics.median(cpu[floor]) / statistics.median(cpu[ours]):.0f}%",
            ],
        ],
    )
    section.note(
        "Ratios are medians of per-round ratios (min-max over rounds). Process CPU time is what "
        "each side itself used: the steadier figure when other jobs share the cores. Stock: "
        "cv2.imread + Pytorch_Retinaface's preproc(640, (104, 117, 123)) (cv2.setNumThreads(1)); "
        "fastloader: simplejpeg.decode_jpeg(colorspace='BGR') + "
        "transforms.retinaface(640, input_order='BGR'); floor: the decode alone. Synthetic "
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


if __name__ == "__main__":
    main()
