"""The stock ways every fastloader benchmark compares against, each written once: the detection
collate that detection code has used for years, detectron2's padding, its repeat-factor epoch
and torchvision's grouped batches. Reproduced here (not imported from those projects) so the
benchmarks need neither, and checked against fastloader's results by the tests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from itertools import chain, repeat
from typing import Any

import torch
from torch.utils.data import Sampler

__all__ = [
    "detection_collate",
    "detectron2_repeat_factor_epoch",
    "detectron2_style_padding",
    "pad_like_detectron2",
    "torchvision_grouped_batches",
]


def detection_collate(batch: Sequence[Any]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The stock way, as detection code has written it for years (ssd.pytorch and descendants):
    images stacked, each target copied to a float tensor."""
    imgs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for sample in batch:
        imgs.append(sample[0])
        targets.append(torch.FloatTensor(sample[1]))
    return torch.stack(imgs, 0), targets


def pad_like_detectron2(
    images: Sequence[torch.Tensor], size_divisibility: int = 32
) -> torch.Tensor:
    """detectron2 ImageList-style padding in Python: one new_full, then a copy_ per image."""
    height = max(image.shape[1] for image in images)
    width = max(image.shape[2] for image in images)
    if size_divisibility > 1:
        height = -(-height // size_divisibility) * size_divisibility
        width = -(-width // size_divisibility) * size_divisibility
    out = images[0].new_full((len(images), images[0].shape[0], height, width), 0)
    for slot, image in zip(out, images, strict=True):
        slot[:, : image.shape[1], : image.shape[2]].copy_(image)
    return out


def detectron2_style_padding(
    batch: Sequence[Any], size_divisibility: int = 32
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A variable-size batch the stock way: detectron2's padding, targets as detection_collate."""
    images = pad_like_detectron2([sample[0] for sample in batch], size_divisibility)
    return images, [torch.FloatTensor(sample[1]) for sample in batch]


def detectron2_repeat_factor_epoch(
    int_part: torch.Tensor, frac_part: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """detectron2's RepeatFactorTrainingSampler: _get_epoch_indices, then the shuffle."""
    rands = torch.rand(len(frac_part), generator=generator)
    rep_factors = int_part + (rands < frac_part).float()
    indices: list[int] = []
    for dataset_index, rep_factor in enumerate(rep_factors):
        indices.extend([dataset_index] * int(rep_factor.item()))
    epoch = torch.tensor(indices, dtype=torch.int64)
    return epoch[torch.randperm(len(epoch), generator=generator)]


def torchvision_grouped_batches(
    sampler: Sampler[int], group_ids: Sequence[int], batch_size: int
) -> Iterator[list[int]]:
    """torchvision's GroupedBatchSampler.__iter__ (references/detection/group_by_aspect_ratio)."""
    buffer_per_group: dict[int, list[int]] = defaultdict(list)
    samples_per_group: dict[int, list[int]] = defaultdict(list)
    num_batches = 0
    for idx in sampler:
        group_id = group_ids[idx]
        buffer_per_group[group_id].append(idx)
        samples_per_group[group_id].append(idx)
        if len(buffer_per_group[group_id]) == batch_size:
            yield buffer_per_group[group_id]
            num_batches += 1
            del buffer_per_group[group_id]
        assert len(buffer_per_group[group_id]) < batch_size
    num_remaining = len(sampler) // batch_size - num_batches  # type: ignore[arg-type]
    if num_remaining > 0:
        by_size = sorted(buffer_per_group.items(), key=lambda x: len(x[1]), reverse=True)
        for group_id, _ in by_size:
            remaining = batch_size - len(buffer_per_group[group_id])
            group = samples_per_group[group_id]
            cycled = list(chain.from_iterable(repeat(group, -(-remaining // len(group)))))
            buffer_per_group[group_id].extend(cycled[:remaining])
            yield buffer_per_group[group_id]
            num_remaining -= 1
            if num_remaining == 0:
                break
