"""`tune_num_workers`: measures a DataLoader at several worker counts and reports the best,
naming the sample that failed when a worker raises. The measuring (`tuner`), the failure
reporting (`failures`), the /proc and psutil statistics (`proc_stats`) and the report tables
(`report`) are one file each. Imports `_util` only; the package root re-exports its public names
and `bench` uses it."""

from .tuner import SampleLoadError, TuneReport, WorkerMeasurement, tune_num_workers

__all__ = ["tune_num_workers", "TuneReport", "WorkerMeasurement", "SampleLoadError"]
