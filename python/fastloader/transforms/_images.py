"""The image inputs the augmentation takes: HWC uint8 arrays or CHW (or HW) CPU tensors, as one
numpy HWC view, checked."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def image_array(image: Any, name: str = "image") -> np.ndarray:
    """A uint8 [H, W] or [H, W, C] numpy view of an HWC ndarray or a CHW (or HW) CPU tensor."""
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise TypeError(f"{name} should be a uint8 tensor, but got dtype {image.dtype}")
        if image.device.type != "cpu":
            raise ValueError(f"{name} should be on the CPU, but is on {image.device}")
        if image.dim() == 3:
            return image.detach().numpy().transpose(1, 2, 0)
        if image.dim() == 2:
            return image.detach().numpy()
        raise ValueError(
            f"{name} should be a [C, H, W] or [H, W] tensor, but has shape {tuple(image.shape)}"
        )
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)  # PIL images and other array-likes
        except Exception as error:  # pragma: no cover - depends on the object
            raise TypeError(
                f"{name} should be a numpy array or a tensor, got {type(image).__name__}"
            ) from error
    if image.dtype != np.uint8:
        raise TypeError(f"{name} should be a uint8 array, but got dtype {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(
            f"{name} should be [H, W] or [H, W, C] with C in (1, 3, 4), but has shape {image.shape}"
        )
    return image
