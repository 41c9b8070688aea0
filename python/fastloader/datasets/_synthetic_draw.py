"""The pixels, objects and file contents (JPEG, VOC XML, WIDER label.txt lines) of the synthetic
datasets: pure functions of (seed, index, params) that write nothing; synthetic.py lays them out
in folders and _synthetic_cache.py keeps those folders."""

from __future__ import annotations

import io
import xml.etree.ElementTree as et
from typing import Any

import numpy as np

from .annotations import NUM_LANDMARKS

#: (width / height, share of images) of ``shapes="voc"``: about Pascal VOC 2007's mix, mostly
#: 500x375 and 500x333 landscapes and their portrait forms, with a few squarer images.
VOC_SHAPES = (
    (4 / 3, 0.42),
    (3 / 2, 0.20),
    (5 / 4, 0.04),
    (1.0, 0.04),
    (3 / 4, 0.20),
    (2 / 3, 0.10),
)

# Face-like landmark layout inside a box (eyes, nose, mouth corners), jittered per object.
_LANDMARK_TEMPLATE = np.array(
    [[0.30, 0.35], [0.70, 0.35], [0.50, 0.55], [0.35, 0.75], [0.65, 0.75]], dtype=np.float64
)


def _quarter_pixels(values: np.ndarray) -> np.ndarray:
    # Multiples of 1/4 are exact in binary and in the XML text, so values round-trip bit for bit.
    return np.round(values * 4.0) / 4.0


def _class_probabilities(num_classes: int) -> np.ndarray:
    # Zipf (1/(k+1)): with 20 classes and ~1.5 classes per image the rarest class is in ~2% of
    # images and the commonest in ~40%.
    raw = 1.0 / np.arange(1, num_classes + 1, dtype=np.float64)
    return raw / raw.sum()


def _voc_sides(ratios: np.ndarray, longer: int) -> np.ndarray:
    """[n, 2] int64 (height, width) of width / height ``ratios`` with the longer side fixed."""
    shorter = np.maximum(1, np.round(longer / np.maximum(ratios, 1 / ratios))).astype(np.int64)
    landscape = ratios >= 1
    return np.stack(
        [np.where(landscape, shorter, longer), np.where(landscape, longer, shorter)], axis=1
    )


def _voc_mix() -> tuple[np.ndarray, np.ndarray]:
    ratios, shares = (np.array(values) for values in zip(*VOC_SHAPES, strict=True))
    return ratios, shares / shares.sum()


def _image_size(rng: np.random.Generator, params: dict[str, Any]) -> tuple[int, int]:
    if params["shapes"] == "widerface":  # WIDER FACE's images are all 1024 wide, heights vary
        ratios, shares = _voc_mix()
        ratio = float(ratios[int(rng.choice(len(ratios), p=shares))])
        return max(1, round(params["max_size"] / ratio)), params["max_size"]
    if params["shapes"] == "voc":  # the longer side fixed, as detection resizing leaves it
        ratios, shares = _voc_mix()
        pick = int(rng.choice(len(ratios), p=shares))
        height, width = _voc_sides(ratios[pick : pick + 1], params["max_size"])[0]
        return int(height), int(width)
    height = int(rng.integers(params["min_size"], params["max_size"] + 1))
    width = int(rng.integers(params["min_size"], params["max_size"] + 1))
    return height, width


def _objects(
    rng: np.random.Generator, height: int, width: int, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    count = int(rng.integers(0, params["max_boxes"] + 1))
    num_classes = params["num_classes"]
    if count:
        present_draws = 1 + int(rng.binomial(2, 0.25))
        present = np.unique(
            rng.choice(num_classes, size=present_draws, p=_class_probabilities(num_classes))
        )
        labels = rng.choice(present, size=count).astype(np.int64)
    else:
        labels = np.empty(0, dtype=np.int64)
    size = np.array([width, height], dtype=np.float64)
    extent = np.maximum(rng.uniform(0.04, 0.5, size=(count, 2)) * size, 2.0)
    extent = np.minimum(extent, size)
    corner = rng.uniform(0.0, 1.0, size=(count, 2)) * (size - extent)
    low = _quarter_pixels(corner)
    high = np.minimum(_quarter_pixels(corner + extent), size)
    boxes = np.concatenate([low, high], axis=1)
    jitter = rng.uniform(-0.05, 0.05, size=(count, NUM_LANDMARKS, 2))
    relative = np.clip(_LANDMARK_TEMPLATE[None] + jitter, 0.0, 1.0)
    landmarks = _quarter_pixels(low[:, None, :] + relative * (high - low)[:, None, :])
    return labels, boxes, landmarks


def _synthesize(
    seed: int, index: int, params: dict[str, Any]
) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray]:
    """Image ``index`` of the dataset (uint8 ``[3, H, W]``), its labels, boxes and landmarks: a
    pure function of (seed, index, params)."""
    rng = np.random.default_rng([seed, index])
    height, width = _image_size(rng, params)
    labels, boxes, landmarks = _objects(rng, height, width, params)
    # Smooth background plus mild noise, objects as flat class-coloured rectangles: a picture
    # that compresses like a photo rather than like pure noise.
    base = rng.integers(0, 137, size=3)  # + ramps (96) + noise (22) stays <= 255
    ramp_y = np.linspace(0, 64, height, dtype=np.float32)[:, None]
    ramp_x = np.linspace(0, 32, width, dtype=np.float32)[None, :]
    image = np.empty((3, height, width), dtype=np.uint8)
    for channel in range(3):
        image[channel] = (base[channel] + ramp_y + ramp_x).astype(np.uint8)
    palette = np.random.default_rng([seed, 1 << 32]).integers(
        0, 233, size=(params["num_classes"], 3), dtype=np.uint8
    )
    for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels, strict=True):
        image[:, y1:y2, x1:x2] = palette[label][:, None, None]
    image += rng.integers(0, 23, size=(3, height, width), dtype=np.uint8)
    return image, labels.tolist(), boxes, landmarks


def _annotation_xml(
    filename: str, height: int, width: int, names: list[str], boxes: np.ndarray,
    landmarks: np.ndarray,
) -> bytes:  # fmt: skip
    root = et.Element("annotation")
    et.SubElement(root, "folder").text = "VOC2007"
    et.SubElement(root, "filename").text = filename
    size = et.SubElement(root, "size")
    et.SubElement(size, "width").text = str(width)
    et.SubElement(size, "height").text = str(height)
    et.SubElement(size, "depth").text = "3"
    for name, box, points in zip(names, boxes, landmarks, strict=True):
        obj = et.SubElement(root, "object")
        et.SubElement(obj, "name").text = name
        et.SubElement(obj, "difficult").text = "0"
        bndbox = et.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            et.SubElement(bndbox, tag).text = repr(float(value))
        marks = et.SubElement(obj, "landmarks")
        for k, (x, y) in enumerate(points):
            et.SubElement(marks, f"x{k + 1}").text = repr(float(x))
            et.SubElement(marks, f"y{k + 1}").text = repr(float(y))
    et.indent(root)
    return et.tostring(root, encoding="utf-8", xml_declaration=True)


def _jpeg_bytes(image: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
    """The JPEG file of a uint8 [3, H, W] image and its decoded pixels ([3, H, W], contiguous)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(
        buffer, "JPEG", quality=quality
    )
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        pixels = np.ascontiguousarray(np.asarray(decoded).transpose(2, 0, 1))
    return data, pixels


def _widerface_image_params(params: dict[str, Any]) -> dict[str, Any]:
    """What ``_synthesize`` needs to draw this folder's images: one class, fixed width."""
    width = params["width"]
    return {
        "shapes": "widerface",
        "min_size": width,
        "max_size": width,
        "num_classes": 1,
        "max_boxes": params["max_faces"],
    }


def _jpeg_only(image: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(
        buffer, "JPEG", quality=quality
    )
    return buffer.getvalue()


def _face_line(box: np.ndarray, points: np.ndarray, confidence: float | None) -> str:
    """One label.txt face: x y w h, x y 0.0 per landmark and a confidence; -1 x 16 without."""
    x1, y1, x2, y2 = (float(v) for v in box)
    fields = [x1, y1, x2 - x1, y2 - y1]
    if confidence is None:
        fields += [-1.0] * (3 * NUM_LANDMARKS + 1)
    else:
        for x, y in points:
            fields += [float(x), float(y), 0.0]
        fields.append(confidence)
    return " ".join(repr(value) for value in fields)
