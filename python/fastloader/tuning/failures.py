"""How tune_num_workers names the sample that failed: the dataset wrapped so a failing
``__getitem__`` raises with its index in the message (the only part of a worker's exception that
reaches the main process), and that message turned back into a :class:`SampleLoadError`."""

from __future__ import annotations

import re
from typing import Any

from torch.utils.data import Dataset

__all__ = ["SampleLoadError", "index_reporting", "sample_error"]

_FAILURE = re.compile(r"fastloader: dataset\[(-?\d+)\] raised (.*)")


class SampleLoadError(RuntimeError):
    """The dataset raised while loading one sample; ``index`` names it.

    The original exception is chained as ``__cause__`` (for ``num_workers > 0`` it is the
    DataLoader's re-raised copy, which carries the worker's traceback as text).
    """

    def __init__(self, message: str, index: int, num_workers: int) -> None:
        super().__init__(message)
        self.index = index
        self.num_workers = num_workers

    def __reduce__(self) -> Any:
        return type(self), (self.args[0], self.index, self.num_workers)


class _SampleFailed(Exception):
    """Raised inside the loader with the index in its text: DataLoader re-raises worker errors as
    ``type(exc)(formatted_traceback)``, so only the message survives the trip to the main
    process."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class _IndexReporting(Dataset):
    """Wraps a map-style dataset so a failing ``__getitem__`` names its index."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> Any:
        try:
            return self.dataset[index]
        except Exception as exc:
            raise _SampleFailed(
                f"fastloader: dataset[{index}] raised {type(exc).__name__}: {exc}", index
            ) from exc


class _IndexReportingBatched(_IndexReporting):
    """Keeps a dataset's batched ``__getitems__`` fast path; on failure, finds the index by
    retrying the batch's samples one at a time."""

    def __getitems__(self, indices: list) -> Any:
        try:
            return self.dataset.__getitems__(indices)
        except Exception:
            for index in indices:
                self[index]  # raises _SampleFailed naming the first failing sample
            raise


def index_reporting(dataset: Any) -> _IndexReporting:
    """``dataset`` wrapped so a failure names its index; keeps a batched ``__getitems__``."""
    if getattr(dataset, "__getitems__", None):
        return _IndexReportingBatched(dataset)
    return _IndexReporting(dataset)


def sample_error(exc: Exception, num_workers: int) -> SampleLoadError | None:
    """The clear error for a failure inside the dataset, or None for any other failure.

    In the main process ``exc`` is our own _SampleFailed; from a worker it is DataLoader's copy
    whose message is the worker's formatted traceback, so the index is read back from the text.
    """
    if isinstance(exc, _SampleFailed) and exc.index is not None:
        cause = exc.__cause__
        what = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        index = exc.index
    else:
        found = _FAILURE.findall(str(exc))
        if not found:
            return None
        index, what = int(found[-1][0]), found[-1][1].strip()
    return SampleLoadError(
        f"dataset[{index}] raised while measuring num_workers={num_workers}: {what}",
        index=index,
        num_workers=num_workers,
    )
