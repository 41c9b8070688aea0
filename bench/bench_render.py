"""The native render alone on one core: per-interpolation resample time, distortion time, and the
retinaface(640) preset's render per sample, in process CPU time.

    .venv/bin/python bench/bench_render.py [--rounds 7] [--repeats 20] [--size 550]

Per interpolation: a size x size BGR uint8 source resized to 640x640 float32 CHW (mean
subtracted, as retinaface(640) writes it) into one reused output, so page faults of a fresh
buffer are not counted (--fresh adds a run that allocates the output each time, from the pool
as AugmentPipeline.empty_output does). Distortion: augment_distort_pixels on size x size pixels
with every part on (the HSV round trip always happens; the LUT parts are the cheap ones).
Preset: retinaface(640) plans of a 1024x704 image for 40 fixed sample indices, rendered in turn.

Each figure is the median over rounds of (CPU time of `repeats` calls / repeats); the kernels
are interleaved within a round, so machine load spreads over all of them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

import fastloader.transforms as T
from fastloader import _C

INTERPS = [("nearest", 0), ("linear", 1), ("cubic", 2), ("area", 3), ("lanczos4", 4)]
MEANS = (104, 117, 123)


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), ((x + y) * 3) % 256], -1)
    return np.clip(base + rng.integers(-30, 31, base.shape), 0, 255).astype(np.uint8)


def cpu_per_call(fn, repeats: int) -> float:
    fn()  # warm: thread-local scratch sized, pages touched
    t0 = time.process_time_ns()
    for _ in range(repeats):
        fn()
    return (time.process_time_ns() - t0) / repeats / 1e6  # ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--size", type=int, default=550)
    ap.add_argument("--fresh", action="store_true", help="also time a fresh output per call")
    args = ap.parse_args()
    torch.set_num_threads(1)

    src = image(args.size, args.size)
    kernels = {}
    for name, code in INTERPS:
        pipe = T.AugmentPipeline(
            [T.Resize((640, 640), interpolation=code)],
            mean=MEANS,
            input_order="BGR",
            output_order="BGR",
            seed=0,
        )
        plan = pipe.plan(args.size, args.size, None, 0)
        out = pipe.empty_output(plan)
        kernels[name] = lambda p=pipe, q=plan, o=out: p.render(q, src, o)
        if args.fresh:
            kernels[name + " (fresh out)"] = lambda p=pipe, q=plan: p.render(
                q, src, p.empty_output(q)
            )

    pixels = image(args.size, args.size, seed=1).reshape(-1, 3)
    work = pixels.copy()
    params = dict(
        contrast_first=True,
        brightness_on=True,
        beta=12.5,
        contrast_on=True,
        alpha=1.2,
        saturation_on=True,
        saturation=1.3,
        hue_on=True,
        hue=7,
    )

    def distort():
        work[:] = pixels
        _C.augment_distort_pixels(work, 0, params)

    def copy_only():
        work[:] = pixels

    kernels["distortion (+copy)"] = distort
    kernels["copy"] = copy_only

    big = image(704, 1024, seed=2)
    preset = T.retinaface(640, input_order="BGR", seed=0)
    rng = np.random.default_rng(3)
    boxes = []
    for _ in range(6):
        x, y = rng.uniform(0, 900), rng.uniform(0, 600)
        boxes.append([x, y, x + rng.uniform(20, 120), y + rng.uniform(20, 100)])
    target = {"boxes": np.array(boxes, np.float32), "labels": np.arange(6)}
    plans = [preset.plan(704, 1024, target, i) for i in range(40)]
    outs = [preset.empty_output(p) for p in plans]

    def preset_all():
        for p, o in zip(plans, outs, strict=True):
            preset.render(p, big, o)

    results: dict[str, list[float]] = {k: [] for k in kernels}
    results["retinaface(640) per sample"] = []
    for _ in range(args.rounds):
        for name, fn in kernels.items():
            results[name].append(cpu_per_call(fn, args.repeats))
        results["retinaface(640) per sample"].append(
            cpu_per_call(preset_all, max(1, args.repeats // 10)) / len(plans)
        )

    load = os.getloadavg()[0]
    print(
        f"# render, one core, process CPU ms per call: median (min-max) of {args.rounds} rounds "
        f"x {args.repeats} calls; {args.size}^2 -> 640^2 float32 CHW; load average {load:.2f}"
    )
    for name, values in results.items():
        med = statistics.median(values)
        extra = ""
        if name == "distortion (+copy)":
            ns = (med - statistics.median(results["copy"])) * 1e6 / (args.size * args.size)
            extra = f"   ({ns:.2f} ns / pixel without the copy)"
        print(f"{name:>28}: {med:7.3f} ms ({min(values):.3f}-{max(values):.3f}){extra}")


if __name__ == "__main__":
    main()
