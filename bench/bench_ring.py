"""Benchmark: the shared-memory batch ring against the stock detection_collate and the plain fast
collate in a DataLoader, and the per-batch collate time inside a worker against the copy floor.

Every figure comes from this one run on this machine: loader rates are medians (with min-max)
of R interleaved rounds (fastloader.bench.harness), ratios the medians of per-round ratios.
Usage: python bench/bench_ring.py [--batches N] [--rounds R] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from fastloader import DetectionCollate
from fastloader.bench.harness import Section, ratio, run_rounds, spread, write_report
from fastloader.bench.stock import detection_collate as stock_detection_collate

BATCH = 32
SHAPE = (3, 640, 640)


class InMemoryDetection(Dataset):
    """Pre-generated uint8 samples: __getitem__ costs nothing, so the loader measures collate and
    the hand-off between processes."""

    def __init__(self, count: int, length: int, seed: int = 2) -> None:
        g = torch.Generator().manual_seed(seed)
        self.samples = []
        for _ in range(count):
            image = torch.randint(0, 256, SHAPE, generator=g, dtype=torch.uint8)
            boxes = torch.rand(int(torch.randint(0, 50, (1,), generator=g)), 5, generator=g)
            self.samples.append((image, boxes))
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return self.samples[index % len(self.samples)]


def loader_rate(dataset, collate_fn, workers: int, batches: int) -> float:
    loader = DataLoader(
        dataset,
        batch_size=BATCH,
        num_workers=workers,
        collate_fn=collate_fn,
        persistent_workers=False,
        multiprocessing_context="fork",
    )
    it = iter(loader)
    for _ in range(3):  # start-up, slot creation and page faults of the first batches untimed
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        del batch  # as a training step does once it has used the batch
    rate = batches / (time.perf_counter() - start)
    del it, loader
    gc.collect()
    return rate


class TimedInWorker:
    """Collates and, inside the worker, times it against copying the same image bytes into a
    buffer that is already mapped and faulted in (the floor for any collate)."""

    def __init__(self, collate) -> None:
        self.collate = collate
        self.floor_buffer: torch.Tensor | None = None

    def __call__(self, samples):
        assert get_worker_info() is not None
        start = time.perf_counter()
        batch = self.collate(samples)
        collate_s = time.perf_counter() - start
        images = [s[0] for s in samples]
        if self.floor_buffer is None:
            self.floor_buffer = torch.empty((len(images), *SHAPE), dtype=torch.uint8)
            torch.stack(images, out=self.floor_buffer)  # fault the pages in once
        start = time.perf_counter()
        torch.stack(images, out=self.floor_buffer)
        floor_s = time.perf_counter() - start
        return batch, collate_s, floor_s


def in_worker_times(dataset, collate, batches: int) -> tuple[float, float]:
    loader = DataLoader(
        dataset,
        batch_size=BATCH,
        num_workers=1,
        collate_fn=TimedInWorker(collate),
        multiprocessing_context="fork",
    )
    collate_times, floor_times = [], []
    for k, (batch, collate_s, floor_s) in enumerate(loader):
        del batch
        if k >= 3:
            collate_times.append(collate_s)
            floor_times.append(floor_s)
        if k >= batches + 3:
            break
    return statistics.median(collate_times), statistics.median(floor_times)


def cell(rates: list[float]) -> str:
    return spread(rates, "", "{:.1f}".format)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per loader")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (>= 3; medians printed)"
    )
    parser.add_argument("--markdown", help="also write the tables to this file")
    args = parser.parse_args()
    rounds = max(3, args.rounds)
    dataset = InMemoryDetection(BATCH * 2, BATCH * (args.batches + 6))
    setting = (
        f"batch {BATCH} x uint8 {'x'.join(map(str, SHAPE))}, randint(0, 50) boxes of 5; fork "
        "workers"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {setting}")
    fast = DetectionCollate()
    ring = DetectionCollate(shared_ring=True)
    collates = {"stock": stock_detection_collate, "fast": fast, "ring": ring}
    loaders = Section("DataLoader end to end: batches/s")
    rows = []
    for workers in (1, 2):
        # Interleaved: drift on the shared machine hits all alike.
        rates = run_rounds(
            {
                name: functools.partial(loader_rate, dataset, collate, workers, args.batches)
                for name, collate in collates.items()
            },
            rounds,
        )
        rows.append(
            [workers, cell(rates["stock"]), cell(rates["fast"]), cell(rates["ring"]),
             ratio(rates["fast"], rates["stock"]), ratio(rates["ring"], rates["stock"])]
        )  # fmt: skip
    header = ["num_workers", "stock", "fast", "ring", "fast / stock", "ring / stock"]
    loaders.table(header, rows)
    loaders.note(
        f"{setting}. {args.batches} batches after 3 warm-up, median (min-max) of {rounds} "
        f"interleaved rounds; ratios are medians of per-round ratios. Ring: {ring.ring.stats()}"
    )
    print(loaders.text(), flush=True)

    in_worker = Section("Collate time per batch inside a worker against the copy floor")
    rows = []
    for label, collate in (
        ("fast, fresh shared memory", fast),
        ("fast, shared ring", ring),
        ("stock detection_collate", stock_detection_collate),
    ):
        collate_s, floor_s = in_worker_times(dataset, collate, args.batches)
        rows.append(
            [label, f"{collate_s * 1e3:.2f}", f"{floor_s * 1e3:.2f}", f"{collate_s / floor_s:.2f}"]
        )
    in_worker.table(["collate", "ms (median)", "floor ms", "x floor"], rows, left=1)
    in_worker.note(
        "Floor: copying the same image bytes into an already-mapped buffer (torch.stack out=, "
        "same process, same thread count)."
    )
    print(in_worker.text(), flush=True)
    ring.close_ring()
    if args.markdown:
        command = " ".join(["python bench/bench_ring.py", *sys.argv[1:]])
        path = write_report(
            args.markdown, "fastloader: the shared ring", command, [loaders, in_worker]
        )
        print(f"results written to {path}")


if __name__ == "__main__":
    main()
