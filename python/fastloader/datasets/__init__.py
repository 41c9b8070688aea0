"""Detection datasets: Pascal VOC folders (`voc`), COCO / LVIS JSON (`coco`), YOLO folders
(`yolo`), WIDER FACE in Pytorch_Retinaface's layout (`widerface`), the synthetic VOC- and
WIDER-layout sets (`synthetic`) and the annotation parsing and label statistics they share
(`annotations`). The readers are one base class (`_base.DetectionDataset`: index checks, sample
formats, transforms, the batch fetch, statistics) plus their format's parsing. Imports `_util`
and `io` (decoding, images left in their files); never `sampling`, `collate` or `bench`."""

from ..io.decode import available_decoders, default_jpeg_decoder, read_image
from .annotations import NUM_LANDMARKS, class_histogram, image_class_weights
from .coco import COCODetection, to_coco_json
from .synthetic import VOC_SHAPES, SyntheticDetection, synthetic_widerface
from .voc import TARGET_COLUMNS, VOC_CLASSES, VOCDetection
from .widerface import WIDERFACE_TARGET_COLUMNS, WIDERFace
from .yolo import YOLODetection, read_data_yaml

__all__ = [
    "VOCDetection",
    "COCODetection",
    "to_coco_json",
    "YOLODetection",
    "read_data_yaml",
    "SyntheticDetection",
    "WIDERFace",
    "synthetic_widerface",
    "image_class_weights",
    "class_histogram",
    "read_image",
    "available_decoders",
    "default_jpeg_decoder",
    "TARGET_COLUMNS",
    "WIDERFACE_TARGET_COLUMNS",
    "NUM_LANDMARKS",
    "VOC_CLASSES",
    "VOC_SHAPES",
]
