"""Detection collate: padded images and ragged per-object fields, copied natively into one buffer
each. DetectionCollate is the entry point; it reads the samples (_samples.py), plans every field
(_plan.py), then writes them into fresh memory (_write.py) or a ring slot (_ring_batch.py)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.utils.data import get_worker_info

from .. import _C
from .._util.checks import boolean, non_negative_int
from ..io.deferred import DeferredSamples
from ._pairs import collate_same_size_pairs, plan_deferred, plan_pairs
from ._plan import CollateOptions, plan_batch
from ._ring_batch import write_into_ring
from ._samples import INDEX_KEY, REAL_DTYPES, as_dicts
from ._write import MEMORY_KINDS, resolve_memory, write_batch
from .batch import DetectionBatch
from .ring import SharedRing, check_slots, check_timeout

__all__ = [
    "DetectionBatch",
    "DetectionCollate",
    "buffer_pool_stats",
    "clear_buffer_pool",
    "fast_detection_collate",
    "set_buffer_pool_limit",
]

# Far above any real stride (32..512) yet small enough that padded sizes stay far from int64.
MAX_SIZE_DIVISIBILITY = 1 << 16
_INT64_MAX = (1 << 63) - 1


class DetectionCollate:
    """A ``collate_fn`` for detection: padded images and ragged annotations in one buffer per field.

    Args:
        size_divisibility: pad H and W up to a multiple of this (0: to the batch maximum only;
            at most 65536).
        pad_value: value of the padding pixels, converted to the image dtype (must fit it).
        channels_last: return images with channels_last strides.
        image_key: the image's field name in dict samples (and in the batch of ``(image,
            target)`` samples, where it cannot be "target"). "__index__" is reserved.
        image_fields: names of fixed-shape per-image array fields, stacked to [B, ...] instead of
            packed along their first dimension.
        target_dtype: dtype of the target of ``(image, target)`` samples; float32 matches the stock
            ``detection_collate`` (``torch.FloatTensor``); None keeps each target's own dtype.
        memory: "auto" (shared memory in a DataLoader worker, pinned with CUDA, else the recycling
            pool), or force "pooled", "pinned", "shared" or "plain".
        shared_ring: collate every batch into a slot of a pool of reusable shared-memory slots
            created now, in this (the main) process: workers write a batch into a free slot and
            send only a small handle; the main process views the slot zero-copy (page-locked
            where CUDA is available, so ``pin_memory()`` is a no-op) and the slot is reused once
            the last tensor viewing it is freed. See :attr:`ring` for its statistics.
        ring_slots: most slots in the ring (1 to 1024, ``fastloader.ring.MAX_RING_SLOTS``).
            Each is created on first use, sized from the batch and grown for a bigger one, so
            only the slots in use cost memory: the default 64 covers ``num_workers *
            prefetch_factor`` plus the held batches of most set-ups.
        ring_timeout: seconds (finite, >= 0) a worker waits for a free slot before it falls back
            to fresh shared memory (counted in ``ring.stats()["fallbacks"]``).

    Pickling keeps the ring (that is how DataLoader workers reach it); ``copy.deepcopy`` gives
    the copy a ring of its own, so closing one never breaks the other.
    """

    def __init__(
        self,
        size_divisibility: int = 0,
        pad_value: float | bool = 0,
        channels_last: bool = False,
        image_key: str = "image",
        image_fields: Iterable[str] = (),
        *,
        target_dtype: torch.dtype | None = torch.float32,
        memory: str = "auto",
        shared_ring: bool = False,
        ring_slots: int = 64,
        ring_timeout: float = 2.0,
    ) -> None:
        self.size_divisibility: int = _size_divisibility(size_divisibility)
        if not isinstance(pad_value, numbers.Real):
            raise TypeError(
                f"pad_value should be a real number, but got {type(pad_value).__name__}"
            )
        self.pad_value: float | bool = pad_value
        self.channels_last: bool = boolean(channels_last, "channels_last")
        if not isinstance(image_key, str) or not image_key:
            raise TypeError(f"image_key should be a non-empty str, but got {image_key!r}")
        if image_key == INDEX_KEY:
            raise ValueError(
                f"image_key={image_key!r} is reserved for the batch's index block "
                f"(DetectionBatch.tensors())"
            )
        self.image_key: str = image_key
        self.image_fields: tuple[str, ...] = _image_fields(image_fields, image_key)
        if target_dtype is not None and target_dtype not in REAL_DTYPES:
            raise TypeError(
                f"target_dtype should be a real torch.dtype or None, but got {target_dtype!r}"
            )
        self.target_dtype: torch.dtype | None = target_dtype
        if memory not in MEMORY_KINDS:
            raise ValueError(f"memory should be one of {MEMORY_KINDS}, but got memory={memory!r}")
        self.memory: str = memory
        self.shared_ring: bool = boolean(shared_ring, "shared_ring")
        self._ring: SharedRing | None = _new_ring(shared_ring, memory, ring_slots, ring_timeout)

    @property
    def ring(self) -> SharedRing | None:
        """The shared-memory ring (``shared_ring=True``), e.g. ``collate.ring.stats()``."""
        return self._ring

    def close_ring(self) -> None:
        """Unlinks the ring's files now (they are also removed when this collate is freed and at
        exit); batches still held stay valid. Later calls fall back to fresh memory."""
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size_divisibility={self.size_divisibility}, "
            f"pad_value={self.pad_value!r}, channels_last={self.channels_last}, "
            f"image_key={self.image_key!r}, image_fields={self.image_fields!r}, "
            f"target_dtype={self.target_dtype}, memory={self.memory!r}, "
            f"shared_ring={self.shared_ring})"
        )

    # ---- the collate ----------------------------------------------------------------------
    def __call__(self, batch: Sequence[Any]) -> DetectionBatch:
        """Reads the samples, plans every field (all checks before any allocation), writes."""
        options = self._options()
        if self._ring is None and resolve_memory(self.memory) in ("pooled", "plain"):
            done = collate_same_size_pairs(batch, options)  # small batches: no plan objects
            if done is not None:
                return done
        # Images still in their files (VOCDetection(read_into_batch=True)): read into place.
        plan = plan_deferred(batch, options) if isinstance(batch, DeferredSamples) else None
        if plan is None:
            if isinstance(batch, DeferredSamples):
                batch = list(batch)  # reads the images: the paths below
            plan = plan_pairs(batch, options)  # the common case, without per-sample objects
        if plan is None:
            samples, tuple_samples = as_dicts(batch, self.image_key)
            plan = plan_batch(samples, tuple_samples, options)
        if self._ring is not None:
            # Every field in one slot of the shared ring; None when no slot came free in time.
            in_ring = write_into_ring(self._ring, plan, in_worker=get_worker_info() is not None)
            if in_ring is not None:
                return in_ring
        return write_batch(plan, resolve_memory(self.memory))

    def _options(self) -> CollateOptions:
        # Read per call: the settings are plain attributes a user may change.
        return CollateOptions(
            self.size_divisibility,
            self.pad_value,
            self.channels_last,
            self.image_key,
            self.image_fields,
            self.target_dtype,
        )


def _size_divisibility(value: Any) -> int:
    step = non_negative_int(value, "size_divisibility")
    if step > MAX_SIZE_DIVISIBILITY:
        raise ValueError(
            f"size_divisibility should be at most {MAX_SIZE_DIVISIBILITY}, but got "
            f"size_divisibility={value}"
        )
    return step


def _image_fields(value: Iterable[str], image_key: str) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)):
        raise TypeError(
            "image_fields should be a sequence of field names, but got a single str; "
            f"write image_fields=({value!r},)"
        )
    fields = tuple(value)
    for name in fields:
        if not isinstance(name, str):
            raise TypeError(f"image_fields should contain str names, but got {name!r}")
    if image_key in fields:
        raise ValueError(f"image_fields should not contain the image_key {image_key!r}")
    return fields


def _new_ring(shared_ring: bool, memory: str, slots: Any, timeout: Any) -> SharedRing | None:
    """The shared ring DetectionCollate(shared_ring=True) writes into (None without one)."""
    slots, timeout = check_slots(slots, "ring_slots"), check_timeout(timeout, "ring_timeout")
    if not shared_ring:
        return None
    if memory not in ("auto", "shared", "pinned"):
        raise ValueError(
            f"shared_ring=True puts batches in shared (and, with CUDA, pinned) memory; it "
            f"cannot be combined with memory={memory!r} (use memory='auto')"
        )
    if get_worker_info() is not None:
        raise RuntimeError(
            "DetectionCollate(shared_ring=True) must be created in the main process, before "
            "the DataLoader starts its workers, not inside a worker"
        )
    return SharedRing(slots, timeout)


fast_detection_collate = DetectionCollate()
"""A ready :class:`DetectionCollate` with the default settings:
``collate_fn=fast_detection_collate``."""


def buffer_pool_stats() -> dict[str, int]:
    """Bytes and blocks the recycling output pool holds (cached / live) and its hit counts."""
    return dict(_C.buffer_pool_stats())


def set_buffer_pool_limit(nbytes: int) -> None:
    """Most bytes of released output buffers kept for reuse (default 1 GiB; 0 disables reuse)."""
    # Any limit above int64 means "no limit" to the pool; the binding takes an int64.
    _C.set_buffer_pool_limit(min(non_negative_int(nbytes, "nbytes", limit=None), _INT64_MAX))


def clear_buffer_pool() -> None:
    """Frees every cached output buffer now; buffers still viewed by tensors are unaffected."""
    _C.clear_buffer_pool()
