"""Read-only views of a sampler's data: in-place edits raise instead of being silently ignored.

A sampler builds its tables from its data once, so writing to the data it exposes could never
take effect: ``WeightedRandomSampler`` users who edit ``sampler.weights`` in place (hard-example
mining, curricula) must get an error that points to ``update_weights``, not a stale stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_INPLACE_DUNDERS = {
    "__setitem__",
    "__iadd__",
    "__isub__",
    "__imul__",
    "__itruediv__",
    "__ifloordiv__",
    "__imod__",
    "__ipow__",
    "__iand__",
    "__ior__",
    "__ixor__",
    "__ilshift__",
    "__irshift__",
    "__imatmul__",
}


def _writes(func: Any, kwargs: dict[str, Any]) -> bool:
    name = getattr(func, "__name__", "")
    if name in _INPLACE_DUNDERS or "out" in kwargs:
        return True
    return name.endswith("_") and not name.startswith("_")  # add_, copy_, fill_, zero_, ...


class ReadOnlyTensor(torch.Tensor):
    """A tensor whose in-place operations raise RuntimeError naming ``hint``; everything else
    (reading, arithmetic, ``.tolist()``, ``.clone()``) works and returns plain tensors, except
    views, which stay read-only, and ``.numpy()``, which is a read-only array."""

    _hint: str = "this tensor is read-only"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _writes(func, kwargs):
            hint = next((a._hint for a in args if isinstance(a, ReadOnlyTensor)), cls._hint)
            raise RuntimeError(hint)
        with torch._C.DisableTorchFunctionSubclass():
            result = func(*args, **kwargs)
        if isinstance(result, np.ndarray):
            result.flags.writeable = False
        elif isinstance(result, torch.Tensor) and type(result) is torch.Tensor:
            source = next((a for a in args if isinstance(a, ReadOnlyTensor)), None)
            if source is not None and _shares_memory(result, source):
                result = read_only(result, source._hint)
        return result


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    with torch._C.DisableTorchFunctionSubclass():
        try:
            if a.device != b.device or a.untyped_storage().nbytes() == 0:
                return False
            return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):  # layouts without one storage (sparse, ...)
            return False


def read_only(tensor: torch.Tensor, hint: str) -> ReadOnlyTensor:
    """``tensor`` (no copy) as a :class:`ReadOnlyTensor` whose write attempts raise ``hint``."""
    view = tensor.as_subclass(ReadOnlyTensor)
    view._hint = hint
    return view


def read_only_array(array: np.ndarray) -> np.ndarray:
    """A read-only numpy view of ``array`` (its own flag set, so the owner's stays as it is)."""
    view = array.view()
    view.flags.writeable = False
    return view
