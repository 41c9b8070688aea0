"""NOTE [runtime CPU dispatch] in augment_render.cpp: the render and the distortion are compiled
for SSE2, AVX2 and x86-64-v4 and picked by cpuid. Every variant must write the same bytes: the
same renders (every interpolation, float32 and uint8 out, distortion on) and distortions run in
processes capped at each level (FASTLOADER_AUGMENT_ISA) give one digest."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

RENDERS = """
import hashlib
import numpy as np
import torch
from fastloader import _C
from fastloader.transforms import AugmentPipeline, Distort, Flip, Resize, SquareCrop

digest = hashlib.sha256()
rng = np.random.default_rng(5)
image = rng.integers(0, 256, (331, 413, 3), dtype=np.uint8)
boxes = np.array([[40, 50, 200, 230]], np.float32)
for interp in (0, 1, 2, 3, 4):
    for dtype in (torch.float32, torch.uint8):
        pipe = AugmentPipeline(
            [SquareCrop(), Distort(), Flip(), Resize(97, interpolation=interp)],
            seed=interp, dtype=dtype, mean=(104, 117, 123),
        )
        for index in range(6):
            out, _ = pipe(image, {"boxes": boxes, "labels": np.zeros(1, np.int64)}, index=index)
            digest.update(out.numpy().tobytes())
pixels = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
for contrast_first in (True, False):
    work = pixels.copy()
    _C.augment_distort_pixels(work, 0, dict(
        contrast_first=contrast_first, brightness_on=True, beta=-20.25, contrast_on=True,
        alpha=1.37, saturation_on=True, saturation=0.61, hue_on=True, hue=-11))
    digest.update(work.tobytes())
print(digest.hexdigest())
"""


def _digest(level: str | None) -> str:
    env = dict(os.environ)
    env.pop("FASTLOADER_AUGMENT_ISA", None)
    if level is not None:
        env["FASTLOADER_AUGMENT_ISA"] = level
    done = subprocess.run(
        [sys.executable, "-c", RENDERS], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 variants only")
def test_every_instruction_set_writes_the_same_bytes():
    digests = {level: _digest(level) for level in ("sse2", "avx2", None)}
    assert len(digests["sse2"]) == 64
    assert len(set(digests.values())) == 1, digests
