"""Process statistics for tune_num_workers: resident memory and CPU time per process and
/dev/shm usage, from psutil when installed, else /proc (Linux), else nothing; and the thread that
samples their peaks while a setting is measured."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

try:
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

__all__ = ["MemoryWatch", "cpu_seconds", "rss_bytes", "shm_used_bytes"]

_SAMPLE_PERIOD_S = 0.02

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def rss_bytes(pid: int) -> int:
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


def cpu_seconds(pid: int) -> float | None:
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


def shm_used_bytes() -> int | None:
    try:
        stat = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return None
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


class MemoryWatch:
    """Samples RSS of the main process and the given workers, and /dev/shm, on a thread."""

    def __init__(self) -> None:
        self.worker_pids: list[int] = []
        self.peak_main = 0
        self.peak_workers = 0
        self.peak_total = 0
        self.shm_baseline = shm_used_bytes()
        self.peak_shm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="fastloader-tuner-watch", daemon=True
        )

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        main = rss_bytes(os.getpid())
        workers = sum(rss_bytes(pid) for pid in list(self.worker_pids))
        self.peak_main = max(self.peak_main, main)
        self.peak_workers = max(self.peak_workers, workers)
        self.peak_total = max(self.peak_total, main + workers)
        shm = shm_used_bytes()
        if shm is not None and self.shm_baseline is not None:
            self.peak_shm = max(self.peak_shm, shm - self.shm_baseline)

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_PERIOD_S):
            self.sample()
