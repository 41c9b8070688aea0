"""tune_num_workers: DataLoader throughput, CPU and memory per num_workers, on this machine"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, SequentialSampler

from .._util.checks import boolean, non_negative_int, positive_int

try:
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

__all__ = ["tune_num_workers", "TuneReport", "WorkerMeasurement", "SampleLoadError"]

_SAMPLE_PERIOD_S = 0.02
_SHUTDOWN_GRACE_S = 5.0
_MIN_BATCHES = 3  # fewer inter-arrival times make too noisy a rate
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


# --------------------------------------------------------------------------------------------
# Process statistics: psutil when installed, else /proc (Linux), else nothing.

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _rss_bytes(pid: int) -> int:
    if psutil is not None:
        try:
            return int(psutil.Process(pid).memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return 0
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of one process (all its threads); None when it cannot be read."""
    if psutil is not None:
        try:
            times = psutil.Process(pid).cpu_times()
            return float(times.user + times.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        if pid == os.getpid():
            return time.process_time()
        return None


def _shm_used_bytes() -> int | None:
    try:
        stat = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return None
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def _pid_alive(pid: int) -> bool:
    if psutil is not None:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class _MemoryWatch:
    """Samples RSS of the main process and the given workers, and /dev/shm, on a thread."""

    def __init__(self) -> None:
        self.worker_pids: list[int] = []
        self.peak_main = 0
        self.peak_workers = 0
        self.peak_total = 0
        self.shm_baseline = _shm_used_bytes()
        self.peak_shm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="fastloader-tuner-watch", daemon=True
        )

    def __enter__(self) -> _MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        main = _rss_bytes(os.getpid())
        workers = sum(_rss_bytes(pid) for pid in list(self.worker_pids))
        self.peak_main = max(self.peak_main, main)
        self.peak_workers = max(self.peak_workers, workers)
        self.peak_total = max(self.peak_total, main + workers)
        shm = _shm_used_bytes()
        if shm is not None and self.shm_baseline is not None:
            self.peak_shm = max(self.peak_shm, shm - self.shm_baseline)

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_PERIOD_S):
            self.sample()


# --------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class WorkerMeasurement:
    """The figures measured for one ``num_workers`` setting.

    Attributes:
        num_workers: the setting.
        batches, seconds: batches fetched in the timed window after warm-up (at least
            ``seconds`` long and at least 3 batches), and its wall time.
        batches_per_s, samples_per_s: throughput in that window.
        startup_s: from creating the iterator (starting workers) to the first batch.
        cpu_percent: CPU time of the main process (all threads) plus the workers during the
            window, over its wall time, in percent of one core (200 = two cores busy).
        peak_rss_bytes: largest sum of the main process's and the workers' resident sets seen
            (pages shared copy-on-write with the parent count once per process, so this is an
            upper bound on real use); also split into ``peak_main_rss_bytes`` and
            ``peak_worker_rss_bytes`` (each its own maximum).
        peak_shm_bytes: largest growth of /dev/shm usage over its level before the run (0 where
            there is no /dev/shm); the machine-wide figure, so other programs can add to it.
    """

    num_workers: int
    batches: int
    seconds: float
    batches_per_s: float
    samples_per_s: float
    startup_s: float
    cpu_percent: float
    peak_rss_bytes: int
    peak_main_rss_bytes: int
    peak_worker_rss_bytes: int
    peak_shm_bytes: int


_COLUMNS = (
    ("num_workers", "workers", "{:d}"),
    ("batches_per_s", "batches/s", "{:.1f}"),
    ("samples_per_s", "samples/s", "{:.0f}"),
    ("startup_s", "startup s", "{:.2f}"),
    ("cpu_percent", "CPU %", "{:.0f}"),
    ("peak_rss_bytes", "peak RSS MiB", "mib"),
    ("peak_worker_rss_bytes", "workers RSS MiB", "mib"),
    ("peak_shm_bytes", "shm MiB", "mib"),
)


def _cell(row: WorkerMeasurement, key: str, style: str) -> str:
    value = getattr(row, key)
    return f"{value / 2**20:.1f}" if style == "mib" else style.format(value)


@dataclass
class TuneReport:
    """What :func:`tune_num_workers` measured. ``best`` is the fastest ``num_workers``."""

    rows: list[WorkerMeasurement]
    best: int
    batch_size: int
    pin_memory: bool
    seconds: float
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 1)

    @classmethod
    def from_rows(
        cls, rows: Sequence[WorkerMeasurement], *, batch_size: int, pin_memory: bool, seconds: float
    ) -> TuneReport:
        """A report over measured rows (e.g. gathered from several runs); ``best`` is the
        fastest."""
        if not rows:
            raise ValueError("rows should not be empty")
        best = max(rows, key=lambda row: row.batches_per_s).num_workers
        return cls(
            rows=list(rows),
            best=best,
            batch_size=batch_size,
            pin_memory=pin_memory,
            seconds=seconds,
        )

    @property
    def best_row(self) -> WorkerMeasurement:
        return next(row for row in self.rows if row.num_workers == self.best)

    def row(self, num_workers: int) -> WorkerMeasurement:
        for row in self.rows:
            if row.num_workers == num_workers:
                return row
        raise KeyError(f"num_workers={num_workers} was not measured")

    def _grid(self) -> tuple[list[str], list[list[str]]]:
        header = [title for _, title, _ in _COLUMNS] + ["vs best"]
        best = self.best_row.batches_per_s
        body = []
        for row in self.rows:
            cells = [_cell(row, key, style) for key, _, style in _COLUMNS]
            cells.append(f"{row.batches_per_s / best:.2f}x" if best > 0 else "-")
            if row.num_workers == self.best:
                cells[0] += " *"
            body.append(cells)
        return header, body

    def table(self) -> str:
        """The report as aligned text; ``*`` marks the best setting."""
        header, body = self._grid()
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
            for line in [header, *body]
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        lines.append(
            f"best: num_workers={self.best} ({self.best_row.batches_per_s:.1f} batches/s; "
            f"batch_size={self.batch_size}, pin_memory={self.pin_memory}, "
            f"{self.seconds:g} s per setting, {self.cpu_count} CPUs)"
        )
        return "\n".join(lines)

    def to_markdown(self) -> str:
        header, body = self._grid()
        lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        lines.append("")
        lines.append(
            f"Best: `num_workers={self.best}` (batch_size={self.batch_size}, "
            f"pin_memory={self.pin_memory}, {self.seconds:g} s per setting, "
            f"{self.cpu_count} CPUs)."
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "batch_size": self.batch_size,
            "pin_memory": self.pin_memory,
            "seconds": self.seconds,
            "cpu_count": self.cpu_count,
            "rows": [asdict(row) for row in self.rows],
        }

    def __str__(self) -> str:
        return self.table()


# --------------------------------------------------------------------------------------------
# Measuring


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
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _pid_alive(pid):
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
    with _MemoryWatch() as watch:
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
            cpu_before = [_cpu_seconds(pid) for pid in [me, *worker_pids]]
            window_start = time.perf_counter()
            batches = 0
            while True:
                next(iterator)
                batches += 1
                elapsed = time.perf_counter() - window_start
                if elapsed >= seconds and batches >= _MIN_BATCHES:
                    break
            cpu_after = [_cpu_seconds(pid) for pid in [me, *worker_pids]]
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

    wrapped_class = (
        _IndexReportingBatched if getattr(dataset, "__getitems__", None) else _IndexReporting
    )
    wrapped = wrapped_class(dataset)
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
            error = _sample_error(exc, num_workers)
            if error is None:
                raise
            raise error from exc
        if progress is not None:
            progress(num_workers)
    return TuneReport.from_rows(rows, batch_size=batch_size, pin_memory=pin_memory, seconds=seconds)


def _sample_error(exc: Exception, num_workers: int) -> SampleLoadError | None:
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
