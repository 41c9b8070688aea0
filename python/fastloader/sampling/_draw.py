"""The weighted sampler's draws: its weights with their alias table, and one epoch's indices
for one rank, chunk by chunk, from the native kernels (Vose alias table with replacement,
exponential keys without)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from .. import _C
from .._util.checks import weight_array
from .._util.pool import pooled_int64
from .._util.threads import native_threads
from ._state import Cursor, fingerprint, shard_array

WeightsLike = Sequence[float] | np.ndarray | torch.Tensor


class Weights(NamedTuple):
    """The weights and what is built from them; replaced whole by ``update_weights``, so a live
    iteration keeps drawing from the one it started with."""

    values: np.ndarray  # float64, read-only
    table: Any  # _C.AliasTable with replacement, else None
    fingerprint: str
    positive: int


def build_weights(weights: WeightsLike, num_samples: int, replacement: bool) -> Weights:
    values = weight_array(weights)
    values.setflags(write=False)  # the alias table is built from these values
    positive = int(np.count_nonzero(values))
    if not replacement and num_samples > positive:
        raise ValueError(
            f"num_samples={num_samples} should not exceed the number of positive weights "
            f"({positive}) when replacement=False"
        )
    table = _C.AliasTable(values) if replacement else None
    return Weights(values, table, fingerprint(values), positive)


def _draw_all(data: Weights, num_samples: int, seed: int, stream: int) -> np.ndarray:
    """The epoch's whole weighted permutation (without replacement), in pooled memory: the
    previous epoch's pages come back instead of 8 fresh bytes per index."""
    out = pooled_int64(num_samples)
    _C.sample_without_replacement(data.values, num_samples, seed, stream, out, native_threads())
    return out


def epoch_chunks(
    cursor: Cursor, data: Weights, num_samples: int, chunk: int, first_chunk: int | None = None
) -> Iterator[np.ndarray]:
    """This rank's indices of the cursor's epoch as int64 arrays of ``chunk`` items (the last
    may be short). With replacement the first array holds ``first_chunk`` items and the next
    grow fourfold up to ``chunk`` (both multiples of a batch size for the batch samplers).

    Global position g is draw g of the counter stream (with replacement) or item g mod
    num_samples of the epoch's weighted permutation (without: padding wraps around).
    """
    shard = cursor.shard
    count = shard.count
    if count == 0:
        return
    if data.table is None:
        # Without replacement every index depends on all keys: one O(num_samples) draw.
        mine = shard_array(_draw_all(data, num_samples, cursor.seed, cursor.epoch), shard)
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
        first = shard.first + start * shard.stride
        if shard.stride == 1:
            data.table.draw(cursor.seed, cursor.epoch, first, buffer, size, native_threads())
        else:
            data.table.draw_strided(
                cursor.seed, cursor.epoch, first, shard.stride, buffer, size, native_threads()
            )
        start += size
        step = min(chunk, step * 4)
        yield buffer[:size]
