"""fastloader: native samplers and collate functions for torch.utils.data.DataLoader."""

from .sampler import FastWeightedBatchSampler, FastWeightedSampler
from .datasets import SyntheticDetection, VOCDetection

__all__ = ["FastWeightedSampler", "FastWeightedBatchSampler"]
__all__ += ["SyntheticDetection", "VOCDetection"]
__version__ = "0.1.0"
