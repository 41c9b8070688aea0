"""DetectionCollate against the stock detection_collate, default_collate and a plain-Python
reference (property tests over dtypes, shapes, layouts and options)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import default_collate

from fastloader import DetectionCollate, fast_detection_collate
from fastloader.bench.stock import detection_collate as stock_detection_collate
from tests.helpers.collate import (
    as_tensor,
    assert_same,
    random_image,
    reference_images,
)

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: pinned-memory path"
)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("seed", range(4))
def test_equals_stock_detection_collate(dtype, seed):
    rng = np.random.default_rng(seed)
    batch = []
    for k in range(int(rng.integers(1, 9))):
        image = random_image(rng, dtype, 3, 17, 23, numpy=False)
        count = 0 if k % 3 == 0 else int(rng.integers(1, 7))  # zero-box images included
        target = rng.random((count, 5)).astype(np.float32)
        # Mixed inputs: numpy or tensor images, numpy / tensor / float64 / nested-list targets.
        if k % 2:
            image = image.numpy()
        target = [target, torch.from_numpy(target), target.astype(np.float64), target.tolist()][
            k % 4
        ]
        batch.append((image, target))
    stock_images, stock_targets = stock_detection_collate([(as_tensor(i), t) for i, t in batch])
    images, targets = fast_detection_collate(batch)
    assert_same(images, stock_images)
    assert isinstance(targets, list) and len(targets) == len(stock_targets)
    for got, want in zip(targets, stock_targets, strict=True):
        if want.numel() == 0 and want.dim() == 1:  # stock keeps `[]` 1-D; we give [0, D]
            assert got.shape == (0, 5) and got.dtype == torch.float32
            continue
        assert_same(got, want)


def test_targets_are_views_into_one_buffer():
    batch = [(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.rand(n, 5)) for n in (2, 0, 3)]
    out = fast_detection_collate(batch)
    packed = out.packed()
    base = packed.untyped_storage().data_ptr()
    for view in out[1]:
        assert view.untyped_storage().data_ptr() == base
    assert packed.shape == (5, 5) and out[0] is out.images
    assert_same(torch.cat([t for _, t in batch]), packed)


def test_same_size_matches_default_collate():
    batch = [torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8) for _ in range(4)]
    out = DetectionCollate()([(b, torch.zeros(0, 5)) for b in batch])
    assert_same(out.images, default_collate(batch))
    assert out.image_sizes.tolist() == [[8, 8]] * 4


# ---------------------------------------------------------------- property tests
DTYPES = [
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.bool,
]


@st.composite
def batches(draw):
    dtype = draw(st.sampled_from(DTYPES))
    c = draw(st.integers(1, 4))
    b = draw(st.integers(1, 5))
    d = draw(st.integers(1, 6))
    numpy_ok = dtype != torch.bfloat16
    samples = []
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    for _ in range(b):
        h, w = draw(st.integers(0, 13)), draw(st.integers(0, 13))
        numpy = numpy_ok and draw(st.booleans())
        layout = draw(st.sampled_from(["contiguous", "transposed", "strided", "flipped"]))
        if layout == "transposed":  # non-contiguous: a [C, W, H] buffer transposed
            image = random_image(rng, dtype, c, w, h, numpy=False).transpose(1, 2)
        elif layout == "strided":  # every other column of a wider image
            image = random_image(rng, dtype, c, h, 2 * w, numpy=False)[:, :, ::2]
        else:
            image = random_image(rng, dtype, c, h, w, numpy=False)
        if numpy:
            image = image.numpy()
            if layout == "flipped":  # negative strides, which only numpy has
                image = image[:, ::-1, :]
        n = draw(st.integers(0, 4))
        target = rng.random((n, d)).astype(np.float32)
        target = torch.from_numpy(target) if draw(st.booleans()) else target
        samples.append((image, target))
    settings_ = {
        "size_divisibility": draw(st.sampled_from([0, 1, 4, 32])),
        "pad_value": draw(st.sampled_from([0, 1]))
        if dtype == torch.bool
        else draw(st.integers(-1 if dtype.is_signed else 0, 100)),
        "channels_last": draw(st.booleans()),
    }
    return samples, settings_


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_property_against_reference(case):
    samples, config = case
    originals = [
        (
            torch.tensor(np.array(i)) if isinstance(i, np.ndarray) else i.clone(),
            np.array(t) if isinstance(t, np.ndarray) else t.clone(),
        )
        for i, t in samples
    ]
    out = DetectionCollate(**config)(samples)
    expected = reference_images(
        [i for i, _ in samples], config["size_divisibility"], config["pad_value"]
    )
    assert_same(out.images, expected)
    if config["channels_last"]:
        assert out.images.is_contiguous(memory_format=torch.channels_last)
    else:
        assert out.images.is_contiguous()
    sizes = [list(np.shape(i)[-2:]) for i, _ in samples]
    assert out.image_sizes.tolist() == sizes
    counts = [len(t) for _, t in samples]
    assert out.counts.tolist() == counts
    assert out.offsets.tolist() == np.concatenate([[0], np.cumsum(counts)]).tolist()
    assert out.batch_index.tolist() == [k for k, n in enumerate(counts) for _ in range(n)]
    for got, (_, want) in zip(out[1], samples, strict=True):
        assert_same(got, as_tensor(want))
    # The inputs are never modified.
    for (i, t), (i0, t0) in zip(samples, originals, strict=True):
        assert torch.equal(as_tensor(i), i0) and torch.equal(as_tensor(t), as_tensor(t0))


@st.composite
def dict_batches(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    b = draw(st.integers(1, 5))
    field_dtypes = {
        "boxes": draw(st.sampled_from([np.float32, np.float64, np.float16])),
        "labels": draw(st.sampled_from([np.int64, np.int32, np.uint8, np.bool_])),
        "landmarks": draw(st.sampled_from([np.float32, np.int16])),
    }
    k = draw(st.integers(1, 4))
    samples = []
    for _ in range(b):
        n = draw(st.integers(0, 5))
        sample = {
            "image": rng.integers(
                0, 255, (2, draw(st.integers(1, 9)), draw(st.integers(1, 9)))
            ).astype(np.uint8),
            "boxes": rng.random((n, 4)).astype(field_dtypes["boxes"]),
            "labels": rng.integers(0, 2, n).astype(field_dtypes["labels"]),
            "landmarks": (rng.random((n, k, 2)) * 100).astype(field_dtypes["landmarks"]),
            "scale": float(rng.random()),
            "flip": bool(rng.integers(0, 2)),
            "matrix": rng.random((2, 3)),
        }
        if draw(st.booleans()):  # tensors and numpy mixed within the batch
            sample = {
                key: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                for key, v in sample.items()
            }
        samples.append(sample)
    return samples, draw(st.sampled_from([0, 8])), field_dtypes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dict_batches())
def test_property_dict_samples_against_reference(case):
    samples, divisibility, field_dtypes = case
    out = DetectionCollate(size_divisibility=divisibility, image_fields=("matrix",))(samples)
    assert_same(out.images, reference_images([s["image"] for s in samples], divisibility))
    counts = [len(s["labels"]) for s in samples]
    assert out.counts.tolist() == counts
    for name in ("boxes", "labels", "landmarks"):
        want = torch.cat([as_tensor(s[name]) for s in samples])
        assert_same(out.packed(name), want)
        assert out.packed(name).dtype == torch.from_numpy(np.zeros(0, field_dtypes[name])).dtype
        for got, s in zip(out[name], samples, strict=True):
            assert_same(got, as_tensor(s[name]))
        padded, mask = out.padded(name)
        assert torch.equal(padded[mask], want) and mask.sum(1).tolist() == counts
    assert_same(out["scale"], torch.tensor([s["scale"] for s in samples], dtype=torch.float64))
    assert_same(out["flip"], torch.tensor([s["flip"] for s in samples]))
    assert_same(out["matrix"], torch.stack([as_tensor(s["matrix"]) for s in samples]))
