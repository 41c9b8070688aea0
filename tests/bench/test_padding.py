"""The main job's padding helpers: VOC shape sizes and padded-pixel accounting, checked by hand."""

import numpy as np
import pytest
import torch

from fastloader.bench.padding import PaddingCase, padded_pixels
from fastloader.datasets.synthetic import VOC_SHAPES, voc_shape_sizes


def test_padded_pixels_counts_each_batch_against_its_largest_sides():
    sizes = np.array([[10, 20], [20, 10], [10, 10]])
    # batch {0, 1}: 2 * 20 * 20 = 800 pixels of tensor, 400 of image; batch {2}: no padding.
    mean, share = padded_pixels(sizes, [[0, 1], [2]])
    assert mean == pytest.approx(400 / 2)
    assert share == pytest.approx(400 / 900)


def test_voc_shape_sizes_fix_the_longer_side_and_follow_the_mix():
    sizes = voc_shape_sizes(20_000, 500, seed=3)
    assert sizes.dtype == np.int64 and sizes.shape == (20_000, 2)
    assert (sizes.max(axis=1) == 500).all()
    ratios = np.round(sizes[:, 1] / sizes[:, 0], 2)
    expected = {round(r, 2): share for r, share in VOC_SHAPES}
    total = sum(expected.values())
    for ratio, share in expected.items():
        seen = np.mean(np.isclose(ratios, ratio, atol=0.011))
        assert seen == pytest.approx(share / total, abs=0.015), ratio
    assert (voc_shape_sizes(100, 500, seed=3) == voc_shape_sizes(100, 500, seed=3)).all()


def test_grouping_cuts_padding_on_the_voc_mix():
    case = PaddingCase(2048, 512, 32)
    assert len(case.plain) == 64 and all(len(b) == 32 for b in case.plain)
    assert all(len(b) == 32 for b in case.grouped)
    plain, _ = padded_pixels(case.sizes, case.plain)
    grouped, _ = padded_pixels(case.sizes, case.grouped)
    assert grouped * 3 < plain
    image, boxes = case.samples(case.grouped[:1])[0][0]
    assert image.dtype == torch.uint8 and image.shape[0] == 3 and boxes.shape[1] == 5
