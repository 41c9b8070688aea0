"""The GPU-step table with a real model: a torchvision detector trained a few dozen steps on the
synthetic VOC set, fed by the stock input pipeline and by fastloader's, at the tuner's pick.

Stock: a Pillow VOC dataset + WeightedRandomSampler + the detection_collate users copy.
fastloader: VOCDetection + FastWeightedBatchSampler + DetectionCollate(shared_ring=True).
Both pin_memory=True; each batch goes to the GPU non-blocking, is normalised there, and the model
(RetinaNet or Faster R-CNN, ResNet-50 FPN, random weights, bf16 autocast, channels_last) takes an
SGD step; the loss is read every step (loss.item()), as a training loop does. Reported: steps/s
and the share of the loop spent waiting for the next batch.

    python tools/gpu_train_step.py                      # CUDA host with torchvision
    python tools/gpu_train_step.py --cpu-dry-run        # the script on the CPU, tiny model

Rows are printed as a markdown table (and written to --out when given).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from fastloader import (
    DetectionCollate,
    FastWeightedBatchSampler,
    SyntheticDetection,
    tune_num_workers,
)

try:  # the stock baseline lives with the benchmarks
    from fastloader.bench.loaders import StockVOC, detection_collate
except ImportError:  # layout before the bench subpackage
    from fastloader.bench_loaders import StockVOC, detection_collate  # type: ignore[no-redef]


def build_model(name: str, num_classes: int, side: int, device: str) -> torch.nn.Module:
    if name == "tiny":  # the dry run's stand-in: same interface, no torchvision needed
        return TinyDetector().to(device)
    from torchvision.models import detection

    make = {
        "retinanet": detection.retinanet_resnet50_fpn,
        "fasterrcnn": detection.fasterrcnn_resnet50_fpn,
    }[name]
    model = make(
        weights=None, weights_backbone=None, num_classes=num_classes, min_size=side, max_size=side
    )
    return model.to(device).to(memory_format=torch.channels_last)


class TinyDetector(torch.nn.Module):
    """A conv stem and a box-regression loss: enough to run the loop on a CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=4)

    def forward(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        features = self.conv(torch.stack(images)).mean()
        boxes = torch.cat([t["boxes"] for t in targets]).mean()
        return {"loss": (features - boxes) ** 2}


def to_targets(targets: list[torch.Tensor], device: str) -> list[dict[str, torch.Tensor]]:
    out = []
    for t in targets:
        t = t.to(device, non_blocking=True)
        out.append({"boxes": t[:, :4], "labels": t[:, 4].long() + 1})  # 0 is background
    return out


def train(
    loader: DataLoader, model: torch.nn.Module, steps: int, warmup: int, device: str, amp: bool
) -> tuple[float, float]:
    """(steps/s, share of time waiting for data) over `steps` steps after `warmup`."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    iterator, waited, started = _endless(loader), 0.0, 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            waited, started = 0.0, time.perf_counter()
        before = time.perf_counter()
        images, targets = next(iterator)
        waited += time.perf_counter() - before
        images = images.to(device, non_blocking=True)
        inputs = images.float().div_(255).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp):
            losses = model(list(inputs), to_targets(targets, device))
            loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # a training loop reads its loss: the step waits for the GPU here
        del images, targets, inputs
    total = time.perf_counter() - started
    return steps / total, waited / total


def _endless(loader: DataLoader) -> Any:
    while True:
        count = 0
        for batch in loader:
            count += 1
            yield batch
        if count == 0:
            raise ValueError("the loader yielded no batch in an epoch")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="retinanet", choices=["retinanet", "fasterrcnn"])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per loader")
    parser.add_argument("--workers", type=int, help="skip the tuner and use this num_workers")
    parser.add_argument("--cpu-dry-run", action="store_true")
    parser.add_argument("--out", help="write the markdown table here too")
    args = parser.parse_args()
    device = "cpu" if args.cpu_dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_train_step: no CUDA device; nothing measured (--cpu-dry-run checks the script)")
        return 0
    if args.cpu_dry_run:
        args.images, args.side, args.batch_size, args.steps, args.warmup = 16, 64, 4, 2, 1
        args.rounds, model_name = 1, "tiny"
    else:
        model_name = args.model
        torch.backends.cudnn.benchmark = True
    root = tempfile.mkdtemp(prefix="fastloader-gpu-step-")
    data = SyntheticDetection(
        os.path.join(root, "voc"),
        args.images,
        min_size=args.side,
        max_size=args.side,
        max_boxes=20,
        seed=0,
    )
    weights = data.image_class_weights()
    stock = StockVOC(data)
    ring = DetectionCollate(shared_ring=True)

    def loaders(workers: int) -> dict[str, DataLoader]:
        common = {
            "num_workers": workers,
            "pin_memory": device == "cuda",
            "persistent_workers": workers > 0,
        }
        return {
            "stock": DataLoader(
                stock,
                batch_size=args.batch_size,
                collate_fn=detection_collate,
                sampler=WeightedRandomSampler(torch.from_numpy(weights), len(data)),
                **common,
            ),
            "fastloader": DataLoader(
                data,
                collate_fn=ring,
                batch_sampler=FastWeightedBatchSampler(weights, len(data), args.batch_size, seed=0),
                **common,
            ),
        }

    workers = args.workers
    if workers is None:
        cpus = os.cpu_count() or 1
        candidates = sorted({c for c in (2, 4, 8, 16, cpus) if c <= cpus})
        report = tune_num_workers(
            data,
            args.batch_size,
            collate_fn=ring,
            candidates=candidates,
            seconds=1.5,
            batch_sampler=FastWeightedBatchSampler(weights, len(data), args.batch_size, seed=0),
        )
        workers = report.best
        print(report.table(), flush=True)
    model = build_model(model_name, 21, args.side, device)
    built = loaders(workers)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in built}
    for _ in range(args.rounds):
        for name, loader in built.items():
            results[name].append(
                train(loader, model, args.steps, args.warmup, device, amp=device == "cuda")
            )
            print(
                f"{name}: {results[name][-1][0]:.2f} steps/s, data wait {results[name][-1][1]:.1%}",
                flush=True,
            )
    host = torch.cuda.get_device_name() if device == "cuda" else "CPU dry run"
    lines = [
        f"GPU step with a real model: {model_name} ResNet-50 FPN, bf16 autocast, channels_last, "
        f"batch {args.batch_size} x 3x{args.side}x{args.side}, num_workers={workers} "
        f"(tune_num_workers' pick), {args.steps} steps x {args.rounds} rounds; {host}, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| input pipeline | steps/s (min-max) | time waiting for data (min-max) |",
        "|---|---:|---:|",
    ]
    for name, rows in results.items():
        rates, waits = [r[0] for r in rows], [r[1] for r in rows]
        lines.append(
            f"| {name} | {statistics.median(rates):.2f} ({min(rates):.2f}-"
            f"{max(rates):.2f}) | {statistics.median(waits):.1%} ({min(waits):.1%}-"
            f"{max(waits):.1%}) |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text + "\n")
    del built
    np.seterr(all="ignore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
