"""Detection sampling policies against the stock Python algorithms, ratios in one run.

    python bench/bench_policies.py            # 1e7 images for repeat factors, 1e6 indices grouped
    python bench/bench_policies.py --quick    # 1e6 and 2e5: a minute on a busy machine
    python bench/bench_policies.py --markdown bench/results/policies.md

Sections (medians of interleaved repeats, min-max spread in brackets):
1. One epoch of repeat-factor indices: detectron2's RepeatFactorTrainingSampler algorithm (its
   per-epoch Python loop, reproduced below) vs RepeatFactorSampler.indices().
2. Grouping one epoch of indices into batches of 32: torchvision's GroupedBatchSampler algorithm
   (reproduced below) vs AspectRatioGroupedBatchSampler, over the same stock RandomSampler.
3. Padding on a VOC shape mix (landscape and portrait images of several aspect ratios, the longer
   side fixed as detection resizing makes it): padded pixels of collated batch-32 batches with
   aspect-ratio grouping (k=3) and without, and fast_detection_collate's time per batch.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from itertools import chain, repeat

import numpy as np
import torch
from torch.utils.data import BatchSampler, RandomSampler, Sampler

from fastloader import (
    AspectRatioGroupedBatchSampler,
    RepeatFactorSampler,
    create_aspect_ratio_groups,
    fast_detection_collate,
)
from fastloader.bench.padding import padded_pixels
from fastloader.datasets.synthetic import voc_shape_sizes

# -- the stock algorithms, reproduced ----------------------------------------------------------


def detectron2_epoch(int_part: torch.Tensor, frac_part: torch.Tensor, g: torch.Generator):
    """detectron2's RepeatFactorTrainingSampler: _get_epoch_indices, then the shuffle."""
    rands = torch.rand(len(frac_part), generator=g)
    rep_factors = int_part + (rands < frac_part).float()
    indices = []
    for dataset_index, rep_factor in enumerate(rep_factors):
        indices.extend([dataset_index] * int(rep_factor.item()))
    indices = torch.tensor(indices, dtype=torch.int64)
    return indices[torch.randperm(len(indices), generator=g)]


def torchvision_grouped(sampler: Sampler, group_ids, batch_size: int) -> Iterator[list[int]]:
    """torchvision's GroupedBatchSampler.__iter__ (references/detection/group_by_aspect_ratio)."""
    buffer_per_group = defaultdict(list)
    samples_per_group = defaultdict(list)
    num_batches = 0
    for idx in sampler:
        group_id = group_ids[idx]
        buffer_per_group[group_id].append(idx)
        samples_per_group[group_id].append(idx)
        if len(buffer_per_group[group_id]) == batch_size:
            yield buffer_per_group[group_id]
            num_batches += 1
            del buffer_per_group[group_id]
        assert len(buffer_per_group[group_id]) < batch_size
    num_remaining = len(sampler) // batch_size - num_batches
    if num_remaining > 0:
        by_size = sorted(buffer_per_group.items(), key=lambda x: len(x[1]), reverse=True)
        for group_id, _ in by_size:
            remaining = batch_size - len(buffer_per_group[group_id])
            group = samples_per_group[group_id]
            cycled = list(chain.from_iterable(repeat(group, -(-remaining // len(group)))))
            buffer_per_group[group_id].extend(cycled[:remaining])
            yield buffer_per_group[group_id]
            num_remaining -= 1
            if num_remaining == 0:
                break


# -- timing ------------------------------------------------------------------------------------


def interleaved(cases: dict, repeats: int) -> dict:
    """Runs each case once per round, rounds `repeats` times: load changes hit every case alike."""
    times: dict = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def exhaust(iterable: Iterable) -> None:
    deque(iterable, maxlen=0)


def summary(values: list[float], scale: float = 1.0, unit: str = "s") -> str:
    med = statistics.median(values) * scale
    return f"{med:.4g} {unit} [{min(values) * scale:.3g}-{max(values) * scale:.3g}]"


def ratio(stock: list[float], ours: list[float]) -> str:
    return f"{statistics.median(stock) / statistics.median(ours):.1f}x"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- sections ----------------------------------------------------------------------------------


def lvis_like_factors(n: int) -> torch.Tensor:
    """Most images hold a frequent class (r = 1); a fifth hold a rare one (r in (1, 4])."""
    rng = np.random.default_rng(0)
    factors = np.ones(n, dtype=np.float32)
    rare = rng.random(n) < 0.2
    factors[rare] = 1.0 + 3.0 * rng.random(int(rare.sum()), dtype=np.float32)
    return torch.from_numpy(factors)


def repeat_factor_section(n: int, repeats: int) -> str:
    factors = lvis_like_factors(n)
    int_part = torch.trunc(factors)
    frac_part = factors - int_part
    g = torch.Generator().manual_seed(0)
    ours = RepeatFactorSampler(factors, seed=0)
    epochs = iter(range(1 << 30))

    def fastloader_epoch() -> object:
        ours.set_epoch(next(epochs))  # a fresh epoch each time: nothing cached
        return ours.indices()

    times = interleaved(
        {"detectron2": lambda: detectron2_epoch(int_part, frac_part, g), "ours": fastloader_epoch},
        repeats,
    )
    return table(
        ["images", "detectron2 algorithm", "RepeatFactorSampler.indices()", "ratio"],
        [
            [
                f"{n:.0e}",
                summary(times["detectron2"]),
                summary(times["ours"]),
                ratio(times["detectron2"], times["ours"]),
            ]
        ],
    )


class ListSampler(Sampler[int]):
    """A finished epoch as a stock Sampler: iterating it costs next to nothing."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def grouping_section(n: int, repeats: int) -> str:
    sizes = voc_shape_sizes(n, 512)
    group_ids = create_aspect_ratio_groups(sizes[:, 1] / sizes[:, 0], k=3)
    group_list = group_ids.tolist()
    samplers = {
        "a finished epoch (list)": ListSampler(np.random.default_rng(0).permutation(n).tolist()),
        "RandomSampler": RandomSampler(range(n), generator=torch.Generator().manual_seed(0)),
        "RepeatFactorSampler(ones)": RepeatFactorSampler(np.ones(n), seed=0),
    }
    cases = {}
    for name, sampler in samplers.items():
        ours = AspectRatioGroupedBatchSampler(sampler, group_ids, 32)
        # Consumed one batch at a time, as a DataLoader does: a batch is dropped before the next.
        cases[("torchvision", name)] = lambda s=sampler: exhaust(
            torchvision_grouped(s, group_list, 32)
        )
        cases[("ours", name)] = lambda g=ours: exhaust(g)
    times = interleaved(cases, repeats)
    rows = [
        [
            f"{n:.0e} from {name}",
            summary(times[("torchvision", name)]),
            summary(times[("ours", name)]),
            ratio(times[("torchvision", name)], times[("ours", name)]),
        ]
        for name in samplers
    ]
    header = [
        "indices, batch 32, k=3",
        "torchvision algorithm",
        "AspectRatioGroupedBatchSampler",
        "ratio",
    ]
    return table(header, rows)


def padding_section(n: int, longer: int, timed_batches: int, repeats: int) -> str:
    sizes = voc_shape_sizes(n, longer, seed=1)
    group_ids = create_aspect_ratio_groups(sizes[:, 1] / sizes[:, 0], k=3)
    sampler = RandomSampler(range(n), generator=torch.Generator().manual_seed(1))
    plain = list(BatchSampler(sampler, 32, drop_last=False))
    grouped = list(AspectRatioGroupedBatchSampler(sampler, group_ids, 32))
    plain_pad, plain_fraction = padded_pixels(sizes, plain)
    grouped_pad, grouped_fraction = padded_pixels(sizes, grouped)

    rng = np.random.default_rng(2)
    images: dict[tuple[int, int], torch.Tensor] = {}

    def sample(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = (int(v) for v in sizes[index])
        if (h, w) not in images:
            images[(h, w)] = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
        boxes = torch.from_numpy(rng.random((int(rng.integers(1, 8)), 5), dtype=np.float32))
        return images[(h, w)], boxes

    plain_samples = [[sample(i) for i in b] for b in plain[:timed_batches]]
    grouped_samples = [[sample(i) for i in b] for b in grouped[:timed_batches]]

    def collate_all(batches: list) -> None:
        for batch in batches:
            fast_detection_collate(batch)

    times = interleaved(
        {
            "plain": lambda: collate_all(plain_samples),
            "grouped": lambda: collate_all(grouped_samples),
        },
        repeats,
    )
    per_batch = 1e3 / timed_batches
    rows = [
        [
            "padded pixels per batch",
            f"{plain_pad:.4g} ({plain_fraction:.1%})",
            f"{grouped_pad:.4g} ({grouped_fraction:.1%})",
            f"{plain_pad / grouped_pad:.1f}x fewer",
        ],
        [
            "fast_detection_collate per batch",
            summary(times["plain"], per_batch, "ms"),
            summary(times["grouped"], per_batch, "ms"),
            ratio(times["plain"], times["grouped"]),
        ],
    ]
    return table(
        [
            f"VOC shape mix, longer side {longer}, batch 32, {n} images",
            "RandomSampler batches",
            "grouped (k=3)",
            "ratio",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 3 repeats")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, help="repeat-factor images (default 1e7; quick 1e6)")
    parser.add_argument("--indices", type=int, help="indices grouped (default 1e6; quick 2e5)")
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--only", choices=["repeat", "group", "padding"], help="one section")
    args = parser.parse_args()
    # detectron2's loop unbinds the factor tensor into one Python tensor per image: about 0.6 GB
    # per 1e6 images at its peak.
    images = args.images or (1_000_000 if args.quick else 10_000_000)
    indices = args.indices or (200_000 if args.quick else 1_000_000)
    sections = [f"torch threads: {torch.get_num_threads()}\n"]
    if args.only in (None, "repeat"):
        sections += ["## One epoch of repeat-factor indices\n"]
        sections += [repeat_factor_section(images, args.repeats) + "\n"]
    if args.only in (None, "group"):
        sections += ["## Aspect-ratio grouping of one epoch\n"]
        sections += [grouping_section(indices, args.repeats) + "\n"]
    if args.only in (None, "padding"):
        sections += ["## Padding with and without aspect-ratio grouping\n"]
        sections += [padding_section(4096, 320 if args.quick else 512, 16, args.repeats)]
    report = "\n".join(sections)
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
