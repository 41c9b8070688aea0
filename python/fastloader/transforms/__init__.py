"""fastloader.transforms: native detection augmentation (crop, distort, expand, flip, resize,
normalize) keyed by (seed, epoch, index), per sample or written straight into a batch slot."""

from .deferred import AugmentedImage
from .ops import (
    FACE_5_POINT_PAIRS,
    INTER_AREA,
    INTER_CUBIC,
    INTER_LANCZOS4,
    INTER_LINEAR,
    INTER_NEAREST,
    Distort,
    Expand,
    Flip,
    IoUCrop,
    Op,
    PadToSquare,
    Resize,
    SquareCrop,
)
from .pipeline import AugmentPipeline, AugmentPlan
from .presets import detection, retinaface, ssd

__all__ = [
    "AugmentPipeline",
    "AugmentPlan",
    "AugmentedImage",
    "Op",
    "SquareCrop",
    "IoUCrop",
    "Distort",
    "Expand",
    "Flip",
    "PadToSquare",
    "Resize",
    "retinaface",
    "ssd",
    "detection",
    "FACE_5_POINT_PAIRS",
    "INTER_NEAREST",
    "INTER_LINEAR",
    "INTER_CUBIC",
    "INTER_AREA",
    "INTER_LANCZOS4",
]
