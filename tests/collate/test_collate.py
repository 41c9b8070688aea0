"""Tests of fast_detection_collate / DetectionCollate / DetectionBatch against the stock and a reference."""

from __future__ import annotations

import gc
import math
import pickle

import fastloader
import numpy as np
import pytest
import torch
from tests.helpers.collate import RaggedSamples, collate_reporting_shared
from fastloader.bench.stock import detection_collate as stock_detection_collate
from fastloader import DetectionBatch, DetectionCollate, fast_detection_collate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, default_collate

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: pinned-memory path"
)


def as_tensor(value):
    return (
        torch.from_numpy(np.array(value, order="C", copy=True))
        if isinstance(value, np.ndarray)
        else value
    )


def reference_images(images, size_divisibility=0, pad_value=0):
    """Plain-Python padding, as detectron2's ImageList does it."""
    images = [as_tensor(i) for i in images]
    h = max(i.shape[-2] for i in images)
    w = max(i.shape[-1] for i in images)
    if size_divisibility > 1:
        h = -(-h // size_divisibility) * size_divisibility
        w = -(-w // size_divisibility) * size_divisibility
    out = images[0].new_full((len(images), *images[0].shape[:-2], h, w), pad_value)
    for k, image in enumerate(images):
        out[k, ..., : image.shape[-2], : image.shape[-1]].copy_(image)
    return out


def assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert torch.equal(actual, expected), (actual, expected)


def random_image(rng, dtype, c, h, w, numpy):
    if dtype.is_floating_point:
        t = torch.from_numpy(rng.standard_normal((c, h, w))).to(dtype)
    elif dtype == torch.bool:
        t = torch.from_numpy(rng.integers(0, 2, (c, h, w)).astype(bool))
    else:
        info = torch.iinfo(dtype)
        lo, hi = max(info.min, -1000), min(info.max, 1000)
        t = torch.from_numpy(rng.integers(lo, hi + 1, (c, h, w))).to(dtype)
    return t.numpy() if numpy else t


# ---------------------------------------------------------------- equality with the stock function
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
    for got, want in zip(targets, stock_targets):
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
    for got, (_, want) in zip(out[1], samples):
        assert_same(got, as_tensor(want))
    # The inputs are never modified.
    for (i, t), (i0, t0) in zip(samples, originals):
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
        for got, s in zip(out[name], samples):
            assert_same(got, as_tensor(s[name]))
        padded, mask = out.padded(name)
        assert torch.equal(padded[mask], want) and mask.sum(1).tolist() == counts
    assert_same(out["scale"], torch.tensor([s["scale"] for s in samples], dtype=torch.float64))
    assert_same(out["flip"], torch.tensor([s["flip"] for s in samples]))
    assert_same(out["matrix"], torch.stack([as_tensor(s["matrix"]) for s in samples]))


# ---------------------------------------------------------------- padding and batch fields
def test_padding_values_and_size_divisibility():
    a = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 3, 5)
    b = torch.ones(2, 6, 2)
    out = DetectionCollate(size_divisibility=4, pad_value=-7.5)([(a, [[1, 2]]), (b, [])])
    assert out.images.shape == (2, 2, 8, 8)
    assert torch.equal(out.images[0, :, :3, :5], a)
    assert torch.equal(out.images[1, :, :6, :2], b)
    assert (out.images[0, :, 3:, :] == -7.5).all() and (out.images[0, :, :, 5:] == -7.5).all()
    assert (out.images[1, :, 6:, :] == -7.5).all() and (out.images[1, :, :, 2:] == -7.5).all()
    assert out.image_sizes.dtype == torch.int64 and out.image_sizes.tolist() == [[3, 5], [6, 2]]
    assert [tuple(v.shape) for v in out.per_image("image")] == [(2, 3, 5), (2, 6, 2)]
    # `[]` means zero objects with the batch's D.
    assert out[1][1].shape == (0, 2) and out.counts.tolist() == [1, 0]


def test_channels_last_output():
    images = [torch.randint(0, 255, (3, h, w), dtype=torch.uint8) for h, w in [(5, 7), (6, 3)]]
    out = DetectionCollate(channels_last=True, pad_value=9)(
        [(i, torch.zeros(0, 4)) for i in images]
    )
    assert out.images.shape == (2, 3, 6, 7)
    assert out.images.is_contiguous(memory_format=torch.channels_last)
    assert out.images.stride() == (6 * 7 * 3, 1, 7 * 3, 3)
    assert_same(out.images.contiguous(), reference_images(images, pad_value=9))


def test_padded_targets_mask_and_batch_index():
    targets = [torch.rand(2, 5), torch.rand(0, 5), torch.rand(3, 5)]
    out = fast_detection_collate([(torch.zeros(1, 2, 2), t) for t in targets])
    padded, mask = out.padded(fill=-1)
    assert padded.shape == (3, 3, 5) and mask.shape == (3, 3) and mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    for k, t in enumerate(targets):
        assert torch.equal(padded[k, : len(t)], t)
        assert (padded[k, len(t) :] == -1).all()
    assert out.batch_index.tolist() == [0, 0, 2, 2, 2]
    assert out.offsets.tolist() == [0, 2, 2, 5]
    for name in ("counts", "offsets", "batch_index", "image_sizes"):
        assert getattr(out, name).dtype == torch.int64
    yolo = torch.cat([out.batch_index[:, None].float(), out.packed()], 1)
    assert torch.equal(yolo[:, 1:], torch.cat(targets))


def test_dict_samples_pack_object_fields_and_stack_per_image_fields():
    ds = RaggedSamples(8, as_dict=True)
    samples = [ds[i] for i in range(8)]
    collate = DetectionCollate(size_divisibility=8, image_fields=("intrinsics",))
    for k, s in enumerate(samples):
        s["intrinsics"] = np.eye(3, dtype=np.float32) * k
    out = collate(samples)
    assert out.keys() == list(samples[0].keys())
    assert set(out.object_fields) == {"boxes", "labels", "landmarks"}
    for name in ("boxes", "labels", "landmarks"):
        assert_same(out.packed(name), torch.cat([s[name] for s in samples]))
        for got, s in zip(out[name], samples):
            assert_same(got, s[name])
    assert_same(out["scale"], torch.tensor([s["scale"] for s in samples], dtype=torch.float64))
    assert_same(out["id"], torch.arange(8, dtype=torch.int64))
    assert_same(
        out["intrinsics"], torch.stack([torch.from_numpy(s["intrinsics"]) for s in samples])
    )
    assert_same(out["image"], reference_images([s["image"] for s in samples], 8))
    assert out.counts.tolist() == [len(s["labels"]) for s in samples]
    assert dict(out)["labels"][1].tolist() == samples[1]["labels"].tolist()


def test_dtypes_preserved_in_dict_samples():
    samples = [
        {"image": np.zeros((1, 2, 2), np.uint16), "kp": np.ones((n, 3), np.int32)} for n in (1, 2)
    ]
    out = fast_detection_collate(samples)
    assert out.images.dtype == torch.uint16 and out.packed("kp").dtype == torch.int32
    out = DetectionCollate(target_dtype=None)([(torch.zeros(1, 2, 2), np.ones((2, 2), np.int16))])
    assert out.packed().dtype == torch.int16
    # Mixed dtypes of one field promote as torch.cat does; `[]` takes the batch's dtype.
    mixed = [
        {"image": torch.zeros(1, 2, 2), "labels": lab}
        for lab in (np.array([1], np.int32), torch.tensor([2, 3]), [])
    ]
    out = fast_detection_collate(mixed)
    assert_same(out.packed("labels"), torch.tensor([1, 2, 3]))


def test_multithreaded_large_batch_matches_reference():
    # Big enough (~10 MB) that the kernels split the rows over torch.get_num_threads() threads.
    rng = np.random.default_rng(5)
    images = [
        random_image(rng, torch.float32, 3, 300 + 9 * k, 340 - 7 * k, numpy=False) for k in range(8)
    ]
    images[3] = images[3].transpose(1, 2).contiguous().transpose(1, 2)  # non-contiguous source
    out = DetectionCollate(size_divisibility=32, pad_value=3)(
        [(i, torch.zeros(0, 5)) for i in images]
    )
    assert_same(out.images, reference_images(images, 32, 3))
    cl = DetectionCollate(channels_last=True)([(i, torch.zeros(0, 5)) for i in images])
    assert_same(cl.images, reference_images(images))


def test_byte_swapped_and_flipped_numpy_inputs_are_read_correctly_and_left_alone():
    image = np.arange(24, dtype=">f4").reshape(2, 3, 4)
    snapshot = image.copy()
    flipped = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)[:, ::-1, ::-1]
    out = fast_detection_collate([(image, np.zeros((0, 4), ">f8"))])
    assert out.images.dtype == torch.float32
    assert torch.equal(out.images[0], torch.arange(24.0).view(2, 3, 4))
    assert np.array_equal(image, snapshot) and image.dtype == np.dtype(">f4")
    out = fast_detection_collate([(flipped, [[1.0, 2.0]])])
    assert torch.equal(out.images[0], torch.from_numpy(flipped.copy()))


def test_grayscale_2d_images():
    images = [torch.rand(4, 5), torch.rand(6, 2)]
    out = fast_detection_collate([(i, torch.zeros(0, 4)) for i in images])
    assert_same(out.images, reference_images(images))


# ---------------------------------------------------------------- API and pickling
def test_batch_api_and_repr():
    out = fast_detection_collate([(torch.zeros(3, 2, 2), torch.ones(1, 4))])
    images, _targets = out
    assert len(out) == 2 and out[-1][0].shape == (1, 4) and images is out["image"]
    assert "target" in out and out.batch_size == 1 and "DetectionBatch" in repr(out)
    with pytest.raises(IndexError):
        out[2]
    with pytest.raises(KeyError, match="boxes"):
        out["boxes"]
    with pytest.raises(KeyError, match="not a per-object field"):
        out.packed("image")


def test_collate_and_batch_pickle():
    collate = DetectionCollate(
        size_divisibility=32,
        pad_value=1,
        channels_last=True,
        image_fields=("k",),
        target_dtype=None,
    )
    again = pickle.loads(pickle.dumps(collate))
    assert repr(again) == repr(collate)
    batch = again([(torch.rand(3, 4, 5), torch.rand(2, 5))])
    copy = pickle.loads(pickle.dumps(batch))
    assert isinstance(copy, DetectionBatch)
    assert_same(copy.images, batch.images)
    assert_same(copy.packed(), batch.packed())
    assert_same(copy.batch_index, batch.batch_index)


# ---------------------------------------------------------------- memory kinds
def test_main_process_outputs_come_from_the_recycling_pool():
    if torch.cuda.is_available():
        pytest.skip("with CUDA the main process allocates pinned memory instead")
    fastloader.clear_buffer_pool()
    # 24 MiB of images: small batches come from torch's allocator (test below)
    batch = [(torch.zeros(3, 1024, 512), torch.rand(2, 5)) for _ in range(4)]
    first = fast_detection_collate(batch)
    address = first.images.data_ptr()
    keep = first.per_image("image")[2]  # one view keeps the whole block alive
    del first
    gc.collect()
    second = fast_detection_collate(batch)
    assert second.images.data_ptr() != address
    del second, keep
    gc.collect()
    hits = fastloader.buffer_pool_stats()["hits"]
    third = fast_detection_collate(batch)
    assert fastloader.buffer_pool_stats()["hits"] > hits
    assert third.images.data_ptr() == address  # the most recently returned block comes back
    assert not third.images.is_shared() and not third.images.is_pinned()


def test_pool_reuses_the_block_once_the_last_view_is_freed():
    fastloader.clear_buffer_pool()
    collate = DetectionCollate(memory="pooled")
    batch = [(torch.ones(3, 1024, 2048), torch.zeros(0, 5))]  # 24 MiB: pooled
    out = collate(batch)
    address = out.images.data_ptr()
    live = fastloader.buffer_pool_stats()["live_blocks"]
    del out
    gc.collect()
    assert fastloader.buffer_pool_stats()["live_blocks"] < live
    again = collate(batch)
    assert again.images.data_ptr() == address
    assert torch.equal(again.images, torch.ones(1, 3, 1024, 2048))


def test_small_pooled_batches_come_from_torchs_allocator_and_equal_the_planned_batch():
    # Below POOL_MIN_BYTES the pool's per-batch cost outweighs what it saves (malloc reuses
    # small blocks itself): same-size pairs are stacked as the stock collate stacks them.
    from fastloader.collate._plan import POOL_MIN_BYTES

    fastloader.clear_buffer_pool()
    batch = [
        (torch.randint(0, 255, (3, 32, 48), dtype=torch.uint8), torch.rand(i, 5)) for i in range(4)
    ]
    fast = fast_detection_collate(batch)
    planned = DetectionCollate(memory="shared")  # planned and written by the copy kernels
    assert fastloader.buffer_pool_stats()["live_blocks"] == 0
    assert fast.images.nbytes < POOL_MIN_BYTES
    general = DetectionCollate(size_divisibility=16)(batch)  # 32x48 is divisible: same batch
    for other in (general, planned(batch)):
        assert torch.equal(fast.images, other.images) and torch.equal(fast.packed(), other.packed())
        for name in ("counts", "offsets", "image_sizes", "batch_index"):
            assert torch.equal(getattr(fast, name), getattr(other, name))
    assert [t.shape[0] for t in fast[1]] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="pad_value"):
        DetectionCollate(pad_value=300)(batch)


def test_forced_shared_and_plain_memory():
    batch = [(torch.zeros(3, 4, 4), torch.rand(1, 5))]
    shared = DetectionCollate(memory="shared")(batch)
    assert all(t.is_shared() for t in shared.tensors().values())
    plain = DetectionCollate(memory="plain")(batch)
    assert not plain.images.is_shared()


def test_pin_memory_without_cuda_falls_back_without_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: covered by the pinned tests")
    out = fast_detection_collate([(torch.zeros(3, 4, 4), torch.rand(1, 5))])
    assert out.pin_memory() is out
    assert (
        DetectionCollate(memory="pinned")([(torch.zeros(1, 2, 2), [])]).images.is_pinned() is False
    )


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_use_shared_memory(context):
    ds = RaggedSamples(12)
    loader = DataLoader(
        ds,
        batch_size=4,
        num_workers=2,
        collate_fn=collate_reporting_shared,
        multiprocessing_context=context,
    )
    seen = 0
    for k, (batch, in_worker, shared) in enumerate(loader):
        assert in_worker
        assert shared and all(shared.values()), shared
        samples = [ds[i] for i in range(4 * k, 4 * k + 4)]
        images, targets = batch
        assert_same(images, reference_images([s[0] for s in samples]))
        for got, (_, want) in zip(targets, samples):
            assert_same(got, as_tensor(want).float())
        assert batch.image_sizes.tolist() == [list(s[0].shape[-2:]) for s in samples]
        assert images.is_shared()  # handed over through shared memory, not copied
        seen += 1
    assert seen == 3


def test_dataloader_in_main_process_dict_samples():
    ds = RaggedSamples(6, dtype=torch.float32, as_dict=True)
    loader = DataLoader(ds, batch_size=3, collate_fn=DetectionCollate(size_divisibility=32))
    for k, batch in enumerate(loader):
        samples = [ds[i] for i in range(3 * k, 3 * k + 3)]
        assert_same(batch.images, reference_images([s["image"] for s in samples], 32))
        assert_same(batch.packed("landmarks"), torch.cat([s["landmarks"] for s in samples]))


@pytest.mark.gpu
@needs_cuda
def test_cuda_main_process_outputs_are_pinned():
    out = fast_detection_collate(
        [(torch.rand(3, 8, 8), torch.rand(2, 5)), (torch.rand(3, 6, 8), torch.rand(0, 5))]
    )
    assert out.is_pinned() and out.images.is_pinned() and out.packed().is_pinned()
    assert out.pin_memory() is out


@pytest.mark.gpu
@needs_cuda
def test_cuda_to_device_rebuilds_views():
    cpu = DetectionCollate(memory="plain")(
        [(torch.rand(3, 8, 8), torch.rand(2, 5)), (torch.rand(3, 6, 8), torch.rand(0, 5))]
    )
    pinned = cpu.pin_memory()
    assert pinned is not cpu and pinned.is_pinned() and torch.equal(pinned.images, cpu.images)
    gpu = pinned.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    assert gpu.images.is_cuda and gpu.packed().is_cuda and gpu.batch_index.is_cuda
    assert all(v.is_cuda for v in gpu[1])
    assert torch.equal(gpu.images.cpu(), cpu.images)
    padded, mask = gpu.padded()
    assert padded.is_cuda and mask.tolist() == [[True, True], [False, False]]


@pytest.mark.gpu
@pytest.mark.multiprocess
@needs_cuda
def test_cuda_dataloader_pin_memory_thread():
    loader = DataLoader(
        RaggedSamples(8),
        batch_size=4,
        num_workers=2,
        pin_memory=True,
        collate_fn=fast_detection_collate,
    )
    for batch in loader:
        assert batch.is_pinned() and batch.images.is_pinned()
        assert all(t.is_pinned() for t in batch[1])


# ---------------------------------------------------------------- bad input
def pair(c=3, h=4, w=4, n=1, d=5, dtype=torch.uint8):
    return torch.zeros(c, h, w, dtype=dtype), torch.zeros(n, d)


@pytest.mark.parametrize(
    "batch, error, pattern",
    [
        ([], ValueError, "empty batch"),
        (torch.zeros(2, 3), TypeError, "sequence of samples"),
        ([pair(), pair(c=1)], ValueError, r"sample 1 field 'image' has 1 channels"),
        (
            [pair(), (torch.zeros(1, 3, 4, 4), torch.zeros(0, 5))],
            ValueError,
            r"sample 1 field 'image'.*3-D",
        ),
        ([(torch.zeros(5), torch.zeros(0, 5))], ValueError, r"sample 0 field 'image'.*\[C, H, W\]"),
        ([pair(), pair(dtype=torch.float32)], TypeError, r"sample 1 field 'image' has dtype"),
        (
            [pair(), (torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(5))],
            ValueError,
            r"sample 1 field 'target'.*2-D",
        ),
        (
            [pair(), (torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(2, 5, 1))],
            ValueError,
            r"sample 1 field 'target'.*2-D",
        ),
        (
            [(torch.zeros(3, 4, 4), 3), (torch.zeros(3, 4, 4), 1)],
            ValueError,
            r"sample 0 field 'target'.*2-D",
        ),
        (
            [pair(), (torch.zeros(3, 4, 4, dtype=torch.uint8), torch.tensor(2.0))],
            ValueError,
            r"sample 1 field 'target'.*2-D",
        ),
        ([pair(), pair(d=4)], ValueError, r"sample 1 field 'target' has per-object shape \[4\]"),
        (
            [pair(), (torch.zeros(3, 4, 4, dtype=torch.uint8), [["a", "b"]])],
            TypeError,
            r"sample 1 field 'target'",
        ),
        (
            [pair(), (torch.zeros(3, 4, 4, dtype=torch.uint8), np.array([[object()]]))],
            TypeError,
            r"sample 1 field 'target'",
        ),
        (
            [
                pair(),
                (torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(1, 5, dtype=torch.complex64)),
            ],
            TypeError,
            r"sample 1 field 'target'",
        ),
        (
            [pair(), (torch.zeros(3, 4, 4, dtype=torch.uint8), [[1, 2], [3]])],
            ValueError,
            r"sample 1 field 'target'",
        ),
        ([pair(), ("not an image", torch.zeros(0, 5))], TypeError, r"sample 1 field 'image'"),
        ([pair(), (None, torch.zeros(0, 5))], TypeError, r"sample 1 field 'image'"),
        (
            [pair(), (torch.zeros(3, 4, 4, dtype=torch.uint8), None)],
            TypeError,
            r"sample 1 field 'target'",
        ),
        ([pair(), (1, 2, 3)], TypeError, r"sample 1 should be an \(image, target\) pair"),
        ([pair(), {"image": torch.zeros(3, 4, 4)}], TypeError, r"sample 1 is a dict"),
    ],
)
def test_bad_tuple_batches_raise(batch, error, pattern):
    with pytest.raises(error, match=pattern):
        fast_detection_collate(batch)


def dict_sample(n=2, **extra):
    sample = {
        "image": torch.zeros(3, 4, 4),
        "boxes": torch.zeros(n, 4),
        "labels": torch.zeros(n, dtype=torch.int64),
    }
    sample.update(extra)
    return sample


@pytest.mark.parametrize(
    "batch, error, pattern",
    [
        (
            [dict_sample(), {"image": torch.zeros(3, 4, 4), "boxes": torch.zeros(1, 4)}],
            ValueError,
            r"sample 1 is missing field 'labels'",
        ),
        (
            [dict_sample(), dict_sample(extra=torch.zeros(2))],
            ValueError,
            r"sample 1 has field 'extra'",
        ),
        (
            [
                dict_sample(),
                {
                    "image": torch.zeros(3, 4, 4),
                    "boxes": torch.zeros(3, 4),
                    "labels": torch.zeros(2),
                },
            ],
            ValueError,
            r"sample 1 field 'labels' has 2 objects but field 'boxes' has 3",
        ),
        ([{"boxes": torch.zeros(1, 4)}], ValueError, r"no image field 'image'"),
        (
            [dict_sample(name="a"), dict_sample(name=torch.zeros(2))],
            TypeError,
            r"sample 1 field 'name'",
        ),
        (
            [dict_sample(s=1.0), dict_sample(s=torch.zeros(2))],
            ValueError,
            r"sample 1 field 's' has shape \[2\]",
        ),
        (
            [dict_sample(), dict_sample(boxes=np.array([["x"] * 4] * 2))],
            TypeError,
            r"sample 1 field 'boxes'",
        ),
        (
            [dict_sample(), dict_sample(labels=torch.tensor(3))],
            ValueError,
            r"sample 1 field 'labels'.*0-d",
        ),
    ],
)
def test_bad_dict_batches_raise(batch, error, pattern):
    with pytest.raises(error, match=pattern):
        fast_detection_collate(batch)


def test_pad_value_that_the_dtype_cannot_hold():
    with pytest.raises(ValueError, match="pad_value=300"):
        DetectionCollate(pad_value=300)([pair()])
    with pytest.raises(ValueError, match="pad_value=0.5"):
        DetectionCollate(pad_value=0.5)([pair()])
    out = DetectionCollate(pad_value=math.nan)(
        [(torch.zeros(1, 1, 1), []), (torch.zeros(1, 2, 2), [])]
    )
    assert math.isnan(out.images[0, 0, 1, 1].item())


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"size_divisibility": -1}, ValueError, "size_divisibility"),
        ({"size_divisibility": 2.0}, ValueError, "size_divisibility"),
        ({"pad_value": "0"}, TypeError, "pad_value"),
        ({"pad_value": 1j}, TypeError, "pad_value"),
        ({"channels_last": 1}, ValueError, "channels_last"),
        ({"image_key": ""}, TypeError, "image_key"),
        ({"image_fields": "scale"}, TypeError, "image_fields"),
        ({"image_fields": ("image",)}, ValueError, "image_fields"),
        ({"target_dtype": torch.complex64}, TypeError, "target_dtype"),
        ({"memory": "gpu"}, ValueError, "memory"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        DetectionCollate(**kwargs)


def test_channels_last_needs_three_dimensional_images():
    with pytest.raises(ValueError, match="channels_last=True"):
        DetectionCollate(channels_last=True)([(torch.zeros(4, 4), [])])


@pytest.mark.gpu
@needs_cuda
def test_cuda_input_tensors_are_refused():
    with pytest.raises(ValueError, match="sample 0 field 'image'.*CPU"):
        fast_detection_collate([(torch.zeros(3, 4, 4, device="cuda"), [])])


def test_failed_collate_leaves_inputs_unchanged():
    image = torch.arange(48, dtype=torch.uint8).view(3, 4, 4)
    target = np.arange(10, dtype=np.float64).reshape(2, 5)
    with pytest.raises(ValueError):
        fast_detection_collate([(image, target), (image, np.zeros(3))])
    assert torch.equal(image, torch.arange(48, dtype=torch.uint8).view(3, 4, 4))
    assert np.array_equal(target, np.arange(10.0).reshape(2, 5)) and target.dtype == np.float64


# ---------------------------------------------------------------- cases found in use (issue 11)
def test_empty_list_target_before_the_first_sample_with_boxes():
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    boxes = torch.rand(2, 5)
    for first in ([], [[]][0]):  # `[]` as the first sample, then one with boxes
        out = fast_detection_collate([(image, first), (image, boxes), (image, [])])
        assert out.counts.tolist() == [0, 2, 0]
        assert_same(out.packed(), boxes)
        assert [t.shape for t in out[1]] == [(0, 5), (2, 5), (0, 5)]


def test_empty_list_field_before_the_first_sample_with_boxes_dict_samples():
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    boxes = torch.rand(3, 4, dtype=torch.float64)
    labels = torch.tensor([1, 2, 3])
    out = fast_detection_collate(
        [
            {"image": image, "boxes": [], "labels": []},
            {"image": image, "boxes": boxes, "labels": labels},
        ]
    )
    assert out.counts.tolist() == [0, 3]
    assert_same(out.packed("boxes"), boxes)  # dtype of the samples with objects
    assert_same(out.packed("labels"), labels)
    assert out["boxes"][0].shape == (0, 4)


def test_field_values_are_never_compared_element_wise():
    """Equal-looking samples (the same tensor twice, [] twice) stay distinct sources."""
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    boxes = torch.rand(2, 5)
    out = fast_detection_collate([(image, boxes), (image, boxes), (image, []), (image, [])])
    assert_same(out.packed(), torch.cat([boxes, boxes]))
    bad = [(image, boxes), (image, boxes), (image, torch.rand(1, 4))]
    with pytest.raises(ValueError, match=r"sample 2 field 'target' has per-object shape \[4\]"):
        fast_detection_collate(bad)


def test_negative_stride_array_that_needs_a_dtype_conversion():
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    flipped = np.arange(10, dtype=np.int32)[::-1].reshape(5, 2)[::-1]  # negative strides
    floats = np.arange(4, dtype=np.float64).reshape(2, 2)
    out = fast_detection_collate([{"image": image, "x": flipped}, {"image": image, "x": floats}])
    want = torch.cat([torch.from_numpy(flipped.copy()).double(), torch.from_numpy(floats)])
    assert_same(out.packed("x"), want)
    target = np.arange(10, dtype=np.float64)[::-1].reshape(2, 5)  # float64 -> float32 target
    out = fast_detection_collate([(image, target)])
    assert_same(out.packed(), torch.from_numpy(target.copy()).float())
    assert np.array_equal(flipped, np.arange(10, dtype=np.int32)[::-1].reshape(5, 2)[::-1])


def test_unsigned_and_signed_integers_in_one_field_raise_naming_sample_and_field():
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    same = [{"image": image, "ids": np.arange(3, dtype=np.uint16)} for _ in range(2)]
    assert fast_detection_collate(same).packed("ids").dtype == torch.uint16
    for unsigned in (np.uint16, np.uint32, np.uint64):
        batch = [
            {"image": image, "ids": np.arange(3, dtype=unsigned)},
            {"image": image, "ids": np.arange(3, dtype=np.int32)},
        ]
        with pytest.raises(TypeError, match=r"sample 1 field 'ids' has dtype torch.int32"):
            fast_detection_collate(batch)
    stacked = [{"image": image, "k": np.uint32(1)}, {"image": image, "k": np.int64(2)}]
    with pytest.raises(TypeError, match=r"sample 1 field 'k'"):
        fast_detection_collate(stacked)


def test_field_named_index_is_refused_not_replaced():
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"field '__index__'.*reserved"):
        fast_detection_collate([{"image": image, "__index__": torch.ones(2, 3)}])
    with pytest.raises(ValueError, match=r"image_key='__index__' is reserved"):
        DetectionCollate(image_key="__index__")


def test_image_key_target_with_tuple_samples_is_refused_and_works_with_dicts():
    image = torch.arange(48, dtype=torch.uint8).view(3, 4, 4)
    collate = DetectionCollate(image_key="target")
    with pytest.raises(ValueError, match=r"image_key='target'"):
        collate([(image, torch.rand(2, 5))])
    out = collate([{"target": image, "boxes": torch.rand(2, 4)}])
    assert_same(out.images, image.unsqueeze(0))
    assert out.keys() == ["target", "boxes"]


def test_size_divisibility_beyond_the_bound_is_refused_at_the_call():
    with pytest.raises(ValueError, match=r"size_divisibility should be at most 65536"):
        DetectionCollate(size_divisibility=2**40)
    assert DetectionCollate(size_divisibility=2**16).size_divisibility == 2**16
    image = torch.zeros(1, 3, 5, dtype=torch.uint8)
    out = DetectionCollate(size_divisibility=1024)([(image, [])])
    assert out.images.shape == (1, 1, 1024, 1024)


def test_oversized_batch_raises_naming_the_field():
    collate = DetectionCollate(size_divisibility=2**16)
    image = torch.zeros(1, 1, 2, dtype=torch.float64).expand(2**30, 1, 2)  # no memory behind it
    with pytest.raises(ValueError, match=r"field 'image'.*more than this platform can address"):
        collate([(image, [])])


def test_field_kinds_are_an_enum_that_compares_as_str():
    from fastloader.collate.batch import FieldKind

    out = fast_detection_collate([dict_sample(s=1.0, name="a")])
    assert out._kinds == {
        "image": FieldKind.IMAGE,
        "boxes": FieldKind.OBJECT,
        "labels": FieldKind.OBJECT,
        "s": FieldKind.PER_IMAGE,
        "name": FieldKind.LIST,
    }
    assert FieldKind.OBJECT == "object" and "boxes=object [2, 4]" in repr(out)


def test_deepcopy_of_a_collate_and_torch_save_of_a_batch():
    import copy
    import io

    collate = DetectionCollate(size_divisibility=8)
    twin = copy.deepcopy(collate)
    assert repr(twin) == repr(collate)
    batch = collate([(torch.rand(3, 4, 5), torch.rand(2, 5))])
    buffer = io.BytesIO()
    torch.save(batch, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert_same(loaded.images, batch.images)
    assert_same(loaded.packed(), batch.packed())


# ---------------------------------------------------------------- the kernels' own checks
def test_pack_arrays_checks_sizes_strides_and_writability():
    from fastloader import _C

    source = np.arange(4, dtype=np.int32)
    out = np.zeros(16, dtype=np.uint8)
    _C.pack_arrays([source], 4, out)
    assert np.array_equal(out.view(np.int32), source)
    with pytest.raises(ValueError, match="holds 8 bytes, 16 needed"):
        _C.pack_arrays([source], 4, np.zeros(8, dtype=np.uint8))
    with pytest.raises(ValueError, match="array 0 has 4-byte elements, expected 8"):
        _C.pack_arrays([source], 8, np.zeros(64, dtype=np.uint8))
    with pytest.raises(ValueError, match="element_size must be positive"):
        _C.pack_arrays([source], 0, out)
    read_only = np.zeros(16, dtype=np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out should be a writable buffer"):
        _C.pack_arrays([source], 4, read_only)
    with pytest.raises(ValueError, match="out should be a writable buffer"):
        _C.pack_arrays([source], 4, bytes(16))
    with pytest.raises(ValueError, match="out should be contiguous"):
        _C.pack_arrays([source], 4, np.zeros(32, dtype=np.uint8)[::2])
    with pytest.raises(ValueError, match="out should be 1-D"):
        _C.pack_arrays([source], 4, np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="array 0 should be a numpy array, but got Tensor"):
        _C.pack_arrays([torch.arange(4, dtype=torch.int32)], 4, out)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        _C.pack_arrays([source], 4, out, 0)
    assert np.array_equal(read_only, np.zeros(16, dtype=np.uint8))


def test_bogus_strides_are_a_value_error():
    from fastloader import _C

    base = np.zeros(1, dtype=np.int32)
    overflowing = np.lib.stride_tricks.as_strided(base, shape=(3,), strides=(2**62,))
    with pytest.raises(ValueError, match="stride overflows int64"):
        _C.pack_arrays([overflowing], 4, np.zeros(12, dtype=np.uint8))
    image = np.lib.stride_tricks.as_strided(
        np.zeros(1, dtype=np.uint8), shape=(1, 2, 3), strides=(0, -(2**63) + 1, 1)
    )
    with pytest.raises(ValueError, match="stride overflows int64"):
        _C.pad_images([image], 1, 2, 3, b"\0", False, np.zeros(6, dtype=np.uint8))


def test_pad_images_checks_its_output_and_element_size():
    from fastloader import _C

    image = np.arange(6, dtype=np.uint16).reshape(1, 2, 3)
    out = np.zeros(2 * 2 * 4, dtype=np.uint8)
    _C.pad_images([image], 1, 2, 4, b"\xff\xff", False, out)
    assert out.view(np.uint16).reshape(2, 4).tolist() == [[0, 1, 2, 65535], [3, 4, 5, 65535]]
    with pytest.raises(ValueError, match="holds 15 bytes, 16 needed"):
        _C.pad_images([image], 1, 2, 4, b"\0\0", False, np.zeros(15, dtype=np.uint8))
    with pytest.raises(ValueError, match="image 0 has 2-byte elements, expected 4"):
        _C.pad_images([image], 1, 2, 4, b"\0\0\0\0", False, np.zeros(64, dtype=np.uint8))
    with pytest.raises(ValueError, match="overflows int64"):
        _C.pad_images([image], 1, 2**40, 2**40, b"\0\0", False, out)
    with pytest.raises(ValueError, match="does not fit the batch slot"):
        _C.pad_images([image], 1, 1, 4, b"\0\0", False, out)


def test_write_index_block_checks_lengths_dtype_and_writability():
    from fastloader import _C

    out = np.zeros(4 * 2 + 1 + 3, dtype=np.int64)
    _C.write_index_block([1, 2], [5, 6, 7, 8], out)
    assert out.tolist() == [1, 2, 0, 1, 3, 5, 6, 7, 8, 0, 1, 1]
    with pytest.raises(ValueError, match=r"holds 11 entries, expected 12 \(4 \* 2 \+ 1 \+ 3\)"):
        _C.write_index_block([1, 2], [5, 6, 7, 8], np.zeros(11, dtype=np.int64))
    with pytest.raises(ValueError, match="image_sizes holds 3 values"):
        _C.write_index_block([1, 2], [5, 6, 7], out)
    with pytest.raises(TypeError, match="out should be a C-contiguous native int64 array"):
        _C.write_index_block([1, 2], [5, 6, 7, 8], np.zeros(12, dtype=np.int32))
    with pytest.raises(TypeError, match="out should be a C-contiguous native int64 array"):
        _C.write_index_block([1, 2], [5, 6, 7, 8], np.zeros(24, dtype=np.int64)[::2])
    frozen = np.zeros(12, dtype=np.int64)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out should be writable"):
        _C.write_index_block([1, 2], [5, 6, 7, 8], frozen)
    with pytest.raises(ValueError, match="negative"):
        _C.write_index_block([1, -1], [5, 6, 7, 8], np.zeros(9, dtype=np.int64))
    with pytest.raises(ValueError, match="overflows int64"):
        _C.write_index_block([2**62, 2**62], [5, 6, 7, 8], np.zeros(9, dtype=np.int64))
    assert out.tolist() == [1, 2, 0, 1, 3, 5, 6, 7, 8, 0, 1, 1]  # failed calls wrote nothing


def test_pooled_buffer_sizes_are_checked():
    from fastloader import _C

    with pytest.raises(ValueError, match="bytes must be non-negative"):
        _C.PooledBuffer(-1)
    with pytest.raises(MemoryError):
        _C.PooledBuffer(2**62)
    block = np.asarray(_C.PooledBuffer(100))
    assert block.shape == (100,) and block.flags.writeable
    try:
        fastloader.set_buffer_pool_limit(2**70)  # more than int64: no limit, not an error
        assert fastloader.buffer_pool_stats()["limit_bytes"] == 2**63 - 1
    finally:
        fastloader.set_buffer_pool_limit(1 << 30)


# ---------------------------------------------------------------- the fast path for tensor pairs
def _general_path(batch, collate):
    from fastloader.collate._general import plan_samples
    from fastloader.collate._samples import as_dicts
    from fastloader.collate._write import write_batch

    samples, tuple_samples = as_dicts(batch, collate.image_key)
    return write_batch(plan_samples(samples, tuple_samples, collate._options), "plain")


def _same_batch(a, b):
    assert a.keys() == b.keys()
    for name in a.keys():
        x, y = a.tensors()[name], b.tensors()[name]
        assert x.dtype == y.dtype and x.shape == y.shape and x.stride() == y.stride(), name
        assert torch.equal(x, y), name
    assert torch.equal(a.tensors()["__index__"], b.tensors()["__index__"])
    assert a._layout == b._layout


def _pair_batches():
    g = torch.Generator().manual_seed(5)
    same = [
        (torch.randint(0, 256, (3, 8, 6), generator=g, dtype=torch.uint8), torch.rand(k, 5))
        for k in (0, 2, 3)
    ]
    varied = [(torch.rand(3, h, w, generator=g), torch.rand(1, 4)) for h, w in ((5, 7), (8, 3))]
    strided = [(torch.rand(3, 10, 12)[:, ::2, 1::2], torch.rand(6, 5)[::2]) for _ in range(2)]
    last = [(torch.rand(4, 4, 3).permute(2, 0, 1), torch.rand(2, 5))]
    negated = [(torch.rand(3, 4, 4)._neg_view(), torch.rand(2, 5)._neg_view()) for _ in range(2)]
    bf16 = [(torch.rand(3, 4, 5).to(torch.bfloat16), torch.rand(2, 5)) for _ in range(2)]
    return {
        "same": same,
        "varied": varied,
        "strided": strided,
        "channels_last_input": last,
        "negated": negated,
        "bfloat16": bf16,
    }


@pytest.mark.parametrize("case", sorted(_pair_batches()))
@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"size_divisibility": 4, "pad_value": 7},
        {"channels_last": True},
        {"target_dtype": None},
        {"size_divisibility": 2},
    ],
)
def test_fast_pair_path_matches_the_general_path(case, settings):
    batch = _pair_batches()[case]
    collate = DetectionCollate(memory="plain", **settings)
    _same_batch(collate(batch), _general_path(batch, collate))


def test_fast_pair_path_is_taken_for_plain_pairs_and_refuses_the_rest():
    from fastloader.collate._pairs import plan_pairs

    options = fast_detection_collate._options
    plain = [(torch.rand(3, 4, 4), torch.rand(2, 5)) for _ in range(3)]
    assert plan_pairs(plain, options) is not None
    assert plan_pairs(tuple(plain), options) is not None
    refused = {
        "grad": [(torch.rand(3, 4, 4, requires_grad=True), torch.rand(2, 5))],
        "int target": [(torch.rand(3, 4, 4), torch.ones(2, 5, dtype=torch.int64))],
        "mixed image dtypes": [plain[0], (torch.rand(3, 4, 4).double(), torch.rand(2, 5))],
        "1-D target": [(torch.rand(3, 4, 4), torch.rand(5))],
        "gray image": [(torch.rand(4, 4), torch.rand(2, 5))],
        "numpy image": [(np.zeros((3, 4, 4), np.float32), torch.rand(2, 5))],
        "list target": [(torch.rand(3, 4, 4), [[1.0, 2.0]])],
        "triple": [(torch.rand(3, 4, 4), torch.rand(2, 5), 1)],
        "dict": [{"image": torch.rand(3, 4, 4)}],
        "sparse": [(torch.rand(3, 4, 4).to_sparse(), torch.rand(2, 5))],
        "channels differ": [plain[0], (torch.rand(1, 4, 4), torch.rand(2, 5))],
        "widths differ": [plain[0], (torch.rand(3, 4, 4), torch.rand(2, 4))],
    }
    for name, batch in refused.items():
        assert plan_pairs(batch, options) is None, name


def test_fast_pair_path_errors_are_the_general_paths():
    bad_pad = DetectionCollate(pad_value=300, size_divisibility=8)
    with pytest.raises(ValueError, match="pad_value=300 cannot be"):
        bad_pad([(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.rand(1, 5))])
    with pytest.raises(ValueError, match="expected a 2-D"):
        fast_detection_collate([(torch.zeros(3, 4, 4), torch.rand(5))])
    with pytest.raises(TypeError, match="share a dtype"):
        fast_detection_collate(
            [
                (torch.zeros(3, 4, 4), torch.rand(1, 5)),
                (torch.zeros(3, 4, 4).double(), torch.rand(1, 5)),
            ]
        )
