"""fastloader: native samplers and collate functions for torch.utils.data.DataLoader."""

from .collate import (
    DetectionBatch,
    DetectionCollate,
    buffer_pool_stats,
    clear_buffer_pool,
    fast_detection_collate,
    set_buffer_pool_limit,
)
from .datasets import SyntheticDetection, VOCDetection
from .distributed import (
    DistributedWeightedBatchSampler,
    DistributedWeightedSampler,
    broadcast_seed,
)
from .ring import SharedRing
from .sampler import FastWeightedBatchSampler, FastWeightedSampler
from .tuner import SampleLoadError, TuneReport, WorkerMeasurement, tune_num_workers

__all__ = [
    "FastWeightedSampler",
    "FastWeightedBatchSampler",
    "DistributedWeightedSampler",
    "DistributedWeightedBatchSampler",
    "broadcast_seed",
    "DetectionCollate",
    "DetectionBatch",
    "fast_detection_collate",
    "buffer_pool_stats",
    "set_buffer_pool_limit",
    "clear_buffer_pool",
    "SharedRing",
    "SyntheticDetection",
    "VOCDetection",
    "tune_num_workers",
    "TuneReport",
    "WorkerMeasurement",
    "SampleLoadError",
]
__version__ = "0.1.0"
