"""fastloader: native samplers and collate functions for torch.utils.data.DataLoader.

Subpackages by capability: `sampling` (samplers and weights), `collate` (the detection collate,
its batch type and the shared ring), `datasets` (VOC, synthetic), `io` (decoding), `tuning`
(`tune_num_workers`), `bench` (`python -m fastloader.bench`) and the private `_util`. Imports
point one way: _util <- io <- datasets; _util <- sampling; _util, io <- collate; bench and tuning
may import anything; nothing imports bench. Every public name is re-exported here.
"""

from .collate import (
    DetectionBatch,
    DetectionCollate,
    buffer_pool_stats,
    clear_buffer_pool,
    fast_detection_collate,
    set_buffer_pool_limit,
)
from .collate.ring import SharedRing
from .datasets import COCODetection, SyntheticDetection, VOCDetection, WIDERFace, YOLODetection
from .sampling.class_weights import (
    class_balanced_weights,
    class_image_counts,
    image_weights,
    power_weights,
    repeat_factors,
)
from .sampling.distributed import (
    DistributedWeightedBatchSampler,
    DistributedWeightedSampler,
    broadcast_seed,
)
from .sampling.grouping import AspectRatioGroupedBatchSampler, create_aspect_ratio_groups
from .sampling.policies import ClassAwareSampler, RepeatFactorSampler
from .sampling.weighted import FastWeightedBatchSampler, FastWeightedSampler

# Importing it also makes fastloader.transforms (the presets) reachable after `import fastloader`.
from .transforms import AugmentPipeline
from .tuning.tuner import SampleLoadError, TuneReport, WorkerMeasurement, tune_num_workers

__all__ = [
    "AugmentPipeline",
    "FastWeightedSampler",
    "FastWeightedBatchSampler",
    "DistributedWeightedSampler",
    "DistributedWeightedBatchSampler",
    "broadcast_seed",
    "RepeatFactorSampler",
    "ClassAwareSampler",
    "AspectRatioGroupedBatchSampler",
    "create_aspect_ratio_groups",
    "repeat_factors",
    "class_balanced_weights",
    "power_weights",
    "image_weights",
    "class_image_counts",
    "DetectionCollate",
    "DetectionBatch",
    "fast_detection_collate",
    "buffer_pool_stats",
    "set_buffer_pool_limit",
    "clear_buffer_pool",
    "SharedRing",
    "SyntheticDetection",
    "VOCDetection",
    "WIDERFace",
    "COCODetection",
    "YOLODetection",
    "tune_num_workers",
    "TuneReport",
    "WorkerMeasurement",
    "SampleLoadError",
]
__version__ = "0.1.0"
