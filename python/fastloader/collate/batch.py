"""The collated detection batch: DetectionBatch, its field kinds and layout (no collate logic)."""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch

__all__ = ["BatchLayout", "DetectionBatch", "FieldKind"]


class FieldKind(str, enum.Enum):
    """How a field's per-sample values become one batch tensor (a str, so "object" == OBJECT)."""

    IMAGE = "image"  # padded and stacked: [B, C, H, W]
    OBJECT = "object"  # ragged along dim 0, packed: [sum N_i, ...]
    PER_IMAGE = "per_image"  # fixed shape, stacked: [B, ...]
    LIST = "list"  # strings: kept as a Python list, as default_collate does

    def __str__(self) -> str:
        return self.value


class BatchLayout(NamedTuple):
    """Everything about a batch apart from its tensors: what each field is and how images and
    objects are laid out. Shared unchanged by a batch and its copies on other devices."""

    kinds: dict[str, FieldKind]  # every field, in sample order
    counts: list[int]  # objects per image
    sizes: list[tuple[int, int]]  # (H, W) of each image before padding
    image_key: str
    tuple_samples: bool  # the samples were (image, target) pairs


class DetectionBatch:
    """A collated detection batch: one tensor per field, per-image views built on demand.

    Made by :class:`~fastloader.DetectionCollate`; each field's values of every image live in
    one tensor: the image padded to ``[B, C, H, W]`` (``[B, H, W]`` for ``[H, W]`` images),
    per-object fields packed along dim 0 (``[sum N_i, ...]``, with ``counts``, ``offsets`` and
    ``batch_index`` saying which rows are whose), per-image fields stacked (``[B, ...]``),
    string fields kept as lists.

    It unpacks as ``images, targets = batch``: for ``(image, target)`` samples like the stock
    ``detection_collate`` (``targets`` a list of ``[N_i, D]`` views into one buffer); for dict
    samples as torchvision's detection models take them (``targets`` the list of per-image dicts
    of :meth:`targets_as_dicts`). ``batch["boxes"]``, ``keys()``, ``items()`` and ``dict(batch)``
    reach every field by name.

    Args:
        fields: every field by name, in sample order: a tensor, or a list for string fields.
        index: the int64 index block, counts [B] | offsets [B+1] | image_sizes [B, 2] |
            batch_index [sum N_i].
        layout: what each field is and how images and objects are laid out.

    Example:
        >>> import torch
        >>> from fastloader import fast_detection_collate
        >>> batch = fast_detection_collate(
        ...     [(torch.zeros(3, 4, 6), torch.ones(2, 5)), (torch.zeros(3, 5, 5), torch.ones(0, 5))]
        ... )
        >>> images, targets = batch
        >>> images.shape, [t.shape for t in targets]
        (torch.Size([2, 3, 5, 6]), [torch.Size([2, 5]), torch.Size([0, 5])])
        >>> batch.counts.tolist(), batch.image_sizes.tolist(), batch.batch_index.tolist()
        ([2, 0], [[4, 6], [5, 5]], [0, 0])
        >>> sample = {"image": torch.zeros(3, 4, 4), "boxes": torch.ones(1, 4), "labels": [7]}
        >>> dicts = fast_detection_collate([sample])
        >>> images, targets = dicts  # torchvision's form
        >>> targets[0]["labels"].tolist(), targets[0]["boxes"].shape
        ([7], torch.Size([1, 4]))
    """

    def __init__(self, fields: dict[str, Any], index: torch.Tensor, layout: BatchLayout) -> None:
        self._fields = fields  # tensors, or lists for string fields
        self._index = index  # int64: counts [B] | offsets [B+1] | image_sizes [B, 2] | batch_index
        self._layout = layout
        self._kinds = layout.kinds
        self._counts = layout.counts
        self._views: dict[str, list] = {}
        self._lease: Any = None  # a shared-ring slot this batch views (main process)
        # (callable, args) this batch pickles as instead of its tensors (a worker's ring batch
        # travels as its slot's handle); set by whoever wrote the batch.
        self._reduce_as: tuple[Any, tuple] | None = None

    # ---- the batch as a whole -------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return len(self._counts)

    @property
    def image_key(self) -> str:
        return self._layout.image_key

    @property
    def images(self) -> torch.Tensor:
        """[B, C, H, W] images padded to a common size (channels_last strides if requested)."""
        return self._fields[self._layout.image_key]

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
        return tuple(k for k, kind in self._kinds.items() if kind is FieldKind.OBJECT)

    def keys(self) -> list[str]:
        return list(self._fields)

    def values(self) -> list[Any]:
        return [self[k] for k in self._fields]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self._fields]

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[Any]:
        """``images, targets = batch``: for (image, target) samples the field values in sample
        order (the stock pair); for dict samples the images and :meth:`targets_as_dicts`."""
        if self._layout.tuple_samples:
            for name in self._fields:
                yield self[name]
        else:
            yield self.images
            yield self.targets_as_dicts()

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
        if kind is FieldKind.OBJECT:
            return self.per_image(key)
        if kind is FieldKind.LIST:
            return list(self._fields[key])
        return self._fields[key]

    def _kind(self, name: str) -> FieldKind:
        try:
            return self._kinds[name]
        except KeyError:
            hint = ""
            if name == "target" and not self._layout.tuple_samples:
                example = self.object_fields[0] if self.object_fields else "name"
                hint = (
                    f" ('target' is the target of (image, target) samples; this batch came from "
                    f"dict samples: name a field, e.g. per_image({example!r}), or use "
                    f"targets_as_dicts())"
                )
            fields = list(self._fields)
            raise KeyError(f"no field {name!r} in this batch{hint}; fields: {fields}") from None

    def _object_field(self, name: str) -> torch.Tensor:
        if self._kind(name) is not FieldKind.OBJECT:
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
            if kind is FieldKind.OBJECT:
                cached = list(torch.split(value, self._counts))
            elif kind is FieldKind.IMAGE:
                cached = [value[i, ..., :h, :w] for i, (h, w) in enumerate(self._layout.sizes)]
            elif kind is FieldKind.LIST:
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

    def targets_as_dicts(self) -> list[dict[str, Any]]:
        """The targets as torchvision's detection models take them: one dict per image.

        Dict samples: every field but the image, by its own name (per-object fields as the
        image's ``[N_i, ...]`` view, per-image fields as its row, strings as its string), e.g.
        ``{"boxes": [N_i, 4], "labels": [N_i]}``. (image, target) samples: ``{"target": [N_i,
        D]}``, and for the two common layouts also ``"boxes"`` (columns 0-3) and ``"labels"``
        (the last column, as int64): D = 5 (x1, y1, x2, y2, label: VOC's) and D = 15 (boxes,
        ten landmark coordinates as ``"landmarks"`` [N_i, 5, 2], label: RetinaFace's).
        Views share the batch's memory.
        """
        names = [n for n in self._fields if n != self._layout.image_key]
        columns = {name: self.per_image(name) for name in names}
        targets = [{name: columns[name][i] for name in names} for i in range(self.batch_size)]
        if self._layout.tuple_samples and "target" in columns:
            width = self._fields["target"].shape[-1] if self._fields["target"].dim() == 2 else 0
            for entry in targets:
                target = entry["target"]
                if width in (5, 15):
                    entry["boxes"] = target[:, :4]
                    if width == 15:
                        entry["landmarks"] = target[:, 4:14].reshape(-1, 5, 2)
                    entry["labels"] = target[:, -1].to(torch.int64)
        return targets

    # ---- memory and devices ---------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """The batch's own tensors (one per field plus the int64 index block), by name."""
        out = {k: v for k, v in self._fields.items() if isinstance(v, torch.Tensor)}
        out["__index__"] = self._index
        return out

    def _map(self, move: Any) -> DetectionBatch:
        fields = {k: move(v) if isinstance(v, torch.Tensor) else v for k, v in self._fields.items()}
        moved = DetectionBatch(fields, move(self._index), self._layout)
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
        return self._index.is_pinned() and all(
            v.is_pinned() for v in self._fields.values() if isinstance(v, torch.Tensor)
        )

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

    def __copy__(self) -> DetectionBatch:
        """A new batch over the same tensors (and the same ring slot, if any)."""
        twin = DetectionBatch(dict(self._fields), self._index, self._layout)
        twin._lease, twin._reduce_as = self._lease, self._reduce_as
        return twin

    def __deepcopy__(self, memo: dict) -> DetectionBatch:
        """A batch of copies in fresh memory, independent of this one (and of any ring slot: a
        worker can copy a ring batch and still send the original)."""
        fields = {
            k: v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v, memo)
            for k, v in self._fields.items()
        }
        return DetectionBatch(fields, self._index.clone(), copy.deepcopy(self._layout, memo))

    def __reduce__(self) -> Any:
        if self._reduce_as is not None:  # e.g. written into a shared-ring slot by a worker
            return self._reduce_as
        fields, index = self._fields, self._index
        if self._lease is not None:
            # Views of one shared-ring slot: each field is a different dtype over the same
            # storage, which torch.save refuses, and the slot is recycled once this batch dies.
            # Each tensor travels as its own copy (clone keeps channels_last strides).
            fields = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in fields.items()}
            index = index.clone()
        # Only the field tensors travel (through shared memory between DataLoader processes);
        # per-image views are rebuilt on the other side.
        return (DetectionBatch, (fields, index, self._layout))

    def __repr__(self) -> str:
        parts = [f"batch_size={self.batch_size}"]
        for name, value in self._fields.items():
            kind = self._kinds[name]
            if isinstance(value, torch.Tensor):
                parts.append(f"{name}={kind} {list(value.shape)} {value.dtype}")
            else:
                parts.append(f"{name}={kind} list")
        return f"DetectionBatch({', '.join(parts)})"
