"""Aspect-ratio grouped batches: torchvision's GroupedBatchSampler and its groups, done natively."""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler

from .. import _C
from .._util.checks import non_negative_int, positive_int
from .policies import _position, _Progress, _ResumableIteration

RatiosLike = Sequence[float] | np.ndarray | torch.Tensor
_STATE_VERSION = 1
# Batches reach Python this many rows at a time.
_CHUNK_ROWS = 1 << 12


def _numeric_vector(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} should be a sequence of numbers, but got {type(values).__name__}")
    array = np.asarray(values)
    if array.dtype.kind not in "iuf" or array.ndim != 1:
        raise ValueError(
            f"{name} should be a 1-D sequence of numbers, but got shape {array.shape} "
            f"and dtype {array.dtype}"
        )
    return array


def create_aspect_ratio_groups(aspect_ratios: RatiosLike, k: int = 3) -> np.ndarray:
    """Group ids from width / height ratios with torchvision's bins ``2 ** linspace(-1, 1, 2k+1)``.

    An image of ratio ``a`` goes to group ``bisect_right(bins, a)`` (so ``0 .. 2k + 1``); ``k = 0``
    splits portrait (< 1) from the rest. Ratios must be finite and > 0. Returns int64
    ``[len(aspect_ratios)]`` for :class:`AspectRatioGroupedBatchSampler`.
    """
    k = non_negative_int(k, "k")
    ratios = _numeric_vector(aspect_ratios, "aspect_ratios").astype(np.float64)
    bad = ~np.isfinite(ratios) | (ratios <= 0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(
            "aspect_ratios should be finite and > 0 (width / height), but "
            f"aspect_ratios[{index}]={ratios[index]}"
        )
    bins = 2.0 ** np.linspace(-1, 1, 2 * k + 1) if k > 0 else np.array([1.0])
    return np.searchsorted(bins, ratios, side="right").astype(np.int64)


def _group_array(group_ids: Any) -> tuple[np.ndarray, int]:
    """Dense int64 group ids (order-preserving relabelling of sparse ids) and their count."""
    ids = _numeric_vector(group_ids, "group_ids")
    if ids.size == 0:
        raise ValueError("group_ids should hold one group id per dataset index, but it is empty")
    if ids.dtype.kind == "f" and not np.all(np.isfinite(ids) & (ids == np.floor(ids))):
        index = int(np.flatnonzero(~np.isfinite(ids) | (ids != np.floor(ids)))[0])
        raise ValueError(f"group_ids should be integers, but group_ids[{index}]={ids[index]}")
    ids = ids.astype(np.int64)
    if ids.min() < 0:
        index = int(np.flatnonzero(ids < 0)[0])
        raise ValueError(f"group_ids should be >= 0, but group_ids[{index}]={ids[index]}")
    num_groups = int(ids.max()) + 1
    if num_groups > len(ids):  # sparse ids: relabel densely (the batching only compares ids)
        _, ids = np.unique(ids, return_inverse=True)
        num_groups = int(ids.max()) + 1
    # The narrowest id type: the kernel's random lookups then stay in cache.
    narrow = np.uint8 if num_groups <= 256 else np.int32 if num_groups < 2**31 else np.int64
    return np.ascontiguousarray(ids, dtype=narrow), num_groups


class AspectRatioGroupedBatchSampler(_ResumableIteration, BatchSampler):
    """A drop-in for torchvision's ``GroupedBatchSampler``: every batch comes from one group.

    Same positional arguments, length and batches: indices of ``sampler`` are buffered per group
    and a group's buffer becomes a batch when it holds ``batch_size`` indices, so batches keep
    close to the sampler's order. ``len() = len(sampler) // batch_size``; when the stream ends with
    fewer full batches than that, the fullest partial buffers (ties: the buffer opened first) are
    completed with the first indices the group yielded this epoch, cycled if the group is
    smaller, until there are ``len()`` batches. So the batches hold every index of the sampler
    except those left in buffers that are not completed, plus the fill.

    Works over any Sampler: the epoch's indices are taken at once (from fastloader samplers
    without a Python loop) and grouped in C++. ``set_epoch``, ``state_dict`` and
    ``load_state_dict`` follow the inner sampler: an exact resume needs a deterministic one
    (fastloader samplers, or DistributedSampler with ``set_epoch``).

    Args:
        sampler: the base sampler of dataset indices.
        group_ids: the group of each dataset index, integers >= 0 (for example
            :func:`create_aspect_ratio_groups`).
        batch_size: indices per batch.
    """

    # Any Sampler; the optional indices() / set_epoch() / state_dict() are looked up first.
    sampler: Any

    def __init__(self, sampler: Sampler, group_ids: Any, batch_size: int) -> None:
        if not isinstance(sampler, Sampler):
            # ValueError, not TypeError: what torchvision's GroupedBatchSampler raises.
            raise ValueError(  # noqa: TRY004
                "sampler should be an instance of torch.utils.data.Sampler, "
                f"but got sampler={sampler}"
            )
        self.sampler = sampler
        self._group_ids, self.num_groups = _group_array(group_ids)
        self.batch_size = positive_int(batch_size, "batch_size")
        self._progress: _Progress = (0, 0, None)
        self._resume_at = 0

    @property
    def group_ids(self) -> np.ndarray:
        return self._group_ids

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def _epoch_indices(self) -> np.ndarray:
        native = getattr(self.sampler, "_rank_indices", None)
        if callable(native):
            return np.ascontiguousarray(native(), dtype=np.int64)
        if type(self.sampler).__module__.startswith("fastloader.") and callable(
            getattr(self.sampler, "indices", None)
        ):
            # fastloader samplers document indices() as exactly what __iter__ would yield.
            return np.ascontiguousarray(self.sampler.indices().numpy(), dtype=np.int64)
        return np.fromiter(iter(self.sampler), dtype=np.int64)

    def batches(self) -> np.ndarray:
        """The epoch's batches as one int64 array ``[len(self), batch_size]`` (no resume)."""
        indices = self._epoch_indices()
        wanted = len(self)
        if len(indices) < wanted * self.batch_size:
            raise ValueError(
                f"the sampler yielded {len(indices)} indices but len(sampler)={len(self.sampler)}: "
                f"too few for the {wanted} batches of batch_size={self.batch_size}"
            )
        return _C.group_batches(indices, self._group_ids, self.num_groups, self.batch_size, wanted)

    def __iter__(self) -> Iterator[list[int]]:
        return self._iterate(self.batches, _CHUNK_ROWS)

    def set_epoch(self, epoch: int) -> None:
        """Forwards to the inner sampler's ``set_epoch``; a new epoch starts at batch 0."""
        epoch = non_negative_int(epoch, "epoch")
        if epoch != getattr(self.sampler, "epoch", None):
            self._progress, self._resume_at = (0, 0, None), 0
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(epoch)

    def _fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=8)
        digest.update(np.int64(self.batch_size).tobytes())
        digest.update(self._group_ids.tobytes())
        return digest.hexdigest()

    def state_dict(self) -> dict[str, Any]:
        """O(1) state: batches yielded this epoch and the inner sampler's state or epoch."""
        inner = getattr(self.sampler, "state_dict", None)
        epoch = getattr(self.sampler, "epoch", None)
        return {
            "version": _STATE_VERSION,
            "batches_yielded": _position(self._progress),
            "num_batches": len(self),
            "fingerprint": self._fingerprint(),
            "sampler_epoch": epoch if isinstance(epoch, numbers.Integral) else None,
            "sampler_state": inner() if callable(inner) else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resumes after the saved batch of the saved epoch (regenerated from the inner sampler)."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict should be a dict, but got {type(state_dict).__name__}")
        for key in ("version", "batches_yielded", "num_batches", "fingerprint"):
            if key not in state_dict:
                raise ValueError(f"state_dict is missing {key!r}")
        if state_dict["version"] != _STATE_VERSION:
            raise ValueError(
                f"state_dict version {state_dict['version']!r} is not {_STATE_VERSION}"
            )
        if state_dict["fingerprint"] != self._fingerprint():
            raise ValueError(
                "state_dict fingerprint does not match: it was saved with other group_ids or "
                "batch_size"
            )
        inner_state = state_dict.get("sampler_state")
        epoch = state_dict.get("sampler_epoch")
        if inner_state is not None and callable(getattr(self.sampler, "load_state_dict", None)):
            self.sampler.load_state_dict(inner_state)
        elif epoch is not None and callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(epoch)
        if len(self) != state_dict["num_batches"]:
            raise ValueError(
                f"state_dict num_batches={state_dict['num_batches']} does not match the "
                f"{len(self)} batches of the restored sampler"
            )
        position = non_negative_int(state_dict["batches_yielded"], "state_dict['batches_yielded']")
        if position > len(self):
            raise ValueError(f"state_dict batches_yielded={position} is past {len(self)} batches")
        self._resume_at, self._progress = position, (position, 0, None)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size={self.batch_size}, groups={self.num_groups}, "
            f"sampler={self.sampler!r})"
        )
