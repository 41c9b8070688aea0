"""A spawned torch.distributed (gloo) rank for test_policies: gathers its sampler's epoch."""

import numpy as np
import torch
import torch.distributed as dist

from fastloader import ClassAwareSampler, RepeatFactorSampler


def gather_epochs(rank: int, world: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        factors = np.linspace(0.3, 2.7, 997)
        labels = [np.array([i % 7]) for i in range(997)]
        mine = []
        for sampler in (
            RepeatFactorSampler(factors, seed=5, num_replicas=world, rank=rank),
            ClassAwareSampler(labels, seed=5, num_replicas=world, rank=rank),
        ):
            sampler.set_epoch(2)
            local = torch.tensor(list(sampler), dtype=torch.int64)
            sizes = [torch.zeros((), dtype=torch.int64) for _ in range(world)]
            dist.all_gather(sizes, torch.tensor(len(local)))
            gathered = [torch.zeros(int(s), dtype=torch.int64) for s in sizes]
            dist.all_gather(gathered, local)
            mine.append([g.tolist() for g in gathered])
        results[rank] = mine
    finally:
        dist.destroy_process_group()
