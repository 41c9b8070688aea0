"""Batches in shared-ring slots, the receiving side: the handle a worker sends for a batch it
wrote into a slot (``_write.write_into_ring``), and that handle opened in the main process as a
DetectionBatch viewing the slot."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .batch import BatchLayout, DetectionBatch
from .ring import SlotRef

__all__ = ["RingBatchHandle", "open_batch", "place_of"]


class _Place(NamedTuple):
    """Where one tensor lies in a slot."""

    offset: int  # bytes from the slot start to element 0
    dtype: torch.dtype
    shape: tuple[int, ...]
    stride: tuple[int, ...]  # elements


class RingBatchHandle(NamedTuple):
    """What a worker sends for a batch in a slot: where each tensor is, and the rest of the
    batch by value (picklable)."""

    slot: SlotRef
    tensors: dict[str, _Place]  # the fields that are tensors
    index: _Place  # type: ignore[assignment]  # shadows tuple.index; the int64 index block, apart from the fields (any field name is allowed)
    lists: dict[str, list]  # string fields travel by value
    layout: BatchLayout


def place_of(tensor: torch.Tensor, offset: int) -> _Place:
    """Where tensor lies in its slot (offset: bytes from the slot start to element 0)."""
    return _Place(offset, tensor.dtype, tuple(tensor.shape), tuple(tensor.stride()))


def _fields(layout: BatchLayout, tensors: dict[str, Any], lists: dict[str, list]) -> dict:
    return {name: tensors[name] if name in tensors else lists[name] for name in layout.kinds}


def open_batch(handle: RingBatchHandle) -> DetectionBatch:
    """The handle's batch as zero-copy views of its slot (main process); the slot is freed when
    the last of them is. Each tensor gets a storage of its own over its bytes of the slot (not
    views of one storage in several dtypes, which torch.save refuses)."""
    whole, lease = handle.slot.ring.open_slot(handle.slot)
    memory = whole.numpy()  # holds the slot's lease, as every array cut from it does

    def view(place: _Place) -> torch.Tensor:
        itemsize = place.dtype.itemsize
        if 0 in place.shape:
            span = 0
        else:
            span = 1 + sum(
                (n - 1) * step for n, step in zip(place.shape, place.stride, strict=True)
            )
        raw = torch.from_numpy(memory[place.offset : place.offset + span * itemsize])
        typed = raw if place.dtype is torch.uint8 else raw.view(place.dtype)
        return typed.as_strided(place.shape, place.stride)

    tensors = {name: view(place) for name, place in handle.tensors.items()}
    batch = DetectionBatch(
        _fields(handle.layout, tensors, handle.lists), view(handle.index), handle.layout
    )
    batch._lease = lease  # where .to("cuda") records the event that guards reuse
    return batch
