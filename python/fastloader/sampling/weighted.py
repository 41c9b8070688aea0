"""Weighted samplers for DataLoader: drop-ins for WeightedRandomSampler on native kernels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from operator import length_hint
from typing import Any, NamedTuple

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
    weight_array,
)
from .._util.pool import pooled_int64
from .._util.threads import native_threads
from ._state import check_state, make_state, next_epoch_seed, weights_fingerprint

WeightsLike = Sequence[float] | np.ndarray | torch.Tensor

#: Changes whenever a (seed, epoch) can yield different indices than before (see README).
STREAM_VERSION: int = _C.stream_version()

# Indices reach Python this many at a time: O(chunk) memory however long the epoch, and chunks
# large enough for the draw kernel to use its threads.
_CHUNK = 1 << 18
# The first chunk of an iteration is smaller, so that the first batch comes at once.
_FIRST_CHUNK = 1 << 12


class _Epoch(NamedTuple):
    """One iteration over an epoch: its stream, where it starts and how many indices it yields."""

    token: object  # identifies the iteration that may update the sampler's position
    seed: int
    stream: int
    start: int  # first global position (0, or where a loaded state stopped)
    length: int  # indices this rank yields: positions start + rank, start + rank + R, ...


class FastWeightedSampler(Sampler[int]):
    """Samples indices ``[0, len(weights))`` with probabilities proportional to ``weights``.

    Same positional arguments, defaults and ``len()`` as
    :class:`torch.utils.data.WeightedRandomSampler`, without its 2**24 limit.

    Args:
        weights: 1-D non-negative finite weights (list, tuple, numpy array or tensor of any real
            dtype); copied, never modified.
        num_samples: indices per epoch.
        replacement: draw with replacement (Vose alias table) or without (exponential keys).
        generator: where a fresh seed is taken for each epoch when ``seed`` is None; torch's
            default generator when None, so ``torch.manual_seed`` makes runs repeat.
        seed: fixes the stream: an epoch's indices are then a pure function of
            ``(seed, epoch)``, selected by :meth:`set_epoch`, on any platform and thread count.
            With None, the first epoch's seed is drawn from ``generator`` and each later epoch's
            follows from the one before (see ``_sampler_state.next_epoch_seed``).

    Checkpoints: :meth:`state_dict` / :meth:`load_state_dict` (torchdata's Stateful protocol, so
    ``StatefulDataLoader`` saves and resumes it) hold a few integers (format in
    ``fastloader.sampling._state``); a loaded state makes the next iteration continue exactly
    where the saved run stopped, or start the next epoch when the saved one was over.
    """

    # The live iteration's (epoch, indices handed to its list iterator so far, that iterator).
    _cursor: tuple[_Epoch, int, Iterator[int]] | None

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
        self.seed = seed_or_none(seed)
        self.epoch = 0
        self._weights = weight_array(weights)
        self._weights.setflags(write=False)  # the alias table was built from these values
        self.num_positive = int(np.count_nonzero(self._weights))
        if not self.replacement and self.num_samples > self.num_positive:
            raise ValueError(
                f"num_samples={self.num_samples} should not exceed the number of positive weights "
                f"({self.num_positive}) when replacement=False"
            )
        self._table = _C.AliasTable(self._weights) if self.replacement else None
        self._init_checkpointing()

    @property
    def weights(self) -> torch.Tensor:
        """The weights as a float64 tensor: a copy, so writing to it cannot change the sampling."""
        return torch.from_numpy(self._weights.copy())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Selects the stream of the next iteration when ``seed`` is set (as DistributedSampler)."""
        self.epoch = stream_index(epoch, "epoch")

    def __iter__(self) -> Iterator[int]:
        # A loaded state is claimed now, not at the first next(): torchdata calls iter() right
        # after load_state_dict, and any later iter() must start a fresh epoch.
        return self._iterate(self._claim_resume())

    def _iterate(self, resume: tuple[int | None, int] | None) -> Iterator[int]:
        epoch = self._start_epoch(resume)
        done = 0
        for chunk in self._epoch_chunks(epoch, _CHUNK, _FIRST_CHUNK):
            items = iter(chunk.tolist())
            done += len(chunk)
            if self._active is epoch.token:
                # The position is read from the list iterator when asked: no per-index work.
                self._cursor = (epoch, done, items)
            yield from items
        self._record(epoch, done)

    def indices(self) -> torch.Tensor:
        """The whole epoch as an int64 tensor: what ``__iter__`` would yield, in order.

        This is a fresh epoch: with ``seed`` None it takes the next epoch seed, exactly as
        ``__iter__`` does, and it does not resume a loaded state.
        """
        epoch = self._start_epoch(None)
        whole = list(self._epoch_chunks(epoch, max(1, epoch.length)))  # one chunk: no copy
        self._record(epoch, epoch.length)
        return torch.from_numpy(whole[0] if whole else np.empty(0, dtype=np.int64))

    def _draw_epoch_seed(self) -> int:
        drawn = torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        return int(drawn.item())

    def _draw_all(self, seed: int, stream: int) -> np.ndarray:
        """The epoch's whole weighted permutation (without replacement), in pooled memory: the
        previous epoch's pages come back instead of 8 fresh bytes per index."""
        k = self.num_samples
        out = pooled_int64(k)
        _C.sample_without_replacement(self._weights, k, seed, stream, out, native_threads())
        return out

    def _epoch_chunks(
        self, epoch: _Epoch, chunk: int, first_chunk: int | None = None
    ) -> Iterator[np.ndarray]:
        """This rank's indices of ``epoch`` as int64 arrays of ``chunk`` items (last may be short).

        With replacement the first array holds ``first_chunk`` items and the next grow fourfold up
        to ``chunk`` (both multiples of a batch size for the batch samplers).

        Rank r of R yields global positions start + r, start + r + R, ...; position g is draw g of
        the counter stream (with replacement) or item g mod num_samples of the epoch's weighted
        permutation (without: positions past its end wrap around, as DistributedSampler pads).
        """
        first, stride, count = epoch.start + self._rank, self._replicas, epoch.length
        if count == 0:
            return
        if self._table is None:
            # Without replacement every index depends on all keys: one O(num_samples) draw.
            everything = self._draw_all(epoch.seed, epoch.stream)
            last = first + (count - 1) * stride
            if stride == 1 and last < self.num_samples:
                mine = everything[first : last + 1]
            else:
                positions = np.arange(first, last + 1, stride, dtype=np.int64)
                mine = everything.take(positions, mode="wrap")
                del everything
            for start in range(0, count, chunk):
                yield mine[start : start + chunk]
            return
        buffer = pooled_int64(min(chunk, count))  # recycled pages (indices() returns it whole)
        # The first chunk is small and the next ones grow to `chunk`: the first index (of an
        # epoch, or after a resume) comes in microseconds. Chunking never changes the stream.
        step = chunk if first_chunk is None else min(chunk, first_chunk)
        start = 0
        while start < count:
            size = min(step, count - start)
            if stride == 1:
                self._table.draw(
                    epoch.seed, epoch.stream, first + start, buffer, size, native_threads()
                )
            else:
                self._table.draw_strided(
                    epoch.seed,
                    epoch.stream,
                    first + start * stride,
                    stride,
                    buffer,
                    size,
                    native_threads(),
                )
            start += size
            step = min(chunk, step * 4)
            yield buffer[:size]

    # ------------------------------------------------------------------ checkpoint state

    def _init_checkpointing(self) -> None:
        """Shard geometry (DistributedWeightedSampler sets it) and the resumable position."""
        self._rank, self._replicas = 0, 1
        self._total = self.num_samples  # global positions in one epoch (padded or truncated)
        self._pad_tail = True  # positions past the end of a resumed epoch: pad (or drop)
        self._fingerprint = weights_fingerprint(self._weights)
        self._epoch_seed: int | None = None  # seed=None: the current epoch's drawn seed
        self._position = 0  # global positions of the current epoch consumed, all ranks
        self._position_epoch = 0  # the epoch that _position counts
        self._resume_pending = False
        self._active: object = None  # token of the iteration that owns the position
        self._cursor = None

    def _claim_resume(self) -> tuple[int | None, int] | None:
        """(epoch seed, global position) to resume at when a loaded state is pending mid-epoch."""
        if not self._resume_pending:
            return None
        self._resume_pending = False
        if self._position_epoch == self.epoch and 0 < self._position < self._real_end():
            return self._epoch_seed, self._position
        return None

    def _real_end(self) -> int:
        """Past this global position only padding is left: a state there has ended its epoch."""
        return min(self._total, self.num_samples)

    def _start_epoch(self, resume: tuple[int | None, int] | None) -> _Epoch:
        if resume is not None:
            epoch_seed, start = resume
        else:
            start = 0
            if self.seed is None:
                epoch_seed = (
                    self._draw_epoch_seed()
                    if self._epoch_seed is None
                    else next_epoch_seed(self._epoch_seed)
                )
            else:
                epoch_seed = None
        # From where the state stopped to the end of the real positions, dealt round-robin and
        # padded (or truncated) to whole rounds: equal counts keep ranks in lockstep.
        remaining = max(0, self._real_end() - start)
        per_rank = (
            -(-remaining // self._replicas) if self._pad_tail else remaining // self._replicas
        )
        stream_seed = self.seed if self.seed is not None else epoch_seed
        # check_state refuses a seed=None state with a position but no epoch_seed.
        assert stream_seed is not None
        epoch = _Epoch(object(), stream_seed, self.epoch, start, per_rank)
        self._epoch_seed, self._position, self._position_epoch = epoch_seed, start, self.epoch
        self._active, self._cursor = epoch.token, None
        return epoch

    def _record(self, epoch: _Epoch, done: int) -> None:
        """Notes that ``done`` of this rank's indices of ``epoch`` have been handed out."""
        if self._active is epoch.token:
            self._cursor = None
            over = done >= epoch.length
            self._position = self._total if over else epoch.start + done * self._replicas

    def _current_position(self) -> int:
        if self._cursor is not None:
            epoch, chunk_end, items = self._cursor
            self._record(epoch, chunk_end - length_hint(items))
            self._cursor = (epoch, chunk_end, items) if self._active is epoch.token else None
        return self._position if self._position_epoch == self.epoch else 0

    def state_dict(self) -> dict[str, Any]:
        """The resumable state: a few ints and strings, O(1) (format: sampling/_state.py)."""
        return make_state(
            sampler=type(self).__name__,
            num_weights=len(self._weights),
            weights_fingerprint=self._fingerprint,
            num_samples=self.num_samples,
            replacement=self.replacement,
            seed=self.seed,
            epoch=self.epoch,
            epoch_seed=self._epoch_seed,
            position=self._current_position(),
            num_replicas=self._replicas,
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Makes the next iteration continue where ``state`` stopped (O(1): nothing is replayed).

        The state's seed replaces the sampler's. Saved mid-epoch, its epoch does too and the next
        iteration yields the rest of that epoch; saved after an epoch ended, the next iteration
        starts a fresh epoch (``set_epoch`` called before or after loading selects it; the epoch
        never goes back). A state saved at another world size continues at the same global
        position. Raises ValueError when the state belongs to other weights, ``num_samples`` or
        ``replacement``, or to an unknown format version, and then changes nothing.
        """
        checked = self._checked_state(state)
        saved_epoch, position = checked["epoch"], checked["position"]
        self.seed, self._epoch_seed = checked["seed"], checked["epoch_seed"]
        if 0 < position < self._real_end():
            self.epoch = saved_epoch  # the rest of that epoch comes next
        else:
            # Over or not begun: StatefulDataLoader loads the state after the training loop's
            # set_epoch(next epoch), which must stand; epochs only move forward.
            self.epoch = max(self.epoch, saved_epoch)
        self._position, self._position_epoch = position, saved_epoch
        self._active, self._cursor = None, None
        self._resume_pending = True

    def _checked_state(self, state: Any) -> dict[str, Any]:
        expected = {
            "num_weights": len(self._weights),
            "weights_fingerprint": self._fingerprint,
            "num_samples": self.num_samples,
            "replacement": self.replacement,
        }
        return check_state(state, expected, type(self).__name__)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_table"] = None  # rebuilt from the weights: O(n), and no native object to pickle
        # A copy is not the live iteration: it keeps the position, not the iterator.
        state["_position"] = self._current_position()
        state["_active"] = state["_cursor"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.replacement:
            self._table = _C.AliasTable(self._weights)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self._weights)}, num_samples={self.num_samples}, "
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

    def __iter__(self) -> Iterator[list[int]]:
        source = self._source()
        return _iterate_batches(source, source._claim_resume(), self.batch_size, self.drop_last)

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

    Yields lists of ints cut from C++-filled arrays, with no Python loop per index; for the same
    ``seed`` and epoch the concatenated batches equal the FastWeightedSampler stream.
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
    batch_size: int,
    drop_last: bool,
) -> Iterator[list[int]]:
    """Batches of ``sampler``'s epoch (its rank's shard), recording the position per batch."""
    epoch = sampler._start_epoch(resume)
    # The last batch handed out marks the epoch over, also when drop_last drops a remainder: a
    # state saved after it must start the next epoch, not an empty rest of this one.
    last = epoch.length if not drop_last else epoch.length - epoch.length % batch_size
    done = 0
    # Chunks hold whole batches, so no batch straddles two chunks.
    chunk = batch_size * max(1, _CHUNK // batch_size)
    first_chunk = batch_size * max(1, _FIRST_CHUNK // batch_size)
    for array in sampler._epoch_chunks(epoch, chunk, first_chunk):
        indices = array.tolist()
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            if len(batch) < batch_size and drop_last:
                return
            done += len(batch)
            sampler._record(epoch, epoch.length if done >= last else done)
            yield batch
