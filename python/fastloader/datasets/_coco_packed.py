"""The native COCO / LVIS columns (``_C.load_coco_index``) after category selection, crowd and
degenerate-box filtering: what COCODetection indexes. See coco.py for why the reader is native."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from .. import _C
from .annotations import NUM_LANDMARKS

# Native reads of annotation files in this process (see coco.index_reads).
_index_loads = 0


def load_count() -> int:
    """How many times this process has read a COCO annotation file."""
    return _index_loads


def _decode(buffer: np.ndarray, offsets: np.ndarray, index: int) -> str:
    # surrogatepass: a lone \ud800-style escape is legal JSON and the reader keeps it.
    return buffer[offsets[index] : offsets[index + 1]].tobytes().decode("utf-8", "surrogatepass")


def _split(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


class PackedIndex:
    """The native columns after category selection, crowd and degenerate-box filtering."""

    def __init__(
        self,
        path: str,
        categories: Sequence[str | int] | None,
        keep_crowd: bool,
        warn: bool,
    ) -> None:
        global _index_loads
        raw = _C.load_coco_index(path)
        _index_loads += 1
        self.image_ids: np.ndarray = raw["image_ids"]
        self.sizes: np.ndarray = raw["image_sizes"].reshape(-1, 2)
        self.file_names: np.ndarray = raw["file_names"]
        self.file_name_offsets: np.ndarray = raw["file_name_offsets"]
        self.has_lvis_fields = bool(raw["has_lvis_image_fields"])
        category_ids: np.ndarray = raw["category_ids"]
        names = [
            _decode(raw["category_names"], raw["category_name_offsets"], k)
            for k in range(len(category_ids))
        ]
        frequency = [chr(f) if f else "" for f in raw["category_frequency"].tolist()]
        # chosen[k]: the position (among sorted ids) of class k.
        chosen = _choose_categories(categories, category_ids, names, path)
        self.category_ids = category_ids[chosen]
        self.classes = [names[k] for k in chosen]
        self.frequencies = [frequency[k] for k in chosen]
        class_of = np.full(len(category_ids), -1, dtype=np.int64)
        class_of[chosen] = np.arange(len(chosen), dtype=np.int64)

        offsets: np.ndarray = raw["object_offsets"]
        boxes: np.ndarray = raw["boxes"].reshape(-1, 4)
        labels = class_of[raw["labels"]]
        crowd: np.ndarray = raw["crowd"]
        num_keypoints = int(raw["num_keypoints"])
        self.num_landmarks = num_keypoints if num_keypoints else NUM_LANDMARKS
        keep = labels >= 0
        if not keep_crowd:
            keep &= crowd == 0
        degenerate = keep & ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
        if degenerate.any():
            keep &= ~degenerate
            if warn:
                first = int(raw["annotation_ids"][np.flatnonzero(degenerate)[0]])
                warnings.warn(
                    f"{path}: dropped {int(degenerate.sum())} annotations whose bbox has zero "
                    f"width or height (first: annotation id {first})",
                    stacklevel=3,
                )
        everything = bool(keep.all())
        kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept_before[1:])
        self.offsets = kept_before[offsets] if not everything else offsets

        def kept(values: np.ndarray) -> np.ndarray:
            return values if everything else values[keep]

        self.boxes = kept(boxes)
        self.labels = kept(labels)
        self.crowd = kept(crowd)
        self.areas = kept(raw["areas"])
        self.annotation_ids = kept(raw["annotation_ids"])
        # Without keypoints: the VOC layout's NUM_LANDMARKS absent (-1) points, made per sample.
        self.keypoints = (
            kept(raw["keypoints"].reshape(-1, num_keypoints, 2)) if num_keypoints else None
        )
        # LVIS's per-image lists stay flat (a list of arrays per image is built on request).
        self.class_of = class_of
        self.lvis_lists = {
            "not_exhaustive": (raw["not_exhaustive"], raw["not_exhaustive_offsets"]),
            "negative": (raw["negative"], raw["negative_offsets"]),
        }

    def __len__(self) -> int:
        return len(self.image_ids)

    def objects(self, position: int) -> slice:
        return slice(int(self.offsets[position]), int(self.offsets[position + 1]))

    def file_name(self, position: int) -> str:
        return _decode(self.file_names, self.file_name_offsets, position)

    def label_lists(self) -> list[np.ndarray]:
        return np.split(self.labels, self.offsets[1:-1]) if len(self) else []

    def landmarks(self, objects: slice) -> np.ndarray:
        """float32 [N, K, 2] landmarks of the objects (a new array)."""
        if self.keypoints is not None:
            return self.keypoints[objects].copy()
        count = objects.stop - objects.start
        return np.full((count, NUM_LANDMARKS, 2), -1.0, dtype=np.float32)

    def lvis_classes(self, field: str) -> list[np.ndarray]:
        """Per image, LVIS's category list ``field`` as class indices (unselected dropped)."""
        values, offsets = self.lvis_lists[field]
        classes = self.class_of[values]
        return [part[part >= 0] for part in _split(classes, offsets)]


def _choose_categories(
    categories: Sequence[str | int] | None,
    category_ids: np.ndarray,
    names: list[str],
    path: str,
) -> np.ndarray:
    if categories is None:
        return np.arange(len(category_ids), dtype=np.int64)
    by_name: dict[str, int] = {}
    for k, name in enumerate(names):
        by_name.setdefault(name, k)
    by_id = {int(c): k for k, c in enumerate(category_ids.tolist())}
    chosen = []
    for item in categories:
        if isinstance(item, str):
            if item not in by_name:
                raise ValueError(f"categories: {item!r} is not a category name in {path}")
            if names.count(item) > 1:
                raise ValueError(
                    f"categories: {item!r} names several categories in {path}; use ids"
                )
            chosen.append(by_name[item])
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if int(item) not in by_id:
                raise ValueError(f"categories: id {int(item)} is not a category id in {path}")
            chosen.append(by_id[int(item)])
        else:
            raise TypeError(
                f"categories should hold category names (str) or ids (int), but got {item!r}"
            )
    if len(set(chosen)) != len(chosen):
        raise ValueError("categories should not name a category twice")
    return np.array(chosen, dtype=np.int64)
