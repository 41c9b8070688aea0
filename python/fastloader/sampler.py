"""Weighted samplers for DataLoader: drop-ins for WeightedRandomSampler on native kernels."""

from __future__ import annotations

from typing import Any, Iterator, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Sampler

from . import _C
from ._checks import (
    boolean,
    generator_or_none,
    positive_int,
    seed_or_none,
    stream_index,
    weight_array,
)
from ._threads import native_threads

WeightsLike = Union[Sequence[float], np.ndarray, torch.Tensor]

#: Changes whenever a (seed, epoch) can yield different indices than before (see README).
STREAM_VERSION: int = _C.stream_version()

# Indices reach Python this many at a time: O(chunk) memory however long the epoch, and chunks
# large enough for the draw kernel to use its threads.
_CHUNK = 1 << 18


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
        for chunk in self._chunks(_CHUNK):
            yield from chunk.tolist()

    def indices(self) -> torch.Tensor:
        """The whole epoch as an int64 tensor: what ``__iter__`` would yield, in order.

        With ``seed`` None this takes a fresh seed from ``generator``, exactly as ``__iter__`` does.
        """
        return torch.from_numpy(self._draw_all(*self._next_stream()))

    def _next_stream(self) -> tuple[int, int]:
        if self.seed is not None:
            return self.seed, self.epoch
        drawn = torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        return int(drawn.item()), self.epoch

    def _draw_all(self, seed: int, stream: int) -> np.ndarray:
        k = self.num_samples
        if self._table is not None:
            out = np.empty(k, dtype=np.int64)
            self._table.draw(seed, stream, 0, out, k, native_threads())
            return out
        # The kernel sorts (key, index) pairs in 2k slots and leaves the k indices in front;
        # shrinking in place gives the other half back without a copy.
        out = np.empty(2 * k, dtype=np.int64)
        _C.sample_without_replacement(self._weights, k, seed, stream, out, native_threads())
        out.resize(k, refcheck=False)
        return out

    def _chunks(self, chunk: int) -> Iterator[np.ndarray]:
        """The epoch's indices as int64 arrays of ``chunk`` items (the last may be shorter)."""
        seed, stream = self._next_stream()
        if self._table is None:
            # Without replacement every index depends on all keys: one O(num_samples) draw.
            everything = self._draw_all(seed, stream)
            for start in range(0, self.num_samples, chunk):
                yield everything[start : start + chunk]
            return
        buffer = np.empty(min(chunk, self.num_samples), dtype=np.int64)
        for start in range(0, self.num_samples, chunk):
            count = min(chunk, self.num_samples - start)
            self._table.draw(seed, stream, start, buffer, count, native_threads())
            yield buffer[:count]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_table"] = None  # rebuilt from the weights: O(n), and no native object to pickle
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


class FastWeightedBatchSampler(Sampler[list]):
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
        self.sampler = FastWeightedSampler(
            weights, num_samples, replacement, generator, seed=seed
        )

    def __len__(self) -> int:
        if self.drop_last:
            return self.sampler.num_samples // self.batch_size
        return -(-self.sampler.num_samples // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        batch_size = self.batch_size
        # Chunks hold whole batches, so no batch straddles two chunks.
        chunk = batch_size * max(1, _CHUNK // batch_size)
        for array in self.sampler._chunks(chunk):
            indices = array.tolist()
            for start in range(0, len(indices), batch_size):
                batch = indices[start : start + batch_size]
                if len(batch) < batch_size and self.drop_last:
                    return
                yield batch

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size={self.batch_size}, drop_last={self.drop_last}, "
            f"sampler={self.sampler!r})"
        )
