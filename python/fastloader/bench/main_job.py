"""`python -m fastloader.bench`: stock PyTorch vs fastloader on a synthetic VOC-layout detection set

Sections: summary (the headline ratios), sampler (draw time and class balance), collate, padding
(aspect-ratio grouped batches against plain ones) and end to end (DataLoader batches/s per
num_workers on JPEG and pre-decoded .npy, against the decode floor). Every ratio is the median
of interleaved repeats with its min-max spread. Prints aligned tables, writes <out>/latest.md
and, with matplotlib installed, <out>/latest.png.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, WeightedRandomSampler

from .. import __version__
from ..collate.detection_collate import DetectionCollate, fast_detection_collate
from ..datasets.synthetic import SyntheticDetection
from ..io.decode import default_jpeg_decoder
from ..sampling.weighted import FastWeightedBatchSampler, FastWeightedSampler
from ..tuning.tuner import default_candidates, tune_num_workers
from .harness import (
    DEFAULT_OUT,
    Section,
    duration,
    interleaved,
    load_average,
    machine_line,
    ratio,
    run_rounds,
    spread,
    write_report,
)
from .loaders import (
    CONFIGS,
    LoaderResults,
    gpu_wait_share,
    measure_round,
    recommended_collate,
    setups,
)
from .padding import PaddingCase, padded_pixels
from .stock import detection_collate, detectron2_style_padding

__all__ = ["main"]


# --------------------------------------------------------------------------------------------
# Small helpers


class _Progress:
    """A tqdm bar on stderr when tqdm is installed, enabled and stderr is a terminal; tables go
    through ``write``, which clears the bar's line first, so a table never shares a line with it."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                # disable=None: no bar when stderr is not a terminal (a log file would get the
                # bar's carriage-return updates mixed into the tables' lines).
                self._bar = tqdm(
                    total=total,
                    desc="fastloader bench",
                    unit="step",
                    leave=False,
                    file=sys.stderr,
                    disable=None,
                )
            except ImportError:
                self._bar = None

    def step(self, what: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(what, refresh=False)
            self._bar.update(1)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --------------------------------------------------------------------------------------------
# Sampler and collate


#: Calls shorter than this are repeated within a round, so a round's figure is a median of many.
_BUDGET_S = 0.02


def _sampler_rows(weights: torch.Tensor, repeats: int, per_index: bool, batch: int = 32) -> list:
    n = len(weights)
    # Built once, outside the clock: what follows "build" is the per-epoch cost.
    # torch annotates weights as Sequence[float]; a tensor is what it documents and takes.
    stock_sampler = WeightedRandomSampler(weights, n)  # type: ignore[arg-type]
    stock_batches = BatchSampler(stock_sampler, batch, False)
    fast_sampler = FastWeightedSampler(weights, n, seed=0)
    fast_batches = FastWeightedBatchSampler(weights, n, batch, seed=0)
    # WeightedRandomSampler builds nothing (it keeps the weights and samples each epoch), so
    # building ours is a one-off cost to show, not a ratio.
    build = interleaved({"fast": lambda: FastWeightedSampler(weights, n, seed=0)}, repeats)
    rows = [[f"{n:,}", "build the sampler", "nothing to build", duration(build["fast"]),
             "one-off cost"]]  # fmt: skip
    cases = [
        # WeightedRandomSampler.__iter__ computes exactly this tensor, then yields from it.
        (
            "epoch as a tensor",
            lambda: torch.multinomial(stock_sampler.weights, n, True),
            fast_sampler.indices,
        ),
        (f"epoch of batches ({batch})", lambda: list(stock_batches), lambda: list(fast_batches)),
    ]
    if per_index:
        cases.insert(
            1, ("epoch via iter()", lambda: list(stock_sampler), lambda: list(fast_sampler))
        )
    for name, stock, fast in cases:
        times = interleaved({"stock": stock, "fast": fast}, repeats, budget_s=_BUDGET_S)
        rows.append(
            [f"{n:,}", name, duration(times["stock"]), duration(times["fast"]),
             ratio(times["stock"], times["fast"])]
        )  # fmt: skip
    return rows


def sampler_section(
    dataset: SyntheticDetection, big_n: int, repeats: int, progress: _Progress
) -> tuple[Section, dict[str, Any], list]:
    section = Section("Sampler: WeightedRandomSampler vs FastWeightedSampler")
    weights = dataset.image_class_weights()
    rows = []
    for n in (len(dataset), big_n):
        tiled = torch.from_numpy(np.resize(weights, n))  # a dataset of n images, same class mix
        rows += _sampler_rows(tiled, repeats, per_index=n == len(dataset))
        progress.step(f"sampler n={n:,}")
    section.table(["n", "draw", "stock", "fastloader", "speed-up (min-max)"], rows, left=2)
    section.note(
        "Building FastWeightedSampler (its alias table, once; WeightedRandomSampler builds "
        "nothing and pays per epoch instead), then one epoch of n weighted draws with replacement "
        f"from the built sampler; medians (min-max) of {repeats} interleaved repeats, speed-up = "
        "median of the per-repeat ratios. 'epoch of batches' is what a DataLoader consumes. "
        "WeightedRandomSampler refuses n > 2**24."
    )
    shares = _class_shares(dataset, weights)
    _class_table(section, dataset, shares)
    progress.step("class histogram")
    return section, shares, rows


def _class_shares(dataset: SyntheticDetection, weights: np.ndarray) -> dict[str, np.ndarray]:
    n = len(dataset)
    uniform = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    stock = torch.tensor(
        list(WeightedRandomSampler(torch.from_numpy(weights), n, generator=generator))  # type: ignore[arg-type]
    )
    fast = FastWeightedSampler(weights, n, seed=0).indices()
    shares = {
        name: dataset.class_histogram(indices) / n * 100
        for name, indices in (("uniform", uniform), ("stock", stock), ("fast", fast))
    }
    return {"dataset_share": dataset.class_histogram() / n * 100, **shares}


def _class_table(section: Section, dataset: SyntheticDetection, shares: dict) -> None:
    columns = ("dataset_share", "uniform", "stock", "fast")
    rows = [
        [dataset.classes[k], *(f"{shares[c][k]:.1f}" for c in columns)]
        for k in range(dataset.num_classes)
    ]
    present = shares["dataset_share"] > 0  # classes the dataset has at all

    def ratio(share: np.ndarray) -> str:
        share = share[present]
        return f"{share.max() / share.min():.1f}" if share.min() > 0 else "inf"

    rows.append(["commonest/rarest", *(ratio(shares[c]) for c in columns)])
    header = ["class", "images %", "one epoch, unweighted %", "WeightedRandomSampler %"]
    section.table([*header, "FastWeightedSampler %"], rows, left=1)
    section.note(
        f"Share of the {len(dataset)} images drawn in one epoch that contain each class; weights "
        "from dataset.image_class_weights() (read from the XML only)."
    )


def _collate_batches(batch_size: int) -> tuple[list, list]:
    rng = np.random.default_rng(0)

    def target() -> torch.Tensor:
        return torch.from_numpy(rng.random((int(rng.integers(0, 51)), 15), dtype=np.float32))

    def image(height: int, width: int) -> torch.Tensor:
        return torch.from_numpy(rng.integers(0, 256, (3, height, width), dtype=np.uint8))

    same = [(image(640, 640), target()) for _ in range(batch_size)]
    variable = [
        (image(int(rng.integers(480, 801)), int(rng.integers(480, 801))), target())
        for _ in range(batch_size)
    ]
    return same, variable


def collate_section(repeats: int, batch_size: int, progress: _Progress) -> tuple[Section, list]:
    section = Section("Collate: detection_collate vs fast_detection_collate")
    same, variable = _collate_batches(batch_size)
    padded_collate = DetectionCollate(size_divisibility=32)

    rows = []
    for name, stock, fast, batch in (
        (
            f"same size, {batch_size} x 3x640x640 uint8",
            lambda: detection_collate(same),
            lambda: fast_detection_collate(same),
            same,
        ),
        (
            f"variable size 480..800, {batch_size} x uint8, pad to /32",
            lambda: detectron2_style_padding(variable, 32),
            lambda: padded_collate(variable),
            variable,
        ),
    ):
        times = interleaved({"stock": stock, "fast": fast}, repeats, budget_s=_BUDGET_S)
        gigabytes = sum(image.numel() for image, _ in batch) / 1e9
        rows.append(
            [
                name,
                duration(times["stock"]),
                duration(times["fast"]),
                f"{gigabytes / statistics.median(times['fast']):.1f}",
                ratio(times["stock"], times["fast"]),
            ]
        )
        progress.step("collate")
    section.table(
        ["batch", "stock", "fastloader", "fastloader GB/s", "speed-up (min-max)"], rows, left=1
    )
    section.note(
        f"Main process, medians of {repeats} interleaved repeats; stock variable-size = "
        "detectron2-style padding in Python (new_full, then copy_ per image)."
    )
    return section, rows


def padding_section(repeats: int, batch_size: int, progress: _Progress) -> Section:
    """Padded pixels and collate time of weighted batches against aspect-ratio grouped ones."""
    section = Section("Padding: aspect-ratio grouped batches on VOC's shape mix")
    case = PaddingCase(count=2048, longer=512, batch_size=batch_size)
    plain_pixels, plain_share = padded_pixels(case.sizes, case.plain)
    grouped_pixels, grouped_share = padded_pixels(case.sizes, case.grouped)
    timed = 8
    plain, grouped = case.samples(case.plain[:timed]), case.samples(case.grouped[:timed])
    times = interleaved(
        {
            "plain": lambda: [fast_detection_collate(batch) for batch in plain],
            "grouped": lambda: [fast_detection_collate(batch) for batch in grouped],
        },
        repeats,
        budget_s=_BUDGET_S,
    )
    per_batch = {key: [value / timed for value in values] for key, values in times.items()}
    progress.step("padding")
    section.table(
        ["batches", "padded pixels per batch", "padded share", "collate per batch"],
        [
            [
                "FastWeightedBatchSampler",
                f"{plain_pixels:.3g}",
                f"{plain_share:.1%}",
                duration(per_batch["plain"], "ms"),
            ],
            [
                "AspectRatioGroupedBatchSampler (k=3)",
                f"{grouped_pixels:.3g}",
                f"{grouped_share:.1%}",
                duration(per_batch["grouped"], "ms"),
            ],
        ],
    )
    section.note(
        f"{plain_pixels / grouped_pixels:.1f}x fewer padded pixels with grouping; the collate "
        f"per batch is {ratio(times['plain'], times['grouped'])} faster. 2048 image sizes of "
        f"VOC's shape mix, longer side 512, batch {batch_size}, uniform weights; collate time "
        f"of {timed} batches, medians of {repeats} interleaved repeats (min-max)."
    )
    return section


# --------------------------------------------------------------------------------------------
# End to end


def _rate_cell(rate: float, floor: float) -> str:
    return f"{rate:.1f} ({100 * rate / floor:.0f}%)" if floor > 0 else f"{rate:.1f}"


def _end_to_end_rows(results: LoaderResults, candidates: Sequence[int]) -> list[list[str]]:
    rows = []
    for fmt in ("jpeg", "npy"):
        stock_floor = statistics.median(results.floor_batches(fmt, "stock"))
        fast_floor = statistics.median(results.floor_batches(fmt, "fastloader"))
        for workers in candidates:
            stock, only, fast = ((fmt, config, workers) for config in CONFIGS)
            rows.append(
                [
                    "JPEG" if fmt == "jpeg" else ".npy",
                    str(workers),
                    f"{stock_floor:.1f} / {fast_floor:.1f}",
                    _rate_cell(results.median(stock), stock_floor),
                    _rate_cell(results.median(only), stock_floor),
                    _rate_cell(results.median(fast), fast_floor),
                    ratio(results.rates[fast], results.rates[stock]),
                    ratio(results.rates[only], results.rates[stock]),
                ]
            )
    return rows


def end_to_end_section(
    jpeg: SyntheticDetection,
    npy: SyntheticDetection,
    candidates: list[int],
    seconds: float,
    rounds: int,
    shared_ring: bool,
    progress: _Progress,
    batch_size: int,
) -> tuple[Section, LoaderResults, int]:
    pin = torch.cuda.is_available()
    section = Section("End to end: DataLoader batches/s by num_workers, against the decode floor")
    loaders = setups(jpeg, npy, batch_size, shared_ring)
    floors = {
        (fmt, kind): loaders[(fmt, "stock" if kind == "stock" else "fastloader")].dataset
        for fmt in ("jpeg", "npy")
        for kind in ("stock", "fastloader")
    }
    results = LoaderResults(batch_size)
    # A discarded run first: the first loader of a process is slower (lazy initialisation).
    measure_round(LoaderResults(batch_size), loaders, {}, [0], 0.2, pin, lambda _: None)
    for _ in range(rounds):
        measure_round(results, loaders, floors, candidates, seconds, pin, progress.step)
    pick = results.report("jpeg", "fastloader", pin, seconds).best
    stock_pick = results.report("jpeg", "stock", pin, seconds).best
    section.table(
        [
            "images",
            "num_workers",
            "decode floor batches/s (stock / fastloader dataset)",
            "stock batches/s (% of floor)",
            "collate only",
            "fastloader",
            "fastloader / stock",
            "collate only / stock",
        ],
        _end_to_end_rows(results, candidates),
    )
    decoder = default_jpeg_decoder()
    ring = "the shared ring on" if shared_ring else "no shared ring"
    section.note(
        f"{len(jpeg)} images of {jpeg.params['max_size']}x{jpeg.params['max_size']}, "
        f"batch_size={batch_size}, pin_memory={pin}. Stock: a Pillow VOC dataset (ElementTree "
        "per sample, Image.open().convert('RGB'), pil_to_tensor layout; np.load for .npy) + "
        "WeightedRandomSampler + detection_collate. Collate only: the same with fastloader's "
        "collate. fastloader: VOCDetection (JPEG by "
        f"{decoder}, annotations packed from the XML once, .npy read straight into the batch: "
        "read_into_batch=True) + FastWeightedBatchSampler + "
        f"DetectionCollate (channels_last for JPEG, {ring}). Decode floor: one process "
        "per core doing nothing but dataset[i], in batches/s; % of floor against the floor of "
        f"the dataset the loader reads. Medians of {rounds} interleaved rounds of {seconds:g} s "
        "per setting after warm-up; ratios are medians of per-round ratios (min-max). "
        f"tune_num_workers picks num_workers={pick} for fastloader on JPEG, {stock_pick} for "
        "stock."
    )
    _cuda_note(section, loaders, batch_size, pick)
    return section, results, pick


def _cuda_note(section: Section, loaders: dict, batch_size: int, workers: int) -> None:
    if not torch.cuda.is_available():
        section.note(
            "GPU step (pin_memory=True, .to('cuda', non_blocking=True), a fixed GPU step): "
            "not measured: no CUDA device."
        )
        return
    rows = []
    for config in ("stock", "fastloader"):
        share, rate = gpu_wait_share(loaders[("jpeg", config)], batch_size, workers, 30)
        rows.append([config, f"{rate:.1f}", f"{100 * share:.0f}%"])
    section.table(["JPEG set-up", "batches/s with a GPU step", "time waiting for data"], rows)
    section.note(
        f"num_workers={workers}, pin_memory=True, each batch .to('cuda', non_blocking=True) and "
        "a fixed ~20 ms GPU step (matmuls, then a synchronize as loss.item() does); 30 batches "
        "after one warm-up batch. Time waiting for data: the share of the loop spent in next()."
    )


# --------------------------------------------------------------------------------------------
# Summary, annotations, plot


def summary_section(
    results: LoaderResults,
    pick: int,
    candidates: Sequence[int],
    sampler_rows: list,
    collate_rows: list,
) -> Section:
    section = Section("Summary: headline ratios")
    rows = []
    cases = [
        ("jpeg", pick, "fastloader", "JPEG, num_workers=%d (tune_num_workers' pick): full stack")
    ]
    cases.append(
        ("jpeg", pick, "collate only", "JPEG, num_workers=%d: collate only, stock dataset")
    )
    npy_workers = 2 if 2 in candidates else max(candidates)
    cases.append(("npy", npy_workers, "fastloader", ".npy, num_workers=%d: full stack"))
    if 0 in candidates:
        cases.append(("npy", 0, "fastloader", ".npy, num_workers=%d: full stack"))
    for fmt, workers, config, title in cases:
        floor_kind = "fastloader" if config == "fastloader" else "stock"
        floor = statistics.median(results.floor_batches(fmt, floor_kind))
        stock, fast = (fmt, "stock", workers), (fmt, config, workers)
        rows.append(
            [
                title % workers,
                f"{results.median(stock):.1f} batches/s",
                f"{results.median(fast):.1f} batches/s",
                ratio(results.rates[fast], results.rates[stock]),
                f"{floor:.1f} batches/s ({100 * results.median(fast) / floor:.0f}%)",
            ]
        )
    big = sampler_rows[-1]
    rows.append([f"sampler, n={big[0]}: {big[1]}", *big[2:5], "-"])
    same = collate_rows[0]
    rows.append([f"collate: {same[0]}", same[1], same[2], same[4], "-"])
    section.table(
        [
            "case",
            "stock",
            "fastloader",
            "fastloader / stock (min-max)",
            "decode floor (share reached)",
        ],
        rows,
        left=1,
    )
    section.note(
        "Medians of interleaved rounds; the ratio is the median of per-round ratios (min-max). "
        "Full stack: VOCDetection + FastWeightedBatchSampler + DetectionCollate(shared_ring=True"
        ", channels_last for JPEG) against a Pillow dataset + WeightedRandomSampler + "
        "detection_collate. The decode floor is that of the dataset the loader reads (the stock "
        "one for 'collate only'): one process per core doing nothing but dataset[i]."
    )
    return section


def annotation_section(count: int, folder: Path) -> Section:
    """Reading labels, weights and sizes of ``count`` VOC XML files (written once, then cached)."""
    from ..datasets.voc import VOC_CLASSES, VOCDetection

    annotations = folder / "Annotations"
    existing = len(list(annotations.glob("*.xml"))) if annotations.is_dir() else 0
    if existing != count:
        shutil.rmtree(annotations, ignore_errors=True)
        annotations.mkdir(parents=True)
        obj = (
            "<object><name>{}</name><pose>Left</pose><truncated>0</truncated><difficult>{}"
            "</difficult><bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax>"
            "</bndbox></object>"
        )
        for i in range(count):
            objects = "".join(
                obj.format(VOC_CLASSES[(i + k) % 20], int(k == 2)) for k in range(1 + i % 4)
            )
            (annotations / f"{i:06d}.xml").write_text(
                f"<annotation><folder>VOC2007</folder><filename>{i:06d}.jpg</filename><size>"
                f"<width>500</width><height>375</height><depth>3</depth></size>{objects}</annotation>"
            )
    started = time.perf_counter()
    dataset = VOCDetection(folder, classes=VOC_CLASSES)
    listed = time.perf_counter()
    dataset.labels()
    read = time.perf_counter()
    dataset.image_class_weights(), dataset.image_sizes(), dataset.class_histogram()
    done = time.perf_counter()
    section = Section("Annotations: labels, weights and sizes from the XML alone")
    section.table(
        [
            "files",
            "list the folder s",
            "read + pack every XML s",
            "per file us",
            "weights, sizes, histogram s",
        ],
        [
            [
                f"{count:,}",
                f"{listed - started:.2f}",
                f"{read - listed:.2f}",
                f"{(read - listed) / count * 1e6:.0f}",
                f"{done - read:.3f}",
            ]
        ],
    )
    section.note(
        "VOC2007-style XML files of 1-4 objects each (page cache warm); no image is decoded. "
        "Samples read afterwards use the packed arrays, so no sample parses XML either."
    )
    return section


def _plot(
    path: Path,
    dataset: SyntheticDetection,
    shares: dict,
    results: LoaderResults | None,
    candidates: Sequence[int],
) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written (pip install matplotlib)"
    figure, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    positions = np.arange(dataset.num_classes)
    axes[0].bar(positions - 0.2, shares["uniform"], width=0.4, label="one epoch, unweighted")
    axes[0].bar(positions + 0.2, shares["fast"], width=0.4, label="FastWeightedSampler")
    axes[0].set_xticks(positions)
    axes[0].set_xlabel("class")
    axes[0].set_ylabel("% of drawn images containing the class")
    axes[0].set_title("Class balance of one epoch")
    axes[0].legend()
    if results is not None:
        for axis, fmt, title in (
            (axes[1], "jpeg", "JPEG (decode-bound)"),
            (axes[2], "npy", ".npy (loader-bound)"),
        ):
            _plot_loaders(axis, results, fmt, candidates)
            axis.set_title(f"DataLoader throughput, {title}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return f"plot written to {path}"


def _plot_loaders(axis: Any, results: LoaderResults, fmt: str, candidates: Sequence[int]) -> None:
    for config, colour in zip(CONFIGS, ("tab:red", "tab:orange", "tab:blue"), strict=True):
        rates = [results.rates[(fmt, config, w)] for w in candidates]
        middle = [statistics.median(r) for r in rates]
        error = [
            [m - min(r) for m, r in zip(middle, rates, strict=True)],
            [max(r) - m for m, r in zip(middle, rates, strict=True)],
        ]
        axis.errorbar(
            candidates, middle, yerr=error, marker="o", capsize=3, color=colour, label=config
        )
    for kind, style in (("fastloader", "--"), ("stock", ":")):
        floor = statistics.median(results.floor_batches(fmt, kind))
        axis.axhline(floor, linestyle=style, color="black", label=f"decode floor, {kind} dataset")
    axis.set_xticks(list(candidates))
    axis.set_ylim(0, axis.get_ylim()[1] * 1.3)  # room for the legend above the lines
    axis.set_xlabel("num_workers")
    axis.set_ylabel("batches/s (median, min-max)")
    axis.legend(fontsize=8, loc="upper right", ncol=2)


# --------------------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fastloader.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller settings: under a minute")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for latest.md and latest.png (default: {DEFAULT_OUT}, under the current "
        "folder; `make bench-publish` refreshes the committed bench/results)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="dataset folder (default: a cache under the temp directory)",
    )
    parser.add_argument("--num-images", type=int, default=None, help="default 128, --quick 64")
    parser.add_argument(
        "--image-size", type=int, default=None, help="longer side; default 640, --quick 320"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="default 32, --quick 16 (at 640x640, 32 images make a 39 MB batch: above glibc's "
        "32 MB mmap threshold, so a fresh batch is page-faulted, as real batches are)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="timed window per setting")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument(
        "--candidates",
        type=int,
        nargs="+",
        default=None,
        help="num_workers values (default: 0-4, then 8, 16, ... below the CPU count, then the CPU "
        "count; 0-2 on a 2-CPU machine)",
    )
    parser.add_argument(
        "--sampler-n", type=int, default=None, help="the large n of the sampler section"
    )
    parser.add_argument(
        "--no-ring", action="store_true", help="fastloader's collate without the shared ring"
    )
    parser.add_argument(
        "--annotations", type=int, default=0, help="also time reading N generated XML files"
    )
    parser.add_argument(
        "--annotations-only",
        action="store_true",
        help="only time reading --annotations N XML files; writes <out>/annotations.md",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads in the main process (default 1, as in DataLoader workers: on "
        "a busy machine torch's multi-threaded copies spin and run up to 10x slower, which "
        "would flatter fastloader)",
    )
    parser.add_argument(
        "--ring-only",
        action="store_true",
        help="only compare fastloader's set-up with and without the shared ring; writes "
        "<out>/ring.md",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def _header(command: str, jpeg: SyntheticDetection, batch_size: int, load: str) -> list[str]:
    size = jpeg.params["max_size"]
    extra = f", fastloader {__version__}, JPEG decoder {default_jpeg_decoder()}"
    return [
        "# fastloader bench",
        "",
        f"{machine_line(command, extra, load)} Dataset: {len(jpeg)} synthetic {size}x{size} JPEG "
        f"images (and their pre-decoded .npy copies), {jpeg.num_classes} imbalanced classes, "
        f"0-50 boxes with 5 landmarks each; batch_size={batch_size}.",
        "",
    ]


def _annotations_only(args: argparse.Namespace, command: str) -> int:
    count = args.annotations or 100_000
    load = load_average()
    root = args.root or Path(tempfile.gettempdir()) / f"fastloader-annotations-{count}"
    section = annotation_section(count, root)
    _write_one_section(
        args.out / "annotations.md", "reading VOC annotations", command, load, "", section
    )
    return 0


def _write_one_section(
    path: Path, title: str, command: str, load: str, extra: str, section: Section
) -> None:
    """Prints one section and writes it to path under a dated header naming the command."""
    print(section.text())
    write_report(path, f"fastloader: {title}", command, [section], extra, load)


def ring_section(
    datasets: dict[str, SyntheticDetection], candidates: Sequence[int], seconds: float, rounds: int
) -> Section:
    """fastloader's full set-up with and without the shared ring, interleaved per round."""
    collates = {
        (fmt, ring): recommended_collate(fmt, ring) for fmt in datasets for ring in (True, False)
    }

    def rate(fmt: str, workers: int, ring: bool) -> float:
        dataset = datasets[fmt]
        batches = FastWeightedBatchSampler(dataset.image_class_weights(), len(dataset), 32, seed=0)
        return tune_num_workers(
            dataset, 32, batch_sampler=batches, collate_fn=collates[(fmt, ring)],
            candidates=[workers], seconds=seconds, pin_memory=torch.cuda.is_available(),
        ).rows[0].batches_per_s  # fmt: skip

    keys = [(fmt, workers, ring) for fmt in datasets for workers in candidates
            for ring in (True, False)]  # fmt: skip
    rates = run_rounds({key: partial(rate, *key) for key in keys}, rounds)
    rows = []
    for fmt in datasets:
        for workers in candidates:
            with_ring, plain = rates[(fmt, workers, True)], rates[(fmt, workers, False)]
            rows.append(
                [fmt, workers, spread(with_ring, "", "{:.1f}".format)]
                + [spread(plain, "", "{:.1f}".format), ratio(with_ring, plain)]
            )
    section = Section("Shared ring: fastloader's set-up with and without it")
    section.table(
        ["images", "num_workers", "ring batches/s", "no ring batches/s", "ring / no ring"], rows
    )
    rings = {fmt: collates[(fmt, True)].ring for fmt in datasets}
    stats = {fmt: ring.stats() for fmt, ring in rings.items() if ring is not None}
    section.note(
        f"batch_size=32, medians (min-max) of {rounds} interleaved rounds of {seconds:g} s. "
        f"Ring statistics at the end: {stats}."
    )
    return section


def _ring_only(args: argparse.Namespace, command: str) -> int:
    load = load_average()
    size = args.image_size or 640
    common: dict[str, Any] = dict(
        num_images=args.num_images or 128, min_size=size, max_size=size, seed=0
    )
    datasets = {
        fmt: SyntheticDetection(args.root, image_format=fmt, read_into_batch=True, **common)
        for fmt in ("jpeg", "npy")
    }
    candidates = args.candidates or default_candidates()
    section = ring_section(datasets, candidates, args.seconds or 0.6, max(1, args.rounds))
    _write_one_section(
        args.out / "ring.md",
        "the shared ring in the recommended set-up",
        command,
        load,
        f", {size}x{size} images",
        section,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    started = time.perf_counter()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    quick = args.quick
    num_images = args.num_images or (64 if quick else 128)
    size = args.image_size or (320 if quick else 640)
    batch_size = args.batch_size or (16 if quick else 32)
    seconds = args.seconds or (0.25 if quick else 0.4)
    rounds = max(1, args.rounds)
    repeats = max(3, rounds)
    candidates = args.candidates or default_candidates()
    sampler_n = args.sampler_n or (200_000 if quick else 1_000_000)
    steps = 1 + 3 + 2 + 1 + rounds * (4 + 6 * len(candidates)) + 2
    given = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m fastloader.bench", *given])
    if args.annotations_only:
        return _annotations_only(args, command)
    if args.ring_only:
        return _ring_only(args, command)
    load = load_average()
    progress = _Progress(steps, enabled=not args.no_progress)
    try:
        common: dict[str, Any] = dict(num_images=num_images, min_size=size, max_size=size, seed=0)
        jpeg = SyntheticDetection(args.root, **common)
        # read_into_batch: fastloader's set-up reads each .npy straight into its batch (the
        # floor still calls dataset[i], which reads every image whole).
        npy = SyntheticDetection(args.root, image_format="npy", read_into_batch=True, **common)
        progress.step("dataset")
        for path in (*jpeg.root.glob("JPEGImages/*"), *jpeg.root.glob("Predecoded/*")):
            path.read_bytes()  # into the page cache, so the first setting measured is not slower
        progress.write(
            f"dataset: {jpeg.root} ({len(jpeg)} images {size}x{size}, JPEG and .npy, "
            f"{'written now' if jpeg.generated else 'cached'})\n"
        )
        sampler, shares, sampler_rows = sampler_section(jpeg, sampler_n, repeats, progress)
        progress.write(sampler.text())
        collate, collate_rows = collate_section(repeats, batch_size, progress)
        progress.write(collate.text())
        padding = padding_section(repeats, batch_size, progress)
        progress.write(padding.text())
        end_to_end, results, pick = end_to_end_section(
            jpeg, npy, candidates, seconds, rounds, not args.no_ring, progress, batch_size
        )
        progress.write(end_to_end.text())
        summary = summary_section(results, pick, candidates, sampler_rows, collate_rows)
        progress.write(summary.text())
        sections = [summary, sampler, collate, padding, end_to_end]
        if args.annotations:
            folder = jpeg.root.parent / f"fastloader-annotations-{args.annotations}"
            sections.append(annotation_section(args.annotations, folder))
            progress.write(sections[-1].text())
        args.out.mkdir(parents=True, exist_ok=True)
        plot_message = _plot(args.out / "latest.png", jpeg, shares, results, candidates)
        progress.step("plot")
        elapsed = time.perf_counter() - started
        footer = [f"{plot_message}. Total bench time {elapsed:.0f} s.", ""]
        body = "\n".join(section.markdown() for section in sections)
        (args.out / "latest.md").write_text(
            "\n".join(_header(command, jpeg, batch_size, load)) + "\n" + body + "\n".join(footer)
        )
        progress.step("write")
    finally:
        progress.close()
    print(plot_message)
    print(f"results written to {args.out / 'latest.md'} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
