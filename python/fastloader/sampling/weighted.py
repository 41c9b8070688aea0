"""Weighted samplers for DataLoader: drop-ins for WeightedRandomSampler on native kernels."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from .. import _C
from .._util.checks import (
    boolean,
    generator_or_none,
    positive_int,
    seed_or_none,
    stream_index,
)
from ._draw import Weights, WeightsLike, build_weights, epoch_chunks
from ._readonly import read_only
from ._state import (
    Cursor,
    Progress,
    RankGeometry,
    check_state,
    legacy_phase,
    legacy_weights_fingerprint,
)

#: Changes whenever a (seed, epoch) can yield different indices than before (see ARCHITECTURE.md).
STREAM_VERSION: int = _C.stream_version()

# Indices reach Python this many at a time: O(chunk) memory however long the epoch, and chunks
# large enough for the draw kernel to use its threads.
_CHUNK = 1 << 18
# The first chunk of an iteration is smaller, so that the first batch comes at once.
_FIRST_CHUNK = 1 << 12


_WEIGHTS_HINT = (
    "the sampler's weights are read-only: the alias table was built from them, so an in-place "
    "edit could never take effect; call sampler.update_weights(new_weights) instead (it takes "
    "effect at the next iteration)"
)


class FastWeightedSampler(Sampler[int]):
    """Samples indices ``[0, len(weights))`` with probabilities proportional to ``weights``.

    Same positional arguments, defaults and ``len()`` as
    :class:`torch.utils.data.WeightedRandomSampler`, without its 2**24 limit.

    Args:
        weights: 1-D non-negative finite weights (list, tuple, numpy array or tensor of any real
            dtype); copied, never modified. Change them with :meth:`update_weights`.
        num_samples: indices per epoch.
        replacement: draw with replacement (Vose alias table) or without (exponential keys).
        generator: where a fresh seed is taken for each epoch when ``seed`` is None; torch's
            default generator when None, so ``torch.manual_seed`` makes runs repeat.
        seed: fixes the stream: an epoch's indices are then a pure function of
            ``(seed, epoch)``, selected by :meth:`set_epoch`, on any platform and thread count.
            With None, the first epoch's seed is drawn from ``generator`` and each later epoch's
            follows from the one before (see ``sampling._state.next_epoch_seed``).

    Checkpoints: :meth:`state_dict` / :meth:`load_state_dict` (torchdata's Stateful protocol, so
    ``StatefulDataLoader`` saves and resumes it) hold a few integers (format in
    ``fastloader.sampling._state``); a loaded state makes the next iteration continue exactly
    where the saved run stopped, or start the next epoch when the saved one was over.

    Example:
        >>> from fastloader import FastWeightedSampler
        >>> sampler = FastWeightedSampler([0.0, 1.0, 3.0], num_samples=6, seed=0)
        >>> len(sampler), set(sampler) <= {1, 2}  # index 0 has weight 0
        (6, True)
        >>> sampler.update_weights([1.0, 0.0, 0.0])  # hard-example mining: from the next epoch
        >>> list(sampler)
        [0, 0, 0, 0, 0, 0]
    """

    def __init__(
        self,
        weights: WeightsLike,
        num_samples: int,
        replacement: bool = True,
        generator: torch.Generator | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.num_samples = positive_int(num_samples, "num_samples")
        self.replacement = boolean(replacement, "replacement")
        self.generator = generator_or_none(generator)
        seed = seed_or_none(seed)
        self._data = build_weights(weights, self.num_samples, self.replacement)
        self._progress = Progress(seed)

    @classmethod
    def _shard(
        cls,
        weights: WeightsLike,
        num_samples: int,
        replacement: bool,
        seed: int,
        geometry: RankGeometry,
    ) -> FastWeightedSampler:
        """The sampler of one rank's shard (DistributedWeightedSampler's stream)."""
        sampler = cls(weights, num_samples, replacement, seed=seed)
        sampler._progress = Progress(sampler.seed, geometry)
        return sampler

    @property
    def weights(self) -> torch.Tensor:
        """The weights as a float64 tensor: a read-only copy (in-place edits raise
        RuntimeError; use :meth:`update_weights`)."""
        return read_only(torch.from_numpy(self._data.values.copy()), _WEIGHTS_HINT)

    @property
    def num_positive(self) -> int:
        """How many weights are positive."""
        return self._data.positive

    @property
    def seed(self) -> int | None:
        return self._progress.seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        self._progress.seed = seed_or_none(value)

    @property
    def epoch(self) -> int:
        return self._progress.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.set_epoch(value)

    @property
    def geometry(self) -> RankGeometry:
        """This sampler's rank geometry (one process: ``RankGeometry()``)."""
        return self._progress.geometry

    def update_weights(self, weights: WeightsLike) -> None:
        """Replaces the weights (same length): an O(n) native rebuild of the alias table.

        Takes effect at the next iteration (``__iter__`` or :meth:`indices`): an iteration
        already under way keeps the weights it started with. The weights are part of the state
        fingerprint, so a checkpoint saved afterwards resumes only with the new weights; update
        between epochs for an exact resume. Raises as the constructor does and then changes
        nothing.
        """
        data = build_weights(weights, self.num_samples, self.replacement)
        if len(data.values) != len(self._data.values):
            raise ValueError(
                f"weights should keep their length {len(self._data.values)}, but got "
                f"{len(data.values)}; build a new sampler for another dataset"
            )
        self._data = data

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Selects the stream of the next iteration when ``seed`` is set (as DistributedSampler)."""
        self._progress.set_epoch(stream_index(epoch, "epoch"))

    def _begin(self, resume: tuple[int | None, int] | None, *, whole: bool = False) -> Cursor:
        return self._progress.begin(self.num_samples, resume, self._draw_epoch_seed, whole=whole)

    def __iter__(self) -> Iterator[int]:
        # A loaded state is claimed now, the epoch begun at the first next() (Progress.claim).
        return self._iterate(self._progress.claim(), self._data)

    def _iterate(self, resume: tuple[int | None, int] | None, data: Weights) -> Iterator[int]:
        cursor = self._begin(resume)
        for chunk in epoch_chunks(cursor, data, self.num_samples, _CHUNK, _FIRST_CHUNK):
            yield from cursor.hand_out(chunk.tolist())
        self._progress.record(cursor, cursor.shard.count)

    def indices(self) -> torch.Tensor:
        """The whole epoch as an int64 tensor: what ``__iter__`` would yield, in order.

        This starts the epoch: a fresh one (with ``seed`` None it takes the next epoch seed,
        exactly as ``__iter__`` does), or, when a loaded state is pending, the whole of that
        state's epoch from its first index.
        """
        cursor = self._begin(self._progress.claim(), whole=True)
        count = cursor.shard.count
        whole = list(
            epoch_chunks(cursor, self._data, self.num_samples, max(1, count))
        )  # one chunk: no copy
        self._progress.record(cursor, count)
        return torch.from_numpy(whole[0] if whole else np.empty(0, dtype=np.int64))

    def _draw_epoch_seed(self) -> int:
        drawn = torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        return int(drawn.item())

    # ------------------------------------------------------------------ checkpoint state

    def _identity(self) -> dict[str, Any]:
        return {
            "num_weights": len(self._data.values),
            "weights_fingerprint": self._data.fingerprint,
            "num_samples": self.num_samples,
            "replacement": self.replacement,
        }

    def state_dict(self) -> dict[str, Any]:
        """The resumable state: a few ints and strings, O(1) (format: sampling/_state.py)."""
        return self._progress.state(type(self).__name__, self._identity())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Makes the next iteration continue where ``state`` stopped (O(1): nothing is replayed).

        The state's seed replaces the sampler's. Saved mid-epoch, its epoch does too and the next
        iteration yields the rest of that epoch; saved after an epoch ended, the next iteration
        starts a fresh epoch (``set_epoch`` called before or after loading selects it; the epoch
        never goes back). A state saved at another world size continues at the same global
        position. Raises ValueError when the state belongs to other weights, ``num_samples`` or
        ``replacement``, or to an unknown format version, and then changes nothing.
        """
        self._progress.load(self._checked_state(state))

    def _checked_state(self, state: Any) -> dict[str, Any]:
        return check_state(state, self._identity(), type(self).__name__, legacy=self._legacy)

    def _legacy(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """A version 1 state (before the shared format) in today's fields."""
        converted = dict(state)
        if converted.get("weights_fingerprint") == legacy_weights_fingerprint(self._data.values):
            converted["weights_fingerprint"] = self._data.fingerprint
        position = converted.get("position")
        if isinstance(position, int) and "phase" not in converted:
            converted["phase"] = legacy_phase(position, self.geometry.end(self.num_samples))
        return converted

    def __getstate__(self) -> dict[str, Any]:
        self._progress.current()  # a copy keeps the live iteration's position, not its iterator
        state = self.__dict__.copy()
        progress = state["_progress"] = copy.copy(self._progress)
        progress.live = None
        state["_data"] = self._data._replace(table=None)  # rebuilt from the weights: O(n)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.replacement:
            self._data = self._data._replace(table=_C.AliasTable(self._data.values))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self._data.values)}, num_samples={self.num_samples}, "
            f"replacement={self.replacement}, seed={self.seed}, epoch={self.epoch})"
        )


class _BatchesOf(Sampler[list]):
    """What both batch forms share: lists cut from a fastloader sampler's epoch, whose state and
    ``set_epoch`` are theirs (Lightning calls ``set_epoch`` on ``batch_sampler.sampler``)."""

    sampler: Any
    batch_size: int
    drop_last: bool

    def _source(self) -> FastWeightedSampler:
        """The single-process sampler whose chunks the batches are cut from."""
        return self.sampler

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    @property
    def weights(self) -> torch.Tensor:
        """The sampler's weights (a read-only float64 tensor)."""
        return self.sampler.weights

    def update_weights(self, weights: WeightsLike) -> None:
        """See :meth:`FastWeightedSampler.update_weights` (from the next iteration on)."""
        self.sampler.update_weights(weights)

    def __iter__(self) -> Iterator[list[int]]:
        source = self._source()
        resume = source._progress.claim()
        return _iterate_batches(source, resume, source._data, self.batch_size, self.drop_last)

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state (same format: a batch sampler resumes from a sampler's and back;
        positions count indices, not batches, so the batch size may change on resume)."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """See :meth:`FastWeightedSampler.load_state_dict`."""
        self.sampler.load_state_dict(state)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size={self.batch_size}, drop_last={self.drop_last}, "
            f"sampler={self.sampler!r})"
        )


class FastWeightedBatchSampler(_BatchesOf):
    """Batches of :class:`FastWeightedSampler` indices for ``DataLoader(batch_sampler=...)``.

    Yields lists of ints cut from C++-filled arrays, with no Python loop per index: faster than
    ``BatchSampler(FastWeightedSampler(...))`` for small datasets with many batches. For the same
    ``seed`` and epoch the concatenated batches equal the FastWeightedSampler stream, and the
    states are interchangeable (positions count indices, so the batch size may change on resume).
    ``.sampler`` is the FastWeightedSampler: ``set_epoch``, ``state_dict``, ``load_state_dict``,
    ``weights`` and ``update_weights`` act on it.

    Args:
        weights: as for :class:`FastWeightedSampler`.
        num_samples: indices per epoch (over all batches).
        batch_size: indices per batch.
        drop_last: drop the last batch when it is short (``len()`` is then
            ``num_samples // batch_size``; else it is rounded up).
        replacement: with (Vose alias table) or without replacement (exponential keys).
        generator: where a fresh epoch seed is drawn when ``seed`` is None.
        seed: fixes every epoch's stream, as for :class:`FastWeightedSampler`.

    Example:
        >>> from fastloader import FastWeightedBatchSampler
        >>> batches = FastWeightedBatchSampler([1.0, 0.0, 1.0], 5, batch_size=2, seed=0)
        >>> len(batches), [len(b) for b in batches]
        (3, [2, 2, 1])
        >>> all(i in (0, 2) for b in batches for i in b)
        True
    """

    def __init__(
        self,
        weights: WeightsLike,
        num_samples: int,
        batch_size: int,
        drop_last: bool = False,
        replacement: bool = True,
        generator: torch.Generator | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.batch_size = positive_int(batch_size, "batch_size")
        self.drop_last = boolean(drop_last, "drop_last")
        self.sampler = FastWeightedSampler(weights, num_samples, replacement, generator, seed=seed)


def _iterate_batches(
    sampler: FastWeightedSampler,
    resume: tuple[int | None, int] | None,
    data: Weights,
    batch_size: int,
    drop_last: bool,
) -> Iterator[list[int]]:
    """Batches of ``sampler``'s epoch (its rank's shard), recording the position per batch."""
    cursor = sampler._begin(resume)
    count, progress = cursor.shard.count, sampler._progress
    # The last batch handed out marks the epoch over, also when drop_last drops a remainder: a
    # state saved after it must start the next epoch, not an empty rest of this one.
    last = count if not drop_last else count - count % batch_size
    done = 0
    # Chunks hold whole batches, so no batch straddles two chunks.
    chunk = batch_size * max(1, _CHUNK // batch_size)
    first_chunk = batch_size * max(1, _FIRST_CHUNK // batch_size)
    for array in epoch_chunks(cursor, data, sampler.num_samples, chunk, first_chunk):
        indices = array.tolist()
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            if len(batch) < batch_size and drop_last:
                return
            done += len(batch)
            if done >= last:
                progress.record(cursor, count)
            else:
                cursor.set_taken(done)  # the position is worked out only when a state is asked
            yield batch
