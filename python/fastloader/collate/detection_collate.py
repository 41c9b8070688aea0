"""DetectionCollate: the collate_fn. One call is: the planners, in order, until one returns a
plan (``PLANNERS``; see the package docstring for the walk of one batch), then the writer puts
the plan into a shared-ring slot or fresh memory (``_write``)."""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch.utils.data import get_worker_info

from .. import _C
from .._util.checks import boolean, non_negative_int
from ._deferred import plan_deferred
from ._general import plan_general
from ._pairs import plan_pairs, plan_same_size_pairs
from ._plan import MAX_SIZE_DIVISIBILITY, CollateOptions, Plan, StackPlan
from ._samples import INDEX_KEY, REAL_DTYPES
from ._write import MEMORY_KINDS, resolve_memory, write_batch, write_into_ring, write_stacked
from .batch import DetectionBatch
from .ring import RingClosedError, SharedRing, check_slots, check_timeout

__all__ = [
    "PLANNERS",
    "DetectionBatch",
    "DetectionCollate",
    "buffer_pool_stats",
    "clear_buffer_pool",
    "fast_detection_collate",
    "set_buffer_pool_limit",
]

_INT64_MAX = (1 << 63) - 1

Planner = Callable[[Any, CollateOptions], "Plan | None"]
# The planners, tried in order: each returns a plan or None ("not mine"), and never writes.
# The first three are fast paths for common batches; plan_general takes (or refuses, naming the
# problem) whatever is left. A new kind of batch is one planner in its own module, listed here
# before plan_general (the walk of one batch: the package docstring).
PLANNERS: tuple[Planner, ...] = (
    plan_deferred,  # images still to be written (in their files, or augmented on the way in)
    plan_same_size_pairs,  # small same-size tensor pairs: torch.stack / torch.cat (StackPlan)
    plan_pairs,  # (image tensor, target tensor) pairs: no per-sample objects
    plan_general,  # anything else: dicts, numpy, numbers, lists, strings; every error named
)


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
        ring_slots: most slots in the ring, 1 to 1024 (``MAX_RING_SLOTS`` in
            ``fastloader.collate.ring``). Each is created on first use, sized from the batch and
            grown for a bigger one, so only the slots in use cost memory: the default 64 covers
            ``num_workers * prefetch_factor`` plus the held batches of most set-ups.
        ring_timeout: seconds (finite, >= 0) a worker waits for a free slot before it falls back
            to fresh shared memory (counted in ``ring.stats()["fallbacks"]``).

    Images are ``[C, H, W]`` (channels first, as torchvision's ``to_tensor`` gives) and batch to
    ``[B, C, H, W]``; ``[H, W]`` images batch to ``[B, H, W]``. A 3-D image whose last dimension
    is 1, 3 or 4 and whose first is above 4 looks like ``[H, W, C]`` and is refused with a hint
    (``image.permute(2, 0, 1)``) rather than batched as ``[B, H, W, C]``.

    The settings are attributes, checked again when set. Pickling keeps the ring (that is how
    DataLoader workers reach it; only the collate that made it closes it); ``copy.deepcopy``
    gives the copy a ring of its own, so closing one never breaks the other.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> from fastloader import DetectionCollate
        >>> image = torch.zeros(3, 20, 30, dtype=torch.uint8)
        >>> samples = [(image, torch.rand(i, 5)) for i in range(4)]
        >>> collate = DetectionCollate(size_divisibility=32)
        >>> images, targets = next(iter(DataLoader(samples, batch_size=4, collate_fn=collate)))
        >>> images.shape, images.dtype, [len(t) for t in targets]
        (torch.Size([4, 3, 32, 32]), torch.uint8, [0, 1, 2, 3])
        >>> collate.size_divisibility = -5  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: size_divisibility should be a non-negative integer value, but got ...
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
        if memory not in MEMORY_KINDS:
            raise ValueError(f"memory should be one of {MEMORY_KINDS}, but got memory={memory!r}")
        self._shared_ring: bool = boolean(shared_ring, "shared_ring")
        self._settings: dict[str, Any] = {
            "memory": memory,
            "image_key": "image",
            "image_fields": (),
        }
        self.size_divisibility = size_divisibility
        self.pad_value = pad_value
        self.channels_last = channels_last
        self.image_key = image_key
        self.image_fields = image_fields
        self.target_dtype = target_dtype
        self.memory = memory
        self._ring: SharedRing | None = _new_ring(shared_ring, memory, ring_slots, ring_timeout)
        self._owns_ring = self._ring is not None

    # ---- settings: checked when set, after construction too ---------------------------------
    @property
    def size_divisibility(self) -> int:
        return self._settings["size_divisibility"]

    @size_divisibility.setter
    def size_divisibility(self, value: int) -> None:
        self._set("size_divisibility", _size_divisibility(value))

    @property
    def pad_value(self) -> float | bool:
        return self._settings["pad_value"]

    @pad_value.setter
    def pad_value(self, value: float | bool) -> None:
        if not isinstance(value, numbers.Real):
            raise TypeError(f"pad_value should be a real number, but got {type(value).__name__}")
        self._set("pad_value", value)

    @property
    def channels_last(self) -> bool:
        return self._settings["channels_last"]

    @channels_last.setter
    def channels_last(self, value: bool) -> None:
        self._set("channels_last", boolean(value, "channels_last"))

    @property
    def image_key(self) -> str:
        return self._settings["image_key"]

    @image_key.setter
    def image_key(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise TypeError(f"image_key should be a non-empty str, but got {value!r}")
        if value == INDEX_KEY:
            raise ValueError(
                f"image_key={value!r} is reserved for the batch's index block "
                f"(DetectionBatch.tensors())"
            )
        if value in self._settings["image_fields"]:
            raise ValueError(f"image_fields should not contain the image_key {value!r}")
        self._set("image_key", value)

    @property
    def image_fields(self) -> tuple[str, ...]:
        return self._settings["image_fields"]

    @image_fields.setter
    def image_fields(self, value: Iterable[str]) -> None:
        self._set("image_fields", _image_fields(value, self.image_key))

    @property
    def target_dtype(self) -> torch.dtype | None:
        return self._settings["target_dtype"]

    @target_dtype.setter
    def target_dtype(self, value: torch.dtype | None) -> None:
        if value is not None and value not in REAL_DTYPES:
            raise TypeError(f"target_dtype should be a real torch.dtype or None, but got {value!r}")
        self._set("target_dtype", value)

    @property
    def memory(self) -> str:
        return self._settings["memory"]

    @memory.setter
    def memory(self, value: str) -> None:
        if value not in MEMORY_KINDS:
            raise ValueError(f"memory should be one of {MEMORY_KINDS}, but got memory={value!r}")
        _check_ring_memory(self._shared_ring, value)
        self._set("memory", value)

    @property
    def shared_ring(self) -> bool:
        """Whether this collate was made with a ring (read-only: make a new DetectionCollate)."""
        return self._shared_ring

    def _set(self, name: str, value: Any) -> None:
        self._settings[name] = value
        if "target_dtype" not in self._settings:
            return  # still in __init__
        # The options the planners read, for batches that may live in torch's memory (no ring,
        # pooled or plain) and for the others.
        self._options = CollateOptions(
            self.size_divisibility,
            self.pad_value,
            self.channels_last,
            self.image_key,
            self.image_fields,
            self.target_dtype,
        )
        self._options_elsewhere = self._options._replace(torch_memory=False)

    @property
    def ring(self) -> SharedRing | None:
        """The shared-memory ring (``shared_ring=True``), e.g. ``collate.ring.stats()``."""
        return self._ring

    def close_ring(self) -> None:
        """Unlinks the ring's files now (they are also removed when this collate is freed and at
        exit); batches still held stay valid. Later calls fall back to fresh memory. On a copy
        made by pickling (in this process or another), only this copy stops using the ring."""
        ring, self._ring = self._ring, None
        if ring is not None and self._owns_ring:
            ring.close()

    def __getstate__(self) -> dict[str, Any]:
        # A pickled copy shares the ring (how DataLoader workers reach it) but does not own it.
        state = self.__dict__.copy()
        state["_owns_ring"] = False
        return state

    def __deepcopy__(self, memo: dict) -> DetectionCollate:
        """A copy with a ring of its own (SharedRing's deepcopy makes a new one in the owner), so
        closing one never breaks the other."""
        twin = type(self).__new__(type(self))
        memo[id(self)] = twin
        twin.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return twin

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
        """The first plan the planners give (all checks before any allocation), written into a
        ring slot or fresh memory."""
        ring, memory = self._ring, resolve_memory(self.memory)
        torch_memory = ring is None and memory in ("pooled", "plain")
        options = self._options if torch_memory else self._options_elsewhere
        for planner in PLANNERS:
            plan = planner(batch, options)
            if plan is None:
                continue
            if isinstance(plan, StackPlan):
                done = write_stacked(plan)
                if done is not None:
                    return done
                continue  # torch refused the tensors: the next planner takes the batch
            if ring is not None:
                # Every field in one slot of the shared ring; None when no slot came free in time.
                try:
                    in_ring = write_into_ring(ring, plan, in_worker=get_worker_info() is not None)
                except RingClosedError:
                    if get_worker_info() is not None:
                        raise
                    self._ring = None  # closed by its owner: fresh memory from now on
                    in_ring = None
                if in_ring is not None:
                    return in_ring
            return write_batch(plan, memory)
        raise AssertionError("plan_general plans every batch or raises")  # pragma: no cover


def _check_ring_memory(shared_ring: bool, memory: str) -> None:
    if shared_ring and memory not in ("auto", "shared", "pinned"):
        raise ValueError(
            f"shared_ring=True puts batches in shared (and, with CUDA, pinned) memory; it "
            f"cannot be combined with memory={memory!r} (use memory='auto')"
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
    _check_ring_memory(shared_ring, memory)
    if get_worker_info() is not None:
        raise RuntimeError(
            "DetectionCollate(shared_ring=True) must be created in the main process, before "
            "the DataLoader starts its workers, not inside a worker"
        )
    return SharedRing(slots, timeout)


fast_detection_collate = DetectionCollate()
fast_detection_collate.__doc__ = """A ready ``collate_fn``: :class:`DetectionCollate` with the
default settings, a drop-in for the stock ``detection_collate``.

It takes a list of ``(image, target)`` pairs ([C, H_i, W_i] images, [N_i, D] targets; tensors,
numpy arrays or nested lists) or of dicts, and returns a :class:`DetectionBatch`, which unpacks
as ``images, targets``: images padded to [B, C, max H, max W] in one buffer, targets as float32
[N_i, D] views of one packed buffer. dtypes of images are kept; zero boxes are fine.

Example:
    >>> import torch
    >>> from fastloader import fast_detection_collate
    >>> images, targets = fast_detection_collate(
    ...     [(torch.ones(3, 2, 3), [[0, 0, 1, 1, 7]]), (torch.ones(3, 3, 2), torch.zeros(0, 5))]
    ... )
    >>> images.shape, images[0, 0].tolist()
    (torch.Size([2, 3, 3, 3]), [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    >>> targets[0].tolist(), targets[1].shape
    ([[0.0, 0.0, 1.0, 1.0, 7.0]], torch.Size([0, 5]))
"""
# doctest finds module-level functions and classes; the instance's examples are listed here.
__test__ = {"fast_detection_collate": fast_detection_collate.__doc__}


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
