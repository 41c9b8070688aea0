"""Benchmark: fast_detection_collate against the stock detection_collate, default_collate and a
raw-copy floor.

Every figure comes from this one run on this machine. Each method of a case is timed in R
interleaved repeats (stock, fast, stock, fast, ...) so that drift on a shared machine hits them
alike; a repeat's figure is the median per-batch time of its calls. Printed: the median over the
repeats with the min-max spread, image GB/s, and the ratio against the stock function (medians).
Usage: python bench/bench_collate.py [--quick] [--seconds S] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from fastloader import DetectionCollate, fast_detection_collate
from fastloader.bench.main_job import detection_collate as stock_detection_collate
from fastloader.bench.main_job import pad_like_detectron2


def detectron2_style_padding(batch, size_divisibility=32):
    """detectron2 ImageList.from_tensors on the CPU, plus the targets as the stock collate makes
    them."""
    images = pad_like_detectron2([s[0] for s in batch], size_divisibility)
    return images, [torch.FloatTensor(s[1]) for s in batch]


def make_samples(count: int, dtype: torch.dtype, sizes: list[tuple], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for k in range(count):
        h, w = sizes[k % len(sizes)]
        image = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        image = image.to(dtype) / 255 if dtype.is_floating_point else image
        boxes = torch.rand(int(torch.randint(0, 50, (1,), generator=g)), 5, generator=g)
        samples.append((image, boxes))
    return samples


REPEATS = 5  # interleaved repeats per case (--repeats)


def time_per_batch(fn: Callable[[], object], seconds: float, min_reps: int = 3) -> float:
    """Median seconds per call; each result is dropped before the next call, as a training loop
    does."""
    fn()
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
        if len(times) >= 200:
            break
    return statistics.median(times)


class Timing:
    """One method's per-batch times over the interleaved repeats."""

    def __init__(self, times: list[float]) -> None:
        self.times = times
        self.median = statistics.median(times)

    def spread_ms(self) -> str:
        return f"{min(self.times) * 1e3:.2f}-{max(self.times) * 1e3:.2f}"


def interleaved(methods: list[tuple[str, Callable[[], object]]], seconds: float) -> list[tuple]:
    """(name, Timing) per method: REPEATS rounds, each timing every method once in turn for
    about `seconds` (at least 3 calls)."""
    times: dict[str, list[float]] = {name: [] for name, _ in methods}
    for _ in range(REPEATS):
        for name, fn in methods:
            times[name].append(time_per_batch(fn, seconds))
    return [(name, Timing(times[name])) for name, _ in methods]


def report(
    title: str, rows: list[tuple], nbytes: int, stock_key: str = "stock detection_collate"
) -> None:
    base = dict(rows)[stock_key].median
    print(f"\n{title}  ({nbytes / 1e6:.1f} MB of images per batch, {REPEATS} repeats)")
    print(f"  {'method':<44}{'ms/batch':>10}{'min-max':>15}{'GB/s':>8}{'x stock':>9}")
    for name, timing in rows:
        seconds = timing.median
        print(
            f"  {name:<44}{seconds * 1e3:>10.3f}{timing.spread_ms():>15}"
            f"{nbytes / seconds / 1e9:>8.2f}{base / seconds:>9.2f}"
        )


def same_size_case(batch_size: int, dtype: torch.dtype, seconds: float, side: int = 640) -> None:
    samples = make_samples(batch_size, dtype, [(side, side)])
    images = [s[0] for s in samples]
    arrays = [i.numpy() for i in images]
    nbytes = sum(i.numel() * i.element_size() for i in images)
    out_t = torch.empty(batch_size, *images[0].shape, dtype=dtype)
    out_t.fill_(0)  # pages faulted once: the floor copies into an already-used buffer
    out_np = out_t.numpy()

    def numpy_copy():
        for k, a in enumerate(arrays):
            np.copyto(out_np[k], a)

    rows = interleaved(
        [
            ("stock detection_collate", lambda: stock_detection_collate(samples)),
            ("default_collate (images only)", lambda: default_collate(images)),
            ("floor: torch.stack(out=preallocated)", lambda: torch.stack(images, 0, out=out_t)),
            ("floor: numpy copy, 1 thread", numpy_copy),
            ("fast_detection_collate", lambda: fast_detection_collate(samples)),
        ],
        seconds,
    )
    report(
        f"same size: batch {batch_size} x 3x{side}x{side} {str(dtype).replace('torch.', '')}, "
        f"{torch.get_num_threads()} threads",
        rows,
        nbytes,
    )
    fast, stack_floor, numpy_floor = rows[-1][1].median, rows[2][1].median, rows[3][1].median
    print(
        f"  fast / floor time ratio: {fast / stack_floor:.2f} vs torch.stack(out=), "
        f"{fast / numpy_floor:.2f} vs numpy copy (target <= 1.5)"
    )


def variable_size_case(batch_size: int, dtype: torch.dtype, seconds: float) -> None:
    rng = np.random.default_rng(1)
    sizes = [tuple(int(v) for v in rng.integers(480, 801, 2)) for _ in range(batch_size)]
    samples = make_samples(batch_size, dtype, sizes, seed=1)
    nbytes = sum(s[0].numel() * s[0].element_size() for s in samples)
    collate = DetectionCollate(size_divisibility=32)
    rows = interleaved(
        [
            (
                "stock: detectron2-style padding in Python",
                lambda: detectron2_style_padding(samples),
            ),
            ("DetectionCollate(size_divisibility=32)", lambda: collate(samples)),
        ],
        seconds,
    )
    report(
        f"variable size 480..800: batch {batch_size} {str(dtype).replace('torch.', '')}, "
        f"padded to /32",
        rows,
        nbytes,
        stock_key="stock: detectron2-style padding in Python",
    )


class SyntheticDetection(Dataset):
    """Pre-generated samples: __getitem__ costs nothing, so the loader measures collate and
    hand-off."""

    def __init__(self, samples, length):
        self.samples = samples
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return self.samples[index % len(self.samples)]


def loader_rate(collate_fn, samples, batch_size: int, workers: int, batches: int) -> float:
    ds = SyntheticDetection(samples, batch_size * (batches + 4))
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_fn,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers else None,
    )
    it = iter(loader)
    for _ in range(3):  # start-up and warm-up are not timed
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        del batch
    rate = batches / (time.perf_counter() - start)
    del it, loader
    return rate


def dataloader_case(batch_size: int, dtype: torch.dtype, workers_list, batches: int) -> None:
    samples = make_samples(batch_size * 2, dtype, [(640, 640)], seed=2)
    print(
        f"\nDataLoader end to end: batch {batch_size} x 3x640x640 "
        f"{str(dtype).replace('torch.', '')}, "
        f"{batches} batches after warm-up, median (min-max) of {REPEATS} interleaved rounds"
    )
    print(f"  {'num_workers':<12}{'stock batch/s':>22}{'fast batch/s':>22}{'x stock':>9}")
    for workers in workers_list:
        # Interleaved rounds: the machine is shared, so drift hits both alike.
        rates: dict[str, list[float]] = {"stock": [], "fast": []}
        for _ in range(REPEATS):
            for name, fn in (("stock", stock_detection_collate), ("fast", fast_detection_collate)):
                rates[name].append(loader_rate(fn, samples, batch_size, workers, batches))
        stock, fast = (statistics.median(rates[k]) for k in ("stock", "fast"))
        cells = [
            f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"
            for v in (rates["stock"], rates["fast"])
        ]
        print(f"  {workers:<12}{cells[0]:>22}{cells[1]:>22}{fast / stock:>9.2f}")


def cuda_case(batch_size: int, dtype: torch.dtype, seconds: float) -> None:
    samples = make_samples(batch_size, dtype, [(640, 640)], seed=3)
    nbytes = sum(s[0].numel() * s[0].element_size() for s in samples)

    def stock():
        images, targets = stock_detection_collate(samples)
        images = images.pin_memory().cuda(non_blocking=True)
        targets = [t.pin_memory().cuda(non_blocking=True) for t in targets]
        torch.cuda.synchronize()
        return images, targets

    def fast():
        batch = fast_detection_collate(samples).to("cuda", non_blocking=True)
        torch.cuda.synchronize()
        return batch

    rows = interleaved(
        [
            ("stock detection_collate + pin + H2D", stock),
            ("fast_detection_collate (pinned) + H2D", fast),
        ],
        seconds,
    )
    report(
        f"CUDA: collate + host-to-device, batch {batch_size} {str(dtype).replace('torch.', '')}",
        rows,
        nbytes,
        stock_key="stock detection_collate + pin + H2D",
    )


def main() -> None:
    global REPEATS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer cases, shorter timings")
    parser.add_argument(
        "--seconds", type=float, default=0.3, help="timing budget per method and repeat"
    )
    parser.add_argument("--repeats", type=int, default=REPEATS, help="interleaved repeats (>= 3)")
    args = parser.parse_args()
    REPEATS = max(3, args.repeats)
    seconds = 0.1 if args.quick else args.seconds
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CUDA {'yes' if torch.cuda.is_available() else 'no'}"
    )
    sizes = [8, 32] if args.quick else [8, 32, 64]
    same_size_case(8, torch.uint8, seconds, side=224)  # small batches: no thread start-up
    for dtype in (torch.uint8, torch.float32):
        for batch_size in sizes:
            same_size_case(batch_size, dtype, seconds)
    for dtype in (torch.uint8, torch.float32):
        variable_size_case(32, dtype, seconds)
    dataloader_case(32, torch.uint8, [0, 1, 2], 10 if args.quick else 30)
    if torch.cuda.is_available():
        for dtype in (torch.uint8, torch.float32):
            cuda_case(32, dtype, seconds)


if __name__ == "__main__":
    main()
