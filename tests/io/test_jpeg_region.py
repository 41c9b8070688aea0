"""io.jpeg_region: a rectangle decoded through libjpeg-turbo's skip / crop equals the same pixels
of a full decode (every chroma subsampling, grayscale, progressive, restart markers); bad data,
bad rectangles, bad buffers and bad libraries raise ValueError / TypeError; and the fused
augmentation renders the same bytes with and without it."""

from __future__ import annotations

import ctypes.util
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from fastloader import _C
from fastloader.io import jpeg_region
from fastloader.io.jpeg_region import JPEG_REGION_SLACK, decode_jpeg_region, region_decoder
from fastloader.transforms import retinaface

pytestmark = pytest.mark.skipif(
    region_decoder() is None, reason="no libjpeg-turbo 2.0+ (Pillow's or the system's) here"
)


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Edges and noise in every channel, so that an off-by-one column or row shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([(xx * 3 + yy) % 256, (yy * 5) % 256, ((xx * yy) >> 4) % 256], -1)
    image = image + rng.integers(-20, 21, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _pillow_jpeg(image: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


ENCODINGS = {
    "420": lambda im: simplejpeg.encode_jpeg(im, quality=90, colorsubsampling="420"),
    "422": lambda im: simplejpeg.encode_jpeg(im, quality=90, colorsubsampling="422"),
    "444": lambda im: simplejpeg.encode_jpeg(im, quality=90, colorsubsampling="444"),
    "440": lambda im: simplejpeg.encode_jpeg(im, quality=90, colorsubsampling="440"),
    "411": lambda im: simplejpeg.encode_jpeg(im, quality=90, colorsubsampling="411"),
    "gray": lambda im: simplejpeg.encode_jpeg(
        np.ascontiguousarray(im[..., :1]), quality=90, colorspace="Gray"
    ),
    "progressive": lambda im: _pillow_jpeg(im, progressive=True),
    "restart markers": lambda im: _pillow_jpeg(im, restart_marker_rows=1),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_region_equals_the_full_decode(encoding):
    height, width = 203, 301  # not multiples of any iMCU
    data = ENCODINGS[encoding](_photo(height, width))
    rng = np.random.default_rng(1)
    for bgr in (False, True):
        full = simplejpeg.decode_jpeg(data, colorspace="BGR" if bgr else "RGB")
        rectangles = [(0, 0, height, width), (0, 0, 1, 1), (height - 1, width - 1, 1, 1)]
        rectangles += [(16, 32, 50, 64), (17, 31, 50, 65)]  # on and off iMCU boundaries
        for _ in range(30):
            h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
            rectangles.append(
                (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
            )
        for top, left, h, w in rectangles:
            pixels, first = decode_jpeg_region(data, top, left, h, w, bgr=bgr)
            assert pixels.dtype == np.uint8 and pixels.shape[0] == h and pixels.shape[2] == 3
            assert first <= left and first + pixels.shape[1] >= left + w
            got = pixels[:, left - first : left - first + w]
            np.testing.assert_array_equal(
                got, full[top : top + h, left : left + w], err_msg=f"{(top, left, h, w)}"
            )


def test_header():
    data = ENCODINGS["420"](_photo(40, 70))
    assert region_decoder().header(data) == (40, 70, 3, True)
    gray = ENCODINGS["gray"](_photo(40, 70))
    assert region_decoder().header(gray) == (40, 70, 1, True)


def test_cmyk_is_declined_not_misdecoded():
    buffer = io.BytesIO()
    Image.new("CMYK", (40, 30), (10, 20, 30, 40)).save(buffer, "JPEG")
    data = buffer.getvalue()
    assert region_decoder().header(data)[3] is False
    with pytest.raises(ValueError, match="not a YCbCr, RGB or grayscale JPEG"):
        decode_jpeg_region(data, 0, 0, 10, 10)


@pytest.mark.parametrize(
    "rectangle, message",
    [
        ((0, 0, 41, 10), "not inside the 40x70"),
        ((0, 65, 10, 6), "not inside the 40x70"),
        ((-1, 0, 10, 10), "not a rectangle"),
        ((0, 0, 0, 10), "not a rectangle"),
    ],
)
def test_rectangle_outside_the_image(rectangle, message):
    data = ENCODINGS["420"](_photo(40, 70))
    with pytest.raises(ValueError, match=message):
        decode_jpeg_region(data, *rectangle)


def test_corrupt_and_truncated_data_raise():
    data = ENCODINGS["420"](_photo(120, 90))
    with pytest.raises(ValueError):
        decode_jpeg_region(b"not a jpeg at all", 0, 0, 1, 1)
    with pytest.raises(ValueError):
        decode_jpeg_region(data[: len(data) // 2], 0, 0, 120, 90)  # rows past the end
    damaged = bytearray(data)
    damaged[len(data) // 2 : len(data) // 2 + 64] = b"\xff\x00" * 32
    with pytest.raises(ValueError):
        decode_jpeg_region(bytes(damaged), 0, 0, 120, 90)
    # Data the rectangle never reaches is never read: the first rows of a truncated file decode.
    pixels, first = decode_jpeg_region(data[: len(data) * 3 // 4], 0, 0, 16, 90)
    full = simplejpeg.decode_jpeg(data)
    np.testing.assert_array_equal(pixels[:, : 90 - first], full[:16])


def test_bad_buffers_name_the_argument():
    decoder = region_decoder()
    data = ENCODINGS["420"](_photo(40, 70))
    with pytest.raises(TypeError, match="out should be"):
        decoder.decode_into(data, 0, 0, 10, 10, np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(TypeError, match="out should be"):
        decoder.decode_into(data, 0, 0, 10, 10, np.zeros((10, 10 + JPEG_REGION_SLACK, 3)))
    read_only = np.zeros((10, 10 + JPEG_REGION_SLACK, 3), np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        decoder.decode_into(data, 0, 0, 10, 10, read_only)
    with pytest.raises(ValueError, match="empty"):
        decoder.decode_into(b"", 0, 0, 10, 10, np.zeros((10, 60, 3), np.uint8))
    with pytest.raises(TypeError, match="contiguous bytes"):
        decoder.header(np.zeros(8, np.int32))


def test_a_library_that_is_not_libjpeg_turbo_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot open the library"):
        _C.JpegRegionDecoder(str(tmp_path / "missing.so"))
    libc = ctypes.util.find_library("c")
    if libc is None:  # pragma: no cover - every Linux has one
        pytest.skip("no libc to offer")
    with pytest.raises(ValueError, match="not libjpeg-turbo 2.0"):
        _C.JpegRegionDecoder(libc)


def test_the_system_libjpeg_turbo_gives_the_same_pixels():
    system = ctypes.util.find_library("jpeg")
    if system is None:
        pytest.skip("no system libjpeg here")
    try:
        decoder = _C.JpegRegionDecoder(system)
    except ValueError as exc:
        pytest.skip(f"the system libjpeg is not libjpeg-turbo 2.0+ with the 6.2 ABI: {exc}")
    data = ENCODINGS["422"](_photo(100, 150))
    out = np.zeros((40, 50 + JPEG_REGION_SLACK, 3), np.uint8)
    first, columns = decoder.decode_into(data, 30, 41, 40, 50, out, False)
    full = simplejpeg.decode_jpeg(data)
    np.testing.assert_array_equal(out[:, 41 - first : 91 - first], full[30:70, 41:91])


def test_environment_chooses_or_turns_off_the_library():
    code = (
        "from fastloader.io.jpeg_region import region_decoder as r; "
        "d = r(); print(d and d.library_path)"
    )
    env = dict(os.environ, FASTLOADER_LIBJPEG="off")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
    chosen = region_decoder().library_path
    env = dict(os.environ, FASTLOADER_LIBJPEG=chosen)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == chosen


def test_failed_decodes_leak_nothing():
    psutil = pytest.importorskip("psutil")
    data = ENCODINGS["420"](_photo(300, 400))
    truncated = data[: len(data) // 2]
    process = psutil.Process()

    def churn(count: int) -> None:
        for _ in range(count):
            with pytest.raises(ValueError):
                decode_jpeg_region(truncated, 0, 0, 300, 400)
            decode_jpeg_region(data, 100, 100, 50, 50)

    churn(200)
    before = process.memory_info().rss
    churn(2000)
    assert process.memory_info().rss - before < 8 << 20


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_fused_render_is_the_same_with_and_without_region_decoding(tmp_path, monkeypatch, order):
    pipe = retinaface(96, input_order=order, seed=3)
    path = tmp_path / "face.jpg"
    path.write_bytes(ENCODINGS["420"](_photo(150, 220)))
    target = np.array([[60, 40, 100, 90, 1] + [70, 55] * 5], np.float32)
    used = []
    original = jpeg_region.decode_jpeg_region

    def counted(*args, **kwargs):
        used.append(args[1:5])
        return original(*args, **kwargs)

    monkeypatch.setattr("fastloader.transforms.deferred.decode_jpeg_region", counted)
    for index in range(12):
        image, _ = pipe.defer(str(path), target, index=index)
        with_region = image.materialize()
        monkeypatch.setattr("fastloader.transforms.deferred.region_decoder", lambda: None)
        without = image.materialize()
        monkeypatch.undo()
        monkeypatch.setattr("fastloader.transforms.deferred.decode_jpeg_region", counted)
        assert with_region.dtype == without.dtype and with_region.shape == without.shape
        assert bool((with_region == without).all()), index
    assert used, "the region decoder was never used: the test compared nothing"
