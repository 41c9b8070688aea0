"""Detection sampling policies as samplers: repeat-factor (LVIS) and class-aware (mmdet) epochs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from .. import _C
from .._util.checks import boolean, non_negative_int, positive_int, seed_or_none, weight_array
from .._util.threads import native_threads
from .class_weights import ImageLabels, _label_table

# Indices reach Python this many at a time, so a long epoch never becomes one huge list.
_CHUNK = 1 << 16
_STATE_VERSION = 1
_MAX_FACTOR = float(1 << 31)

# Where an iteration is: (first position of the current chunk, its length, its list iterator).
_Progress = tuple[int, int, Iterator[Any] | None]


def _position(progress: _Progress) -> int:
    """Items taken so far: the chunk's start plus what its list iterator has handed out."""
    begin, length, iterator = progress
    if iterator is None:
        return begin
    return begin + length - iterator.__length_hint__()  # type: ignore[attr-defined]


class _ResumableIteration:
    """Where an iteration over an epoch's array is, for O(1) state: ``_progress`` is read by
    ``_position``, ``_resume_at`` is where the next iteration starts."""

    _progress: _Progress
    _resume_at: int

    def _iterate(self, epoch: Callable[[], np.ndarray], chunk: int) -> Iterator[Any]:
        """The epoch's array from ``_resume_at`` on, as Python objects ``chunk`` rows at a time;
        the list iterator itself counts what was taken, so yielding stays at C speed."""
        start, self._resume_at = self._resume_at, 0
        values = epoch()
        self._progress = (start, 0, None)
        for begin in range(start, len(values), chunk):
            rows = values[begin : begin + chunk].tolist()
            iterator = iter(rows)
            self._progress = (begin, len(rows), iterator)
            yield from iterator


class _ShardedEpochSampler(_ResumableIteration, Sampler[int]):
    """One global index stream per (seed, epoch), shared out to ranks as DistributedSampler does.

    Rank ``r`` of ``R`` yields global positions ``r, r + R, r + 2R, ...``: ``ceil(T / R)`` of them
    for a global epoch of ``T`` indices (``floor(T / R)`` with ``drop_last``), the global stream
    wrapping around to pad the last positions. Subclasses give ``_global_size`` and
    ``_global_epoch`` (pure functions of seed and epoch) and ``_fingerprint_parts``.
    """

    def _init_stream(
        self, seed: int | None, num_replicas: int | None, rank: int | None, drop_last: bool
    ) -> None:
        self.num_replicas = (
            1 if num_replicas is None else positive_int(num_replicas, "num_replicas")
        )
        self.rank = 0 if rank is None else non_negative_int(rank, "rank")
        if self.rank >= self.num_replicas:
            raise ValueError(
                f"rank should be in [0, num_replicas={self.num_replicas}), but got rank={self.rank}"
            )
        self.drop_last = boolean(drop_last, "drop_last")
        seed = seed_or_none(seed)
        if seed is None:
            if self.num_replicas > 1:
                raise ValueError(
                    "seed should be given when num_replicas > 1, so every rank draws one stream"
                )
            # torch's default generator: torch.manual_seed makes runs repeat.
            seed = int(torch.empty((), dtype=torch.int64).random_().item()) % (1 << 64)
        self.seed = seed
        self.epoch = 0
        self._progress: _Progress = (0, 0, None)
        self._resume_at = 0
        self._fingerprint: str | None = None

    # -- subclass hooks
    def _global_size(self) -> int:
        raise NotImplementedError

    def _global_epoch(self) -> np.ndarray:
        raise NotImplementedError

    def _fingerprint_parts(self) -> Iterable[bytes]:
        raise NotImplementedError

    # -- the sharded stream
    def _shard_size(self, total: int) -> int:
        if self.drop_last:
            return total // self.num_replicas
        return -(-total // self.num_replicas)

    def __len__(self) -> int:
        """This rank's indices in the current epoch (the class docstring gives the global size)."""
        return self._shard_size(self._global_size())

    def _rank_indices(self) -> np.ndarray:
        """This rank's whole current epoch, whatever has been yielded or resumed."""
        stream = self._global_epoch()
        total, size = len(stream), self._shard_size(len(stream))
        if self.num_replicas == 1 and size == total:
            return stream
        if total == 0:
            return stream[:0]
        positions = np.arange(size, dtype=np.int64) * self.num_replicas + self.rank
        if size * self.num_replicas > total:
            positions %= total  # DistributedSampler's padding: the stream wraps around
        return stream[positions]

    def indices(self) -> torch.Tensor:
        """This rank's indices of the current epoch as an int64 tensor, in ``__iter__`` order."""
        return torch.from_numpy(self._rank_indices().copy())

    def __iter__(self) -> Iterator[int]:
        return self._iterate(self._rank_indices, _CHUNK)

    def _position(self) -> int:
        return _position(self._progress)

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch's stream (call it before each epoch, as with DistributedSampler).

        Setting the epoch being resumed keeps the resume position; another epoch starts at 0.
        """
        epoch = non_negative_int(epoch, "epoch")
        if epoch != self.epoch:
            self._progress, self._resume_at = (0, 0, None), 0
        self.epoch = epoch

    # -- torchdata's Stateful protocol
    def fingerprint(self) -> str:
        """A short hash of what defines the streams (the data and the settings, not the seed)."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=8)
            for part in self._fingerprint_parts():
                digest.update(part)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def state_dict(self) -> dict[str, Any]:
        """O(1) state: the stream (seed, epoch) and how far this rank has got into the epoch."""
        return {
            "version": _STATE_VERSION,
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self._position(),
            "num_samples": len(self),
            "num_replicas": self.num_replicas,
            "fingerprint": self.fingerprint(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resumes: the next ``__iter__`` continues the saved epoch after the saved position."""
        state = _checked_state(state_dict, ("seed", "epoch", "position", "num_samples"))
        if state["fingerprint"] != self.fingerprint():
            raise ValueError(
                f"state_dict fingerprint {state['fingerprint']!r} does not match this sampler's "
                f"{self.fingerprint()!r}: it was saved by a sampler over other data or settings"
            )
        if state["num_replicas"] != self.num_replicas:
            raise ValueError(
                f"state_dict num_replicas={state['num_replicas']} does not match this sampler's "
                f"num_replicas={self.num_replicas}"
            )
        seed = seed_or_none(state["seed"], "state_dict['seed']")
        if seed is None:  # these samplers always hold a seed (drawn when none is given)
            raise ValueError("state_dict['seed'] should be an int, but got None")
        epoch = non_negative_int(state["epoch"], "state_dict['epoch']")
        saved_seed, saved_epoch = self.seed, self.epoch
        self.seed, self.epoch = seed, epoch
        if len(self) != state["num_samples"]:
            self.seed, self.epoch = saved_seed, saved_epoch
            raise ValueError(
                f"state_dict num_samples={state['num_samples']} does not match the "
                f"{len(self)} indices of epoch {epoch}"
            )
        position = non_negative_int(state["position"], "state_dict['position']")
        if position > state["num_samples"]:
            raise ValueError(
                f"state_dict position={position} is past the epoch's {state['num_samples']} indices"
            )
        self._resume_at, self._progress = position, (position, 0, None)


def _checked_state(state_dict: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict should be a dict, but got {type(state_dict).__name__}")
    for key in ("version", "num_replicas", "fingerprint", *keys):
        if key not in state_dict:
            raise ValueError(f"state_dict is missing {key!r}")
    if state_dict["version"] != _STATE_VERSION:
        raise ValueError(
            f"state_dict version {state_dict['version']!r} is not {_STATE_VERSION}, the version "
            "this fastloader writes"
        )
    return state_dict


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
        self._factors = factors
        self._init_stream(seed, num_replicas, rank, drop_last)
        self._size_cache: tuple[tuple[int, int], int] | None = None
        self._epoch_cache: tuple[tuple[int, int], np.ndarray] | None = None

    @property
    def repeat_factors(self) -> torch.Tensor:
        """The factors as a float64 tensor (a view of the sampler's own copy)."""
        return torch.from_numpy(self._factors)

    def _global_size(self) -> int:
        key = (self.seed, self.epoch)
        if self._epoch_cache is not None and self._epoch_cache[0] == key:
            return len(self._epoch_cache[1])
        if self._size_cache is None or self._size_cache[0] != key:
            size = _C.repeat_factor_epoch_size(self._factors, *key, native_threads())
            self._size_cache = (key, size)
        return self._size_cache[1]

    def _global_epoch(self) -> np.ndarray:
        key = (self.seed, self.epoch)
        if self._epoch_cache is None or self._epoch_cache[0] != key:
            self._epoch_cache = None  # free the last epoch before building the next
            self._epoch_cache = (key, _C.repeat_factor_epoch(self._factors, *key, native_threads()))
        return self._epoch_cache[1]

    def _fingerprint_parts(self) -> Iterable[bytes]:
        yield b"RepeatFactorSampler"
        yield bytes(self.drop_last)
        yield self._factors.tobytes()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_epoch_cache"] = None  # rebuilt on demand: keeps pickles O(images)
        return state

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

    @property
    def images_per_class(self) -> np.ndarray:
        """How many images hold each class (int64 ``[num_classes]``)."""
        return np.diff(self._class_offsets)

    def _global_size(self) -> int:
        return self.num_samples

    def _global_epoch(self) -> np.ndarray:
        key = (self.seed, self.epoch)
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

    def _fingerprint_parts(self) -> Iterable[bytes]:
        yield b"ClassAwareSampler"
        yield np.array(
            [self.num_sample_class, self.num_samples, self.num_images, int(self.drop_last)],
            dtype=np.int64,
        ).tobytes()
        yield self._class_offsets.tobytes()
        yield self._members.tobytes()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_epoch_cache"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(images={self.num_images}, classes={self.num_classes}, "
            f"num_sample_class={self.num_sample_class}, num_samples={self.num_samples}, "
            f"seed={self.seed}, epoch={self.epoch}, num_replicas={self.num_replicas}, "
            f"rank={self.rank})"
        )
