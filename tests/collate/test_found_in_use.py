"""Cases found in use (issue 11): empty-list fields, element-wise comparisons, strides, mixed
signed/unsigned fields, reserved names, bounds, enums, copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastloader import DetectionCollate, fast_detection_collate
from tests.helpers.collate import (
    assert_same,
    dict_sample,
)

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: pinned-memory path"
)


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
