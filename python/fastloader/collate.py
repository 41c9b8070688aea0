"""Detection collate: padded images and ragged per-object fields, copied natively into one buffer each."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import get_worker_info

from . import _C
from ._checks import boolean, non_negative_int, positive_int
from .ring import SharedRing
from ._threads import native_threads

__all__ = [
    "DetectionBatch",
    "DetectionCollate",
    "buffer_pool_stats",
    "clear_buffer_pool",
    "fast_detection_collate",
    "set_buffer_pool_limit",
]

_NUMPY_TO_TORCH = {
    np.dtype(np.bool_): torch.bool,
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.int8): torch.int8,
    np.dtype(np.int16): torch.int16,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64,
    # torch >= 2.3 only; before that such arrays are refused by _from_array, naming the dtype.
    np.dtype(np.uint16): getattr(torch, "uint16", None),
    np.dtype(np.uint32): getattr(torch, "uint32", None),
    np.dtype(np.uint64): getattr(torch, "uint64", None),
    np.dtype(np.float16): torch.float16,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
}
_REAL_DTYPES = frozenset(_NUMPY_TO_TORCH.values()) | {torch.bfloat16}
_MEMORY_KINDS = ("auto", "pooled", "pinned", "shared", "plain")

# Field kinds: how a field's per-sample values become one batch tensor.
_IMAGE = "image"  # padded and stacked: [B, C, H, W]
_OBJECT = "object"  # ragged along dim 0, packed: [sum N_i, ...]
_PER_IMAGE = "per_image"  # fixed shape, stacked: [B, ...]
_LIST = "list"  # strings: kept as a Python list, as default_collate does


class _Source(NamedTuple):
    """One sample's value of one field, as the kernels see it (keep holds the memory alive)."""

    keep: Any
    dtype: torch.dtype
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # bytes
    address: int
    empty_list: bool  # `[]`: zero objects whose trailing shape and dtype follow the other samples

    def view(self) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        return self.address, self.shape, self.strides


def _from_tensor(value: torch.Tensor, index: int, name: str, empty_list: bool = False) -> _Source:
    if not value.is_cpu:
        raise ValueError(
            f"sample {index} field {name!r}: expected a CPU tensor, but got one on {value.device}"
        )
    if value.layout != torch.strided:
        raise TypeError(
            f"sample {index} field {name!r}: expected a dense tensor, got {value.layout}"
        )
    if value.dtype not in _REAL_DTYPES:
        raise TypeError(
            f"sample {index} field {name!r}: expected a real numeric dtype, but got {value.dtype}"
        )
    if value.is_neg():  # a lazy negated view: the raw memory is not the values
        value = value.resolve_neg()
    size = value.element_size()
    return _Source(
        value,
        value.dtype,
        tuple(value.shape),
        tuple([s * size for s in value.stride()]),
        value.data_ptr(),
        empty_list,
    )


def _from_array(value: np.ndarray, index: int, name: str) -> _Source:
    native = value.dtype.newbyteorder("=") if value.dtype.kind in "biuf" else value.dtype
    dtype = _NUMPY_TO_TORCH.get(native)
    if dtype is None:
        raise TypeError(
            f"sample {index} field {name!r}: expected a numeric array, but got dtype {value.dtype}"
        )
    if not value.dtype.isnative:  # the kernels copy bytes: swap into a copy, never the input
        value = value.astype(native)
    return _Source(
        value, dtype, value.shape, value.strides, value.__array_interface__["data"][0], False
    )


def _source(value: Any, index: int, name: str) -> _Source | None:
    """The value as a strided source; None for strings (kept as a list)."""
    if isinstance(value, torch.Tensor):
        return _from_tensor(value, index, name)
    if isinstance(value, np.ndarray):
        return _from_array(value, index, name)
    if isinstance(value, (str, bytes)):
        return None
    if isinstance(value, np.generic):
        return _from_array(np.asarray(value), index, name)
    if isinstance(value, bool):
        return _from_array(np.array(value, dtype=np.bool_), index, name)
    if isinstance(value, numbers.Integral):
        try:
            return _from_array(np.array(int(value), dtype=np.int64), index, name)
        except OverflowError:
            raise ValueError(
                f"sample {index} field {name!r}: {value} does not fit in int64"
            ) from None
    if isinstance(value, numbers.Real):  # float64, as default_collate makes Python floats
        return _from_array(np.array(float(value), dtype=np.float64), index, name)
    if isinstance(value, (list, tuple)):
        try:
            converted = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            kind = TypeError if _has_non_number(value) else ValueError  # else ragged
            raise kind(
                f"sample {index} field {name!r}: expected a (nested) list of numbers: {exc}"
            ) from None
        empty = converted.dim() == 1 and converted.numel() == 0
        return _from_tensor(converted, index, name, empty_list=empty)
    raise TypeError(
        f"sample {index} field {name!r}: expected a tensor, numpy array, number or nested list "
        f"of numbers, but got {type(value).__name__}"
    )


def _has_non_number(value: Any) -> bool:
    """Whether a nested list that torch refused holds a non-number (else it was ragged)."""
    if isinstance(value, (list, tuple)):
        return any(_has_non_number(v) for v in value)
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return False
    return not isinstance(value, numbers.Number)


def _converted(source: _Source, dtype: torch.dtype, index: int, name: str) -> _Source:
    keep = source.keep
    tensor = keep if isinstance(keep, torch.Tensor) else torch.from_numpy(keep)
    return _from_tensor(tensor.to(dtype), index, name, source.empty_list)


def _fill_bytes(pad_value: float | bool, dtype: torch.dtype) -> bytes:
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


def _allocate(nbytes: int, memory: str) -> torch.Tensor:
    """A 1-D uint8 tensor of nbytes in the requested kind of memory."""
    if memory == "shared":
        storage = torch.UntypedStorage._new_shared(nbytes)
        return torch.empty(0, dtype=torch.uint8).set_(storage, 0, (nbytes,), (1,))
    if memory == "pinned":
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    if memory == "pooled" and nbytes > 0:
        # The tensor holds the array, the array holds the block: when the last view of the batch
        # is freed the block goes back to the pool with its pages already faulted in.
        return torch.from_numpy(np.asarray(_C.PooledBuffer(nbytes)))
    return torch.empty(nbytes, dtype=torch.uint8)


def _resolve_memory(memory: str) -> str:
    if get_worker_info() is not None:
        # Never pin in a worker: CUDA must not be initialised in a forked process.
        return "shared" if memory in ("auto", "shared", "pinned") else memory
    if memory == "auto":
        return "pinned" if torch.cuda.is_available() else "pooled"
    if memory == "pinned" and not torch.cuda.is_available():
        return "pooled"  # CPU-only torch: nothing to pin, fall back without error
    return memory


class _Planned(NamedTuple):
    """One output field, validated and sized but not yet allocated: write(raw) fills raw (a 1-D
    uint8 tensor of nbytes) with the kernel and returns the typed field tensor."""

    nbytes: int
    write: Callable[[torch.Tensor], torch.Tensor]


def _promoted(dtypes: Sequence[torch.dtype]) -> torch.dtype:
    """The dtype every value of a field is converted to (torch's promotion rules)."""
    return functools.reduce(torch.promote_types, dtypes)


def _packed(
    sources: Sequence[_Source], dtype: torch.dtype, shape: tuple[int, ...], threads: int
) -> _Planned:
    """A field whose sources (all of dtype) are copied back to back into one [*shape] tensor:
    ragged per-object fields packed along dim 0 and per-image fields stacked alike."""
    element = _element_size(dtype)
    nbytes = math.prod(shape) * element

    def write(raw: torch.Tensor) -> torch.Tensor:
        _C.pack_arrays([s.view() for s in sources], element, raw.data_ptr(), nbytes, threads)
        return _typed(raw, dtype, shape)

    return _Planned(nbytes, write)


def _typed(raw: torch.Tensor, dtype: torch.dtype, shape: Sequence[int]) -> torch.Tensor:
    return raw.view(dtype).view(tuple(shape))


def _element_size(dtype: torch.dtype) -> int:
    return dtype.itemsize


def _shape(shape: Sequence[int]) -> list[int]:
    return [int(s) for s in shape]


class DetectionBatch:
    """A collated detection batch: one tensor per field, per-image views built on demand.

    For ``(image, target)`` samples it unpacks like the stock ``detection_collate`` result:
    ``images, targets = batch`` with ``targets`` a list of ``[N_i, D]`` views into one buffer.
    """

    def __init__(
        self,
        fields: dict[str, Any],
        kinds: dict[str, str],
        index: torch.Tensor,
        counts: list[int],
        sizes: list[tuple[int, int]],
        image_key: str,
        tuple_samples: bool,
    ) -> None:
        self._fields = fields
        self._kinds = kinds
        self._index = index  # int64: counts [B] | offsets [B+1] | image_sizes [B, 2] | batch_index
        self._counts = counts
        self._sizes = sizes
        self._image_key = image_key
        self._tuple_samples = tuple_samples
        self._views: dict[str, list] = {}
        self._lease: Any = None  # a shared-ring slot this batch views (main process)
        self._ring_handle: Any = None  # set in a worker: the batch travels as its slot's handle

    # ---- the batch as a whole -------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return len(self._counts)

    @property
    def image_key(self) -> str:
        return self._image_key

    @property
    def images(self) -> torch.Tensor:
        """[B, C, H, W] images padded to a common size (channels_last strides if requested)."""
        return self._fields[self._image_key]

    @property
    def counts(self) -> torch.Tensor:
        """[B] int64: objects per image."""
        return self._index[: self.batch_size]

    @property
    def offsets(self) -> torch.Tensor:
        """[B+1] int64: image i's objects are rows offsets[i]:offsets[i+1] of a packed field."""
        b = self.batch_size
        return self._index[b : 2 * b + 1]

    @property
    def image_sizes(self) -> torch.Tensor:
        """[B, 2] int64: (H, W) of each image before padding."""
        b = self.batch_size
        return self._index[2 * b + 1 : 4 * b + 1].view(b, 2)

    @property
    def batch_index(self) -> torch.Tensor:
        """[sum N_i] int64: the image each packed object belongs to (the YOLO-style column)."""
        return self._index[4 * self.batch_size + 1 :]

    @property
    def object_fields(self) -> tuple[str, ...]:
        """Names of the per-object (ragged, packed) fields."""
        return tuple(k for k, kind in self._kinds.items() if kind == _OBJECT)

    def keys(self) -> list[str]:
        return list(self._fields)

    def values(self) -> list[Any]:
        return [self[k] for k in self._fields]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self._fields]

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[Any]:
        """Field values in sample order: ``images, targets = batch`` for tuple samples."""
        for name in self._fields:
            yield self[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __getitem__(self, key: int | str) -> Any:
        """``batch[0]``/``batch[1]`` by position, ``batch["boxes"]`` by name.

        Per-object fields give the list of per-image views; the image and per-image fields give
        the stacked tensor; string fields give the list of strings.
        """
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise TypeError(
                f"DetectionBatch indices are field positions or names, not {type(key).__name__}"
            )
        if isinstance(key, int):
            names = list(self._fields)
            if not -len(names) <= key < len(names):
                raise IndexError(f"DetectionBatch index {key} out of range for {len(names)} fields")
            key = names[key]
        kind = self._kind(key)
        if kind == _OBJECT:
            return self.per_image(key)
        if kind == _LIST:
            return list(self._fields[key])
        return self._fields[key]

    def _kind(self, name: str) -> str:
        try:
            return self._kinds[name]
        except KeyError:
            raise KeyError(
                f"no field {name!r} in this batch; fields: {list(self._fields)}"
            ) from None

    def _object_field(self, name: str) -> torch.Tensor:
        if self._kind(name) != _OBJECT:
            raise KeyError(
                f"{name!r} is not a per-object field; per-object fields: {list(self.object_fields)}"
            )
        return self._fields[name]

    # ---- per-object fields ----------------------------------------------------------------
    def packed(self, name: str = "target") -> torch.Tensor:
        """[sum N_i, ...]: every image's objects back to back (use with batch_index / offsets)."""
        return self._object_field(name)

    def per_image(self, name: str = "target") -> list[Any]:
        """B per-image views: [N_i, ...] of a per-object field, the unpadded [C, H_i, W_i] of the
        images, or row i of a per-image field."""
        cached = self._views.get(name)
        if cached is None:
            kind = self._kind(name)
            value = self._fields[name]
            if kind == _OBJECT:
                cached = list(torch.split(value, self._counts))
            elif kind == _IMAGE:
                cached = [value[i, ..., :h, :w] for i, (h, w) in enumerate(self._sizes)]
            elif kind == _LIST:
                cached = list(value)
            else:
                cached = list(value.unbind(0))
            self._views[name] = cached
        return list(cached)

    def padded(
        self, name: str = "target", fill: float | bool = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, max N, ...] with ``fill`` past each image's objects, bool mask [B, max N])."""
        packed = self._object_field(name)
        batch = self.batch_size
        most = max(self._counts, default=0)
        out = packed.new_full((batch, most, *packed.shape[1:]), fill)
        slots = torch.arange(most, device=packed.device)
        mask = slots.unsqueeze(0) < self.counts.to(packed.device).unsqueeze(1)
        out[mask] = packed
        return out, mask

    # ---- memory and devices ---------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """The batch's own tensors (one per field plus the int64 index block), by name."""
        out = {k: v for k, v in self._fields.items() if isinstance(v, torch.Tensor)}
        out["__index__"] = self._index
        return out

    def _map(self, move: Any) -> DetectionBatch:
        fields = {k: move(v) if isinstance(v, torch.Tensor) else v for k, v in self._fields.items()}
        moved = DetectionBatch(
            fields,
            dict(self._kinds),
            move(self._index),
            self._counts,
            self._sizes,
            self._image_key,
            self._tuple_samples,
        )
        if self._lease is not None:
            if moved.device.type == "cuda":
                # The copies may still be reading the slot: it is reused only after this event.
                event = torch.cuda.Event()
                event.record()
                self._lease.events.append(event)
            elif moved._index.data_ptr() == self._index.data_ptr():
                moved._lease = self._lease
        return moved

    def is_pinned(self) -> bool:
        return all(t.is_pinned() for t in self.tensors().values())

    def pin_memory(self, device: Any = None) -> DetectionBatch:
        """Pins each field with one copy and rebuilds the views; self when already pinned (or
        when there is no CUDA to pin for)."""
        if not torch.cuda.is_available() or self.is_pinned():
            return self
        return self._map(lambda t: t if t.is_pinned() else t.pin_memory())

    def to(self, device: str | torch.device | int, non_blocking: bool = False) -> DetectionBatch:
        """Moves each field with one copy; per-image views are rebuilt on the device."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def cuda(self, device: Any = None, non_blocking: bool = False) -> DetectionBatch:
        return self._map(lambda t: t.cuda(device, non_blocking=non_blocking))

    def cpu(self) -> DetectionBatch:
        return self._map(lambda t: t.cpu())

    @property
    def device(self) -> torch.device:
        return self._index.device

    def __reduce__(self) -> Any:
        if self._ring_handle is not None:  # written into a shared-ring slot by a worker
            return (_open_ring_handle, (self._ring_handle,))
        # Only the field tensors travel (through shared memory between DataLoader processes);
        # per-image views are rebuilt on the other side.
        return (
            DetectionBatch,
            (
                self._fields,
                self._kinds,
                self._index,
                self._counts,
                self._sizes,
                self._image_key,
                self._tuple_samples,
            ),
        )

    def __repr__(self) -> str:
        parts = [f"batch_size={self.batch_size}"]
        for name, value in self._fields.items():
            kind = self._kinds[name]
            if isinstance(value, torch.Tensor):
                parts.append(f"{name}={kind} {list(value.shape)} {value.dtype}")
            else:
                parts.append(f"{name}={kind} list")
        return f"DetectionBatch({', '.join(parts)})"


def _open_ring_handle(handle: Any) -> DetectionBatch:
    return handle.ring.open(handle)


class DetectionCollate:
    """A ``collate_fn`` for detection: padded images and ragged annotations in one buffer per field.

    Args:
        size_divisibility: pad H and W up to a multiple of this (0: to the batch maximum only).
        pad_value: value of the padding pixels, converted to the image dtype (must fit it).
        channels_last: return images with channels_last strides.
        image_key: the image's field name in dict samples.
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
        ring_slots: most slots in the ring (each is created on first use, sized from the batch
            and grown for a bigger one); cover ``num_workers * prefetch_factor`` plus the batches
            the training loop holds.
        ring_timeout: seconds a worker waits for a free slot before it falls back to fresh shared
            memory (counted in ``ring.stats()["fallbacks"]``).
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
        ring_slots: int = 16,
        ring_timeout: float = 2.0,
    ) -> None:
        self.size_divisibility = non_negative_int(size_divisibility, "size_divisibility")
        if not isinstance(pad_value, numbers.Real):
            raise TypeError(
                f"pad_value should be a real number, but got {type(pad_value).__name__}"
            )
        self.pad_value = pad_value
        self.channels_last = boolean(channels_last, "channels_last")
        if not isinstance(image_key, str) or not image_key:
            raise TypeError(f"image_key should be a non-empty str, but got {image_key!r}")
        self.image_key = image_key
        if isinstance(image_fields, (str, bytes)):
            raise TypeError(
                "image_fields should be a sequence of field names, but got a single str; "
                f"write image_fields=({image_fields!r},)"
            )
        fields = tuple(image_fields)
        for name in fields:
            if not isinstance(name, str):
                raise TypeError(f"image_fields should contain str names, but got {name!r}")
        if image_key in fields:
            raise ValueError(f"image_fields should not contain the image_key {image_key!r}")
        self.image_fields = fields
        if target_dtype is not None and target_dtype not in _REAL_DTYPES:
            raise TypeError(
                f"target_dtype should be a real torch.dtype or None, but got {target_dtype!r}"
            )
        self.target_dtype = target_dtype
        if memory not in _MEMORY_KINDS:
            raise ValueError(f"memory should be one of {_MEMORY_KINDS}, but got memory={memory!r}")
        self.memory = memory
        self.shared_ring = boolean(shared_ring, "shared_ring")
        slots = positive_int(ring_slots, "ring_slots")
        if (
            isinstance(ring_timeout, bool)
            or not isinstance(ring_timeout, numbers.Real)
            or not ring_timeout >= 0
        ):
            raise ValueError(
                f"ring_timeout should be a non-negative number of seconds, but got "
                f"ring_timeout={ring_timeout!r}"
            )
        if shared_ring and memory not in ("auto", "shared", "pinned"):
            raise ValueError(
                f"shared_ring=True puts batches in shared (and, with CUDA, pinned) memory; it "
                f"cannot be combined with memory={memory!r} (use memory='auto')"
            )
        if shared_ring and get_worker_info() is not None:
            raise RuntimeError(
                "DetectionCollate(shared_ring=True) must be created in the main process, before "
                "the DataLoader starts its workers, not inside a worker"
            )
        self._ring: SharedRing | None = (
            SharedRing(slots, float(ring_timeout)) if shared_ring else None
        )

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

    # ---- sample structure -----------------------------------------------------------------
    def _as_dicts(self, batch: Any) -> tuple[list[Mapping], bool]:
        if isinstance(batch, (str, bytes)) or not isinstance(batch, Sequence):
            raise TypeError(
                f"batch should be a sequence of samples, but got {type(batch).__name__}"
            )
        if len(batch) == 0:
            raise ValueError("batch should contain at least one sample, but got an empty batch")
        tuple_samples = not isinstance(batch[0], Mapping)
        samples: list[Mapping] = []
        for i, sample in enumerate(batch):
            if isinstance(sample, Mapping):
                if tuple_samples:
                    raise TypeError(f"sample {i} is a dict but sample 0 is an (image, target) pair")
                samples.append(sample)
            elif isinstance(sample, (tuple, list)) and len(sample) == 2:
                if not tuple_samples:
                    raise TypeError(f"sample {i} is an (image, target) pair but sample 0 is a dict")
                samples.append({self.image_key: sample[0], "target": sample[1]})
            else:
                what = (
                    f"a {type(sample).__name__} of {len(sample)} items"
                    if isinstance(sample, (tuple, list))
                    else type(sample).__name__
                )
                raise TypeError(
                    f"sample {i} should be an (image, target) pair or a dict, but got {what}"
                )
        names = list(samples[0].keys())
        if self.image_key not in samples[0]:
            raise ValueError(
                f"sample 0 has no image field {self.image_key!r} (image_key); its fields: {names}"
            )
        known = set(names)
        for i, sample in enumerate(samples[1:], start=1):
            if sample.keys() != known:
                missing = [k for k in names if k not in sample]
                if missing:
                    raise ValueError(
                        f"sample {i} is missing field {missing[0]!r}, which sample 0 has"
                    )
                extra = [k for k in sample if k not in known]
                raise ValueError(f"sample {i} has field {extra[0]!r}, which sample 0 does not have")
        return samples, tuple_samples

    # ---- the collate ----------------------------------------------------------------------
    def __call__(self, batch: Sequence[Any]) -> DetectionBatch:
        samples, tuple_samples = self._as_dicts(batch)
        memory = _resolve_memory(self.memory)
        threads = native_threads()
        names = list(samples[0].keys())

        fields: dict[str, Any] = {}
        plans: dict[str, _Planned] = {}  # validated and sized; allocated once all are known
        kinds: dict[str, str] = {}
        object_sources: dict[str, list[_Source]] = {}
        image_sources: list[_Source] = []
        for name in names:
            values = [s[name] for s in samples]
            sources = [_source(v, i, name) for i, v in enumerate(values)]
            if name == self.image_key:
                if any(s is None for s in sources):
                    i = next(i for i, s in enumerate(sources) if s is None)
                    raise TypeError(
                        f"sample {i} field {name!r}: expected an image array, got a str"
                    )
                kinds[name] = _IMAGE
                image_sources = sources
                continue
            if sources[0] is None or any(s is None for s in sources):
                if not all(s is None for s in sources):
                    i = next(
                        i for i, s in enumerate(sources) if (s is None) != (sources[0] is None)
                    )
                    raise TypeError(
                        f"sample {i} field {name!r}: mixes strings and numbers across the batch"
                    )
                kinds[name] = _LIST
                fields[name] = list(values)
                continue
            if tuple_samples:  # the stock format: the target is always an [N_i, D] array
                for i, source in enumerate(sources):
                    if len(source.shape) != 2 and not source.empty_list:
                        raise ValueError(
                            f"sample {i} field {name!r}: expected a 2-D [N, D] target, but got "
                            f"shape {_shape(source.shape)}"
                        )
                kinds[name] = _OBJECT
                object_sources[name] = sources
            elif name in self.image_fields or len(sources[0].shape) == 0:
                kinds[name] = _PER_IMAGE
                plans[name] = self._stack(name, sources, threads)
            else:
                kinds[name] = _OBJECT
                object_sources[name] = sources

        counts = self._counts(object_sources, tuple_samples, len(samples))
        for name, sources in object_sources.items():
            plans[name] = self._pack(name, sources, tuple_samples, threads)

        plans[self.image_key], sizes = self._pad_images(image_sources, threads)
        index_plan = self._index(counts, sizes)
        if self._ring is not None:
            # Every field in one slot of the shared ring; None when no slot came free in time.
            batch = self._ring.collate_into(
                plans,
                index_plan,
                fields,
                kinds,
                counts,
                sizes,
                self.image_key,
                tuple_samples,
                names,
            )
            if batch is not None:
                return batch
            memory = "shared" if get_worker_info() is not None else memory
        for name, plan in plans.items():
            fields[name] = plan.write(_allocate(plan.nbytes, memory))
        ordered = {name: fields[name] for name in names}
        index = index_plan.write(_allocate(index_plan.nbytes, memory))
        return DetectionBatch(ordered, kinds, index, counts, sizes, self.image_key, tuple_samples)

    def _counts(
        self, object_sources: dict[str, list[_Source]], tuple_samples: bool, batch: int
    ) -> list[int]:
        counts = [0] * batch
        if not object_sources:
            return counts
        for i in range(batch):
            first: str | None = None
            for name, sources in object_sources.items():
                source = sources[i]
                if len(source.shape) == 0:
                    raise ValueError(
                        f"sample {i} field {name!r}: a per-object field needs its objects along "
                        f"dimension 0, but got a 0-d value (sample 0 has shape {list(sources[0].shape)})"
                    )
                n = source.shape[0]
                if first is None:
                    first, counts[i] = name, n
                elif n != counts[i]:
                    raise ValueError(
                        f"sample {i} field {name!r} has {n} objects but field {first!r} has "
                        f"{counts[i]}; per-object fields must agree along dimension 0 (list "
                        f"fixed-shape per-image arrays in image_fields=...)"
                    )
        return counts

    def _pack(
        self, name: str, sources: list[_Source], tuple_samples: bool, threads: int
    ) -> _Planned:
        is_target = tuple_samples and name == "target"
        reference = next((s for s in sources if not s.empty_list), sources[0])
        trailing = reference.shape[1:]
        if is_target and len(reference.shape) != 2 and not reference.empty_list:
            i = sources.index(reference)
            raise ValueError(
                f"sample {i} field 'target': expected a 2-D [N, D] target, but got shape "
                f"{_shape(reference.shape)}"
            )
        if is_target and self.target_dtype is not None:
            dtype = self.target_dtype
        else:
            dtype = _promoted([s.dtype for s in sources if not s.empty_list] or [reference.dtype])
        ref_index = sources.index(reference)
        fixed: list[_Source] = []
        for i, source in enumerate(sources):
            if source.empty_list:
                fixed.append(
                    source._replace(shape=(0, *trailing), strides=(0,) * (1 + len(trailing)))
                )
                continue
            if source.shape[1:] != trailing:
                if is_target and len(source.shape) != 2:
                    raise ValueError(
                        f"sample {i} field 'target': expected a 2-D [N, D] target, but got shape "
                        f"{_shape(source.shape)}"
                    )
                raise ValueError(
                    f"sample {i} field {name!r} has per-object shape {_shape(source.shape[1:])} "
                    f"but sample {ref_index} has {_shape(trailing)}"
                )
            fixed.append(source if source.dtype == dtype else _converted(source, dtype, i, name))
        return _packed(fixed, dtype, (sum(s.shape[0] for s in fixed), *trailing), threads)

    def _stack(self, name: str, sources: list[_Source], threads: int) -> _Planned:
        shape = sources[0].shape
        for i, source in enumerate(sources):
            if source.shape != shape:
                raise ValueError(
                    f"sample {i} field {name!r} has shape {_shape(source.shape)} but sample 0 has "
                    f"{_shape(shape)}; per-image fields are stacked and must agree"
                )
        dtype = _promoted([s.dtype for s in sources])
        fixed = [
            s if s.dtype == dtype else _converted(s, dtype, i, name) for i, s in enumerate(sources)
        ]
        return _packed(fixed, dtype, (len(fixed), *shape), threads)

    def _pad_images(
        self, sources: list[_Source], threads: int
    ) -> tuple[_Planned, list[tuple[int, int]]]:
        name = self.image_key
        first = sources[0]
        rank, dtype = len(first.shape), first.dtype
        if rank not in (2, 3):
            raise ValueError(
                f"sample 0 field {name!r}: expected an image of shape [C, H, W] (or [H, W]), but "
                f"got shape {_shape(first.shape)}"
            )
        if self.channels_last and rank != 3:
            raise ValueError(
                f"channels_last=True needs [C, H, W] images, but sample 0 field {name!r} has shape "
                f"{_shape(first.shape)}"
            )
        channels = first.shape[0] if rank == 3 else 1
        views = []
        sizes: list[tuple[int, int]] = []
        for i, source in enumerate(sources):
            if len(source.shape) != rank:
                raise ValueError(
                    f"sample {i} field {name!r}: expected a {rank}-D image like sample 0, but got "
                    f"shape {_shape(source.shape)}"
                )
            if source.dtype != dtype:
                raise TypeError(
                    f"sample {i} field {name!r} has dtype {source.dtype} but sample 0 has {dtype}; "
                    f"images of a batch must share a dtype"
                )
            if rank == 3:
                if source.shape[0] != channels:
                    raise ValueError(
                        f"sample {i} field {name!r} has {source.shape[0]} channels but sample 0 "
                        f"has {channels}"
                    )
                views.append(source.view())
            else:
                views.append((source.address, (1, *source.shape), (0, *source.strides)))
            sizes.append((int(source.shape[-2]), int(source.shape[-1])))
        height = max(h for h, _ in sizes)
        width = max(w for _, w in sizes)
        if self.size_divisibility > 1:
            step = self.size_divisibility
            height, width = -(-height // step) * step, -(-width // step) * step
        fill = _fill_bytes(self.pad_value, dtype)
        batch = len(sources)
        nbytes = batch * channels * height * width * len(fill)
        channels_last = self.channels_last

        def write(raw: torch.Tensor) -> torch.Tensor:
            _C.pad_images(
                views, channels, height, width, fill, channels_last, raw.data_ptr(), nbytes, threads
            )
            if channels_last:
                # torch's own channels_last strides (a permuted view differs when H or W is 0).
                strides = (height * width * channels, 1, width * channels, channels)
                return raw.view(dtype).as_strided((batch, channels, height, width), strides)
            if rank == 3:
                return _typed(raw, dtype, (batch, channels, height, width))
            return _typed(raw, dtype, (batch, height, width))

        return _Planned(nbytes, write), sizes

    @staticmethod
    def _index(counts: list[int], sizes: list[tuple[int, int]]) -> _Planned:
        batch, total = len(counts), sum(counts)
        length = 4 * batch + 1 + total

        def write(raw: torch.Tensor) -> torch.Tensor:
            index = _typed(raw, torch.int64, (length,))
            _write_index(index.numpy(), counts, sizes, total)
            return index

        return _Planned(length * 8, write)


def _write_index(
    host: np.ndarray, counts: list[int], sizes: list[tuple[int, int]], total: int
) -> None:
    """counts [B] | offsets [B+1] | image_sizes [B, 2] | batch_index [total] into host (int64)."""
    batch = len(counts)
    host[:batch] = counts
    host[2 * batch + 1 : 4 * batch + 1] = [v for size in sizes for v in size]
    offsets = host[batch : 2 * batch + 1]
    batch_index = host[4 * batch + 1 :]
    _C.write_object_index(
        counts,
        offsets.__array_interface__["data"][0],
        batch_index.__array_interface__["data"][0],
        total,
    )


fast_detection_collate = DetectionCollate()
"""A ready :class:`DetectionCollate` with the default settings: ``collate_fn=fast_detection_collate``."""


def buffer_pool_stats() -> dict[str, int]:
    """Bytes and blocks the recycling output pool holds (cached / live) and its hit counts."""
    return dict(_C.buffer_pool_stats())


def set_buffer_pool_limit(nbytes: int) -> None:
    """Most bytes of released output buffers kept for reuse (default 1 GiB; 0 disables reuse)."""
    _C.set_buffer_pool_limit(non_negative_int(nbytes, "nbytes"))


def clear_buffer_pool() -> None:
    """Frees every cached output buffer now; buffers still viewed by tensors are unaffected."""
    _C.clear_buffer_pool()
