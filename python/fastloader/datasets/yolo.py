"""YOLODetection: an ultralytics-layout folder (images/<split>, labels/<split>, data.yaml) as a
detection Dataset, with VOCDetection's samples and statistics."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.decode import image_size
from ._base import DetectionDataset, Objects, PathLike
from ._yaml_subset import (
    INTEGER,
    flow_items,
    names_from_mapping,
    scalar,
    split_pair,
    strip_comment,
)
from .annotations import NUM_LANDMARKS

__all__ = ["YOLODetection", "read_data_yaml"]

#: Image files YOLODetection lists (ultralytics' common formats, plus pre-decoded .npy).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".npy")

# --------------------------------------------------------------------------------------------
# data.yaml: the small YAML subset ultralytics files use for what we read (see _yaml_subset)


def read_data_yaml(path: PathLike) -> dict[str, Any]:
    """Reads what YOLODetection needs from an ultralytics ``data.yaml``: ``names`` (a list, as
    ``names: [a, b]``, a block list of ``- a`` lines, or a mapping ``0: a`` in a block or
    ``{0: a, 1: b}``), ``nc`` and ``kpt_shape`` (``[K, 2 or 3]``). Other top-level keys and
    their indented blocks are skipped. Anything in those three that this YAML subset does not
    read clearly (anchors, multi-line flow lists, escapes other than ``\\"``, ...) is refused
    with a ValueError naming the file and line, rather than guessed.

    Returns a dict with ``names`` (list of str, or None), ``nc`` (int or None) and
    ``kpt_shape`` (tuple of two ints, or None).

    Args:
        path: the YAML file.

    Example:
        >>> import os, tempfile
        >>> from fastloader.datasets.yolo import read_data_yaml
        >>> path = os.path.join(tempfile.mkdtemp(), "data.yaml")
        >>> with open(path, "w") as f:
        ...     _ = f.write("path: ../coco8  # root\\nnames:\\n  0: person\\n")
        ...     _ = f.write("  1: 'traffic light'\\n")
        >>> read_data_yaml(path)
        {'names': ['person', 'traffic light'], 'nc': None, 'kpt_shape': None}
    """
    source = Path(path)
    lines = source.read_text(encoding="utf-8").splitlines()
    out: dict[str, Any] = {"names": None, "nc": None, "kpt_shape": None}
    i = 0
    while i < len(lines):
        where = f"{source}:{i + 1}"
        line = strip_comment(lines[i])
        i += 1
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        if line[0] in " \t":
            raise ValueError(f"{where}: unexpected indentation")
        key, value = split_pair(line, where)
        key, value = key.strip(), value.strip()
        block: list[tuple[int, str]] = []  # the indented lines that follow
        while i < len(lines):
            following = strip_comment(lines[i])
            if following.strip() and following[0] not in " \t":
                break
            if following.strip():
                block.append((i + 1, following.strip()))
            i += 1
        if key not in ("names", "nc", "kpt_shape"):
            continue  # path, train, val, download scripts, ...: not ours to read
        if key == "nc":
            if block or not INTEGER.match(value) or int(value) < 0:
                raise ValueError(f"{where}: nc should be a non-negative integer, got {value!r}")
            out["nc"] = int(value)
        elif key == "kpt_shape":
            if block or not (value.startswith("[") and value.endswith("]")):
                raise ValueError(f"{where}: kpt_shape should be a one-line list like [17, 3]")
            items = [x.strip() for x in flow_items(value[1:-1], where)]
            if len(items) != 2 or not all(INTEGER.match(x) for x in items):
                raise ValueError(f"{where}: kpt_shape should be [K, 2] or [K, 3], got {value}")
            count, dims = (int(x) for x in items)
            if count < 1 or dims not in (2, 3):
                raise ValueError(f"{where}: kpt_shape should be [K, 2] or [K, 3], got {value}")
            out["kpt_shape"] = (count, dims)
        elif value:  # names on one line
            if block:
                raise ValueError(f"{where}: names spans several lines in a form not read here")
            if value.startswith("[") and value.endswith("]"):
                out["names"] = [scalar(x, where) for x in flow_items(value[1:-1], where)]
            elif value.startswith("{") and value.endswith("}"):
                pairs = [split_pair(x, where) for x in flow_items(value[1:-1], where)]
                out["names"] = names_from_mapping(pairs, where)
            else:
                raise ValueError(
                    f"{where}: names should be a list or a mapping of class index to name"
                )
        else:  # names as a block
            if not block:
                raise ValueError(f"{where}: names is empty")
            if all(text.startswith("- ") or text == "-" for _, text in block):
                out["names"] = [scalar(text[1:], f"{source}:{n}") for n, text in block]
            elif not any(text.startswith("-") for _, text in block):
                pairs = [split_pair(text, f"{source}:{n}") for n, text in block]
                out["names"] = names_from_mapping(pairs, f"{source}:{block[0][0]}")
            else:
                raise ValueError(f"{where}: names mixes list items and mapping entries")
    names, nc = out["names"], out["nc"]
    if names is not None and nc is not None and len(names) != nc:
        raise ValueError(f"{source}: nc is {nc} but names lists {len(names)} classes")
    return out


# --------------------------------------------------------------------------------------------
# Label files


def _parse_labels(
    path: Path, num_fields: int, keypoints: tuple[int, int] | None, num_classes: int | None
) -> tuple[list[int], list[list[float]], list[list[float]], int]:
    """classes, normalized boxes (cx, cy, w, h), keypoints (x, y pairs, -1 absent), and the
    number of zero-size boxes dropped."""
    classes: list[int] = []
    boxes: list[list[float]] = []
    points: list[list[float]] = []
    dropped = 0
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return classes, boxes, points, 0  # an image without a label file has no objects
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the label file: {exc}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != num_fields:
            layout = "class cx cy w h" + (
                f" and {keypoints[0]} keypoints of {keypoints[1]} values" if keypoints else ""
            )
            raise ValueError(
                f"{where}: expected {num_fields} fields ({layout}), got {len(fields)}"
                + (" (segmentation polygons are not read)" if len(fields) > 5 else "")
            )
        if not INTEGER.match(fields[0]) or int(fields[0]) < 0:
            raise ValueError(f"{where}: the class should be an integer >= 0, got {fields[0]!r}")
        label = int(fields[0])
        if num_classes is not None and label >= num_classes:
            raise ValueError(f"{where}: class {label} is outside [0, {num_classes}) (data.yaml)")
        try:
            values = [float(x) for x in fields[1:]]
        except ValueError:
            raise ValueError(f"{where}: expected numbers after the class, got {line!r}") from None
        if keypoints and keypoints[1] == 3:
            checked = [v for k, v in enumerate(values) if k < 4 or (k - 4) % 3 != 2]
        else:
            checked = values
        bad = [v for v in checked if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
        if bad:
            raise ValueError(f"{where}: normalized values should lie in [0, 1], got {bad[0]!r}")
        if values[2] == 0.0 or values[3] == 0.0:
            dropped += 1
            continue
        classes.append(label)
        boxes.append(values[:4])
        if keypoints:
            count, dims = keypoints
            row: list[float] = []
            for k in range(count):
                x, y = values[4 + dims * k], values[5 + dims * k]
                absent = values[6 + dims * k] == 0 if dims == 3 else (x == 0 and y == 0)
                row += [-1.0, -1.0] if absent else [x, y]
            points.append(row)
    return classes, boxes, points, dropped


def _folders(root: Path, split: str) -> tuple[Path, Path]:
    """(images, labels) folders: ``images/<split>`` and ``labels/<split>``, or the Roboflow-style
    ``<split>/images`` and ``<split>/labels``."""
    images, labels = root / "images" / split, root / "labels" / split
    if not images.is_dir() and (root / split / "images").is_dir():
        images, labels = root / split / "images", root / split / "labels"
    if not images.is_dir():
        raise ValueError(
            f"root should hold an images/{split} folder (ultralytics layout), but {images} is not "
            "a directory"
        )
    return images, labels


class YOLODetection(DetectionDataset):
    """Detection samples from an ultralytics-layout YOLO folder, with the same sample formats,
    target layout and statistics as :class:`~fastloader.VOCDetection`.

    Layout: images in ``root/images/<split>`` (``root/<split>/images`` too), one label file per
    image in ``root/labels/<split>/<stem>.txt`` holding a ``class cx cy w h`` line per object
    (normalized to [0, 1]), followed by ``K`` keypoints (``x y`` or ``x y visibility``) when
    ``data.yaml`` gives ``kpt_shape: [K, 2|3]``. An image without a label file has no objects.
    Class names come from ``data.yaml``'s ``names`` (read with a small YAML subset, see
    :func:`read_data_yaml`; no PyYAML needed). Every label file is read once, at construction,
    into packed arrays; boxes become ``x1, y1, x2, y2`` pixels from the image's size when a
    sample is read. :meth:`image_sizes` reads each image's header (JPEG, PNG), never decoding.

    Choices where the format allows either: zero-width or zero-height boxes are dropped with
    one warning for the dataset; keypoints with visibility 0 (or ``0 0`` with 2 values per
    point) are absent (-1); a file without keypoints gets the VOC layout's 5 absent landmarks.
    A wrong field count, a class outside ``names``, or a value outside [0, 1] is an error naming
    the file and line; two images with one stem (one label file) are an error.

    Args:
        root: the dataset folder.
        split: ``"train"``, ``"val"``, ...: the subfolder of ``images`` and ``labels``.
        data_yaml: the ``data.yaml`` to read; None: ``root/data.yaml`` when present.
        classes: class names, overriding ``data.yaml``; when neither gives them, ``"0"``,
            ``"1"``, ... up to the largest class index found.
        sample_format, transform, decoder, read_into_batch: as for
            :class:`~fastloader.VOCDetection` (``read_into_batch`` defers ``.npy`` images).

    Example:
        >>> import os, tempfile
        >>> from PIL import Image
        >>> from fastloader import YOLODetection
        >>> root = tempfile.mkdtemp()
        >>> for sub in ("images/train", "labels/train"):
        ...     os.makedirs(os.path.join(root, sub))
        >>> Image.new("RGB", (40, 20)).save(os.path.join(root, "images/train/a.jpg"))
        >>> with open(os.path.join(root, "labels/train/a.txt"), "w") as f:
        ...     _ = f.write("1 0.5 0.5 0.25 0.5\\n")
        >>> with open(os.path.join(root, "data.yaml"), "w") as f:
        ...     _ = f.write("names: [cat, dog]\\n")
        >>> ds = YOLODetection(root, "train")
        >>> image, target = ds[0]
        >>> ds.classes, image.shape, target[:, :5].tolist()
        (['cat', 'dog'], torch.Size([3, 20, 40]), [[15.0, 5.0, 25.0, 15.0, 1.0]])
    """

    def __init__(
        self,
        root: PathLike,
        split: str,
        *,
        data_yaml: PathLike | None = None,
        classes: Sequence[str] | None = None,
        sample_format: str = "tuple",
        transform: Callable[[Any], Any] | None = None,
        decoder: str = "auto",
        read_into_batch: bool = False,
    ) -> None:
        self.root = Path(root)
        if not isinstance(split, str) or not split:
            raise ValueError(f"split should be a split name such as 'train', but got {split!r}")
        self.split = split
        super().__init__(
            sample_format=sample_format,
            transform=transform,
            decoder=decoder,
            read_into_batch=read_into_batch,
        )
        self.image_root, self.label_root = _folders(self.root, split)
        yaml_path = Path(data_yaml) if data_yaml is not None else self.root / "data.yaml"
        if data_yaml is not None and not yaml_path.is_file():
            raise ValueError(f"data_yaml {str(yaml_path)!r} is not a file")
        meta = (
            read_data_yaml(yaml_path)
            if yaml_path.is_file()
            else {"names": None, "nc": None, "kpt_shape": None}
        )
        if classes is not None:
            if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
                raise TypeError("classes should be a sequence of class-name strings")
            names: list[str] | None = list(classes)
        else:
            names = meta["names"]
        limit = len(names) if names is not None else meta["nc"]
        self.kpt_shape: tuple[int, int] | None = meta["kpt_shape"]
        self.image_files = self._image_files()
        self._read_labels(limit)
        if names is None:
            names = [str(k) for k in range(int(self._labels.max()) + 1 if len(self._labels) else 0)]
        self.classes = names
        self.class_to_index = {name: k for k, name in enumerate(self.classes)}
        self._sizes = None  # read from the image headers on first use

    def _image_files(self) -> list[Path]:
        found = sorted(p for p in self.image_root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        seen: dict[str, Path] = {}
        for path in found:
            if path.stem in seen:
                raise ValueError(
                    f"{seen[path.stem]} and {path} share the stem {path.stem!r}, so one label "
                    "file would serve both: rename one"
                )
            seen[path.stem] = path
        return found

    def _read_labels(self, num_classes: int | None) -> None:
        count, dims = self.kpt_shape or (0, 0)
        num_fields = 5 + count * dims
        offsets = [0]
        labels: list[int] = []
        boxes: list[list[float]] = []
        points: list[list[float]] = []
        dropped = 0
        for image in self.image_files:
            found = _parse_labels(
                self.label_root / f"{image.stem}.txt", num_fields, self.kpt_shape, num_classes
            )
            labels += found[0]
            boxes += found[1]
            points += found[2]
            dropped += found[3]
            offsets.append(len(labels))
        if dropped:
            warnings.warn(
                f"{self.label_root}: dropped {dropped} boxes with zero width or height",
                stacklevel=3,
            )
        self._offsets = np.array(offsets, dtype=np.int64)
        self._labels = np.array(labels, dtype=np.int64)
        self._boxes = np.array(boxes, dtype=np.float64).reshape(len(labels), 4)
        self.num_landmarks = count if count else NUM_LANDMARKS
        if count:
            self._points = np.array(points, dtype=np.float64).reshape(len(labels), count, 2)
        else:
            self._points = np.full((len(labels), NUM_LANDMARKS, 2), -1.0)

    def __len__(self) -> int:
        return len(self.image_files)

    def _image_file(self, position: int) -> str:
        return str(self.image_files[position])

    def _label_lists(self) -> list[np.ndarray]:
        return np.split(self._labels, self._offsets[1:-1]) if len(self) else []

    def _size_array(self) -> np.ndarray:
        """From each image file's header."""
        return self._header_sizes()

    # ---- samples ------------------------------------------------------------------------------
    def _pixels(
        self, position: int, height: int, width: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """boxes float32 [N, 4] x1, y1, x2, y2 and landmarks float32 [N, K, 2] in pixels."""
        objects = slice(int(self._offsets[position]), int(self._offsets[position + 1]))
        cx, cy, w, h = self._boxes[objects].T
        scale = np.array([width, height], dtype=np.float64)
        boxes = np.stack(
            [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
             (cy + h / 2) * height],
            axis=1,
        ).astype(np.float32)  # fmt: skip
        points = self._points[objects]
        landmarks = np.where(points >= 0, points * scale, -1.0).astype(np.float32)
        return boxes, self._labels[objects].copy(), landmarks

    def annotation(self, index: int) -> dict[str, Any]:
        """One image's annotation, its size read from the header: ``file_name``, ``width``,
        ``height``, ``boxes``, ``labels``, ``landmarks`` (pixels)."""
        position = self._position(index)
        path = self.image_files[position]
        height, width = image_size(path)
        boxes, labels, landmarks = self._pixels(position, height, width)
        return {
            "file_name": path.name,
            "width": width,
            "height": height,
            "boxes": boxes,
            "labels": labels,
            "landmarks": landmarks,
        }

    def _objects(
        self, position: int, record: Any, image_path: str, shape: tuple[int, ...]
    ) -> Objects:
        return Objects(*self._pixels(position, int(shape[1]), int(shape[2])))
