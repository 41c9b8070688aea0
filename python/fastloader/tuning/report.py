"""What tune_num_workers reports: one :class:`WorkerMeasurement` per ``num_workers`` setting and
the :class:`TuneReport` over them, as aligned text, markdown or a dict."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .._util.tables import markdown_table, text_table

__all__ = ["TuneReport", "WorkerMeasurement"]


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
        lines = [text_table(*self._grid())]
        lines.append(
            f"best: num_workers={self.best} ({self.best_row.batches_per_s:.1f} batches/s; "
            f"batch_size={self.batch_size}, pin_memory={self.pin_memory}, "
            f"{self.seconds:g} s per setting, {self.cpu_count} CPUs)"
        )
        return "\n".join(lines)

    def to_markdown(self) -> str:
        lines = [markdown_table(*self._grid()), ""]
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
