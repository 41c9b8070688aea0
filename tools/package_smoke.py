"""Smoke test of an installed fastloader beside torch: the public sampler and collate, with the
sampler stream checked against the digest frozen in tests/sampling/test_weighted.py."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

import fastloader
from extension_smoke import SEED, frozen_digests
from fastloader import DetectionCollate, FastWeightedSampler


def main() -> None:
    installed = Path(fastloader.__file__).resolve()
    if Path(sys.prefix).resolve() not in installed.parents:
        raise SystemExit(f"fastloader comes from {installed}, not from this environment")

    weights = 1.0 / np.arange(1, 20_001)
    drawn = FastWeightedSampler(weights, 10_000, True, seed=SEED).indices()
    digest = hashlib.sha256(drawn.numpy().astype("<i8").tobytes()).hexdigest()
    assert digest == frozen_digests()[True], "sampler stream differs from the frozen digest"

    samples = [
        {"image": torch.full((3, 4, 5), 9, dtype=torch.uint8), "boxes": torch.ones(2, 4)},
        {"image": torch.full((3, 6, 2), 7, dtype=torch.uint8), "boxes": torch.zeros(0, 4)},
    ]
    batch = DetectionCollate(pad_value=0)(samples)
    assert batch.images.shape == (2, 3, 6, 5) and batch.images.dtype == torch.uint8
    assert batch.images[0, :, :4, :5].eq(9).all() and batch.images[0, :, 4:].eq(0).all()
    assert batch.images[1, :, :6, :2].eq(7).all() and batch.images[1, :, :, 2:].eq(0).all()
    assert batch.packed("boxes").shape == (2, 4) and batch.batch_index.tolist() == [0, 0]
    print(
        f"package ok: fastloader {fastloader.__version__}, torch {torch.__version__}, {installed}"
    )


if __name__ == "__main__":
    main()
