"""Planning the common batch quickly: plain CPU (image tensor, target tensor) pairs that need no
conversion, checked with a few attribute reads per tensor and no per-sample objects. Anything else
(or anything wrong) is left to the general planner, which gives the same batch or names the
problem."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._plan import BatchPlan, CollateOptions, IndexPlan, PackPlan, PadPlan, fill_bytes, nbytes_of
from ._samples import REAL_DTYPES
from .batch import BatchLayout, FieldKind

__all__ = ["plan_pairs"]

_Tensor = torch.Tensor
_STRIDED = torch.strided


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
            if type(sample) not in (tuple, list):
                return None
            image, target = sample  # not a pair: ValueError
            if not (_plain(image, dtype) and _plain(target, target_dtype)):
                return None
            images.append(image)
            targets.append(target)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError):
        return None
    # The target first: the general planner also checks targets before the pad value.
    target_plan = _target_plan(targets, target_dtype)
    image_plan = _image_plan(images, options) if target_plan else None
    if image_plan is None or target_plan is None:
        return None
    counts = [t.shape[0] for t in targets]
    sizes = [(i.shape[1], i.shape[2]) for i in images]
    index = IndexPlan(counts, sizes, (4 * len(counts) + 1 + target_plan.shape[0]) * 8)
    key = options.image_key
    kinds = {key: FieldKind.IMAGE, "target": FieldKind.OBJECT}
    layout = BatchLayout(kinds, counts, sizes, key, True)
    return BatchPlan({key: image_plan, "target": target_plan}, {}, index, layout)


def _plain(value: Any, dtype: torch.dtype) -> bool:
    """A dense CPU tensor of dtype outside autograd: torch's copies read it as the kernels do."""
    return (
        type(value) is _Tensor
        and value.dtype is dtype
        and value.is_cpu
        and value.layout is _STRIDED
        and not value.requires_grad
    )


def _image_plan(images: list[torch.Tensor], options: CollateOptions) -> PadPlan | None:
    """[C, H_i, W_i] images padded to the largest (rounded up to size_divisibility)."""
    shape = images[0].shape
    if len(shape) != 3:
        return None
    channels, height, width = shape
    same_size = True
    for image in images:
        if image.shape != shape:
            if image.dim() != 3 or image.shape[0] != channels:
                return None
            same_size = False
            height, width = max(height, image.shape[1]), max(width, image.shape[2])
    step = options.size_divisibility
    if step > 1:
        rounded = -(-height // step) * step, -(-width // step) * step
        same_size = same_size and rounded == (height, width)
        height, width = rounded
    dtype = images[0].dtype
    nbytes = nbytes_of((len(images), channels, height, width), dtype, options.image_key)
    fill = fill_bytes(options.pad_value, dtype)
    channels_last = options.channels_last
    if same_size and not channels_last:  # no padding: torch.stack copies them
        return PadPlan([], dtype, channels, height, width, fill, False, False, nbytes, images)
    try:  # the kernel reads numpy views (refused for bfloat16 and lazily negated tensors)
        arrays = [image.numpy() for image in images]
    except (RuntimeError, TypeError):
        return None
    return PadPlan(arrays, dtype, channels, height, width, fill, channels_last, False, nbytes)


def _target_plan(targets: list[torch.Tensor], dtype: torch.dtype) -> PackPlan | None:
    """[N_i, D] targets packed along dim 0 by torch.cat."""
    shape = targets[0].shape
    if len(shape) != 2:
        return None
    width = shape[1]
    total = 0
    for target in targets:
        if target.dim() != 2 or target.shape[1] != width:
            return None
        total += target.shape[0]
    out_shape = (total, width)
    return PackPlan([], dtype, out_shape, nbytes_of(out_shape, dtype, "target"), targets)
