"""The detection collate: `DetectionCollate` and `fast_detection_collate`
(`detection_collate`), the batch type (`batch`), the shared-memory batch ring (`ring`,
`_ring_batch`), and the private stages behind one call: reading samples (`_samples`), planning
the batch (`_plan`, `_pairs`) and writing it (`_write`). Imports `_util` and `io` (images still in
their files are read straight into the batch), never `sampling`, `datasets` or `bench`."""

from .batch import DetectionBatch
from .detection_collate import (
    DetectionCollate,
    buffer_pool_stats,
    clear_buffer_pool,
    fast_detection_collate,
    set_buffer_pool_limit,
)
from .ring import SharedRing

__all__ = [
    "DetectionBatch",
    "DetectionCollate",
    "SharedRing",
    "buffer_pool_stats",
    "clear_buffer_pool",
    "fast_detection_collate",
    "set_buffer_pool_limit",
]
