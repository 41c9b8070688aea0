"""`python -m fastloader.bench`: stock PyTorch vs fastloader on a synthetic VOC-layout detection set

Sections: summary (the headline ratios), sampler (draw time and class balance), collate, padding
(aspect-ratio grouped batches against plain ones) and end to end (DataLoader batches/s per
num_workers on JPEG and pre-decoded .npy, against the decode floor). Every ratio is the median
of interleaved repeats with its min-max spread. Prints aligned tables, writes <out>/latest.md
and, with matplotlib installed, <out>/latest.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..datasets.synthetic import SyntheticDetection, synthetic_widerface
from ..io.decode import default_jpeg_decoder
from ..tuning.tuner import default_candidates
from .augmented import augmented_section
from .end_to_end import end_to_end_section, ring_section, summary_section
from .gpu_step import MODELS, StepSettings, gpu_step_section
from .harness import DEFAULT_OUT, Section, load_average, machine_line, write_report
from .loaders import CONFIGS, LoaderResults
from .progress import Progress
from .sections import (
    annotation_section,
    collate_section,
    padding_section,
    sampler_section,
    write_annotations,
)

__all__ = ["main"]


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
        help="dataset folder (default: a cache under the temp directory); with --annotations-only, "
        "the folder for the generated Annotations. Only a new or empty folder, or one the bench "
        "wrote itself, is written to: anything else is refused untouched",
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
        "--annotations",
        type=int,
        default=0,
        help="also time reading N generated XML files (written beside the dataset folder)",
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
    parser.add_argument(
        "--gpu-model",
        choices=MODELS,
        default=None,
        help="also train this torchvision detector a few dozen steps on stock vs fastloader "
        "input and report steps/s and the time waiting for data (CUDA and torchvision needed; "
        "`python -m fastloader.bench.gpu_step --cpu-dry-run` checks it on a CPU)",
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


def _refused(error: ValueError) -> int:
    """A refused argument or folder: its message, no traceback, exit status 2 (argparse's)."""
    print(f"python -m fastloader.bench: error: {error}", file=sys.stderr)
    return 2


def _annotations_folder(count: int, beside: Path | None = None) -> Path:
    # "bench" in the name: folders of older versions (no marker, so refused) are never met.
    return (beside or Path(tempfile.gettempdir())) / f"fastloader-bench-annotations-{count}"


def _annotations_only(args: argparse.Namespace, command: str) -> int:
    count = args.annotations or 100_000
    load = load_average()
    root = args.root or _annotations_folder(count)
    try:
        write_annotations(root, count)  # refuses a folder it did not write, before any timing
    except ValueError as error:
        return _refused(error)
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


def _ring_only(args: argparse.Namespace, command: str) -> int:
    load = load_average()
    size = args.image_size or 640
    common: dict[str, Any] = dict(
        num_images=args.num_images or 128, min_size=size, max_size=size, seed=0
    )
    try:
        datasets = {
            fmt: SyntheticDetection(args.root, image_format=fmt, read_into_batch=True, **common)
            for fmt in ("jpeg", "npy")
        }
    except ValueError as error:  # a --root it did not write, or a bad size
        return _refused(error)
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


def _gpu_model_section(model: str, root: Path) -> Section:
    if not torch.cuda.is_available():
        section = Section(f"GPU step with a real model ({model})")
        section.note("not measured: no CUDA device.")
        return section
    return gpu_step_section(StepSettings(model), str(root))


def _augmented_section(
    root: Any, size: int, num_workers: int, batch_size: int, rounds: int, quick: bool
) -> Section:
    """Stock (cv2 + Pytorch_Retinaface's preproc) vs fused augmentation on WIDER-style data."""
    batches = 2 if quick else 4
    count = max(64 if quick else 160, (batches + 1) * batch_size)
    folder = None if root is None else Path(root).parent / f"fastloader-widerface-{count}"
    faces = synthetic_widerface(folder, count, seed=0, width=1024)
    return augmented_section(
        faces,
        size=size,
        num_workers=max(1, num_workers),
        batch_size=batch_size,
        batches=batches,
        rounds=max(3, rounds) if not quick else max(1, rounds),
        floor_seconds=0.5 if quick else 1.0,
    )


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
    steps = 1 + 3 + 2 + 1 + rounds * (4 + 6 * len(candidates)) + 1 + 2
    given = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m fastloader.bench", *given])
    if args.annotations_only:
        return _annotations_only(args, command)
    if args.ring_only:
        return _ring_only(args, command)
    load = load_average()
    common: dict[str, Any] = dict(num_images=num_images, min_size=size, max_size=size, seed=0)
    try:  # every folder written (or refused) before minutes of timing
        jpeg = SyntheticDetection(args.root, **common)
        # read_into_batch: fastloader's set-up reads each .npy straight into its batch (the
        # floor still calls dataset[i], which reads every image whole).
        npy = SyntheticDetection(args.root, image_format="npy", read_into_batch=True, **common)
        annotations = _annotations_folder(args.annotations, jpeg.root.parent)
        if args.annotations:
            write_annotations(annotations, args.annotations)
    except ValueError as error:  # a --root it did not write, or a bad size
        return _refused(error)
    progress = Progress(steps, enabled=not args.no_progress)
    try:
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
        augmented = _augmented_section(args.root, size, pick, batch_size, rounds, quick)
        progress.step("augmented")
        progress.write(augmented.text())
        sections = [summary, sampler, collate, padding, end_to_end, augmented]
        if args.gpu_model:
            sections.append(_gpu_model_section(args.gpu_model, jpeg.root.parent))
            progress.write(sections[-1].text())
        if args.annotations:
            sections.append(annotation_section(args.annotations, annotations))
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
