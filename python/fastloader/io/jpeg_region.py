"""Decoding only a rectangle of a JPEG: libjpeg-turbo skips the rows above it (entropy decoding
only), never reads the rows below it and never transforms the columns beside it. The pixels
equal the same rectangle of a full decode.

NOTE [which libjpeg-turbo]: we ship no codec and link none. The decoder opens, at run time, the
libjpeg-turbo that Pillow's wheel bundles (``pillow.libs/libjpeg*`` on Linux, ``PIL/.dylibs`` on
macOS), else the system's ``libjpeg`` (libjpeg-turbo on every current Linux distribution). It
must be libjpeg-turbo 2.0 or newer with the libjpeg 6.2 ABI; libjpeg itself checks the ABI
(struct sizes) when the decoder is made. ``FASTLOADER_LIBJPEG`` names a library to use instead;
``FASTLOADER_LIBJPEG=off`` turns region decoding off (callers then decode the whole image).
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import sys
from typing import Any

import numpy as np

from .. import _C

__all__ = ["JPEG_REGION_SLACK", "region_decoder", "decode_jpeg_region"]

#: Columns a region's buffer needs beyond its width (context and the iMCU-aligned left edge).
JPEG_REGION_SLACK: int = _C.JPEG_REGION_SLACK

_UNSET: Any = object()
_decoder: Any = _UNSET  # the process's decoder, None when none could be opened


def _candidates() -> list[str]:
    """Libraries to try, in order (NOTE [which libjpeg-turbo])."""
    chosen = os.environ.get("FASTLOADER_LIBJPEG")
    if chosen is not None:
        return [] if chosen.strip().lower() in ("", "0", "off", "none") else [chosen]
    found: list[str] = []
    try:
        import PIL
    except ImportError:  # pragma: no cover - depends on the environment
        PIL = None  # type: ignore[assignment]
    if PIL is not None and PIL.__file__ is not None:
        package = os.path.dirname(PIL.__file__)
        patterns = [os.path.join(package, os.pardir, "pillow.libs", "libjpeg*.so*")]
        if sys.platform == "darwin":
            patterns.append(os.path.join(package, ".dylibs", "libjpeg*.dylib"))
        for pattern in patterns:
            found.extend(sorted(glob.glob(pattern)))
    system = ctypes.util.find_library("jpeg")
    if system:
        found.append(system)
    return found


def region_decoder() -> Any:
    """The process's :class:`fastloader._C.JpegRegionDecoder`, or None when no usable
    libjpeg-turbo was found (then decode whole images). Found once per process."""
    global _decoder
    if _decoder is _UNSET:
        _decoder = None
        for path in _candidates():
            try:
                _decoder = _C.JpegRegionDecoder(path)
                break
            except ValueError:  # not openable, not libjpeg-turbo 2.0+, another ABI: try the next
                continue
    return _decoder


def _reset_for_tests() -> None:
    global _decoder
    _decoder = _UNSET


def decode_jpeg_region(
    data: bytes, top: int, left: int, height: int, width: int, *, bgr: bool = False
) -> tuple[np.ndarray, int]:
    """Rows ``[top, top + height)`` and (at least) columns ``[left, left + width)`` of a JPEG.

    Returns ``(pixels, first)``: ``pixels`` is uint8 [height, columns, 3] (RGB, or BGR with
    ``bgr=True``; grayscale replicated) holding the image's columns ``[first, first + columns)``,
    ``first <= left`` and ``first + columns >= left + width``. Its memory comes from fastloader's
    recycling pool.

    Args:
        data: the JPEG file's bytes.
        top, left, height, width: the rectangle, inside the image.
        bgr: channel order.

    Raises:
        RuntimeError: no usable libjpeg-turbo (check :func:`region_decoder` first).
        ValueError: corrupt data, a CMYK / YCCK JPEG, or a rectangle outside the image.

    Example:
        >>> import numpy as np, simplejpeg
        >>> from fastloader.io.jpeg_region import decode_jpeg_region, region_decoder
        >>> data = simplejpeg.encode_jpeg(np.full((64, 64, 3), 128, np.uint8))
        >>> pixels, first = decode_jpeg_region(data, 8, 20, 16, 16)
        >>> region_decoder() is not None and first <= 20 and pixels.shape[0] == 16
        True
    """
    decoder = region_decoder()
    if decoder is None:
        raise RuntimeError(
            "no libjpeg-turbo 2.0+ found for region decoding (see FASTLOADER_LIBJPEG)"
        )
    capacity = width + JPEG_REGION_SLACK
    nbytes = height * capacity * 3
    out = np.asarray(_C.PooledBuffer(max(nbytes, 1)))[:nbytes].reshape(height, capacity, 3)
    first, columns = decoder.decode_into(data, top, left, height, width, out, bgr)
    return out[:, :columns], first
