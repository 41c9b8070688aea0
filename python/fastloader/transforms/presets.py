"""Presets reproducing known detection pipelines (every parameter overridable)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

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
    Resize,
    SquareCrop,
)
from .pipeline import AugmentPipeline

# Caffe's BGR means, used by Pytorch_Retinaface and ssd.pytorch.
BGR_MEANS = (104.0, 117.0, 123.0)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def retinaface(
    size: int = 640,
    *,
    mean: Any = BGR_MEANS,
    crop_scales: Sequence[float] | None = None,
    flip_pairs: Sequence[tuple[int, int]] = FACE_5_POINT_PAIRS,
    interpolations: Sequence[int] = (
        INTER_LINEAR,
        INTER_CUBIC,
        INTER_AREA,
        INTER_NEAREST,
        INTER_LANCZOS4,
    ),
    input_order: str = "RGB",
    output_order: str = "BGR",
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    **overrides: Any,
) -> AugmentPipeline:
    """Pytorch_Retinaface's ``preproc(size, (104, 117, 123))``.

    Random square crop (scale 1.0 one time in five, else uniform in [0.3, 1); 250 tries, else the
    whole image padded to a square with the mean), the photometric distortion, a mirror swapping
    the eyes and the mouth corners, a resize to ``size`` x ``size`` with an interpolation drawn
    from linear, cubic, area, nearest and lanczos4, mean subtraction, float32 CHW BGR, boxes and
    landmarks divided by the image size. Differences from the original: missing landmarks stay
    (-1, -1) instead of being moved; boxes are clipped to the image at the end.

    Args:
        size: the output side.
        mean: subtracted per output channel (BGR order by default), also the pad colour.
        crop_scales: a set of crop scales to draw from instead (FaceBoxes' is
            ``(0.3, 0.45, 0.6, 0.8, 1.0)``).
        flip_pairs: landmark point pairs the mirror swaps.
        interpolations: the interpolations drawn from (cv2.INTER_* codes or names).
        input_order: channel order of the decoded images ("RGB" from PIL / simplejpeg,
            "BGR" from cv2.imread).
        output_order: channel order written (the original trains on BGR).
        dtype: output dtype.
        seed: the stream's seed (None: drawn from torch's default generator).
        **overrides: any other :class:`AugmentPipeline` argument.

    Example:
        >>> import numpy as np
        >>> from fastloader.transforms import retinaface
        >>> pipe = retinaface(64, seed=0)
        >>> target = np.array([[8, 8, 40, 40] + [-1] * 10 + [1]], np.float32)
        >>> image, out = pipe(np.zeros((48, 64, 3), np.uint8), target, index=0)
        >>> tuple(image.shape), image.dtype, out.shape
        ((3, 64, 64), torch.float32, (1, 15))
    """
    ops = [
        SquareCrop(scales=crop_scales),
        Distort(),
        Flip(pairs=flip_pairs, probability=0.5),
        Resize(size, interpolation=tuple(interpolations)),
    ]
    return _pipeline(
        ops,
        overrides,
        mean=mean,
        dtype=dtype,
        input_order=input_order,
        output_order=output_order,
        normalize_boxes=True,
        seed=seed,
    )


def ssd(
    size: int = 300,
    *,
    mean: Any = BGR_MEANS,
    max_ratio: float = 4.0,
    min_ious: Sequence[float] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
    input_order: str = "RGB",
    output_order: str = "BGR",
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    **overrides: Any,
) -> AugmentPipeline:
    """ssd.pytorch's ``SSDAugmentation(size)`` with torchvision's ``RandomIoUCrop``.

    Photometric distortion (in OpenCV's uint8 HSV, where ssd.pytorch used float HSV), expand
    onto a mean-filled canvas up to ``max_ratio`` (probability 1/2), IoU crop, mirror (1/2),
    linear resize to ``size`` x ``size``, mean subtraction, boxes divided by the image size.

    Args:
        size: the output side.
        mean: subtracted per output channel, also the expand canvas colour.
        max_ratio: the expand's largest ratio.
        min_ious: the IoU crop's minimums (1.0: no crop).
        input_order: channel order of the images given.
        output_order: channel order written.
        dtype: output dtype.
        seed: the stream's seed.
        **overrides: any other :class:`AugmentPipeline` argument.

    Example:
        >>> import numpy as np
        >>> from fastloader.transforms import ssd
        >>> image, target = ssd(32, seed=1)(np.zeros((40, 50, 3), np.uint8),
        ...                                 {"boxes": np.array([[5, 5, 30, 30]], np.float32),
        ...                                  "labels": np.array([3])}, index=7)
        >>> tuple(image.shape), target["labels"].tolist()
        ((3, 32, 32), [3])
    """
    ops = [
        Distort(),
        Expand(max_ratio=max_ratio, probability=0.5),
        IoUCrop(min_ious=min_ious),
        Flip(pairs=(), probability=0.5),
        Resize(size, interpolation=INTER_LINEAR),
    ]
    return _pipeline(
        ops,
        overrides,
        mean=mean,
        dtype=dtype,
        input_order=input_order,
        output_order=output_order,
        normalize_boxes=True,
        seed=seed,
    )


def detection(
    min_size: int | Sequence[int] = 800,
    max_size: int = 1333,
    *,
    size_divisibility: int = 32,
    flip_probability: float = 0.5,
    flip_pairs: Sequence[tuple[int, int]] = (),
    interpolation: Any = INTER_LINEAR,
    mean: Any = IMAGENET_MEAN,
    std: Any = IMAGENET_STD,
    input_order: str = "RGB",
    output_order: str = "RGB",
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    **overrides: Any,
) -> AugmentPipeline:
    """A plain detection pipeline (torchvision's / detectron2's): flip, shorter-side resize
    (drawn from ``min_size`` when it is a sequence) capped at ``max_size``, padded to a multiple
    of ``size_divisibility`` with the fill (the mean, so about 0 after normalization), ImageNet
    mean / std, boxes in output pixels.

    Args:
        min_size: the shorter side, or the sizes to draw it from.
        max_size: the cap on the longer side.
        size_divisibility: pad the output to multiples of this (1: no pad).
        flip_probability: probability of the mirror.
        flip_pairs: landmark pairs the mirror swaps (none by default).
        interpolation: the resize's interpolation(s).
        mean: per output channel, 0-255 scale.
        std: per output channel, 0-255 scale.
        input_order: channel order of the images given.
        output_order: channel order written.
        dtype: output dtype.
        seed: the stream's seed.
        **overrides: any other :class:`AugmentPipeline` argument.

    Example:
        >>> import numpy as np
        >>> from fastloader.transforms import detection
        >>> image, _ = detection(64, 100, seed=0)(np.zeros((30, 50, 3), np.uint8), None, index=0)
        >>> tuple(image.shape)
        (3, 64, 128)
    """
    ops = [
        Flip(pairs=flip_pairs, probability=flip_probability),
        Resize(
            shorter_side=min_size,
            max_size=max_size,
            size_divisibility=size_divisibility,
            interpolation=interpolation,
        ),
    ]
    return _pipeline(
        ops,
        overrides,
        mean=mean,
        std=std,
        dtype=dtype,
        input_order=input_order,
        output_order=output_order,
        seed=seed,
    )


def _pipeline(ops: list[Op], overrides: dict[str, Any], **settings: Any) -> AugmentPipeline:
    """The preset's pipeline: its settings, any of them replaced by the caller's overrides."""
    return AugmentPipeline(ops, **{**settings, **overrides})
