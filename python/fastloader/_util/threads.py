"""How many native threads a kernel may use: as many as torch may (1 inside DataLoader workers)."""

import torch


def native_threads() -> int:
    return max(1, torch.get_num_threads())
