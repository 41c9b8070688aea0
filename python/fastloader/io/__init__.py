"""Reading images: the decoders behind `read_image` (`decode`) and images left in their files for
the collate to read straight into the batch (`deferred`). Imports only `_util` and the compiled
`_C` module; `datasets` and `collate` import from here."""

from .decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    available_decoders,
    default_jpeg_decoder,
    image_size,
    max_image_pixels,
    read_image,
)
from .deferred import DeferredSamples, ImageFile

__all__ = [
    "read_image",
    "image_size",
    "max_image_pixels",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "available_decoders",
    "default_jpeg_decoder",
    "DeferredSamples",
    "ImageFile",
]
