"""Reading a batch of samples: their structure (dicts or (image, target) pairs) and each value as a
strided numpy array the copy kernels can read, with errors that name the sample and the field."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["NUMPY_TO_TORCH", "REAL_DTYPES", "Source", "as_dicts", "converted", "read_field"]

_NUMPY_TO_TORCH_ANY_VERSION = {
    np.dtype(np.bool_): torch.bool,
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.int8): torch.int8,
    np.dtype(np.int16): torch.int16,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64,
    # torch >= 2.3 only; before that such arrays are refused, naming the dtype.
    np.dtype(np.uint16): getattr(torch, "uint16", None),
    np.dtype(np.uint32): getattr(torch, "uint32", None),
    np.dtype(np.uint64): getattr(torch, "uint64", None),
    np.dtype(np.float16): torch.float16,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
}
NUMPY_TO_TORCH = {n: t for n, t in _NUMPY_TO_TORCH_ANY_VERSION.items() if t is not None}
TORCH_TO_NUMPY = {t: n for n, t in NUMPY_TO_TORCH.items()}
INDEX_KEY = "__index__"  # DetectionBatch.tensors() lists the index block under this name
_NUMPY_VIEWABLE = frozenset(NUMPY_TO_TORCH.values())
REAL_DTYPES = _NUMPY_VIEWABLE | {torch.bfloat16}


class Source:
    """One sample's value of one field as the kernels see it: a numpy array over its memory
    (bfloat16 viewed as int16: the kernels copy bytes) and its torch dtype.

    Compared by identity only: a value holds tensors, whose == is element-wise.
    """

    __slots__ = ("array", "dtype", "empty_list", "shape")

    def __init__(self, array: np.ndarray, dtype: torch.dtype, empty_list: bool = False) -> None:
        self.array = array
        self.dtype = dtype
        self.shape: tuple[int, ...] = array.shape
        # `[]`: zero objects whose trailing shape and dtype follow the other samples.
        self.empty_list = empty_list


def _from_tensor(value: torch.Tensor, index: int, name: str, empty_list: bool = False) -> Source:
    dtype = value.dtype
    if dtype in _NUMPY_VIEWABLE:
        try:  # the common case in one call: numpy() refuses every tensor the checks below name
            return Source(value.numpy(), dtype, empty_list)
        except (RuntimeError, TypeError):
            pass  # on another device, sparse, requiring grad or lazily negated: see below
    if not value.is_cpu:
        raise ValueError(
            f"sample {index} field {name!r}: expected a CPU tensor, but got one on {value.device}"
        )
    if value.layout != torch.strided:
        raise TypeError(
            f"sample {index} field {name!r}: expected a dense tensor, got {value.layout}"
        )
    if dtype not in REAL_DTYPES:
        raise TypeError(
            f"sample {index} field {name!r}: expected a real numeric dtype, but got {dtype}"
        )
    if value.requires_grad:
        value = value.detach()
    if value.is_neg():  # a lazy negated view: the raw memory is not the values
        value = value.resolve_neg()
    if dtype is torch.bfloat16:  # numpy has no bfloat16: the same bytes as int16
        value = value.view(torch.int16)
    return Source(value.numpy(), dtype, empty_list)


def _from_array(value: np.ndarray, index: int, name: str) -> Source:
    native = value.dtype.newbyteorder("=") if value.dtype.kind in "biuf" else value.dtype
    dtype = NUMPY_TO_TORCH.get(native)
    if dtype is None:
        raise TypeError(
            f"sample {index} field {name!r}: expected a numeric array, but got dtype {value.dtype}"
        )
    if not value.dtype.isnative:  # the kernels copy bytes: swap into a copy, never the input
        value = value.astype(native)
    return Source(value, dtype)


def read_field(value: Any, index: int, name: str) -> Source | None:
    """Sample index's value of field name as a Source; None for strings (kept as a list)."""
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
        return _from_nested_list(value, index, name)
    raise TypeError(
        f"sample {index} field {name!r}: expected a tensor, numpy array, number or nested list "
        f"of numbers, but got {type(value).__name__}"
    )


def _from_nested_list(value: list | tuple, index: int, name: str) -> Source:
    try:
        converted_value = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        kind = TypeError if _has_non_number(value) else ValueError  # else ragged
        raise kind(
            f"sample {index} field {name!r}: expected a (nested) list of numbers: {exc}"
        ) from None
    empty = converted_value.dim() == 1 and converted_value.numel() == 0
    return _from_tensor(converted_value, index, name, empty_list=empty)


def _has_non_number(value: Any) -> bool:
    """Whether a nested list that torch refused holds a non-number (else it was ragged)."""
    if isinstance(value, (list, tuple)):
        return any(_has_non_number(v) for v in value)
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return False
    return not isinstance(value, numbers.Number)


def converted(source: Source, dtype: torch.dtype, index: int, name: str) -> Source:
    """source's values in dtype (a fresh array; the input is never changed)."""
    target = TORCH_TO_NUMPY.get(dtype)
    array = source.array
    try:
        if target is not None and source.dtype is not torch.bfloat16:
            # numpy converts any strides, negative ones included (torch.from_numpy refuses them).
            return Source(array.astype(target), dtype, source.empty_list)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if source.dtype is torch.bfloat16:
            tensor = tensor.view(torch.bfloat16)
        return _from_tensor(tensor.to(dtype), index, name, source.empty_list)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise TypeError(
            f"sample {index} field {name!r}: cannot convert {source.dtype} to {dtype}: {exc}"
        ) from None


def as_dicts(batch: Any, image_key: str) -> tuple[list[Mapping], bool]:
    """The samples as mappings of field name to value, and whether they were (image, target)
    pairs; every sample must have the fields of sample 0."""
    if isinstance(batch, (str, bytes)) or not isinstance(batch, Sequence):
        raise TypeError(f"batch should be a sequence of samples, but got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("batch should contain at least one sample, but got an empty batch")
    tuple_samples = not isinstance(batch[0], Mapping)
    if tuple_samples and image_key == "target":
        raise ValueError(
            "image_key='target' names the target of (image, target) samples: the image would be "
            "lost; use another image_key for (image, target) samples"
        )
    samples = [_as_dict(sample, i, tuple_samples, image_key) for i, sample in enumerate(batch)]
    if not tuple_samples:  # pairs all become {image_key, "target"}: nothing to compare
        _check_same_fields(samples, image_key)
    return samples, tuple_samples


def _as_dict(sample: Any, index: int, tuple_samples: bool, image_key: str) -> Mapping:
    if isinstance(sample, Mapping):
        if tuple_samples:
            raise TypeError(f"sample {index} is a dict but sample 0 is an (image, target) pair")
        return sample
    if isinstance(sample, (tuple, list)) and len(sample) == 2:
        if not tuple_samples:
            raise TypeError(f"sample {index} is an (image, target) pair but sample 0 is a dict")
        return {image_key: sample[0], "target": sample[1]}
    what = (
        f"a {type(sample).__name__} of {len(sample)} items"
        if isinstance(sample, (tuple, list))
        else type(sample).__name__
    )
    raise TypeError(f"sample {index} should be an (image, target) pair or a dict, but got {what}")


def _check_same_fields(samples: list[Mapping], image_key: str) -> None:
    names = list(samples[0].keys())
    if image_key not in samples[0]:
        raise ValueError(
            f"sample 0 has no image field {image_key!r} (image_key); its fields: {names}"
        )
    if INDEX_KEY in samples[0]:
        raise ValueError(
            f"sample 0 field {INDEX_KEY!r}: the name is reserved for the batch's index block "
            f"(DetectionBatch.tensors()[{INDEX_KEY!r}]); give the field another name"
        )
    known = set(names)
    for i, sample in enumerate(samples[1:], start=1):
        if sample.keys() != known:
            missing = [k for k in names if k not in sample]
            if missing:
                raise ValueError(f"sample {i} is missing field {missing[0]!r}, which sample 0 has")
            extra = [k for k in sample if k not in known]
            raise ValueError(f"sample {i} has field {extra[0]!r}, which sample 0 does not have")
