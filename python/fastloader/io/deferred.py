"""Batches whose pre-decoded images are read straight into the collated batch: the dataset hands
over where each ``.npy`` image lies in its file, and the collate reads it into its place in the
batch memory, so each pixel is copied once (file to batch) instead of twice (file to sample, sample
to batch)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple, overload

import torch

from .. import _C
from .decode import read_image

__all__ = ["DeferredSamples", "ImageFile", "read_into"]


class ImageFile(NamedTuple):
    """Where a uint8 C-order ``[C, H, W]`` image lies in a file (checked when it was placed)."""

    path: str
    offset: int  # bytes from the start of the file to the first pixel
    shape: tuple[int, int, int]


class DeferredSamples(Sequence):
    """``(image, target)`` samples of one batch whose images may still be :class:`ImageFile` places.

    Any collate_fn can use it as the list of samples it replaces: indexing or iterating reads
    the image (once; the sample is kept). :class:`~fastloader.DetectionCollate` instead reads
    every image straight into its batch.
    """

    def __init__(self, pairs: list[tuple[ImageFile | torch.Tensor, torch.Tensor]]) -> None:
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
            if isinstance(image, ImageFile):
                image = read_image(image.path)
            sample = self._samples[position] = (image, target)
        return sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples)"


def read_into(
    raw: torch.Tensor, pairs: Sequence[tuple[Any, Any]], shape: tuple[int, int, int], fill: bytes
) -> torch.Tensor:
    """Writes image b of pairs into batch[b] of raw's uint8 [B, *shape] C-order view (returned),
    padded with fill (one byte). Full-width file images are read straight into place (their
    planes are contiguous there); the rest are read, then copied by the padding kernel."""
    out = raw.view(len(pairs), *shape)
    channels, height, width = shape
    for row, (image, _) in zip(out, pairs, strict=True):
        if isinstance(image, ImageFile) and image.shape[2] == width:
            _read_planes(image, row)
            if image.shape[1] < height:
                row[:, image.shape[1] :].fill_(fill[0])
        else:
            if isinstance(image, ImageFile):
                image = read_image(image.path)
            destination: Any = row.view(-1).numpy()  # the kernel checks size and writability
            _C.pad_images([image.numpy()], channels, height, width, fill, False, destination, 1)
    return out


def _read_planes(image: ImageFile, row: torch.Tensor) -> None:
    """Reads the image's C planes (each h * W contiguous bytes at the top of row's planes) from
    its file: one positional read of C buffers where the system has it."""
    channels, h, w = image.shape
    planes: Any = row.numpy()  # numpy gives ndarray the buffer protocol only from Python 3.12
    buffers = [memoryview(planes[c, :h]).cast("B") for c in range(channels)]
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
