"""Bad input: every refused batch or argument raises a clear exception naming the sample, the
field or the argument, and leaves the inputs unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastloader import DetectionCollate, fast_detection_collate
from tests.helpers.collate import dict_sample, pair

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: pinned-memory path"
)


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
