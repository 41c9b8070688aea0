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
    "DEFAULT_MAX_IMAGE_PIXELS",
    "available_decoders",
    "check_max_image_pixels",
    "default_jpeg_decoder",
    "image_size",
    "locate_npy",
    "max_image_pixels",
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


#: Pillow's own default for ``PIL.Image.MAX_IMAGE_PIXELS`` (``1024 * 1024 * 1024 // 4 // 3``):
#: the pixel limit when Pillow is not installed.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485


def max_image_pixels() -> int | None:
    """The largest image (height x width pixels) ``read_image`` decodes when given no limit:
    ``PIL.Image.MAX_IMAGE_PIXELS`` as it is set now (its default 89,478,485, about 9459x9459;
    None there means no limit), or :data:`DEFAULT_MAX_IMAGE_PIXELS` without Pillow. A larger
    image is refused from its header, before any pixel memory is allocated: a file of a few
    hundred bytes can claim to be 65500x65500 (12.9 GB decoded)."""
    if _Image is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    return _Image.MAX_IMAGE_PIXELS


def check_max_image_pixels(value: Any, name: str = "max_image_pixels") -> int | None:
    """Validates a pixel-limit argument: None (Pillow's limit) or a positive int."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(
            f"{name} should be a positive integer or None (Pillow's limit), but got "
            f"{name}={value!r}"
        )
    return int(value)


class _TooLarge(ValueError):
    """The header's size is above the pixel limit (raised before anything is allocated)."""


def _check_pixels(height: int, width: int, limit: int | None) -> None:
    limit = max_image_pixels() if limit is None else limit
    if limit is not None and height * width > limit:
        raise _TooLarge(
            f"the header says {height}x{width} (HxW) = {height * width} pixels, above the limit "
            f"of {limit} (max_image_pixels, Pillow's MAX_IMAGE_PIXELS by default; a file this "
            "large may be a decompression bomb): refused before decoding"
        )


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


def _decode_simplejpeg(path: str, limit: int | None) -> torch.Tensor | None:
    """None for files Pillow should take: CMYK and YCCK JPEGs (Pillow's conversion to RGB is the
    reference; libjpeg-turbo's differs by a level or two) and files simplejpeg declines."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        height, width, colour, _ = _simplejpeg.decode_jpeg_header(data)
    except (ValueError, RuntimeError):
        return None
    _check_pixels(height, width, limit)
    try:
        if colour not in _SIMPLEJPEG_COLOURS:
            return None
        out = _recycled((height, width, 3))
        pixels = _simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out)
    except (ValueError, RuntimeError):
        return None
    return _hwc_as_chw(pixels)


def _decode_pillow(path: str, limit: int | None) -> torch.Tensor:
    if _Image is None:
        raise ImportError(f"{path}: decoding this image needs Pillow: {_EXTRA_HINT}")
    try:
        opened = _Image.open(path)  # reads the header only
    except _Image.DecompressionBombError as exc:  # Pillow's own limit, twice its MAX_IMAGE_PIXELS
        raise _TooLarge(f"refused before decoding: {exc}") from None
    with opened:
        _check_pixels(opened.height, opened.width, limit)
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


def _open_npy(path: str, limit: int | None) -> tuple[Any, tuple[int, ...]]:
    """The open .npy file, positioned at its pixels, and its uint8 [3, H, W] C-order shape; the
    header is checked against the pixel limit and the file's length before any allocation."""
    file = open(path, "rb")  # noqa: SIM115  # handed to the caller
    try:
        shape, fortran_order, dtype = _npy_header(file)
        if dtype != np.uint8 or len(shape) != 3 or shape[0] != 3 or fortran_order:
            order = ", Fortran order" if fortran_order else ""
            raise ValueError(
                f"expected a uint8 [3, H, W] C-order array, got {dtype} {shape}{order}"
            )
        _check_pixels(shape[1], shape[2], limit)
        if os.fstat(file.fileno()).st_size - file.tell() < math.prod(shape):
            raise ValueError(f"truncated .npy file: shorter than its {shape} header says")
    except BaseException:
        file.close()
        raise
    return file, shape


def locate_npy(
    path: PathLike, max_image_pixels: int | None = None
) -> tuple[int, tuple[int, int, int]]:
    """(byte offset of the pixels, shape) of a uint8 [3, H, W] .npy image, its data unread.

    Raises:
        ValueError: the file is missing, not such an image, or above ``max_image_pixels`` (see
            :func:`read_image`); the message names it.
    """
    path = os.fspath(path)
    try:
        file, shape = _open_npy(path, max_image_pixels)
        with file:
            offset = file.tell()
    except FileNotFoundError:
        raise ValueError(f"{path}: image file not found") from None
    except _TooLarge as exc:
        raise ValueError(f"{path}: image too large: {exc}") from None
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the image: {type(exc).__name__}: {exc}") from None
    return offset, (shape[0], shape[1], shape[2])


# JPEG markers that carry a frame header (height, width): SOF0-SOF15 but DHT, JPG and DAC.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_UNSIZED_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field


def _jpeg_size(file: Any) -> tuple[int, int]:
    """(height, width) from a JPEG's frame header, skipping the segments before it unread."""
    if file.read(2) != b"\xff\xd8":
        raise ValueError("not a JPEG file (no SOI marker)")
    while True:
        byte = file.read(1)
        if byte != b"\xff":
            raise ValueError("malformed JPEG: expected a marker")
        marker = file.read(1)
        while marker == b"\xff":  # fill bytes
            marker = file.read(1)
        if not marker:
            raise ValueError("truncated JPEG: no frame header")
        code = marker[0]
        if code in _JPEG_UNSIZED_MARKERS:
            continue
        if code in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            raise ValueError("malformed JPEG: no frame header before the image data")
        length_bytes = file.read(2)
        if len(length_bytes) < 2 or int.from_bytes(length_bytes, "big") < 2:
            raise ValueError("truncated JPEG: bad segment length")
        length = int.from_bytes(length_bytes, "big")
        if code in _JPEG_FRAME_MARKERS:
            frame = file.read(5)
            if len(frame) < 5:
                raise ValueError("truncated JPEG: short frame header")
            return int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big")
        file.seek(length - 2, os.SEEK_CUR)


def image_size(path: PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image from its file's header, decoding no pixel: JPEG (its
    frame header), PNG (IHDR), ``.npy`` (uint8 ``[3, H, W]``), other formats through Pillow's
    lazy open.

    Args:
        path: the image file.

    Raises:
        ValueError: the file is missing or its header cannot be read; the message names it.

    Example:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> from fastloader.io.decode import image_size
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(f"{folder}/a.jpg")
        ...     size = image_size(f"{folder}/a.jpg")
        >>> size
        (30, 40)
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as file:
            start = file.read(24)
            file.seek(0)
            if start.startswith(b"\xff\xd8"):
                return _jpeg_size(file)
            if start.startswith(b"\x89PNG\r\n\x1a\n") and start[12:16] == b"IHDR":
                return int.from_bytes(start[20:24], "big"), int.from_bytes(start[16:20], "big")
            if suffix == ".npy":
                shape = _npy_header(file)[0]
                if len(shape) != 3:
                    raise ValueError(f"expected a [3, H, W] array, got shape {shape}")
                return int(shape[1]), int(shape[2])
        if _Image is None:
            raise ImportError(f"{path}: reading this image's size needs Pillow: {_EXTRA_HINT}")
        with _Image.open(path) as opened:
            return opened.height, opened.width
    except ImportError:
        raise
    except FileNotFoundError:
        raise ValueError(f"{path}: image file not found") from None
    except Exception as exc:
        raise ValueError(
            f"{path}: cannot read the image size: {type(exc).__name__}: {exc}"
        ) from None


def _load_npy(path: str, limit: int | None) -> torch.Tensor:
    """A uint8 [3, H, W] .npy file read straight into recycled memory (np.load's fresh array
    costs more in page faults than the read itself)."""
    file, shape = _open_npy(path, limit)
    with file:
        array = _recycled(shape)
        if file.readinto(array.data.cast("B")) != array.nbytes:
            raise ValueError(f"truncated .npy file: shorter than its {shape} header says")
    return torch.from_numpy(array)


def read_image(
    path: PathLike, decoder: str = "auto", *, max_image_pixels: int | None = None
) -> torch.Tensor:
    """The image at ``path`` as a uint8 ``[3, H, W]`` RGB tensor.

    ``.npy`` files hold the array itself (uint8 ``[3, H, W]``, contiguous). JPEG goes to
    ``decoder`` ("auto": simplejpeg when installed, else Pillow; both use libjpeg-turbo's
    accurate IDCT and give the same pixels); anything else (PNG, BMP, ...) to Pillow. Decoded
    images are a channel-interleaved view of the decoder's buffer (``stride() == (1, 3W, 3)``),
    not copied into planes. Grey, palette and RGBA images are converted to RGB.

    Every decoder first reads the size from the file's header and refuses an image above
    ``max_image_pixels`` (height x width) before allocating anything.

    Args:
        path: the image file.
        decoder: ``"auto"``, ``"simplejpeg"`` or ``"pillow"``: who decodes JPEG files.
        max_image_pixels: the largest height x width accepted; None for
            :func:`max_image_pixels` (``PIL.Image.MAX_IMAGE_PIXELS``, 89,478,485 unless changed;
            setting that to None lifts the limit). Pillow keeps its own hard limit of twice its
            ``MAX_IMAGE_PIXELS`` for the files it decodes.

    Raises:
        ValueError: the file is missing, cannot be decoded or is above the pixel limit; the
            message names it.
        ImportError: the file needs Pillow and it is not installed (the datasets extra).

    Example:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> from fastloader.io.decode import read_image
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(f"{folder}/a.png")
        ...     image = read_image(f"{folder}/a.png")
        >>> image.shape, image.dtype
        (torch.Size([3, 30, 40]), torch.uint8)
    """
    path = os.fspath(path)
    if decoder != "auto":
        check_decoder(decoder)
    limit = check_max_image_pixels(max_image_pixels)
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npy":
            return _load_npy(path, limit)
        if suffix in _JPEG_SUFFIXES and decoder != "pillow" and _simplejpeg is not None:
            decoded = _decode_simplejpeg(path, limit)
            if decoded is not None:
                return decoded
        return _decode_pillow(path, limit)
    except ImportError:
        raise
    except FileNotFoundError:
        raise ValueError(f"{path}: image file not found") from None
    except _TooLarge as exc:
        raise ValueError(f"{path}: image too large: {exc}") from None
    except Exception as exc:  # every decoder's own error types: one clear message naming the file
        raise ValueError(f"{path}: cannot read the image: {type(exc).__name__}: {exc}") from None
