"""tune_num_workers: DataLoader throughput, CPU and memory per num_workers, on this machine

The measuring: each setting's loader is started, warmed up and timed here; the failure reporting
(failures.py), the process statistics (proc_stats.py) and the report (report.py) are apart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler, SequentialSampler

from .._util.checks import boolean, non_negative_int, positive_int
from .._util.processes import pid_alive
from .failures import SampleLoadError, index_reporting, sample_error
from .proc_stats import MemoryWatch, cpu_seconds
from .report import TuneReport, WorkerMeasurement

__all__ = ["tune_num_workers", "TuneReport", "WorkerMeasurement", "SampleLoadError"]

_SHUTDOWN_GRACE_S = 5.0
_MIN_BATCHES = 3  # fewer inter-arrival times make too noisy a rate


class _Endless(Sampler):
    """Cycles a sampler (or batch sampler) so a timed run never ends in the middle of an epoch."""

    def __init__(self, inner: Iterable) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator:
        while True:
            empty = True
            for item in self.inner:
                empty = False
                yield item
            if empty:
                raise ValueError("the sampler yielded no indices")


def default_candidates(cpus: int | None = None) -> list[int]:
    """0 to 4 workers, then doublings, then the CPU count: the whole range on a small machine,
    and on 16 CPUs 7 settings instead of 17 (each one starts a DataLoader and times a window)."""
    cpus = max(1, cpus or os.cpu_count() or 1)
    chosen = list(range(min(cpus, 4) + 1))
    workers = 8
    while workers < cpus:
        chosen.append(workers)
        workers *= 2
    return chosen if chosen[-1] == cpus else [*chosen, cpus]


def _candidates(candidates: Sequence[int] | None) -> list[int]:
    if candidates is None:
        return default_candidates()
    if isinstance(candidates, (str, bytes)) or not hasattr(candidates, "__iter__"):
        raise TypeError(
            f"candidates should be a sequence of ints or None, but got {type(candidates).__name__}"
        )
    chosen: list[int] = []
    for value in candidates:
        value = non_negative_int(value, "candidates[i]")
        if value not in chosen:
            chosen.append(value)
    if not chosen:
        raise ValueError("candidates should not be empty")
    return chosen


def _shutdown(iterator: Any, worker_pids: list[int]) -> None:
    """Stops the loader's workers and makes sure none outlives this call."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()  # joins workers (with a timeout) and terminates the stragglers
    deadline = time.monotonic() + _SHUTDOWN_GRACE_S
    for pid in worker_pids:
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if pid_alive(pid):
            try:
                os.kill(pid, 9)
            except OSError:
                pass


def _measure(
    loader: DataLoader, num_workers: int, batch_size: int, seconds: float, warmup_batches: int
) -> WorkerMeasurement:
    me = os.getpid()
    iterator = None
    worker_pids: list[int] = []
    with MemoryWatch() as watch:
        try:
            started = time.perf_counter()
            iterator = iter(loader)
            worker_pids = [worker.pid for worker in getattr(iterator, "_workers", [])]
            watch.worker_pids = worker_pids
            next(iterator)
            startup = time.perf_counter() - started
            # Warm-up drains what the workers prefetched while starting, so the window measures
            # the steady rate; bounded in time for slow datasets.
            warm_until = time.perf_counter() + max(seconds, 1.0)
            for _ in range(warmup_batches):
                if time.perf_counter() > warm_until:
                    break
                next(iterator)
            cpu_before = [cpu_seconds(pid) for pid in [me, *worker_pids]]
            window_start = time.perf_counter()
            batches = 0
            while True:
                next(iterator)
                batches += 1
                elapsed = time.perf_counter() - window_start
                if elapsed >= seconds and batches >= _MIN_BATCHES:
                    break
            cpu_after = [cpu_seconds(pid) for pid in [me, *worker_pids]]
        finally:
            if iterator is not None:
                _shutdown(iterator, worker_pids)
            del iterator
    used = sum(
        after - before
        for before, after in zip(cpu_before, cpu_after, strict=True)
        if before is not None and after is not None
    )
    return WorkerMeasurement(
        num_workers=num_workers,
        batches=batches,
        seconds=elapsed,
        batches_per_s=batches / elapsed,
        samples_per_s=batches * batch_size / elapsed,
        startup_s=startup,
        cpu_percent=100.0 * used / elapsed,
        peak_rss_bytes=watch.peak_total,
        peak_main_rss_bytes=watch.peak_main,
        peak_worker_rss_bytes=watch.peak_workers,
        peak_shm_bytes=watch.peak_shm,
    )


def tune_num_workers(
    dataset: Any,
    batch_size: int,
    *,
    sampler: Sampler | Iterable | None = None,
    batch_sampler: Sampler | Iterable | None = None,
    collate_fn: Callable[[list], Any] | None = None,
    pin_memory: bool | None = None,
    candidates: Sequence[int] | None = None,
    seconds: float = 2.0,
    loader_kwargs: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> TuneReport:
    """Measures a DataLoader over ``dataset`` at each ``num_workers`` in ``candidates``.

    For each setting: starts the loader (workers included), takes ``1 + num_workers *
    prefetch_factor`` warm-up batches, then fetches batches for ``seconds`` of wall time (and at
    least 3 batches) while a
    thread samples the resident memory of the main process and the workers and /dev/shm usage.
    The sampler is cycled, so a small dataset is never exhausted mid-measurement. Workers are shut
    down and joined after every setting, also when anything raises.

    Args:
        dataset: a map-style dataset (``__getitem__`` and ``__len__``).
        batch_size: samples per batch (ignored for the count when ``batch_sampler`` is given,
            except in ``samples_per_s``).
        sampler: indices to load, e.g. a :class:`fastloader.FastWeightedSampler`; sequential
            when None. ``batch_sampler`` instead yields whole batches (as in DataLoader).
        collate_fn: as for DataLoader (``default_collate`` when None).
        pin_memory: as for DataLoader; defaults to ``torch.cuda.is_available()``.
        candidates: the ``num_workers`` values to try, in order; when None,
            ``default_candidates()``: 0 to 4, then 8, 16, ... below the CPU count, then the count.
        seconds: timed window per setting.
        loader_kwargs: more DataLoader arguments (``prefetch_factor``, ``multiprocessing_context``,
            ``worker_init_fn``, ``timeout``, ...).
        progress: called with each ``num_workers`` after it was measured (e.g. a tqdm update).

    Returns:
        a :class:`TuneReport`: ``best`` (the highest batches/s), ``rows``, ``table()``,
        ``to_markdown()``, ``to_dict()``.

    Raises:
        SampleLoadError: the dataset raised; the message names the sample index and the setting,
            and the original error is chained.
    """
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__"):
        raise TypeError(
            "dataset should be a map-style dataset (with __getitem__ and __len__), but "
            f"got {type(dataset).__name__}"
        )
    batch_size = positive_int(batch_size, "batch_size")
    if sampler is not None and batch_sampler is not None:
        raise ValueError("sampler and batch_sampler are mutually exclusive; pass one")
    if collate_fn is not None and not callable(collate_fn):
        raise TypeError(
            f"collate_fn should be callable or None, but got {type(collate_fn).__name__}"
        )
    pin_memory = (
        torch.cuda.is_available() if pin_memory is None else boolean(pin_memory, "pin_memory")
    )
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"seconds should be a positive number, but got seconds={seconds!r}")
    seconds = float(seconds)
    chosen = _candidates(candidates)
    extra = dict(loader_kwargs or {})
    clashing = {
        "batch_size",
        "sampler",
        "batch_sampler",
        "collate_fn",
        "pin_memory",
        "num_workers",
        "shuffle",
        "dataset",
        "persistent_workers",
        "drop_last",
    } & set(extra)
    if clashing:
        raise ValueError(
            f"loader_kwargs should not set {sorted(clashing)}: they are arguments of "
            "tune_num_workers or chosen by it"
        )
    if sampler is None and batch_sampler is None:
        if len(dataset) == 0:
            raise ValueError("dataset should not be empty")
        sampler = SequentialSampler(range(len(dataset)))

    wrapped = index_reporting(dataset)
    rows = []
    for num_workers in chosen:
        loader_args: dict[str, Any] = dict(
            collate_fn=collate_fn, pin_memory=pin_memory, num_workers=num_workers
        )
        if batch_sampler is not None:
            loader_args["batch_sampler"] = _Endless(batch_sampler)
        else:
            assert sampler is not None  # a SequentialSampler was made above when both were None
            loader_args.update(batch_size=batch_size, sampler=_Endless(sampler))
        worker_args = dict(extra)
        if num_workers == 0:
            for key in ("prefetch_factor", "worker_init_fn", "multiprocessing_context", "timeout"):
                worker_args.pop(key, None)
        loader = DataLoader(wrapped, **loader_args, **worker_args)
        prefetch = worker_args.get("prefetch_factor") or 2
        warmup = 1 + num_workers * prefetch
        try:
            rows.append(_measure(loader, num_workers, batch_size, seconds, warmup))
        except Exception as exc:
            error = sample_error(exc, num_workers)
            if error is None:
                raise
            raise error from exc
        if progress is not None:
            progress(num_workers)
    return TuneReport.from_rows(rows, batch_size=batch_size, pin_memory=pin_memory, seconds=seconds)
