# Type stubs for the compiled module fastloader._C (csrc/bindings); keep in step with the bindings.
import numpy as np
import numpy.typing as npt

# Bumped whenever a (seed, stream, position) can give a different index (bind_sampler.cpp).
def stream_version() -> int: ...

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

# Collate kernels (bind_collate.cpp). A view is (address of element 0, shape, byte strides); the
# caller keeps the memory alive during the call.
_View = tuple[int, list[int] | tuple[int, ...], list[int] | tuple[int, ...]]

def pad_images(
    images: list[_View],
    channels: int,
    height: int,
    width: int,
    fill: bytes,
    channels_last: bool,
    out: int,
    out_bytes: int,
    threads: int = 1,
) -> None: ...
def pack_arrays(
    sources: list[_View], element_size: int, out: int, out_bytes: int, threads: int = 1
) -> None: ...
def write_object_index(
    counts: list[int], offsets: int, batch_index: int, batch_index_len: int
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
