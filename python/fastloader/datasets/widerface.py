"""WIDERFace: faces with five landmarks from Pytorch_Retinaface's label.txt layout as a Dataset"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._base import DetectionDataset, Objects, PathLike, target_columns
from .annotations import NUM_LANDMARKS, check_relative_path, check_split_folder

__all__ = ["WIDERFace", "WIDERFACE_TARGET_COLUMNS"]

#: Column layout of WIDERFace's ``[N, 15]`` float32 tuple target: Pytorch_Retinaface's
#: (box, the five landmarks' x and y, then the label: 1 with landmarks, -1 without).
WIDERFACE_TARGET_COLUMNS: dict[str, int | slice] = target_columns(NUM_LANDMARKS, label_last=True)
# A face line: x y w h, then per landmark x y and a flag, then a confidence (20 numbers); or the
# box alone (4 numbers), as Retinaface's val/label.txt has it.
_FACE_FIELDS = (4 + 3 * NUM_LANDMARKS + 1, 4)
_LANDMARK_COLUMNS = [4 + 3 * k + axis for k in range(NUM_LANDMARKS) for axis in (0, 1)]
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class _Faces(NamedTuple):
    """label.txt packed: image paths and their lines, faces as flat arrays split by offsets."""

    paths: list[str]  # relative to the image folder, normalized
    lines: list[int]  # the line of each image's '#' header in label.txt
    offsets: np.ndarray  # int64 [images + 1]
    boxes: np.ndarray  # float32 [faces, 4] x1 y1 x2 y2
    landmarks: np.ndarray  # float32 [faces, 5, 2], -1 where absent
    flags: np.ndarray  # int64 [faces]: 1 with landmarks, -1 without


def _face(fields: list[str], where: str) -> list[float]:
    """One face line checked on its own: the error for the first bad line of a file."""
    if len(fields) not in _FACE_FIELDS:
        raise ValueError(
            f"{where}: a face line has {len(fields)} numbers; expected 20 (x y w h, then x y "
            "flag for each of the 5 landmarks, then a confidence) or 4 (x y w h)"
        )
    values = []
    for field in fields:
        try:
            values.append(float(field))
        except ValueError:
            raise ValueError(f"{where}: {field!r} is not a number") from None
    if not all(math.isfinite(v) and abs(v) <= _FLOAT32_MAX for v in values):
        raise ValueError(f"{where}: every number should be finite, but got {' '.join(fields)}")
    if values[2] < 0 or values[3] < 0:
        raise ValueError(f"{where}: the box's width and height should be >= 0, got {fields[2:4]}")
    return values


def _parse_labels(label_file: Path) -> _Faces:
    """Reads Pytorch_Retinaface's label.txt; a malformed line is an error naming file and line.
    The numbers of all faces are converted in one numpy call (converting them one by one made
    the parse of WIDER FACE's 159k train faces three times as long); a failure there is located
    by checking the lines one by one."""
    try:
        text = label_file.read_text()
    except FileNotFoundError:
        raise ValueError(
            f"{label_file}: label file not found (expected Pytorch_Retinaface's layout: "
            "root/<split>/label.txt and root/<split>/images/)"
        ) from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{label_file}: not a text file: {exc}") from None
    paths: list[str] = []
    lines: list[int] = []
    counts: list[int] = []
    full: list[str] = []  # the fields of 20-number faces, flat
    short: list[str] = []  # of 4-number faces
    is_full: list[bool] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if fields[0].startswith("#"):
            name = line.strip()[1:].strip()
            if not name:
                where = f"{label_file} line {number}"
                raise ValueError(f"{where}: '#' should be followed by an image path")
            paths.append(check_relative_path(name, f"{label_file} line {number}", "image path"))
            lines.append(number)
            counts.append(0)
            continue
        if not paths:
            raise ValueError(
                f"{label_file} line {number}: a face line before any '# <image path>' line"
            )
        if len(fields) == _FACE_FIELDS[0]:
            full += fields
        elif len(fields) == _FACE_FIELDS[1]:
            short += fields
        else:
            _face(fields, f"{label_file} line {number}")  # raises: the field count
        is_full.append(len(fields) == _FACE_FIELDS[0])
        counts[-1] += 1
    try:
        full_values = np.array(full, dtype=np.float64).reshape(-1, _FACE_FIELDS[0])
        short_values = np.array(short, dtype=np.float64).reshape(-1, _FACE_FIELDS[1])
    except ValueError:
        _first_bad_line(text, label_file)
        raise
    values = np.full((len(is_full), _FACE_FIELDS[0]), -1.0)
    mask = np.array(is_full, dtype=bool)
    values[mask] = full_values
    values[~mask, :4] = short_values
    bad = ~(np.isfinite(values) & (np.abs(values) <= _FLOAT32_MAX)).all(axis=1)
    bad |= (values[:, 2] < 0) | (values[:, 3] < 0)
    if bad.any():
        _first_bad_line(text, label_file)
        raise ValueError(f"{label_file}: a face line has numbers out of range")  # not reached
    offsets = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    boxes = np.concatenate([values[:, :2], values[:, :2] + values[:, 2:4]], axis=1)
    landmarks = values[:, _LANDMARK_COLUMNS].reshape(-1, NUM_LANDMARKS, 2)
    landmarks[~mask] = -1.0
    # Pytorch_Retinaface's rule: a face has landmarks when the first one's x is >= 0
    flags = np.where(mask & (values[:, 4] >= 0), 1, -1).astype(np.int64)
    return _Faces(
        paths,
        lines,
        offsets,
        boxes.astype(np.float32),
        landmarks.astype(np.float32),
        flags,
    )


def _first_bad_line(text: str, label_file: Path) -> None:
    """Raises the error of the first face line that does not check on its own."""
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            _face(fields, f"{label_file} line {number}")


class WIDERFace(DetectionDataset):
    """Faces with five landmarks from a WIDER FACE folder as Pytorch_Retinaface lays it out.

    Layout: ``root/<split>/label.txt`` and the images under ``root/<split>/images/``. label.txt
    has a ``# <image path>`` line per image (relative to ``images/``) followed by one line per
    face: ``x y w h`` then ``x y flag`` for each of the five landmarks (left eye, right eye,
    nose, mouth left, mouth right) and a confidence, 20 numbers, with -1 for the landmarks of a
    face that has none; a line of 4 numbers (the box alone, as in Retinaface's val split) is a
    face without landmarks. An image may have no face. Image paths must stay inside the image
    folder (no absolute path, no ``..`` climbing out; symlinks in it are followed). Every
    malformed line is a ValueError naming the file and the line.

    Samples, by ``sample_format``:

    - ``"tuple"``: ``(image, target)``: image uint8 ``[3, H, W]`` (decoded as
      :class:`~fastloader.VOCDetection` decodes), target float32 ``[N, 15]`` with
      Pytorch_Retinaface's columns (:data:`WIDERFACE_TARGET_COLUMNS`): ``x1 y1 x2 y2``, the 10
      landmark coordinates, then the label, 1 for a face with landmarks and -1 without (what
      Retinaface's loss uses to skip the landmark term). Note the label is the last column
      here, not column 4 as in VOCDetection's target.
    - ``"dict"``: ``{"image", "boxes": float32 [N, 4], "labels": int64 [N] (1 or -1),
      "landmarks": float32 [N, 5, 2]}``.

    ``labels()``, ``class_histogram()`` and ``image_class_weights()`` see one class, ``"face"``
    (index 0, so :meth:`labels` holds zeros): weights then balance images with faces against
    images without. Everything but the pixels comes from label.txt, read once at construction;
    :meth:`image_sizes` reads each image's header (no decoding) on its first call.

    Args:
        root: the folder holding ``<split>/label.txt``.
        split: the split folder name (``"train"``, ``"val"``, ...).
        transform: called as ``transform(image, target) -> (image, target)`` on each sample,
            target being the ``[N, 15]`` tensor (tuple samples) or the dict without ``"image"``
            (dict samples); stored as ``self.transform``. A
            :class:`fastloader.transforms.AugmentPipeline` is keyed by the sample's index and
            fused into :class:`~fastloader.DetectionCollate` (each image decoded and augmented
            into its batch row; see ``fastloader.datasets._base``).
        sample_format: ``"tuple"`` or ``"dict"``.
        decoder: ``"auto"``, ``"simplejpeg"`` or ``"pillow"`` for JPEG files.
        image_dir: the image folder's name under ``root/<split>``.
        image_suffix: read ``<image_dir>/<path without its extension><image_suffix>`` instead
            (e.g. ``".npy"`` for pre-decoded copies).
        read_into_batch: as for :class:`~fastloader.VOCDetection`: the batch fetch returns a
            :class:`~fastloader.io.deferred.DeferredSamples` whose ``.npy`` images
            :class:`~fastloader.DetectionCollate` reads straight into the batch (tuple samples
            without a transform only).
        max_image_pixels: images whose header says more pixels are refused before decoding;
            None for Pillow's ``PIL.Image.MAX_IMAGE_PIXELS``.

    Example:
        >>> import tempfile
        >>> from fastloader import WIDERFace
        >>> from fastloader.datasets import synthetic_widerface
        >>> with tempfile.TemporaryDirectory() as root:
        ...     _ = synthetic_widerface(root, 4, seed=0, width=256)
        ...     ds = WIDERFace(root, "train")
        ...     image, target = ds[0]
        ...     sizes = ds.image_sizes()  # from the JPEG headers
        >>> len(ds), image.dtype, image.shape[2], target.shape[1], int(sizes[0, 1])
        (4, torch.uint8, 256, 15, 256)
        >>> set(target[:, 14].tolist()) <= {1.0, -1.0}
        True
    """

    classes = ("face",)
    _label_last = True

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        *,
        transform: Callable[[Any, Any], tuple[Any, Any]] | None = None,
        sample_format: str = "tuple",
        decoder: str = "auto",
        image_dir: str = "images",
        image_suffix: str | None = None,
        read_into_batch: bool = False,
        max_image_pixels: int | None = None,
    ) -> None:
        split = check_split_folder(split)
        super().__init__(
            sample_format=sample_format,
            transform=transform,
            decoder=decoder,
            read_into_batch=read_into_batch,
            max_image_pixels=max_image_pixels,
        )
        if image_suffix is not None and (not isinstance(image_suffix, str) or "/" in image_suffix):
            raise ValueError(f"image_suffix should be like '.npy', but got {image_suffix!r}")
        self.root = Path(root)
        self.split = split
        self.image_suffix = image_suffix
        self.label_file = self.root / split / "label.txt"
        self.image_root = self.root / split / image_dir
        self._image_folder = str(self.image_root)
        self._faces = _parse_labels(self.label_file)
        self._sizes = None  # read from the image headers on first use

    def __len__(self) -> int:
        return len(self._faces.paths)

    def _image_file(self, position: int) -> str:
        name = self._faces.paths[position]
        if self.image_suffix is not None:
            name = os.path.splitext(name)[0] + self.image_suffix
        return os.path.join(self._image_folder, name)

    def _listed(self, position: int) -> str:
        return f"listed at {self.label_file} line {self._faces.lines[position]}"

    def _image_error(self, position: int, message: str) -> str:
        return f"{message} ({self._listed(position)})"

    def _objects(
        self, position: int, record: Any = None, image_path: str = "", shape: tuple[int, ...] = ()
    ) -> Objects:
        """The faces; ``labels`` are the flags (1 with landmarks, -1 without)."""
        faces = slice(int(self._faces.offsets[position]), int(self._faces.offsets[position + 1]))
        return Objects(
            self._faces.boxes[faces], self._faces.flags[faces], self._faces.landmarks[faces]
        )

    # ---- label statistics and sizes, from label.txt and the image headers -----------------
    def _label_lists(self) -> list[np.ndarray]:
        """One 0 per face: the one class is ``"face"``."""
        counts = np.diff(self._faces.offsets)
        return [np.zeros(int(count), dtype=np.int64) for count in counts]

    def _size_array(self) -> np.ndarray:
        """From each image file's header (no pixel decoded), on the first call."""
        return self._header_sizes()

    def annotation(self, index: int) -> dict[str, Any]:
        """One image's faces without loading it: ``path``, ``boxes``, ``labels`` (1 or -1),
        ``landmarks``."""
        position = self._position(index)
        boxes, flags, landmarks, _ = self._objects(position)
        return {
            "path": self._faces.paths[position],
            "boxes": boxes.copy(),
            "labels": flags.copy(),
            "landmarks": landmarks.copy(),
        }

    # ---- samples ------------------------------------------------------------------------------
    def _apply_transform(self, sample: Any) -> Any:
        """``transform(image, target) -> (image, target)``, target being the tensor or the dict
        without ``"image"``."""
        assert self.transform is not None
        if self.sample_format == "dict":
            target = {name: value for name, value in sample.items() if name != "image"}
            image, target = self.transform(sample["image"], target)
            return {"image": image, **target}
        image, target = self.transform(*sample)
        return image, target

    def _repr_fields(self) -> list[str]:
        return [
            f"root={str(self.root)!r}",
            f"split={self.split!r}",
            f"images={len(self)}",
            f"faces={len(self._faces.flags)}",
        ]
