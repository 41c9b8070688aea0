"""DDP with torchrun: every rank samples its own shard of one weighted stream.

Run: torchrun --standalone --nproc_per_node=2 examples/ddp_weighted.py
"""

import argparse
import json
import os

import torch
import torch.distributed as dist
from fastloader import DistributedWeightedSampler, broadcast_seed
from torch.utils.data import DataLoader, Dataset


class ImbalancedIndices(Dataset):
    """Stands in for a detection dataset: returns the index; class 0 is 20x as common as 9."""

    def __init__(self, n: int) -> None:
        self.labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(0))
        self.labels[self.labels > 4] = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> int:
        return index


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--record", help="folder for each rank's indices (used by the tests)")
    args = parser.parse_args()

    dist.init_process_group("gloo")  # "nccl" on GPUs; torchrun sets rank and world size
    dataset = ImbalancedIndices(10_000)
    weights = (1.0 / torch.bincount(dataset.labels).double())[dataset.labels]
    # One fresh seed taken on rank 0 and sent to all ranks: ranks must agree on the stream.
    sampler = DistributedWeightedSampler(weights, seed=broadcast_seed())
    loader = DataLoader(dataset, batch_size=64, sampler=sampler, num_workers=2)

    seen = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new stream each epoch, the same on every rank
        seen.append([i for batch in loader for i in batch.tolist()])  # a training step here

    if args.record:
        with open(os.path.join(args.record, f"rank{dist.get_rank()}.json"), "w") as f:
            json.dump({"world": dist.get_world_size(), "seed": sampler.seed, "epochs": seen}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
