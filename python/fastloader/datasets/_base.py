"""DetectionDataset: what every detection reader here shares (index checks, sample formats,
transforms, the batch fetch with images left in their files, label statistics); each reader
adds only its format's parsing, paths and targets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import numpy as np
import torch
from torch.utils.data import Dataset

from .._util.checks import boolean
from ..io.decode import (
    PathLike,
    check_decoder,
    check_max_image_pixels,
    image_size,
    locate_npy,
    max_image_pixels,
    read_image,
)
from ..io.deferred import DeferredSamples, ImageFile
from ..transforms.pipeline import AugmentPipeline
from .annotations import NUM_LANDMARKS, class_histogram, image_class_weights

SAMPLE_FORMATS = ("tuple", "dict")


def target_columns(num_landmarks: int, label_last: bool = False) -> dict[str, int | slice]:
    """Column layout of the float32 ``[N, 5 + 2K]`` tuple target: the box, then the label and
    the K landmarks' x, y (VOC's order), or the landmarks and then the label (Retinaface's)."""
    k2 = 2 * num_landmarks
    if label_last:
        return {"boxes": slice(0, 4), "landmarks": slice(4, 4 + k2), "label": 4 + k2}
    return {"boxes": slice(0, 4), "label": 4, "landmarks": slice(5, 5 + k2)}


class Objects(NamedTuple):
    """One image's objects as a reader hands them to the shared sample formatting: boxes
    float32 [N, 4] x1 y1 x2 y2 pixels, labels int64 [N], landmarks float32 [N, K, 2] (-1
    absent), and extra dict-sample fields (name -> [N] array). The arrays may be views into the
    reader's packed arrays: the formatting copies what it hands out."""

    boxes: np.ndarray
    labels: np.ndarray
    landmarks: np.ndarray
    extras: dict[str, np.ndarray] | None = None


class DetectionDataset(Dataset):
    """The shared part of VOCDetection, COCODetection, YOLODetection and WIDERFace.

    Kept private (not exported as ``fastloader.DetectionDataset``) on purpose: a public base
    class would freeze its hooks. Users subclass a reader, or write a plain ``Dataset``
    returning the same samples.

    A ``transform`` that is a :class:`fastloader.transforms.AugmentPipeline` is run keyed by
    the sample's position (its ``index``) and the pipeline's seed and epoch, never by global
    random state, and fused into the collate: the batch fetch (``__getitems__``, tuple samples)
    hands :class:`~fastloader.DetectionCollate` each image as an
    :class:`~fastloader.transforms.AugmentedImage` planned from the file's header, which it
    decodes and augments straight into its batch row (or ring slot). ``dataset[i]`` goes the
    same way into a tensor of its own, so it equals row ``i`` of any batch bit for bit. Targets
    keep the reader's layout (:attr:`target_columns`), their boxes and landmarks moved (and
    divided by the output size where the pipeline's ``normalize_boxes`` says so).

    A reader sets ``classes``, calls :meth:`__init__` with the sample options, and implements:

    - ``__len__``;
    - ``_image_file(position) -> str``: where the image lies;
    - ``_objects(position, record, image_path, shape) -> Objects``: the image's objects, given
      its ``[3, H, W]`` shape (a reader checks it against the annotation's size here, or turns
      normalized boxes into pixels);
    - ``_label_lists()`` (per image int64 class indices, views allowed) and ``_size_array()``
      (int64 ``[N, 2]`` heights and widths, cached; :meth:`_header_sizes` reads them from the
      image headers) for the statistics.

    Optional hooks: ``_source(position)`` (image path plus whatever ``_objects`` needs that
    came with it, e.g. a parsed annotation, so nothing is parsed twice), ``_image_error`` (the
    reader's context for an unreadable image), ``_apply_transform`` (a transform called other
    than ``transform(sample)``), ``_repr_fields``; ``_label_last`` chooses Retinaface's target
    column order.
    """

    classes: Sequence[str]
    #: the reader's images are checked against this many pixels before decoding (None: Pillow's)
    max_image_pixels: int | None = None
    _label_last = False  # the tuple target's label after the landmarks (Retinaface's order)
    _sizes: np.ndarray | None = None  # image sizes read from the headers (_header_sizes)

    def __init__(
        self,
        *,
        sample_format: str,
        transform: Callable[..., Any] | None,
        decoder: str,
        read_into_batch: bool,
        max_image_pixels: int | None = None,
    ) -> None:
        if sample_format not in SAMPLE_FORMATS:
            raise ValueError(
                f"sample_format should be one of {SAMPLE_FORMATS}, "
                f"but got sample_format={sample_format!r}"
            )
        if transform is not None and not callable(transform):
            raise TypeError(
                f"transform should be callable or None, but got {type(transform).__name__}"
            )
        self.sample_format = sample_format
        self.transform = transform
        self.decoder = check_decoder(decoder)
        self.read_into_batch = boolean(read_into_batch, "read_into_batch")
        self.max_image_pixels = check_max_image_pixels(max_image_pixels)

    # ---- hooks --------------------------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def _image_file(self, position: int) -> str:
        raise NotImplementedError

    def _source(self, position: int) -> tuple[str, Any]:
        """(image path, record for ``_objects``); the record is None unless a reader needs it."""
        return self._image_file(position), None

    def _objects(
        self, position: int, record: Any, image_path: str, shape: tuple[int, ...]
    ) -> Objects:
        raise NotImplementedError

    def _image_error(self, position: int, message: str) -> str | None:
        """The message of a ValueError reading image ``position`` with the reader's context
        added, or None to raise it unchanged."""
        return None

    def _label_lists(self) -> list[np.ndarray]:
        raise NotImplementedError

    def _size_array(self) -> np.ndarray:
        raise NotImplementedError

    def _repr_fields(self) -> list[str]:
        root, split = getattr(self, "root", None), getattr(self, "split", None)
        return [
            f"root={str(root)!r}",
            f"split={split!r}",
            f"images={len(self)}",
            f"classes={self.num_classes}",
        ]

    # ---- metadata -----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def target_columns(self) -> dict[str, int | slice]:
        """Column layout of the float32 ``[N, 5 + 2K]`` target of tuple samples (K landmarks:
        ``num_landmarks`` where the reader has it, else 5)."""
        return target_columns(getattr(self, "num_landmarks", NUM_LANDMARKS), self._label_last)

    def _position(self, index: Any) -> int:
        """``index`` as a position in ``[0, len)``: ints, numpy ints and one-element integer
        tensors, negative ones counting from the end."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            if (
                isinstance(index, torch.Tensor)
                and index.numel() == 1
                and not index.is_floating_point()
            ):
                index = int(index.item())
            else:
                raise TypeError(f"index should be an int, but got {type(index).__name__}")
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"index {index} is out of range for a dataset of {size} images")
        return int(index) % size

    def image_path(self, index: int) -> Path:
        """Where image ``index`` is read from."""
        return Path(self._image_file(self._position(index)))

    # ---- label statistics: from the annotations (or image headers), never decoding ----------
    def labels(self) -> list[np.ndarray]:
        """The class indices of every image (int64 arrays, one per image, possibly empty)."""
        return [labels.copy() for labels in self._label_lists()]

    def class_histogram(
        self, indices: Sequence[int] | np.ndarray | torch.Tensor | None = None
    ) -> np.ndarray:
        """Images containing each class among ``indices`` (all images when None)."""
        return class_histogram(self._label_lists(), self.num_classes, indices)

    def image_class_weights(self) -> np.ndarray:
        """Per-image weights for :class:`fastloader.FastWeightedSampler` that rebalance classes;
        see :func:`fastloader.datasets.image_class_weights`. Decodes no image."""
        return image_class_weights(self._label_lists(), self.num_classes)

    def image_sizes(self) -> np.ndarray:
        """int64 ``[N, 2]``: each image's ``(height, width)``, from the annotations where they
        hold it (VOC's ``<size>``, COCO's JSON), else from each image file's header (read once,
        no pixel decoded)."""
        return self._size_array().copy()

    def aspect_ratios(self) -> np.ndarray:
        """float64 ``[N]``: each image's width / height, from the same sizes as
        :meth:`image_sizes`."""
        sizes = self._size_array()
        return sizes[:, 1].astype(np.float64) / np.maximum(sizes[:, 0], 1)

    def _header_sizes(self) -> np.ndarray:
        """``_size_array`` for readers whose annotations hold no image size: each image's header,
        read on the first call and kept in ``_sizes`` (also when pickled)."""
        sizes = self._sizes
        if sizes is None:
            sizes = np.empty((len(self), 2), dtype=np.int64)
            for position in range(len(self)):
                try:
                    sizes[position] = image_size(self._image_file(position))
                except ValueError as exc:
                    self._raise_image_error(position, exc)
            self._sizes = sizes
        return sizes

    # ---- samples ------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> Any:
        return self._fetch(self._position(index), deferred=False)

    def __getitems__(self, indices: Sequence[int]) -> Any:
        """The samples at indices, as the DataLoader fetches a batch (torch >= 2.0 calls this
        instead of ``__getitem__`` per index): a list, or with ``read_into_batch`` (tuple
        samples, no transform) a :class:`~fastloader.io.deferred.DeferredSamples` whose ``.npy``
        images are not read yet."""
        deferred = self._defers()
        samples = [self._fetch(self._position(index), deferred) for index in indices]
        return DeferredSamples(samples) if deferred else samples

    def _defers(self) -> bool:
        """Whether a batch fetch leaves images for the collate to write: ``.npy`` images in
        their files (``read_into_batch``) or images an AugmentPipeline decodes and augments
        into the batch (tuple samples: the collate takes deferred ``(image, target)`` pairs)."""
        if self.sample_format != "tuple":
            return False
        return isinstance(self.transform, AugmentPipeline) or (
            self.read_into_batch and self.transform is None
        )

    def _fetch(self, position: int, deferred: bool) -> Any:
        """The one fetch path of every reader: sample ``position`` formatted and transformed;
        with ``deferred``, a ``.npy`` image stays in its file as an
        :class:`~fastloader.io.deferred.ImageFile` (its header checked, its pixels unread), or
        with an AugmentPipeline, becomes an AugmentedImage (see :meth:`_augmented`)."""
        image_path, record = self._source(position)
        if isinstance(self.transform, AugmentPipeline):
            return self._augmented(self.transform, position, image_path, record, deferred)
        image = self._load(position, image_path, deferred)
        objects = self._objects(position, record, image_path, tuple(image.shape))
        sample = self._format(image, objects)
        if deferred:  # see _defers: deferred samples carry no transform yet
            return sample
        return self._apply_transform(sample) if self.transform is not None else sample

    def _load(self, position: int, image_path: str, deferred: bool) -> ImageFile | torch.Tensor:
        try:
            if deferred and image_path.lower().endswith(".npy"):  # as read_image tells formats
                offset, shape = locate_npy(image_path, self.max_image_pixels)
                return ImageFile(image_path, offset, shape)
            return read_image(image_path, self.decoder, max_image_pixels=self.max_image_pixels)
        except ValueError as exc:
            self._raise_image_error(position, exc)

    def _augmented(
        self,
        pipeline: AugmentPipeline,
        position: int,
        image_path: str,
        record: Any,
        deferred: bool,
    ) -> Any:
        """Sample ``position`` through ``pipeline``, keyed by ``index=position``: planned from
        the image header (no pixel decoded yet); deferred, the image is an AugmentedImage for
        the collate to write into the batch, else it is written into a tensor of its own now
        (the same pixels either way)."""
        try:
            height, width = image_size(image_path)
            limit = max_image_pixels() if self.max_image_pixels is None else self.max_image_pixels
            if limit is not None and height * width > limit:
                raise ValueError(
                    f"{image_path}: image too large: the header says {height}x{width} (HxW) = "
                    f"{height * width} pixels, above the limit of {limit} (max_image_pixels): "
                    "refused before decoding"
                )
        except ValueError as exc:
            self._raise_image_error(position, exc)
        objects = self._objects(position, record, image_path, (3, height, width))
        count, num_landmarks = len(objects.labels), objects.landmarks.shape[1]
        target: dict[str, Any] = {
            "boxes": objects.boxes,
            "labels": objects.labels,
            "landmarks": objects.landmarks.reshape(count, 2 * num_landmarks),
        }
        if self.sample_format == "dict":
            target.update(objects.extras or {})
        image, moved = pipeline.defer(image_path, target, index=position, size=(height, width))
        kept = len(moved["labels"])
        landmarks = np.asarray(moved["landmarks"], np.float32).reshape(kept, num_landmarks, 2)
        if self.sample_format == "dict":
            sample: dict[str, Any] = {"image": image.read()}
            for name, values in moved.items():
                if name == "landmarks":
                    values = landmarks
                sample[name] = torch.from_numpy(np.array(values))
            return sample
        moved_objects = Objects(moved["boxes"], moved["labels"], landmarks)
        return (image if deferred else image.read()), self._target(moved_objects)

    def _raise_image_error(self, position: int, exc: ValueError) -> NoReturn:
        message = self._image_error(position, str(exc))
        if message is None:
            raise exc
        raise ValueError(message) from None

    def _format(self, image: ImageFile | torch.Tensor, objects: Objects) -> Any:
        """The sample in ``sample_format``: ``(image, target)`` or the dict."""
        if self.sample_format == "dict":
            sample: dict[str, Any] = {"image": image}
            for name, values in (
                ("boxes", objects.boxes),
                ("labels", objects.labels),
                ("landmarks", objects.landmarks),
                *(objects.extras or {}).items(),
            ):
                sample[name] = torch.from_numpy(values.copy())
            return sample
        return image, self._target(objects)

    def _target(self, objects: Objects) -> torch.Tensor:
        """The float32 ``[N, 5 + 2K]`` target row of each object (see ``target_columns``)."""
        count, num_landmarks = len(objects.labels), objects.landmarks.shape[1]
        columns = target_columns(num_landmarks, self._label_last)
        target = np.empty((count, 5 + 2 * num_landmarks), dtype=np.float32)
        target[:, columns["boxes"]] = objects.boxes
        target[:, columns["label"]] = objects.labels
        target[:, columns["landmarks"]] = objects.landmarks.reshape(count, 2 * num_landmarks)
        return torch.from_numpy(target)

    def _apply_transform(self, sample: Any) -> Any:
        """``transform(sample)``; AugmentPipeline transforms never come here (see _fetch)."""
        assert self.transform is not None
        return self.transform(sample)

    def __repr__(self) -> str:
        fields = ", ".join(self._repr_fields())
        return f"{type(self).__name__}({fields}, sample_format={self.sample_format!r})"


__all__ = ["DetectionDataset", "Objects", "PathLike", "SAMPLE_FORMATS", "target_columns"]
