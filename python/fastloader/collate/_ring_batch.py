"""Batches in shared-ring slots: a planned batch written into one slot (in a worker it then pickles
as the slot's small handle), and a received handle opened as a DetectionBatch viewing the slot."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ._plan import BatchPlan
from ._write import threads_for, write_field, write_index
from .batch import BatchLayout, DetectionBatch
from .ring import SharedRing, SlotRef

__all__ = ["RingBatchHandle", "open_batch", "write_into_ring"]

_ALIGN = 64  # every tensor starts on a cache line (and any dtype's alignment)


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


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


def write_into_ring(ring: SharedRing, plan: BatchPlan, in_worker: bool) -> DetectionBatch | None:
    """Writes the planned batch into one slot of ring. In a worker: a batch that pickles as its
    handle; in the main process: the batch viewing the slot under its lease. None when no slot
    came free in time (the caller falls back to fresh memory)."""
    planned = list(plan.tensors.items())
    offsets, end = [], 0
    for _, field in planned:
        offsets.append(end)
        end = _align(end + field.nbytes)
    index_offset, end = end, _align(end + plan.index.nbytes)
    grant = ring.acquire(max(end, _ALIGN), wait=in_worker)
    if grant is None:
        return None
    try:
        slot = torch.from_numpy(grant.memory)
        threads = threads_for(plan.nbytes)
        written = {
            name: write_field(field, slot[offset : offset + field.nbytes], threads)
            for (name, field), offset in zip(planned, offsets, strict=True)
        }
        index = write_index(plan.index, slot[index_offset : index_offset + plan.index.nbytes])
    except BaseException:
        ring.release(grant.ref)
        raise
    # Offsets from the plan, not data_ptr() arithmetic: an empty tensor's data_ptr() is 0.
    places = {
        name: _place(written[name], offset)
        for (name, _), offset in zip(planned, offsets, strict=True)
    }
    handle = RingBatchHandle(
        grant.ref, places, _place(index, index_offset), dict(plan.lists), plan.layout
    )
    if not in_worker:
        return open_batch(handle)
    batch = DetectionBatch(_fields(plan.layout, written, plan.lists), index, plan.layout)
    batch._reduce_as = (open_batch, (handle,))  # the main process maps the slot
    return batch


def _place(tensor: torch.Tensor, offset: int) -> _Place:
    return _Place(offset, tensor.dtype, tuple(tensor.shape), tuple(tensor.stride()))


def _fields(layout: BatchLayout, tensors: dict[str, Any], lists: dict[str, list]) -> dict:
    return {name: tensors[name] if name in tensors else lists[name] for name in layout.kinds}


def open_batch(handle: RingBatchHandle) -> DetectionBatch:
    """The handle's batch as zero-copy views of its slot (main process); the slot is freed when
    the last of them is."""
    whole, lease = handle.slot.ring.open_slot(handle.slot)

    def view(place: _Place) -> torch.Tensor:
        typed = whole.view(place.dtype)
        return typed.as_strided(place.shape, place.stride, place.offset // place.dtype.itemsize)

    tensors = {name: view(place) for name, place in handle.tensors.items()}
    batch = DetectionBatch(
        _fields(handle.layout, tensors, handle.lists), view(handle.index), handle.layout
    )
    batch._lease = lease  # where .to("cuda") records the event that guards reuse
    return batch
