"""The main job's in-process sections: the sampler (draw time and class balance), the collate,
padding with and without aspect-ratio grouping, and reading VOC annotations."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, WeightedRandomSampler

from ..collate.detection_collate import DetectionCollate, fast_detection_collate
from ..datasets.synthetic import SyntheticDetection
from ..datasets.voc import VOC_CLASSES, VOCDetection
from ..sampling.weighted import FastWeightedBatchSampler, FastWeightedSampler
from .harness import Section, duration, interleaved, ratio
from .padding import PaddingCase, padded_pixels
from .progress import Progress
from .stock import detection_collate, detectron2_style_padding

__all__ = [
    "ANNOTATIONS_MARKER",
    "annotation_section",
    "collate_section",
    "padding_section",
    "sampler_section",
    "write_annotations",
]

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
    dataset: SyntheticDetection, big_n: int, repeats: int, progress: Progress
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


def collate_section(repeats: int, batch_size: int, progress: Progress) -> tuple[Section, list]:
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


def padding_section(repeats: int, batch_size: int, progress: Progress) -> Section:
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


#: Written beside ``Annotations`` by annotation_section: which XML files there are its own.
ANNOTATIONS_MARKER = "fastloader-bench-annotations.json"
_WRITER = "fastloader.bench annotation_section"


def _annotation_name(index: int) -> str:
    return f"{index:06d}.xml"


def _own_annotation_count(folder: Path) -> int | None:
    """How many XML files the marker of ``folder`` says annotation_section wrote, or None."""
    try:
        marker = json.loads((folder / ANNOTATIONS_MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("writer") != _WRITER:
        return None
    count = marker.get("count")
    return count if isinstance(count, int) and count >= 0 else None


def _write_marker(folder: Path, count: int) -> None:
    (folder / ANNOTATIONS_MARKER).write_text(json.dumps({"writer": _WRITER, "count": count}))


def _refuse_foreign(annotations: Path, own: int) -> set[str]:
    """The names in ``annotations`` (missing: none); raises when any is not one of the ``own``
    XML files annotation_section wrote there (by the marker), before anything is changed."""
    if not annotations.exists() and not annotations.is_symlink():
        return set()
    if not annotations.is_dir():
        raise ValueError(
            f"{annotations} is not a folder: the annotation section writes its XML files there. "
            "Pass --root with a new or empty folder. Nothing was changed"
        )
    ours = {_annotation_name(i) for i in range(own)}
    present = set(os.listdir(annotations))
    foreign = sorted(
        name
        for name in present
        if name not in ours or not stat.S_ISREG(os.lstat(annotations / name).st_mode)
    )
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise ValueError(
            f"{annotations} holds {len(foreign)} entries the benchmark did not write "
            f"({', '.join(foreign[:3])}{more}): it writes its generated XML files only into a "
            "folder that is missing, empty or its own (named by "
            f"{annotations.parent / ANNOTATIONS_MARKER}), and never deletes what it did not "
            "write. Pass --root with a new or empty folder, or move those files away yourself. "
            "Nothing was changed"
        )
    return present


def write_annotations(folder: Path, count: int) -> bool:
    """Makes ``folder/Annotations`` hold ``count`` generated VOC XML files; True if written now.

    A folder it wrote before (its marker lists the files) is reused or brought to ``count``, its
    own extra files removed by name; a folder holding anything else is refused untouched.
    """
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"root should be a folder, but {folder} is a file. Nothing was changed")
    annotations = folder / "Annotations"
    own = _own_annotation_count(folder) or 0
    present = _refuse_foreign(annotations, own)
    if own == count and present == {_annotation_name(i) for i in range(count)}:
        return False
    annotations.mkdir(parents=True, exist_ok=True)
    # The marker covers every file that may exist while writing, so an interrupted run's output
    # is still known to be ours.
    _write_marker(folder, max(own, count))
    obj = (
        "<object><name>{}</name><pose>Left</pose><truncated>0</truncated><difficult>{}"
        "</difficult><bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax>"
        "</bndbox></object>"
    )
    for i in range(count):
        objects = "".join(
            obj.format(VOC_CLASSES[(i + k) % 20], int(k == 2)) for k in range(1 + i % 4)
        )
        (annotations / _annotation_name(i)).write_text(
            f"<annotation><folder>VOC2007</folder><filename>{i:06d}.jpg</filename><size>"
            f"<width>500</width><height>375</height><depth>3</depth></size>{objects}</annotation>"
        )
    for i in range(count, own):  # our own files of an earlier, larger count
        with contextlib.suppress(FileNotFoundError):
            os.unlink(annotations / _annotation_name(i))  # unlink never follows a symlink
    _write_marker(folder, count)
    return True


def annotation_section(count: int, folder: Path) -> Section:
    """Reading labels, weights and sizes of ``count`` VOC XML files (written once, then cached)
    under ``folder/Annotations``: refuses a folder holding files it did not write."""
    write_annotations(folder, count)
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
