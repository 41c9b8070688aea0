"""Checkpoint mid-epoch and resume with torchdata's StatefulDataLoader: the run continues exactly.

Run: python examples/resume_weighted.py
"""

import os
import tempfile

import torch
from fastloader import FastWeightedSampler
from torchdata.stateful_dataloader import StatefulDataLoader

WEIGHTS = torch.rand(5_000, generator=torch.Generator().manual_seed(0)) + 0.01


def make_loader() -> tuple[FastWeightedSampler, StatefulDataLoader]:
    sampler = FastWeightedSampler(WEIGHTS, len(WEIGHTS))  # seed=None: the drop-in default
    loader = StatefulDataLoader(torch.arange(len(WEIGHTS)), batch_size=64, sampler=sampler,
                                num_workers=2)
    return sampler, loader


def train(loader, checkpoint_path=None, stop_at=None):
    batches = []
    for step, batch in enumerate(loader):
        batches.append(batch)  # a training step here
        if step == stop_at:
            # The sampler's part of this state is a few integers, whatever the dataset size.
            torch.save({"loader": loader.state_dict()}, checkpoint_path)
            break
    return batches


if __name__ == "__main__":
    path = os.path.join(tempfile.mkdtemp(), "checkpoint.pt")
    torch.manual_seed(1)
    _, loader = make_loader()
    uninterrupted = train(loader)

    torch.manual_seed(1)
    _, loader = make_loader()
    before = train(loader, path, stop_at=29)  # interrupted after 30 batches

    torch.manual_seed(2)  # a new process: another generator state, the checkpoint decides
    _, loader = make_loader()
    loader.load_state_dict(torch.load(path)["loader"])
    after = train(loader)  # batch 31 onwards of the same epoch

    assert torch.equal(torch.cat(before + after), torch.cat(uninterrupted))
    print(f"resumed exactly: {len(before)} + {len(after)} batches = {len(uninterrupted)}")
