"""Reading images: the decoders behind `read_image` (`decode`) and images left in their files for
the collate to read straight into the batch (`deferred`). Imports only `_util` and the compiled
`_C` module; `datasets` and `collate` import from here."""

from .decode import available_decoders, default_jpeg_decoder, read_image
from .deferred import DeferredSamples, ImageFile

__all__ = [
    "read_image",
    "available_decoders",
    "default_jpeg_decoder",
    "DeferredSamples",
    "ImageFile",
]
