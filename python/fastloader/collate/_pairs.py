"""The common batch quickly: plain CPU (image tensor, target tensor) pairs that need no
conversion, checked with a few attribute reads per tensor and no per-sample objects (small
same-size batches collated outright, the rest planned), and batches whose images are still in
their files. Anything else (or anything wrong) is left to the general planner, which gives the
same batch or names the problem."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from .. import _C
from ..io.deferred import DeferredSamples, ImageFile, read_into
from ._plan import BatchPlan, CollateOptions, IndexPlan, PackPlan, PadPlan, fill_bytes, nbytes_of
from ._samples import REAL_DTYPES
from ._write import POOL_MIN_BYTES
from .batch import BatchLayout, DetectionBatch, FieldKind

__all__ = ["collate_same_size_pairs", "plan_deferred", "plan_pairs"]

_Tensor = torch.Tensor
_STRIDED = torch.strided
_PAIR_TYPES = (tuple, list)


def collate_same_size_pairs(batch: Any, options: CollateOptions) -> DetectionBatch | None:
    """The batch of same-size [C, H, W] image and [N, D] target CPU tensors (targets already in
    target_dtype) below POOL_MIN_BYTES, copied as the stock collate copies them: torch.stack and
    torch.cat into memory from torch's allocator. None for any other batch.

    Small batches are where per-batch Python shows (8 x 3x224x224 uint8 copies in ~40 us), so
    this path builds no plan objects and takes no pool block (15 us a batch here).
    """
    if type(batch) not in _PAIR_TYPES or not batch or options.image_key == "target":
        return None
    if options.channels_last:
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
        # here and torch.stack / torch.cat refuse mixed ones below (sharing plan_pairs' loop
        # measured 5 us a batch slower at 8 x 3x224x224, the row this path exists for).
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
    step, (height, width) = options.size_divisibility, shape[1:]
    if step > 1 and (height % step or width % step):
        return None
    if len(images) * first_image.nbytes >= POOL_MIN_BYTES:
        return None  # the pooled path: recycled pages beat fresh ones there
    # No padding here, but a pad value the dtype cannot hold is an error on every path.
    fill_bytes(options.pad_value, dtype)
    try:
        stacked = torch.stack(images)
        packed = torch.cat(targets)
    except RuntimeError:  # devices, layouts or target widths differ: the planner names them
        return None
    if stacked.layout is not _STRIDED or packed.layout is not _STRIDED or not packed.is_cpu:
        return None
    size = len(images)
    index = torch.empty(4 * size + 1 + packed.shape[0], dtype=torch.int64)
    _C.write_index_block(counts, [height, width] * size, index.numpy())
    key = options.image_key
    kinds = {key: FieldKind.IMAGE, "target": FieldKind.OBJECT}
    layout = BatchLayout(kinds, counts, [(height, width)] * size, key, True)
    return DetectionBatch({key: stacked, "target": packed}, index, layout)


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
    target_plan = _target_plan(targets, target_dtype, counts)
    image_plan = _image_plan(images, options, sizes) if target_plan else None
    if image_plan is None or target_plan is None:
        return None
    return _pair_plan(image_plan, target_plan, counts, sizes, options)


def _pair_plan(
    image_plan: PadPlan,
    target_plan: PackPlan,
    counts: list[int],
    sizes: list[tuple[int, int]],
    options: CollateOptions,
) -> BatchPlan:
    index = IndexPlan(counts, sizes, (4 * len(counts) + 1 + target_plan.shape[0]) * 8)
    key = options.image_key
    kinds = {key: FieldKind.IMAGE, "target": FieldKind.OBJECT}
    layout = BatchLayout(kinds, counts, sizes, key, True)
    return BatchPlan({key: image_plan, "target": target_plan}, {}, index, layout)


def plan_deferred(batch: DeferredSamples, options: CollateOptions) -> BatchPlan | None:
    """The plan of a batch whose images the writer reads from their files into place: uint8
    [C, H_i, W_i] images (file places or CPU tensors), float32 [N, D] targets, a C-order batch.
    None when anything else is asked or found (the caller then reads the samples)."""
    target_dtype = options.target_dtype or torch.float32
    if options.channels_last or options.image_key == "target" or target_dtype != torch.float32:
        return None
    pairs = batch.pairs
    if not pairs:
        return None
    shapes: list[tuple[int, ...]] = []
    targets: list[torch.Tensor] = []
    for image, target in pairs:
        if not isinstance(image, ImageFile) and not (
            type(image) is _Tensor and image.dtype is torch.uint8 and image.is_cpu
        ):
            return None
        if type(target) is not _Tensor or target.dtype is not torch.float32 or not target.is_cpu:
            return None
        shapes.append(tuple(image.shape))
        targets.append(target)
    channels = shapes[0][0] if len(shapes[0]) == 3 else -1
    if any(len(shape) != 3 or shape[0] != channels for shape in shapes):
        return None
    counts: list[int] = []
    target_plan = _target_plan(targets, torch.float32, counts)
    if target_plan is None:
        return None
    sizes = [(shape[1], shape[2]) for shape in shapes]
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    step = options.size_divisibility
    if step > 1:
        height, width = -(-height // step) * step, -(-width // step) * step
    out_shape = (len(pairs), channels, height, width)
    fill = fill_bytes(options.pad_value, torch.uint8)
    reader = partial(read_into, pairs=pairs, shape=out_shape[1:], fill=fill)
    image_plan = PadPlan(
        [],
        torch.uint8,
        channels,
        height,
        width,
        fill,
        False,
        False,
        nbytes_of(out_shape, torch.uint8, options.image_key),
        reader=reader,
    )
    return _pair_plan(image_plan, target_plan, counts, sizes, options)


def _image_plan(
    images: list[torch.Tensor], options: CollateOptions, sizes: list[tuple[int, int]]
) -> PadPlan | None:
    """[C, H_i, W_i] images padded to the largest (rounded up to size_divisibility); appends
    each (H_i, W_i) to sizes."""
    first = images[0].shape
    if len(first) != 3:
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
    step = options.size_divisibility
    if step > 1:
        rounded = -(-height // step) * step, -(-width // step) * step
        same_size = same_size and rounded == (height, width)
        height, width = rounded
    dtype = images[0].dtype
    nbytes = nbytes_of((len(images), channels, height, width), dtype, options.image_key)
    fill = fill_bytes(options.pad_value, dtype)
    channels_last = options.channels_last
    # No padding: torch.stack copies them with torch's intra-op threads, as the stock collate
    # does (1 thread in a DataLoader worker). Measured here: 8 x 3x224x224 uint8 0.11 ms vs the
    # 1-thread kernel's 0.22; but on 2 cores loaded by other processes torch's threads stall as
    # stock's do (8 x 3x640x640: median 59 ms, like stock's 60, where the kernel took 0.88).
    if same_size and not channels_last:
        return PadPlan([], dtype, channels, height, width, fill, False, False, nbytes, images)
    try:  # the kernel reads numpy views (refused for bfloat16 and lazily negated tensors)
        arrays = [image.numpy() for image in images]
    except (RuntimeError, TypeError):
        return None
    return PadPlan(arrays, dtype, channels, height, width, fill, channels_last, False, nbytes)


def _target_plan(
    targets: list[torch.Tensor], dtype: torch.dtype, counts: list[int]
) -> PackPlan | None:
    """[N_i, D] targets packed along dim 0 by torch.cat; appends each N_i to counts."""
    first = targets[0].shape
    if len(first) != 2:
        return None
    width = first[1]
    for target in targets:
        shape = target.shape
        if len(shape) != 2 or shape[1] != width:
            return None
        counts.append(shape[0])
    total = sum(counts)
    out_shape = (total, width)
    return PackPlan([], dtype, out_shape, nbytes_of(out_shape, dtype, "target"), targets)
