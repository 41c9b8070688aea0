"""What a batch holds: padding and size_divisibility, channels_last, per-object / per-image /
string fields and their dtypes, the DetectionBatch API and pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from fastloader import DetectionBatch, DetectionCollate, fast_detection_collate
from tests.helpers.collate import (
    RaggedSamples,
    assert_same,
    random_image,
    reference_images,
)

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: pinned-memory path"
)


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
        for got, s in zip(out[name], samples, strict=True):
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
