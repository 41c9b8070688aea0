"""FastWeightedSampler against torch's WeightedRandomSampler, torch.multinomial and numpy, same run.

python bench/bench_sampler.py            # n = k = 1e5, 1e6, 1e7 and 5e7 (ours)
python bench/bench_sampler.py --quick    # n = k = 1e5, 1e6
python bench/bench_sampler.py --markdown build/bench-results/sampler.md
python bench/bench_sampler.py --sizes 1e7 --draws-only   # one size, draw/epoch table only
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from _rss_probe import RSS_HELPERS  # bench/ is on sys.path: scripts run from it
from fastloader import FastWeightedBatchSampler, FastWeightedSampler
from fastloader.bench.harness import (
    duration,
    interleaved,
    machine_line,
    markdown_table,
    ratio,
    time_call,
)

STOCK_LIMIT = 2**24  # torch.multinomial refuses more categories


def timed_rounds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each fn over `repeats` interleaved rounds (one call of every fn per round:
    slow phases of a shared machine then hit all contenders alike), and the CPU seconds of each
    call under the name + "_cpu": less sensitive to other programs' load than wall time."""
    cpu: dict[str, list[float]] = {}
    times = interleaved(fns, repeats, cpu=cpu)
    return {**times, **{name + "_cpu": values for name, values in cpu.items()}}


def exhaust(iterable) -> None:
    for _ in iterable:
        pass


def weights_for(n: int) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.01


def contenders(w: torch.Tensor, n: int, replacement: bool, numpy_too: bool) -> dict:
    """The timed calls for one row: ours and, where torch allows n, the stock ways."""
    ours = FastWeightedSampler(w, n, replacement, seed=0)
    fns = {"ours_draw": ours.indices, "ours_epoch": lambda: exhaust(ours)}
    if n <= STOCK_LIMIT:
        stock = WeightedRandomSampler(w, n, replacement)
        fns["stock_draw"] = lambda: torch.multinomial(w, n, replacement)
        fns["stock_epoch"] = lambda: exhaust(stock)
        if numpy_too:
            rng = np.random.default_rng(0)
            w_np = (w / w.sum()).numpy()
            fns["numpy_draw"] = lambda: rng.choice(n, n, replace=replacement, p=w_np)
    return fns


def draw_rows(sizes: list[int], full: bool, repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        w = weights_for(n)
        for replacement in (True, False):
            fns = contenders(w, n, replacement, numpy_too=full or n <= 1_000_000)
            numpy_draw = fns.pop("numpy_draw", None)
            row = {"n": n, "replacement": replacement, **timed_rounds(fns, repeats)}
            if numpy_draw is not None:  # seconds per call at 1e6: once is enough to compare
                row["numpy_draw"] = [time_call(numpy_draw)]
            rows.append(row)
            print(f"  n={n:.0e} replacement={replacement}: done", flush=True)
    return rows


MEMORY_PROBE = (
    RSS_HELPERS
    + r"""
import json, sys, torch
from torch.utils.data import WeightedRandomSampler
from fastloader import FastWeightedSampler
kind, n, replacement = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
w = torch.rand(n, dtype=torch.float64) + 0.01
# Reset the peak (VmHWM) so what torch's import touched does not count.
reset_peak()
base = status("VmRSS:")
if kind == "stock":
    sampler = WeightedRandomSampler(w, n, replacement)
else:
    sampler = FastWeightedSampler(w, n, replacement, seed=0)
built_peak = status("VmHWM:")
built = status("VmRSS:")
reset_peak()
for _ in sampler:
    pass
epoch_peak = status("VmHWM:")
print(json.dumps({"construction": built - base, "epoch": epoch_peak - built,
                  "overall": max(built_peak, epoch_peak) - base}))
"""
)


def memory_per_item(kind: str, n: int, replacement: bool) -> dict:
    """Peak RSS above the weights tensor, per item, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, kind, str(n), "1" if replacement else "0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures = json.loads(out)
    return {key: value / n for key, value in figures.items()}


class IndexDataset(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index


def loader_rows(n: int, repeats: int) -> list[dict]:
    w = weights_for(n)
    dataset = IndexDataset(n)
    prebuilt = [list(range(i, min(i + 256, n))) for i in range(0, n, 256)]
    variants = {
        "floor: batch_sampler=pre-built list (no sampling)": {"batch_sampler": prebuilt},
        "stock sampler=WeightedRandomSampler": {
            "sampler": WeightedRandomSampler(w, n),
            "batch_size": 256,
        },
        "ours sampler=FastWeightedSampler": {
            "sampler": FastWeightedSampler(w, n, seed=0),
            "batch_size": 256,
        },
        "ours batch_sampler=FastWeightedBatchSampler": {
            "batch_sampler": FastWeightedBatchSampler(w, n, 256, seed=0)
        },
    }
    loaders = {name: DataLoader(dataset, num_workers=0, **kw) for name, kw in variants.items()}
    times = interleaved(
        {name: functools.partial(exhaust, loader) for name, loader in loaders.items()}, repeats
    )
    stock = times["stock sampler=WeightedRandomSampler"]
    rows = []
    for name in loaders:
        middle = statistics.median(times[name])
        rows.append(
            {
                "variant": name,
                "indices_per_s": n / middle,
                "ns_per_index": 1e9 * middle / n,
                "vs_stock": ratio(stock, times[name]),
            }
        )
    return rows


def cell(runs: list[float] | None) -> str:
    """Median seconds with the min-max spread of the runs; "refused" where stock cannot run."""
    if runs is None:
        return "refused"
    return duration(runs) if len(runs) > 1 else duration(runs).split(" (")[0]


def speed_up(stock: list[float] | None, ours: list[float]) -> str:
    return "-" if stock is None else ratio(stock, ours)


def render(draws, memory, loader, header) -> str:
    lines = [header, "", "### Draw and epoch time (median (min-max) of interleaved rounds)", ""]
    lines += ["ratio = median of the per-round stock / ours, same run; numpy timed once.", ""]
    rows = []
    for r in draws:
        numpy_s = r.get("numpy_draw")
        rows.append(
            [f"{r['n']:.0e}", r["replacement"], cell(r.get("stock_draw")),
             "skipped" if numpy_s is None and r["n"] <= STOCK_LIMIT else cell(numpy_s),
             cell(r["ours_draw"]), speed_up(r.get("stock_draw"), r["ours_draw"]),
             cell(r.get("stock_epoch")), cell(r["ours_epoch"]),
             speed_up(r.get("stock_epoch"), r["ours_epoch"])]
        )  # fmt: skip
    header_row = ["n = k", "replacement", "multinomial", "numpy choice", "ours indices()"]
    header_row += ["draw ratio", "stock epoch", "ours epoch", "epoch ratio"]
    lines += [markdown_table(header_row, rows), ""]
    lines += ["### CPU seconds per draw (all threads; medians of the same runs)", ""]
    rows = [
        [f"{r['n']:.0e}", r["replacement"], cell(r.get("stock_draw_cpu")),
         cell(r["ours_draw_cpu"]), speed_up(r.get("stock_draw_cpu"), r["ours_draw_cpu"])]
        for r in draws
    ]  # fmt: skip
    header_row = ["n = k", "replacement", "multinomial CPU", "ours CPU", "CPU ratio"]
    lines += [markdown_table(header_row, rows)]
    if memory:
        lines += ["", "### Memory per item (bytes, peak RSS above the weights, fresh process)", ""]
        rows = [
            [kind, f"{n:.0e}", replacement, f"{m['construction']:.1f}", f"{m['epoch']:.1f}",
             f"{m['overall']:.1f}"]
            for (kind, n, replacement), m in memory.items()
        ]  # fmt: skip
        header_row = ["sampler", "n = k", "replacement", "kept after construction"]
        header_row += ["peak during the epoch", "peak of construction + epoch"]
        lines += [markdown_table(header_row, rows, left=1)]
    if loader:
        lines += [
            "",
            "### DataLoader index throughput (batch_size=256, num_workers=0, medians)",
            "",
        ]
        rows = [
            [r["variant"], f"{r['indices_per_s']:,.0f}", f"{r['ns_per_index']:.0f}", r["vs_stock"]]
            for r in loader
        ]
        lines += [markdown_table(["variant", "indices/s", "ns per index", "vs stock"], rows, 1)]
    return "\n".join(lines) + "\n"


def memory_rows(quick: bool) -> dict:
    memory = {}
    mem_n = 1_000_000 if quick else 10_000_000
    for replacement in (True, False):
        for kind in ("stock", "ours"):
            memory[(kind, mem_n, replacement)] = memory_per_item(kind, mem_n, replacement)
    if not quick:
        for replacement in (True, False):
            key = ("ours", 50_000_000, replacement)
            memory[key] = memory_per_item(*key)
    return memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 1e6 only")
    parser.add_argument("--full", action="store_true", help="also numpy at 1e7 (slow)")
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--sizes", help="comma-separated n = k values, e.g. 1e6,1e7")
    parser.add_argument("--draws-only", action="store_true", help="skip memory and DataLoader")
    args = parser.parse_args()

    sizes = [100_000, 1_000_000] if args.quick else [100_000, 1_000_000, 10_000_000, 50_000_000]
    if args.sizes:
        sizes = [int(float(size)) for size in args.sizes.split(",")]
    command = " ".join(["python bench/bench_sampler.py", *sys.argv[1:]])
    header = f"## Sampler benchmark\n\n{machine_line(command)}"
    print(header, flush=True)
    draws = draw_rows(sizes, args.full, args.repeats)
    memory, loader = {}, []
    if not args.draws_only:
        memory = memory_rows(quick=args.quick)
        loader = loader_rows(200_000 if args.quick else 1_000_000, args.repeats)
    text = render(draws, memory, loader, header)
    print(text)
    if args.markdown:
        os.makedirs(os.path.dirname(args.markdown) or ".", exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
