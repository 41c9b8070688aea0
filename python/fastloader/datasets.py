"""VOC-style detection data: an XML-annotated Dataset and a cached synthetic, imbalanced one"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import uuid
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ._checks import non_negative_int, positive_int, seed_or_none

try:  # lxml parses the same documents faster; the standard library is the fallback
    from lxml import etree as _etree  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    import xml.etree.ElementTree as _etree  # type: ignore[no-redef]

import xml.etree.ElementTree as _stdlib_etree

__all__ = [
    "VOCDetection",
    "SyntheticDetection",
    "image_class_weights",
    "class_histogram",
    "read_png",
    "write_png",
    "TARGET_COLUMNS",
    "NUM_LANDMARKS",
]

PathLike = Union[str, "os.PathLike[str]"]

NUM_LANDMARKS = 5
#: Column layout of the ``[N, 15]`` float32 target of tuple samples.
TARGET_COLUMNS = {"boxes": slice(0, 4), "label": 4, "landmarks": slice(5, 5 + 2 * NUM_LANDMARKS)}
_TARGET_WIDTH = 5 + 2 * NUM_LANDMARKS
_SAMPLE_FORMATS = ("tuple", "dict")
_IMAGE_FORMATS = ("npy", "png")
# Bumped whenever the generator's output changes, so stale caches are never reused.
_GENERATOR_VERSION = 1
_MARKER = "synthetic.json"


# --------------------------------------------------------------------------------------------
# Annotation parsing


class _Annotation:
    __slots__ = ("filename", "width", "height", "names", "boxes", "landmarks")

    def __init__(
        self,
        filename: str,
        width: int,
        height: int,
        names: list[str],
        boxes: np.ndarray,
        landmarks: np.ndarray,
    ) -> None:
        self.filename = filename
        self.width = width
        self.height = height
        self.names = names
        self.boxes = boxes
        self.landmarks = landmarks


def _text(element: Any, path: str, source: Path) -> str:
    found = element.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise ValueError(f"{source}: missing <{path}> element")
    return found.text.strip()


def _number(element: Any, path: str, source: Path) -> float:
    text = _text(element, path, source)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{source}: <{path}> should be a number, but got {text!r}") from None


def _parse_xml(path: Path) -> Any:
    try:
        return _etree.parse(str(path)).getroot()
    except (OSError, _stdlib_etree.ParseError, getattr(_etree, "XMLSyntaxError", OSError)) as exc:
        raise ValueError(f"{path}: cannot parse the annotation: {exc}") from None


def _parse_names(path: Path) -> list[str]:
    """The object class names of one annotation file, in file order; nothing else is read."""
    root = _parse_xml(path)
    return [_text(obj, "name", path) for obj in root.iter("object")]


def _parse_annotation(path: Path) -> _Annotation:
    root = _parse_xml(path)
    filename = _text(root, "filename", path)
    width = int(_number(root, "size/width", path))
    height = int(_number(root, "size/height", path))
    objects = list(root.iter("object"))
    boxes = np.empty((len(objects), 4), dtype=np.float32)
    # Objects without landmarks (plain VOC) get -1, the RetinaFace convention for "absent".
    landmarks = np.full((len(objects), NUM_LANDMARKS, 2), -1.0, dtype=np.float32)
    names = []
    for row, obj in enumerate(objects):
        names.append(_text(obj, "name", path))
        for column, tag in enumerate(("xmin", "ymin", "xmax", "ymax")):
            boxes[row, column] = _number(obj, f"bndbox/{tag}", path)
        points = obj.find("landmarks")
        if points is not None:
            for k in range(NUM_LANDMARKS):
                landmarks[row, k, 0] = _number(points, f"x{k + 1}", path)
                landmarks[row, k, 1] = _number(points, f"y{k + 1}", path)
    return _Annotation(filename, width, height, names, boxes, landmarks)


# --------------------------------------------------------------------------------------------
# PNG without a dependency: 8-bit, non-interlaced grey / RGB / RGBA, the subset we write and
# what almost every dataset uses.

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def write_png(path: PathLike, image: np.ndarray | torch.Tensor, compress_level: int = 6) -> None:
    """Writes a uint8 ``[3, H, W]`` (or ``[H, W, 3]`` with ``H, W > 3``) image as an RGB PNG."""
    array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(
            f"image should be a uint8 [3, H, W] array, but got {array.dtype} {tuple(array.shape)}"
        )
    if array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    if array.shape[2] != 3:
        raise ValueError(f"image should have 3 channels, but got shape {tuple(array.shape)}")
    height, width = array.shape[:2]
    rows = np.empty((height, 1 + width * 3), dtype=np.uint8)
    rows[:, 0] = 0  # filter "None": decoding then costs what real PNGs cost, the inflate
    rows[:, 1:] = array.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as file:
        file.write(_PNG_SIGNATURE)
        file.write(_png_chunk(b"IHDR", header))
        file.write(_png_chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level)))
        file.write(_png_chunk(b"IEND", b""))


def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray:
    rows = raw.reshape(height, stride + 1)
    filters = rows[:, 0]
    out = rows[:, 1:].copy()
    if not filters.any():
        return out
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        line = out[y]
        kind = int(filters[y])
        if kind == 1:  # Sub: a running sum per byte position within a pixel, modulo 256
            for channel in range(bpp):
                np.cumsum(line[channel::bpp], dtype=np.uint8, out=line[channel::bpp])
        elif kind == 2:  # Up
            line += previous
        elif kind in (3, 4):  # Average / Paeth depend on the byte just decoded: sequential
            values = line.tolist()
            above = previous.tolist()
            for x in range(stride):
                left = values[x - bpp] if x >= bpp else 0
                up = above[x]
                if kind == 3:
                    values[x] = (values[x] + ((left + up) >> 1)) & 0xFF
                else:
                    upper_left = above[x - bpp] if x >= bpp else 0
                    estimate = left + up - upper_left
                    pa, pb, pc = (
                        abs(estimate - left),
                        abs(estimate - up),
                        abs(estimate - upper_left),
                    )
                    predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else upper_left)
                    values[x] = (values[x] + predictor) & 0xFF
            line[:] = values
        elif kind != 0:
            raise ValueError(f"unknown PNG filter type {kind} in row {y}")
        previous = line
    return out


def read_png(path: PathLike) -> np.ndarray:
    """Decodes an 8-bit non-interlaced PNG into a uint8 ``[3, H, W]`` array (grey is repeated,
    alpha dropped), with the standard library's zlib only."""
    data = Path(path).read_bytes()
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file")
    position = len(_PNG_SIGNATURE)
    header = None
    compressed = []
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
    if header is None or not compressed:
        raise ValueError(f"{path}: truncated PNG (no IHDR or IDAT chunk)")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in _PNG_CHANNELS or interlace != 0:
        raise ValueError(
            f"{path}: only 8-bit non-interlaced grey/RGB/RGBA PNGs are supported, "
            f"got bit depth {depth}, colour type {color}, interlace {interlace}"
        )
    channels = _PNG_CHANNELS[color]
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(compressed)), dtype=np.uint8)
    except zlib.error as exc:
        raise ValueError(f"{path}: corrupt PNG data: {exc}") from None
    if raw.size != height * (width * channels + 1):
        raise ValueError(
            f"{path}: PNG data has {raw.size} bytes, expected {height * (width * channels + 1)}"
        )
    pixels = _unfilter(raw, height, width * channels, channels).reshape(height, width, channels)
    if channels <= 2:
        pixels = np.repeat(pixels[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3].transpose(2, 0, 1))


def _load_image(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{path}: cannot load the image: {exc}") from None
    elif suffix == ".png":
        array = read_png(path)
    else:
        try:
            from PIL import Image  # type: ignore[import-not-found]
        except ImportError:
            raise ValueError(
                f"{path}: only .npy and .png images can be read without Pillow"
            ) from None
        with Image.open(path) as opened:
            array = np.asarray(opened.convert("RGB")).transpose(2, 0, 1)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(
            f"{path}: expected a uint8 [3, H, W] image, but got {array.dtype} {tuple(array.shape)}"
        )
    return np.ascontiguousarray(array)


# --------------------------------------------------------------------------------------------
# Label statistics: work on labels only, so no image is ever decoded for them.


def class_histogram(
    labels: Sequence[np.ndarray],
    num_classes: int,
    indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> np.ndarray:
    """How many of the images ``indices`` (all images when None; repeats count) contain each
    class: an int64 array ``[num_classes]``."""
    num_classes = positive_int(num_classes, "num_classes")
    presence = np.zeros((len(labels), num_classes), dtype=np.int64)
    for image, image_labels in enumerate(labels):
        presence[image, np.asarray(image_labels, dtype=np.int64)] = 1
    if indices is None:
        return presence.sum(axis=0)
    chosen = np.asarray(
        indices.numpy() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64
    )
    counts = np.bincount(chosen, minlength=len(labels))
    return counts @ presence


def image_class_weights(labels: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Sampling weights that rebalance images by their rarest class.

    An image's weight is ``1 / (number of images containing c)`` maximised over the classes ``c``
    it contains; images without objects form one more group weighted the same way. Each class
    (and the empty group) is then drawn about equally often by a weighted sampler, up to images
    holding several classes. Returns float64 ``[len(labels)]``, not normalised (samplers do that).
    """
    num_classes = positive_int(num_classes, "num_classes")
    images_per_class = class_histogram(labels, num_classes)
    empty = sum(1 for image_labels in labels if len(image_labels) == 0)
    weights = np.empty(len(labels), dtype=np.float64)
    for image, image_labels in enumerate(labels):
        if len(image_labels) == 0:
            weights[image] = 1.0 / empty
        else:
            weights[image] = 1.0 / images_per_class[np.asarray(image_labels)].min()
    return weights


# --------------------------------------------------------------------------------------------
# The Dataset


class VOCDetection(Dataset):
    """Detection samples from VOC-style XML files, one per image, with optional 5-point landmarks.

    Layout: ``root/<annotation_dir>/*.xml`` (sorted by name: that order is the index) and images
    at ``root/<image_dir>/<filename>`` as named by each XML's ``<filename>``: ``.npy`` (uint8
    ``[3, H, W]``), ``.png`` (decoded with zlib only) or, with Pillow installed, anything it reads.
    Each ``<object>`` has ``<name>``, ``<bndbox>`` (xmin, ymin, xmax, ymax, pixels) and optionally
    ``<landmarks>`` with ``x1, y1 ... x5, y5`` (absent landmarks read as -1).

    Samples, by ``sample_format``:

    - ``"tuple"``: ``(image, target)``: image a uint8 tensor ``[3, H, W]``, target float32
      ``[N, 15]`` with columns ``0:4`` box, ``4`` class index, ``5:15`` landmarks
      ``x1, y1, ..., x5, y5`` (see :data:`TARGET_COLUMNS`); ``N`` may be 0.
    - ``"dict"``: ``{"image": uint8 [3, H, W], "boxes": float32 [N, 4], "labels": int64 [N],
      "landmarks": float32 [N, 5, 2]}``.

    Args:
        root: the dataset folder.
        classes: class names in index order; when None, read from ``root/classes.txt`` (one per
            line) or else collected from all annotations, sorted.
        sample_format: ``"tuple"`` or ``"dict"``.
        transform: called on each sample before it is returned.
    """

    def __init__(
        self,
        root: PathLike,
        *,
        classes: Sequence[str] | None = None,
        sample_format: str = "tuple",
        transform: Callable[[Any], Any] | None = None,
        annotation_dir: str = "Annotations",
        image_dir: str = "images",
    ) -> None:
        self.root = Path(root)
        if sample_format not in _SAMPLE_FORMATS:
            raise ValueError(
                f"sample_format should be one of {_SAMPLE_FORMATS}, "
                f"but got sample_format={sample_format!r}"
            )
        if transform is not None and not callable(transform):
            raise TypeError(
                f"transform should be callable or None, but got {type(transform).__name__}"
            )
        self.sample_format = sample_format
        self.transform = transform
        annotations = self.root / annotation_dir
        if not annotations.is_dir():
            raise ValueError(
                f"root should contain an {annotation_dir!r} folder, but {annotations} "
                "is not a directory"
            )
        self.annotation_files = sorted(annotations.glob("*.xml"))
        if not self.annotation_files:
            raise ValueError(f"no .xml annotation files in {annotations}")
        self.image_root = self.root / image_dir
        self._labels: list[np.ndarray] | None = None
        if classes is None:
            listed = self.root / "classes.txt"
            if listed.is_file():
                classes = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
            else:
                classes = sorted(
                    {name for path in self.annotation_files for name in _parse_names(path)}
                )
        if isinstance(classes, str) or not all(isinstance(name, str) for name in classes):
            raise TypeError("classes should be a sequence of class-name strings")
        self.classes = list(classes)
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes should not contain duplicate names")
        self.class_to_index = {name: index for index, name in enumerate(self.classes)}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.annotation_files)

    def _index(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            if (
                isinstance(index, torch.Tensor)
                and index.numel() == 1
                and not index.is_floating_point()
            ):
                index = int(index.item())
            else:
                raise TypeError(f"index should be an int, but got {type(index).__name__}")
        size = len(self.annotation_files)
        if not -size <= index < size:
            raise IndexError(f"index {index} is out of range for a dataset of {size} images")
        return int(index) % size

    def _class_indices(self, names: list[str], source: Path) -> np.ndarray:
        try:
            return np.array([self.class_to_index[name] for name in names], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{source}: class {exc.args[0]!r} is not in classes") from None

    def annotation(self, index: int) -> dict[str, Any]:
        """The parsed annotation of one image without loading the image: ``filename``, ``width``,
        ``height``, ``boxes``, ``labels``, ``landmarks``."""
        path = self.annotation_files[self._index(index)]
        parsed = _parse_annotation(path)
        return {
            "filename": parsed.filename,
            "width": parsed.width,
            "height": parsed.height,
            "boxes": parsed.boxes,
            "labels": self._class_indices(parsed.names, path),
            "landmarks": parsed.landmarks,
        }

    def __getitem__(self, index: int) -> Any:
        position = self._index(index)
        path = self.annotation_files[position]
        parsed = _parse_annotation(path)
        labels = self._class_indices(parsed.names, path)
        image = _load_image(self.image_root / parsed.filename)
        if image.shape[1:] != (parsed.height, parsed.width):
            raise ValueError(
                f"{path}: <size> says {parsed.height}x{parsed.width} but the image is "
                f"{image.shape[1]}x{image.shape[2]}"
            )
        image_tensor = torch.from_numpy(image)
        if self.sample_format == "dict":
            sample: Any = {
                "image": image_tensor,
                "boxes": torch.from_numpy(parsed.boxes),
                "labels": torch.from_numpy(labels),
                "landmarks": torch.from_numpy(parsed.landmarks),
            }
        else:
            target = np.empty((len(labels), _TARGET_WIDTH), dtype=np.float32)
            target[:, TARGET_COLUMNS["boxes"]] = parsed.boxes
            target[:, TARGET_COLUMNS["label"]] = labels
            target[:, TARGET_COLUMNS["landmarks"]] = parsed.landmarks.reshape(
                len(labels), 2 * NUM_LANDMARKS
            )
            sample = (image_tensor, torch.from_numpy(target))
        return self.transform(sample) if self.transform is not None else sample

    def labels(self) -> list[np.ndarray]:
        """The class indices of every image (int64 arrays, one per image, possibly empty).

        Reads the XML files only, never an image; parsed once and cached.
        """
        if self._labels is None:
            self._labels = [
                self._class_indices(_parse_names(path), path) for path in self.annotation_files
            ]
        return [labels.copy() for labels in self._labels]

    def class_histogram(
        self, indices: Sequence[int] | np.ndarray | torch.Tensor | None = None
    ) -> np.ndarray:
        """Images containing each class among ``indices`` (all images when None)."""
        return class_histogram(self.labels(), self.num_classes, indices)

    def image_class_weights(self) -> np.ndarray:
        """Per-image weights for :class:`fastloader.FastWeightedSampler` that rebalance classes;
        see :func:`image_class_weights`. Reads labels only."""
        return image_class_weights(self.labels(), self.num_classes)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_labels"] = None  # workers never need it; keeps spawn pickles small
        return state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, images={len(self)}, "
            f"classes={self.num_classes}, sample_format={self.sample_format!r})"
        )


# --------------------------------------------------------------------------------------------
# The synthetic dataset

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


def _synthesize(
    seed: int, index: int, params: dict[str, Any]
) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray]:
    """Image ``index`` of the dataset: a pure function of (seed, index, params)."""
    rng = np.random.default_rng([seed, index])
    height = int(rng.integers(params["min_size"], params["max_size"] + 1))
    width = int(rng.integers(params["min_size"], params["max_size"] + 1))
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

    # Smooth background plus mild noise, objects as flat class-coloured rectangles: a picture
    # that compresses like a photo rather than like pure noise.
    base = rng.integers(0, 137, size=3)  # + ramps (96) + noise (22) stays <= 255
    ramp_y = np.linspace(0, 64, height, dtype=np.float32)[:, None]
    ramp_x = np.linspace(0, 32, width, dtype=np.float32)[None, :]
    image = np.empty((3, height, width), dtype=np.uint8)
    for channel in range(3):
        image[channel] = (base[channel] + ramp_y + ramp_x).astype(np.uint8)
    palette = np.random.default_rng([seed, 1 << 32]).integers(
        0, 233, size=(num_classes, 3), dtype=np.uint8
    )
    for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels):
        image[:, y1:y2, x1:x2] = palette[label][:, None, None]
    image += rng.integers(0, 23, size=(3, height, width), dtype=np.uint8)
    return image, labels.tolist(), boxes, landmarks


def _format_number(value: float) -> str:
    return repr(float(value))


def _annotation_xml(
    filename: str, image: np.ndarray, names: list[str], boxes: np.ndarray, landmarks: np.ndarray
) -> bytes:
    et = _stdlib_etree
    root = et.Element("annotation")
    et.SubElement(root, "folder").text = "images"
    et.SubElement(root, "filename").text = filename
    size = et.SubElement(root, "size")
    et.SubElement(size, "width").text = str(image.shape[2])
    et.SubElement(size, "height").text = str(image.shape[1])
    et.SubElement(size, "depth").text = str(image.shape[0])
    for name, box, points in zip(names, boxes, landmarks):
        obj = et.SubElement(root, "object")
        et.SubElement(obj, "name").text = name
        et.SubElement(obj, "difficult").text = "0"
        bndbox = et.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            et.SubElement(bndbox, tag).text = _format_number(value)
        marks = et.SubElement(obj, "landmarks")
        for k, (x, y) in enumerate(points):
            et.SubElement(marks, f"x{k + 1}").text = _format_number(x)
            et.SubElement(marks, f"y{k + 1}").text = _format_number(y)
    if hasattr(et, "indent"):
        et.indent(root)
    return et.tostring(root, encoding="utf-8", xml_declaration=True)


def _write_synthetic(folder: Path, params: dict[str, Any], progress: bool) -> None:
    (folder / "Annotations").mkdir(parents=True)
    (folder / "images").mkdir()
    class_names = [f"class_{k:02d}" for k in range(params["num_classes"])]
    (folder / "classes.txt").write_text("\n".join(class_names) + "\n")
    indices = range(params["num_images"])
    if progress:
        try:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc="writing synthetic dataset", unit="img", leave=False)
        except ImportError:
            pass
    for index in indices:
        image, labels, boxes, landmarks = _synthesize(params["seed"], index, params)
        stem = f"{index:06d}"
        filename = f"{stem}.{params['image_format']}"
        if params["image_format"] == "npy":
            np.save(folder / "images" / filename, image)
        else:
            write_png(folder / "images" / filename, image)
        names = [class_names[label] for label in labels]
        (folder / "Annotations" / f"{stem}.xml").write_bytes(
            _annotation_xml(filename, image, names, boxes, landmarks)
        )
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
    """A generated VOC-style detection dataset shaped like real face/object detection data.

    Writes ``num_images`` images and one XML annotation each (see :class:`VOCDetection` for the
    layout and the samples) and then reads them like any VOC folder. Per image: height and width
    drawn from ``[min_size, max_size]``, 0 to ``max_boxes`` boxes, each with a class and 5
    landmarks; the classes of an image come from a Zipf distribution over ``num_classes``, so
    classes are strongly imbalanced (with 20 classes the rarest is in about 2% of images, the
    commonest in about 40%). Everything is a pure function of ``seed`` and the parameters, and
    image ``i`` does not depend on ``num_images``.

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
        min_size, max_size: inclusive range of image heights and widths in pixels (equal for
            same-size images).
        max_boxes: boxes per image are drawn uniformly from ``[0, max_boxes]``.
        image_format: ``"npy"`` (uint8 ``[3, H, W]``) or ``"png"`` (zlib-compressed).
        seed: fixes the content.
        sample_format, transform: as for :class:`VOCDetection`.
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
        max_boxes: int = 50,
        image_format: str = "npy",
        seed: int = 0,
        sample_format: str = "tuple",
        transform: Callable[[Any], Any] | None = None,
        progress: bool = False,
    ) -> None:
        if image_format not in _IMAGE_FORMATS:
            raise ValueError(
                f"image_format should be one of {_IMAGE_FORMATS}, "
                f"but got image_format={image_format!r}"
            )
        min_size = positive_int(min_size, "min_size")
        max_size = positive_int(max_size, "max_size")
        if max_size < min_size:
            raise ValueError(
                f"max_size should be >= min_size, but got min_size={min_size}, max_size={max_size}"
            )
        if seed is None:
            raise TypeError("seed should be an int: the dataset is a cache keyed by it")
        self.params = {
            "version": _GENERATOR_VERSION,
            "num_images": positive_int(num_images, "num_images"),
            "num_classes": positive_int(num_classes, "num_classes"),
            "min_size": min_size,
            "max_size": max_size,
            "max_boxes": non_negative_int(max_boxes, "max_boxes"),
            "image_format": image_format,
            "seed": seed_or_none(seed),
        }
        folder = Path(root) if root is not None else default_cache_root(self.params)
        self.generated = self._ensure(folder, progress)
        super().__init__(
            folder,
            classes=[f"class_{k:02d}" for k in range(num_classes)],
            sample_format=sample_format,
            transform=transform,
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
