"""Class-balance helpers: values against the published formulas, empty images, and bad input."""

import math

import numpy as np
import pytest
import torch

import fastloader
from fastloader import (
    class_balanced_weights,
    class_image_counts,
    image_weights,
    power_weights,
    repeat_factors,
)
from fastloader.datasets import class_histogram


def random_labels(n, num_classes, seed=0, empty_fraction=0.1):
    """VOCDetection.labels()-style lists: int64 arrays, one per image, repeats and empties too."""
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, num_classes + 1)
    zipf /= zipf.sum()
    labels = []
    for _ in range(n):
        k = 0 if rng.random() < empty_fraction else int(rng.integers(1, 5))
        labels.append(rng.choice(num_classes, size=k, p=zipf).astype(np.int64))
    return labels


def detectron2_repeat_factors(labels, t, sqrt=True):
    """The LVIS rule as detectron2 writes it, on sets of class ids."""
    freq = {}
    for image in labels:
        for c in set(image.tolist()):
            freq[c] = freq.get(c, 0) + 1
    rep = {}
    for c, count in freq.items():
        ratio = t / (count / len(labels))
        rep[c] = max(1.0, math.sqrt(ratio) if sqrt else ratio)
    return np.array([max((rep[c] for c in set(image.tolist())), default=1.0) for image in labels])


@pytest.mark.parametrize("sqrt", [True, False])
def test_repeat_factors_follow_the_lvis_rule_and_empty_images_get_one(sqrt):
    labels = random_labels(3000, 12, seed=1)
    got = repeat_factors(labels, 0.5, sqrt=sqrt)
    np.testing.assert_allclose(got, detectron2_repeat_factors(labels, 0.5, sqrt), rtol=1e-12)
    assert got.dtype == np.float64 and got.shape == (3000,)
    empty = np.array([len(image) == 0 for image in labels])
    assert empty.any() and np.all(got[empty] == 1.0) and np.all(got >= 1.0)
    assert got.max() > 1.5  # the rare classes really are repeated


def test_repeated_objects_of_a_class_count_once_per_image():
    labels = [np.array([0, 0, 0, 0]), np.array([1]), np.array([1]), np.array([1])]
    # f(0) = 1/4, f(1) = 3/4: with t = 1, r(0) = 2 and r(1) = max(1, sqrt(4/3)).
    np.testing.assert_allclose(
        repeat_factors(labels, 1.0), [2.0, math.sqrt(4 / 3)] + [math.sqrt(4 / 3)] * 2
    )
    assert class_image_counts(labels).tolist() == [1, 3]


def test_inputs_of_every_kind_and_no_mutation():
    labels = [np.array([2, 0]), [1], torch.tensor([2]), np.array([], dtype=np.float64), ()]
    frozen = [np.array(x, copy=True) for x in labels[:1]]
    r = repeat_factors(labels, 0.5)
    assert r.shape == (5,) and r[3] == r[4] == 1.0
    np.testing.assert_array_equal(labels[0], frozen[0])
    assert class_image_counts(labels, num_classes=4).tolist() == [1, 1, 2, 0]


def test_class_image_counts_agree_with_the_dataset_histogram():
    labels = random_labels(500, 7, seed=3)
    np.testing.assert_array_equal(class_image_counts(labels, 7), class_histogram(labels, 7))


def test_all_images_empty_gives_all_ones():
    assert repeat_factors([np.array([], dtype=np.int64)] * 3, 0.1).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("threshold", [0, -0.5, float("nan"), float("inf")])
def test_bad_threshold_is_named(threshold):
    with pytest.raises(ValueError, match="threshold"):
        repeat_factors([np.array([0])], threshold)


def test_labels_outside_the_class_range_name_the_image():
    with pytest.raises(ValueError, match=r"image_labels\[1\] holds class 5, outside \[0, 3\)"):
        repeat_factors([np.array([0]), np.array([5])], 0.1, num_classes=3)
    with pytest.raises(ValueError, match=r"image_labels\[2\] holds class -1"):
        class_image_counts([[0], [1], [-1]])
    with pytest.raises(ValueError, match=r"len\(class_weights\)"):
        image_weights([[0], [2]], [1.0, 1.0])


@pytest.mark.parametrize(
    "labels, error",
    [
        ("abc", TypeError),
        (np.array([[0, 1]]), TypeError),
        ([], ValueError),
        ([np.array([0.5])], TypeError),
        ([np.array([True])], TypeError),
        ([np.zeros((2, 2), dtype=np.int64)], ValueError),
        ([3], TypeError),
    ],
)
def test_malformed_labels_are_refused(labels, error):
    with pytest.raises(error, match="image_labels"):
        repeat_factors(labels, 0.1)


def test_class_balanced_weights_follow_cui_et_al():
    counts = np.array([1000, 100, 10, 1, 0])
    beta = 0.99
    raw = np.array([(1 - beta) / (1 - beta**n) if n else 0.0 for n in counts])
    expected = raw * len(counts) / raw.sum()
    got = class_balanced_weights(counts, beta)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got.sum() == pytest.approx(5.0) and got[-1] == 0.0
    # beta = 0: no re-weighting among present classes; beta -> 1: inverse frequency.
    np.testing.assert_allclose(class_balanced_weights(counts, 0.0)[:4], [1.25] * 4)
    near_one = class_balanced_weights(counts[:4], 1 - 1e-12)
    np.testing.assert_allclose(near_one / near_one[3], [1e-3, 1e-2, 1e-1, 1.0], rtol=1e-6)


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_beta_is_named(beta):
    with pytest.raises(ValueError, match="beta"):
        class_balanced_weights([3, 4], beta)


def test_power_weights_interpolate_instance_and_class_balance():
    counts = torch.tensor([400, 100, 25, 0])
    np.testing.assert_allclose(power_weights(counts, 1.0), [400 / 525, 100 / 525, 25 / 525, 0.0])
    np.testing.assert_allclose(power_weights(counts, 0.5), [20 / 35, 10 / 35, 5 / 35, 0.0])
    np.testing.assert_allclose(power_weights(counts, 0.0), [1 / 3, 1 / 3, 1 / 3, 0.0])


@pytest.mark.parametrize("q", [-1.0, float("inf")])
def test_bad_q_is_named(q):
    with pytest.raises(ValueError, match="q"):
        power_weights([1, 2], q)


@pytest.mark.parametrize("counts", [[], [0, 0], [1, -1], [1, float("nan")], [[1, 2]], ["a"]])
def test_bad_class_counts_are_named(counts):
    with pytest.raises(ValueError, match="class_counts"):
        class_balanced_weights(counts, 0.9)


def test_image_weights_reduce_over_distinct_classes():
    labels = [np.array([0, 0, 2]), np.array([], dtype=np.int64), np.array([1]), np.array([2, 1])]
    w = [1.0, 2.0, 4.0]
    assert image_weights(labels, w, "max").tolist() == [4.0, 0.0, 2.0, 4.0]
    assert image_weights(labels, w, "sum").tolist() == [5.0, 0.0, 2.0, 6.0]
    assert image_weights(labels, w, "mean").tolist() == [2.5, 0.0, 2.0, 3.0]
    assert image_weights(labels, w, empty_weight=0.5)[1] == 0.5


def test_image_weights_feed_the_weighted_sampler_and_balance_classes():
    # One object per image: q = 0 spreads each class's equal share over its images.
    labels = [image[:1] for image in random_labels(2000, 6, seed=5, empty_fraction=0.0)]
    counts = class_image_counts(labels, 6)
    weights = image_weights(labels, power_weights(counts, 0.0) / counts, "max")
    sampler = fastloader.FastWeightedSampler(weights, 60000, seed=0)
    drawn = class_histogram(labels, 6, sampler.indices())
    plain = class_histogram(labels, 6)
    assert plain.max() / plain.min() > 3
    np.testing.assert_allclose(drawn / 10000, 1.0, atol=0.05)


def test_bad_image_weight_arguments():
    with pytest.raises(ValueError, match="reduce"):
        image_weights([[0]], [1.0], "median")
    with pytest.raises(ValueError, match="empty_weight"):
        image_weights([[0]], [1.0], empty_weight=-1)
    with pytest.raises(ValueError, match=r"class_weights\[1\]"):
        image_weights([[0]], [1.0, float("nan")])
    with pytest.raises(ValueError, match="class_weights"):
        image_weights([[0]], [])


def test_a_million_images_at_once():
    # Vectorised end to end: 1e6 images here (the bench covers 1e7); a Python loop per image
    # would still pass, so this checks values at scale rather than time.
    rng = np.random.default_rng(0)
    flat = rng.integers(0, 50, 3_000_000)
    labels = np.split(flat, np.arange(3, 3_000_000, 3))
    r = repeat_factors(labels, 0.05)
    assert r.shape == (1_000_000,) and np.all(r >= 1.0)


def test_voc_dataset_labels_feed_every_helper(tmp_path):
    dataset = fastloader.SyntheticDetection(tmp_path, 24, min_size=16, max_size=24, max_boxes=4)
    labels = dataset.labels()
    r = repeat_factors(labels, 0.3, num_classes=dataset.num_classes)
    assert r.shape == (24,) and np.all(r >= 1.0)
    counts = class_image_counts(labels, dataset.num_classes)
    np.testing.assert_array_equal(counts, dataset.class_histogram())
    w = image_weights(labels, class_balanced_weights(counts, 0.9), empty_weight=1.0)
    assert w.shape == (24,) and np.all(w > 0)
