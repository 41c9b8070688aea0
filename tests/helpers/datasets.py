"""Module-level datasets so DataLoader workers started with spawn can unpickle them."""

from torch.utils.data import Dataset


class IndexDataset(Dataset):
    """Returns its index: a DataLoader over it shows exactly which indices the sampler gave."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index
