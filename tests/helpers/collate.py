"""Module-level datasets and collate wrappers for DataLoader tests (spawn workers import them),
and the references the collate tests compare against."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from fastloader import DetectionBatch, fast_detection_collate


class RaggedSamples(torch.utils.data.Dataset):
    """Deterministic (image, target) samples: sizes vary, some images have zero boxes."""

    def __init__(self, length: int = 12, dtype: torch.dtype = torch.uint8, as_dict: bool = False):
        self.length = length
        self.dtype = dtype
        self.as_dict = as_dict

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        g = torch.Generator().manual_seed(1000 + index)
        h, w = 20 + index % 5, 24 + (index * 3) % 7
        if self.dtype.is_floating_point:
            image = torch.rand(3, h, w, generator=g).to(self.dtype)
        else:
            image = torch.randint(0, 256, (3, h, w), generator=g).to(self.dtype)
        count = 0 if index % 4 == 0 else index % 6
        target = torch.rand(count, 5, generator=g)
        if not self.as_dict:
            return image, target.numpy() if index % 2 else target
        return {
            "image": image,
            "boxes": target[:, :4],
            "labels": torch.arange(count, dtype=torch.int64),
            "landmarks": torch.rand(count, 5, 2, generator=g),
            "scale": float(index) / 2,
            "id": np.int64(index),
        }


def _tensors(batch: DetectionBatch) -> dict:
    return batch.tensors()


def collate_reporting_shared(samples: Any) -> Any:
    """Collates, and reports from inside the worker whether every output lives in shared memory."""
    batch = fast_detection_collate(samples)
    in_worker = torch.utils.data.get_worker_info() is not None
    shared = {name: bool(t.is_shared()) for name, t in _tensors(batch).items()}
    return batch, in_worker, shared


# ---- references ----------------------------------------------------------------------------
def as_tensor(value):
    return (
        torch.from_numpy(np.array(value, order="C", copy=True))
        if isinstance(value, np.ndarray)
        else value
    )


def reference_images(images, size_divisibility=0, pad_value=0):
    """Plain-Python padding, as detectron2's ImageList does it."""
    images = [as_tensor(i) for i in images]
    h = max(i.shape[-2] for i in images)
    w = max(i.shape[-1] for i in images)
    if size_divisibility > 1:
        h = -(-h // size_divisibility) * size_divisibility
        w = -(-w // size_divisibility) * size_divisibility
    out = images[0].new_full((len(images), *images[0].shape[:-2], h, w), pad_value)
    for k, image in enumerate(images):
        out[k, ..., : image.shape[-2], : image.shape[-1]].copy_(image)
    return out


def assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert torch.equal(actual, expected), (actual, expected)


def random_image(rng, dtype, c, h, w, numpy):
    if dtype.is_floating_point:
        t = torch.from_numpy(rng.standard_normal((c, h, w))).to(dtype)
    elif dtype == torch.bool:
        t = torch.from_numpy(rng.integers(0, 2, (c, h, w)).astype(bool))
    else:
        info = torch.iinfo(dtype)
        lo, hi = max(info.min, -1000), min(info.max, 1000)
        t = torch.from_numpy(rng.integers(lo, hi + 1, (c, h, w))).to(dtype)
    return t.numpy() if numpy else t


def pair(c=3, h=4, w=4, n=1, d=5, dtype=torch.uint8):
    return torch.zeros(c, h, w, dtype=dtype), torch.zeros(n, d)


def dict_sample(n=2, **extra):
    sample = {
        "image": torch.zeros(3, 4, 4),
        "boxes": torch.zeros(n, 4),
        "labels": torch.zeros(n, dtype=torch.int64),
    }
    sample.update(extra)
    return sample


class DeepcopyInWorker:
    """A collate_fn that collates, deep-copies the batch in the worker, and sends both."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, samples: Any) -> Any:
        batch = self.collate(samples)
        return batch, copy.deepcopy(batch)
