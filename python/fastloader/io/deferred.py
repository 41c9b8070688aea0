"""Batches whose images are written straight into the collated batch: the dataset hands over
where each ``.npy`` image lies in its file (or any :class:`DeferredImage`: an image that knows how
to write itself, e.g. decoded and augmented on the way), and the collate has each one written
into its place in the batch memory, so each pixel is copied once instead of twice (file to
sample, sample to batch)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, overload, runtime_checkable

import torch

from .. import _C
from .decode import read_image

__all__ = ["DeferredImage", "DeferredSamples", "ImageFile", "read_into"]


@runtime_checkable
class DeferredImage(Protocol):
    """An image that is not in memory yet and writes itself where the collate asks: the hook for
    images read, decoded or augmented straight into the batch (or shared-ring slot).

    ``shape`` ([C, H, W]) and ``dtype`` must be known when the sample is fetched (the collate
    plans the batch from them, with the sample's target, before it writes anything).
    ``write_into(out)`` writes the image into ``out``, a [C, H, W] tensor view of dtype into the
    batch (strided: a window of a padded row; never resized); ``read()`` gives it as a tensor,
    for collate functions that want ordinary samples.
    """

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def write_into(self, out: torch.Tensor) -> None: ...

    def read(self) -> torch.Tensor: ...


class ImageFile(NamedTuple):
    """Where a uint8 C-order ``[C, H, W]`` image lies in a file (checked when it was placed): a
    :class:`DeferredImage` read straight into its place in the batch."""

    path: str
    offset: int  # bytes from the start of the file to the first pixel
    shape: tuple[int, int, int]

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def write_into(self, out: torch.Tensor) -> None:
        self._check_pixels()
        if out.stride(2) == 1 and out.stride(1) == out.shape[2]:
            _read_planes(self, out)  # whole rows: each plane is contiguous there
        else:
            out.copy_(self.read())

    def read(self) -> torch.Tensor:
        self._check_pixels()
        return read_image(self.path)

    def _check_pixels(self) -> None:
        if 0 in self.shape:  # as read_image refuses such a file on the path without deferring
            raise ValueError(
                f"{self.path}: cannot read the image: its shape {list(self.shape)} has no pixels"
            )


class DeferredSamples(Sequence):
    """``(image, target)`` samples of one batch whose images may still be :class:`ImageFile` places.

    Any collate_fn can use it as the list of samples it replaces: indexing or iterating reads
    the image (once; the sample is kept). :class:`~fastloader.DetectionCollate` instead reads
    every image straight into its batch.
    """

    def __init__(self, pairs: Sequence[tuple[DeferredImage | torch.Tensor, torch.Tensor]]) -> None:
        self.pairs = pairs
        self._samples: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[torch.Tensor, torch.Tensor]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = range(len(self.pairs))[index]  # IndexError as a list gives it
        sample = self._samples.get(position)
        if sample is None:
            image, target = self.pairs[position]
            if not isinstance(image, torch.Tensor):
                image = image.read()
            sample = self._samples[position] = (image, target)
        return sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples)"


def read_into(out: torch.Tensor, pairs: Sequence[tuple[Any, Any]], fill: bytes) -> None:
    """Writes image b of pairs into out[b] (a C-order [B, C, H, W] batch), padded with fill (one
    element of out's dtype). Tensors are copied by the padding kernel; deferred images write
    themselves into their window of the row, and the rest of the row is filled."""
    _, channels, height, width = out.shape
    value = torch.frombuffer(bytearray(fill), dtype=out.dtype)[0]
    for row, (image, _) in zip(out, pairs, strict=True):
        if isinstance(image, torch.Tensor):
            destination: Any = row.view(torch.uint8).view(-1).numpy()  # the kernel checks it
            source = image if image.dtype is not torch.bfloat16 else image.view(torch.int16)
            _C.pad_images([source.numpy()], channels, height, width, fill, False, destination, 1)
            continue
        _, h, w = image.shape
        image.write_into(row[:, :h, :w])
        if h < height:
            row[:, h:].fill_(value)
        if w < width:
            row[:, :h, w:].fill_(value)


def _read_planes(image: ImageFile, out: torch.Tensor) -> None:
    """Reads the image's C planes (each h * w contiguous bytes, the top of out's planes) from
    its file: one positional read of C buffers where the system has it."""
    channels, h, w = image.shape
    planes: Any = out.numpy()  # numpy gives ndarray the buffer protocol only from Python 3.12
    buffers = [memoryview(planes[c]).cast("B") for c in range(channels)]
    fd = os.open(image.path, os.O_RDONLY)
    try:
        if hasattr(os, "preadv"):
            got = os.preadv(fd, buffers, image.offset)
        else:  # pragma: no cover  # Windows: read plane by plane
            os.lseek(fd, image.offset, os.SEEK_SET)
            got = sum(os.readv(fd, [buffer]) for buffer in buffers)
    finally:
        os.close(fd)
    if got != channels * h * w:
        raise ValueError(
            f"{image.path}: truncated .npy file: shorter than its {image.shape} header says"
        )
