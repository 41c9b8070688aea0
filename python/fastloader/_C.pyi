# Type stubs for the compiled module fastloader._C (csrc/bindings); keep in step with the bindings.
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

class AliasTable:
    def __init__(self, weights: npt.NDArray[np.float64]) -> None: ...
    def __len__(self) -> int: ...
    def draw(
        self,
        seed: int,
        stream: int,
        start: int,
        out: npt.NDArray[np.int64],
        count: int,
        threads: int = 1,
    ) -> None: ...
    # Draws start, start+stride, ... of the stream: one rank's shard (bind_strided_draw.cpp).
    def draw_strided(
        self,
        seed: int,
        stream: int,
        start: int,
        stride: int,
        out: npt.NDArray[np.int64],
        count: int,
        threads: int = 1,
    ) -> None: ...
    def acceptance(self) -> npt.NDArray[np.float64]: ...
    def alias(self) -> npt.NDArray[np.int64]: ...

# out must hold 2*k items (working space); the k indices end up in out[:k].
def sample_without_replacement(
    weights: npt.NDArray[np.float64],
    k: int,
    seed: int,
    stream: int,
    out: npt.NDArray[np.int64],
    threads: int = 1,
) -> None: ...

# Collate kernels (bind_collate.cpp). Sources are numpy arrays (address, shape and strides are
# read from each array; elements must be element_size bytes); `out` is any writable, contiguous
# 1-D buffer (a numpy view of a torch tensor), whose size the kernel checks. Bad sizes, strides or
# a read-only out raise ValueError.
def pad_images(
    images: Sequence[npt.NDArray[Any]],
    channels: int,
    height: int,
    width: int,
    fill: bytes,
    channels_last: bool,
    out: Buffer,
    threads: int = 1,
) -> None: ...
def pack_arrays(
    sources: Sequence[npt.NDArray[Any]], element_size: int, out: Buffer, threads: int = 1
) -> None: ...
def write_index_block(
    counts: Sequence[int], image_sizes: Sequence[int], out: npt.NDArray[np.int64]
) -> None: ...

# Recycling host-buffer pool (bind_buffer_pool.cpp).
class PooledBuffer:
    def __init__(self, bytes: int) -> None: ...
    def __len__(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def address(self) -> int: ...

def buffer_pool_stats() -> dict[str, int]: ...
def set_buffer_pool_limit(bytes: int) -> None: ...
def clear_buffer_pool() -> None: ...
