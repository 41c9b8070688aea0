"""The synthetic datasets' generators: SyntheticDetection (a generated, cached VOC2007-layout
folder of imbalanced detection data) and synthetic_widerface (WIDER FACE in Pytorch_Retinaface's
layout), their arguments and file layouts.

Drawing the images and objects is in _synthetic_draw.py, keeping the folder as a cache (marker,
manifest, never deleting what it did not write) in _synthetic_cache.py."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._util.checks import non_negative_int, positive_int, seed_or_none
from ..io.decode import DEFAULT_MAX_IMAGE_PIXELS
from ._base import PathLike
from ._synthetic_cache import _ensure_generated, _progress, default_cache_root
from ._synthetic_draw import (
    VOC_SHAPES,
    _annotation_xml,
    _face_line,
    _jpeg_bytes,
    _jpeg_only,
    _synthesize,
    _voc_mix,
    _voc_sides,
    _widerface_image_params,
)
from .annotations import check_split_folder
from .voc import VOCDetection

__all__ = [
    "SyntheticDetection",
    "VOC_SHAPES",
    "default_cache_root",
    "synthetic_widerface",
    "voc_shape_sizes",
]

_IMAGE_FORMATS = ("jpeg", "npy")
_SHAPES = ("uniform", "voc")

# Bumped whenever the generator's output changes, so stale caches are never reused.
# 3: the marker names its generator and a manifest of the files written.
_GENERATOR_VERSION = 3
#: Upper bounds checked before anything is written: ten million images is ten times ImageNet-1k,
#: and a hundred thousand classes five times ImageNet-21k.
MAX_IMAGES = 10_000_000
MAX_CLASSES = 100_000
MAX_BOXES = 100_000
#: The longest side whose square images stay within the decoders' default pixel limit.
MAX_SIDE = math.isqrt(DEFAULT_MAX_IMAGE_PIXELS)
_PREDECODED = "Predecoded"


def voc_shape_sizes(count: int, longer: int, seed: int = 0) -> np.ndarray:
    """[count, 2] int64 (height, width) drawn from :data:`VOC_SHAPES` with the longer side
    ``longer``: the sizes ``SyntheticDetection(shapes="voc")`` gives its images, without writing
    any (for padding and grouping measurements).

    Args:
        count: how many sizes.
        longer: the longer side of every size.
        seed: fixes the draw.

    Example:
        >>> from fastloader.datasets.synthetic import voc_shape_sizes
        >>> sizes = voc_shape_sizes(1000, 500, seed=0)
        >>> sizes.shape, int(sizes.max(axis=1).min())
        ((1000, 2), 500)
    """
    ratios, shares = _voc_mix()
    picks = np.random.default_rng(seed).choice(len(ratios), count, p=shares)
    return _voc_sides(ratios[picks], longer)


def _write_synthetic(folder: Path, params: dict[str, Any], progress: bool) -> list[str]:
    """Writes the dataset into the new folder ``folder``; returns the files written, relative."""
    subfolders = ("Annotations", "JPEGImages", _PREDECODED, "ImageSets/Main")
    for sub in subfolders:
        (folder / sub).mkdir(parents=True)
    class_names = [f"class_{k:02d}" for k in range(params["num_classes"])]
    (folder / "classes.txt").write_text("\n".join(class_names) + "\n")
    written = ["classes.txt"]
    stems = []
    for index in _progress(range(params["num_images"]), progress):
        image, labels, boxes, landmarks = _synthesize(params["seed"], index, params)
        stem = f"{index:06d}"
        data, pixels = _jpeg_bytes(image, params["jpeg_quality"])
        (folder / "JPEGImages" / f"{stem}.jpg").write_bytes(data)
        np.save(folder / _PREDECODED / f"{stem}.npy", pixels)
        names = [class_names[label] for label in labels]
        (folder / "Annotations" / f"{stem}.xml").write_bytes(
            _annotation_xml(f"{stem}.jpg", image.shape[1], image.shape[2], names, boxes, landmarks)
        )
        written += [f"JPEGImages/{stem}.jpg", f"{_PREDECODED}/{stem}.npy"]
        written.append(f"Annotations/{stem}.xml")
        stems.append(stem)
    (folder / "ImageSets" / "Main" / "trainval.txt").write_text("".join(s + "\n" for s in stems))
    return written + ["ImageSets/Main/trainval.txt"]


def _bounded(value: Any, name: str, limit: int) -> int:
    value = positive_int(value, name)
    if value > limit:
        raise ValueError(f"{name} should be at most {limit}, but got {name}={value}")
    return value


def _expected_bytes(num_images: int, height: float, width: float, boxes: float) -> int:
    """About what writing the images takes on disk: the .npy copy (3 bytes a pixel), a JPEG of at
    most half that, and an XML of about 700 bytes an object; the estimate is meant to catch
    requests off by orders of magnitude, not to be exact."""
    return int(num_images * (4.5 * height * width + 700 * boxes + 400))


class SyntheticDetection(VOCDetection):
    """A generated Pascal VOC 2007-layout detection dataset shaped like real detection data.

    Writes ``num_images`` JPEG images (``JPEGImages/``, quality ``jpeg_quality``), their
    pre-decoded pixels (``Predecoded/*.npy``, uint8 ``[3, H, W]``, exactly what the JPEG decodes
    to), one XML annotation each (``Annotations/``) and ``ImageSets/Main/trainval.txt``, then
    reads them as :class:`VOCDetection` does: ``image_format="jpeg"`` decodes the JPEGs,
    ``"npy"`` loads the pre-decoded copies (the same samples with no decode).

    Per image: the size (below), 0 to ``max_boxes`` boxes, each with a class and 5 landmarks;
    the classes of an image come from a Zipf distribution over ``num_classes``, so classes are
    strongly imbalanced (with 20 classes the rarest is in about 2% of images, the commonest in
    about 40%). Everything is a pure function of ``seed`` and the parameters, and image ``i``
    does not depend on ``num_images``.

    The folder is a cache: when ``root`` is None it is a folder under the system temp directory
    named by a hash of the parameters, and a folder already holding this exact dataset is reused
    without writing anything. Writing goes to a temporary sibling that is renamed into place, so
    an interrupted run or a concurrent one never leaves a half-written dataset behind.

    Args:
        root: where to write; None for the cache under the temp directory. A folder this class
            wrote with other parameters is replaced, its files removed one by one from the list
            it keeps (``synthetic-files.txt``), and only when it holds nothing else; any other
            non-empty folder is refused and left untouched.
        num_images: how many images, at most :data:`MAX_IMAGES`. Before writing, the space it
            takes is estimated and compared with the free space at ``root``: a request that
            cannot fit is refused at once, with nothing written.
        num_classes: number of classes (``class_00``, ``class_01``, ...), at most
            :data:`MAX_CLASSES`.
        min_size, max_size: with ``shapes="uniform"``, the inclusive range of heights and widths
            (each drawn on its own; equal for same-size images), at most :data:`MAX_SIDE`
            (9459: larger square images are above the decoders' default pixel limit).
        shapes: ``"uniform"`` or ``"voc"``: the longer side is ``max_size`` (as detection
            resizing leaves it) and the aspect ratio follows :data:`VOC_SHAPES`, about VOC 2007's
            mix of 4:3 and 3:2 landscapes and their portrait forms.
        max_boxes: boxes per image are drawn uniformly from ``[0, max_boxes]`` (at most
            :data:`MAX_BOXES`).
        image_format: ``"jpeg"`` or ``"npy"``: which copy samples are read from.
        jpeg_quality: the JPEG quality (1-95).
        seed: fixes the content.
        sample_format, transform, decoder, read_into_batch: as for :class:`VOCDetection`.
        progress: show a tqdm bar while writing (when tqdm is installed).

    Example:
        >>> import tempfile
        >>> from fastloader import SyntheticDetection
        >>> with tempfile.TemporaryDirectory() as root:
        ...     ds = SyntheticDetection(root, 8, num_classes=3, max_size=32, seed=0)
        ...     again = SyntheticDetection(root, 8, num_classes=3, max_size=32, seed=0)
        ...     image, target = ds[0]
        >>> ds.generated, again.generated, len(ds), ds.classes
        (True, False, 8, ['class_00', 'class_01', 'class_02'])
        >>> image.dtype, image.shape[0], target.shape[1]
        (torch.uint8, 3, 15)
    """

    def __init__(
        self,
        root: PathLike | None = None,
        num_images: int = 64,
        *,
        num_classes: int = 20,
        min_size: int = 32,
        max_size: int = 64,
        shapes: str = "uniform",
        max_boxes: int = 50,
        image_format: str = "jpeg",
        jpeg_quality: int = 90,
        seed: int = 0,
        sample_format: str = "tuple",
        transform: Callable[[Any], Any] | None = None,
        decoder: str = "auto",
        progress: bool = False,
        read_into_batch: bool = False,
    ) -> None:
        if image_format not in _IMAGE_FORMATS:
            raise ValueError(
                f"image_format should be one of {_IMAGE_FORMATS}, "
                f"but got image_format={image_format!r}"
            )
        if shapes not in _SHAPES:
            raise ValueError(f"shapes should be one of {_SHAPES}, but got shapes={shapes!r}")
        min_size = _bounded(min_size, "min_size", MAX_SIDE)
        max_size = _bounded(max_size, "max_size", MAX_SIDE)
        if max_size < min_size:
            raise ValueError(
                f"max_size should be >= min_size, but got min_size={min_size}, max_size={max_size}"
            )
        max_boxes = non_negative_int(max_boxes, "max_boxes")
        if max_boxes > MAX_BOXES:
            raise ValueError(
                f"max_boxes should be at most {MAX_BOXES}, but got max_boxes={max_boxes}"
            )
        quality = positive_int(jpeg_quality, "jpeg_quality")
        if quality > 95:
            raise ValueError(f"jpeg_quality should be in [1, 95], but got jpeg_quality={quality}")
        if seed is None:
            raise TypeError("seed should be an int: the dataset is a cache keyed by it")
        self.params = {
            "version": _GENERATOR_VERSION,
            "num_images": _bounded(num_images, "num_images", MAX_IMAGES),
            "num_classes": _bounded(num_classes, "num_classes", MAX_CLASSES),
            "min_size": min_size,
            "max_size": max_size,
            "shapes": shapes,
            "max_boxes": max_boxes,
            "jpeg_quality": quality,
            "seed": seed_or_none(seed),
        }
        self.image_format = image_format
        folder = Path(root) if root is not None else default_cache_root(self.params)
        side = (min_size + max_size) / 2 if shapes == "uniform" else max_size * 0.87
        needed = _expected_bytes(num_images, side, side, max_boxes / 2)
        self.generated = _ensure_generated(
            folder, "SyntheticDetection", self.params, _write_synthetic, progress, needed
        )
        npy = image_format == "npy"
        super().__init__(
            folder,
            "trainval",
            classes=[f"class_{k:02d}" for k in range(num_classes)],
            sample_format=sample_format,
            transform=transform,
            decoder=decoder,
            image_dir=_PREDECODED if npy else "JPEGImages",
            image_suffix=".npy" if npy else None,
            read_into_batch=read_into_batch,
        )


# --------------------------------------------------------------------------------------------
# A WIDER FACE folder in Pytorch_Retinaface's layout, from the same images


def _write_widerface(folder: Path, params: dict[str, Any], progress: bool) -> list[str]:
    split = params["split"]
    image_params = _widerface_image_params(params)
    lines, written = [], []
    for index in _progress(range(params["num_images"]), progress):
        image, _, boxes, landmarks = _synthesize(params["seed"], index, image_params)
        relative = f"{index % 4}--Synthetic/{index:06d}.jpg"  # WIDER's event folders
        target = folder / split / "images" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if params["predecoded"]:
            data, pixels = _jpeg_bytes(image, params["jpeg_quality"])
            npy = folder / split / "predecoded" / (relative[:-4] + ".npy")
            npy.parent.mkdir(parents=True, exist_ok=True)
            np.save(npy, pixels)
            written.append(f"{split}/predecoded/{relative[:-4]}.npy")
        else:
            data = _jpeg_only(image, params["jpeg_quality"])
        target.write_bytes(data)
        written.append(f"{split}/images/{relative}")
        # about a third of the faces without landmarks, as small faces are in WIDER FACE
        draws = np.random.default_rng([params["seed"], index, 2]).random((len(boxes), 2))
        lines.append(f"# {relative}")
        for box, points, (absent, confidence) in zip(boxes, landmarks, draws, strict=True):
            shown = None if absent < 1 / 3 else round(0.3 + 0.7 * float(confidence), 2)
            lines.append(_face_line(box, points, shown))
    (folder / split / "label.txt").write_text("".join(line + "\n" for line in lines))
    return written + [f"{split}/label.txt"]


def synthetic_widerface(
    root: PathLike | None = None,
    num_images: int = 64,
    *,
    seed: int = 0,
    split: str = "train",
    width: int = 1024,
    max_faces: int = 20,
    jpeg_quality: int = 90,
    predecoded: bool = False,
    progress: bool = False,
) -> Path:
    """Writes a WIDER FACE folder in Pytorch_Retinaface's layout for tests and benchmarks, and
    returns it: ``root/<split>/label.txt`` and ``root/<split>/images/<event>/<id>.jpg``.

    The images are :class:`SyntheticDetection`'s (a smooth background, noise, flat rectangles
    for the faces), ``width`` wide with heights from :data:`VOC_SHAPES`' aspect ratios (WIDER
    FACE's images are 1024 wide). Each has 0 to ``max_faces`` faces with five landmarks inside
    the box; about a third of the faces have none (all -1, as WIDER FACE's small faces), the
    rest a confidence in [0.3, 1]. Coordinates are multiples of 1/4 pixel, so they read back
    exactly. Everything is a pure function of ``seed`` and the parameters.

    The folder is a cache, kept as :class:`SyntheticDetection` keeps its own: reused when it
    holds this exact output; a folder this function wrote with other parameters is replaced
    (only the files it wrote, listed in ``synthetic-files.txt``, and only when it holds nothing
    else); any other non-empty folder is refused and left untouched.

    Args:
        root: where to write; None for a cache folder under the system temp directory.
        num_images: how many images (at most :data:`MAX_IMAGES`).
        seed: fixes the content.
        split: the split folder's name.
        width: every image's width in pixels (16 to :data:`MAX_SIDE`).
        max_faces: faces per image are drawn uniformly from ``[0, max_faces]``.
        jpeg_quality: the JPEG quality (1-95).
        predecoded: also write each image's decoded pixels to
            ``root/<split>/predecoded/<event>/<id>.npy`` (read them with
            ``WIDERFace(root, split, image_dir="predecoded", image_suffix=".npy")``).
        progress: show a tqdm bar while writing (when tqdm is installed).

    Example:
        >>> import tempfile
        >>> from fastloader.datasets import synthetic_widerface
        >>> with tempfile.TemporaryDirectory() as root:
        ...     folder = synthetic_widerface(root, 3, seed=0, width=128)
        ...     first = (folder / "train" / "label.txt").read_text().splitlines()[0]
        >>> first
        '# 0--Synthetic/000000.jpg'
    """
    split = check_split_folder(split)
    num_images = _bounded(num_images, "num_images", MAX_IMAGES)
    width = _bounded(width, "width", MAX_SIDE)
    if width < 16:
        raise ValueError(f"width should be at least 16, but got width={width}")
    max_faces = non_negative_int(max_faces, "max_faces")
    if max_faces > MAX_BOXES:
        raise ValueError(f"max_faces should be at most {MAX_BOXES}, but got max_faces={max_faces}")
    quality = positive_int(jpeg_quality, "jpeg_quality")
    if quality > 95:
        raise ValueError(f"jpeg_quality should be in [1, 95], but got jpeg_quality={quality}")
    if seed is None:
        raise TypeError("seed should be an int: the folder is a cache keyed by it")
    if not isinstance(predecoded, bool):
        raise ValueError(f"predecoded should be a boolean value, but got predecoded={predecoded!r}")
    params = {
        "version": _GENERATOR_VERSION,
        "layout": "widerface",
        "num_images": num_images,
        "split": split,
        "width": width,
        "max_faces": max_faces,
        "jpeg_quality": quality,
        "predecoded": predecoded,
        "seed": seed_or_none(seed),
    }
    folder = Path(root) if root is not None else default_cache_root(params)
    per_pixel = 4.5 if predecoded else 1.5
    needed = int(num_images * (per_pixel * width * width * 0.8 + 120 * max_faces + 40))
    _ensure_generated(folder, "synthetic_widerface", params, _write_widerface, progress, needed)
    return folder
