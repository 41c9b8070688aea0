"""Allocating a planned batch and writing its fields with the copy kernels (fresh memory of the
requested kind: pooled, pinned, shared or plain)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import get_worker_info

from .. import _C
from .._util.pool import pooled_bytes
from .._util.threads import native_threads
from ._plan import BatchPlan, FieldPlan, IndexPlan, PackPlan, PadPlan
from .batch import DetectionBatch

__all__ = [
    "POOL_MIN_BYTES",
    "allocate",
    "resolve_memory",
    "threads_for",
    "write_batch",
    "write_field",
    "write_index",
]

MEMORY_KINDS = ("auto", "pooled", "pinned", "shared", "plain")

# Below this many output bytes a batch is copied by the calling thread alone, with no thread
# started. A per-call thread must wait for a time slice when the cores are busy (a DataLoader's
# workers, other jobs): measured here on 2 loaded cores (pad_images, 3xHxW uint8, medians of 9-11
# interleaved runs), one thread vs two: 1.2 MB 69 vs 113 us, 4.9 MB 346 us vs 3.8 ms, 9.8 MB
# 736 vs 983 us, 19.7 MB 1.45 vs 1.55 ms; from 39 MB two threads win (14.1 vs 12.8 ms).
PARALLEL_MIN_BYTES = 32 << 20


# Below this many bytes a "pooled" batch takes memory from torch's allocator instead: malloc reuses
# freed memory of that size as cheaply, without the pool's per-batch cost (measured here: 15 us a
# batch for its block's Python wrappers, a third of copying 8 x 3x224x224 uint8). The pool pays
# for itself on big batches, whose fresh pages would fault in (100+ MB: ~1.9 GB/s here).
POOL_MIN_BYTES = 16 << 20


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


def write_field(plan: FieldPlan, raw: torch.Tensor, threads: int) -> torch.Tensor:
    """Copies the field into raw (1-D uint8, plan.nbytes long) and returns its typed view."""
    if isinstance(plan, PadPlan) and plan.reader is not None:
        return plan.reader(raw)
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


def write_batch(plan: BatchPlan, memory: str) -> DetectionBatch:
    """The planned batch in fresh memory of kind memory (resolved), one block per field."""
    threads = threads_for(plan.nbytes)
    fields: dict[str, object] = {}
    for name in plan.layout.kinds:
        field = plan.tensors.get(name)
        if field is None:
            fields[name] = plan.lists[name]
        else:
            fields[name] = write_field(field, allocate(field.nbytes, memory), threads)
    index = write_index(plan.index, allocate(plan.index.nbytes, memory))
    return DetectionBatch(fields, index, plan.layout)
