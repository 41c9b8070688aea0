"""SyntheticDetection: a generated, cached VOC2007-layout folder of imbalanced detection data"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import uuid
import xml.etree.ElementTree as et
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._util.checks import non_negative_int, positive_int, seed_or_none
from .annotations import NUM_LANDMARKS
from .voc import PathLike, VOCDetection

__all__ = ["SyntheticDetection", "VOC_SHAPES", "default_cache_root", "voc_shape_sizes"]

_IMAGE_FORMATS = ("jpeg", "npy")
_SHAPES = ("uniform", "voc")
#: (width / height, share of images) of ``shapes="voc"``: about Pascal VOC 2007's mix, mostly
#: 500x375 and 500x333 landscapes and their portrait forms, with a few squarer images.
VOC_SHAPES = (
    (4 / 3, 0.42),
    (3 / 2, 0.20),
    (5 / 4, 0.04),
    (1.0, 0.04),
    (3 / 4, 0.20),
    (2 / 3, 0.10),
)
# Bumped whenever the generator's output changes, so stale caches are never reused.
_GENERATOR_VERSION = 2
_MARKER = "synthetic.json"
_PREDECODED = "Predecoded"

# Face-like landmark layout inside a box (eyes, nose, mouth corners), jittered per object.
_LANDMARK_TEMPLATE = np.array(
    [[0.30, 0.35], [0.70, 0.35], [0.50, 0.55], [0.35, 0.75], [0.65, 0.75]], dtype=np.float64
)


def _quarter_pixels(values: np.ndarray) -> np.ndarray:
    # Multiples of 1/4 are exact in binary and in the XML text, so values round-trip bit for bit.
    return np.round(values * 4.0) / 4.0


def _class_probabilities(num_classes: int) -> np.ndarray:
    # Zipf (1/(k+1)): with 20 classes and ~1.5 classes per image the rarest class is in ~2% of
    # images and the commonest in ~40%.
    raw = 1.0 / np.arange(1, num_classes + 1, dtype=np.float64)
    return raw / raw.sum()


def _voc_sides(ratios: np.ndarray, longer: int) -> np.ndarray:
    """[n, 2] int64 (height, width) of width / height ``ratios`` with the longer side fixed."""
    shorter = np.maximum(1, np.round(longer / np.maximum(ratios, 1 / ratios))).astype(np.int64)
    landscape = ratios >= 1
    return np.stack(
        [np.where(landscape, shorter, longer), np.where(landscape, longer, shorter)], axis=1
    )


def _voc_mix() -> tuple[np.ndarray, np.ndarray]:
    ratios, shares = (np.array(values) for values in zip(*VOC_SHAPES, strict=True))
    return ratios, shares / shares.sum()


def voc_shape_sizes(count: int, longer: int, seed: int = 0) -> np.ndarray:
    """[count, 2] int64 (height, width) drawn from :data:`VOC_SHAPES` with the longer side
    ``longer``: the sizes ``SyntheticDetection(shapes="voc")`` gives its images, without writing
    any (for padding and grouping measurements)."""
    ratios, shares = _voc_mix()
    picks = np.random.default_rng(seed).choice(len(ratios), count, p=shares)
    return _voc_sides(ratios[picks], longer)


def _image_size(rng: np.random.Generator, params: dict[str, Any]) -> tuple[int, int]:
    if params["shapes"] == "voc":  # the longer side fixed, as detection resizing leaves it
        ratios, shares = _voc_mix()
        pick = int(rng.choice(len(ratios), p=shares))
        height, width = _voc_sides(ratios[pick : pick + 1], params["max_size"])[0]
        return int(height), int(width)
    height = int(rng.integers(params["min_size"], params["max_size"] + 1))
    width = int(rng.integers(params["min_size"], params["max_size"] + 1))
    return height, width


def _objects(
    rng: np.random.Generator, height: int, width: int, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    count = int(rng.integers(0, params["max_boxes"] + 1))
    num_classes = params["num_classes"]
    if count:
        present_draws = 1 + int(rng.binomial(2, 0.25))
        present = np.unique(
            rng.choice(num_classes, size=present_draws, p=_class_probabilities(num_classes))
        )
        labels = rng.choice(present, size=count).astype(np.int64)
    else:
        labels = np.empty(0, dtype=np.int64)
    size = np.array([width, height], dtype=np.float64)
    extent = np.maximum(rng.uniform(0.04, 0.5, size=(count, 2)) * size, 2.0)
    extent = np.minimum(extent, size)
    corner = rng.uniform(0.0, 1.0, size=(count, 2)) * (size - extent)
    low = _quarter_pixels(corner)
    high = np.minimum(_quarter_pixels(corner + extent), size)
    boxes = np.concatenate([low, high], axis=1)
    jitter = rng.uniform(-0.05, 0.05, size=(count, NUM_LANDMARKS, 2))
    relative = np.clip(_LANDMARK_TEMPLATE[None] + jitter, 0.0, 1.0)
    landmarks = _quarter_pixels(low[:, None, :] + relative * (high - low)[:, None, :])
    return labels, boxes, landmarks


def _synthesize(
    seed: int, index: int, params: dict[str, Any]
) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray]:
    """Image ``index`` of the dataset (uint8 ``[3, H, W]``), its labels, boxes and landmarks: a
    pure function of (seed, index, params)."""
    rng = np.random.default_rng([seed, index])
    height, width = _image_size(rng, params)
    labels, boxes, landmarks = _objects(rng, height, width, params)
    # Smooth background plus mild noise, objects as flat class-coloured rectangles: a picture
    # that compresses like a photo rather than like pure noise.
    base = rng.integers(0, 137, size=3)  # + ramps (96) + noise (22) stays <= 255
    ramp_y = np.linspace(0, 64, height, dtype=np.float32)[:, None]
    ramp_x = np.linspace(0, 32, width, dtype=np.float32)[None, :]
    image = np.empty((3, height, width), dtype=np.uint8)
    for channel in range(3):
        image[channel] = (base[channel] + ramp_y + ramp_x).astype(np.uint8)
    palette = np.random.default_rng([seed, 1 << 32]).integers(
        0, 233, size=(params["num_classes"], 3), dtype=np.uint8
    )
    for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels, strict=True):
        image[:, y1:y2, x1:x2] = palette[label][:, None, None]
    image += rng.integers(0, 23, size=(3, height, width), dtype=np.uint8)
    return image, labels.tolist(), boxes, landmarks


def _annotation_xml(
    filename: str, height: int, width: int, names: list[str], boxes: np.ndarray,
    landmarks: np.ndarray,
) -> bytes:  # fmt: skip
    root = et.Element("annotation")
    et.SubElement(root, "folder").text = "VOC2007"
    et.SubElement(root, "filename").text = filename
    size = et.SubElement(root, "size")
    et.SubElement(size, "width").text = str(width)
    et.SubElement(size, "height").text = str(height)
    et.SubElement(size, "depth").text = "3"
    for name, box, points in zip(names, boxes, landmarks, strict=True):
        obj = et.SubElement(root, "object")
        et.SubElement(obj, "name").text = name
        et.SubElement(obj, "difficult").text = "0"
        bndbox = et.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            et.SubElement(bndbox, tag).text = repr(float(value))
        marks = et.SubElement(obj, "landmarks")
        for k, (x, y) in enumerate(points):
            et.SubElement(marks, f"x{k + 1}").text = repr(float(x))
            et.SubElement(marks, f"y{k + 1}").text = repr(float(y))
    et.indent(root)
    return et.tostring(root, encoding="utf-8", xml_declaration=True)


def _jpeg_bytes(image: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
    """The JPEG file of a uint8 [3, H, W] image and its decoded pixels ([3, H, W], contiguous)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(
        buffer, "JPEG", quality=quality
    )
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        pixels = np.ascontiguousarray(np.asarray(decoded).transpose(2, 0, 1))
    return data, pixels


def _write_synthetic(folder: Path, params: dict[str, Any], progress: bool) -> None:
    for sub in ("Annotations", "JPEGImages", _PREDECODED, "ImageSets/Main"):
        (folder / sub).mkdir(parents=True)
    class_names = [f"class_{k:02d}" for k in range(params["num_classes"])]
    (folder / "classes.txt").write_text("\n".join(class_names) + "\n")
    indices: Any = range(params["num_images"])
    if progress:
        try:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc="writing synthetic dataset", unit="img", leave=False)
        except ImportError:
            pass
    stems = []
    for index in indices:
        image, labels, boxes, landmarks = _synthesize(params["seed"], index, params)
        stem = f"{index:06d}"
        data, pixels = _jpeg_bytes(image, params["jpeg_quality"])
        (folder / "JPEGImages" / f"{stem}.jpg").write_bytes(data)
        np.save(folder / _PREDECODED / f"{stem}.npy", pixels)
        names = [class_names[label] for label in labels]
        (folder / "Annotations" / f"{stem}.xml").write_bytes(
            _annotation_xml(f"{stem}.jpg", image.shape[1], image.shape[2], names, boxes, landmarks)
        )
        stems.append(stem)
    (folder / "ImageSets" / "Main" / "trainval.txt").write_text("".join(s + "\n" for s in stems))
    # Written last: its presence means the folder is complete.
    (folder / _MARKER).write_text(json.dumps(params, sort_keys=True))


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def default_cache_root(params: dict[str, Any]) -> Path:
    """The cache folder for these generator parameters under the system temp directory."""
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"fastloader-synthetic-{key}"


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
        root: where to write; None for the cache under the temp directory. An existing folder
            written by this class with other parameters is replaced; any other non-empty folder
            is refused.
        num_images: how many images.
        num_classes: number of classes (``class_00``, ``class_01``, ...).
        min_size, max_size: with ``shapes="uniform"``, the inclusive range of heights and widths
            (each drawn on its own; equal for same-size images).
        shapes: ``"uniform"`` or ``"voc"``: the longer side is ``max_size`` (as detection
            resizing leaves it) and the aspect ratio follows :data:`VOC_SHAPES`, about VOC 2007's
            mix of 4:3 and 3:2 landscapes and their portrait forms.
        max_boxes: boxes per image are drawn uniformly from ``[0, max_boxes]``.
        image_format: ``"jpeg"`` or ``"npy"``: which copy samples are read from.
        jpeg_quality: the JPEG quality (1-95).
        seed: fixes the content.
        sample_format, transform, decoder, read_into_batch: as for :class:`VOCDetection`.
        progress: show a tqdm bar while writing (when tqdm is installed).
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
        min_size = positive_int(min_size, "min_size")
        max_size = positive_int(max_size, "max_size")
        if max_size < min_size:
            raise ValueError(
                f"max_size should be >= min_size, but got min_size={min_size}, max_size={max_size}"
            )
        quality = positive_int(jpeg_quality, "jpeg_quality")
        if quality > 95:
            raise ValueError(f"jpeg_quality should be in [1, 95], but got jpeg_quality={quality}")
        if seed is None:
            raise TypeError("seed should be an int: the dataset is a cache keyed by it")
        self.params = {
            "version": _GENERATOR_VERSION,
            "num_images": positive_int(num_images, "num_images"),
            "num_classes": positive_int(num_classes, "num_classes"),
            "min_size": min_size,
            "max_size": max_size,
            "shapes": shapes,
            "max_boxes": non_negative_int(max_boxes, "max_boxes"),
            "jpeg_quality": quality,
            "seed": seed_or_none(seed),
        }
        self.image_format = image_format
        folder = Path(root) if root is not None else default_cache_root(self.params)
        self.generated = self._ensure(folder, progress)
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

    def _ensure(self, folder: Path, progress: bool) -> bool:
        """Makes ``folder`` hold this dataset; True when it had to be written."""
        if _read_marker(folder) == self.params:
            return False
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"root should be a folder, but {folder} is a file")
            if _read_marker(folder) is None and any(folder.iterdir()):
                raise ValueError(
                    f"root {folder} is a non-empty folder not written by "
                    "SyntheticDetection; pass a new or empty folder"
                )
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _write_synthetic(staging, self.params, progress)
            if _read_marker(folder) == self.params:  # another process finished first
                return False
            if folder.exists():
                shutil.rmtree(folder)
            try:
                os.rename(staging, folder)
            except OSError:
                if _read_marker(folder) != self.params:  # lost a race to a different writer
                    raise
                return False
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True
