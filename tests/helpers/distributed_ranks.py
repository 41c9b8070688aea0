"""The body of each spawned rank in test_distributed.py: a small module, so spawn imports little."""

from __future__ import annotations

import json
import os

import numpy as np
import torch
import torch.distributed as dist

from fastloader import DistributedWeightedBatchSampler, DistributedWeightedSampler, broadcast_seed


def spawned_rank(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        torch.manual_seed(100 + rank)  # every rank's generator differs: only rank 0's draw counts
        seed = broadcast_seed()
        weights = np.random.default_rng(5).random(1001) + 0.05
        result = {"seed": seed}
        for replacement in (True, False):
            sampler = DistributedWeightedSampler(weights, replacement=replacement, seed=seed)
            batches = DistributedWeightedBatchSampler(sampler, 16)
            epochs = []
            for epoch in (0, 1):
                sampler.set_epoch(epoch)
                epochs.append(
                    {"indices": list(sampler), "batches": [i for b in batches for i in b]}
                )
            result[str(replacement)] = {
                "len": len(sampler),
                "total": sampler.total_size,
                "rank": sampler.rank,
                "world": sampler.num_replicas,
                "epochs": epochs,
            }
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(result, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()
