"""fastloader: native samplers and collate functions for torch.utils.data.DataLoader."""

from .sampler import FastWeightedBatchSampler, FastWeightedSampler

__all__ = ["FastWeightedSampler", "FastWeightedBatchSampler"]
__version__ = "0.1.0"
