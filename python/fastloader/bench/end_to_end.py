"""The main job's DataLoader sections: batches/s per num_workers against the decode floor, the
GPU step where CUDA is present, the headline summary, and the shared ring on and off."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from functools import partial

import torch

from ..datasets.synthetic import SyntheticDetection
from ..io.decode import default_jpeg_decoder
from ..sampling.weighted import FastWeightedBatchSampler
from ..tuning.tuner import tune_num_workers
from .harness import Section, ratio, run_rounds, spread
from .loaders import (
    CONFIGS,
    LoaderResults,
    gpu_wait_share,
    measure_round,
    recommended_collate,
    setups,
)
from .progress import Progress

__all__ = ["end_to_end_section", "ring_section", "summary_section"]


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
    progress: Progress,
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
