"""The general planner: any batch of dicts or (image, target) pairs, each field read as numpy
(tensors, arrays, numbers, nested lists; strings kept as lists) and planned by its kind: the
image padded, per-object fields packed, per-image fields stacked. Errors name the sample and the
field. The last of the planners: what the others pass on ends here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch

from ._plan import (
    BatchPlan,
    CollateOptions,
    FieldPlan,
    PackPlan,
    PadPlan,
    fill_bytes,
    index_plan,
    looks_channels_last,
    nbytes_of,
    padded_size,
)
from ._samples import Source, as_dicts, converted, read_field
from .batch import BatchLayout, FieldKind

__all__ = ["plan_general", "plan_samples"]


def plan_general(batch: Any, options: CollateOptions) -> BatchPlan:
    """The last planner: any batch of dicts or (image, target) pairs of tensors, arrays, numbers,
    nested lists or strings. It never passes a batch on: it plans it, or raises naming the
    sample, the field and what was expected."""
    samples, tuple_samples = as_dicts(batch, options.image_key)
    return plan_samples(samples, tuple_samples, options)


def plan_samples(
    samples: Sequence[Mapping], tuple_samples: bool, options: CollateOptions
) -> BatchPlan:
    """Reads every field of the samples and plans its batch tensor (or list)."""
    names = list(samples[0].keys())
    kinds: dict[str, FieldKind] = {}
    planned: dict[str, FieldPlan] = {}
    lists: dict[str, list] = {}
    objects: dict[str, list[Source]] = {}
    images: list[Source] = []
    for name in names:
        values = [s[name] for s in samples]
        kind, sources = _classify(name, values, tuple_samples, options)
        kinds[name] = kind
        if kind is FieldKind.IMAGE:
            images = sources
        elif kind is FieldKind.LIST:
            lists[name] = values
        elif kind is FieldKind.PER_IMAGE:
            planned[name] = _stack(name, sources)
        else:
            objects[name] = sources
    counts = _counts(objects, len(samples))
    for name, sources in objects.items():
        is_target = tuple_samples and name == "target"
        planned[name] = _pack(name, sources, options.target_dtype if is_target else None)
    planned[options.image_key], sizes = _pad_images(images, options)
    tensors = {name: planned[name] for name in names if name in planned}
    index = index_plan(counts, sizes)
    layout = BatchLayout(kinds, counts, sizes, options.image_key, tuple_samples)
    return BatchPlan(tensors, lists, index, layout)


def _classify(
    name: str, values: list[Any], tuple_samples: bool, options: CollateOptions
) -> tuple[FieldKind, list[Any]]:
    """The field's kind and its values read as Sources (None for strings)."""
    sources = [read_field(v, i, name) for i, v in enumerate(values)]
    strings = [s is None for s in sources]
    if name == options.image_key:
        if any(strings):
            raise TypeError(
                f"sample {strings.index(True)} field {name!r}: expected an image array, got a str"
            )
        return FieldKind.IMAGE, sources
    if any(strings):
        if not all(strings):
            raise TypeError(
                f"sample {strings.index(not strings[0])} field {name!r}: mixes strings and "
                f"numbers across the batch"
            )
        return FieldKind.LIST, sources
    numeric = cast("list[Source]", sources)  # no strings past this point
    if tuple_samples:  # the stock format: the target is always an [N_i, D] array
        for i, source in enumerate(numeric):
            if len(source.shape) != 2 and not source.empty_list:
                raise ValueError(
                    f"sample {i} field {name!r}: expected a 2-D [N, D] target, but got shape "
                    f"{list(source.shape)}"
                )
        return FieldKind.OBJECT, sources
    if name in options.image_fields or len(numeric[0].shape) == 0:
        return FieldKind.PER_IMAGE, sources
    return FieldKind.OBJECT, sources


def _counts(objects: dict[str, list[Source]], batch: int) -> list[int]:
    """Objects per image: every per-object field of an image has the same length along dim 0."""
    counts = [0] * batch
    if not objects:
        return counts
    for i in range(batch):
        first: str | None = None
        for name, sources in objects.items():
            shape = sources[i].shape
            if len(shape) == 0:
                raise ValueError(
                    f"sample {i} field {name!r}: a per-object field needs its objects along "
                    f"dimension 0, but got a 0-d value (sample 0 has shape "
                    f"{list(sources[0].shape)})"
                )
            if first is None:
                first, counts[i] = name, shape[0]
            elif shape[0] != counts[i]:
                raise ValueError(
                    f"sample {i} field {name!r} has {shape[0]} objects but field {first!r} has "
                    f"{counts[i]}; per-object fields must agree along dimension 0 (list "
                    f"fixed-shape per-image arrays in image_fields=...)"
                )
    return counts


def _promoted(name: str, dtypes: Sequence[tuple[int, torch.dtype]]) -> torch.dtype:
    """The dtype every value of a field is converted to (torch's promotion rules); dtypes holds
    (sample index, dtype) pairs."""
    result = dtypes[0][1]
    for index, dtype in dtypes[1:]:
        if dtype is result:
            continue
        try:
            result = torch.promote_types(result, dtype)
        except RuntimeError:  # torch does not promote uint16/32/64 with other integer types
            raise TypeError(
                f"sample {index} field {name!r} has dtype {dtype}, which torch cannot combine "
                f"with {result} of the samples before it; give the field one dtype"
            ) from None
    return result


def _in_dtype(name: str, sources: Sequence[Source], dtype: torch.dtype) -> list[np.ndarray]:
    return [
        s.array if s.dtype is dtype else converted(s, dtype, i, name).array
        for i, s in enumerate(sources)
    ]


def _pack(name: str, sources: list[Source], dtype: torch.dtype | None) -> PackPlan:
    """A per-object field: [N_i, ...] values packed along dim 0 (`[]` for zero objects takes the
    trailing shape and dtype of the other samples). dtype None: the promoted dtype."""
    present = [(i, s) for i, s in enumerate(sources) if not s.empty_list]
    reference_index, reference = present[0] if present else (0, sources[0])
    trailing = reference.shape[1:]
    for i, source in present:
        if source.shape[1:] != trailing:
            raise ValueError(
                f"sample {i} field {name!r} has per-object shape {list(source.shape[1:])} "
                f"but sample {reference_index} has {list(trailing)}"
            )
    if dtype is None:
        dtype = _promoted(name, [(i, s.dtype) for i, s in present] or [(0, reference.dtype)])
    arrays = _in_dtype(name, [s for _, s in present], dtype)
    shape = (sum(a.shape[0] for a in arrays), *trailing)
    return PackPlan(arrays, dtype, shape, nbytes_of(shape, dtype, name))


def _stack(name: str, sources: list[Source]) -> PackPlan:
    """A per-image field: values of one shape stacked to [B, ...]."""
    shape = sources[0].shape
    for i, source in enumerate(sources):
        if source.shape != shape:
            raise ValueError(
                f"sample {i} field {name!r} has shape {list(source.shape)} but sample 0 has "
                f"{list(shape)}; per-image fields are stacked and must agree"
            )
    dtype = _promoted(name, [(i, s.dtype) for i, s in enumerate(sources)])
    out_shape = (len(sources), *shape)
    return PackPlan(
        _in_dtype(name, sources, dtype), dtype, out_shape, nbytes_of(out_shape, dtype, name)
    )


def _pad_images(
    sources: list[Source], options: CollateOptions
) -> tuple[PadPlan, list[tuple[int, int]]]:
    """The image field: every image into one [B, C, H, W] batch padded to the largest (rounded
    up to size_divisibility); also each image's (H, W)."""
    name = options.image_key
    first = sources[0]
    rank, dtype = len(first.shape), first.dtype
    if rank not in (2, 3):
        raise ValueError(
            f"sample 0 field {name!r}: expected an image of shape [C, H, W] (or [H, W]), but "
            f"got shape {list(first.shape)}"
        )
    if options.channels_last and rank != 3:
        raise ValueError(
            f"channels_last=True needs [C, H, W] images, but sample 0 field {name!r} has shape "
            f"{list(first.shape)}"
        )
    channels = first.shape[0] if rank == 3 else 1
    for i, source in enumerate(sources):
        if rank == 3 and looks_channels_last(source.shape):
            raise ValueError(
                f"sample {i} field {name!r} has shape {list(source.shape)}, which looks like "
                f"[H, W, C]; images must be [C, H, W] (channels first, as torchvision's "
                f"to_tensor gives): use image.permute(2, 0, 1) for a tensor or "
                f"array.transpose(2, 0, 1) for a numpy array"
            )
        _check_image(source, i, name, rank, dtype, channels)
    arrays = [s.array if rank == 3 else s.array[np.newaxis] for s in sources]
    sizes = [(int(s.shape[-2]), int(s.shape[-1])) for s in sources]
    height = max(h for h, _ in sizes)
    width = max(w for _, w in sizes)
    height, width = padded_size(height, width, options.size_divisibility)
    fill = fill_bytes(options.pad_value, dtype)
    shape = (len(sources), channels, height, width)
    plan = PadPlan(
        arrays,
        dtype,
        channels,
        height,
        width,
        fill,
        options.channels_last,
        rank == 2,
        nbytes_of(shape, dtype, name),
    )
    return plan, sizes


def _check_image(
    source: Source, index: int, name: str, rank: int, dtype: torch.dtype, channels: int
) -> None:
    shape = source.shape
    if len(shape) != rank:
        raise ValueError(
            f"sample {index} field {name!r}: expected a {rank}-D image like sample 0, but got "
            f"shape {list(shape)}"
        )
    if source.dtype is not dtype:
        raise TypeError(
            f"sample {index} field {name!r} has dtype {source.dtype} but sample 0 has {dtype}; "
            f"images of a batch must share a dtype"
        )
    if rank == 3 and shape[0] != channels:
        raise ValueError(
            f"sample {index} field {name!r} has {shape[0]} channels but sample 0 has {channels} "
            f"(images are [C, H, W]: shapes {list(shape)} and [{channels}, ...])"
        )
