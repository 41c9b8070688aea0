"""Distributed and resumable weighted sampling against the stock ways, ratios from the same run.

    python bench/bench_distributed.py            # n = 1e7, world size 2 (rank 0 measured here)
    python bench/bench_distributed.py --quick    # n = 1e6
    python bench/bench_distributed.py --markdown build/bench-results/distributed.md

Per-rank epoch: DistributedWeightedSampler against Lightning's DistributedSamplerWrapper around
WeightedRandomSampler (and around FastWeightedSampler). Memory: peak RSS of an epoch, in fresh
processes. Resume at 90% of an epoch: time from load_state_dict to the first batch under torchdata's
StatefulDataLoader, against its skip fallback on the same sampler without state_dict.
Times are medians of interleaved repeats with the min-max spread.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable

import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import Sampler, WeightedRandomSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from _rss_probe import RSS_HELPERS  # bench/ is on sys.path: scripts run from it
from fastloader import (
    DistributedWeightedBatchSampler,
    DistributedWeightedSampler,
    FastWeightedSampler,
)
from fastloader.bench.harness import duration, interleaved, machine_line, markdown_table, ratio

WORLD = 2
BATCH = 256


def weights_for(n: int) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.01


def exhaust(iterable) -> None:
    deque(iterable, maxlen=0)


# ---------------------------------------------------------------- per-rank epoch


def epoch_cases(n: int) -> dict[str, Callable[[], object]]:
    w = weights_for(n)
    stock = DistributedSamplerWrapper(WeightedRandomSampler(w, n), num_replicas=WORLD, rank=0)
    wrapped_ours = DistributedSamplerWrapper(
        FastWeightedSampler(w, n, seed=0), num_replicas=WORLD, rank=0
    )
    ours = DistributedWeightedSampler(w, n, num_replicas=WORLD, rank=0, seed=0)
    ours_batches = DistributedWeightedBatchSampler(ours, BATCH)

    def run(sampler):
        epochs = itertools.count()  # a fresh epoch each round: nothing cached

        def epoch() -> None:
            sampler.set_epoch(next(epochs))
            exhaust(sampler)

        return epoch

    index_epochs = itertools.count()

    return {
        "Lightning wrapper(WeightedRandomSampler)": run(stock),
        "Lightning wrapper(FastWeightedSampler)": run(wrapped_ours),
        "DistributedWeightedSampler": run(ours),
        f"DistributedWeightedBatchSampler({BATCH})": run(ours_batches),
        "DistributedWeightedSampler.indices()": lambda: (
            ours.set_epoch(next(index_epochs)),
            ours.indices(),
        ),
    }


# ---------------------------------------------------------------- memory, in fresh processes

MEMORY_PROBE = (
    RSS_HELPERS
    + r"""
import json, sys, torch
from collections import deque
from torch.utils.data import WeightedRandomSampler
from fastloader import DistributedWeightedSampler, FastWeightedSampler
kind, how, n, world = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
w = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.01
if kind == "single":
    sampler = FastWeightedSampler(w, n, seed=0)
elif kind == "rank":
    sampler = DistributedWeightedSampler(w, n, num_replicas=world, rank=0, seed=0)
else:
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
    sampler = DistributedSamplerWrapper(WeightedRandomSampler(w, n), num_replicas=world, rank=0)
# Reset the peak (VmHWM): only what the epoch itself adds counts.
reset_peak()
before = status("VmRSS:")
kept = sampler.indices() if how == "tensor" else deque(sampler, maxlen=0)
print(json.dumps({"epoch_peak": status("VmHWM:") - before}))
"""
)


def epoch_peak_bytes(kind: str, how: str, n: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, kind, how, str(n), str(WORLD)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["epoch_peak"]


def memory_rows(n: int) -> list[tuple[str, str, int]]:
    rows = []
    for how in ("tensor", "iter"):
        kinds = ("single", "rank") if how == "tensor" else ("single", "rank", "wrapper")
        for kind in kinds:
            rows.append((kind, how, epoch_peak_bytes(kind, how, n)))
    return rows


# ---------------------------------------------------------------- resume at 90%


class WithoutState(Sampler[int]):
    """The same sampler with no state_dict: StatefulDataLoader then skips what was consumed."""

    def __init__(self, inner: FastWeightedSampler) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self):
        return iter(self.inner)


def saved_at(sampler: Sampler, n: int, fraction: float) -> dict:
    """A StatefulDataLoader state after `fraction` of an epoch (batches pulled, not loaded)."""
    loader = StatefulDataLoader(range(n), batch_size=BATCH, sampler=sampler)
    # The dataset is a range: fetching costs little, so getting there is quick.
    stop = int(fraction * n) // BATCH
    iterator = iter(loader)
    for _ in range(stop):
        next(iterator)
    return loader.state_dict()


def resume_cases(n: int, replacement: bool) -> tuple[dict[str, Callable[[], object]], list]:
    w = weights_for(n)
    ours = FastWeightedSampler(w, n, replacement, seed=0)
    plain = WithoutState(FastWeightedSampler(w, n, replacement, seed=0))
    states = {"ours": saved_at(ours, n, 0.9), "skip": saved_at(plain, n, 0.9)}
    firsts = []

    def resume(sampler, state):
        def first_batch() -> None:
            loader = StatefulDataLoader(range(n), batch_size=BATCH, sampler=sampler)
            loader.load_state_dict(state)
            firsts.append(next(iter(loader)))

        return first_batch

    cases = {
        "StatefulDataLoader skip (no state_dict)": resume(plain, states["skip"]),
        "FastWeightedSampler.load_state_dict": resume(ours, states["ours"]),
    }
    return cases, firsts


# ---------------------------------------------------------------- report


def render(n: int, repeats: int, epoch_times, memory, resume_times) -> str:
    lines = [f"## Distributed epoch, n = {n:,}, world size {WORLD}, rank 0", ""]
    stock = epoch_times["Lightning wrapper(WeightedRandomSampler)"]
    rows = [[name, duration(times), ratio(stock, times)] for name, times in epoch_times.items()]
    lines += [markdown_table(["sampler", "median (min-max)", "vs stock"], rows, left=1), ""]
    lines += [f"{repeats} interleaved rounds; each is one epoch (a new set_epoch).", ""]
    lines += [f"## Peak memory of one epoch, n = {n:,} (MiB above the built sampler)", ""]
    rows = []
    for how in ("tensor", "iter"):
        peaks = {kind: peak for kind, h, peak in memory if h == how}
        wrapper = f"{peaks['wrapper'] / 2**20:.1f}" if "wrapper" in peaks else "-"
        rows.append(
            [how, f"{peaks['single'] / 2**20:.1f}", f"{peaks['rank'] / 2**20:.1f}", wrapper,
             f"{peaks['rank'] / max(1, peaks['single']):.2f}"]
        )  # fmt: skip
    header = ["epoch as", "single process", "rank 0 of 2", "Lightning wrapper, rank 0"]
    lines += [markdown_table([*header, "rank / single"], rows, left=1), ""]
    lines += ["Fresh process per cell; VmHWM reset after construction.", ""]
    title = f"Resume at 90% of an epoch, n = {n:,}, batch {BATCH}"
    lines += [f"## {title}: load_state_dict to first batch", ""]
    rows = []
    for replacement, times in resume_times.items():
        skip = times["StatefulDataLoader skip (no state_dict)"]
        ours = times["FastWeightedSampler.load_state_dict"]
        rows.append([replacement, duration(skip), duration(ours), ratio(skip, ours)])
    header = ["replacement", "skip fallback", "ours", "speed-up"]
    lines += [markdown_table(header, rows, left=1)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 1e6")
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", help="also write the tables to this file")
    args = parser.parse_args()
    n = 1_000_000 if args.quick else args.n
    started = time.perf_counter()
    epoch_times = interleaved(epoch_cases(n), args.repeats)
    memory = memory_rows(n)
    resume_times = {}
    for replacement in (True, False):
        cases, firsts = resume_cases(n, replacement)
        resume_times[replacement] = interleaved(cases, args.repeats)
        # Both ways resume at the same place of the same stream.
        assert all(torch.equal(firsts[0], f) for f in firsts), "resumed batches differ"
    command = " ".join(["python bench/bench_distributed.py", *sys.argv[1:]])
    report = f"{machine_line(command)}\n\n"
    report += render(n, args.repeats, epoch_times, memory, resume_times)
    report += f"\nTotal bench time {time.perf_counter() - started:.0f} s.\n"
    print(report)
    if args.markdown:
        os.makedirs(os.path.dirname(args.markdown) or ".", exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
