"""AugmentPipeline: a detection augmentation op list run natively, keyed by (seed, epoch, index).

A little over the ~400-line guide: the argument checks, the per-sample call and the batch-slot
methods (plan, render, defer) all read the same validated state, so they stay in one class."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .. import _C
from .._util.checks import non_negative_int
from .._util.pool import pooled_bytes
from ._images import image_array
from .deferred import AugmentedImage
from .ops import Op

AugmentPlan = _C.AugmentPlan

_DTYPES = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.uint8: "uint8",
}
_LAYOUTS = ("CHW", "HWC", "channels_last")


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (value, value, value)
    if not isinstance(value, Sequence) or len(value) != 3:
        raise ValueError(f"{name} should be a number or 3 numbers, but got {name}={value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{name} should hold finite numbers, but got {name}={value!r}")
        out.append(float(v))
    return out[0], out[1], out[2]


def _order(value: Any, name: str) -> bool:
    """True for RGB, False for BGR."""
    if value not in ("RGB", "BGR"):
        raise ValueError(f"{name} should be 'RGB' or 'BGR', but got {name}={value!r}")
    return bool(value == "RGB")


def _as_float_rows(value: Any, name: str, width: int | None) -> np.ndarray:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} should hold numbers, but got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.size == 0:
        return array if array.ndim == 2 else array.reshape(0, width or 0)
    if array.ndim == 3 and width is None:  # landmarks as [N, points, 2]
        array = array.reshape(array.shape[0], -1)
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        shape = f"[N, {width}]" if width is not None else "[N, 2 * points]"
        raise ValueError(f"{name} should have shape {shape}, but has shape {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} should be finite")
    return array


def _shared_epoch_cell() -> torch.Tensor:
    """The pipeline's epoch: one int64 in shared memory (see :meth:`AugmentPipeline.set_epoch`)."""
    cell = torch.zeros(1, dtype=torch.int64)
    try:
        return cell.share_memory_()
    except RuntimeError:  # pragma: no cover - no shared memory: each process keeps its own epoch
        return cell


def _like(values: np.ndarray, reference: Any) -> Any:
    return torch.from_numpy(values) if isinstance(reference, torch.Tensor) else values


def _select(value: Any, keep: np.ndarray) -> Any:
    if isinstance(value, torch.Tensor):
        return value[torch.from_numpy(keep)]
    return np.asarray(value)[keep]


class AugmentPipeline:
    """A detection augmentation pipeline run natively, without the GIL, one pass per image.

    The ops run in the order given, each with its probability; the geometric ones (crops, expand,
    pads, flip, resize) fold into one mapping sampled straight into the output, the photometric
    one runs once per source pixel of the region kept. Every random choice comes from a Philox
    stream keyed by ``(seed, epoch, index)``: a sample is augmented identically whatever
    ``num_workers`` is, in whichever worker, and after a resume. Op ``i`` draws its own words
    (block ``(index, epoch << 32 | i << 16 | j // 2)`` under key ``mix64(seed)``), so changing one
    op's parameters never changes another op's draws.

    Targets: boxes ``[N, 4]`` (x1, y1, x2, y2 pixels), optional landmarks ``[N, 2 * points]`` with
    ``(-1, -1)`` for a missing point (kept missing), and any other per-box field (labels...)
    selected with the boxes kept. A target is a dict (``boxes``, ``labels``, ``landmarks``, other
    keys), a ``[N, 4 + 2 * points + 1]`` array (boxes, landmarks, label: Pytorch_Retinaface's
    layout, returned in the same layout) or None.

    Images: HWC uint8 numpy arrays or CHW uint8 CPU tensors with 1, 3 or 4 channels (gray is
    replicated to 3, alpha dropped); any strides. The output is a torch tensor.

    Bad input: a non-uint8 image is a TypeError; boxes outside the image are kept as given until
    a crop or the final clip (``clip_boxes``) moves them; boxes with non-positive size never make
    a crop acceptable and are dropped only by ``min_box_size``; images smaller than the output
    are enlarged by the resize; a crop that never succeeds falls back as its op documents.

    Args:
        ops: the ops, applied in order (see :mod:`fastloader.transforms.ops`).
        mean: subtracted from each output channel (output order).
        std: divides each output channel after the mean (output order).
        fill: uint8 colour of pads and expand canvases (output order); default the mean rounded.
        dtype: output dtype: torch.float32, float16, bfloat16 or uint8 (uint8 skips mean / std).
        layout: "CHW" ([3, H, W]), "HWC" ([H, W, 3]) or "channels_last" ([3, H, W] tensor with
            HWC memory).
        input_order: channel order of the images given ("RGB" or "BGR").
        output_order: channel order written.
        clip_boxes: clip boxes to the image at the end.
        min_box_size: drop boxes narrower or lower than this (output pixels); None keeps all.
        normalize_boxes: divide boxes and landmarks by the image size (RetinaFace's targets).
        seed: the stream's seed; None draws one from torch's default generator now.

    Example:
        >>> import numpy as np
        >>> from fastloader.transforms import AugmentPipeline, Flip, Resize
        >>> pipe = AugmentPipeline([Flip(probability=1.0), Resize(32)], seed=0)
        >>> image = np.zeros((48, 64, 3), np.uint8)
        >>> out, target = pipe(image, {"boxes": np.array([[0, 0, 16, 16]], np.float32)}, index=0)
        >>> tuple(out.shape), target["boxes"].tolist()
        ((3, 32, 32), [[24.0, 0.0, 32.0, 10.666666984558105]])
    """

    def __init__(
        self,
        ops: Sequence[Op],
        *,
        mean: Any = (0.0, 0.0, 0.0),
        std: Any = (1.0, 1.0, 1.0),
        fill: Any = None,
        dtype: torch.dtype = torch.float32,
        layout: str = "CHW",
        input_order: str = "RGB",
        output_order: str = "RGB",
        clip_boxes: bool = True,
        min_box_size: float | None = None,
        normalize_boxes: bool = False,
        seed: int | None = None,
    ) -> None:
        if isinstance(ops, Op) or not isinstance(ops, Sequence):
            raise TypeError("ops should be a sequence of fastloader.transforms ops")
        for i, op in enumerate(ops):
            if not isinstance(op, Op):
                raise TypeError(
                    f"ops[{i}] should be a fastloader.transforms op, but got {type(op).__name__}"
                )
        if dtype not in _DTYPES:
            raise ValueError(f"dtype should be one of {list(_DTYPES)}, but got dtype={dtype!r}")
        if layout not in _LAYOUTS:
            raise ValueError(f"layout should be one of {_LAYOUTS}, but got layout={layout!r}")
        mean_t = _triple(mean, "mean")
        std_t = _triple(std, "std")
        if any(s == 0 for s in std_t):
            raise ValueError(f"std should be non-zero, but got std={std!r}")
        if fill is None:
            fill_t = tuple(int(min(max(round(m), 0), 255)) for m in mean_t)
        else:
            fill_f = _triple(fill, "fill")
            if any(not 0 <= f <= 255 or f != int(f) for f in fill_f):
                raise ValueError(f"fill should be integers in [0, 255], but got fill={fill!r}")
            fill_t = tuple(int(f) for f in fill_f)
        if min_box_size is not None:
            if (
                isinstance(min_box_size, bool)
                or not isinstance(min_box_size, numbers.Real)
                or not (math.isfinite(min_box_size) and min_box_size >= 0)
            ):
                raise ValueError(
                    f"min_box_size should be None or a number >= 0, but got {min_box_size!r}"
                )
        if seed is None:
            seed = int(torch.randint(0, 1 << 62, ()).item())
        self._seed = non_negative_int(seed, "seed", 1 << 64, "2**64")
        self._epoch_cell = _shared_epoch_cell()
        self.ops: tuple[Op, ...] = tuple(ops)
        self.dtype = dtype
        self.layout = layout
        self.mean, self.std, self.fill = mean_t, std_t, fill_t
        self._output = {
            "input_rgb": _order(input_order, "input_order"),
            "output_rgb": _order(output_order, "output_order"),
            "dtype": _DTYPES[dtype],
            "mean": mean_t,
            "std": std_t,
            "fill": fill_t,
            "clip_boxes": bool(clip_boxes),
            "min_box_size": -1.0 if min_box_size is None else float(min_box_size),
            "normalize_boxes": bool(normalize_boxes),
        }
        self._core = _C.AugmentCore([op.spec() for op in self.ops], self._output)

    # Pickled by its specs (the native object is rebuilt in each DataLoader worker).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_core"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._core = _C.AugmentCore([op.spec() for op in self.ops], self._output)

    def __repr__(self) -> str:
        ops = ", ".join(repr(op) for op in self.ops)
        return f"AugmentPipeline([{ops}], seed={self._seed}, epoch={self.epoch})"

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def epoch(self) -> int:
        return int(self._epoch_cell[0])

    def set_epoch(self, epoch: int) -> None:
        """Key the following samples by this epoch (call it where you call the sampler's, before
        ``iter(loader)`` starts the epoch).

        The epoch lives in a one-element shared-memory int64 tensor that DataLoader workers'
        copies of the pipeline share (forked workers inherit the mapping, spawned ones receive
        it through torch's shared-memory pickling), so with ``persistent_workers=True`` the
        workers see the new epoch too. Batches a worker fetched before the call (the loader
        prefetches when ``iter(loader)`` runs) keep the epoch they were planned with: set it
        first. A plainly pickled or deep-copied pipeline gets its own cell."""
        self._epoch_cell[0] = non_negative_int(epoch, "epoch", 1 << 32, "2**32")

    def _index(self, index: int | None) -> int:
        if index is None:
            # No dataset index: key the sample from torch's generator, as stock random
            # transforms are (reproducible only as far as torch's worker seeding is).
            return int(torch.randint(0, 1 << 62, ()).item())
        return non_negative_int(index, "index", 1 << 64, "2**64")

    def plan(
        self,
        height: int,
        width: int,
        target: Any = None,
        index: int | None = None,
        epoch: int | None = None,
    ) -> Any:
        """Draw the parameters of one sample and move its boxes (the image is not needed).

        Returns an :class:`AugmentPlan` whose ``out_height`` / ``out_width`` size the output and
        whose ``records`` hold every drawn parameter; :meth:`render` writes the image of it and
        :meth:`targets` builds the moved target."""
        boxes, landmarks = self._boxes(target)
        ep = self.epoch if epoch is None else non_negative_int(epoch, "epoch", 1 << 32, "2**32")
        return self._core.plan(
            non_negative_int(height, "height"),
            non_negative_int(width, "width"),
            boxes,
            landmarks,
            self._seed,
            ep,
            self._index(index),
        )

    def output_shape(self, plan: Any) -> tuple[int, int, int]:
        """The shape of the image tensor this pipeline returns for `plan`."""
        if self.layout == "HWC":
            return (plan.out_height, plan.out_width, 3)
        return (3, plan.out_height, plan.out_width)

    def render(self, plan: Any, image: Any, out: Any) -> None:
        """Write the augmented image of `plan` into `out`: a tensor or ndarray of this pipeline's
        dtype shaped like :meth:`output_shape` (any strides: a batch slot, a ring slot)."""
        array = image_array(image)
        if isinstance(out, torch.Tensor):
            if out.dtype != self.dtype:
                raise TypeError(f"out should have dtype {self.dtype}, but has {out.dtype}")
            if out.device.type != "cpu":
                raise ValueError(f"out should be on the CPU, but is on {out.device}")
            view = out.view(torch.int16).numpy() if out.dtype == torch.bfloat16 else out.numpy()
        elif isinstance(out, np.ndarray):
            view = out
        else:
            raise TypeError(
                f"out should be a tensor or a numpy array, but got {type(out).__name__}"
            )
        if tuple(view.shape) != self.output_shape(plan):
            raise ValueError(
                f"out should have shape {self.output_shape(plan)}, but has {tuple(view.shape)}"
            )
        self._core.render(plan, array, view, self.layout != "HWC")

    def empty_output(self, plan: Any) -> torch.Tensor:
        """A new uninitialised output tensor for `plan` in this pipeline's dtype and layout.

        Its memory comes from fastloader's recycling pool (returned when the tensor is freed), so
        a training loop reuses pages already faulted in instead of a fresh 5 MB each sample."""
        h, w = plan.out_height, plan.out_width
        itemsize = torch.tensor([], dtype=self.dtype).element_size()
        block = torch.from_numpy(pooled_bytes(3 * h * w * itemsize))
        if self.layout == "CHW":
            return block.view(self.dtype).view(3, h, w)
        hwc = block.view(self.dtype).view(h, w, 3)
        return hwc if self.layout == "HWC" else hwc.permute(2, 0, 1)

    def targets(self, plan: Any, target: Any) -> Any:
        """The target moved by `plan` (boxes, landmarks) with its per-box fields selected."""
        if target is None:
            return None
        keep = plan.keep
        if isinstance(target, Mapping):
            n = len(self._boxes(target)[0])
            out: dict[str, Any] = {}
            for key, value in target.items():
                if key == "boxes":
                    out[key] = _like(plan.boxes, value)
                elif key == "landmarks" and value is not None and np.size(value) > 0:
                    moved = plan.landmarks
                    if np.ndim(value) == 3:
                        moved = moved.reshape(len(keep), -1, 2)
                    out[key] = _like(moved, value)
                elif (
                    isinstance(value, (np.ndarray, torch.Tensor))
                    and value.ndim >= 1
                    and len(value) == n
                ):
                    out[key] = _select(value, keep)
                else:
                    out[key] = value
            return out
        rows = _as_float_rows(target, "target", None)
        labels = rows[keep, -1:] if rows.shape[1] > 4 else np.zeros((len(keep), 0), np.float32)
        parts = [plan.boxes]
        if rows.shape[1] > 5:
            parts.append(plan.landmarks)
        parts.append(labels)
        return _like(np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32), target)

    def _boxes(self, target: Any) -> tuple[np.ndarray, np.ndarray | None]:
        if target is None:
            return np.zeros((0, 4), np.float32), None
        if isinstance(target, Mapping):
            if "boxes" not in target:
                raise ValueError("target should have a 'boxes' entry ([N, 4] x1, y1, x2, y2)")
            boxes = _as_float_rows(target["boxes"], "target['boxes']", 4)
            landmarks = target.get("landmarks")
            if landmarks is None or np.size(landmarks) == 0:
                return boxes, None
            lm = _as_float_rows(landmarks, "target['landmarks']", None)
            if lm.shape[0] != boxes.shape[0] or lm.shape[1] % 2:
                raise ValueError(
                    "target['landmarks'] should have shape [N, 2 * points] with "
                    f"N = {boxes.shape[0]}, "
                    f"but has shape {tuple(lm.shape)}"
                )
            return boxes, lm
        rows = _as_float_rows(target, "target", None)
        if rows.size and (rows.shape[1] < 4 or (rows.shape[1] > 5 and (rows.shape[1] - 5) % 2)):
            raise ValueError(
                "target should be [N, 4 + 2 * points + 1] (boxes, landmarks, label), "
                f"but has shape {tuple(rows.shape)}"
            )
        if rows.shape[0] == 0:
            return np.zeros((0, 4), np.float32), None
        boxes = np.ascontiguousarray(rows[:, :4])
        if rows.shape[1] <= 5:
            return boxes, None
        return boxes, np.ascontiguousarray(rows[:, 4:-1])

    def defer(
        self,
        source: Any,
        target: Any = None,
        index: int | None = None,
        epoch: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> tuple[Any, Any]:
        """Plan a sample now and write its image later: returns an
        :class:`~fastloader.transforms.AugmentedImage` (``shape``, ``dtype``, ``write_into(out)``,
        ``read()``) and the moved target. `source` is an image file path or an image array /
        tensor; a path's ``(height, width)`` is read from its header unless ``size`` gives it,
        and the pixels are decoded by ``write_into``."""
        ep = self.epoch if epoch is None else non_negative_int(epoch, "epoch", 1 << 32, "2**32")
        deferred = AugmentedImage(self, source, target, self._index(index), ep, size)
        return deferred, deferred.targets()

    def __call__(
        self, image: Any, target: Any = None, index: int | None = None
    ) -> tuple[torch.Tensor, Any]:
        """Augment one sample: returns the output image tensor and the moved target."""
        array = image_array(image)
        plan = self.plan(array.shape[0], array.shape[1], target, index)
        out = self.empty_output(plan)
        self.render(plan, array, out)
        return out, self.targets(plan, target)
