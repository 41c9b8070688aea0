"""Issue 21: a shared-ring slot's CUDA registration ends exactly when its mapping does.

Before the fix, slots were page-locked with cudaHostRegister and unmapped without
cudaHostUnregister when the ring was freed; CUDA then took whatever was mapped next at those
addresses for pinned memory, and every loader run after a shared-ring loader in the same process
failed its first non-blocking copy with "CUDA error: invalid argument".
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from fastloader import DetectionCollate, FastWeightedSampler, fast_detection_collate
from fastloader.collate import ring as ring_module

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def samples(count: int, side: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (torch.full((3, side, side), i, dtype=torch.uint8), torch.full((1 + i % 3, 15), float(i)))
        for i in range(count)
    ]


class RecordingCudart:
    """Stands in for torch.cuda.cudart() on a CPU host: records each call and whether the
    pages were still mapped when they were unregistered."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bool]] = []
        self.mmaps: dict[int, Any] = {}  # address -> the mmap object (does not keep a mapping)

    def cudaHostRegister(self, address: int, nbytes: int, flags: int) -> int:  # noqa: N802
        self.calls.append(("register", address, True))
        return 0

    def cudaHostUnregister(self, address: int) -> int:  # noqa: N802
        mapped = address in self.mmaps and not self.mmaps[address].closed
        self.calls.append(("unregister", address, mapped))
        return 0


def test_registration_ends_with_the_last_view_and_before_the_unmap(monkeypatch):
    collate = DetectionCollate(shared_ring=True)
    ring = collate.ring
    assert ring is not None
    cudart = RecordingCudart()
    monkeypatch.setattr(torch.cuda, "cudart", lambda: cudart)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ring._state = None  # open the ring again in this process so that it pins (CUDA "present")
    batch = collate(samples(4))
    assert len(ring._maps) == 1
    mapping = next(iter(ring._maps.values()))[2]
    assert mapping.pinned
    assert ring.stats()["pinned_slots"] == 1 and ring.stats()["pin_refused"] == 0
    alive = weakref.ref(mapping)
    address = mapping.__array_interface__["data"][0]
    cudart.mmaps[address] = mapping._mmap
    assert [c[0] for c in cudart.calls] == ["register"]
    del mapping

    # The ring goes (as when a DataLoader and its collate are freed); the batch still views the
    # slot, so the pages stay mapped and registered.
    del collate, ring
    gc.collect()
    assert alive() is not None and [c[0] for c in cudart.calls] == ["register"]
    assert torch.equal(batch.images[2], torch.full((3, 64, 64), 2, dtype=torch.uint8))

    # The last view goes: unregistered once, at the slot's address, while still mapped.
    del batch
    gc.collect()
    assert alive() is None
    assert cudart.calls[1:] == [("unregister", address, True)]


def test_refused_registration_is_counted_and_the_slot_stays_usable(monkeypatch):
    refused = []

    def refuse(memory):
        refused.append(memory.nbytes)
        return False

    monkeypatch.setattr(ring_module, "_register", refuse)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    collate = DetectionCollate(shared_ring=True)
    batch = collate(samples(4))
    assert refused and collate.ring.stats()["pin_refused"] == 1
    assert collate.ring.stats()["pinned_slots"] == 0
    assert torch.equal(batch.images[3], torch.full((3, 64, 64), 3, dtype=torch.uint8))


def _copy_every_batch(loader: DataLoader) -> int:
    checked = 0
    for images, targets in loader:
        on_gpu = images.cuda(non_blocking=True)  # as user code does it
        torch.cuda.synchronize()
        index = torch.stack([t[0, 0] for t in targets]).long()
        want = index.view(-1, 1, 1, 1).expand(-1, 3, 64, 64).to(torch.uint8)
        assert torch.equal(on_gpu.cpu(), want)
        checked += 1
    return checked


@pytest.mark.gpu
@pytest.mark.multiprocess
@needs_cuda
def test_cuda_a_loader_after_a_freed_ring_loader_copies_correctly():
    data = samples(48)

    def loader(collate):
        sampler = FastWeightedSampler(torch.ones(len(data)), len(data), seed=0)
        return DataLoader(
            data, batch_size=8, sampler=sampler, collate_fn=collate, num_workers=4, pin_memory=True
        )

    ring_loader = loader(DetectionCollate(shared_ring=True))
    assert _copy_every_batch(ring_loader) == 6
    assert ring_loader.collate_fn.ring.stats()["pinned_slots"] > 0
    del ring_loader
    gc.collect()
    # Before the fix: "CUDA error: invalid argument" at the first .cuda(non_blocking=True).
    assert _copy_every_batch(loader(fast_detection_collate)) == 6
    assert _copy_every_batch(loader(DetectionCollate(shared_ring=True))) == 6
