"""A numpy reference of every augmentation op, driven by the parameters the native plan drew
(plan.records): the image is transformed step by step as the original pipelines do (crop, pad,
expand, flip as array slicing; cv2.resize's rules as dense weight matrices; OpenCV's HSV in
numpy), the targets in float32 as the op docstrings state."""

from __future__ import annotations

import math

import numpy as np

from fastloader.transforms import AugmentPipeline

# ---------------------------------------------------------------------------------------------
# Photometric distortion (Pytorch_Retinaface's _distort with OpenCV's uint8 HSV).


def _convert(values: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    tmp = values.astype(np.float64) * alpha + beta
    tmp[tmp < 0] = 0
    tmp[tmp > 255] = 255
    return tmp.astype(np.uint8)  # numpy's image[:] = tmp truncates


def bgr_to_hsv(img: np.ndarray, bidx: int) -> np.ndarray:
    """OpenCV's RGB2HSV_b (hrange 180, hsv_shift 12)."""
    i = np.arange(1, 256, dtype=np.float64)
    sdiv = np.zeros(256, np.int64)
    hdiv = np.zeros(256, np.int64)
    sdiv[1:] = np.floor((255 << 12) / i + 0.5)
    hdiv[1:] = np.floor((180 << 12) / (6.0 * i) + 0.5)
    b = img[..., bidx].astype(np.int64)
    g = img[..., 1].astype(np.int64)
    r = img[..., 2 - bidx].astype(np.int64)
    v = np.maximum(np.maximum(b, g), r)
    vmin = np.minimum(np.minimum(b, g), r)
    diff = v - vmin
    s = (diff * sdiv[v] + (1 << 11)) >> 12
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff] + (1 << 11)) >> 12
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], axis=-1).astype(np.uint8)


def hsv_to_bgr(hsv: np.ndarray, bidx: int) -> np.ndarray:
    """OpenCV's HSV2RGB_b: float maths from uint8 H (0..179), S and V / 255."""
    h = hsv[..., 0].astype(np.float32) * np.float32(6.0 / 180.0)
    s = hsv[..., 1].astype(np.float32) * np.float32(1.0 / 255.0)
    v = hsv[..., 2].astype(np.float32) * np.float32(1.0 / 255.0)
    h = np.where(h >= 6, h - 6, h)
    sector = np.floor(h).astype(np.int64)
    f = h - sector.astype(np.float32)
    one = np.float32(1)
    tab = np.stack([v, v * (one - s), v * (one - s * f), v * (one - s * (one - f))], axis=-1)
    sector_data = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])
    pick = sector_data[np.clip(sector, 0, 5)]
    b = np.take_along_axis(tab, pick[..., 0:1], -1)[..., 0]
    g = np.take_along_axis(tab, pick[..., 1:2], -1)[..., 0]
    r = np.take_along_axis(tab, pick[..., 2:3], -1)[..., 0]
    gray = s == 0
    b, g, r = np.where(gray, v, b), np.where(gray, v, g), np.where(gray, v, r)
    out = np.empty(hsv.shape, np.uint8)
    for channel, value in ((bidx, b), (1, g), (2 - bidx, r)):
        out[..., channel] = np.clip(np.floor(value * np.float32(255)), 0, 255)  # OpenCV 5 truncates
    return out


def distort(img: np.ndarray, p: dict[str, float], bidx: int) -> np.ndarray:
    img = img.copy()
    if p["brightness_on"]:
        img = _convert(img, beta=p["beta"])
    if p["contrast_first"] and p["contrast_on"]:
        img = _convert(img, alpha=p["alpha"])
    hsv = bgr_to_hsv(img, bidx)
    if p["saturation_on"]:
        hsv[..., 1] = _convert(hsv[..., 1], alpha=p["saturation"])
    if p["hue_on"]:
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(p["hue"])) % 180
    img = hsv_to_bgr(hsv, bidx)
    if not p["contrast_first"] and p["contrast_on"]:
        img = _convert(img, alpha=p["alpha"])
    return img


# ---------------------------------------------------------------------------------------------
# cv2.resize's rules, as dense [dst, src] weight matrices.


def _cubic(x: float) -> list[float]:
    a = -0.75
    c0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    c1 = ((a + 2) * x - (a + 3)) * x * x + 1
    c2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return [c0, c1, c2, 1 - c0 - c1 - c2]


def _lanczos(x: float) -> list[float]:
    c = []
    for i in range(8):
        y = x + 3 - i
        c.append(
            1.0
            if abs(y) < 1e-6
            else 16 * math.sin(math.pi * y / 4) * math.sin(math.pi * y) / (math.pi * y) ** 2
        )
    total = sum(c)
    return [v / total for v in c]


def resize_weights(interp: int, src: int, dst: int, area_down: bool) -> np.ndarray:
    inv = dst / src
    scale = 1.0 / inv
    w = np.zeros((dst, src), np.float64)
    for d in range(dst):
        if interp == 0:
            w[d, min(math.floor(d * scale), src - 1)] = 1
            continue
        if interp == 3 and area_down:
            f1, f2 = d * scale, d * scale + scale
            cell = min(scale, src - f1)
            s1, s2 = math.ceil(f1), min(math.floor(f2), src - 1)
            s1 = min(s1, s2)
            if s1 - f1 > 1e-3:
                w[d, s1 - 1] += (s1 - f1) / cell
            for s in range(s1, s2):
                w[d, s] += 1 / cell
            if f2 - s2 > 1e-3:
                w[d, s2] += min(f2 - s2, 1.0, cell) / cell
            continue
        if interp == 3:
            sx = math.floor(d * scale)
            fx = (d + 1) - (sx + 1) * inv
            fx = 0.0 if fx <= 0 else fx - math.floor(fx)
        else:
            f = (d + 0.5) * scale - 0.5
            sx = math.floor(f)
            fx = f - sx
        if interp in (1, 3):
            if sx < 0:
                sx, fx = 0, 0.0
            if sx >= src - 1:
                sx, fx = src - 1, 0.0
            taps = [(sx, 1 - fx), (sx + 1, fx)]
        elif interp == 2:
            taps = [(sx - 1 + j, c) for j, c in enumerate(_cubic(fx))]
        else:
            taps = [(sx - 3 + j, c) for j, c in enumerate(_lanczos(fx))]
        for s, c in taps:
            w[d, min(max(s, 0), src - 1)] += c
    return w


def resize(img: np.ndarray, width: int, height: int, interp: int) -> np.ndarray:
    h, w = img.shape[:2]
    area_down = w >= width and h >= height
    wy = resize_weights(interp, h, height, area_down)
    wx = resize_weights(interp, w, width, area_down)
    out = np.einsum("yh,hwc,xw->yxc", wy, img.astype(np.float64), wx)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# The whole pipeline.


def _missing(lm: np.ndarray) -> np.ndarray:
    return (lm[..., 0] == -1) & (lm[..., 1] == -1)


def _crop_targets(boxes, lms, keep, left, top, w, h):
    f32 = np.float32
    c = (boxes[:, :2].astype(np.float64) + boxes[:, 2:].astype(np.float64)) / 2
    inside = (c[:, 0] > left) & (c[:, 0] < left + w) & (c[:, 1] > top) & (c[:, 1] < top + h)
    boxes, keep = boxes[inside].copy(), keep[inside]
    boxes[:, 0] = np.maximum(boxes[:, 0], f32(left)) - f32(left)
    boxes[:, 1] = np.maximum(boxes[:, 1], f32(top)) - f32(top)
    boxes[:, 2] = np.minimum(boxes[:, 2], f32(left + w)) - f32(left)
    boxes[:, 3] = np.minimum(boxes[:, 3], f32(top + h)) - f32(top)
    if lms is not None:
        lms = lms[inside].copy()
        miss = _missing(lms)
        lms[..., 0] = np.minimum(np.maximum(lms[..., 0] - f32(left), f32(0)), f32(w))
        lms[..., 1] = np.minimum(np.maximum(lms[..., 1] - f32(top), f32(0)), f32(h))
        lms[miss] = -1
    return boxes, lms, keep


def _pad(img: np.ndarray, width: int, height: int, left: int, top: int, fill) -> np.ndarray:
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = fill
    canvas[top : top + img.shape[0], left : left + img.shape[1]] = img
    return canvas


def run(pipe: AugmentPipeline, image: np.ndarray, boxes: np.ndarray, lms: np.ndarray | None, plan):
    """The reference output (float64-normalized, cast like the pipeline) and targets."""
    out = pipe._output
    input_rgb, output_rgb = out["input_rgb"], out["output_rgb"]
    perm = [0, 1, 2] if input_rgb == output_rgb else [2, 1, 0]
    fill = np.array([out["fill"][perm[c]] for c in range(3)], np.uint8)  # working (input) order
    bidx = 2 if input_rgb else 0
    img = image if image.ndim == 3 else image[..., None]
    img = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3]
    img = np.ascontiguousarray(img)
    boxes = boxes.astype(np.float32).copy()
    lms = None if lms is None else lms.astype(np.float32).reshape(len(boxes), -1, 2).copy()
    keep = np.arange(len(boxes))
    records = plan.records
    # The distortion acts on image pixels only: apply it to the source first.
    for name, applied, values in records:
        if name == "distort" and applied:
            img = distort(img, values, bidx)
    resized = None
    for op, (name, applied, values) in zip(pipe.ops, records, strict=True):
        if not applied or name == "distort":
            continue
        h, w = img.shape[:2]
        if name == "square_crop":
            if values["success"]:
                left, top, side = int(values["left"]), int(values["top"]), int(values["size"])
                img = img[top : top + side, left : left + side]
                boxes, lms, keep = _crop_targets(boxes, lms, keep, left, top, side, side)
            elif op.pad_on_failure:
                side = max(h, w)
                img = _pad(img, side, side, 0, 0, fill)
        elif name == "iou_crop":
            if values["success"]:
                left, top = int(values["left"]), int(values["top"])
                cw, ch = int(values["width"]), int(values["height"])
                img = img[top : top + ch, left : left + cw]
                boxes, lms, keep = _crop_targets(boxes, lms, keep, left, top, cw, ch)
        elif name == "expand":
            left, top = int(values["left"]), int(values["top"])
            img = _pad(img, int(values["width"]), int(values["height"]), left, top, fill)
            boxes = boxes + np.array([left, top, left, top], np.float32)
            if lms is not None:
                miss = _missing(lms)
                lms = lms + np.array([left, top], np.float32)
                lms[miss] = -1
        elif name == "pad_to_square":
            side = max(h, w)
            img = _pad(img, side, side, 0, 0, fill)
        elif name == "flip":
            img = img[:, ::-1]
            fw = np.float32(w)
            boxes = np.stack([fw - boxes[:, 2], boxes[:, 1], fw - boxes[:, 0], boxes[:, 3]], axis=1)
            if lms is not None:
                miss = _missing(lms)
                lms = lms.copy()
                lms[..., 0] = np.where(miss, lms[..., 0], fw - lms[..., 0])
                for a, b in op.spec()["flip_pairs"]:
                    lms[:, [a, b]] = lms[:, [b, a]]
        elif name == "resize":
            resized = (int(values["width"]), int(values["height"]), int(values["interp"]))
    ch, cw = img.shape[:2]
    if resized is not None:
        content = resize(img, resized[0], resized[1], resized[2])
    else:
        content = img
    spec = next((op.spec() for op in pipe.ops if op.spec()["kind"] == "resize"), None)
    d = max(1, spec["size_divisibility"]) if spec else 1
    oh = -(-content.shape[0] // d) * d
    ow = -(-content.shape[1] // d) * d
    final = _pad(content, ow, oh, 0, 0, fill)[..., perm]
    mean, std = np.array(out["mean"]), np.array(out["std"])
    if out["dtype"] == "uint8":
        pixels = final
    else:
        pixels = ((final.astype(np.float64) - mean) / std).astype(np.float32)

    # Targets: clip, min size, scale or normalize (float32, in that order).
    fcw, fch = np.float32(cw), np.float32(ch)
    sx = np.float32(content.shape[1] / cw) if resized else np.float32(1)
    sy = np.float32(content.shape[0] / ch) if resized else np.float32(1)
    if out["clip_boxes"]:
        boxes = np.stack(
            [
                np.clip(boxes[:, 0], 0, fcw),
                np.clip(boxes[:, 1], 0, fch),
                np.clip(boxes[:, 2], 0, fcw),
                np.clip(boxes[:, 3], 0, fch),
            ],
            axis=1,
        ).astype(np.float32)
    if out["min_box_size"] >= 0:
        take = ((boxes[:, 2] - boxes[:, 0]) * sx >= out["min_box_size"]) & (
            (boxes[:, 3] - boxes[:, 1]) * sy >= out["min_box_size"]
        )
        boxes, keep = boxes[take], keep[take]
        lms = None if lms is None else lms[take]
    scale = np.array([fcw, fch, fcw, fch], np.float32)
    factor = np.array([sx, sy, sx, sy], np.float32)
    if out["normalize_boxes"]:
        boxes = boxes / scale
    elif resized:
        boxes = boxes * factor
    if lms is not None:
        miss = _missing(lms)
        if out["normalize_boxes"]:
            lms = lms / scale[:2]
        elif resized:
            lms = lms * factor[:2]
        lms[miss] = -1
        lms = lms.reshape(len(boxes), -1)
    return pixels, boxes.astype(np.float32), lms, keep
