"""Benchmark: the shared-memory batch ring against the stock detection_collate and the plain fast
collate in a DataLoader, and the per-batch collate time inside a worker against the copy floor.

Every figure comes from this one run on this machine: loader rates are medians (with min-max)
of R interleaved rounds. Usage: python bench/bench_ring.py [--batches N] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from fastloader import DetectionCollate

BATCH = 32
SHAPE = (3, 640, 640)


def stock_detection_collate(batch):
    """What detection code has written for years (ssd.pytorch and descendants)."""
    imgs, targets = [], []
    for sample in batch:
        imgs.append(sample[0])
        targets.append(torch.FloatTensor(sample[1]))
    return torch.stack(imgs, 0), targets


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
    return f"{statistics.median(rates):.1f} ({min(rates):.1f}-{max(rates):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per loader")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (>= 3; medians printed)"
    )
    args = parser.parse_args()
    rounds = max(3, args.rounds)
    dataset = InMemoryDetection(BATCH * 2, BATCH * (args.batches + 6))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH} x uint8 "
        f"{'x'.join(map(str, SHAPE))}, randint(0, 50) boxes of 5; fork workers"
    )
    print(
        f"\nDataLoader end to end: batches/s, {args.batches} batches after 3 warm-up, median "
        f"(min-max) of {rounds} interleaved rounds; ratios of the medians"
    )
    print(
        f"  {'num_workers':<12}{'stock':>20}{'fast':>20}{'ring':>20}{'fast/stock':>12}"
        f"{'ring/stock':>12}"
    )
    fast = DetectionCollate()
    ring = DetectionCollate(shared_ring=True)
    for workers in (1, 2):
        rates: dict[str, list[float]] = {"stock": [], "fast": [], "ring": []}
        for _ in range(rounds):  # interleaved: drift on the shared machine hits all alike
            for name, collate in (
                ("stock", stock_detection_collate),
                ("fast", fast),
                ("ring", ring),
            ):
                rates[name].append(loader_rate(dataset, collate, workers, args.batches))
        medians = {name: statistics.median(v) for name, v in rates.items()}
        print(
            f"  {workers:<12}{cell(rates['stock']):>20}{cell(rates['fast']):>20}"
            f"{cell(rates['ring']):>20}{medians['fast'] / medians['stock']:>12.2f}"
            f"{medians['ring'] / medians['stock']:>12.2f}"
        )
    print(f"  ring: {ring.ring.stats()}")

    print("\nCollate time per batch inside a worker (median) vs copying the same image bytes")
    print("into an already-mapped buffer (torch.stack out=, same process, same thread count)")
    print(f"  {'collate':<34}{'ms':>8}{'floor ms':>10}{'x floor':>9}")
    for label, collate in (
        ("fast, fresh shared memory", fast),
        ("fast, shared ring", ring),
        ("stock detection_collate", stock_detection_collate),
    ):
        collate_s, floor_s = in_worker_times(dataset, collate, args.batches)
        print(
            f"  {label:<34}{collate_s * 1e3:>8.2f}{floor_s * 1e3:>10.2f}{collate_s / floor_s:>9.2f}"
        )
    ring.close_ring()


if __name__ == "__main__":
    main()
