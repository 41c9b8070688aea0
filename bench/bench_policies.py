"""Detection sampling policies against the stock Python algorithms, ratios in one run.

    python bench/bench_policies.py            # 1e7 images for repeat factors, 1e6 indices grouped
    python bench/bench_policies.py --quick    # 1e6 and 2e5: a minute on a busy machine
    python bench/bench_policies.py --markdown build/bench-results/policies.md

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
import itertools
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import BatchSampler, RandomSampler, Sampler

from fastloader import (
    AspectRatioGroupedBatchSampler,
    RepeatFactorSampler,
    create_aspect_ratio_groups,
    fast_detection_collate,
)
from fastloader.bench.harness import duration, interleaved, machine_line, markdown_table, ratio
from fastloader.bench.padding import padded_pixels
from fastloader.bench.stock import detectron2_repeat_factor_epoch, torchvision_grouped_batches
from fastloader.datasets.synthetic import voc_shape_sizes


def exhaust(iterable: Iterable) -> None:
    deque(iterable, maxlen=0)


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
    epochs = itertools.count()

    def fastloader_epoch() -> object:
        ours.set_epoch(next(epochs))  # a fresh epoch each time: nothing cached
        return ours.indices()

    times = interleaved(
        {
            "detectron2": lambda: detectron2_repeat_factor_epoch(int_part, frac_part, g),
            "ours": fastloader_epoch,
        },
        repeats,
    )
    return markdown_table(
        ["images", "detectron2 algorithm", "RepeatFactorSampler.indices()", "ratio"],
        [
            [
                f"{n:.0e}",
                duration(times["detectron2"]),
                duration(times["ours"]),
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
            torchvision_grouped_batches(s, group_list, 32)
        )
        cases[("ours", name)] = lambda g=ours: exhaust(g)
    times = interleaved(cases, repeats)
    rows = [
        [
            f"{n:.0e} from {name}",
            duration(times[("torchvision", name)]),
            duration(times[("ours", name)]),
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
    return markdown_table(header, rows, left=1)


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
    per_batch = {key: [value / timed_batches for value in values] for key, values in times.items()}
    rows = [
        [
            "padded pixels per batch",
            f"{plain_pad:.4g} ({plain_fraction:.1%})",
            f"{grouped_pad:.4g} ({grouped_fraction:.1%})",
            f"{plain_pad / grouped_pad:.1f}x fewer",
        ],
        [
            "fast_detection_collate per batch",
            duration(per_batch["plain"], "ms"),
            duration(per_batch["grouped"], "ms"),
            ratio(times["plain"], times["grouped"]),
        ],
    ]
    return markdown_table(
        [
            f"VOC shape mix, longer side {longer}, batch 32, {n} images",
            "RandomSampler batches",
            "grouped (k=3)",
            "ratio",
        ],
        rows,
        left=1,
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
    command = " ".join(["python bench/bench_policies.py", *sys.argv[1:]])
    sections = [f"{machine_line(command)}\n"]
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
        os.makedirs(os.path.dirname(args.markdown) or ".", exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
