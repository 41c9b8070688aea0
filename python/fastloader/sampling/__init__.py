"""Samplers and sampling weights: the weighted sampler and batch sampler (`weighted`), its
distributed form (`distributed`), repeat-factor and class-aware sampling (`policies`),
aspect-ratio grouped batches (`grouping`), per-image weights from labels (`class_weights`), the
one state core they all share (`_state`: rank geometry and sharding, the epoch cursor, the
checkpoint format), the weighted draws (`_draw`) and read-only views of sampler data
(`_readonly`). Imports only `_util` and the compiled `_C` module."""

from .class_weights import (
    class_balanced_weights,
    class_image_counts,
    image_weights,
    power_weights,
    repeat_factors,
)
from .distributed import (
    DistributedWeightedBatchSampler,
    DistributedWeightedSampler,
    broadcast_seed,
)
from .grouping import AspectRatioGroupedBatchSampler, create_aspect_ratio_groups
from .policies import ClassAwareSampler, RepeatFactorSampler
from .weighted import FastWeightedBatchSampler, FastWeightedSampler

__all__ = [
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
]
