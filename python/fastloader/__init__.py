"""fastloader: native samplers and collate functions for torch.utils.data.DataLoader."""

from .sampler import FastWeightedBatchSampler, FastWeightedSampler
from .datasets import SyntheticDetection, VOCDetection
from .tuner import SampleLoadError, TuneReport, WorkerMeasurement, tune_num_workers

__all__ = ["FastWeightedSampler", "FastWeightedBatchSampler"]
__all__ += ["SyntheticDetection", "VOCDetection"]
__all__ += ["tune_num_workers", "TuneReport", "WorkerMeasurement", "SampleLoadError"]
__version__ = "0.1.0"
