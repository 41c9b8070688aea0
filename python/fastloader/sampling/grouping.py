"""Aspect-ratio grouped batches: torchvision's GroupedBatchSampler and its groups, done natively."""

from __future__ import annotations

import copy
import numbers
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler

from .. import _C
from .._util.checks import non_negative_int, positive_int, stream_index
from ._readonly import read_only_array
from ._state import Progress, check_state, fingerprint, is_shared_format, rewound

RatiosLike = Sequence[float] | np.ndarray | torch.Tensor
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


@runtime_checkable
class IndexedSampler(Protocol):
    """A sampler that gives a whole epoch at once: ``indices()`` returns exactly what
    ``__iter__`` would yield, in order, as an integer tensor or array (every sampler of this
    package has it). The grouped batches then take the epoch without a Python loop."""

    def indices(self) -> torch.Tensor | np.ndarray: ...

    def __len__(self) -> int: ...


@runtime_checkable
class StatefulSampler(Protocol):
    """torchdata's Stateful protocol: what an exact resume of the grouped batches needs."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


def _integer_indices(values: Any, source: str) -> np.ndarray:
    """int64 indices from a sampler, refusing anything but integers (floats are not truncated)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        bad = next(
            (
                (i, v)
                for i, v in enumerate(array.tolist() if array.ndim == 1 else [])
                if isinstance(v, bool) or not isinstance(v, numbers.Integral)
            ),
            None,
        )
        where = f"; index {bad[0]} is {bad[1]!r}" if bad is not None else ""
        raise TypeError(
            f"the sampler should yield integer dataset indices, but {source} gave dtype "
            f"{array.dtype} and shape {array.shape}{where}"
        )
    return np.ascontiguousarray(array, dtype=np.int64)


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


class AspectRatioGroupedBatchSampler(BatchSampler):
    """A drop-in for torchvision's ``GroupedBatchSampler``: every batch comes from one group.

    Same positional arguments, length and batches: indices of ``sampler`` are buffered per group
    and a group's buffer becomes a batch when it holds ``batch_size`` indices, so batches keep
    close to the sampler's order. ``len() = len(sampler) // batch_size``; when the stream ends with
    fewer full batches than that, the fullest partial buffers (ties: the buffer opened first) are
    completed with the first indices the group yielded this epoch, cycled if the group is
    smaller, until there are ``len()`` batches. So the batches hold every index of the sampler
    except those left in buffers that are not completed, plus the fill.

    Works over any Sampler of integer indices: the epoch's indices are taken at once (through
    ``indices()`` from samplers that have it, see :class:`IndexedSampler`) and grouped in C++.
    ``set_epoch``, ``state_dict`` and ``load_state_dict`` follow the inner sampler: an exact
    resume needs a deterministic one (this package's samplers, or any sampler with
    ``state_dict``/``load_state_dict`` or DistributedSampler with ``set_epoch``).

    Args:
        sampler: the base sampler of dataset indices (integers; other values are refused).
        group_ids: the group of each dataset index, integers >= 0 (for example
            :func:`create_aspect_ratio_groups`); copied, read-only afterwards.
        batch_size: indices per batch.

    Example:
        >>> import numpy as np
        >>> from torch.utils.data import SequentialSampler
        >>> from fastloader import AspectRatioGroupedBatchSampler
        >>> grouped = AspectRatioGroupedBatchSampler(
        ...     SequentialSampler(range(8)), np.arange(8) % 2, batch_size=2)
        >>> list(grouped)
        [[0, 2], [1, 3], [4, 6], [5, 7]]
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
        self._group_ids.setflags(write=False)  # the batches are grouped by these values
        self.batch_size = positive_int(batch_size, "batch_size")
        self._fingerprint = fingerprint(self._group_ids)
        self._progress = Progress(None)
        self._inner_state: dict[str, Any] | None = None  # the inner state this epoch came from

    @property
    def group_ids(self) -> np.ndarray:
        """The group of each dataset index (a read-only array)."""
        return read_only_array(self._group_ids)

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def _epoch_indices(self) -> np.ndarray:
        """The inner sampler's epoch, noting the inner state that gives this epoch again."""
        sampler = self.sampler
        stateful = isinstance(sampler, StatefulSampler)
        before = sampler.state_dict() if stateful else None
        if isinstance(sampler, IndexedSampler) and callable(sampler.indices):
            indices = _integer_indices(sampler.indices(), "sampler.indices()")
        else:
            indices = _integer_indices(list(iter(sampler)), "iterating it")
        if stateful:
            after = sampler.state_dict()
            # This package's samplers say where an epoch started, seed=None ones included.
            self._inner_state = rewound(after) if is_shared_format(after) else before
        return indices

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
        # A loaded state is claimed now, the epoch begun at the first next() (Progress.claim).
        return self._iterate(self._progress.claim())

    def _iterate(self, resume: tuple[int | None, int] | None) -> Iterator[list[int]]:
        cursor = self._progress.begin(len(self), resume)
        rows = self.batches()
        for begin in range(cursor.start, len(rows), _CHUNK_ROWS):
            yield from cursor.hand_out(rows[begin : begin + _CHUNK_ROWS].tolist())
        self._progress.record(cursor, cursor.shard.count)

    def set_epoch(self, epoch: int) -> None:
        """Forwards to the inner sampler's ``set_epoch``; a new epoch starts at batch 0."""
        epoch = stream_index(epoch, "epoch")
        self._progress.set_epoch(epoch)
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(epoch)

    def _identity(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "num_groups": self.num_groups,
            "group_ids_fingerprint": self._fingerprint,
        }

    def state_dict(self) -> dict[str, Any]:
        """O(1) state: batches yielded this epoch (``position``) and the inner sampler's state at
        the start of the epoch (``inner``), or its epoch for samplers without a state."""
        epoch = getattr(self.sampler, "epoch", None)
        _, phase = self._progress.current()
        inner = self._inner_state if phase == "running" else None
        if inner is None and isinstance(self.sampler, StatefulSampler):
            inner = self.sampler.state_dict()
        return self._progress.state(
            type(self).__name__,
            self._identity(),
            num_batches=len(self),
            sampler_epoch=epoch if isinstance(epoch, numbers.Integral) else None,
            inner=inner,
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resumes after the saved batch of the saved epoch (regenerated from the inner sampler).

        Validates everything first, the inner state on a copy of the inner sampler: a refused
        state leaves this sampler and its inner one as they were.
        """
        owner = type(self).__name__
        state = check_state(state_dict, self._identity(), owner, seeded=False)
        for key in ("num_batches", "sampler_epoch", "inner"):
            if key not in state:
                raise ValueError(f"{owner}.load_state_dict: the state lacks the field {key!r}")
        epoch = state["sampler_epoch"]
        if epoch is not None:
            epoch = stream_index(epoch, "state_dict['sampler_epoch']")
        inner, sampler = state["inner"], self.sampler
        stateful = inner is not None and isinstance(sampler, StatefulSampler)
        can_set_epoch = epoch is not None and callable(getattr(sampler, "set_epoch", None))
        # The batch count depends on the restored inner sampler (a repeat-factor epoch's length),
        # so restore a copy first; one that cannot be copied is restored and put back on failure.
        try:
            probe = copy.deepcopy(sampler) if stateful or can_set_epoch else sampler
        except Exception:  # noqa: BLE001 - any sampler may refuse to be copied
            probe = None
        target = sampler if probe is None else probe
        saved = sampler.state_dict() if stateful and probe is None else None
        saved_epoch = getattr(sampler, "epoch", None)
        if stateful:
            target.load_state_dict(inner)  # validates its own state and then changes nothing
        elif can_set_epoch:
            target.set_epoch(epoch)
        try:
            self._check_restored(state, len(target) // self.batch_size)
        except ValueError:
            if probe is None and stateful:
                sampler.load_state_dict(saved)
            elif probe is None and isinstance(saved_epoch, numbers.Integral):
                sampler.set_epoch(saved_epoch)
            raise
        if probe is not None and probe is not sampler:  # the state is good: now the real one
            if stateful:
                sampler.load_state_dict(inner)
            elif can_set_epoch:
                sampler.set_epoch(epoch)
        self._progress.load(state)
        self._inner_state = inner if stateful else None

    def _check_restored(self, state: dict[str, Any], batches: int) -> None:
        owner = type(self).__name__
        if batches != state["num_batches"]:
            raise ValueError(
                f"{owner}.load_state_dict: state_dict num_batches={state['num_batches']} does "
                f"not match the {batches} batches of the restored sampler"
            )
        if state["position"] > batches:
            raise ValueError(
                f"{owner}.load_state_dict: state_dict position={state['position']} is past "
                f"{batches} batches"
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size={self.batch_size}, groups={self.num_groups}, "
            f"sampler={self.sampler!r})"
        )
