"""Writing a plan: allocating its memory (fresh memory of the requested kind: pooled, pinned,
shared or plain; or one slot of the shared ring) and copying every field with the kernels (or
torch, or the field's own writer). The only stage that allocates output memory or writes it."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import get_worker_info

from .. import _C
from .._util.pool import pooled_bytes
from .._util.threads import native_threads
from ._plan import (
    PARALLEL_MIN_BYTES,
    POOL_MIN_BYTES,
    BatchPlan,
    FieldPlan,
    IndexPlan,
    PackPlan,
    PadPlan,
    StackPlan,
    WritePlan,
)
from ._ring_batch import RingBatchHandle, open_batch, place_of
from .batch import BatchLayout, DetectionBatch, FieldKind
from .ring import SharedRing

__all__ = [
    "MEMORY_KINDS",
    "allocate",
    "resolve_memory",
    "threads_for",
    "write_batch",
    "write_field",
    "write_index",
    "write_into_ring",
    "write_stacked",
]

MEMORY_KINDS = ("auto", "pooled", "pinned", "shared", "plain")
_ALIGN = 64  # in a ring slot every tensor starts on a cache line (and any dtype's alignment)
_STRIDED = torch.strided


def threads_for(nbytes: int) -> int:
    """Native threads for a batch of nbytes: torch's count (1 inside DataLoader workers) for
    big batches, one for small ones."""
    return native_threads() if nbytes >= PARALLEL_MIN_BYTES else 1


def resolve_memory(memory: str) -> str:
    """The memory kind a batch made here gets for the requested one."""
    if get_worker_info() is not None:
        # Never pin in a worker: CUDA must not be initialised in a forked process.
        return "shared" if memory in ("auto", "shared", "pinned") else memory
    if memory == "auto":
        return "pinned" if _cuda() else "pooled"
    if memory == "pinned" and not _cuda():
        return "pooled"  # CPU-only torch: nothing to pin, fall back without error
    return memory


def _cuda() -> bool:
    return torch.cuda.is_available()


def allocate(nbytes: int, memory: str) -> torch.Tensor:
    """A 1-D uint8 tensor of nbytes in the requested kind of memory."""
    if memory == "shared":
        storage = torch.UntypedStorage._new_shared(nbytes)
        return torch.empty(0, dtype=torch.uint8).set_(storage, 0, (nbytes,), (1,))
    if memory == "pinned":
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    if memory == "pooled" and nbytes >= POOL_MIN_BYTES:
        # The tensor holds the array, the array holds the block: when the last view of the batch
        # is freed the block goes back to the pool with its pages already faulted in.
        return torch.from_numpy(pooled_bytes(nbytes))
    return torch.empty(nbytes, dtype=torch.uint8)


# ---- fields ------------------------------------------------------------------------------------
def write_field(plan: FieldPlan, raw: torch.Tensor, threads: int) -> torch.Tensor:
    """Copies the field into raw (1-D uint8, plan.nbytes long) and returns its typed view."""
    if isinstance(plan, WritePlan):
        field = _as_dtype(raw, plan.dtype).view(plan.shape)
        plan.write(field)
        return field
    if isinstance(plan, PadPlan) and plan.exact_tensors is not None:
        # Unpadded images: torch.stack with torch's threads, as the stock collate copies them.
        shape = (len(plan.exact_tensors), plan.channels, plan.height, plan.width)
        return torch.stack(plan.exact_tensors, out=_as_dtype(raw, plan.dtype).view(shape))
    if isinstance(plan, PackPlan) and plan.tensors is not None:
        return torch.cat(plan.tensors, out=_as_dtype(raw, plan.dtype).view(plan.shape))
    # zero-copy: the kernel checks its size and writability itself. Typed Any: numpy's stubs give
    # ndarray the buffer protocol (_C.pyi's Buffer) only for Python >= 3.12.
    out: Any = raw.numpy()
    element = plan.dtype.itemsize
    if isinstance(plan, PadPlan):
        _C.pad_images(
            plan.arrays,
            plan.channels,
            plan.height,
            plan.width,
            plan.fill,
            plan.channels_last,
            out,
            threads,
        )
        batch, channels, height, width = len(plan.arrays), plan.channels, plan.height, plan.width
        typed = _as_dtype(raw, plan.dtype)
        if plan.channels_last:
            # torch's own channels_last strides (a permuted view differs when H or W is 0).
            strides = (height * width * channels, 1, width * channels, channels)
            return typed.as_strided((batch, channels, height, width), strides)
        if plan.grayscale:
            return typed.view(batch, height, width)
        return typed.view(batch, channels, height, width)
    _C.pack_arrays(plan.arrays, element, out, threads)
    return _as_dtype(raw, plan.dtype).view(plan.shape)


def _as_dtype(raw: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return raw if dtype is torch.uint8 else raw.view(dtype)  # a view costs microseconds


def write_index(plan: IndexPlan, raw: torch.Tensor) -> torch.Tensor:
    """counts [B] | offsets [B+1] | image_sizes [B, 2] | batch_index [sum counts] into raw."""
    index = raw.view(torch.int64)
    _C.write_index_block(plan.counts, [v for size in plan.sizes for v in size], index.numpy())
    return index


def _fields(layout: BatchLayout, tensors: dict[str, Any], lists: dict[str, list]) -> dict:
    return {name: tensors[name] if name in tensors else lists[name] for name in layout.kinds}


# ---- whole batches -------------------------------------------------------------------------------
def write_batch(plan: BatchPlan, memory: str) -> DetectionBatch:
    """The planned batch in fresh memory of kind memory (resolved), one block per field."""
    threads = threads_for(plan.nbytes)
    written = {
        name: write_field(field, allocate(field.nbytes, memory), threads)
        for name, field in plan.tensors.items()
    }
    index = write_index(plan.index, allocate(plan.index.nbytes, memory))
    return DetectionBatch(_fields(plan.layout, written, plan.lists), index, plan.layout)


def write_stacked(plan: StackPlan) -> DetectionBatch | None:
    """The StackPlan's batch, stacked and concatenated by torch into memory from torch's
    allocator. None when torch refuses the tensors (devices, layouts or target widths differ:
    the planner read those once, not per sample); the general planner then names the problem."""
    try:
        stacked = torch.stack(plan.images)
        packed = torch.cat(plan.targets)
    except RuntimeError:
        return None
    if stacked.layout is not _STRIDED or packed.layout is not _STRIDED or not packed.is_cpu:
        return None
    size, (height, width) = len(plan.images), stacked.shape[2:]
    index = torch.empty(4 * size + 1 + packed.shape[0], dtype=torch.int64)
    _C.write_index_block(plan.counts, [height, width] * size, index.numpy())
    key = plan.image_key
    kinds = {key: FieldKind.IMAGE, "target": FieldKind.OBJECT}
    layout = BatchLayout(kinds, plan.counts, [(height, width)] * size, key, True)
    return DetectionBatch({key: stacked, "target": packed}, index, layout)


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


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
        name: place_of(written[name], offset)
        for (name, _), offset in zip(planned, offsets, strict=True)
    }
    handle = RingBatchHandle(
        grant.ref, places, place_of(index, index_offset), dict(plan.lists), plan.layout
    )
    if not in_worker:
        return open_batch(handle)
    batch = DetectionBatch(_fields(plan.layout, written, plan.lists), index, plan.layout)
    batch._reduce_as = (open_batch, (handle,))  # the main process maps the slot
    return batch
