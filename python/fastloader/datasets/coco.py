"""COCODetection: COCO / LVIS detection JSON read natively into packed arrays, as a Dataset.

Why a native reader: a COCO / LVIS file is millions of small annotation objects. ``json.load``
or orjson build a Python dict per annotation (and a list per polygon) before anything can be
packed, which is where pycocotools' tens of seconds and gigabytes go; simdjson bindings either
vendor megabytes of C++ or hand out a proxy object per access. fastloader's core instead scans
the file once with a small strict RFC 8259 pull scanner (``csrc/core/json_scanner.cpp``) and
writes the detection fields straight into column vectors (``csrc/core/coco_index.cpp``):
segmentations are validated and skipped without being materialized, the file is read through a
mapping whose consumed prefix is released as the scan advances, so memory grows by the packed
arrays, not the file. Malformed JSON is a ValueError naming the file, byte offset, line and
column. Python's ``json`` stays only as the tests' reference.

The packed arrays are numpy arrays: DataLoader workers started by fork share them (no parse,
no pickle per worker). Pickled (spawn / forkserver workers), a dataset carries its file's path,
size and modification time and re-reads the file on first use, refusing a file that changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._util.checks import boolean
from ._base import DetectionDataset, Objects, PathLike
from ._coco_packed import PackedIndex, load_count

__all__ = ["COCODetection", "index_reads", "to_coco_json"]


def index_reads() -> int:
    """How many times this process has read a COCO annotation file (each COCODetection reads its
    file once; a DataLoader worker started by fork inherits the arrays and adds none, one that
    unpickled the dataset adds one on first use).

    Example:
        >>> from fastloader.datasets import coco
        >>> coco.index_reads() >= 0
        True
    """
    return load_count()


class COCODetection(DetectionDataset):
    """Detection samples from a COCO-format JSON file (COCO, LVIS, Objects365, most labelling
    tools' exports), with the same sample formats and target layout as
    :class:`~fastloader.VOCDetection`.

    The file is read once, natively, into packed arrays (see the module docstring): per image its
    id, file name, size and object range; per object its box (COCO's ``[x, y, w, h]`` turned into
    ``x1, y1, x2, y2`` pixels, as ``x + w`` in double rounded once to float32), class index,
    crowd flag, area and keypoints. Segmentations are skipped, never materialized. Class ``k`` is
    the ``k``-th category by sorted id (as detectron2 and torchvision number them), or the
    ``k``-th of ``categories``.

    Choices where the format allows either: objects with ``iscrowd`` (or ``ignore``) set are
    dropped unless ``keep_crowd``; boxes with zero width or height are dropped with one warning
    per file (a negative size, a non-finite value, an unknown image or category id, or a
    duplicate id is an error naming it). Images without objects are kept (``N = 0``). LVIS files
    name images by ``coco_url``: the file name is then its last two parts (``train2017/x.jpg``),
    as detectron2 reads them. Keypoints (``x, y, visibility`` triples) become landmark columns
    (``-1`` where the visibility is 0); a file without keypoints gets the VOC layout's 5 absent
    landmarks, so its targets are exactly ``VOCDetection``'s ``[N, 15]``.

    Samples, by ``sample_format``:

    - ``"tuple"``: ``(image, target)``, target float32 ``[N, 5 + 2K]``: columns ``0:4`` box,
      ``4`` class index, ``5:`` the K landmarks' x, y (see :attr:`target_columns`).
    - ``"dict"``: ``{"image", "boxes": float32 [N, 4], "labels": int64 [N],
      "landmarks": float32 [N, K, 2]}``, plus ``"iscrowd": uint8 [N]`` with ``keep_crowd``.

    For LVIS repeat-factor sampling pass :meth:`labels` to :func:`fastloader.repeat_factors`;
    :attr:`frequencies`, :meth:`not_exhaustive_classes` and :meth:`negative_classes` keep LVIS's
    per-category and per-image fields.

    Args:
        image_root: the folder the images' ``file_name`` is relative to.
        annotation_file: the COCO-format JSON file.
        categories: category names or ids to keep, in the order that numbers them; objects of
            other categories are dropped. None: every category, numbered by sorted id.
        keep_crowd: keep objects marked ``iscrowd`` / ``ignore``.
        sample_format: ``"tuple"`` or ``"dict"``.
        transform: called on each sample before it is returned; a
            :class:`fastloader.transforms.AugmentPipeline` is instead keyed by the sample's
            index and fused into :class:`~fastloader.DetectionCollate` (each image decoded and
            augmented into its batch row), targets kept in this layout.
        decoder: ``"auto"``, ``"simplejpeg"`` or ``"pillow"`` for JPEG files.
        image_suffix: read ``<image_root>/<stem><image_suffix>`` instead of the file name
            (e.g. ``".npy"`` for pre-decoded copies).
        read_into_batch: as for :class:`~fastloader.VOCDetection`: ``.npy`` images are read by
            :class:`~fastloader.DetectionCollate` straight into the batch (tuple samples, no
            transform).

    Example:
        >>> import json, os, tempfile
        >>> from fastloader import COCODetection
        >>> folder = tempfile.mkdtemp()
        >>> coco = {"images": [{"id": 7, "file_name": "a.jpg", "width": 64, "height": 48}],
        ...         "annotations": [{"id": 1, "image_id": 7, "category_id": 3,
        ...                          "bbox": [10, 5, 20, 30], "area": 600, "iscrowd": 0,
        ...                          "segmentation": [[10, 5, 30, 5, 30, 35]]}],
        ...         "categories": [{"id": 3, "name": "cat"}, {"id": 1, "name": "dog"}]}
        >>> with open(os.path.join(folder, "train.json"), "w") as f:
        ...     json.dump(coco, f)
        >>> ds = COCODetection(folder, os.path.join(folder, "train.json"))
        >>> ds.classes, len(ds)
        (['dog', 'cat'], 1)
        >>> ds.annotation(0)["boxes"], ds.labels()
        (array([[10.,  5., 30., 35.]], dtype=float32), [array([1])])
    """

    def __init__(
        self,
        image_root: PathLike,
        annotation_file: PathLike,
        *,
        categories: Sequence[str | int] | None = None,
        keep_crowd: bool = False,
        sample_format: str = "tuple",
        transform: Callable[[Any], Any] | None = None,
        decoder: str = "auto",
        image_suffix: str | None = None,
        read_into_batch: bool = False,
    ) -> None:
        self.image_root = Path(image_root)
        self._image_folder = str(self.image_root)
        self.annotation_file = Path(annotation_file)
        if not self.annotation_file.is_file():
            raise ValueError(f"annotation_file {str(self.annotation_file)!r} is not a file")
        super().__init__(
            sample_format=sample_format,
            transform=transform,
            decoder=decoder,
            read_into_batch=read_into_batch,
        )
        if image_suffix is not None and not isinstance(image_suffix, str):
            raise TypeError(f"image_suffix should be a str or None, but got {image_suffix!r}")
        self.keep_crowd = boolean(keep_crowd, "keep_crowd")
        self.image_suffix = image_suffix
        if categories is not None and (
            isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence)
        ):
            raise TypeError(
                "categories should be a sequence of category names or ids, but got "
                f"{type(categories).__name__}"
            )
        self._categories = None if categories is None else list(categories)
        self._stat = self._file_stat()
        self._packed: PackedIndex | None = PackedIndex(
            str(self.annotation_file), self._categories, self.keep_crowd, warn=True
        )
        self._length = len(self._packed)
        self.classes: list[str] = list(self._packed.classes)
        self.class_to_index = {name: k for k, name in enumerate(self.classes)}

    # ---- sharing with workers -----------------------------------------------------------------
    def _file_stat(self) -> tuple[int, int]:
        info = os.stat(self.annotation_file)
        return info.st_size, info.st_mtime_ns

    def __getstate__(self) -> dict[str, Any]:
        # The packed arrays stay behind: the receiving process re-reads the file on first use.
        state = self.__dict__.copy()
        state["_packed"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def index(self) -> PackedIndex:
        """The packed annotations (read again on first use after unpickling)."""
        if self._packed is None:
            if self._file_stat() != self._stat:
                raise ValueError(
                    f"{self.annotation_file} changed since the dataset was opened (size or "
                    "modification time differ); open it again"
                )
            self._packed = PackedIndex(
                str(self.annotation_file), self._categories, self.keep_crowd, warn=False
            )
        return self._packed

    # ---- metadata -----------------------------------------------------------------------------
    @property
    def num_landmarks(self) -> int:
        """K: the file's keypoints per object, or 5 (all absent) when it has none."""
        return self.index.num_landmarks

    @property
    def category_ids(self) -> np.ndarray:
        """int64 ``[num_classes]``: the COCO category id of each class."""
        return self.index.category_ids.copy()

    @property
    def frequencies(self) -> list[str]:
        """LVIS ``frequency`` of each class (``"f"``, ``"c"``, ``"r"``; ``""`` when absent)."""
        return list(self.index.frequencies)

    @property
    def image_ids(self) -> np.ndarray:
        """int64 ``[N]``: each image's COCO id, in file order (the dataset's order)."""
        return self.index.image_ids.copy()

    def __len__(self) -> int:
        return self._length

    def _label_lists(self) -> list[np.ndarray]:
        return self.index.label_lists()

    def _size_array(self) -> np.ndarray:
        """From the JSON."""
        return self.index.sizes

    def not_exhaustive_classes(self) -> list[np.ndarray]:
        """LVIS: per image, the classes whose unlabelled instances may be present
        (``not_exhaustive_category_ids``); empty arrays for a file without them."""
        return self.index.lvis_classes("not_exhaustive")

    def negative_classes(self) -> list[np.ndarray]:
        """LVIS: per image, the classes verified absent (``neg_category_ids``)."""
        return self.index.lvis_classes("negative")

    # ---- samples ------------------------------------------------------------------------------
    def annotation(self, index: int) -> dict[str, Any]:
        """One image's annotation without loading the image: ``image_id``, ``file_name``,
        ``width``, ``height``, ``boxes``, ``labels``, ``landmarks``, ``iscrowd``, ``area``,
        ``annotation_ids``."""
        position = self._position(index)
        packed = self.index
        objects = packed.objects(position)
        return {
            "image_id": int(packed.image_ids[position]),
            "file_name": packed.file_name(position),
            "width": int(packed.sizes[position, 1]),
            "height": int(packed.sizes[position, 0]),
            "boxes": packed.boxes[objects].copy(),
            "labels": packed.labels[objects].copy(),
            "landmarks": packed.landmarks(objects),
            "iscrowd": packed.crowd[objects].copy(),
            "area": packed.areas[objects].copy(),
            "annotation_ids": packed.annotation_ids[objects].copy(),
        }

    def _image_file(self, position: int) -> str:
        filename = self.index.file_name(position)
        if self.image_suffix is not None:
            filename = os.path.splitext(filename)[0] + self.image_suffix
        return os.path.join(self._image_folder, filename)

    def _image_error(self, position: int, message: str) -> str:
        return f"{self.annotation_file}: image id {int(self.index.image_ids[position])}: {message}"

    def _objects(
        self, position: int, record: Any, image_path: str, shape: tuple[int, ...]
    ) -> Objects:
        packed = self.index
        size = tuple(int(x) for x in packed.sizes[position])
        if shape[1:] != size:
            raise ValueError(
                f"{self.annotation_file}: image id {int(packed.image_ids[position])} is "
                f"{size[0]}x{size[1]} (HxW) in the JSON but {image_path} is {shape[1]}x{shape[2]}"
            )
        objects = packed.objects(position)
        crowd = {"iscrowd": packed.crowd[objects]} if self.keep_crowd else None
        return Objects(
            packed.boxes[objects], packed.labels[objects], packed.landmarks(objects), crowd
        )

    def _repr_fields(self) -> list[str]:
        return [
            f"annotation_file={str(self.annotation_file)!r}",
            f"images={len(self)}",
            f"classes={self.num_classes}",
        ]


def to_coco_json(dataset: Any, path: PathLike) -> None:
    """Writes a detection dataset's annotations as a COCO JSON file (no segmentations).

    ``dataset`` is a :class:`~fastloader.VOCDetection` or :class:`COCODetection` (anything with
    ``classes``, ``image_root``, ``image_path(i)`` and ``annotation(i)`` giving ``width``,
    ``height``, ``boxes``, ``labels`` and ``landmarks``). Image ``i`` gets id ``i + 1`` and class
    ``k`` category id ``k + 1``; file names are relative to ``image_root``; landmarks become
    keypoints (visibility 2, or 0 where absent) when any object has one. Reading the file back
    with :class:`COCODetection` gives the same boxes, labels and landmarks.

    Args:
        dataset: the dataset whose annotations are written.
        path: the JSON file to write (replaced if it exists).

    Example:
        >>> import os, tempfile
        >>> from fastloader import COCODetection, SyntheticDetection
        >>> from fastloader.datasets import to_coco_json
        >>> voc = SyntheticDetection(tempfile.mkdtemp(), num_images=3)
        >>> path = os.path.join(tempfile.mkdtemp(), "voc.json")
        >>> to_coco_json(voc, path)
        >>> coco = COCODetection(voc.image_root, path)
        >>> all((a == b).all() for a, b in zip(coco.labels(), voc.labels()))
        True
    """
    annotations = [dataset.annotation(i) for i in range(len(dataset))]
    with_points = any((a["landmarks"] != -1).any() for a in annotations)
    root = Path(dataset.image_root)
    images: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    for i, info in enumerate(annotations):
        file_name = Path(dataset.image_path(i)).relative_to(root).as_posix()
        images.append(
            {"id": i + 1, "file_name": file_name, "width": info["width"], "height": info["height"]}
        )
        for box, label, points in zip(
            info["boxes"].tolist(), info["labels"].tolist(), info["landmarks"].tolist(), strict=True
        ):
            x1, y1, x2, y2 = box
            entry: dict[str, Any] = {
                "id": len(objects) + 1,
                "image_id": i + 1,
                "category_id": int(label) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
            if with_points:
                entry["keypoints"] = [
                    v for x, y in points for v in ((0, 0, 0) if x == -1 and y == -1 else (x, y, 2))
                ]
            objects.append(entry)
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(dataset.classes)]
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"images": images, "annotations": objects, "categories": categories}, file)
