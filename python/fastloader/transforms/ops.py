"""The detection augmentation ops: small validated records the native pipeline runs in order."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# OpenCV's codes (cv2.INTER_*), so cv2 constants can be passed as they are.
INTER_NEAREST = 0
INTER_LINEAR = 1
INTER_CUBIC = 2
INTER_AREA = 3
INTER_LANCZOS4 = 4
_INTERP_NAMES = {
    "nearest": INTER_NEAREST,
    "linear": INTER_LINEAR,
    "bilinear": INTER_LINEAR,
    "cubic": INTER_CUBIC,
    "bicubic": INTER_CUBIC,
    "area": INTER_AREA,
    "lanczos": INTER_LANCZOS4,
    "lanczos4": INTER_LANCZOS4,
}

# The 5-point face (left eye, right eye, nose, left mouth corner, right mouth corner): the mirror
# swaps the eyes and the mouth corners.
FACE_5_POINT_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (3, 4))


def _probability(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(f"{name} should be a number in [0, 1], but got {name}={value!r}")
    return float(value)


def _real(value: Any, name: str, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or not low <= float(value) <= high
    ):
        raise ValueError(f"{name} should be a number in [{low}, {high}], but got {name}={value!r}")
    return float(value)


def _int(value: Any, name: str, low: int, high: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not low <= int(value) <= high
    ):
        raise ValueError(
            f"{name} should be an integer in [{low}, {high}], but got {name}={value!r}"
        )
    return int(value)


def _range(value: Any, name: str, low: float, high: float) -> tuple[float, float]:
    if not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} should be a (min, max) pair, but got {name}={value!r}")
    a = _real(value[0], f"{name}[0]", low, high)
    b = _real(value[1], f"{name}[1]", low, high)
    if a > b:
        raise ValueError(f"{name} should have min <= max, but got {name}={value!r}")
    return a, b


def interp_code(value: Any, name: str = "interpolation") -> int:
    """An OpenCV interpolation code from a cv2.INTER_* int or a name ('linear', 'area', ...)."""
    if isinstance(value, str) and value.lower() in _INTERP_NAMES:
        return _INTERP_NAMES[value.lower()]
    if not isinstance(value, bool) and isinstance(value, numbers.Integral) and 0 <= int(value) <= 4:
        return int(value)
    raise ValueError(
        f"{name} should be cv2.INTER_NEAREST/LINEAR/CUBIC/AREA/LANCZOS4 (0-4) or one of "
        f"{sorted(_INTERP_NAMES)}, but got {name}={value!r}"
    )


class Op:
    """Base of the ops: `spec()` is the dict the native pipeline takes."""

    probability: float

    def spec(self) -> dict[str, Any]:  # pragma: no cover - every op overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class SquareCrop(Op):
    """RetinaFace's random square crop.

    A square of side ``int(scale * short side)`` at a random place (``randrange``), accepted when
    at least one box of area >= 1 lies wholly inside and at least one box centre lies strictly
    inside; boxes whose centres are inside are kept, clipped to the square; landmarks are moved
    and clipped to it (missing points, ``(-1, -1)``, stay missing). After ``max_tries`` refused
    squares, or at once when no box has area >= 1 (no boxes at all included), the whole image is
    kept, padded to a square at the top-left with the fill when ``pad_on_failure``.

    Args:
        scales: the scales to draw from uniformly (e.g. FaceBoxes' ``(0.3, 0.45, 0.6, 0.8, 1.0)``);
            ``None`` draws as Pytorch_Retinaface does: 1.0 with ``full_probability``, else uniform
            in ``scale_range``.
        scale_range: (min, max) of the uniform scale when ``scales`` is None.
        full_probability: probability of scale 1.0 when ``scales`` is None.
        max_tries: squares drawn before falling back.
        pad_on_failure: pad the fallback image to a square.
        probability: probability of applying the op at all.

    Example:
        >>> SquareCrop(scales=(0.3, 0.45, 0.6, 0.8, 1.0)).spec()["scales"]
        [0.3, 0.45, 0.6, 0.8, 1.0]
    """

    scales: Sequence[float] | None = None
    scale_range: tuple[float, float] = (0.3, 1.0)
    full_probability: float = 0.2
    max_tries: int = 250
    pad_on_failure: bool = True
    probability: float = 1.0

    def spec(self) -> dict[str, Any]:
        lo, hi = _range(self.scale_range, "scale_range", 1e-9, 1.0)
        scales = [] if self.scales is None else [_real(s, "scales", 1e-9, 1.0) for s in self.scales]
        if self.scales is not None and not scales:
            raise ValueError("scales should hold at least one scale, or be None")
        return {
            "kind": "square_crop",
            "scales": scales,
            "scale_min": lo,
            "scale_max": hi,
            "full_probability": _probability(self.full_probability, "full_probability"),
            "max_tries": _int(self.max_tries, "max_tries", 1, 32767),
            "pad_on_failure": bool(self.pad_on_failure),
            "probability": _probability(self.probability, "probability"),
        }


@dataclass(frozen=True)
class IoUCrop(Op):
    """SSD's / torchvision's ``RandomIoUCrop``.

    Draws a minimum IoU from ``min_ious`` (a value >= 1 leaves the image as it is), then up to
    ``trials`` crops of per-axis scale in ``scale_range`` and aspect ratio in ``aspect_range``;
    a crop is accepted when some box centre lies strictly inside and the best IoU of those boxes
    with the crop reaches the minimum. Boxes with centres inside are kept and clipped. Where
    torchvision loops forever, this draws at most ``max_options`` minimums, then leaves the image
    as it is; with no boxes the image is left as it is.

    Args:
        min_ious: the minimum IoUs to draw from (torchvision's default includes 1.0: no crop).
        scale_range: (min, max) of each side's scale.
        aspect_range: (min, max) of width / height.
        trials: crops tried per drawn minimum.
        max_options: minimums drawn before giving up.
        probability: probability of applying the op at all.

    Example:
        >>> IoUCrop().spec()["min_ious"]
        [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
    """

    min_ious: Sequence[float] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
    scale_range: tuple[float, float] = (0.3, 1.0)
    aspect_range: tuple[float, float] = (0.5, 2.0)
    trials: int = 40
    max_options: int = 50
    probability: float = 1.0

    def spec(self) -> dict[str, Any]:
        ious = [_real(v, "min_ious", -1e9, 1e9) for v in self.min_ious]
        if not ious:
            raise ValueError("min_ious should hold at least one value")
        lo, hi = _range(self.scale_range, "scale_range", 1e-9, 1.0)
        alo, ahi = _range(self.aspect_range, "aspect_range", 1e-9, 1e9)
        trials = _int(self.trials, "trials", 1, 1000)
        return {
            "kind": "iou_crop",
            "min_ious": ious,
            "scale_min": lo,
            "scale_max": hi,
            "aspect_min": alo,
            "aspect_max": ahi,
            "trials": trials,
            "max_options": _int(
                self.max_options, "max_options", 1, ((1 << 17) - 1) // (1 + 4 * trials)
            ),
            "probability": _probability(self.probability, "probability"),
        }


@dataclass(frozen=True)
class Distort(Op):
    """RetinaFace's / SSD's photometric distortion, in OpenCV's uint8 HSV.

    With probability 1/2 contrast comes before the HSV part, else after it; each part applies
    with ``part_probability``: brightness adds a uniform delta in ``[-brightness, brightness]``,
    contrast multiplies by a uniform factor in ``contrast``, saturation multiplies HSV's S by a
    uniform factor in ``saturation``, hue adds an integer in ``[-hue, hue]`` to H modulo 180.
    Values saturate at 0..255 and truncate (numpy's ``image[:] = float_array``). The HSV round
    trip happens whenever the op applies, as in the originals. Only image pixels are distorted,
    never the fill of pads or expand canvases.

    Args:
        brightness: the largest brightness delta.
        contrast: (min, max) contrast factor.
        saturation: (min, max) saturation factor.
        hue: the largest hue shift (of OpenCV's 180).
        part_probability: probability of each part.
        probability: probability of applying the op at all.

    Example:
        >>> Distort().spec()["hue_delta"]
        18
    """

    brightness: float = 32.0
    contrast: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.5, 1.5)
    hue: int = 18
    part_probability: float = 0.5
    probability: float = 1.0

    def spec(self) -> dict[str, Any]:
        clo, chi = _range(self.contrast, "contrast", 0.0, 1e6)
        slo, shi = _range(self.saturation, "saturation", 0.0, 1e6)
        return {
            "kind": "distort",
            "brightness_delta": _real(self.brightness, "brightness", 0.0, 255.0),
            "contrast_min": clo,
            "contrast_max": chi,
            "saturation_min": slo,
            "saturation_max": shi,
            "hue_delta": _int(self.hue, "hue", 0, 179),
            "part_probability": _probability(self.part_probability, "part_probability"),
            "probability": _probability(self.probability, "probability"),
        }


@dataclass(frozen=True)
class Expand(Op):
    """SSD's zoom out: the image placed at a random spot of a canvas ``ratio`` times its size
    (ratio uniform in ``[1, max_ratio)``), filled with the fill colour.

    Args:
        max_ratio: the largest canvas side ratio.
        probability: probability of applying the op (SSD: 0.5).

    Example:
        >>> Expand(max_ratio=4.0, probability=0.5).spec()["max_ratio"]
        4.0
    """

    max_ratio: float = 4.0
    probability: float = 0.5

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "expand",
            "max_ratio": _real(self.max_ratio, "max_ratio", 1.0, 64.0),
            "probability": _probability(self.probability, "probability"),
        }


@dataclass(frozen=True)
class Flip(Op):
    """Horizontal flip: boxes and landmarks mirrored, landmark point pairs swapped (default the
    5-point face's eyes and mouth corners); missing points stay missing.

    Args:
        pairs: landmark point index pairs to swap.
        probability: probability of flipping.

    Example:
        >>> Flip().spec()["flip_pairs"]
        [(0, 1), (3, 4)]
    """

    pairs: Sequence[tuple[int, int]] = FACE_5_POINT_PAIRS
    probability: float = 0.5

    def spec(self) -> dict[str, Any]:
        pairs = []
        for pair in self.pairs:
            if len(pair) != 2:
                raise ValueError(f"pairs should hold (a, b) point index pairs, but got {pair!r}")
            pairs.append((_int(pair[0], "pairs", 0, 1 << 20), _int(pair[1], "pairs", 0, 1 << 20)))
        return {
            "kind": "flip",
            "flip_pairs": pairs,
            "probability": _probability(self.probability, "probability"),
        }


@dataclass(frozen=True)
class PadToSquare(Op):
    """Pads the image to a square at the bottom / right with the fill colour.

    Args:
        probability: probability of padding.

    Example:
        >>> PadToSquare().spec()["kind"]
        'pad_to_square'
    """

    probability: float = 1.0

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "pad_to_square",
            "probability": _probability(self.probability, "probability"),
        }


@dataclass(frozen=True)
class Resize(Op):
    """The one resampling: to a fixed size (stretching, as RetinaFace) or by the shorter side.

    Follows ``cv2.resize``'s coordinate rules for each interpolation (results within 1 level of
    OpenCV's uint8 output). Must come after every geometric op.

    Args:
        size: ``(height, width)`` or one int for a square; None with ``shorter_side``.
        shorter_side: shorter-side targets drawn uniformly (detectron2's ResizeShortestEdge).
        max_size: the cap on the longer side when resizing by the shorter side (0: none).
        size_divisibility: pad the output (fill colour) to multiples of this.
        interpolation: one interpolation, or a sequence drawn uniformly per sample (RetinaFace
            draws from linear, cubic, area, nearest and lanczos4).

    Example:
        >>> Resize(640, interpolation=("linear", "area")).spec()["interps"]
        [1, 3]
    """

    size: int | tuple[int, int] | None = None
    shorter_side: int | Sequence[int] | None = None
    max_size: int = 0
    size_divisibility: int = 1
    interpolation: Any = INTER_LINEAR
    probability: float = field(default=1.0, init=False)

    def spec(self) -> dict[str, Any]:
        interps = self.interpolation
        if isinstance(interps, (str, numbers.Integral)):
            interps = (interps,)
        codes = [interp_code(m) for m in interps]
        if not codes:
            raise ValueError("interpolation should name at least one interpolation")
        out: dict[str, Any] = {
            "kind": "resize",
            "interps": codes,
            "size_divisibility": _int(self.size_divisibility, "size_divisibility", 0, 4096),
        }
        if (self.size is None) == (self.shorter_side is None):
            raise ValueError("Resize needs exactly one of size and shorter_side")
        if self.size is not None:
            size = self.size
            if isinstance(size, numbers.Integral) and not isinstance(size, bool):
                size = (int(size), int(size))
            if not isinstance(size, Sequence) or len(size) != 2:
                raise ValueError(
                    f"size should be an int or (height, width), but got size={self.size!r}"
                )
            out["out_height"] = _int(size[0], "size[0]", 1, 1 << 16)
            out["out_width"] = _int(size[1], "size[1]", 1, 1 << 16)
        else:
            sides = self.shorter_side
            if isinstance(sides, numbers.Integral):
                sides = (sides,)
            out["shorter_sizes"] = [_int(s, "shorter_side", 1, 1 << 16) for s in sides]  # type: ignore[union-attr]
            if not out["shorter_sizes"]:
                raise ValueError("shorter_side should hold at least one size")
            out["max_size"] = _int(self.max_size, "max_size", 0, 1 << 16)
        return out
