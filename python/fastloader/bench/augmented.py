"""The stock face-detection pipeline the augmentation benchmarks compare against, written once:
Pytorch_Retinaface's ``WiderFaceDetection`` (cv2.imread) and ``data/data_augment.py``
``preproc(640, (104, 117, 123))`` (MIT) op for op with the same cv2 / numpy calls (random.*
draws, cv2.cvtColor HSV round trip, cv2.resize with one of five interpolations), and the
end-to-end measurement of that pipeline against fastloader's fused one (``augmented_section``:
the main job's "Augmented" section and ``bench/bench_augment.py --end-to-end``). Needs
opencv-python-headless (the bench extra), imported on first use."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from ..collate.detection_collate import DetectionCollate
from ..datasets.widerface import WIDERFace
from ..sampling.weighted import FastWeightedBatchSampler
from ..transforms.presets import retinaface
from .harness import Section, ratio, spread
from .loaders import decode_floor
from .stock import detection_collate

__all__ = ["MEANS", "StockWiderFace", "augmented_section", "measure", "stock_preproc"]

MEANS = (104, 117, 123)
# cv2.INTER_LINEAR, INTER_CUBIC, INTER_AREA, INTER_NEAREST, INTER_LANCZOS4 (preproc's order).
INTERPOLATIONS = (1, 2, 3, 0, 4)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as error:  # pragma: no cover - the bench extra
        raise ImportError(
            "the stock augmentation pipeline needs opencv-python-headless: "
            "pip install 'fastloader[bench]'"
        ) from error
    return cv2


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
    cv2 = _cv2()
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
    """Pytorch_Retinaface's ``preproc(img_dim, rgb_means)(image, targets)``: BGR uint8 HWC
    image, ``[N, 15]`` targets (boxes, landmarks, label) -> float32 CHW, normalized targets."""
    cv2 = _cv2()
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


class StockWiderFace(Dataset):
    """Pytorch_Retinaface's ``WiderFaceDetection(label.txt, preproc(640, MEANS))``: the faces of
    each image as ``[N, 15]`` (boxes, landmarks, label 1 or -1) and, per sample,
    ``cv2.imread`` + :func:`stock_preproc`; returns ``(float32 CHW tensor, [N, 15] array)``."""

    def __init__(self, root: str | Path, split: str = "train", img_dim: int = 640) -> None:
        reader = WIDERFace(root, split)
        self.img_dim = img_dim
        self.paths = [str(reader.image_path(i)) for i in range(len(reader))]
        self.targets = []
        for i in range(len(reader)):
            faces = reader.annotation(i)
            n = len(faces["boxes"])
            self.targets.append(
                np.concatenate(
                    [faces["boxes"], faces["landmarks"].reshape(n, 10),
                     faces["labels"].reshape(n, 1).astype(np.float32)], 1
                ).astype(np.float32)
            )  # fmt: skip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, np.ndarray]:
        image = _cv2().imread(self.paths[index])
        image, target = stock_preproc(image, self.targets[index].copy(), self.img_dim)
        return torch.from_numpy(image), target


def _loaders(root: str | Path, size: int, num_workers: int, batch_size: int) -> dict[str, Any]:
    stock = StockWiderFace(root, img_dim=size)
    ours = WIDERFace(root, transform=retinaface(size, input_order="BGR", seed=0))
    weights = torch.ones(len(stock), dtype=torch.float64)
    return {
        "stock": DataLoader(
            stock,
            batch_size=batch_size,
            sampler=WeightedRandomSampler(weights, len(stock)),  # type: ignore[arg-type]
            num_workers=num_workers,
            collate_fn=detection_collate,
        ),
        "fastloader": DataLoader(
            ours,
            batch_sampler=FastWeightedBatchSampler(weights, len(ours), batch_size, seed=0),
            num_workers=num_workers,
            collate_fn=DetectionCollate(shared_ring=True),
        ),
    }


def _batches_per_s(loader: DataLoader, batches: int) -> float:
    iterator = iter(loader)
    next(iterator)  # the workers are up and the pipeline full
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
        del batch  # a ring batch gives its slot back
    rate = batches / (time.perf_counter() - start)
    del iterator
    return rate


def measure(
    root: str | Path,
    *,
    size: int = 640,
    num_workers: int = 2,
    batch_size: int = 32,
    batches: int = 4,
    rounds: int = 3,
    floor_seconds: float = 1.0,
) -> dict[str, list[float]]:
    """Per round, in turn: each pipeline's loader (batches/s over ``batches`` batches after the
    first) and its per-sample floor (batches/s that ``num_workers`` processes doing nothing but
    ``dataset[i]`` reach). Keys: ``stock``, ``fastloader``, ``stock floor``, ``fastloader
    floor``; one value per round."""
    _cv2().setNumThreads(1)  # one thread per worker, as the workers' torch (inherited on fork)
    random.seed(0)
    loaders = _loaders(root, size, num_workers, batch_size)
    if len(loaders["stock"].dataset) < (batches + 1) * batch_size:
        raise ValueError("the dataset is too small for the batches measured in one epoch")
    cases = {
        "stock": lambda: _batches_per_s(loaders["stock"], batches),
        "fastloader": lambda: _batches_per_s(loaders["fastloader"], batches),
        "stock floor": lambda: (
            decode_floor(loaders["stock"].dataset, floor_seconds, num_workers) / batch_size
        ),
        "fastloader floor": lambda: (
            decode_floor(loaders["fastloader"].dataset, floor_seconds, num_workers) / batch_size
        ),
    }
    figures: dict[str, list[float]] = {key: [] for key in cases}
    for _ in range(rounds):
        for key, case in cases.items():
            figures[key].append(case())
    return figures


def augmented_section(
    root: str | Path, *, size: int, num_workers: int, batch_size: int, batches: int, rounds: int,
    floor_seconds: float,
) -> Section:  # fmt: skip
    """The "Augmented" table: stock vs fastloader batches/s, each against its own floor."""
    section = Section(
        f"Augmented: WIDER FACE layout, retinaface({size}) float32, batch {batch_size}, "
        f"num_workers={num_workers}"
    )
    try:
        _cv2()
    except ImportError as error:
        section.note(f"not measured: {error}")
        return section
    f = measure(
        root, size=size, num_workers=num_workers, batch_size=batch_size, batches=batches,
        rounds=rounds, floor_seconds=floor_seconds,
    )  # fmt: skip
    rate = " batches/s"
    section.table(
        ["pipeline", "loader", "per-sample floor", "share of its floor", "vs stock"],
        [
            ["stock: cv2.imread + preproc + WeightedRandomSampler + detection_collate",
             spread(f["stock"], rate), spread(f["stock floor"], rate),
             _share(f["stock"], f["stock floor"]), "1x"],
            ["fastloader: WIDERFace(transform=retinaface) + FastWeightedBatchSampler + "
             "DetectionCollate(shared_ring=True)",
             spread(f["fastloader"], rate), spread(f["fastloader floor"], rate),
             _share(f["fastloader"], f["fastloader floor"]),
             ratio(f["fastloader"], f["stock"])],
        ],
    )  # fmt: skip
    section.note(
        f"Medians of {rounds} interleaved rounds (min-max); ratios are medians of per-round "
        f"ratios. Loader: {batches} batches after the first. Floor: {num_workers} processes "
        "calling dataset[i] and nothing else (stock: cv2.imread + preproc; fastloader: header, "
        "plan, decode and augment into a tensor of its own), in batches of the same size. "
        "cv2.setNumThreads(1)."
    )
    return section


def _share(loader: list[float], floor: list[float]) -> str:
    shares = [a / b for a, b in zip(loader, floor, strict=True)]
    return (
        f"{100 * statistics.median(shares):.0f}% ({100 * min(shares):.0f}-{100 * max(shares):.0f}%)"
    )
