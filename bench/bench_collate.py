"""Benchmark: fast_detection_collate against the stock detection_collate, default_collate and a
raw-copy floor.

Every figure comes from this one run on this machine, through fastloader.bench.harness: each
method of a case is timed in R interleaved rounds (stock, fast, stock, fast, ...) so that drift
on a shared machine hits them alike; a round's figure is the median per-batch time of its calls.
Printed: the median over the rounds with the min-max spread, image GB/s, and the speed-up against
the stock function (the median of the per-round ratios).
Usage: python bench/bench_collate.py [--quick] [--seconds S] [--repeats R] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from fastloader import DetectionCollate, fast_detection_collate
from fastloader.bench.harness import (
    Section,
    duration,
    interleaved,
    ratio,
    run_rounds,
    spread,
    write_report,
)
from fastloader.bench.stock import detection_collate as stock_detection_collate
from fastloader.bench.stock import detectron2_style_padding


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
SECTIONS: list[Section] = []  # every case's table, for --markdown


def interleaved_per_batch(
    methods: list[tuple[str, Callable[[], object]]], seconds: float
) -> dict[str, list[float]]:
    """Per-batch seconds of each method, one figure per round: REPEATS rounds, each timing every
    method in turn for about `seconds` (at least 3 calls, after 2 untimed ones)."""
    return interleaved(dict(methods), REPEATS, budget_s=seconds, min_calls=3, warmup=2)


def report(
    title: str,
    times: dict[str, list[float]],
    nbytes: int,
    stock_key: str = "stock detection_collate",
) -> Section:
    section = Section(title)
    rows = [
        [
            name,
            duration(values, "ms"),
            f"{nbytes / statistics.median(values) / 1e9:.2f}",
            ratio(times[stock_key], values),
        ]
        for name, values in times.items()
    ]
    section.table(["method", "per batch (min-max)", "GB/s", "x stock (min-max)"], rows, left=1)
    section.note(f"{nbytes / 1e6:.1f} MB of images per batch, {REPEATS} interleaved rounds.")
    print(section.text(), flush=True)
    SECTIONS.append(section)
    return section


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

    times = interleaved_per_batch(
        [
            ("stock detection_collate", lambda: stock_detection_collate(samples)),
            ("default_collate (images only)", lambda: default_collate(images)),
            ("floor: torch.stack(out=preallocated)", lambda: torch.stack(images, 0, out=out_t)),
            ("floor: numpy copy, 1 thread", numpy_copy),
            ("fast_detection_collate", lambda: fast_detection_collate(samples)),
        ],
        seconds,
    )
    section = report(
        f"same size: batch {batch_size} x 3x{side}x{side} {str(dtype).replace('torch.', '')}, "
        f"{torch.get_num_threads()} threads",
        times,
        nbytes,
    )
    fast = times["fast_detection_collate"]
    section.note(
        f"fast / floor time: {ratio(fast, times['floor: torch.stack(out=preallocated)'])} vs "
        f"torch.stack(out=), {ratio(fast, times['floor: numpy copy, 1 thread'])} vs numpy copy "
        "(target <= 1.5)"
    )
    print(section.parts[-1][1][0])


def variable_size_case(batch_size: int, dtype: torch.dtype, seconds: float) -> None:
    rng = np.random.default_rng(1)
    sizes = [tuple(int(v) for v in rng.integers(480, 801, 2)) for _ in range(batch_size)]
    samples = make_samples(batch_size, dtype, sizes, seed=1)
    nbytes = sum(s[0].numel() * s[0].element_size() for s in samples)
    collate = DetectionCollate(size_divisibility=32)
    times = interleaved_per_batch(
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
        times,
        nbytes,
        stock_key="stock: detectron2-style padding in Python",
    )


class InMemorySamples(Dataset):
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
    ds = InMemorySamples(samples, batch_size * (batches + 4))
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
    section = Section(
        f"DataLoader end to end: batch {batch_size} x 3x640x640 {str(dtype).replace('torch.', '')}"
    )
    rows = []
    for workers in workers_list:
        # Interleaved rounds: the machine is shared, so drift hits both alike.
        collates = {"stock": stock_detection_collate, "fast": fast_detection_collate}
        rates = run_rounds(
            {
                name: functools.partial(loader_rate, fn, samples, batch_size, workers, batches)
                for name, fn in collates.items()
            },
            REPEATS,
        )
        rows.append(
            [workers, spread(rates["stock"], "", "{:.1f}".format),
             spread(rates["fast"], "", "{:.1f}".format), ratio(rates["fast"], rates["stock"])]
        )  # fmt: skip
    section.table(["num_workers", "stock batch/s", "fast batch/s", "x stock (min-max)"], rows)
    section.note(
        f"{batches} batches after warm-up, median (min-max) of {REPEATS} interleaved rounds."
    )
    print(section.text(), flush=True)
    SECTIONS.append(section)


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

    times = interleaved_per_batch(
        [
            ("stock detection_collate + pin + H2D", stock),
            ("fast_detection_collate (pinned) + H2D", fast),
        ],
        seconds,
    )
    report(
        f"CUDA: collate + host-to-device, batch {batch_size} {str(dtype).replace('torch.', '')}",
        times,
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
    parser.add_argument("--markdown", help="also write the tables to this file")
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
    if args.markdown:
        command = "python bench/bench_collate.py " + " ".join(sys.argv[1:])
        path = write_report(args.markdown, "fastloader: collate", command.strip(), SECTIONS)
        print(f"results written to {path}")


if __name__ == "__main__":
    main()
