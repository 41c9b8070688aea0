"""fastloader.transforms against the numpy reference (same drawn parameters) and OpenCV."""

from __future__ import annotations

import doctest
import pickle

import numpy as np
import pytest
import torch

import fastloader.transforms as T
from fastloader import _C
from fastloader.transforms import ops as ops_module
from fastloader.transforms import pipeline as pipeline_module
from fastloader.transforms import presets as presets_module

from . import reference

try:
    import cv2
except ImportError:  # the test extra installs opencv-python-headless where a wheel exists
    cv2 = None
needs_cv2 = pytest.mark.skipif(cv2 is None, reason="opencv-python-headless is not installed")


def _image(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """Smooth gradients plus noise: resampling differences stay small but every pixel differs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 3) % 256], -1
    )
    img = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
    if channels == 1:
        return img[..., 0]
    if channels == 4:
        return np.concatenate([img, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], -1)
    return img


def _targets(h: int, w: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed + 100)
    x1 = rng.uniform(0, w * 0.8, n)
    y1 = rng.uniform(0, h * 0.8, n)
    bw = rng.uniform(4, w * 0.3, n)
    bh = rng.uniform(4, h * 0.3, n)
    boxes = np.stack([x1, y1, np.minimum(x1 + bw, w), np.minimum(y1 + bh, h)], 1).astype(np.float32)
    lms = np.stack([rng.uniform(x1, x1 + bw), rng.uniform(y1, y1 + bh)], -1)  # noqa: F841
    pts = np.stack(
        [
            np.stack(
                [rng.uniform(boxes[:, 0], boxes[:, 2]), rng.uniform(boxes[:, 1], boxes[:, 3])], -1
            )
            for _ in range(5)
        ],
        1,
    ).astype(np.float32)
    pts[::3] = -1  # every third face without landmarks
    return boxes, pts.reshape(n, 10), np.arange(n, dtype=np.int64) + 1


def _compare(pipe, image, boxes, lms, index, exact: bool):
    target = {"boxes": boxes, "landmarks": lms, "labels": np.arange(len(boxes))}
    plan = pipe.plan(image.shape[0], image.shape[1], target, index)
    out = pipe.empty_output(plan)
    pipe.render(plan, image, out)
    ref_pixels, ref_boxes, ref_lms, ref_keep = reference.run(pipe, image, boxes, lms, plan)
    np.testing.assert_array_equal(plan.keep, ref_keep)
    np.testing.assert_array_equal(plan.boxes, ref_boxes)
    if lms is not None:
        np.testing.assert_array_equal(plan.landmarks, ref_lms)
    got = out.numpy() if pipe.layout != "HWC" else out.numpy().transpose(2, 0, 1)
    want = ref_pixels.transpose(2, 0, 1)
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        # Within one uint8 level (times 1/std after normalization).
        tolerance = 1.0 / min(pipe.std) + 1e-4
        assert np.abs(got.astype(np.float64) - want).max() <= tolerance
    return plan


EXACT_OPS = [
    [T.SquareCrop(scales=(0.3, 0.45, 0.6, 0.8, 1.0))],
    [T.SquareCrop(), T.Flip(probability=0.5)],
    [T.Expand(max_ratio=3.0, probability=1.0), T.IoUCrop()],
    [T.PadToSquare(), T.Flip(probability=1.0)],
    [T.IoUCrop(), T.Expand(probability=0.5), T.Flip(), T.Resize((40, 56), interpolation="nearest")],
]


@pytest.mark.parametrize("case", range(len(EXACT_OPS)))
def test_exact_ops_match_the_reference_pixel_for_pixel(case):
    image = _image(61, 83, seed=case)
    boxes, lms, _ = _targets(61, 83, 6, seed=case)
    pipe = T.AugmentPipeline(
        EXACT_OPS[case],
        mean=(10, 20, 30),
        std=(2, 4, 8),
        seed=case,
        input_order="RGB",
        output_order="BGR",
        fill=(1, 2, 3),
    )
    successes = 0
    for index in range(12):
        plan = _compare(pipe, image, boxes, lms, index, exact=True)
        successes += any(v.get("success", 0) == 1 for _, _, v in plan.records)
    if case in (0, 1, 2):
        assert successes > 0, "no crop succeeded: the comparison covered only the fallback"


@pytest.mark.parametrize("interp", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("size", [(37, 29), (100, 130)])  # shrink and enlarge
def test_resampling_is_within_one_level_of_the_reference(interp, size):
    image = _image(70, 90, seed=interp)
    pipe = T.AugmentPipeline(
        [T.Flip(), T.Resize(size, interpolation=interp)], seed=3, dtype=torch.uint8
    )
    for index in range(3):
        _compare(pipe, image, *_targets(70, 90, 4)[:2], index, exact=False)


def test_presets_match_the_reference():
    image = _image(120, 160, seed=5)
    boxes, lms, _ = _targets(120, 160, 8, seed=5)
    for pipe in (
        T.retinaface(96, seed=1),
        T.ssd(64, seed=2),
        T.detection(48, 90, size_divisibility=16, seed=3, flip_pairs=T.FACE_5_POINT_PAIRS),
    ):
        for index in range(8):
            _compare(pipe, image, boxes, lms, index, exact=False)


@pytest.mark.parametrize("channels", [1, 4])
def test_gray_and_alpha_images_are_taken_as_three_channels(channels):
    image = _image(50, 60, seed=9, channels=channels)
    pipe = T.AugmentPipeline([T.SquareCrop(), T.Distort(), T.Flip()], dtype=torch.uint8, seed=1)
    boxes, lms, _ = _targets(50, 60, 3)
    for index in range(5):
        _compare(pipe, image, boxes, lms, index, exact=False)


def test_distortion_matches_the_reference_within_one_level():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20000, 3), dtype=np.uint8)
    for bidx in (0, 2):
        for params in (
            dict(
                contrast_first=True,
                brightness_on=True,
                beta=-20.7,
                contrast_on=True,
                alpha=1.31,
                saturation_on=True,
                saturation=0.63,
                hue_on=True,
                hue=-17,
            ),
            dict(
                contrast_first=False,
                brightness_on=False,
                beta=0.0,
                contrast_on=True,
                alpha=0.55,
                saturation_on=False,
                saturation=1.0,
                hue_on=True,
                hue=18,
            ),
            dict(
                contrast_first=True,
                brightness_on=False,
                beta=0.0,
                contrast_on=False,
                alpha=1.0,
                saturation_on=False,
                saturation=1.0,
                hue_on=False,
                hue=0,
            ),
        ):
            got = pixels.copy()
            _C.augment_distort_pixels(got, bidx, params)
            want = reference.distort(pixels[None], params, bidx)[0]
            assert np.abs(got.astype(int) - want).max() <= 1


@needs_cv2
def test_hsv_round_trip_and_distortion_match_opencv():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (1, 50000, 3), dtype=np.uint8)
    hsv = cv2.cvtColor(pixels, cv2.COLOR_BGR2HSV)
    np.testing.assert_array_equal(reference.bgr_to_hsv(pixels, 0), hsv)
    hsv[..., 0] = (hsv[..., 0].astype(int) + 11) % 180
    want = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    diff = np.abs(reference.hsv_to_bgr(hsv, 0).astype(int) - want)
    assert diff.max() <= 1
    if cv2.__version__.startswith("5."):  # 5.x truncates as we do: all but a few pixels equal
        assert (diff != 0).any(-1).mean() < 0.001
    # The native distortion equals the original's cv2 code path within one level.
    params = dict(
        contrast_first=False,
        brightness_on=True,
        beta=12.5,
        contrast_on=True,
        alpha=1.2,
        saturation_on=True,
        saturation=1.4,
        hue_on=True,
        hue=7,
    )
    got = pixels[0].copy()
    _C.augment_distort_pixels(got, 0, params)
    img = reference._convert(pixels, beta=12.5)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    hsv[..., 1] = reference._convert(hsv[..., 1], alpha=1.4)
    hsv[..., 0] = (hsv[..., 0].astype(int) + 7) % 180
    img = reference._convert(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), alpha=1.2)
    diff = np.abs(got.astype(int) - img[0])
    # One level out of the HSV round trip, times the contrast factor applied after it.
    assert diff.max() <= 2
    assert (diff != 0).any(-1).mean() < (0.001 if cv2.__version__.startswith("5.") else 0.5)


@needs_cv2
@pytest.mark.parametrize("interp", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(
    "src,dst", [((97, 131), (64, 64)), ((50, 40), (123, 77)), ((80, 80), (40, 40))]
)
def test_resize_matches_cv2_within_one_level(interp, src, dst):
    image = _image(*src, seed=interp)
    pipe = T.AugmentPipeline(
        [T.Resize(dst, interpolation=interp)], dtype=torch.uint8, layout="HWC", seed=0
    )
    out, _ = pipe(image, None, index=0)
    want = cv2.resize(image, (dst[1], dst[0]), interpolation=interp)
    diff = np.abs(out.numpy().astype(int) - want)
    if interp == 0:
        np.testing.assert_array_equal(out.numpy(), want)
    else:
        assert diff.max() <= 1, f"max difference {diff.max()} levels"


def test_output_dtypes_and_layouts():
    image = _image(40, 50)
    boxes, lms, _ = _targets(40, 50, 3)
    base = T.AugmentPipeline([T.Resize(32)], mean=(100, 110, 120), std=(50, 60, 70), seed=0)
    ref, _ = base(image, None, index=0)
    for dtype in (torch.float16, torch.bfloat16):
        out, _ = T.AugmentPipeline(
            [T.Resize(32)], mean=(100, 110, 120), std=(50, 60, 70), seed=0, dtype=dtype
        )(image, None, index=0)
        assert out.dtype == dtype
        torch.testing.assert_close(out, ref.to(dtype), rtol=0, atol=0)
    hwc, _ = T.AugmentPipeline(
        [T.Resize(32)], mean=(100, 110, 120), std=(50, 60, 70), seed=0, layout="HWC"
    )(image, None, index=0)
    assert hwc.shape == (32, 32, 3)
    torch.testing.assert_close(hwc.permute(2, 0, 1), ref, rtol=0, atol=0)
    cl, _ = T.AugmentPipeline(
        [T.Resize(32)], mean=(100, 110, 120), std=(50, 60, 70), seed=0, layout="channels_last"
    )(image, None, index=0)
    assert cl.shape == (3, 32, 32) and cl.stride() == (1, 96, 3)
    torch.testing.assert_close(cl, ref, rtol=0, atol=0)
    u8, _ = T.AugmentPipeline([T.Resize(32)], seed=0, dtype=torch.uint8)(image, None, index=0)
    assert u8.dtype == torch.uint8
    torch.testing.assert_close(
        (
            (u8.double() - torch.tensor([100, 110, 120.0]).view(3, 1, 1))
            / torch.tensor([50, 60, 70.0]).view(3, 1, 1)
        ).float(),
        ref,
        rtol=0,
        atol=0,
    )


def test_tensor_images_and_strided_outputs():
    image = _image(40, 50)
    pipe = T.retinaface(32, seed=4)
    target = np.array([[5, 5, 30, 30] + [-1] * 10 + [1]], np.float32)
    a, ta = pipe(image, target, index=3)
    b, tb = pipe(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(target), index=3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert isinstance(tb, torch.Tensor) and isinstance(ta, np.ndarray)
    np.testing.assert_array_equal(ta, tb.numpy())
    assert ta.shape == (1, 15) and (ta[0, 4:14] == -1).all() and ta[0, 14] == 1
    # Written into a slot of a bigger batch: the same values, neighbours untouched.
    batch = torch.full((3, 3, 32, 32), 7.0)
    plan = pipe.plan(40, 50, target, 3)
    pipe.render(plan, image, batch[1])
    torch.testing.assert_close(batch[1], a, rtol=0, atol=0)
    assert (batch[0] == 7).all() and (batch[2] == 7).all()


def test_same_key_same_sample_and_pickling():
    image = _image(60, 80)
    boxes, lms, labels = _targets(60, 80, 5)
    target = {"boxes": boxes, "landmarks": lms, "labels": labels}
    pipe = T.retinaface(48, seed=11)
    a, ta = pipe(image, target, index=9)
    clone = pickle.loads(pickle.dumps(pipe))
    b, tb = clone(image, target, index=9)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    for key in ta:
        np.testing.assert_array_equal(ta[key], tb[key])
    pipe.set_epoch(1)
    c, _ = pipe(image, target, index=9)
    assert not torch.equal(a, c)
    assert ta["labels"].tolist() == labels[pipe.plan(60, 80, target, 9, epoch=0).keep].tolist()


def test_input_is_never_changed():
    image = _image(50, 50)
    boxes, lms, labels = _targets(50, 50, 4)
    copies = image.copy(), boxes.copy(), lms.copy()
    T.retinaface(32, seed=0)(image, {"boxes": boxes, "landmarks": lms, "labels": labels}, index=1)
    for before, after in zip(copies, (image, boxes, lms), strict=True):
        np.testing.assert_array_equal(before, after)


def test_no_boxes_falls_back_to_the_padded_whole_image():
    image = _image(30, 60)
    pipe = T.AugmentPipeline(
        [T.SquareCrop()], dtype=torch.uint8, layout="HWC", fill=(9, 9, 9), seed=0
    )
    out, target = pipe(image, {"boxes": np.zeros((0, 4), np.float32)}, index=0)
    assert out.shape == (60, 60, 3)
    np.testing.assert_array_equal(out[:30].numpy(), image)
    assert (out[30:] == 9).all() and target["boxes"].shape == (0, 4)
    plan = pipe.plan(30, 60, None, 0)
    assert plan.records[0][2]["tries"] == 0 and plan.records[0][2]["success"] == 0


def test_degenerate_and_outside_boxes():
    boxes = np.array(
        [[10, 10, 10, 30], [50, 50, 60, 60], [-5, -5, 5, 5], [12, 12, 11, 11]], np.float32
    )
    pipe = T.AugmentPipeline([T.SquareCrop()], seed=0, min_box_size=1.0)
    plan = pipe.plan(40, 40, {"boxes": boxes}, 0)
    # No box of area >= 1 lies inside: the crop falls back; the clip then min size drop the rest.
    assert plan.records[0][2]["success"] == 0
    assert plan.keep.tolist() == [2]
    np.testing.assert_array_equal(plan.boxes, [[0, 0, 5, 5]])


def test_crop_that_never_succeeds_falls_back_after_max_tries():
    boxes = np.array([[0, 0, 40, 30]], np.float32)  # only a whole-image square could hold it
    pipe = T.AugmentPipeline([T.SquareCrop(scales=(0.5,), max_tries=17)], seed=0)
    plan = pipe.plan(30, 40, {"boxes": boxes}, 0)
    assert plan.records[0][2] == {"tries": 17.0, "success": 0.0}
    assert (plan.canvas_height, plan.canvas_width) == (40, 40)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: T.AugmentPipeline([T.Resize(8), T.Flip()]), ValueError, "before the resize"),
        (lambda: T.AugmentPipeline([T.Flip(probability=2)]), ValueError, "probability"),
        (lambda: T.AugmentPipeline([T.SquareCrop(scales=(0,))]), ValueError, "scales"),
        (lambda: T.AugmentPipeline([T.Distort(hue=200)]), ValueError, "hue"),
        (lambda: T.AugmentPipeline([T.Resize()]), ValueError, "exactly one"),
        (
            lambda: T.AugmentPipeline([T.Resize(8, interpolation="sinc")]),
            ValueError,
            "interpolation",
        ),
        (lambda: T.AugmentPipeline([T.Flip()], std=(1, 0, 1)), ValueError, "std"),
        (lambda: T.AugmentPipeline([T.Flip()], fill=(256, 0, 0)), ValueError, "fill"),
        (lambda: T.AugmentPipeline([T.Flip()], dtype=torch.int32), ValueError, "dtype"),
        (lambda: T.AugmentPipeline([T.Flip()], layout="CWH"), ValueError, "layout"),
        (lambda: T.AugmentPipeline([T.Flip()], input_order="RBG"), ValueError, "input_order"),
        (lambda: T.AugmentPipeline(T.Flip()), TypeError, "sequence"),
        (lambda: T.AugmentPipeline(["flip"]), TypeError, r"ops\[0\]"),
    ],
)
def test_bad_specs_raise_naming_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_samples_raise_naming_the_argument():
    pipe = T.retinaface(16, seed=0)
    good = np.zeros((20, 20, 3), np.uint8)
    target = {"boxes": np.array([[1, 1, 5, 5]], np.float32)}
    with pytest.raises(TypeError, match="uint8"):
        pipe(good.astype(np.float32), target, index=0)
    with pytest.raises(ValueError, match="C in"):
        pipe(np.zeros((20, 20, 2), np.uint8), target, index=0)
    with pytest.raises(ValueError, match="boxes"):
        pipe(good, {"boxes": np.zeros((2, 3), np.float32)}, index=0)
    with pytest.raises(ValueError, match="finite"):
        pipe(good, {"boxes": np.array([[0, 0, np.nan, 1]], np.float32)}, index=0)
    with pytest.raises(ValueError, match="landmarks"):
        pipe(good, {"boxes": target["boxes"], "landmarks": np.zeros((2, 10), np.float32)}, index=0)
    with pytest.raises(ValueError, match="'boxes'"):
        pipe(good, {"labels": np.zeros(1)}, index=0)
    with pytest.raises(ValueError, match="index"):
        pipe(good, target, index=-1)
    with pytest.raises(ValueError, match="flip_pairs"):
        T.AugmentPipeline([T.Flip(probability=1.0)], seed=0)(
            good, {"boxes": target["boxes"], "landmarks": np.zeros((1, 6), np.float32)}, index=0
        )
    with pytest.raises(ValueError, match="epoch"):
        pipe.set_epoch(1 << 32)
    plan = pipe.plan(20, 20, target, 0)
    with pytest.raises(ValueError, match="plan was made for"):
        pipe.render(plan, np.zeros((21, 20, 3), np.uint8), pipe.empty_output(plan))
    with pytest.raises(ValueError, match="shape"):
        pipe.render(plan, good, torch.empty(3, 15, 16))
    with pytest.raises(TypeError, match="dtype"):
        pipe.render(plan, good, torch.empty(3, 16, 16, dtype=torch.float64))


def test_module_doctests():
    for module in (T, ops_module, pipeline_module, presets_module):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, f"{module.__name__}: {result.failed} doctest(s) failed"
    assert doctest.testmod(presets_module).attempted >= 3


def test_deferred_images_write_the_same_pixels_into_a_slot(tmp_path):
    from PIL import Image

    from fastloader.io.decode import read_image
    from fastloader.transforms import deferred as deferred_module

    image = _image(50, 70)
    path = tmp_path / "a.jpg"
    Image.fromarray(image).save(path, quality=90)
    boxes, lms, labels = _targets(50, 70, 4)
    target = {"boxes": boxes, "landmarks": lms, "labels": labels}
    pipe = T.retinaface(40, seed=3)
    deferred, moved = pipe.defer(str(path), target, index=5)
    assert deferred.shape == (3, 40, 40) and deferred.dtype == torch.float32
    batch = torch.zeros(3, 3, 40, 40)
    deferred.write_into(batch[2])
    want, want_target = pipe(read_image(str(path)), target, index=5)
    torch.testing.assert_close(batch[2], want, rtol=0, atol=0)
    for key in want_target:
        np.testing.assert_array_equal(moved[key], want_target[key])
    clone = pickle.loads(pickle.dumps(deferred))
    torch.testing.assert_close(clone.materialize(), want, rtol=0, atol=0)
    assert doctest.testmod(deferred_module).failed == 0


def test_reduced_dct_decode_keeps_targets_and_geometry(tmp_path):
    from PIL import Image

    from fastloader.io.decode import read_image

    image = _image(600, 800)
    path = str(tmp_path / "big.jpg")
    Image.fromarray(image).save(path, quality=95)
    boxes, lms, labels = _targets(600, 800, 5)
    target = {"boxes": boxes, "landmarks": lms, "labels": labels}
    pipe = T.AugmentPipeline(
        [T.Flip(), T.Resize(64, interpolation="area")], seed=1, dtype=torch.uint8
    )
    for index in range(4):
        deferred, moved = pipe.defer(path, target, index=index)
        assert deferred.decode_factor == 8  # 800 / 64 and 600 / 64 are both >= 8
        reduced = pipe.empty_output(deferred.plan)
        deferred.write_into(reduced)
        full = pipe.empty_output(deferred.plan)
        deferred.write_into(full, reduced_decode=False)
        want, want_target = pipe(read_image(path), target, index=index)
        torch.testing.assert_close(full, want, rtol=0, atol=0)
        np.testing.assert_array_equal(moved["boxes"], want_target["boxes"])
        # The same picture from an eighth-scale decode: small level differences only.
        diff = (reduced.double() - full.double()).abs()
        assert 0 < diff.mean() < 3.0, diff.mean()
        # ... and aligned: a one-pixel shift of the full decode is further away.
        shifted = (reduced.double() - torch.roll(full, 1, dims=2).double()).abs()
        assert diff.mean() < shifted.mean()
    # A region shrunk by less than 2x is decoded whole.
    small = T.AugmentPipeline([T.Resize((500, 700))], seed=0).defer(path, None, index=0)[0]
    assert small.decode_factor == 1


def test_reduced_source_plans_are_checked():
    pipe = T.AugmentPipeline([T.Flip()], seed=0)
    plan = pipe.plan(40, 40, None, 0)
    with pytest.raises(ValueError, match="ends in a resize"):
        pipe._core.plan_for_reduced_source(plan, 20, 20)
    resized = T.AugmentPipeline([T.Resize(8)], seed=0)
    plan = resized.plan(40, 40, None, 0)
    with pytest.raises(ValueError, match="reduced source"):
        resized._core.plan_for_reduced_source(plan, 50, 20)


def test_widerface_with_the_retinaface_preset_collates_float_batches(tmp_path):
    from torch.utils.data import DataLoader

    from fastloader import DetectionCollate, WIDERFace
    from fastloader.datasets import synthetic_widerface

    synthetic_widerface(str(tmp_path), 6, seed=0, width=160)
    dataset = WIDERFace(str(tmp_path), "train", transform=T.retinaface(64, seed=0))
    batch = next(iter(DataLoader(dataset, batch_size=3, collate_fn=DetectionCollate())))
    assert batch.images.shape == (3, 3, 64, 64) and batch.images.dtype == torch.float32
    image, target = dataset[0]
    assert image.shape == (3, 64, 64) and target.shape[1] == 15
    assert target.dtype == torch.float32 and ((target[:, :4] >= 0) & (target[:, :4] <= 1)).all()
