"""Pascal VOC XML annotations: one file parsed, all files packed, and label statistics"""

from __future__ import annotations

import xml.etree.ElementTree as _stdlib_etree
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from ._checks import non_negative_int

try:  # lxml parses the same documents faster; the standard library is the fallback
    from lxml import etree as _etree  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _etree = _stdlib_etree  # type: ignore[assignment]

__all__ = [
    "NUM_LANDMARKS",
    "Annotation",
    "AnnotationIndex",
    "class_histogram",
    "image_class_weights",
    "parse_annotation",
]

NUM_LANDMARKS = 5
_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
_PARSE_ERRORS = (OSError, _stdlib_etree.ParseError, getattr(_etree, "XMLSyntaxError", OSError))


class Annotation(NamedTuple):
    """One image's annotation: objects marked difficult are already dropped unless kept."""

    filename: str | None  # <filename>, None when absent
    height: int
    width: int
    names: list[str]
    boxes: np.ndarray  # float32 [N, 4] xmin, ymin, xmax, ymax
    landmarks: np.ndarray  # float32 [N, 5, 2], -1 where absent


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


def _root(path: Path) -> Any:
    try:
        return _etree.fromstring(path.read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{path}: annotation file not found") from None
    except _PARSE_ERRORS as exc:
        raise ValueError(f"{path}: cannot parse the annotation: {exc}") from None


def _is_difficult(obj: Any) -> bool:
    flag = obj.find("difficult")
    return flag is not None and flag.text is not None and flag.text.strip() == "1"


def parse_annotation(path: Path, keep_difficult: bool) -> Annotation:
    """Reads one VOC XML file; every missing or malformed field is an error naming the file."""
    root = _root(path)
    found = root.find("filename")
    filename = found.text.strip() if found is not None and found.text else None
    if root.find("size") is None:
        raise ValueError(f"{path}: missing <size> element (VOC annotations give the image size)")
    width = int(_number(root, "size/width", path))
    height = int(_number(root, "size/height", path))
    objects = [obj for obj in root.iter("object") if keep_difficult or not _is_difficult(obj)]
    boxes = np.empty((len(objects), 4), dtype=np.float32)
    # Objects without landmarks (plain VOC) get -1, the RetinaFace convention for "absent".
    landmarks = np.full((len(objects), NUM_LANDMARKS, 2), -1.0, dtype=np.float32)
    names = []
    for row, obj in enumerate(objects):
        names.append(_text(obj, "name", path))
        for column, tag in enumerate(_BOX_TAGS):
            boxes[row, column] = _number(obj, f"bndbox/{tag}", path)
        points = obj.find("landmarks")
        if points is not None:
            for k in range(NUM_LANDMARKS):
                landmarks[row, k, 0] = _number(points, f"x{k + 1}", path)
                landmarks[row, k, 1] = _number(points, f"y{k + 1}", path)
    return Annotation(filename, height, width, names, boxes, landmarks)


def class_indices(names: Sequence[str], class_to_index: dict[str, int], source: Path) -> np.ndarray:
    try:
        return np.array([class_to_index[name] for name in names], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(
            f"{source}: class {exc.args[0]!r} is not in classes (pass classes=[...] listing it)"
        ) from None


class AnnotationIndex:
    """Every annotation of a dataset packed into a few arrays, read once: labels, weights, image
    sizes and samples then need no XML parse (and workers share the arrays after a fork)."""

    def __init__(self, annotations: Sequence[Annotation], labels: Sequence[np.ndarray]) -> None:
        counts = np.array([len(a.names) for a in annotations], dtype=np.int64)
        self.offsets = np.zeros(len(annotations) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.offsets[1:])
        self.filenames = [a.filename for a in annotations]
        self.sizes = np.array([(a.height, a.width) for a in annotations], dtype=np.int64)
        self.sizes = self.sizes.reshape(len(annotations), 2)
        self.labels = _concat([np.asarray(x, dtype=np.int64) for x in labels], (0,), np.int64)
        self.boxes = _concat([a.boxes for a in annotations], (0, 4), np.float32)
        self.landmarks = _concat(
            [a.landmarks for a in annotations], (0, NUM_LANDMARKS, 2), np.float32
        )

    def __len__(self) -> int:
        return len(self.filenames)

    def objects(self, index: int) -> slice:
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def label_lists(self) -> list[np.ndarray]:
        return np.split(self.labels, self.offsets[1:-1]) if len(self) else []


def _concat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(empty_shape, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Label statistics: work on labels only, so no image is ever decoded for them.


def class_histogram(
    labels: Sequence[np.ndarray],
    num_classes: int,
    indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> np.ndarray:
    """How many of the images ``indices`` (all images when None; repeats count) contain each
    class: an int64 array ``[num_classes]``."""
    num_classes = non_negative_int(num_classes, "num_classes")
    image_of = np.repeat(np.arange(len(labels)), [len(x) for x in labels])
    flat = np.concatenate([np.asarray(x, dtype=np.int64) for x in labels]) if labels else []
    presence = np.zeros((len(labels), num_classes), dtype=np.int64)
    presence[image_of, flat] = 1
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
    images_per_class = class_histogram(labels, num_classes)
    sizes = np.array([len(x) for x in labels], dtype=np.int64)
    empty = int((sizes == 0).sum())
    weights = np.full(len(labels), 1.0 / max(empty, 1), dtype=np.float64)
    if sizes.sum():
        flat = np.concatenate([np.asarray(x, dtype=np.int64) for x in labels])
        image_of = np.repeat(np.arange(len(labels)), sizes)
        fewest = np.full(len(labels), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(fewest, image_of, images_per_class[flat])
        weights[sizes > 0] = 1.0 / fewest[sizes > 0]
    return weights
