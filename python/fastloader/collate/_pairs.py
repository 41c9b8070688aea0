"""Planners for the common batch: plain CPU (image tensor, target tensor) pairs that need no
conversion, checked with a few attribute reads per tensor and no per-sample objects. Small
same-size batches get a StackPlan (torch.stack / torch.cat, as the stock collate copies them);
the rest a BatchPlan. Anything else (or anything wrong) is passed on (None) to the general
planner, which gives the same batch or names the problem."""

from __future__ import annotations

from typing import Any

import torch

from ._plan import (
    POOL_MIN_BYTES,
    BatchPlan,
    CollateOptions,
    PadPlan,
    StackPlan,
    fill_bytes,
    looks_channels_last,
    nbytes_of,
    packed_targets,
    padded_size,
    pairs_plan,
)
from ._samples import REAL_DTYPES

__all__ = ["plan_pairs", "plan_same_size_pairs"]

_Tensor = torch.Tensor
_STRIDED = torch.strided
_PAIR_TYPES = (tuple, list)


def plan_same_size_pairs(batch: Any, options: CollateOptions) -> StackPlan | None:
    """Same-size [C, H, W] image and [N, D] target CPU tensors (targets already in target_dtype)
    below POOL_MIN_BYTES, for the pooled or plain memory kinds: a StackPlan. None for any other
    batch. Small batches are where per-batch Python shows, so this builds no field plans."""
    if type(batch) not in _PAIR_TYPES or not batch or options.image_key == "target":
        return None
    if options.channels_last or not options.torch_memory:
        return None
    images: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    counts: list[int] = []
    try:
        first_image, first_target = batch[0]
        dtype, shape = first_image.dtype, first_image.shape
        target_dtype = options.target_dtype or first_target.dtype
        if not (first_image.is_cpu and first_target.is_cpu):
            return None
        # plan_pairs' check loop, trimmed for this path: devices and layouts are read once
        # here and the writer's torch.stack / torch.cat refuse mixed ones (then the general
        # planner names them); reading them per sample costs a tenth of a small batch.
        for sample in batch:
            if type(sample) not in _PAIR_TYPES:
                return None
            image, target = sample
            if (
                type(image) is not _Tensor
                or type(target) is not _Tensor
                or image.dtype is not dtype
                or target.dtype is not target_dtype
                or image.requires_grad
                or target.requires_grad
                or target.ndim != 2
                or image.shape != shape
            ):
                return None
            images.append(image)
            targets.append(target)
            counts.append(target.shape[0])
    except (TypeError, ValueError, AttributeError, IndexError, KeyError):
        return None
    if dtype not in REAL_DTYPES or target_dtype not in REAL_DTYPES or len(shape) != 3:
        return None
    height, width = shape[1], shape[2]
    if looks_channels_last(shape):
        return None
    if padded_size(height, width, options.size_divisibility) != (height, width):
        return None
    if len(images) * first_image.nbytes >= POOL_MIN_BYTES:
        return None  # the pooled path: recycled pages beat fresh ones there
    # No padding here, but a pad value the dtype cannot hold is an error on every path.
    fill_bytes(options.pad_value, dtype)
    return StackPlan(images, targets, counts, options.image_key)


def plan_pairs(batch: Any, options: CollateOptions) -> BatchPlan | None:
    """The plan of a batch of plain CPU tensor pairs: [C, H, W] images of one dtype and [N, D]
    targets already in target_dtype (or, with None, all of one dtype). None for any other batch."""
    if type(batch) not in (list, tuple) or not batch or options.image_key == "target":
        return None
    images: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    try:
        dtype, target_dtype = batch[0][0].dtype, options.target_dtype
        if target_dtype is None:
            target_dtype = batch[0][1].dtype
        if dtype not in REAL_DTYPES or target_dtype not in REAL_DTYPES:
            return None
        for sample in batch:
            if type(sample) not in _PAIR_TYPES:
                return None
            image, target = sample  # not a pair: ValueError
            # Dense CPU tensors of the dtype outside autograd: torch's copies read them as the
            # kernels do (lazily negated ones included). Written out: this runs per sample.
            if (
                type(image) is not _Tensor
                or type(target) is not _Tensor
                or image.dtype is not dtype
                or target.dtype is not target_dtype
                or not (image.is_cpu and target.is_cpu)
                or image.layout is not _STRIDED
                or target.layout is not _STRIDED
                or image.requires_grad
                or target.requires_grad
            ):
                return None
            images.append(image)
            targets.append(target)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError):
        return None
    # The target first: the general planner also checks targets before the pad value.
    counts: list[int] = []
    sizes: list[tuple[int, int]] = []
    target_plan = packed_targets(targets, target_dtype, counts)
    image_plan = _image_plan(images, options, sizes) if target_plan else None
    if image_plan is None or target_plan is None:
        return None
    return pairs_plan(image_plan, target_plan, counts, sizes, options)


def _image_plan(
    images: list[torch.Tensor], options: CollateOptions, sizes: list[tuple[int, int]]
) -> PadPlan | None:
    """[C, H_i, W_i] images padded to the largest (rounded up to size_divisibility); appends
    each (H_i, W_i) to sizes."""
    first = images[0].shape
    if len(first) != 3 or looks_channels_last(first):
        return None
    channels, height, width = first
    same_size = True
    for image in images:
        shape = image.shape
        if shape != first:
            if len(shape) != 3 or shape[0] != channels:
                return None
            same_size = False
            height, width = max(height, shape[1]), max(width, shape[2])
        sizes.append((shape[1], shape[2]))
    rounded = padded_size(height, width, options.size_divisibility)
    same_size = same_size and rounded == (height, width)
    height, width = rounded
    dtype = images[0].dtype
    nbytes = nbytes_of((len(images), channels, height, width), dtype, options.image_key)
    fill = fill_bytes(options.pad_value, dtype)
    channels_last = options.channels_last
    # No padding: torch.stack copies them with torch's intra-op threads, as the stock collate
    # does (1 thread in a DataLoader worker): faster than the one-thread kernel on idle cores,
    # as slow as stock's on loaded ones (bench/results/collate_steps.md).
    if same_size and not channels_last:
        return PadPlan([], dtype, channels, height, width, fill, False, False, nbytes, images)
    try:  # the kernel reads numpy views (refused for bfloat16 and lazily negated tensors)
        arrays = [image.numpy() for image in images]
    except (RuntimeError, TypeError):
        return None
    return PadPlan(arrays, dtype, channels, height, width, fill, channels_last, False, nbytes)
