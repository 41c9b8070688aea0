# Type stubs for the compiled module fastloader._C (csrc/bindings); keep in step with the bindings.
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

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

# Writes k distinct indices, in successive-sampling order, into out[:k] (scratch is pooled).
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

# Detection sampling policies (bind_policies.cpp). Labels in CSR form: image i holds
# labels[offsets[i]:offsets[i + 1]].
def images_per_class(
    labels: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64], num_classes: int
) -> npt.NDArray[np.int64]: ...
def class_members(
    labels: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    num_classes: int,
    class_offsets: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]: ...
def reduce_class_values(
    labels: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    class_values: npt.NDArray[np.float64],
    reduce: str,
    empty_value: float,
    threads: int = 1,
) -> npt.NDArray[np.float64]: ...
def repeat_factor_epoch_size(
    factors: npt.NDArray[np.float64], seed: int, epoch: int, threads: int = 1
) -> int: ...
def repeat_factor_epoch(
    factors: npt.NDArray[np.float64], seed: int, epoch: int, threads: int = 1
) -> npt.NDArray[np.int64]: ...
def class_aware_epoch(
    class_offsets: npt.NDArray[np.int64],
    members: npt.NDArray[np.int64],
    num_sample_class: int,
    seed: int,
    epoch: int,
    length: int,
    threads: int = 1,
) -> npt.NDArray[np.int64]: ...
def group_batches(
    indices: npt.NDArray[np.int64],
    group_ids: npt.NDArray[np.uint8] | npt.NDArray[np.int32] | npt.NDArray[np.int64],
    num_groups: int,
    batch_size: int,
    wanted_batches: int,
) -> npt.NDArray[np.int64]: ...
def load_coco_index(path: str) -> dict[str, Any]: ...
def json_validate(data: bytes) -> None: ...

# Detection augmentation (bind_augment.cpp): op dicts in, plans with their draws, strided renders.
class AugmentPlan:
    def __init__(self) -> None: ...
    @property
    def out_height(self) -> int: ...
    @property
    def out_width(self) -> int: ...
    @property
    def content_height(self) -> int: ...
    @property
    def content_width(self) -> int: ...
    @property
    def canvas_height(self) -> int: ...
    @property
    def canvas_width(self) -> int: ...
    @property
    def src_height(self) -> int: ...
    @property
    def src_width(self) -> int: ...
    @property
    def interp(self) -> int: ...
    @property
    def resized(self) -> bool: ...
    @property
    def source_rect(self) -> tuple[int, int, int, int]: ...
    @property
    def boxes(self) -> npt.NDArray[np.float32]: ...
    @property
    def landmarks(self) -> npt.NDArray[np.float32]: ...
    @property
    def keep(self) -> npt.NDArray[np.int64]: ...
    @property
    def records(self) -> list[tuple[str, bool, dict[str, float]]]: ...

class AugmentCore:
    def __init__(self, ops: list[Any], output: dict[Any, Any]) -> None: ...
    def plan(
        self,
        height: int,
        width: int,
        boxes: npt.NDArray[np.float32],
        landmarks: np.ndarray | None,
        seed: int,
        epoch: int,
        index: int,
    ) -> AugmentPlan: ...
    def plan_for_reduced_source(
        self, plan: AugmentPlan, height: int, width: int
    ) -> AugmentPlan: ...
    def plan_for_source_rect(
        self, plan: AugmentPlan, top: int, left: int, height: int, width: int
    ) -> AugmentPlan: ...
    def render(
        self,
        plan: AugmentPlan,
        image: npt.NDArray[Any],
        out: npt.NDArray[Any],
        channels_first: bool,
    ) -> None: ...

def augment_distort_pixels(
    pixels: npt.NDArray[np.uint8], blue_index: int, params: dict[Any, Any]
) -> None: ...

# JPEG region decoding (bind_jpeg.cpp): libjpeg-turbo opened at run time.
JPEG_REGION_SLACK: int

class JpegRegionDecoder:
    def __init__(self, library_path: str) -> None: ...
    @property
    def library_path(self) -> str: ...
    def header(self, data: Buffer) -> tuple[int, int, int, bool]: ...
    def decode_into(
        self,
        data: Buffer,
        top: int,
        left: int,
        height: int,
        width: int,
        out: npt.NDArray[np.uint8],
        bgr: bool = False,
    ) -> tuple[int, int]: ...
