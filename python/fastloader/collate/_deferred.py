"""The planner for batches whose images are still to be written (``DeferredSamples``: images in
their files, or any ``DeferredImage``, e.g. one decoded and augmented on the way): it plans the
image field from the shapes alone, as a WritePlan that has each image write itself into its
place in the batch (or ring slot), and packs the targets as for tensor pairs."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from ..io.deferred import DeferredImage, DeferredSamples, read_into
from ._plan import (
    BatchPlan,
    CollateOptions,
    WritePlan,
    fill_bytes,
    looks_channels_last,
    nbytes_of,
    packed_targets,
    padded_size,
    pairs_plan,
)
from ._samples import REAL_DTYPES

__all__ = ["plan_deferred"]

_Tensor = torch.Tensor


def plan_deferred(batch: Any, options: CollateOptions) -> BatchPlan | None:
    """The plan of a DeferredSamples batch: [C, H_i, W_i] images of one dtype (deferred images or
    CPU tensors), float32 [N, D] targets, a C-order batch. None for any other batch, or when
    anything else is asked or found (the general planner then reads the samples)."""
    if not isinstance(batch, DeferredSamples):
        return None
    target_dtype = options.target_dtype or torch.float32
    if options.channels_last or options.image_key == "target" or target_dtype != torch.float32:
        return None
    pairs = batch.pairs
    if not pairs:
        return None
    shapes: list[tuple[int, ...]] = []
    targets: list[torch.Tensor] = []
    dtype = getattr(pairs[0][0], "dtype", None)
    for image, target in pairs:
        if getattr(image, "dtype", None) is not dtype:
            return None
        if type(image) is _Tensor:
            if not image.is_cpu or image.requires_grad or image.is_neg():
                return None
        elif not isinstance(image, DeferredImage):
            return None
        if type(target) is not _Tensor or target.dtype is not torch.float32 or not target.is_cpu:
            return None
        shapes.append(tuple(image.shape))
        targets.append(target)
    channels = shapes[0][0] if len(shapes[0]) == 3 else -1
    if dtype not in REAL_DTYPES or any(len(s) != 3 or s[0] != channels for s in shapes):
        return None
    if looks_channels_last(shapes[0]):
        return None  # the general planner refuses it with a hint
    counts: list[int] = []
    target_plan = packed_targets(targets, torch.float32, counts)
    if target_plan is None:
        return None
    sizes = [(shape[1], shape[2]) for shape in shapes]
    height, width = padded_size(
        max(h for h, _ in sizes), max(w for _, w in sizes), options.size_divisibility
    )
    out_shape = (len(pairs), channels, height, width)
    fill = fill_bytes(options.pad_value, dtype)
    write = partial(read_into, pairs=pairs, fill=fill)
    image_plan = WritePlan(dtype, out_shape, nbytes_of(out_shape, dtype, options.image_key), write)
    return pairs_plan(image_plan, target_plan, counts, sizes, options)
