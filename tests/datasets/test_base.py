"""Issue 17: the four detection readers share one base class (datasets/_base.py), so the index
checks, sample formats, transforms, batch fetch and statistics exist once"""

from __future__ import annotations

import pytest
import torch

from fastloader import COCODetection, SyntheticDetection, WIDERFace, YOLODetection
from fastloader.datasets import TARGET_COLUMNS, WIDERFACE_TARGET_COLUMNS, synthetic_widerface
from fastloader.datasets._base import DetectionDataset
from fastloader.datasets.voc import VOCDetection

READERS = [VOCDetection, COCODetection, YOLODetection, WIDERFace]
SHARED = [
    "__getitem__",
    "__getitems__",
    "_fetch",
    "_defers",
    "_position",
    "_format",
    "_target",
    "labels",
    "class_histogram",
    "image_class_weights",
    "image_sizes",
    "aspect_ratios",
    "image_path",
    "num_classes",
    "target_columns",
]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_readers_keep_only_their_format_and_share_the_rest(reader):
    assert issubclass(reader, DetectionDataset)
    redefined = [name for name in SHARED if name in vars(reader)]
    assert redefined == []


def _check_columns(ds, columns):
    assert ds.target_columns == columns
    checked = 0
    for index in range(len(ds)):
        ds.sample_format = "tuple"
        image, target = ds[index]
        ds.sample_format = "dict"
        sample = ds[index]
        assert torch.equal(image, sample["image"])
        count = len(sample["labels"])
        assert target.shape == (count, 15) and target.dtype == torch.float32
        assert torch.equal(target[:, columns["boxes"]], sample["boxes"])
        assert torch.equal(target[:, columns["label"]], sample["labels"].float())
        assert torch.equal(target[:, columns["landmarks"]], sample["landmarks"].reshape(count, 10))
        checked += count
    assert checked > 0


def test_voc_and_widerface_targets_follow_their_column_layouts(tmp_path):
    voc = SyntheticDetection(tmp_path / "voc", 4, max_size=32, max_boxes=4, seed=1)
    _check_columns(voc, TARGET_COLUMNS)
    faces = WIDERFace(synthetic_widerface(tmp_path / "w", 4, seed=1, width=32, max_faces=4))
    _check_columns(faces, WIDERFACE_TARGET_COLUMNS)
    assert WIDERFACE_TARGET_COLUMNS["label"] == 14 and TARGET_COLUMNS["label"] == 4
