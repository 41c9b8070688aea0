"""`python -m fastloader.bench`: stock PyTorch vs fastloader on a synthetic imbalanced detection set

Sections: sampler (draw time and class balance), collate (when fast_detection_collate is in this
build) and end to end (DataLoader batches/s per num_workers, via tune_num_workers). Prints aligned
tables with ratios, writes <out>/latest.md and, with matplotlib installed, <out>/latest.png.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, WeightedRandomSampler

from . import __version__
from .datasets import SyntheticDetection
from .sampler import FastWeightedBatchSampler, FastWeightedSampler
from .tuner import TuneReport, tune_num_workers

from .collate import DetectionCollate, fast_detection_collate


def detection_collate(batch: Sequence[Any]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The stock way, as detection code has written it for years (the baseline)."""
    imgs, targets = [], []
    for sample in batch:
        imgs.append(sample[0])
        targets.append(torch.FloatTensor(sample[1]))
    return torch.stack(imgs, 0), targets


def pad_like_detectron2(
    images: Sequence[torch.Tensor], size_divisibility: int = 32
) -> torch.Tensor:
    """detectron2 ImageList-style padding in Python: one new_full, then a copy_ per image."""
    height = max(image.shape[1] for image in images)
    width = max(image.shape[2] for image in images)
    if size_divisibility > 1:
        height = -(-height // size_divisibility) * size_divisibility
        width = -(-width // size_divisibility) * size_divisibility
    out = images[0].new_full((len(images), images[0].shape[0], height, width), 0)
    for slot, image in zip(out, images):
        slot[:, : image.shape[1], : image.shape[2]].copy_(image)
    return out


# --------------------------------------------------------------------------------------------
# Small helpers


class _Progress:
    """A tqdm bar when tqdm is installed and stderr is a terminal or forced; else plain prints."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, desc="fastloader bench", unit="step", leave=False)
            except ImportError:
                self._bar = None

    def step(self, what: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(what, refresh=False)
            self._bar.update(1)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _seconds(function: Callable[[], Any], repeats: int) -> float:
    """Best per-call time of ``repeats`` runs; calls under a millisecond are looped so the clock
    resolution and timer overhead do not dominate."""
    started = time.perf_counter()
    function()
    once = time.perf_counter() - started
    loops = 1 if once >= 1e-3 else min(10_000, int(2e-2 / max(once, 1e-7)) + 1)
    best = once if loops == 1 else float("inf")
    for _ in range(repeats if loops > 1 else repeats - 1):
        started = time.perf_counter()
        for _ in range(loops):
            function()
        best = min(best, (time.perf_counter() - started) / loops)
    return best


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).rjust(width) for cell, width in zip(line, widths))
        for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    milliseconds = seconds * 1e3
    return f"{milliseconds:.1f}" if milliseconds >= 10 else f"{milliseconds:.3g}"


def _ratio(stock: float, fast: float) -> str:
    return f"{stock / fast:.2f}x" if fast > 0 else "-"


class _Section:
    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[tuple[str, Any]] = []

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.parts.append(("table", (list(header), [list(map(str, row)) for row in rows])))

    def note(self, text: str, markdown: str | None = None) -> None:
        self.parts.append(("note", (text, text if markdown is None else markdown)))

    def text(self) -> str:
        out = [f"== {self.title} =="]
        for kind, value in self.parts:
            out.append(_text_table(*value) if kind == "table" else value[0])
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"## {self.title}", ""]
        for kind, value in self.parts:
            out.append(_markdown_table(*value) if kind == "table" else value[1])
            out.append("")
        return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Sections


def _sampler_rows(weights: torch.Tensor, runs: int, per_index: bool, batch: int = 32) -> list:
    n = len(weights)
    stock_build = _seconds(lambda: WeightedRandomSampler(weights, n), runs)
    fast_build = _seconds(lambda: FastWeightedSampler(weights, n, seed=0), runs)
    rows = [
        [
            f"{n:,}",
            "build the sampler",
            _ms(stock_build),
            _ms(fast_build),
            _ratio(stock_build, fast_build),
        ]
    ]
    # Built once, outside the clock: what follows is the per-epoch cost.
    stock_sampler = WeightedRandomSampler(weights, n)
    stock_batches = BatchSampler(stock_sampler, batch, False)
    fast_sampler = FastWeightedSampler(weights, n, seed=0)
    fast_batches = FastWeightedBatchSampler(weights, n, batch, seed=0)
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
        stock_s = _seconds(stock, runs)
        fast_s = _seconds(fast, runs)
        rows.append([f"{n:,}", name, _ms(stock_s), _ms(fast_s), _ratio(stock_s, fast_s)])
    return rows


def sampler_section(
    dataset: SyntheticDetection,
    big_n: int,
    repeats: int,
    per_index_at_big_n: bool,
    progress: _Progress,
) -> tuple[_Section, dict[str, Any]]:
    section = _Section("Sampler: WeightedRandomSampler vs FastWeightedSampler")
    weights = dataset.image_class_weights()
    rows = []
    for n in (len(dataset), big_n):
        tiled = torch.from_numpy(np.resize(weights, n))  # a dataset of n images, same class mix
        per_index = n == len(dataset) or per_index_at_big_n
        rows += _sampler_rows(tiled, repeats if n < big_n else 1, per_index)
        progress.step(f"sampler n={n:,}")
    section.table(["n", "draw", "stock ms", "fastloader ms", "speed-up"], rows)
    section.note(
        "Building each sampler, then one epoch of n weighted draws with replacement from "
        f"the built sampler (best of {repeats} at the dataset's n, one run at "
        f"n={big_n:,}); 'epoch of batches' is what a DataLoader consumes. "
        "WeightedRandomSampler refuses n > 2**24."
    )

    n = len(dataset)
    uniform = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    stock = torch.tensor(
        list(
            WeightedRandomSampler(
                torch.from_numpy(weights), n, generator=torch.Generator().manual_seed(0)
            )
        )
    )
    fast = FastWeightedSampler(weights, n, seed=0).indices()
    shares = {
        name: dataset.class_histogram(indices) / n * 100
        for name, indices in (("uniform", uniform), ("stock", stock), ("fast", fast))
    }
    dataset_share = dataset.class_histogram() / n * 100
    hist_rows = [
        [
            dataset.classes[k],
            f"{dataset_share[k]:.1f}",
            f"{shares['uniform'][k]:.1f}",
            f"{shares['stock'][k]:.1f}",
            f"{shares['fast'][k]:.1f}",
        ]
        for k in range(dataset.num_classes)
    ]

    present = dataset_share > 0  # classes the dataset has at all

    def spread(share: np.ndarray) -> str:
        share = share[present]
        return f"{share.max() / share.min():.1f}" if share.min() > 0 else "inf"

    hist_rows.append(
        [
            "commonest/rarest",
            spread(dataset_share),
            spread(shares["uniform"]),
            spread(shares["stock"]),
            spread(shares["fast"]),
        ]
    )
    section.table(
        [
            "class",
            "images %",
            "one epoch, unweighted %",
            "WeightedRandomSampler %",
            "FastWeightedSampler %",
        ],
        hist_rows,
    )
    section.note(
        f"Share of the {n} images drawn in one epoch that contain each class; weights "
        "from dataset.image_class_weights() (read from the XML only)."
    )
    progress.step("class histogram")
    return section, {"dataset_share": dataset_share, **shares}


def collate_section(repeats: int, batch_size: int, progress: _Progress) -> _Section:
    section = _Section("Collate: detection_collate vs fast_detection_collate")
    rng = np.random.default_rng(0)

    def target() -> torch.Tensor:
        return torch.from_numpy(rng.random((int(rng.integers(0, 51)), 15), dtype=np.float32))

    same = [
        (torch.from_numpy(rng.integers(0, 256, (3, 640, 640), dtype=np.uint8)), target())
        for _ in range(batch_size)
    ]
    variable = [
        (
            torch.from_numpy(
                rng.integers(
                    0,
                    256,
                    (3, int(rng.integers(480, 801)), int(rng.integers(480, 801))),
                    dtype=np.uint8,
                )
            ),
            target(),
        )
        for _ in range(batch_size)
    ]
    padded_collate = DetectionCollate(size_divisibility=32)

    def stock_variable() -> Any:
        return pad_like_detectron2([image for image, _ in variable], 32), [
            torch.FloatTensor(t) for _, t in variable
        ]

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
            stock_variable,
            lambda: padded_collate(variable),
            variable,
        ),
    ):
        stock_s, fast_s = _seconds(stock, repeats), _seconds(fast, repeats)
        gigabytes = sum(image.numel() * image.element_size() for image, _ in batch) / 1e9
        rows.append(
            [name, _ms(stock_s), _ms(fast_s), f"{gigabytes / fast_s:.1f}", _ratio(stock_s, fast_s)]
        )
        progress.step("collate")
    section.table(["batch", "stock ms", "fastloader ms", "fastloader GB/s", "speed-up"], rows)
    section.note(
        f"Main process, best of {repeats}; stock variable-size = detectron2-style "
        "padding in Python (new_full, then copy_ per image)."
    )
    return section


def end_to_end_section(
    dataset: SyntheticDetection,
    batch_size: int,
    candidates: list[int],
    seconds: float,
    rounds: int,
    progress: _Progress,
) -> tuple[_Section, TuneReport, TuneReport]:
    pin = torch.cuda.is_available()
    weights = dataset.image_class_weights()
    n = len(dataset)
    fast_collate = (
        fast_detection_collate if fast_detection_collate is not None else detection_collate
    )
    section = _Section("End to end: DataLoader batches/s by num_workers")

    def step(label: str) -> Callable[[int], None]:
        return lambda workers: progress.step(f"{label} num_workers={workers}")

    # A discarded run first: the very first loader of a process is measurably slower (lazy
    # initialisation, cold caches), which would otherwise count against whichever runs first.
    tune_num_workers(
        dataset,
        batch_size,
        sampler=WeightedRandomSampler(weights, n),
        collate_fn=detection_collate,
        pin_memory=pin,
        candidates=[0],
        seconds=min(seconds, 0.5),
    )
    stock_rows: dict[int, Any] = {}
    fast_rows: dict[int, Any] = {}
    # One setting at a time, stock then fastloader, so drift in a shared machine's load hits
    # both; best of `rounds`, the usual defence against other programs stealing the cores.
    def loader_setups():
        yield "stock", stock_rows, dict(
            sampler=WeightedRandomSampler(weights, n), collate_fn=detection_collate
        )
        yield "fastloader", fast_rows, dict(
            batch_sampler=FastWeightedBatchSampler(weights, n, batch_size, seed=0),
            collate_fn=fast_collate,
        )

    for _ in range(rounds):
        for workers in candidates:
            for label, best_rows, setup in loader_setups():
                row = tune_num_workers(
                    dataset,
                    batch_size,
                    pin_memory=pin,
                    candidates=[workers],
                    seconds=seconds,
                    progress=step(label),
                    **setup,
                ).rows[0]
                if workers not in best_rows or row.batches_per_s > best_rows[workers].batches_per_s:
                    best_rows[workers] = row
    stock_rows = [stock_rows[workers] for workers in candidates]
    fast_rows = [fast_rows[workers] for workers in candidates]
    stock = TuneReport.from_rows(stock_rows, batch_size=batch_size, pin_memory=pin, seconds=seconds)
    fast = TuneReport.from_rows(fast_rows, batch_size=batch_size, pin_memory=pin, seconds=seconds)
    rows = []
    for workers in candidates:
        s, f = stock.row(workers), fast.row(workers)
        rows.append(
            [
                str(workers),
                f"{s.batches_per_s:.1f}",
                f"{f.batches_per_s:.1f}",
                _ratio(f.batches_per_s, s.batches_per_s),
                f"{s.cpu_percent:.0f}",
                f"{f.cpu_percent:.0f}",
                f"{s.peak_rss_bytes / 2**20:.0f}",
                f"{f.peak_rss_bytes / 2**20:.0f}",
            ]
        )
    section.table(
        [
            "num_workers",
            "stock batches/s",
            "fastloader batches/s",
            "fastloader/stock",
            "stock CPU %",
            "fastloader CPU %",
            "stock RSS MiB",
            "fastloader RSS MiB",
        ],
        rows,
    )
    what = (
        "FastWeightedBatchSampler + fast_detection_collate"
        if fast_detection_collate is not None
        else "FastWeightedBatchSampler + the stock detection_collate (fast_detection_collate "
        "is not in this build)"
    )
    section.note(
        f"Stock: WeightedRandomSampler + detection_collate. fastloader: {what}. "
        f"batch_size={batch_size}, pin_memory={pin}, best of {rounds} rounds of {seconds:g} s "
        f"per setting after warm-up, settings interleaved. tune_num_workers picks "
        f"num_workers={fast.best} for fastloader "
        f"({fast.best_row.batches_per_s:.1f} batches/s) and {stock.best} for stock."
    )
    for label, report in (("fastloader", fast), ("stock", stock)):
        title = f"tune_num_workers report, {label}:"
        section.note(f"{title}\n{report.table()}", f"{title}\n\n{report.to_markdown()}")
    return section, stock, fast


def _plot(
    path: Path,
    dataset: SyntheticDetection,
    shares: dict[str, Any] | None,
    stock: TuneReport | None,
    fast: TuneReport | None,
) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written (pip install matplotlib)"
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    if shares is not None:
        positions = np.arange(dataset.num_classes)
        axes[0].bar(positions - 0.2, shares["uniform"], width=0.4, label="one epoch, unweighted")
        axes[0].bar(positions + 0.2, shares["fast"], width=0.4, label="FastWeightedSampler")
        axes[0].set_xticks(positions)
        axes[0].set_xlabel("class")
        axes[0].set_ylabel("% of drawn images containing the class")
        axes[0].set_title("Class balance of one epoch")
        axes[0].legend()
    if stock is not None and fast is not None:
        for report, label in ((stock, "stock"), (fast, "fastloader")):
            workers = [row.num_workers for row in report.rows]
            axes[1].plot(
                workers, [row.batches_per_s for row in report.rows], marker="o", label=label
            )
        axes[1].set_xticks([row.num_workers for row in stock.rows])
        axes[1].set_ylim(bottom=0)
        axes[1].set_xlabel("num_workers")
        axes[1].set_ylabel("batches/s")
        axes[1].set_title("DataLoader throughput")
        axes[1].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return f"plot written to {path}"


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
        default=Path("bench/results"),
        help="folder for latest.md and latest.png (default: bench/results)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="dataset folder (default: a cache under the temp directory)",
    )
    parser.add_argument("--num-images", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None, help="height and width")
    parser.add_argument("--image-format", choices=("png", "npy"), default="png")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=None, help="timed window per setting")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="end-to-end rounds, best kept (default 3, --quick 2)",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        nargs="+",
        default=None,
        help="num_workers values (default: 0 .. cpu count)",
    )
    parser.add_argument(
        "--sampler-n", type=int, default=10_000_000, help="the large n of the sampler section"
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    started = time.perf_counter()
    num_images = args.num_images or (64 if args.quick else 256)
    size = args.image_size or 640
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    rounds = args.rounds or (2 if args.quick else 3)
    repeats = 2 if args.quick else 5
    candidates = args.candidates or list(range((os.cpu_count() or 1) + 1))
    steps = (
        2 + 1 + 2 + 2 * rounds * len(candidates) + 1
    )  # dataset, sampler x3, collate x2, tuner, write
    progress = _Progress(steps, enabled=not args.no_progress)
    try:
        dataset = SyntheticDetection(
            args.root,
            num_images,
            min_size=size,
            max_size=size,
            image_format=args.image_format,
            seed=0,
            progress=not args.no_progress,
        )
        progress.step("dataset")
        for image in sorted((dataset.root / "images").iterdir()):
            image.read_bytes()  # into the page cache, so the first setting measured is not slower
        progress.write(
            f"dataset: {dataset.root} ({len(dataset)} images {size}x{size} "
            f"{args.image_format}, {'written now' if dataset.generated else 'cached'})"
        )
        sections = []
        sampler, shares = sampler_section(
            dataset, args.sampler_n, repeats, per_index_at_big_n=not args.quick, progress=progress
        )
        sections.append(sampler)
        progress.write(sampler.text())
        collate = collate_section(repeats, args.batch_size, progress)
        sections.append(collate)
        progress.write(collate.text())
        end_to_end, stock, fast = end_to_end_section(
            dataset, args.batch_size, candidates, seconds, rounds, progress
        )
        sections.append(end_to_end)
        progress.write(end_to_end.text())

        args.out.mkdir(parents=True, exist_ok=True)
        plot_message = _plot(args.out / "latest.png", dataset, shares, stock, fast)
        given = list(sys.argv[1:] if argv is None else argv)
        command = " ".join(["python -m fastloader.bench", *given])
        cuda = "available" if torch.cuda.is_available() else "not available"
        header = [
            "# fastloader bench",
            "",
            f"Measured on this machine by `{command}` on "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: "
            f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"torch {torch.__version__} (CUDA {cuda}), "
            f"fastloader {__version__}. Dataset: {len(dataset)} synthetic {size}x{size} "
            f"{args.image_format} images, {dataset.num_classes} imbalanced classes, 0-50 boxes "
            "with 5 landmarks each.",
            "",
        ]
        elapsed = time.perf_counter() - started
        footer = [f"{plot_message}. Total bench time {elapsed:.0f} s.", ""]
        (args.out / "latest.md").write_text(
            "\n".join(header) + "\n" + "\n".join(s.markdown() for s in sections) + "\n".join(footer)
        )
        progress.step("write")
    finally:
        progress.close()
    print(plot_message)
    print(f"results written to {args.out / 'latest.md'} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
