"""Padding waste of plain and aspect-ratio grouped batches on VOC's shape mix (bench helpers)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler

from ..datasets.synthetic import voc_shape_sizes
from ..sampling.grouping import AspectRatioGroupedBatchSampler, create_aspect_ratio_groups
from ..sampling.weighted import FastWeightedSampler

__all__ = ["PaddingCase", "padded_pixels"]


def padded_pixels(sizes: np.ndarray, batches: Sequence[Sequence[int]]) -> tuple[float, float]:
    """Mean padded pixels per batch, and the padded share of all batch tensors, when each batch
    is padded to its largest height and width; ``sizes`` is [N, 2] (height, width)."""
    padded = total = 0
    for batch in batches:
        hw = sizes[list(batch)]
        area = len(batch) * int(hw[:, 0].max()) * int(hw[:, 1].max())
        padded += area - int((hw[:, 0] * hw[:, 1]).sum())
        total += area
    return padded / max(1, len(batches)), padded / max(1, total)


class PaddingCase:
    """One epoch of plain and of grouped (k = 3) batches over the same sampler, with samples
    (a shared uint8 image per shape, a few boxes) for timing the collate on a few of them."""

    def __init__(self, count: int, longer: int, batch_size: int, seed: int = 0) -> None:
        self.sizes = voc_shape_sizes(count, longer, seed)
        groups = create_aspect_ratio_groups(self.sizes[:, 1] / self.sizes[:, 0], k=3)
        sampler = FastWeightedSampler(np.ones(count), count, seed=seed)
        self.plain = list(BatchSampler(sampler, batch_size, drop_last=False))
        self.grouped = list(AspectRatioGroupedBatchSampler(sampler, groups, batch_size))
        self._rng = np.random.default_rng(seed)
        self._images: dict[tuple[int, int], torch.Tensor] = {}

    def samples(self, batches: Sequence[Sequence[int]]) -> list[list[tuple]]:
        return [[self._sample(i) for i in batch] for batch in batches]

    def _sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (int(self.sizes[index, 0]), int(self.sizes[index, 1]))
        if shape not in self._images:
            pixels = self._rng.integers(0, 256, (3, *shape), dtype=np.uint8)
            self._images[shape] = torch.from_numpy(pixels)
        boxes = self._rng.random((int(self._rng.integers(1, 8)), 5), dtype=np.float32)
        return self._images[shape], torch.from_numpy(boxes)
