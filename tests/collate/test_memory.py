"""Where a batch lives: the recycling pool, torch's allocator for small batches, shared memory in
DataLoader workers, pinned memory with CUDA."""

from __future__ import annotations

import gc

import pytest
import torch
from torch.utils.data import DataLoader

import fastloader
from fastloader import DetectionCollate, fast_detection_collate
from tests.helpers.collate import (
    RaggedSamples,
    as_tensor,
    assert_same,
    collate_reporting_shared,
    reference_images,
)

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: pinned-memory path"
)


def test_main_process_outputs_come_from_the_recycling_pool():
    if torch.cuda.is_available():
        pytest.skip("with CUDA the main process allocates pinned memory instead")
    fastloader.clear_buffer_pool()
    # 24 MiB of images: small batches come from torch's allocator (test below)
    batch = [(torch.zeros(3, 1024, 512), torch.rand(2, 5)) for _ in range(4)]
    first = fast_detection_collate(batch)
    address = first.images.data_ptr()
    keep = first.per_image("image")[2]  # one view keeps the whole block alive
    del first
    gc.collect()
    second = fast_detection_collate(batch)
    assert second.images.data_ptr() != address
    del second, keep
    gc.collect()
    hits = fastloader.buffer_pool_stats()["hits"]
    third = fast_detection_collate(batch)
    assert fastloader.buffer_pool_stats()["hits"] > hits
    assert third.images.data_ptr() == address  # the most recently returned block comes back
    assert not third.images.is_shared() and not third.images.is_pinned()


def test_pool_reuses_the_block_once_the_last_view_is_freed():
    fastloader.clear_buffer_pool()
    collate = DetectionCollate(memory="pooled")
    batch = [(torch.ones(3, 1024, 2048), torch.zeros(0, 5))]  # 24 MiB: pooled
    out = collate(batch)
    address = out.images.data_ptr()
    live = fastloader.buffer_pool_stats()["live_blocks"]
    del out
    gc.collect()
    assert fastloader.buffer_pool_stats()["live_blocks"] < live
    again = collate(batch)
    assert again.images.data_ptr() == address
    assert torch.equal(again.images, torch.ones(1, 3, 1024, 2048))


def test_small_pooled_batches_come_from_torchs_allocator_and_equal_the_planned_batch():
    # Below POOL_MIN_BYTES the pool's per-batch cost outweighs what it saves (malloc reuses
    # small blocks itself): same-size pairs are stacked as the stock collate stacks them.
    from fastloader.collate._plan import POOL_MIN_BYTES

    fastloader.clear_buffer_pool()
    batch = [
        (torch.randint(0, 255, (3, 32, 48), dtype=torch.uint8), torch.rand(i, 5)) for i in range(4)
    ]
    fast = fast_detection_collate(batch)
    planned = DetectionCollate(memory="shared")  # planned and written by the copy kernels
    assert fastloader.buffer_pool_stats()["live_blocks"] == 0
    assert fast.images.nbytes < POOL_MIN_BYTES
    general = DetectionCollate(size_divisibility=16)(batch)  # 32x48 is divisible: same batch
    for other in (general, planned(batch)):
        assert torch.equal(fast.images, other.images) and torch.equal(fast.packed(), other.packed())
        for name in ("counts", "offsets", "image_sizes", "batch_index"):
            assert torch.equal(getattr(fast, name), getattr(other, name))
    assert [t.shape[0] for t in fast[1]] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="pad_value"):
        DetectionCollate(pad_value=300)(batch)


def test_forced_shared_and_plain_memory():
    batch = [(torch.zeros(3, 4, 4), torch.rand(1, 5))]
    shared = DetectionCollate(memory="shared")(batch)
    assert all(t.is_shared() for t in shared.tensors().values())
    plain = DetectionCollate(memory="plain")(batch)
    assert not plain.images.is_shared()


def test_pin_memory_without_cuda_falls_back_without_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: covered by the pinned tests")
    out = fast_detection_collate([(torch.zeros(3, 4, 4), torch.rand(1, 5))])
    assert out.pin_memory() is out
    assert (
        DetectionCollate(memory="pinned")([(torch.zeros(1, 2, 2), [])]).images.is_pinned() is False
    )


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_use_shared_memory(context):
    ds = RaggedSamples(12)
    loader = DataLoader(
        ds,
        batch_size=4,
        num_workers=2,
        collate_fn=collate_reporting_shared,
        multiprocessing_context=context,
    )
    seen = 0
    for k, (batch, in_worker, shared) in enumerate(loader):
        assert in_worker
        assert shared and all(shared.values()), shared
        samples = [ds[i] for i in range(4 * k, 4 * k + 4)]
        images, targets = batch
        assert_same(images, reference_images([s[0] for s in samples]))
        for got, (_, want) in zip(targets, samples, strict=True):
            assert_same(got, as_tensor(want).float())
        assert batch.image_sizes.tolist() == [list(s[0].shape[-2:]) for s in samples]
        assert images.is_shared()  # handed over through shared memory, not copied
        seen += 1
    assert seen == 3


def test_item31_dataloader_in_main_process_dict_samples():
    ds = RaggedSamples(6, dtype=torch.float32, as_dict=True)
    loader = DataLoader(ds, batch_size=3, collate_fn=DetectionCollate(size_divisibility=32))
    seen = 0
    for k, batch in enumerate(loader):
        samples = [ds[i] for i in range(3 * k, 3 * k + 3)]
        assert_same(batch.images, reference_images([s["image"] for s in samples], 32))
        assert_same(batch.packed("landmarks"), torch.cat([s["landmarks"] for s in samples]))
        seen += 1
    assert seen == 2


@pytest.mark.gpu
@needs_cuda
def test_cuda_main_process_outputs_are_pinned():
    out = fast_detection_collate(
        [(torch.rand(3, 8, 8), torch.rand(2, 5)), (torch.rand(3, 6, 8), torch.rand(0, 5))]
    )
    assert out.is_pinned() and out.images.is_pinned() and out.packed().is_pinned()
    assert out.pin_memory() is out


@pytest.mark.gpu
@needs_cuda
def test_cuda_to_device_rebuilds_views():
    cpu = DetectionCollate(memory="plain")(
        [(torch.rand(3, 8, 8), torch.rand(2, 5)), (torch.rand(3, 6, 8), torch.rand(0, 5))]
    )
    pinned = cpu.pin_memory()
    assert pinned is not cpu and pinned.is_pinned() and torch.equal(pinned.images, cpu.images)
    gpu = pinned.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    assert gpu.images.is_cuda and gpu.packed().is_cuda and gpu.batch_index.is_cuda
    assert all(v.is_cuda for v in gpu[1])
    assert torch.equal(gpu.images.cpu(), cpu.images)
    padded, mask = gpu.padded()
    assert padded.is_cuda and mask.tolist() == [[True, True], [False, False]]


@pytest.mark.gpu
@pytest.mark.multiprocess
@needs_cuda
def test_cuda_dataloader_pin_memory_thread():
    loader = DataLoader(
        RaggedSamples(8),
        batch_size=4,
        num_workers=2,
        pin_memory=True,
        collate_fn=fast_detection_collate,
    )
    seen = 0
    for batch in loader:
        assert batch.is_pinned() and batch.images.is_pinned()
        assert all(t.is_pinned() for t in batch[1])
        seen += 1
    assert seen == 2
