"""Lightning DDP: DistributedWeightedSampler is a DistributedSampler, so Lightning keeps it.

Run: python examples/lightning_weighted.py [--batch-sampler]
With --batch-sampler, batches come from DistributedWeightedBatchSampler: then pass
Trainer(use_distributed_sampler=False); Lightning still calls set_epoch on batch_sampler.sampler.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os

import lightning as L
import torch
from fastloader import DistributedWeightedBatchSampler, DistributedWeightedSampler
from torch.utils.data import DataLoader

WEIGHTS = torch.linspace(0.1, 1.0, 600, dtype=torch.float64)


def _destroy_process_group() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class TinyModel(L.LightningModule):
    def __init__(self, batch_sampler: bool, record: str | None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.batch_sampler, self.record, self.seen = batch_sampler, record, []

    def setup(self, stage: str) -> None:
        # Lightning destroys only NCCL process groups at exit; a gloo one left alive can abort a
        # rank as it exits ("terminate called without an active exception", pytorch#65513).
        if torch.distributed.is_initialized():
            atexit.register(_destroy_process_group)

    def train_dataloader(self) -> DataLoader:
        indices = torch.arange(len(WEIGHTS))  # the dataset: sample i is i
        # Rank and world size come from the process group Lightning started.
        sampler = DistributedWeightedSampler(WEIGHTS, seed=0)
        if self.batch_sampler:
            return DataLoader(indices, batch_sampler=DistributedWeightedBatchSampler(sampler, 32))
        return DataLoader(indices, batch_size=32, sampler=sampler)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.extend(batch.tolist())
        return self.layer(batch.float()[:, None] / len(WEIGHTS)).pow(2).mean()

    def on_train_epoch_end(self) -> None:
        loader = self.trainer.train_dataloader
        sampler = loader.batch_sampler.sampler if self.batch_sampler else loader.sampler
        if self.record:
            name = f"rank{self.global_rank}_epoch{self.current_epoch}.json"
            with open(os.path.join(self.record, name), "w") as f:
                json.dump({"sampler": type(sampler).__name__, "sampler_epoch": sampler.epoch,
                           "seen": self.seen}, f)
        self.seen = []

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-sampler", action="store_true")
    parser.add_argument("--record", help="folder for each rank's indices (used by the tests)")
    args = parser.parse_args()
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2,
        use_distributed_sampler=not args.batch_sampler,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(TinyModel(args.batch_sampler, args.record))


if __name__ == "__main__":
    main()
