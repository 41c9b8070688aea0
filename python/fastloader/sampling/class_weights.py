"""Class-balance helpers for detection: LVIS repeat factors, effective-number and power weights."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import _C
from .._util.checks import non_negative_int
from .._util.threads import native_threads

#: What :meth:`fastloader.VOCDetection.labels` returns: one integer array of class indices per
#: image (one entry per object, so a class may repeat; an image may hold none).
ImageLabels = Sequence[np.ndarray | torch.Tensor | Sequence[int]]
CountsLike = Sequence[float] | np.ndarray | torch.Tensor

_REDUCTIONS = ("max", "mean", "sum")


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} should be a real number, but got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} should be finite, but got {name}={value}")
    return value


def _flatten(image_labels: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, offsets) in CSR form; any per-image integer sequence, empty ones of any dtype."""
    if isinstance(image_labels, (str, bytes, np.ndarray, torch.Tensor)) or not isinstance(
        image_labels, Sequence
    ):
        raise TypeError(
            f"{name} should be a sequence with one label array per image (what "
            f"VOCDetection.labels() returns), but got {type(image_labels).__name__}"
        )
    if len(image_labels) == 0:
        raise ValueError(f"{name} should hold at least one image")
    try:
        lengths = np.fromiter(map(len, image_labels), dtype=np.int64, count=len(image_labels))
        flat = np.concatenate(list(image_labels))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} should hold one 1-D label sequence per image: {exc}") from None
    if flat.ndim != 1:
        raise ValueError(f"{name} should hold one 1-D label sequence per image, not {flat.ndim}-D")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if len(flat) != offsets[-1]:
        raise ValueError(f"{name} should hold one 1-D label sequence per image")
    if flat.dtype.kind not in "iuf" or (flat.dtype.kind == "f" and np.any(flat != np.floor(flat))):
        bad = 0 if flat.dtype.kind not in "iuf" else int(np.flatnonzero(flat != np.floor(flat))[0])
        image = int(np.searchsorted(offsets, bad, side="right") - 1)
        raise TypeError(
            f"{name} should hold integer class indices, but {name}[{image}] holds "
            f"{np.asarray(image_labels[image]).tolist()!r}"
        )
    # Checked before the int64 cast, which would wrap uint64 above 2**63 and map +-inf to -2**63.
    outside = (flat < 0) | (flat >= 2.0**63) if flat.dtype.kind == "f" else flat < 0
    if flat.dtype.kind == "u":
        outside = flat > np.iinfo(np.int64).max
    if len(flat) and np.any(outside):
        bad = int(np.flatnonzero(outside)[0])
        image = int(np.searchsorted(offsets, bad, side="right") - 1)
        raise ValueError(
            f"{name}[{image}] holds class {flat[bad].item()!r}; class indices should be >= 0 "
            "and below 2**63"
        )
    return flat.astype(np.int64, copy=False), offsets


def _label_table(
    image_labels: Any,
    num_classes: int | None,
    name: str = "image_labels",
    range_name: str = "num_classes",
) -> tuple[np.ndarray, np.ndarray, int]:
    """CSR labels checked against [0, num_classes); num_classes defaults to the top label + 1."""
    flat, offsets = _flatten(image_labels, name)
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if len(flat) else 0
    else:
        num_classes = non_negative_int(num_classes, "num_classes")
    if len(flat) and flat.min() < 0:
        position = int(np.flatnonzero(flat < 0)[0])
        image = int(np.searchsorted(offsets, position, side="right") - 1)
        raise ValueError(
            f"{name}[{image}] holds class {int(flat[position])}; class indices should be >= 0"
        )
    outside = flat >= num_classes
    if outside.any():
        position = int(np.flatnonzero(outside)[0])
        image = int(np.searchsorted(offsets, position, side="right") - 1)
        raise ValueError(
            f"{name}[{image}] holds class {int(flat[position])}, outside [0, {num_classes}) "
            f"({range_name})"
        )
    return np.ascontiguousarray(flat), offsets, num_classes


def _counts(class_counts: CountsLike, name: str = "class_counts") -> np.ndarray:
    if isinstance(class_counts, torch.Tensor):
        class_counts = class_counts.detach().cpu().numpy()
    counts = np.asarray(class_counts)
    if counts.dtype.kind not in "iuf" or counts.ndim != 1 or counts.size == 0:
        raise ValueError(
            f"{name} should be a non-empty 1-D sequence of numbers, but got shape "
            f"{counts.shape} and dtype {counts.dtype}"
        )
    counts = counts.astype(np.float64)
    bad = ~np.isfinite(counts) | (counts < 0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} should be finite and >= 0, but {name}[{index}]={counts[index]}")
    if not (counts > 0).any():
        raise ValueError(f"{name} should hold a positive count, but all are zero")
    return counts


def class_image_counts(image_labels: ImageLabels, num_classes: int | None = None) -> np.ndarray:
    """How many images hold each class (an image with several objects of a class counts once):
    int64 ``[num_classes]``; ``num_classes`` defaults to the largest label + 1."""
    flat, offsets, num_classes = _label_table(image_labels, num_classes)
    return _C.images_per_class(flat, offsets, num_classes)


def repeat_factors(
    image_labels: ImageLabels,
    threshold: float,
    sqrt: bool = True,
    *,
    num_classes: int | None = None,
) -> np.ndarray:
    """LVIS repeat factors (Gupta et al., 2019), as detectron2's RepeatFactorTrainingSampler uses.

    With ``f(c)`` the fraction of images holding class ``c``: ``r(c) = max(1, sqrt(t / f(c)))``
    (``max(1, t / f(c))`` when ``sqrt`` is False), and an image's factor is the largest ``r(c)``
    over its classes: 1.0 for an image without objects, so it keeps its one appearance. Returns
    float64 ``[len(image_labels)]``, every entry >= 1.

    Args:
        image_labels: one integer label array per image, as :meth:`VOCDetection.labels` returns.
        threshold: the frequency ``t`` below which a class's images are repeated (> 0; LVIS uses
            0.001).
        sqrt: the square-root rule (detectron2's default) or the linear one.
        num_classes: the label range ``[0, num_classes)``; the largest label + 1 when None.
    """
    threshold = _real(threshold, "threshold")
    if threshold <= 0:
        raise ValueError(f"threshold should be > 0, but got threshold={threshold}")
    if not isinstance(sqrt, bool):
        raise TypeError(f"sqrt should be a bool, but got {type(sqrt).__name__}")
    flat, offsets, num_classes = _label_table(image_labels, num_classes)
    counts = _C.images_per_class(flat, offsets, num_classes)
    frequency = counts / float(len(offsets) - 1)
    class_factor = np.ones(num_classes, dtype=np.float64)
    present = counts > 0
    ratio = threshold / frequency[present]
    class_factor[present] = np.maximum(1.0, np.sqrt(ratio) if sqrt else ratio)
    return _C.reduce_class_values(flat, offsets, class_factor, "max", 1.0, native_threads())


def class_balanced_weights(class_counts: CountsLike, beta: float) -> np.ndarray:
    """Class weights from the effective number of samples (Cui et al., CVPR 2019).

    ``w_c = (1 - beta) / (1 - beta**n_c)``, scaled so the weights sum to the number of classes.
    ``beta = 0`` weighs every class alike; ``beta -> 1`` tends to ``1 / n_c``. A class with
    ``n_c = 0`` gets weight 0 (nothing of it is ever seen). Returns float64 ``[len(class_counts)]``.
    """
    beta = _real(beta, "beta")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta should be in [0, 1), but got beta={beta}")
    counts = _counts(class_counts)
    present = counts > 0
    weights = np.zeros_like(counts)
    with np.errstate(divide="ignore"):
        # log(beta) without cancellation when beta is close to 1 (beta - 1 is exact there).
        log_beta = np.log1p(beta - 1.0)
        # 1 - beta**n, the effective number up to the factor (1 - beta) that the scaling cancels.
        effective = -np.expm1(counts[present] * log_beta)
    # w_c is proportional to 1 / effective_c; dividing the smallest effective number by each
    # keeps every term in (0, 1] (the plain (1 - beta) / effective overflows to inf for a tiny
    # effective number, and the scaling then gives NaN).
    if (effective > 0).all():
        weights[present] = effective.min() / effective
    else:
        # n_c * log(beta) underflowed to 0 (a tiny fractional count): there 1 - beta**n_c equals
        # n_c * -log(beta) to double precision, so work with logarithms.
        with np.errstate(divide="ignore"):
            log_effective = np.where(
                effective > 0, np.log(effective), np.log(counts[present]) + np.log(-log_beta)
            )
        weights[present] = np.exp(log_effective.min() - log_effective)
    return weights * (len(counts) / weights.sum())


def power_weights(class_counts: CountsLike, q: float) -> np.ndarray:
    """Class sampling probabilities ``p_c`` proportional to ``n_c ** q`` (Kang et al., ICLR 2020).

    ``q = 1`` is instance-balanced, ``1/2`` square-root, ``0`` class-balanced sampling. A class with
    ``n_c = 0`` gets 0 for every ``q``. Returns float64 summing to 1. To sample images, spread each
    class's share over its images: ``image_weights(labels, p / np.maximum(counts, 1))``.
    """
    q = _real(q, "q")
    if q < 0:
        raise ValueError(f"q should be >= 0, but got q={q}")
    counts = _counts(class_counts)
    present = counts > 0
    weights = np.zeros_like(counts)
    # Powers of n_c / max(n) lie in [0, 1], and the largest class gives exactly 1, so the sum is
    # >= 1: n_c ** q itself overflows to inf (or underflows to 0 for every class) for a large q
    # or extreme counts, and the normalisation then gives NaN.
    with np.errstate(under="ignore"):
        weights[present] = (counts[present] / counts.max()) ** q
    return weights / weights.sum()


def image_weights(
    image_labels: ImageLabels,
    class_weights: CountsLike,
    reduce: str = "max",
    *,
    empty_weight: float = 0.0,
) -> np.ndarray:
    """Per-image sampling weights from per-class weights, for :class:`FastWeightedSampler`.

    An image's weight is the max, mean or sum of ``class_weights`` over its distinct classes (an
    image with five cars counts "car" once). An image without objects gets ``empty_weight``: 0 by
    default, the value of a sum over no classes, so such images are never drawn; give a positive
    value to keep background images in play. Labels must lie in ``[0, len(class_weights))``.
    Returns float64 ``[len(image_labels)]``.
    """
    if reduce not in _REDUCTIONS:
        raise ValueError(f"reduce should be one of {_REDUCTIONS}, but got reduce={reduce!r}")
    empty_weight = _real(empty_weight, "empty_weight")
    if empty_weight < 0:
        raise ValueError(f"empty_weight should be >= 0, but got empty_weight={empty_weight}")
    if isinstance(class_weights, torch.Tensor):
        class_weights = class_weights.detach().cpu().numpy()
    values = np.asarray(class_weights)
    if values.dtype.kind not in "iuf" or values.ndim != 1 or values.size == 0:
        raise ValueError(
            "class_weights should be a non-empty 1-D sequence of numbers, but got shape "
            f"{values.shape} and dtype {values.dtype}"
        )
    values = np.ascontiguousarray(values, dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"class_weights should be finite and >= 0, but class_weights[{index}]={values[index]}"
        )
    flat, offsets, _ = _label_table(image_labels, len(values), range_name="len(class_weights)")
    return _C.reduce_class_values(flat, offsets, values, reduce, empty_weight, native_threads())
