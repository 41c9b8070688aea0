"""Detection sampling policies as samplers: repeat-factor (LVIS) and class-aware (mmdet) epochs."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from .. import _C
from .._util.checks import (
    boolean,
    non_negative_int,
    positive_int,
    seed_or_none,
    stream_index,
    weight_array,
)
from .._util.threads import native_threads
from ._readonly import read_only
from ._state import Progress, RankGeometry, check_state, fingerprint, shard_array
from .class_weights import ImageLabels, _label_table

# Indices reach Python this many at a time, so a long epoch never becomes one huge list.
_CHUNK = 1 << 16
_MAX_FACTOR = float(1 << 31)
_FACTORS_HINT = (
    "RepeatFactorSampler.repeat_factors is read-only: every epoch and len() come from the "
    "sampler's own copy, so an in-place edit could never take effect; build a new sampler"
)


class _ShardedEpochSampler(Sampler[int]):
    """One global index stream per (seed, epoch), shared out to ranks as DistributedSampler does.

    Rank ``r`` of ``R`` yields global positions ``r, r + R, r + 2R, ...``: ``ceil(T / R)`` of them
    for a global epoch of ``T`` indices (``floor(T / R)`` with ``drop_last``), the global stream
    wrapping around to pad the last positions (``sampling._state.RankGeometry``). Subclasses give
    ``_global_size`` and ``_global_epoch`` (pure functions of seed and epoch) and ``_identity``.
    """

    _progress: Progress

    def _init_stream(
        self, seed: int | None, num_replicas: int | None, rank: int | None, drop_last: bool
    ) -> None:
        replicas = 1 if num_replicas is None else positive_int(num_replicas, "num_replicas")
        rank = 0 if rank is None else non_negative_int(rank, "rank")
        if rank >= replicas:
            raise ValueError(f"rank should be in [0, num_replicas={replicas}), but got rank={rank}")
        drop_last = boolean(drop_last, "drop_last")
        seed = seed_or_none(seed)
        if seed is None:
            if replicas > 1:
                raise ValueError(
                    "seed should be given when num_replicas > 1, so every rank draws one stream"
                )
            # torch's default generator: torch.manual_seed makes runs repeat.
            seed = int(torch.empty((), dtype=torch.int64).random_().item()) % (1 << 64)
        self._progress = Progress(seed, RankGeometry(replicas, rank, drop_last))

    @property
    def seed(self) -> int:
        seed = self._progress.seed
        assert seed is not None  # drawn at construction when not given
        return seed

    @seed.setter
    def seed(self, value: int) -> None:
        seed = seed_or_none(value)
        if seed is None:
            raise TypeError("seed should be an int, but got None")
        self._progress.seed = seed

    @property
    def epoch(self) -> int:
        return self._progress.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.set_epoch(value)

    @property
    def num_replicas(self) -> int:
        return self._progress.geometry.num_replicas

    @property
    def rank(self) -> int:
        return self._progress.geometry.rank

    @property
    def drop_last(self) -> bool:
        return self._progress.geometry.drop_last

    # -- subclass hooks
    def _global_size(self, seed: int, epoch: int) -> int:
        raise NotImplementedError

    def _global_epoch(self, seed: int, epoch: int) -> np.ndarray:
        raise NotImplementedError

    def _identity(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- the sharded stream
    def __len__(self) -> int:
        """This rank's indices in the current epoch (the class docstring gives the global size)."""
        return self._progress.geometry.shard_size(self._global_size(self.seed, self.epoch))

    def _rank_indices(self) -> np.ndarray:
        """This rank's whole current epoch, whatever has been yielded or resumed."""
        stream = self._global_epoch(self.seed, self.epoch)
        return shard_array(stream, self._progress.geometry.rest(0, len(stream)))

    def indices(self) -> torch.Tensor:
        """This rank's indices of the current epoch as an int64 tensor, in ``__iter__`` order."""
        return torch.from_numpy(self._rank_indices().copy())

    def __iter__(self) -> Iterator[int]:
        # A loaded state is claimed now, the epoch begun at the first next() (Progress.claim).
        return self._iterate(self._progress.claim())

    def _iterate(self, resume: tuple[int | None, int] | None) -> Iterator[int]:
        cursor = self._progress.begin(self._global_size(self.seed, self.epoch), resume)
        mine = shard_array(self._global_epoch(cursor.seed, cursor.epoch), cursor.shard)
        for begin in range(0, len(mine), _CHUNK):
            yield from cursor.hand_out(mine[begin : begin + _CHUNK].tolist())
        self._progress.record(cursor, cursor.shard.count)

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch's stream (call it before each epoch, as with DistributedSampler).

        Setting the epoch being resumed keeps the resume position; another epoch starts at 0.
        """
        self._progress.set_epoch(stream_index(epoch, "epoch"))

    # -- torchdata's Stateful protocol (format: sampling/_state.py)
    def state_dict(self) -> dict[str, Any]:
        """O(1) state: the stream (seed, epoch) and the global position reached in the epoch."""
        return self._progress.state(type(self).__name__, self._identity())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resumes: the next ``__iter__`` continues the saved epoch at the saved global position,
        at this or any other world size. Validates every field first: a refused state changes
        nothing."""
        owner = type(self).__name__
        state = check_state(state_dict, self._identity(), owner)
        seed, epoch, position = state["seed"], state["epoch"], state["position"]
        if seed is None:  # these samplers always hold a seed (drawn when none is given)
            raise ValueError(f"{owner}.load_state_dict: state_dict['seed'] should be an int")
        total = self._global_size(seed, epoch)
        replicas = state["num_replicas"]
        if position > -(-total // replicas) * replicas:
            raise ValueError(
                f"{owner}.load_state_dict: state_dict position={position} is past the "
                f"{total} indices of epoch {epoch} (num_replicas={replicas})"
            )
        self._progress.load(state)

    def __getstate__(self) -> dict[str, Any]:
        self._progress.current()  # a copy keeps the live iteration's position, not its iterator
        state = self.__dict__.copy()
        progress = state["_progress"] = copy.copy(self._progress)
        progress.live = None
        state["_epoch_cache"] = None  # rebuilt on demand: keeps pickles O(images)
        return state


class RepeatFactorSampler(_ShardedEpochSampler):
    """Repeat-factor sampling (LVIS; detectron2's RepeatFactorTrainingSampler) generated natively.

    Each epoch image ``i`` appears ``floor(r_i)`` or ``ceil(r_i)`` times, the extra copy with
    probability ``frac(r_i)`` (stochastic rounding: ``r_i`` times in expectation, to 2**-53), in a
    uniformly shuffled order. The epoch is a pure function of ``(seed, epoch)``.

    ``len()`` is exact for the current epoch and, unlike detectron2's infinite sampler, changes
    with it: the epoch holds ``T = sum_i copies_i`` indices (``sum(r_i)`` on average), and this
    rank yields ``ceil(T / num_replicas)`` of them (``floor`` with ``drop_last``). Call
    :meth:`set_epoch` before taking ``len()`` of a new epoch (Lightning and the usual
    ``for epoch ...: sampler.set_epoch(epoch)`` loop do).

    Args:
        repeat_factors: one non-negative finite factor per image (see
            :func:`fastloader.repeat_factors`); 0 leaves an image out. Copied.
        seed: fixes every epoch's stream; when None one is drawn once from torch's default
            generator (required when ``num_replicas > 1``).
        num_replicas, rank: share the global stream between ranks (default: one process): rank
            ``r`` takes global positions ``r, r + R, ...``, the stream wrapping around to pad
            the tail, with DistributedSampler's sizes.
        drop_last: drop the tail instead of padding it when ``T`` is not a multiple of the ranks.

    Example:
        >>> from collections import Counter
        >>> from fastloader import RepeatFactorSampler
        >>> sampler = RepeatFactorSampler([1.0, 3.0, 0.0], seed=0)
        >>> len(sampler), sorted(Counter(sampler).items())
        (4, [(0, 1), (1, 3)])
    """

    def __init__(
        self,
        repeat_factors: Any,
        *,
        seed: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        factors = weight_array(repeat_factors, "repeat_factors")
        if factors.max() >= _MAX_FACTOR:
            index = int(np.argmax(factors))
            raise ValueError(
                "repeat_factors should be below 2**31, "
                f"but repeat_factors[{index}]={factors[index]}"
            )
        factors.setflags(write=False)  # every epoch is generated from these values
        self._factors = factors
        self._init_stream(seed, num_replicas, rank, drop_last)
        self._size_cache: tuple[tuple[int, int], int] | None = None
        self._epoch_cache: tuple[tuple[int, int], np.ndarray] | None = None
        self._fingerprint = fingerprint(factors)

    @property
    def repeat_factors(self) -> torch.Tensor:
        """The factors as a float64 tensor: a read-only copy (in-place edits raise
        RuntimeError: the epochs and ``len()`` come from the sampler's own copy)."""
        return read_only(torch.from_numpy(self._factors.copy()), _FACTORS_HINT)

    def _global_size(self, seed: int, epoch: int) -> int:
        key = (seed, epoch)
        if self._epoch_cache is not None and self._epoch_cache[0] == key:
            return len(self._epoch_cache[1])
        if self._size_cache is None or self._size_cache[0] != key:
            size = _C.repeat_factor_epoch_size(self._factors, *key, native_threads())
            self._size_cache = (key, size)
        return self._size_cache[1]

    def _global_epoch(self, seed: int, epoch: int) -> np.ndarray:
        key = (seed, epoch)
        if self._epoch_cache is None or self._epoch_cache[0] != key:
            self._epoch_cache = None  # free the last epoch before building the next
            self._epoch_cache = (key, _C.repeat_factor_epoch(self._factors, *key, native_threads()))
        return self._epoch_cache[1]

    def _identity(self) -> dict[str, Any]:
        return {"num_images": len(self._factors), "repeat_factors_fingerprint": self._fingerprint}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(images={len(self._factors)}, seed={self.seed}, "
            f"epoch={self.epoch}, num_replicas={self.num_replicas}, rank={self.rank})"
        )


class ClassAwareSampler(_ShardedEpochSampler):
    """Class-aware sampling with mmdet's semantics (``ClassAwareSampler``), generated natively.

    The epoch visits the classes in cycles, each cycle in a fresh random order; each visit takes
    ``num_sample_class`` images from that class's own cycle of fresh random permutations of its
    images. Every class is thus drawn equally often, whatever its size. A class without images is
    skipped, as in mmdet (listed in :attr:`empty_classes`); images without objects are never drawn.

    The global epoch holds ``num_samples`` indices (default: the number of images, as mmdet), and
    this rank yields ``ceil(num_samples / num_replicas)`` of them (``floor`` with ``drop_last``);
    the epoch is a pure function of ``(seed, epoch)``.

    Args:
        image_labels: one integer label array per image, as :meth:`VOCDetection.labels` returns.
        num_sample_class: images taken per class visit.
        num_classes: the label range ``[0, num_classes)``; the largest label + 1 when None.
        num_samples: indices per epoch over all ranks.
        seed, num_replicas, rank, drop_last: as for :class:`RepeatFactorSampler` (mmdet gives
            each rank a contiguous block instead; every rank's share is class-balanced either way).

    Example:
        >>> import numpy as np
        >>> from fastloader import ClassAwareSampler
        >>> labels = [np.array([0])] * 9 + [np.array([1])]  # class 1 in one image of ten
        >>> drawn = list(ClassAwareSampler(labels, num_samples=1000, seed=0))
        >>> sum(i == 9 for i in drawn)  # half the draws visit class 1
        500
    """

    def __init__(
        self,
        image_labels: ImageLabels,
        num_sample_class: int = 1,
        *,
        num_classes: int | None = None,
        num_samples: int | None = None,
        seed: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        self.num_sample_class = positive_int(num_sample_class, "num_sample_class")
        flat, offsets, self.num_classes = _label_table(image_labels, num_classes)
        counts = _C.images_per_class(flat, offsets, self.num_classes)
        if not counts.any():
            raise ValueError(
                "image_labels should hold at least one object: "
                "ClassAwareSampler has no class to visit"
            )
        self._class_offsets = np.zeros(self.num_classes + 1, dtype=np.int64)
        np.cumsum(counts, out=self._class_offsets[1:])
        self._members = _C.class_members(flat, offsets, self.num_classes, self._class_offsets)
        self.num_images = len(offsets) - 1
        self.num_samples = (
            self.num_images if num_samples is None else positive_int(num_samples, "num_samples")
        )
        self.empty_classes = np.flatnonzero(counts == 0)
        self._init_stream(seed, num_replicas, rank, drop_last)
        self._epoch_cache: tuple[tuple[int, int], np.ndarray] | None = None
        self._fingerprint: str | None = None

    @property
    def images_per_class(self) -> np.ndarray:
        """How many images hold each class (int64 ``[num_classes]``)."""
        return np.diff(self._class_offsets)

    def _global_size(self, seed: int, epoch: int) -> int:
        return self.num_samples

    def _global_epoch(self, seed: int, epoch: int) -> np.ndarray:
        key = (seed, epoch)
        if self._epoch_cache is None or self._epoch_cache[0] != key:
            self._epoch_cache = None
            indices = _C.class_aware_epoch(
                self._class_offsets,
                self._members,
                self.num_sample_class,
                *key,
                self.num_samples,
                native_threads(),
            )
            self._epoch_cache = (key, indices)
        return self._epoch_cache[1]

    def _identity(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self._class_offsets, self._members)
        return {
            "num_images": self.num_images,
            "num_classes": self.num_classes,
            "num_sample_class": self.num_sample_class,
            "num_samples": self.num_samples,
            "labels_fingerprint": self._fingerprint,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(images={self.num_images}, classes={self.num_classes}, "
            f"num_sample_class={self.num_sample_class}, num_samples={self.num_samples}, "
            f"seed={self.seed}, epoch={self.epoch}, num_replicas={self.num_replicas}, "
            f"rank={self.rank})"
        )
