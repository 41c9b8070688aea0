"""Each random choice of fastloader.transforms follows its stated law (chi-square, fixed seeds),
and a sample depends only on (seed, epoch, index): identical across DataLoader worker counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import fastloader.transforms as T
from tests.helpers.stats import pooled_chisquare_pvalue

N = 4000
ALPHA = 1e-3


def _grid_boxes(h: int, w: int, step: int = 6) -> np.ndarray:
    """2x2 boxes every `step` pixels: any square crop holds some, so the first try succeeds."""
    ys, xs = np.mgrid[1 : h - 3 : step, 1 : w - 3 : step]
    x, y = xs.ravel().astype(np.float32), ys.ravel().astype(np.float32)
    return np.stack([x, y, x + 2, y + 2], 1)


def _records(pipe, h, w, target, count=N, op=0):
    return [pipe.plan(h, w, target, i).records[op] for i in range(count)]


def test_square_crop_scales_from_a_set_are_uniform():
    scales = (0.3, 0.45, 0.6, 0.8, 1.0)
    pipe = T.AugmentPipeline([T.SquareCrop(scales=scales)], seed=5)
    boxes = {"boxes": _grid_boxes(100, 120)}
    drawn = [r[2]["scale"] for r in _records(pipe, 100, 120, boxes)]
    assert len(drawn) == N
    observed = np.array([drawn.count(s) for s in scales], np.float64)
    assert pooled_chisquare_pvalue(observed, np.full(5, N / 5)) > ALPHA


def test_square_crop_scales_follow_pytorch_retinaface_law():
    # 1.0 with probability 0.2, else uniform in [0.3, 1): 7 equal bins plus the atom at 1.0.
    pipe = T.AugmentPipeline([T.SquareCrop()], seed=6)
    drawn = np.array(
        [r[2]["scale"] for r in _records(pipe, 100, 120, {"boxes": _grid_boxes(100, 120)})]
    )
    atom = (drawn == 1.0).sum()
    bins = np.histogram(drawn[drawn < 1.0], bins=7, range=(0.3, 1.0))[0]
    observed = np.concatenate([[atom], bins]).astype(np.float64)
    expected = np.concatenate([[0.2 * N], np.full(7, 0.8 * N / 7)])
    assert pooled_chisquare_pvalue(observed, expected) > ALPHA


def test_crop_offsets_are_uniform():
    pipe = T.AugmentPipeline([T.SquareCrop(scales=(0.5,))], seed=7)
    recs = _records(pipe, 100, 120, {"boxes": _grid_boxes(100, 120)})
    lefts = np.array([r[2]["left"] for r in recs])  # randrange(120 - 50): 0..69
    observed = np.bincount(lefts.astype(int) // 10, minlength=7).astype(np.float64)
    assert pooled_chisquare_pvalue(observed, np.full(7, N / 7)) > ALPHA
    assert lefts.max() <= 69


def test_flip_rate():
    pipe = T.AugmentPipeline([T.Flip(probability=0.3)], seed=8)
    flips = sum(r[1] for r in _records(pipe, 10, 10, None))
    assert (
        pooled_chisquare_pvalue(
            np.array([flips, N - flips], np.float64), np.array([0.3 * N, 0.7 * N])
        )
        > ALPHA
    )


def test_distortion_parts_and_ranges():
    pipe = T.AugmentPipeline([T.Distort()], seed=9)
    recs = [r[2] for r in _records(pipe, 10, 10, None)]
    for key in ("contrast_first", "brightness_on", "contrast_on", "saturation_on", "hue_on"):
        on = sum(r[key] for r in recs)
        assert (
            pooled_chisquare_pvalue(np.array([on, N - on], np.float64), np.full(2, N / 2)) > ALPHA
        ), key
    for key, lo, hi in (("beta", -32, 32), ("alpha", 0.5, 1.5), ("saturation", 0.5, 1.5)):
        values = np.array([r[key] for r in recs])
        assert values.min() >= lo and values.max() < hi
        observed = np.histogram(values, bins=8, range=(lo, hi))[0].astype(np.float64)
        assert pooled_chisquare_pvalue(observed, np.full(8, N / 8)) > ALPHA, key
    hues = np.array([r["hue"] for r in recs]).astype(int)
    assert hues.min() >= -18 and hues.max() <= 18
    observed = np.bincount(hues + 18, minlength=37).astype(np.float64)
    assert pooled_chisquare_pvalue(observed, np.full(37, N / 37)) > ALPHA


def test_interpolation_choice_is_uniform():
    pipe = T.retinaface(32, seed=10)
    interps = [r[2]["interp"] for r in _records(pipe, 40, 40, None, op=3)]
    observed = np.bincount(np.array(interps, int), minlength=5).astype(np.float64)
    assert pooled_chisquare_pvalue(observed, np.full(5, N / 5)) > ALPHA


def test_expand_ratio_and_iou_options():
    pipe = T.AugmentPipeline([T.Expand(max_ratio=4.0, probability=1.0)], seed=11)
    ratios = np.array([r[2]["ratio"] for r in _records(pipe, 50, 50, None)])
    observed = np.histogram(ratios, bins=6, range=(1, 4))[0].astype(np.float64)
    assert pooled_chisquare_pvalue(observed, np.full(6, N / 6)) > ALPHA
    # The IoU crop's first option is uniform over the minimums: a value >= 1 (leave) 1 time in 7.
    boxes = {"boxes": np.array([[10, 10, 40, 40]], np.float32)}
    pipe = T.AugmentPipeline([T.IoUCrop()], seed=12)
    left_alone = sum(
        1
        for r in _records(pipe, 50, 50, boxes, count=1400)
        if r[2]["success"] == 0 and r[2]["options"] == 1
    )
    assert (
        pooled_chisquare_pvalue(
            np.array([left_alone, 1400 - left_alone], np.float64), np.array([200.0, 1200.0])
        )
        > ALPHA
    )


class _Faces(Dataset):
    def __init__(self, pipe: T.AugmentPipeline) -> None:
        self.pipe = pipe
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 256, (60 + i, 80 - i, 3), dtype=np.uint8) for i in range(12)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        target = np.array(
            [[10, 10, 40, 40] + [15, 20, 30, 20, 22, 28, 16, 34, 28, 34] + [1]], np.float32
        )
        return self.pipe(self.images[index], target, index=index)


def _collect(num_workers: int, epoch: int) -> list[torch.Tensor]:
    pipe = T.retinaface(48, seed=123)
    pipe.set_epoch(epoch)
    loader = DataLoader(
        _Faces(pipe),
        batch_size=4,
        num_workers=num_workers,
        collate_fn=lambda b: (torch.stack([x for x, _ in b]), [t for _, t in b]),
    )
    out = []
    for images, targets in loader:
        out.append(images)
        out.extend(torch.from_numpy(t) for t in targets)
    assert len(out) == 3 * 5
    return out


@pytest.mark.multiprocess
def test_samples_are_bit_identical_for_any_num_workers():
    base = _collect(0, epoch=2)
    for workers in (1, 2):
        got = _collect(workers, epoch=2)
        for a, b in zip(base, got, strict=True):
            assert torch.equal(a, b)
    other = _collect(0, epoch=3)
    assert not all(torch.equal(a, b) for a, b in zip(base, other, strict=True))


@pytest.mark.multiprocess
def test_pooled_outputs_cross_worker_processes_unbatched():
    # The per-sample outputs live in recycled pool memory; a worker must still hand them over.
    pipe = T.retinaface(32, seed=5)
    dataset = _Faces(pipe)
    direct = [dataset[i][0] for i in range(len(dataset))]
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    got = [image.clone() for image, _ in loader]
    assert len(got) == len(direct)
    for a, b in zip(direct, got, strict=True):
        assert torch.equal(a, b)


def _stack(batch):
    return torch.stack([image for image, _ in batch]), [torch.from_numpy(t) for _, t in batch]


@pytest.mark.multiprocess
# torchdata's StatefulDataLoader touches torch.set_vital, deprecated in this torch.
@pytest.mark.filterwarnings("ignore:.set_vital. is deprecated:UserWarning")
def test_a_resumed_stateful_loader_yields_the_same_augmented_batches():
    from torchdata.stateful_dataloader import StatefulDataLoader

    from fastloader import FastWeightedSampler

    def loader():
        pipe = T.retinaface(40, seed=77)
        pipe.set_epoch(1)
        dataset = _Faces(pipe)
        sampler = FastWeightedSampler(np.ones(len(dataset)), num_samples=12, seed=3)
        return StatefulDataLoader(
            dataset, batch_size=3, sampler=sampler, num_workers=2, collate_fn=_stack
        )

    whole = list(loader())
    assert len(whole) == 4
    first = loader()
    iterator = iter(first)
    next(iterator)
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == 3
    for (a_images, a_targets), (b_images, b_targets) in zip(whole[1:], rest, strict=True):
        assert torch.equal(a_images, b_images)
        for a, b in zip(a_targets, b_targets, strict=True):
            assert torch.equal(a, b)
