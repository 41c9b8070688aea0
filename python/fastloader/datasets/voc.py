"""VOCDetection: a Pascal VOC folder (JPEGImages, Annotations, ImageSets) as a detection Dataset"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._util.checks import boolean
from ._base import DetectionDataset, Objects, PathLike, target_columns
from .annotations import (
    NUM_LANDMARKS,
    AnnotationIndex,
    check_relative_path,
    class_indices,
    object_names,
    parse_annotation,
)

__all__ = ["VOCDetection", "TARGET_COLUMNS", "VOC_CLASSES"]

#: Column layout of the ``[N, 15]`` float32 target of tuple samples.
TARGET_COLUMNS: dict[str, int | slice] = target_columns(NUM_LANDMARKS)

#: The 20 Pascal VOC classes, in the usual index order.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def _split_ids(path: Path) -> list[str]:
    """Image ids of a split file, in file order: the first word of each non-blank line (class
    split files such as ``aeroplane_train.txt`` add a second column)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ValueError(f"{path}: split file not found") from None
    return [
        check_relative_path(line.split()[0], f"{path} line {number}", "image id")
        for number, line in enumerate(lines, 1)
        if line.strip()
    ]


class VOCDetection(DetectionDataset):
    """Detection samples from a Pascal VOC folder, as ``VOCdevkit/VOC2007`` ships it.

    Layout: ``root/Annotations/<id>.xml`` and ``root/JPEGImages/<filename>`` (the XML's
    ``<filename>``, else ``<id>.jpg``). With ``split``, the ids are the ones listed in
    ``root/ImageSets/Main/<split>.txt``, in that order; without, every ``Annotations/*.xml``
    sorted by name. An empty split file gives an empty dataset (``len == 0``; labels, weights
    and sizes are empty arrays). Objects marked ``<difficult>1</difficult>`` are dropped unless
    ``keep_difficult`` (as ssd.pytorch's VOC reader does). Each ``<object>`` has ``<name>``,
    ``<bndbox>`` (xmin, ymin, xmax, ymax in pixels) and optionally ``<landmarks>`` with
    ``x1, y1 ... x5, y5`` (absent landmarks read as -1). ``<size>``'s width and height must be
    whole numbers of pixels (at least 1) and every coordinate a finite number: anything else
    (``nan``, ``1e400``, ``-5``) is a ValueError naming the file and the field.

    Paths read from the annotations (``<filename>``, split file lines) must stay inside their
    folder: they are read lexically, and an absolute path or a ``..`` that climbs out is refused
    with an error naming the file (and line). Symlinks are not resolved: one inside the root was
    put there by whoever laid it out, so ``JPEGImages`` may link to images on another disk.

    Images: JPEG through the fastest installed decoder (simplejpeg, else Pillow), other formats
    through Pillow, ``.npy`` (uint8 ``[3, H, W]``) as stored. Decoded images are uint8
    ``[3, H, W]`` views of the decoder's ``[H, W, 3]`` buffer (no copy); collate them with
    ``DetectionCollate(channels_last=True)`` for a plain-copy batch.

    Everything but the pixels (labels, class histograms, weights, image sizes) comes from the XML
    alone: the first such call reads every annotation once into packed arrays that samples then
    use too (DataLoader workers inherit them).

    Samples, by ``sample_format``:

    - ``"tuple"``: ``(image, target)``: target float32 ``[N, 15]`` with columns ``0:4`` box,
      ``4`` class index, ``5:15`` landmarks (see :data:`TARGET_COLUMNS`); ``N`` may be 0.
    - ``"dict"``: ``{"image", "boxes": float32 [N, 4], "labels": int64 [N],
      "landmarks": float32 [N, 5, 2]}``.

    Args:
        root: the folder holding ``Annotations`` (e.g. ``VOCdevkit/VOC2007``).
        split: a split name (``"trainval"``, ``"test"``, ...) or None for every annotation.
        keep_difficult: keep objects marked difficult.
        classes: class names in index order; when None, ``root/classes.txt`` (one per line) if
            present, else the names of every object (difficult ones included) in every
            annotation of the folder, whichever the split, so that all splits of one folder get
            the same indices: :data:`VOC_CLASSES` when every name is one of them, else the
            names sorted, with a UserWarning (write ``classes.txt`` to fix the indices).
        sample_format: ``"tuple"`` or ``"dict"``.
        transform: called on each sample before it is returned; a
            :class:`fastloader.transforms.AugmentPipeline` is instead keyed by the sample's
            index and fused into :class:`~fastloader.DetectionCollate` (each image decoded and
            augmented into its batch row), targets kept in this layout.
        decoder: ``"auto"``, ``"simplejpeg"`` or ``"pillow"`` for JPEG files.
        annotation_dir, image_dir, split_dir: folder names under ``root``.
        image_suffix: read ``<image_dir>/<stem><image_suffix>`` instead of the XML's filename
            (e.g. ``".npy"`` for pre-decoded copies).
        read_into_batch: let :class:`~fastloader.DetectionCollate` read ``.npy`` images straight
            into the batch: the DataLoader's batch fetch (``__getitems__``) then returns a
            :class:`~fastloader.io.deferred.DeferredSamples` that holds where each image lies in
            its file, and the collate reads it into place (one copy of each pixel instead of
            two). Any other collate_fn gets the samples by indexing it, as from a list. Only
            ``"tuple"`` samples without a transform; anything else is fetched as usual.
        max_image_pixels: images whose header says more pixels (height x width) are refused
            before decoding (a decompression bomb guard); None for Pillow's
            ``PIL.Image.MAX_IMAGE_PIXELS`` (see :func:`fastloader.io.decode.read_image`).

    Example:
        >>> import tempfile
        >>> from fastloader import SyntheticDetection, VOCDetection
        >>> with tempfile.TemporaryDirectory() as root:
        ...     _ = SyntheticDetection(root, 4, max_size=32, seed=0)  # a VOC2007-layout folder
        ...     ds = VOCDetection(root, "trainval", sample_format="dict")
        ...     sample = ds[0]
        ...     weights = ds.image_class_weights()  # from the XML alone
        >>> len(ds), ds.num_classes, sorted(sample)
        (4, 20, ['boxes', 'image', 'labels', 'landmarks'])
        >>> sample["image"].dtype, sample["landmarks"].shape[1:], weights.shape
        (torch.uint8, torch.Size([5, 2]), (4,))
    """

    def __init__(
        self,
        root: PathLike,
        split: str | None = None,
        keep_difficult: bool = False,
        *,
        classes: Sequence[str] | None = None,
        sample_format: str = "tuple",
        transform: Callable[[Any], Any] | None = None,
        decoder: str = "auto",
        annotation_dir: str = "Annotations",
        image_dir: str = "JPEGImages",
        split_dir: str = "ImageSets/Main",
        image_suffix: str | None = None,
        read_into_batch: bool = False,
        max_image_pixels: int | None = None,
    ) -> None:
        self.root = Path(root)
        super().__init__(
            sample_format=sample_format,
            transform=transform,
            decoder=decoder,
            read_into_batch=read_into_batch,
            max_image_pixels=max_image_pixels,
        )
        self.keep_difficult = boolean(keep_difficult, "keep_difficult")
        self.split = split
        self.image_suffix = image_suffix
        self.image_root = self.root / image_dir
        self._image_folder = str(self.image_root)
        self._annotation_dir = self.root / annotation_dir
        self.annotation_files = self._annotation_files(annotation_dir, split, split_dir)
        self._index: AnnotationIndex | None = None
        self.classes = self._resolve_classes(classes)  # may read (and pack) every annotation
        self.class_to_index = {name: index for index, name in enumerate(self.classes)}

    def _annotation_files(self, annotation_dir: str, split: str | None, split_dir: str) -> list:
        annotations = self.root / annotation_dir
        if not annotations.is_dir():
            raise ValueError(
                f"root should contain an {annotation_dir!r} folder, but {annotations} "
                "is not a directory"
            )
        if split is not None:
            if not isinstance(split, str) or not split:
                raise ValueError(f"split should be a split name or None, but got {split!r}")
            ids = _split_ids(self.root / split_dir / f"{split}.txt")
            return [annotations / f"{image_id}.xml" for image_id in ids]
        found = sorted(annotations.glob("*.xml"))
        if not found:
            raise ValueError(f"no .xml annotation files in {annotations}")
        return found

    def _resolve_classes(self, classes: Sequence[str] | None) -> list[str]:
        if classes is None:
            listed = self.root / "classes.txt"
            if listed.is_file():
                classes = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
            else:  # every annotation is read anyway: keep the split's packed
                self._index = AnnotationIndex(self.annotation_files, self.keep_difficult, None)
                classes = self._classes_found(self._index.all_names)
                self._index.set_classes({name: k for k, name in enumerate(classes)})
        if isinstance(classes, str) or not all(isinstance(name, str) for name in classes):
            raise TypeError("classes should be a sequence of class-name strings")
        classes = list(classes)
        if len(set(classes)) != len(classes):
            raise ValueError("classes should not contain duplicate names")
        return classes

    def _classes_found(self, split_names: set[str]) -> list[str]:
        """The classes of every annotation in the folder, whichever the split, so that one folder
        gives every split the same indices."""
        others = sorted(set(self._annotation_dir.glob("*.xml")) - set(self.annotation_files))
        try:
            names = split_names | object_names(others)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (every annotation of {self._annotation_dir} is read to fix the class "
                "indices of all splits; pass classes=[...] or write root/classes.txt to skip "
                "this)"
            ) from None
        if names <= set(VOC_CLASSES):
            return list(VOC_CLASSES)
        found = sorted(names)
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        warnings.warn(
            f"{self.root}: no classes.txt and not only VOC class names, so the class indices are "
            f"the {len(found)} names found in {self._annotation_dir}, sorted ({shown}); they "
            "change if annotations with new names are added. Write the names to "
            f"{self.root / 'classes.txt'} (one per line, in index order) or pass classes=[...] "
            "to fix them",
            UserWarning,
            stacklevel=4,
        )
        return found

    def __len__(self) -> int:
        return len(self.annotation_files)

    def _parse(self, path: Path) -> Any:
        return parse_annotation(path, self.keep_difficult)

    # ---- the packed annotations ---------------------------------------------------------------
    def annotation_index(self) -> AnnotationIndex:
        """Every annotation read once (XML only) and packed; cached, and kept when pickled."""
        if self._index is None:
            self._index = AnnotationIndex(
                self.annotation_files, self.keep_difficult, self.class_to_index
            )
        return self._index

    def _label_lists(self) -> list[np.ndarray]:
        return self.annotation_index().label_lists()

    def _size_array(self) -> np.ndarray:
        """From the XML's ``<size>``."""
        return self.annotation_index().sizes

    # ---- samples ------------------------------------------------------------------------------
    def annotation(self, index: int) -> dict[str, Any]:
        """One image's annotation without loading the image: ``filename``, ``width``,
        ``height``, ``boxes``, ``labels``, ``landmarks``."""
        path = self.annotation_files[self._position(index)]
        parsed = self._parse(path)
        return {
            "filename": parsed.filename,
            "width": parsed.width,
            "height": parsed.height,
            "boxes": parsed.boxes,
            "labels": class_indices(parsed.names, self.class_to_index, path),
            "landmarks": parsed.landmarks,
        }

    def _objects_of(self, position: int) -> tuple[Any, ...]:
        """filename, (height, width), boxes, labels, landmarks: packed if read, else parsed."""
        if self._index is not None:
            index, objects = self._index, self._index.objects(position)
            size = (int(index.sizes[position, 0]), int(index.sizes[position, 1]))
            return (
                index.filenames[position],
                size,
                index.boxes[objects],
                index.labels[objects],
                index.landmarks[objects],
            )
        path = self.annotation_files[position]
        parsed = self._parse(path)
        labels = class_indices(parsed.names, self.class_to_index, path)
        return (
            parsed.filename,
            (parsed.height, parsed.width),
            parsed.boxes,
            labels,
            parsed.landmarks,
        )

    def _image_file(self, position: int) -> str:
        return self._source(position)[0]

    def _source(self, position: int) -> tuple[str, Any]:
        objects = self._objects_of(position)
        return self._image_name(position, objects[0]), objects

    def _image_name(self, position: int, filename: str | None) -> str:
        # String operations: pathlib costs more than the .npy header parse per sample.
        if filename is None:
            filename = self.annotation_files[position].stem + ".jpg"
        if self.image_suffix is not None:
            filename = os.path.splitext(os.path.basename(filename))[0] + self.image_suffix
        return os.path.join(self._image_folder, filename)

    def _objects(
        self, position: int, record: Any, image_path: str, shape: tuple[int, ...]
    ) -> Objects:
        _, size, boxes, labels, landmarks = record
        if shape[1:] != size:
            raise ValueError(
                f"{self.annotation_files[position]}: <size> says {size[0]}x{size[1]} (HxW) but "
                f"{image_path} is {shape[1]}x{shape[2]}"
            )
        return Objects(boxes, labels, landmarks)
