"""End-to-end DataLoader rates of the stock and fastloader set-ups against the decode floor

The decode floor is what all cores reach doing nothing but the dataset's ``__getitem__`` (one
process per core): no loader can beat it, so each loader's share of it is what it loses.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from ..collate.detection_collate import DetectionCollate
from ..datasets.synthetic import SyntheticDetection
from ..sampling.weighted import FastWeightedBatchSampler
from ..tuning.tuner import TuneReport, WorkerMeasurement, tune_num_workers
from .stock import detection_collate

__all__ = [
    "CONFIGS",
    "LoaderResults",
    "StockVOC",
    "decode_floor",
    "measure_round",
    "recommended_collate",
]

#: The loader set-ups, in the order measured: (name, dataset kind, fastloader sampler and collate).
CONFIGS = ("stock", "collate only", "fastloader")


class StockVOC(Dataset):
    """A VOC reader as detection code writes it (torchvision's and ssd.pytorch's pattern): the XML
    parsed with ElementTree per sample, the image opened with Pillow and ``convert("RGB")``, and
    ``torch.from_numpy(np.array(image)).permute(2, 0, 1)`` (torchvision's ``pil_to_tensor``);
    ``.npy`` images loaded with ``np.load``. Targets are the same float32 ``[N, 15]`` rows as
    :class:`fastloader.VOCDetection`'s."""

    def __init__(self, like: SyntheticDetection) -> None:
        self.annotations = [str(path) for path in like.annotation_files]
        self.images = [str(like.image_path(i)) for i in range(len(like))]
        self.class_to_index = dict(like.class_to_index)

    def __len__(self) -> int:
        return len(self.images)

    def _target(self, index: int) -> np.ndarray:
        rows = []
        for obj in ET.parse(self.annotations[index]).getroot().iter("object"):
            if obj.findtext("difficult", "0").strip() == "1":
                continue
            box = obj.find("bndbox")
            if box is None:
                raise ValueError(f"{self.annotations[index]}: an <object> without <bndbox>")
            row = [float(box.findtext(tag, "")) for tag in ("xmin", "ymin", "xmax", "ymax")]
            row.append(float(self.class_to_index[obj.findtext("name", "").strip()]))
            marks = obj.find("landmarks")
            for k in range(1, 6):
                for axis in "xy":
                    row.append(-1.0 if marks is None else float(marks.findtext(f"{axis}{k}", "")))
            rows.append(row)
        return np.array(rows, dtype=np.float32).reshape(len(rows), 15)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.images[index]
        if path.endswith(".npy"):
            image = torch.from_numpy(np.load(path))
        else:
            from PIL import Image

            with Image.open(path) as opened:
                image = torch.from_numpy(np.array(opened.convert("RGB"))).permute(2, 0, 1)
        return image, torch.from_numpy(self._target(index))


def recommended_collate(image_format: str, shared_ring: bool) -> DetectionCollate:
    """fastloader's collate for this data: decoded images are [H, W, 3] buffers viewed as
    [3, H, W], so the batch is channels_last (one plain copy per image row); pre-decoded .npy
    images are stored [3, H, W], so the batch is too."""
    return DetectionCollate(channels_last=image_format == "jpeg", shared_ring=shared_ring)


# --------------------------------------------------------------------------------------------
# The decode floor: one process per core doing nothing but __getitem__

_FLOOR_DATASET: Any = None


def _floor_init(dataset: Any) -> None:
    global _FLOOR_DATASET
    _FLOOR_DATASET = dataset
    torch.set_num_threads(1)  # as in a DataLoader worker


def _floor_run(job: tuple[int, float, float]) -> tuple[int, float]:
    seed, start_at, stop_at = job
    order = np.random.default_rng(seed).permutation(len(_FLOOR_DATASET))
    _FLOOR_DATASET[int(order[0])]  # warm: imports, first-touch allocations
    while time.time() < start_at:  # all processes start together
        time.sleep(0.001)
    count = 0
    while True:
        _FLOOR_DATASET[int(order[count % len(order)])]
        count += 1
        now = time.time()
        if now >= stop_at:
            return count, now - start_at


def decode_floor(dataset: Any, seconds: float, processes: int | None = None) -> float:
    """Samples/s that ``processes`` (default: one per core) reach calling ``dataset[i]`` and
    nothing else, each over random indices, for ``seconds``; summed over the processes."""
    processes = processes or os.cpu_count() or 1
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with context.Pool(processes, initializer=_floor_init, initargs=(dataset,)) as pool:
        start_at = time.time() + 0.2  # time for every process to come up
        jobs = [(seed, start_at, start_at + seconds) for seed in range(processes)]
        results = pool.map(_floor_run, jobs, chunksize=1)
    return sum(count / elapsed for count, elapsed in results)


# --------------------------------------------------------------------------------------------
# Rounds of every set-up


@dataclass
class LoaderResults:
    """Batches/s per (format, set-up, num_workers) and floor samples/s per (format, dataset), one
    value per round; rounds are interleaved, so the figures of one round share its load."""

    batch_size: int
    rates: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    rows: dict[tuple[str, str, int], list[WorkerMeasurement]] = field(default_factory=dict)
    floors: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, key: tuple[str, str, int], row: WorkerMeasurement) -> None:
        self.rates.setdefault(key, []).append(row.batches_per_s)
        self.rows.setdefault(key, []).append(row)

    def median(self, key: tuple[str, str, int]) -> float:
        return statistics.median(self.rates[key])

    def floor_batches(self, image_format: str, dataset: str) -> list[float]:
        return [rate / self.batch_size for rate in self.floors[(image_format, dataset)]]

    def report(
        self, image_format: str, config: str, pin_memory: bool, seconds: float
    ) -> TuneReport:
        """A TuneReport of median rows: what tune_num_workers would pick from these rounds."""
        rows = []
        for (fmt, name, _workers), measured in sorted(self.rows.items(), key=lambda kv: kv[0][2]):
            if fmt == image_format and name == config:
                middle = sorted(measured, key=lambda row: row.batches_per_s)[len(measured) // 2]
                rows.append(middle)
        return TuneReport.from_rows(
            rows, batch_size=self.batch_size, pin_memory=pin_memory, seconds=seconds
        )


def _loader_args(
    sampler_args: Callable[[], dict[str, Any]], collate_fn: Callable[[Any], Any]
) -> dict[str, Any]:
    """A fresh sampler's DataLoader arguments with ``collate_fn`` added."""
    return {**sampler_args(), "collate_fn": collate_fn}


@dataclass
class LoaderSetup:
    """What one set-up needs for a DataLoader over one image format."""

    dataset: Any
    loader_args: Callable[[], dict[str, Any]]  # fresh sampler (and collate) arguments


def setups(
    jpeg: SyntheticDetection, npy: SyntheticDetection, batch_size: int, shared_ring: bool
) -> dict[tuple[str, str], LoaderSetup]:
    """Every (format, set-up): stock = StockVOC + WeightedRandomSampler + detection_collate;
    collate only = the same with fastloader's collate; fastloader = VOCDetection (fastest
    decoder, packed XML) + FastWeightedBatchSampler + fastloader's collate."""
    out = {}
    for fmt, fast in (("jpeg", jpeg), ("npy", npy)):
        weights = fast.image_class_weights()  # also packs the annotations before workers fork
        n = len(fast)
        stock = StockVOC(fast)
        collate = recommended_collate(fmt, shared_ring)

        def stock_sampler(w: np.ndarray = weights, n: int = n) -> dict[str, Any]:
            return {"sampler": WeightedRandomSampler(torch.from_numpy(w), n)}  # type: ignore[arg-type]

        def fast_sampler(w: np.ndarray = weights, n: int = n) -> dict[str, Any]:
            return {"batch_sampler": FastWeightedBatchSampler(w, n, batch_size, seed=0)}

        out[(fmt, "stock")] = LoaderSetup(
            stock, partial(_loader_args, stock_sampler, detection_collate)
        )
        out[(fmt, "collate only")] = LoaderSetup(
            stock, partial(_loader_args, stock_sampler, collate)
        )
        out[(fmt, "fastloader")] = LoaderSetup(fast, partial(_loader_args, fast_sampler, collate))
    return out


def measure_round(
    results: LoaderResults,
    loaders: dict[tuple[str, str], LoaderSetup],
    floors: dict[tuple[str, str], Any],
    candidates: Sequence[int],
    seconds: float,
    pin_memory: bool,
    step: Callable[[str], None],
) -> None:
    """One round: per format, the floors, then every num_workers and set-up in turn."""
    for fmt in ("jpeg", "npy"):
        for (floor_fmt, kind), dataset in floors.items():
            if floor_fmt == fmt:
                rate = decode_floor(dataset, seconds)
                results.floors.setdefault((fmt, kind), []).append(rate)
                step(f"{fmt} decode floor ({kind})")
        for workers in candidates:
            for config in CONFIGS:
                setup = loaders[(fmt, config)]
                row = tune_num_workers(
                    setup.dataset,
                    results.batch_size,
                    pin_memory=pin_memory,
                    candidates=[workers],
                    seconds=seconds,
                    **setup.loader_args(),
                ).rows[0]
                results.add((fmt, config, workers), row)
                step(f"{fmt} {config} num_workers={workers}")


def _to_cuda(batch: Any) -> Any:
    if hasattr(batch, "to") and not isinstance(batch, torch.Tensor):  # DetectionBatch: it also
        return batch.to("cuda", non_blocking=True)  # keeps a ring slot until its copy is done
    images, targets = batch
    return images.to("cuda", non_blocking=True), [t.to("cuda", non_blocking=True) for t in targets]


def endless_batches(loader: Iterable[Any]) -> Iterator[Any]:
    """The loader's batches, epoch after epoch: a timed window may be longer than the dataset."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("endless_batches: the loader yielded no batch in an epoch")


def gpu_wait_share(
    setup: LoaderSetup, batch_size: int, workers: int, batches: int, step_ms: float = 20.0
) -> tuple[float, float]:
    """With CUDA: the share of a training loop's time spent waiting for data, and batches/s, when
    each batch goes ``.to("cuda", non_blocking=True)`` (pinned) and a fixed GPU step follows."""
    from torch.utils.data import DataLoader

    args = setup.loader_args()
    if "batch_sampler" not in args:
        args["batch_size"] = batch_size
    # The bench's datasets are a few batches long: epochs follow one another, the workers kept.
    loader = DataLoader(
        setup.dataset, num_workers=workers, pin_memory=True, persistent_workers=workers > 0, **args
    )
    weight = torch.randn(2048, 2048, device="cuda")
    torch.matmul(weight, weight)  # cuBLAS set-up, outside the clock
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(10):
        torch.matmul(weight, weight)
    torch.cuda.synchronize()
    per_matmul = max((time.perf_counter() - started) / 10, 1e-6)
    repeats = max(1, int(step_ms / 1e3 / per_matmul))
    waited, iterator = 0.0, endless_batches(loader)
    next(iterator)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(batches):
        before = time.perf_counter()
        batch = next(iterator)
        waited += time.perf_counter() - before
        on_gpu = _to_cuda(batch)
        for _ in range(repeats):  # the fixed "training step"
            torch.matmul(weight, weight)
        # A training loop reads its loss (loss.item()) each step, which waits for the GPU; without
        # it the step only queues, and the wait above would also count the GPU's busy time.
        torch.cuda.synchronize()
        del on_gpu, batch
    torch.cuda.synchronize()
    total = time.perf_counter() - started
    del iterator
    return waited / total, batches / total
