"""How many native threads a kernel may use: whatever torch is allowed (1 inside DataLoader workers)."""

import torch


def native_threads() -> int:
    return max(1, torch.get_num_threads())
