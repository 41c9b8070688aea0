"""Argument validation shared by the public classes: torch-style messages naming the argument."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

_UINT64 = 1 << 64


_INT64_LIMIT = 1 << 63


def _below(value: int, name: str, limit: int | None, limit_text: str) -> int:
    """value, or a ValueError when it reaches `limit` (the native int64 / uint64 range)."""
    if limit is not None and value >= limit:
        raise ValueError(f"{name} should be below {limit_text}, but got {name}={value}")
    return value


def positive_int(
    value: Any, name: str, limit: int | None = _INT64_LIMIT, limit_text: str = "2**63"
) -> int:
    """An int in (0, limit) (bool rejected), else ValueError as torch's samplers raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
    return _below(int(value), name, limit, limit_text)


def non_negative_int(
    value: Any, name: str, limit: int | None = _INT64_LIMIT, limit_text: str = "2**63"
) -> int:
    """An int in [0, limit) (bool rejected), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} should be a non-negative integer value, but got {name}={value!r}")
    return _below(int(value), name, limit, limit_text)


def stream_index(value: Any, name: str = "epoch") -> int:
    """An int in [0, 2**64): the native stream counter is a uint64."""
    return non_negative_int(value, name, _UINT64, "2**64")


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} should be a boolean value, but got {name}={value!r}")
    return value


def seed_or_none(value: Any, name: str = "seed") -> int | None:
    """None, or an int in [-2**63, 2**64) taken modulo 2**64 (torch.manual_seed's range)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be an int or None, but got {type(value).__name__}")
    number = int(value)
    if not -(1 << 63) <= number < _UINT64:
        raise ValueError(f"{name} should be in [-2**63, 2**64), but got {name}={value}")
    return number % _UINT64


def generator_or_none(value: Any, name: str = "generator") -> torch.Generator | None:
    if value is not None and not isinstance(value, torch.Generator):
        kind = type(value).__name__
        raise TypeError(f"{name} should be a torch.Generator or None, but got {kind}")
    return value


def weight_array(weights: Any, name: str = "weights") -> np.ndarray:
    """A fresh contiguous float64 copy of 1-D non-negative finite weights with a finite sum > 0.

    The caller's object is never modified: every path below copies.
    """
    if isinstance(weights, torch.Tensor):
        if weights.is_complex() or weights.dtype == torch.bool:
            raise TypeError(f"{name} should have a real numeric dtype, but got {weights.dtype}")
        array = weights.detach().to(device="cpu", dtype=torch.float64).numpy().copy()
    else:
        if isinstance(weights, (str, bytes)):
            kind = type(weights).__name__
            raise TypeError(f"{name} should be a sequence of numbers, but got {kind}")
        try:
            raw = np.asarray(weights)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} should be a 1-D sequence of numbers: {exc}") from None
        if raw.dtype.kind not in "iuf":
            raise TypeError(
                f"{name} should be a sequence of real numbers, "
                f"but got elements of dtype {raw.dtype}"
            )
        array = np.array(raw, dtype=np.float64, order="C", copy=True)
    if array.ndim != 1:
        raise ValueError(f"{name} should be 1-D, but got shape {tuple(array.shape)}")
    if array.size == 0:
        raise ValueError(f"{name} should not be empty")
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} should be finite, but {name}[{bad}]={array[bad]}")
    if (array < 0).any():
        bad = int(np.flatnonzero(array < 0)[0])
        raise ValueError(f"{name} should be non-negative, but {name}[{bad}]={array[bad]}")
    with np.errstate(over="ignore"):
        total = float(array.sum())
    if not np.isfinite(total):
        raise ValueError(f"the sum of {name} overflows float64")
    if total == 0.0:
        raise ValueError(f"{name} should contain at least one positive value, but all are zero")
    return array
