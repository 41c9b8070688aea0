"""io.image_size: sizes read from JPEG, PNG and .npy headers equal the decoded sizes; bad files
raise naming the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fastloader.io import image_size, read_image


@pytest.mark.parametrize(
    "suffix, options",
    [
        (".jpg", {}),
        (".jpg", {"progressive": True}),
        (".jpeg", {"exif": Image.Exif()}),  # an APP1 segment before the frame header
        (".jpg", {"mode": "L"}),
        (".png", {}),
        (".bmp", {}),  # through Pillow's header-only open
    ],
)
def test_header_size_equals_the_decoded_size(tmp_path, suffix, options):
    options = dict(options)
    mode = options.pop("mode", "RGB")
    path = tmp_path / f"a{suffix}"
    Image.new(mode, (37, 23), 90).save(path, **options)
    assert image_size(path) == (23, 37)
    assert tuple(read_image(path).shape[1:]) == (23, 37)


def test_npy_and_fill_bytes(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 5, 9), np.uint8))
    assert image_size(tmp_path / "a.npy") == (5, 9)
    buffer = io.BytesIO()
    Image.new("RGB", (12, 7)).save(buffer, "JPEG")
    data = buffer.getvalue()
    padded = data[:2] + b"\xff\xff\xff" + data[2:]  # fill bytes before a marker are legal
    (tmp_path / "f.jpg").write_bytes(padded)
    assert image_size(tmp_path / "f.jpg") == (7, 12)


def test_bad_files_raise_naming_them(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (12, 7)).save(buffer, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buffer.getvalue()[:20])
    with pytest.raises(ValueError, match="t.jpg: .*(truncated|malformed|frame header)"):
        image_size(tmp_path / "t.jpg")
    (tmp_path / "t.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ValueError, match="t.png: "):
        image_size(tmp_path / "t.png")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match="x.txt: cannot read the image size"):
        image_size(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="missing.jpg: image file not found"):
        image_size(tmp_path / "missing.jpg")
