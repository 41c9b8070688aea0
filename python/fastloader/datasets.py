"""Detection datasets: Pascal VOC folders, the synthetic VOC-layout set, and label statistics"""

from .annotations import NUM_LANDMARKS, class_histogram, image_class_weights
from .decode import available_decoders, default_jpeg_decoder, read_image
from .synthetic import VOC_SHAPES, SyntheticDetection
from .voc import TARGET_COLUMNS, VOC_CLASSES, VOCDetection

__all__ = [
    "VOCDetection",
    "SyntheticDetection",
    "image_class_weights",
    "class_histogram",
    "read_image",
    "available_decoders",
    "default_jpeg_decoder",
    "TARGET_COLUMNS",
    "NUM_LANDMARKS",
    "VOC_CLASSES",
    "VOC_SHAPES",
]
