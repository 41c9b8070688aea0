"""The GPU step with a real model: a torchvision detector trained a few dozen steps on the
synthetic VOC set, fed by the stock input pipeline and by fastloader's, at the tuner's pick.

Stock: a Pillow VOC dataset + WeightedRandomSampler + the detection_collate users copy.
fastloader: VOCDetection + FastWeightedBatchSampler + DetectionCollate(shared_ring=True).
Both pin_memory=True; each batch goes to the GPU non-blocking, is normalised there, and the model
(RetinaNet or Faster R-CNN, ResNet-50 FPN, random weights, bf16 autocast, channels_last) takes an
SGD step; the loss is read every step (loss.item()), as a training loop does. Reported: steps/s
and the share of the loop spent waiting for the next batch.

    python -m fastloader.bench.gpu_step                 # CUDA host with torchvision
    python -m fastloader.bench.gpu_step --cpu-dry-run   # the code on the CPU, a tiny model
    python -m fastloader.bench --gpu-model retinanet    # the same as a section of the main job
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from ..collate import DetectionCollate
from ..datasets.synthetic import SyntheticDetection
from ..sampling.weighted import FastWeightedBatchSampler
from ..tuning.tuner import tune_num_workers
from .harness import Section, spread
from .loaders import StockVOC, endless_batches
from .stock import detection_collate

__all__ = ["MODELS", "StepSettings", "gpu_step_section", "main"]

MODELS = ("retinanet", "fasterrcnn")


@dataclass
class StepSettings:
    """What one measurement trains: the model, the data and how long."""

    model: str = "retinanet"
    images: int = 512
    side: int = 512
    batch_size: int = 16
    steps: int = 30
    warmup: int = 8
    rounds: int = 2
    workers: int | None = None  # None: tune_num_workers' pick
    device: str = "cuda"

    @classmethod
    def dry_run(cls) -> StepSettings:
        """Tiny settings for the CPU: checks the code, measures nothing worth reporting."""
        return cls("tiny", 16, 64, 4, 2, 1, 1, 0, "cpu")


class TinyDetector(torch.nn.Module):
    """The dry run's stand-in for a detector: a conv stem and a box-regression loss."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=4)

    def forward(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        features = self.conv(torch.stack(images)).mean()
        boxes = torch.cat([t["boxes"] for t in targets]).mean()
        return {"loss": (features - boxes) ** 2}


def build_model(name: str, num_classes: int, side: int, device: str) -> torch.nn.Module:
    if name == "tiny":
        return TinyDetector().to(device)
    from torchvision.models import detection  # type: ignore[import-not-found]  # GPU hosts

    make = {
        "retinanet": detection.retinanet_resnet50_fpn,
        "fasterrcnn": detection.fasterrcnn_resnet50_fpn,
    }[name]
    model = make(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes,
        min_size=side,
        max_size=side,
    )
    return model.to(device).to(memory_format=torch.channels_last)


def _targets(targets: Sequence[torch.Tensor], device: str) -> list[dict[str, torch.Tensor]]:
    out = []
    for target in targets:
        target = target.to(device, non_blocking=True)
        out.append({"boxes": target[:, :4], "labels": target[:, 4].long() + 1})  # 0: background
    return out


def train(
    loader: DataLoader, model: torch.nn.Module, settings: StepSettings
) -> tuple[float, float]:
    """(steps/s, share of the loop waiting for data) over settings.steps after the warm-up."""
    device = settings.device
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    batches = endless_batches(loader)
    waited, started = 0.0, 0.0
    for step in range(settings.warmup + settings.steps):
        if step == settings.warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            waited, started = 0.0, time.perf_counter()
        before = time.perf_counter()
        images, targets = next(batches)
        waited += time.perf_counter() - before
        images = images.to(device, non_blocking=True)
        inputs = images.float().div_(255).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            losses = model(list(inputs), _targets(targets, device))
            loss = sum(losses.values(), torch.zeros((), device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # a training loop reads its loss: the step waits for the GPU here
        del images, targets, inputs
    total = time.perf_counter() - started
    return settings.steps / total, waited / total


def gpu_step_section(settings: StepSettings, root: str | None = None) -> Section:
    """Trains the model on stock and fastloader input, interleaved; one table row each."""
    device = settings.device
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    root = root or tempfile.mkdtemp(prefix="fastloader-gpu-step-")
    data = SyntheticDetection(
        os.path.join(root, f"voc-{settings.side}"),
        settings.images,
        min_size=settings.side,
        max_size=settings.side,
        max_boxes=20,
        seed=0,
    )
    weights = data.image_class_weights()
    collate = DetectionCollate(shared_ring=True)

    def batches() -> FastWeightedBatchSampler:
        return FastWeightedBatchSampler(weights, len(data), settings.batch_size, seed=0)

    workers, tuned = settings.workers, ""
    if workers is None:
        cpus = os.cpu_count() or 1
        candidates = sorted({c for c in (2, 4, 8, 16, cpus) if c <= cpus})
        report = tune_num_workers(
            data,
            settings.batch_size,
            batch_sampler=batches(),
            collate_fn=collate,
            candidates=candidates,
            seconds=1.5,
        )
        workers, tuned = report.best, " (tune_num_workers' pick)"
    common: dict[str, Any] = {
        "num_workers": workers,
        "pin_memory": device == "cuda",
        "persistent_workers": workers > 0,
    }
    stock_sampler = WeightedRandomSampler(torch.from_numpy(weights), len(data))  # type: ignore[arg-type]
    loaders = {
        "stock": DataLoader(
            StockVOC(data),
            batch_size=settings.batch_size,
            sampler=stock_sampler,
            collate_fn=detection_collate,
            **common,
        ),
        "fastloader": DataLoader(data, batch_sampler=batches(), collate_fn=collate, **common),
    }
    model = build_model(settings.model, data.num_classes + 1, settings.side, device)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in loaders}
    for _ in range(settings.rounds):
        for name, loader in loaders.items():
            results[name].append(train(loader, model, settings))
    host = torch.cuda.get_device_name() if device == "cuda" else "CPU dry run (not a GPU figure)"
    section = Section(f"GPU step with a real model ({settings.model})")
    rows = []
    for name, measured in results.items():
        rates, waits = [r[0] for r in measured], [100 * r[1] for r in measured]
        rows.append([name, spread(rates, ""), spread(waits, "%", lambda v: f"{v:.1f}")])
    section.table(["input pipeline", "steps/s (min-max)", "time waiting for data (min-max)"], rows)
    section.note(
        f"{settings.model} ResNet-50 FPN (torchvision, random weights), bf16 autocast, "
        f"channels_last, SGD; batch {settings.batch_size} x 3x{settings.side}x{settings.side} "
        f"from {settings.images} synthetic VOC JPEGs; num_workers={workers}{tuned}; "
        f"{settings.steps} timed steps after {settings.warmup}, {settings.rounds} interleaved "
        f"rounds; the loss read every step. {host}, torch {torch.__version__}. Stock: a Pillow "
        "VOC dataset + WeightedRandomSampler + detection_collate; fastloader: VOCDetection + "
        "FastWeightedBatchSampler + DetectionCollate(shared_ring=True); both pin_memory."
    )
    return section


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="retinanet", choices=MODELS)
    parser.add_argument("--workers", type=int, help="skip the tuner and use this num_workers")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpu-dry-run", action="store_true")
    parser.add_argument("--out", help="also write the section as markdown here")
    args = parser.parse_args(argv)
    if args.cpu_dry_run:
        settings = StepSettings.dry_run()
        if args.workers is not None:
            settings.workers = args.workers
    else:
        if not torch.cuda.is_available():
            print("gpu_step: no CUDA device; nothing measured (--cpu-dry-run checks the code)")
            return 0
        settings = StepSettings(
            args.model, steps=args.steps, rounds=args.rounds, workers=args.workers
        )
    section = gpu_step_section(settings)
    print(section.text())
    if args.out:
        with open(args.out, "w") as out:
            out.write(section.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
