"""SyntheticDetection: a generated, cached VOC2007-layout folder of imbalanced detection data"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import uuid
import warnings
import xml.etree.ElementTree as et
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._util.checks import non_negative_int, positive_int, seed_or_none
from ..io.decode import DEFAULT_MAX_IMAGE_PIXELS
from ._base import PathLike
from .annotations import NUM_LANDMARKS
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
# 3: the marker names its generator and a manifest of the files written.
_GENERATOR_VERSION = 3
_MARKER = "synthetic.json"
_MANIFEST = "synthetic-files.txt"
_GENERATORS = ("SyntheticDetection", "synthetic_widerface")
#: Upper bounds checked before anything is written: ten million images is ten times ImageNet-1k,
#: and a hundred thousand classes five times ImageNet-21k.
MAX_IMAGES = 10_000_000
MAX_CLASSES = 100_000
MAX_BOXES = 100_000
#: The longest side whose square images stay within the decoders' default pixel limit.
MAX_SIDE = math.isqrt(DEFAULT_MAX_IMAGE_PIXELS)
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


def _image_size(rng: np.random.Generator, params: dict[str, Any]) -> tuple[int, int]:
    if params["shapes"] == "widerface":  # WIDER FACE's images are all 1024 wide, heights vary
        ratios, shares = _voc_mix()
        ratio = float(ratios[int(rng.choice(len(ratios), p=shares))])
        return max(1, round(params["max_size"] / ratio)), params["max_size"]
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


def _progress(indices: range, progress: bool) -> Any:
    if progress:
        try:
            from tqdm.auto import tqdm

            return tqdm(indices, desc="writing synthetic dataset", unit="img", leave=False)
        except ImportError:
            pass
    return indices


def _need_pillow(generator: str) -> None:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ImportError(
            f"{generator} writes JPEG files with Pillow, which is not installed: "
            "pip install 'fastloader[datasets]'"
        ) from None


# --------------------------------------------------------------------------------------------
# The generated folder as a cache that never deletes what it did not write.
#
# ``synthetic.json`` (the marker, written last: its presence means the folder is complete) is
# exactly {"generator": <who wrote it>, "params": <its parameters>, "manifest": _MANIFEST}, and
# the manifest lists, one per line, every file the generator wrote. A folder is only ever
# replaced when its marker is exactly that shape with our generator's name and every file in it
# is listed in its manifest; then only the listed files are deleted (folders only when empty).


class _Marker(NamedTuple):
    generator: str
    params: dict[str, Any]


def _read_marker(folder: Path) -> _Marker | None:
    """The folder's marker when it is exactly one a generator here writes, else None."""
    try:
        content = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if (
        not isinstance(content, dict)
        or set(content) != {"generator", "params", "manifest"}
        or content["generator"] not in _GENERATORS
        or content["manifest"] != _MANIFEST
        or not isinstance(content["params"], dict)
    ):
        return None
    return _Marker(content["generator"], content["params"])


def _listed_files(folder: Path) -> set[str] | None:
    """The manifest's relative paths, or None when it is missing or lists a path that is not a
    plain relative one inside the folder (then it is not trusted with any deletion)."""
    try:
        lines = (folder / _MANIFEST).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    listed = set()
    for line in lines:
        parts = line.split("/")
        if not line or line.startswith("/") or any(p in ("", ".", "..") for p in parts):
            return None
        listed.add(line)
    return listed | {_MARKER, _MANIFEST}


def _entries_under(folder: Path) -> set[str]:
    """Every entry under folder (symlinks not followed), relative and '/'-separated, folders
    with a trailing '/'."""
    found = set()
    for top, dirs, files in os.walk(folder):
        relative = Path(top).relative_to(folder)
        for name in dirs:
            link = os.path.islink(os.path.join(top, name))
            found.add((relative / name).as_posix() + ("" if link else "/"))
        found.update((relative / name).as_posix() for name in files)
    return found


def _with_folders(listed: set[str]) -> set[str]:
    """The listed files and the folders holding them (with a trailing '/')."""
    folders = {
        "/".join(name.split("/")[:k]) + "/"
        for name in listed
        for k in range(1, name.count("/") + 1)
    }
    return listed | folders


def _refuse_unless_replaceable(folder: Path, generator: str) -> None:
    """Raises unless ``folder`` is missing, empty, or holds only what ``generator`` wrote."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"root should be a folder, but {folder} is a file")
    if not any(folder.iterdir()):
        return
    marker = _read_marker(folder)
    if marker is None:
        raise ValueError(
            f"root {folder} is a non-empty folder not written by {generator} (no {_MARKER} of "
            "its own; one written by an older fastloader has an older marker: delete it "
            "yourself); pass a new or empty folder. Nothing was changed"
        )
    if marker.generator != generator:
        raise ValueError(
            f"root {folder} was written by {marker.generator}, not {generator}; pass a new or "
            "empty folder. Nothing was changed"
        )
    listed = _listed_files(folder)
    if listed is None:
        raise ValueError(
            f"root {folder}: its file list {_MANIFEST} is missing or malformed, so what "
            f"{generator} wrote there is unknown; pass a new or empty folder. Nothing was changed"
        )
    foreign = sorted(_entries_under(folder) - _with_folders(listed))
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        shown = ", ".join(foreign[:3]) + more
        raise ValueError(
            f"root {folder} holds files {generator} did not write ({shown}); it replaces a folder "
            "of its own with other parameters only when it holds nothing else. Move them or pass "
            "another folder. Nothing was changed"
        )


def _remove_written(folder: Path) -> None:
    """Deletes the files the manifest of ``folder`` lists, then its folders that are left empty;
    anything else stays (a file added after the check is left, with the folder holding it)."""
    listed = _listed_files(folder) or {_MARKER}
    for name in sorted(listed - {_MARKER, _MANIFEST}) + [_MANIFEST, _MARKER]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)  # unlink never follows a symlink
    for top, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):  # not empty: something we did not write is there
            os.rmdir(top)
    if folder.exists():
        warnings.warn(
            f"{folder} was left in place: it holds files added while it was being replaced",
            stacklevel=3,
        )


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


def _check_free_space(folder: Path, needed: int) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:  # not measurable here: writing reports a full disk itself
        return
    if needed > free:
        raise ValueError(
            f"writing this dataset to {folder} needs about {needed / 2**30:.1f} GiB but "
            f"{free / 2**30:.1f} GiB are free there; lower num_images or the image size, or "
            "pass another root. Nothing was written"
        )


def _ensure_generated(
    folder: Path,
    generator: str,
    params: dict[str, Any],
    write: Callable[[Path, dict[str, Any], bool], list[str]],
    progress: bool,
    needed_bytes: int = 0,
) -> bool:
    """Makes ``folder`` hold ``write``'s output for ``params``; True when it had to be written.

    A folder already holding exactly this output is reused. Otherwise the output is written to
    a new sibling, which is renamed into place; a previous output of the same generator (and
    nothing else) is renamed aside first and then removed file by file from its manifest.
    """
    if _read_marker(folder) == (generator, params):
        return False
    _refuse_unless_replaceable(folder, generator)
    _need_pillow(generator)
    _check_free_space(folder, needed_bytes)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = folder.parent / f".{folder.name}.tmp-{tag}"
    staging.mkdir()  # new and ours alone: removing it on failure deletes only what we wrote
    try:
        written = write(staging, params, progress)
        (staging / _MANIFEST).write_text("".join(name + "\n" for name in sorted(written)))
        marker = {"generator": generator, "params": params, "manifest": _MANIFEST}
        (staging / _MARKER).write_text(json.dumps(marker, sort_keys=True))  # last: complete
        if _read_marker(folder) == (generator, params):  # another process finished first
            return False
        _refuse_unless_replaceable(folder, generator)  # checked again: it may have changed
        old = None
        if folder.exists():
            if any(folder.iterdir()):
                old = folder.parent / f".{folder.name}.old-{tag}"
                os.rename(folder, old)
            else:
                folder.rmdir()
        try:
            os.rename(staging, folder)
        except OSError:
            if old is not None and not folder.exists():
                os.rename(old, folder)  # put the previous output back
                old = None
            if _read_marker(folder) != (generator, params):  # lost a race to another writer
                raise
            return False
        finally:
            if old is not None:
                _remove_written(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return True


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


def _widerface_image_params(params: dict[str, Any]) -> dict[str, Any]:
    """What ``_synthesize`` needs to draw this folder's images: one class, fixed width."""
    width = params["width"]
    return {
        "shapes": "widerface",
        "min_size": width,
        "max_size": width,
        "num_classes": 1,
        "max_boxes": params["max_faces"],
    }


def _jpeg_only(image: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(
        buffer, "JPEG", quality=quality
    )
    return buffer.getvalue()


def _face_line(box: np.ndarray, points: np.ndarray, confidence: float | None) -> str:
    """One label.txt face: x y w h, x y 0.0 per landmark and a confidence; -1 x 16 without."""
    x1, y1, x2, y2 = (float(v) for v in box)
    fields = [x1, y1, x2 - x1, y2 - y1]
    if confidence is None:
        fields += [-1.0] * (3 * NUM_LANDMARKS + 1)
    else:
        for x, y in points:
            fields += [float(x), float(y), 0.0]
        fields.append(confidence)
    return " ".join(repr(value) for value in fields)


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
    if not isinstance(split, str) or not split or os.path.basename(split) != split:
        raise ValueError(f"split should be a split folder name, but got split={split!r}")
    if split in (os.curdir, os.pardir):
        raise ValueError(f"split should be a split folder name, but got split={split!r}")
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
