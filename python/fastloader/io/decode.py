"""Image files to uint8 [3, H, W] tensors with the fastest well-kept decoder installed"""

from __future__ import annotations

import io
import math
import os
from typing import Any, Union

import numpy as np
import torch

from .. import _C

__all__ = [
    "DECODERS",
    "available_decoders",
    "default_jpeg_decoder",
    "locate_npy",
    "read_image",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Decoder names ``read_image`` accepts, fastest first: "auto" picks the first installed for JPEG.
DECODERS = ("simplejpeg", "pillow")
_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
_SIMPLEJPEG_COLOURS = ("YCbCr", "Gray", "RGB")  # what it turns into Pillow's very pixels
_EXTRA_HINT = "pip install 'fastloader[datasets]' (Pillow)"

try:  # libjpeg-turbo through a thin binding: about 1.7x Pillow on a 640x640 JPEG here
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    _simplejpeg = None

try:
    from PIL import Image as _Image
except ImportError:  # pragma: no cover - depends on the environment
    _Image = None  # type: ignore[assignment]  # checked before every use


def available_decoders() -> list[str]:
    """The decoders installed here, fastest first (``"pillow"`` needs the datasets extra)."""
    found = {"simplejpeg": _simplejpeg is not None, "pillow": _Image is not None}
    return [name for name in DECODERS if found[name]]


def default_jpeg_decoder() -> str:
    """What ``decoder="auto"`` uses for JPEG files: simplejpeg when installed, else Pillow."""
    installed = available_decoders()
    if not installed:
        raise ImportError(f"decoding JPEG or PNG images needs Pillow: {_EXTRA_HINT}")
    return installed[0]


def check_decoder(decoder: str) -> str:
    """Validates a ``decoder`` argument; a named decoder must be installed."""
    if decoder == "auto":
        return decoder
    if decoder not in DECODERS:
        raise ValueError(
            f"decoder should be 'auto' or one of {DECODERS}, but got decoder={decoder!r}"
        )
    if decoder not in available_decoders():
        extra = "'fastloader[jpeg]'" if decoder == "simplejpeg" else "'fastloader[datasets]'"
        raise ImportError(f"decoder={decoder!r} is not installed: pip install {extra}")
    return decoder


def _recycled(shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 array from fastloader's recycling pool: a block freed by an earlier sample (its
    pages already faulted in) when one fits. Fresh memory costs a page fault per 4 KiB, which
    here took longer than reading a pre-decoded image and half as long as decoding a JPEG."""
    nbytes = math.prod(shape)
    return np.asarray(_C.PooledBuffer(max(nbytes, 1)))[:nbytes].reshape(shape)


def _hwc_as_chw(pixels: np.ndarray) -> torch.Tensor:
    # The decoder's own buffer, viewed as [3, H, W] (channel stride 1): no copy here; the collate
    # writes it into the batch in one pass (a plain copy when the batch is channels_last).
    return torch.from_numpy(pixels).permute(2, 0, 1)


def _decode_simplejpeg(path: str) -> torch.Tensor | None:
    """None for files Pillow should take: CMYK and YCCK JPEGs (Pillow's conversion to RGB is the
    reference; libjpeg-turbo's differs by a level or two) and files simplejpeg declines."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        height, width, colour, _ = _simplejpeg.decode_jpeg_header(data)
        if colour not in _SIMPLEJPEG_COLOURS:
            return None
        out = _recycled((height, width, 3))
        pixels = _simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out)
    except (ValueError, RuntimeError):
        return None
    return _hwc_as_chw(pixels)


def _decode_pillow(path: str) -> torch.Tensor:
    if _Image is None:
        raise ImportError(f"{path}: decoding this image needs Pillow: {_EXTRA_HINT}")
    with _Image.open(path) as opened:
        image = opened if opened.mode == "RGB" else opened.convert("RGB")
        # Pillow exports read-only bytes; torch needs writable memory, so they are copied once
        # (about 0.1 ms for 640x640, under 5% of the decode), into recycled memory.
        exported = np.asarray(image)
        pixels = _recycled(exported.shape)
        np.copyto(pixels, exported)
    return _hwc_as_chw(pixels)


_NPY_MAGIC = b"\x93NUMPY"
_npy_headers: dict[bytes, tuple[tuple[int, ...], bool, np.dtype]] = {}  # header text -> parsed


def _read_header_2_0(stream: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    return np.lib.format.read_array_header_2_0(stream)  # versions 2 and 3 share the layout


def _npy_header(file: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """shape, fortran_order, dtype of an open .npy file, leaving it at the data. numpy parses
    the header with ast.literal_eval (a tenth of a worker's time here); images of a dataset
    share a few headers, so each distinct one is parsed once."""
    start = file.read(10)
    if len(start) < 10 or not start.startswith(_NPY_MAGIC):
        raise ValueError("not a .npy file (no NUMPY magic)")
    if start[6] == 1:
        length, prefix = int.from_bytes(start[8:10], "little"), start
    else:
        more = file.read(2)
        length, prefix = int.from_bytes(start[8:10] + more, "little"), start + more
    header = file.read(length)
    parsed = _npy_headers.get(header)
    if parsed is None:
        read = np.lib.format.read_array_header_1_0 if start[6] == 1 else _read_header_2_0
        parsed = read(io.BytesIO(prefix[8:] + header))  # after the magic and version
        if len(_npy_headers) < 1024:
            _npy_headers[header] = parsed
    return parsed


def _open_npy(path: str) -> tuple[Any, tuple[int, ...]]:
    """The open .npy file, positioned at its pixels, and its uint8 [3, H, W] C-order shape."""
    file = open(path, "rb")  # noqa: SIM115  # handed to the caller
    try:
        shape, fortran_order, dtype = _npy_header(file)
        if dtype != np.uint8 or len(shape) != 3 or shape[0] != 3 or fortran_order:
            order = ", Fortran order" if fortran_order else ""
            raise ValueError(
                f"expected a uint8 [3, H, W] C-order array, got {dtype} {shape}{order}"
            )
    except BaseException:
        file.close()
        raise
    return file, shape


def locate_npy(path: PathLike) -> tuple[int, tuple[int, int, int]]:
    """(byte offset of the pixels, shape) of a uint8 [3, H, W] .npy image, its data unread.

    Raises:
        ValueError: the file is missing or not such an image; the message names it.
    """
    path = os.fspath(path)
    try:
        file, shape = _open_npy(path)
        with file:
            offset = file.tell()
            if os.fstat(file.fileno()).st_size - offset < shape[0] * shape[1] * shape[2]:
                raise ValueError(f"truncated .npy file: shorter than its {shape} header says")
    except FileNotFoundError:
        raise ValueError(f"{path}: image file not found") from None
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the image: {type(exc).__name__}: {exc}") from None
    return offset, (shape[0], shape[1], shape[2])


def _load_npy(path: str) -> torch.Tensor:
    """A uint8 [3, H, W] .npy file read straight into recycled memory (np.load's fresh array
    costs more in page faults than the read itself)."""
    file, shape = _open_npy(path)
    with file:
        array = _recycled(shape)
        if file.readinto(array.data.cast("B")) != array.nbytes:
            raise ValueError(f"truncated .npy file: shorter than its {shape} header says")
    return torch.from_numpy(array)


def read_image(path: PathLike, decoder: str = "auto") -> torch.Tensor:
    """The image at ``path`` as a uint8 ``[3, H, W]`` RGB tensor.

    ``.npy`` files hold the array itself (uint8 ``[3, H, W]``, contiguous). JPEG goes to
    ``decoder`` ("auto": simplejpeg when installed, else Pillow; both use libjpeg-turbo's
    accurate IDCT and give the same pixels); anything else (PNG, BMP, ...) to Pillow. Decoded
    images are a channel-interleaved view of the decoder's buffer (``stride() == (1, 3W, 3)``),
    not copied into planes. Grey, palette and RGBA images are converted to RGB.

    Raises:
        ValueError: the file is missing or cannot be decoded; the message names it.
        ImportError: the file needs Pillow and it is not installed (the datasets extra).
    """
    path = os.fspath(path)
    if decoder != "auto":
        check_decoder(decoder)
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npy":
            return _load_npy(path)
        if suffix in _JPEG_SUFFIXES and decoder != "pillow" and _simplejpeg is not None:
            decoded = _decode_simplejpeg(path)
            if decoded is not None:
                return decoded
        return _decode_pillow(path)
    except ImportError:
        raise
    except FileNotFoundError:
        raise ValueError(f"{path}: image file not found") from None
    except Exception as exc:  # every decoder's own error types: one clear message naming the file
        raise ValueError(f"{path}: cannot read the image: {type(exc).__name__}: {exc}") from None
