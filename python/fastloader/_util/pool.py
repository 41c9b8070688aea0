"""Arrays in recycled memory: blocks of the native buffer pool, handed back when the last view of
them is freed, so a new batch or epoch reuses pages that are already faulted in."""

from __future__ import annotations

import numpy as np

from .. import _C

__all__ = ["pooled_bytes", "pooled_int64"]


def pooled_bytes(nbytes: int) -> np.ndarray:
    """A uint8 array of nbytes over a pool block (the array holds the block)."""
    if nbytes <= 0:
        return np.empty(0, dtype=np.uint8)
    return np.asarray(_C.PooledBuffer(nbytes))


def pooled_int64(count: int) -> np.ndarray:
    """An uninitialised int64 array of count items over a pool block."""
    return pooled_bytes(8 * count).view(np.int64)
