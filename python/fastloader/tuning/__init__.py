"""`tune_num_workers`: measures a DataLoader at several worker counts and reports the best,
naming the sample that failed when a worker raises. May import any product subpackage; nothing
but `bench` imports `tuning`."""

from .tuner import SampleLoadError, TuneReport, WorkerMeasurement, tune_num_workers

__all__ = ["tune_num_workers", "TuneReport", "WorkerMeasurement", "SampleLoadError"]
