"""Image headers are read before any pixel memory exists: decompression bombs are refused for
every decoder (issue 18 item 3), and image sizes come from headers alone"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastloader.io import decode

# --------------------------------------------------------------------------------------------
# Item 3: decompression bombs are refused from the header, before any pixel memory exists


def _jpeg_claiming(path: Path, height: int, width: int) -> Path:
    """A small valid JPEG whose frame header is rewritten to claim height x width."""
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(path, quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


def _png_claiming(path: Path, height: int, width: int) -> Path:
    import zlib

    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # IHDR's CRC
    path.write_bytes(bytes(data))
    return path


_PEAK_RSS_SCRIPT = """
import resource, sys
from fastloader.io import decode
path, decoder = sys.argv[1], sys.argv[2]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode.read_image(path, decoder)
    print("decoded")
except ValueError as exc:
    print("ValueError:", exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("grew_kib", after - before)
"""


@pytest.mark.parametrize(
    "kind, height, width, decoder",
    [
        ("jpg", 20000, 20000, "auto"),  # the 643-byte bomb: simplejpeg's path
        ("jpg", 10000, 10000, "pillow"),  # above Pillow's limit, below its hard error
        ("png", 10000, 10000, "auto"),
        ("npy", 10000, 10000, "auto"),
    ],
)
def test_item03_decompression_bomb_refused_before_allocating(
    tmp_path, kind, height, width, decoder
):
    if decoder == "auto" and kind == "jpg" and "simplejpeg" not in decode.available_decoders():
        pytest.skip("simplejpeg is not installed")
    path = tmp_path / f"bomb.{kind}"
    if kind == "jpg":
        _jpeg_claiming(path, height, width)
    elif kind == "png":
        _png_claiming(path, height, width)
    else:
        np.save(path, np.zeros((3, 2, 2), np.uint8))
        path.write_bytes(
            path.read_bytes().replace(b"(3, 2, 2)", f"(3, {height}, {width})".encode())
        )
    assert path.stat().st_size < 1000
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_SCRIPT, str(path), decoder],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"ValueError: {path}: image too large"), lines
    assert f"{height}x{width}" in lines[0] and "89478485" in lines[0]
    grew_mib = int(lines[1].split()[1]) / 1024
    assert grew_mib < 64, f"peak RSS grew by {grew_mib:.0f} MiB reading a {kind} bomb"


def test_item03_pixel_limit_is_configurable_and_follows_pillow(tmp_path, monkeypatch):
    path = tmp_path / "a.jpg"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path)
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros((3, 30, 40), np.uint8))
    for decoder in decode.available_decoders():
        assert decode.read_image(path, decoder, max_image_pixels=1200).shape == (3, 30, 40)
        with pytest.raises(ValueError, match=r"a\.jpg: image too large.*30x40.*1199"):
            decode.read_image(path, decoder, max_image_pixels=1199)
    with pytest.raises(ValueError, match=r"a\.npy: image too large"):
        decode.read_image(npy, max_image_pixels=1199)
    with pytest.raises(ValueError, match=r"a\.npy: image too large"):
        decode.locate_npy(npy, 1199)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the default follows Pillow's setting
    assert decode.max_image_pixels() == 1000
    with pytest.raises(ValueError, match="above the limit of 1000"):
        decode.read_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # None there lifts the limit
    assert decode.read_image(npy).shape == (3, 30, 40)
    for bad in (0, -1, 2.5, True, "big"):
        with pytest.raises(ValueError, match="max_image_pixels should be a positive integer"):
            decode.read_image(path, max_image_pixels=bad)


def test_image_size_reads_headers_only(tmp_path):
    for index, (height, width) in enumerate([(30, 40), (41, 17)]):
        pixels = np.zeros((height, width, 3), np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{index}.jpg")
        Image.fromarray(pixels).save(tmp_path / f"{index}.png")
        Image.fromarray(pixels).save(tmp_path / f"{index}.bmp")
        np.save(tmp_path / f"{index}.npy", pixels.transpose(2, 0, 1))
        for suffix in ("jpg", "png", "bmp", "npy"):
            assert decode.image_size(tmp_path / f"{index}.{suffix}") == (height, width), suffix
    # an EXIF block before the frame header is skipped, and the bomb's claim is read, not decoded
    exif = Image.Exif()
    exif[0x010E] = "x" * 5000
    Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(tmp_path / "exif.jpg", exif=exif)
    assert decode.image_size(tmp_path / "exif.jpg") == (9, 7)
    assert decode.image_size(_jpeg_claiming(tmp_path / "b.jpg", 60000, 50000)) == (60000, 50000)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xda\x00\x02")
    with pytest.raises(ValueError, match=r"bad\.jpg: cannot read the image size"):
        decode.image_size(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match=r"none\.jpg: image file not found"):
        decode.image_size(tmp_path / "none.jpg")
