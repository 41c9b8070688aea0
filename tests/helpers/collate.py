"""Module-level datasets and collate wrappers for DataLoader tests (spawn workers import them)."""

from __future__ import annotations

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
