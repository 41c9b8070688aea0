"""Reading written dataset folders back in tests: every file's bytes, an image's pixels through
Pillow (the reference decoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> content)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def pillow_pixels(path: Path) -> torch.Tensor:
    """The image at ``path`` as uint8 ``[3, H, W]`` RGB, decoded by Pillow."""
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
