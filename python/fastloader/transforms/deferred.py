"""AugmentedImage: a sample's image planned now (targets moved, output size known) and decoded +
augmented later, straight into the buffer a collate gives it (a batch or ring slot)."""

from __future__ import annotations

import os
from typing import Any

import torch

from ..io.decode import image_size, max_image_pixels, read_image
from ..io.jpeg_region import decode_jpeg_region, region_decoder
from ._images import image_array

_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")

try:
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    _simplejpeg = None


class AugmentedImage:
    """One sample's augmented image, written when a collate has its output slot.

    Made by :meth:`AugmentPipeline.defer`: the plan (every random draw, the moved targets, the
    output shape) is made at once from the image's header; :meth:`write_into` decodes the file
    (or takes the array) and renders it into any buffer of :attr:`shape` and :attr:`dtype`, so
    the image is written once, into its batch or ring slot. Pickles by its arguments (the plan
    is made again, identically).

    Args:
        pipeline: the pipeline that planned it.
        source: an image file path, or an HWC uint8 array / CHW uint8 tensor.
        target: the sample's target as the pipeline takes it.
        index: the sample's dataset index (its key with the pipeline's seed and epoch).
        epoch: the epoch it was planned for.

    Example:
        >>> import numpy as np, torch
        >>> from fastloader.transforms import AugmentPipeline, Resize
        >>> pipe = AugmentPipeline([Resize(8)], seed=0)
        >>> image, target = pipe.defer(np.zeros((16, 16, 3), np.uint8), None, index=0)
        >>> batch = torch.empty(2, *image.shape)
        >>> image.write_into(batch[1])
        >>> image.shape, bool((batch[1] == 0).all())
        ((3, 8, 8), True)
    """

    __slots__ = ("pipeline", "source", "target", "index", "epoch", "height", "width", "plan")

    def __init__(
        self,
        pipeline: Any,  # an AugmentPipeline: pipeline.py imports this module, not the reverse
        source: Any,
        target: Any,
        index: int,
        epoch: int,
        size: tuple[int, int] | None = None,
    ) -> None:
        if isinstance(source, (str, os.PathLike)):
            source = os.fspath(source)
            if size is None:
                size = image_size(source)  # a ValueError naming the file when unreadable
            self.height, self.width = int(size[0]), int(size[1])
        else:
            array = image_array(source, "source")
            self.height, self.width = int(array.shape[0]), int(array.shape[1])
        self.pipeline, self.source, self.target = pipeline, source, target
        self.index, self.epoch = index, epoch
        self.plan = pipeline.plan(self.height, self.width, target, index, epoch)

    def __getstate__(self) -> tuple[Any, ...]:
        size = (self.height, self.width)
        return (self.pipeline, self.source, self.target, self.index, self.epoch, size)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        AugmentedImage.__init__(self, *state)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The output image's shape (the pipeline's layout)."""
        return self.pipeline.output_shape(self.plan)

    @property
    def dtype(self) -> torch.dtype:
        return self.pipeline.dtype

    def targets(self) -> Any:
        """The target moved by the plan (what :meth:`AugmentPipeline.defer` returned)."""
        return self.pipeline.targets(self.plan, self.target)

    @property
    def decode_factor(self) -> int:
        """The JPEG scale :meth:`write_into` decodes a path at: 8, 4 or 2 when the resize shrinks
        the kept region by at least that much (libjpeg-turbo's reduced DCT), else 1."""
        if not (isinstance(self.source, str) and self.plan.resized and _simplejpeg is not None):
            return 1
        if os.path.splitext(self.source)[1].lower() not in _JPEG_SUFFIXES:
            return 1
        plan = self.plan
        shrink = min(
            plan.canvas_width / plan.content_width, plan.canvas_height / plan.content_height
        )
        return next((f for f in (8, 4, 2) if shrink >= f), 1)

    def write_into(self, out: Any, reduced_decode: bool = True) -> None:
        """Decode (for a path) and write the augmented image into `out`; see :meth:`_write_into`.

        Raises:
            ValueError: the file cannot be decoded or does not match its header (named)."""
        if not isinstance(self.source, str):
            self._write_into(out, reduced_decode)
            return
        try:
            self._write_into(out, reduced_decode)
        except (TypeError, IndexError):
            raise  # a wrong `out`: the caller's error, not the file's
        except ValueError as exc:
            if str(exc).startswith(self.source):
                raise
            raise ValueError(f"{self.source}: cannot decode the image: {exc}") from None
        except Exception as exc:  # the decoder's own error types: one message naming the file
            raise ValueError(
                f"{self.source}: cannot decode the image: {type(exc).__name__}: {exc}"
            ) from None

    def _write_into(self, out: Any, reduced_decode: bool = True) -> None:
        """Decode (for a path) and write the augmented image into `out` (a tensor or ndarray of
        :attr:`shape` and :attr:`dtype`, any strides).

        With ``reduced_decode`` a JPEG whose kept region the resize shrinks by 2x or more is
        decoded at 1/2, 1/4 or 1/8 scale (:attr:`decode_factor`) and the plan re-expressed for
        it: far less decoding, the same targets, pixels within a fraction of a source pixel of
        the full decode's geometry (not bit-equal to it). Otherwise a JPEG whose plan reads
        only part of it (a crop) is decoded only there (:meth:`_write_region`): bit-equal to
        the full decode's output."""
        input_rgb = self.pipeline._output["input_rgb"]
        factor = self.decode_factor if reduced_decode else 1
        if factor > 1:
            assert _simplejpeg is not None and isinstance(self.source, str)
            with open(self.source, "rb") as f:
                data = f.read()
            # The smallest scale (M / 8) at least the size over `factor`: 1 / factor itself.
            image = _simplejpeg.decode_jpeg(
                data,
                colorspace="RGB" if input_rgb else "BGR",
                min_height=-(-self.height // factor),
                min_width=-(-self.width // factor),
            )
            plan = self.pipeline._core.plan_for_reduced_source(
                self.plan, int(image.shape[0]), int(image.shape[1])
            )
            self.pipeline.render(plan, image, out)
            return
        if reduced_decode and self._write_region(out, input_rgb):
            return
        if isinstance(self.source, str):
            image = read_image(self.source)
            if not input_rgb:  # read_image gives RGB; the pipeline was told BGR
                image = image.flip(0).contiguous()
            if tuple(image.shape[1:]) != (self.height, self.width):
                raise ValueError(
                    f"{self.source}: decoded {tuple(image.shape[1:])}, "
                    f"its header said {(self.height, self.width)}"
                )
        else:
            image = self.source
        self.pipeline.render(self.plan, image, out)

    def _write_region(self, out: Any, input_rgb: bool) -> bool:
        """Decode only the rectangle the plan reads (libjpeg-turbo's skip and crop: see
        :mod:`fastloader.io.jpeg_region`) and render from it; False, having done nothing, when
        that does not apply (not a JPEG path, no usable libjpeg-turbo, a CMYK file, or the plan
        reading the whole image). The pixels equal the full decode's, so is the output."""
        if not isinstance(self.source, str):
            return False
        if os.path.splitext(self.source)[1].lower() not in _JPEG_SUFFIXES:
            return False
        top, left, height, width = self.plan.source_rect
        if height == 0 or (height == self.height and width == self.width):
            return False
        decoder = region_decoder()
        if decoder is None:
            return False
        limit = max_image_pixels()
        if limit is not None and self.height * self.width > limit:
            return False  # read_image refuses it with the full message
        with open(self.source, "rb") as f:
            data = f.read()
        height_now, width_now, _, decodable = decoder.header(data)
        if (height_now, width_now) != (self.height, self.width):
            raise ValueError(
                f"{self.source}: decoded {(height_now, width_now)}, "
                f"its header said {(self.height, self.width)}"
            )
        if not decodable:
            return False  # CMYK / YCCK: the whole-image decoders convert those
        pixels, first = decode_jpeg_region(data, top, left, height, width, bgr=not input_rgb)
        plan = self.pipeline._core.plan_for_source_rect(
            self.plan, top, first, height, int(pixels.shape[1])
        )
        self.pipeline.render(plan, pixels, out)
        return True

    def materialize(self) -> torch.Tensor:
        """The augmented image as a new tensor (what calling the pipeline returns)."""
        out = self.pipeline.empty_output(self.plan)
        self.write_into(out)
        return out

    def read(self) -> torch.Tensor:
        """The augmented image as a new tensor (:class:`~fastloader.io.deferred.DeferredImage`'s
        read, for collate functions that take ordinary samples): :meth:`materialize`."""
        return self.materialize()
