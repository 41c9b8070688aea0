"""Issue 18 item 28, the datasets' side: every public dataset class and function documents its
arguments and shows an example, and the examples run as doctests"""

from __future__ import annotations

import doctest
import inspect

import pytest

from fastloader.datasets import annotations, coco, synthetic, voc, widerface, yolo
from fastloader.io import decode

DOCUMENTED = [
    voc.VOCDetection,
    synthetic.SyntheticDetection,
    synthetic.synthetic_widerface,
    widerface.WIDERFace,
    synthetic.voc_shape_sizes,
    annotations.class_histogram,
    annotations.image_class_weights,
    decode.read_image,
    decode.image_size,
    coco.COCODetection,
    coco.to_coco_json,
    coco.index_reads,
    yolo.YOLODetection,
    yolo.read_data_yaml,
]


@pytest.mark.parametrize("item", DOCUMENTED, ids=lambda item: item.__qualname__)
def test_item28_dataset_docstrings_have_args_and_an_example(item):
    doc = inspect.getdoc(item) or ""
    assert "Args:" in doc or not inspect.signature(item).parameters, item
    assert "Example:" in doc and ">>>" in doc.split("Example:", 1)[1], item


@pytest.mark.parametrize(
    "module", [voc, synthetic, widerface, annotations, decode, coco, yolo], ids=lambda m: m.__name__
)
def test_item28_dataset_examples_run_as_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0, result
