"""What a planner hands the writer: each field's kind, dtype, shape and byte size, all validated
before any output memory is allocated (plan types), and the one place for the numbers every
planner shares: the thresholds, the round-up to size_divisibility, byte sizes and pad values.

A planner (see ``detection_collate.PLANNERS``) is ``(batch, options) -> Plan | None``: it reads
the samples, checks them, and returns a plan or None ("not mine: ask the next planner"). It never
allocates output memory or writes; ``_write`` does, for every plan alike."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from .batch import BatchLayout, FieldKind

__all__ = [
    "MAX_SIZE_DIVISIBILITY",
    "PARALLEL_MIN_BYTES",
    "POOL_MIN_BYTES",
    "BatchPlan",
    "CollateOptions",
    "FieldPlan",
    "IndexPlan",
    "PackPlan",
    "PadPlan",
    "Plan",
    "StackPlan",
    "WritePlan",
    "fill_bytes",
    "index_plan",
    "looks_channels_last",
    "nbytes_of",
    "packed_targets",
    "padded_size",
    "pairs_plan",
]

# ---- thresholds (why each is where it is; figures: bench/results/collate_steps.md) ---------------
# Far above any real stride (32..512) yet small enough that padded sizes stay far from int64.
MAX_SIZE_DIVISIBILITY = 1 << 16
# Below this many output bytes a batch is copied by the calling thread alone: a thread started
# per call must wait for a time slice when the cores are busy (a DataLoader's workers, other
# jobs), which costs more than it saves until batches are tens of MB.
PARALLEL_MIN_BYTES = 32 << 20
# Below this many bytes a "pooled" batch takes memory from torch's allocator instead: malloc
# reuses freed memory of that size as cheaply, without the pool block's per-batch Python cost;
# the pool pays for itself on big batches, whose fresh pages would fault in.
POOL_MIN_BYTES = 16 << 20


class CollateOptions(NamedTuple):
    """DetectionCollate's settings, as the planners read them."""

    size_divisibility: int
    pad_value: float | bool
    channels_last: bool
    image_key: str
    image_fields: tuple[str, ...]
    target_dtype: torch.dtype | None
    # The batch may live in memory from torch's allocator (no ring; pooled or plain memory):
    # a StackPlan is only for such batches.
    torch_memory: bool = True


class PackPlan(NamedTuple):
    """Arrays (all of dtype) copied back to back in C order into one [*shape] tensor: ragged
    per-object fields packed along dim 0, and fixed-shape per-image fields stacked alike."""

    arrays: list[np.ndarray]
    dtype: torch.dtype
    shape: tuple[int, ...]
    nbytes: int
    # The values as plain CPU tensors of dtype (then arrays is empty): torch.cat packs them.
    tensors: list[torch.Tensor] | None = None


class PadPlan(NamedTuple):
    """Images [C, H_i, W_i] copied into a [B, C, height, width] batch, padded with `fill`."""

    arrays: list[np.ndarray]
    dtype: torch.dtype
    channels: int
    height: int
    width: int
    fill: bytes  # one element of dtype
    channels_last: bool
    grayscale: bool  # [H, W] images: the batch is [B, H, W]
    nbytes: int
    # The images as CPU tensors when they fill the batch exactly (no padding, not channels_last):
    # then torch.stack copies them with torch's own threads, as the stock collate does.
    exact_tensors: list[torch.Tensor] | None = None


class WritePlan(NamedTuple):
    """A field that only its planner knows how to produce (images still in their files, images
    augmented on the way in): ``write(out)`` fills ``out``, the field's C-order ``[*shape]`` tensor
    of dtype in the batch's (or ring slot's) memory, and must write every element of it. The
    writer allocates; ``write`` runs after every field was planned, so it may only fail on what
    planning cannot see (a file changed since), never on the samples' shapes."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    nbytes: int
    write: Callable[[torch.Tensor], None]


class IndexPlan(NamedTuple):
    """The int64 index block: counts [B] | offsets [B+1] | image_sizes [B, 2] | batch_index."""

    counts: list[int]
    sizes: list[tuple[int, int]]
    nbytes: int


FieldPlan = PackPlan | PadPlan | WritePlan


class BatchPlan(NamedTuple):
    """A validated, sized batch: what to allocate and what each field's copy is."""

    tensors: dict[str, FieldPlan]  # fields that become tensors, in sample order
    lists: dict[str, list]  # string fields, kept as lists
    index: IndexPlan  # type: ignore[assignment]  # shadows tuple.index, as its readers expect
    layout: BatchLayout

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + sum(plan.nbytes for plan in self.tensors.values())


class StackPlan(NamedTuple):
    """Small same-size (image, target) tensor pairs, stacked and concatenated by torch into
    memory from torch's allocator, as the stock collate does: the one plan that builds no field
    plans (small batches are where per-batch Python shows)."""

    images: list[torch.Tensor]
    targets: list[torch.Tensor]
    counts: list[int]
    image_key: str


Plan = BatchPlan | StackPlan


# ---- the arithmetic every planner shares --------------------------------------------------------
def padded_size(height: int, width: int, step: int) -> tuple[int, int]:
    """(height, width) rounded up to multiples of size_divisibility step (0 or 1: unchanged)."""
    if step > 1:
        return -(-height // step) * step, -(-width // step) * step
    return height, width


def nbytes_of(shape: Sequence[int], dtype: torch.dtype, name: str) -> int:
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > sys.maxsize:
        raise ValueError(
            f"field {name!r}: a batch of shape {list(shape)} and dtype {dtype} needs {nbytes} "
            f"bytes, more than this platform can address"
        )
    return nbytes


def index_plan(counts: list[int], sizes: list[tuple[int, int]]) -> IndexPlan:
    return IndexPlan(counts, sizes, (4 * len(counts) + 1 + sum(counts)) * 8)


def pairs_plan(
    image_plan: FieldPlan,
    target_plan: FieldPlan,
    counts: list[int],
    sizes: list[tuple[int, int]],
    options: CollateOptions,
) -> BatchPlan:
    """The plan of (image, target) samples from its two field plans."""
    key = options.image_key
    kinds = {key: FieldKind.IMAGE, "target": FieldKind.OBJECT}
    layout = BatchLayout(kinds, counts, sizes, key, True)
    fields = {key: image_plan, "target": target_plan}
    return BatchPlan(fields, {}, index_plan(counts, sizes), layout)


def packed_targets(
    targets: list[torch.Tensor], dtype: torch.dtype, counts: list[int]
) -> PackPlan | None:
    """[N_i, D] CPU tensors of dtype packed along dim 0 by torch.cat (None unless every one is
    2-D of one width); appends each N_i to counts."""
    first = targets[0].shape
    if len(first) != 2:
        return None
    width = first[1]
    for target in targets:
        shape = target.shape
        if len(shape) != 2 or shape[1] != width:
            return None
        counts.append(shape[0])
    out_shape = (sum(counts), width)
    return PackPlan([], dtype, out_shape, nbytes_of(out_shape, dtype, "target"), targets)


def fill_bytes(pad_value: float | bool, dtype: torch.dtype) -> bytes:
    """pad_value as one element of dtype, refusing values the dtype cannot hold."""
    # repr in the key: -0.0 == 0 and True == 1 hash alike but are different fills.
    return _fill_bytes_cached(pad_value, repr(pad_value), dtype)


@functools.lru_cache(maxsize=64)
def _fill_bytes_cached(pad_value: float | bool, _key: str, dtype: torch.dtype) -> bytes:
    try:
        element = torch.full((1,), pad_value, dtype=dtype)
    except (RuntimeError, OverflowError, TypeError) as exc:
        raise ValueError(
            f"pad_value={pad_value!r} cannot be converted to the image dtype {dtype}: {exc}"
        ) from None
    back = element.item()
    if dtype.is_floating_point:
        exact = math.isnan(pad_value) or not math.isinf(back) or math.isinf(pad_value)
    else:
        exact = back == pad_value
    if not exact:
        raise ValueError(
            f"pad_value={pad_value!r} cannot be represented in the image dtype {dtype} "
            f"(it would become {back!r})"
        )
    return bytes(element.view(torch.uint8).tolist())


def looks_channels_last(shape: Sequence[int]) -> bool:
    """Whether a 3-D image shape looks like [H, W, C] (a channel-sized last dimension after a
    first one too big for channels): such images are refused with a hint, not collated as
    [B, H, W, C] batches."""
    return shape[-1] in (1, 3, 4) and shape[0] > 4
