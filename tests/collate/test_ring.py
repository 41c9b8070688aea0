"""Tests of DetectionCollate(shared_ring=True): batches in reusable shared-memory slots."""

from __future__ import annotations

import gc
import glob
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch.utils.data import DataLoader

from fastloader import DetectionBatch, DetectionCollate
from fastloader.collate import ring as ring_module
from fastloader.collate.ring import RING_FILE_PREFIX, SharedRing
from tests.helpers.collate import RaggedSamples

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHM = "/dev/shm"
NO_SIGNAL = 3  # ring_lifecycle.py's exit status when the SIGINT it sent itself never arrived
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
needs_dev_shm = pytest.mark.skipif(not os.path.isdir(SHM), reason="needs /dev/shm")


def ring_files(owner: int | None = None) -> set[str]:
    """Files of the rings created by process owner (default: this one). Other processes' rings are
    left out: other test runs on the machine share /dev/shm."""
    owner = os.getpid() if owner is None else owner
    return set(glob.glob(os.path.join(SHM, f"{RING_FILE_PREFIX}{owner}-*")))


def assert_batches_equal(got: DetectionBatch, want: DetectionBatch) -> None:
    assert got.keys() == want.keys()
    for name in want.keys():
        a, b = got[name], want[name]
        if isinstance(b, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride(), name
            assert torch.equal(a, b), name
        else:
            assert len(a) == len(b), name
            for x, y in zip(a, b, strict=True):
                if isinstance(y, torch.Tensor):
                    assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), name
                else:
                    assert x == y, name
    for name in ("counts", "offsets", "image_sizes", "batch_index"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    for name in want.object_fields:
        assert torch.equal(got.packed(name), want.packed(name)), name


def expected(ds, batch_size: int, k: int, **options) -> DetectionBatch:
    end = min(len(ds), batch_size * (k + 1))
    return DetectionCollate(memory="plain", **options)([ds[i] for i in range(batch_size * k, end)])


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize(
    "workers,context,persistent",
    [(1, "fork", False), (2, "fork", True), (2, "spawn", False), (1, "forkserver", True)],
)
def test_dataloader_batches_equal_plain_collate_over_epochs(workers, context, persistent):
    ds = RaggedSamples(10)  # variable image sizes, zero-box images, tensor and numpy targets
    collate = DetectionCollate(size_divisibility=8, shared_ring=True)
    loader = DataLoader(
        ds,
        batch_size=3,
        num_workers=workers,
        collate_fn=collate,
        multiprocessing_context=context,
        persistent_workers=persistent,
    )
    for _ in range(3):
        count = 0
        for k, batch in enumerate(loader):
            assert batch._lease is not None  # viewed from a ring slot, not a fallback
            assert_batches_equal(batch, expected(ds, 3, k, size_divisibility=8))
            images, targets = batch  # the stock unpacking
            assert len(targets) == len(batch.counts)
            count += 1
        assert count == 4
    del batch, images, targets
    gc.collect()
    stats = collate.ring.stats()
    assert stats["batches"] == 12 and stats["fallbacks"] == 0
    assert stats["slots_in_use"] == 0  # every slot came back when its batch was freed
    assert 1 <= stats["slots_allocated"] <= workers * 2 + 2
    assert stats["bytes"] > 0
    collate.close_ring()


def test_dict_samples_in_main_process_recycle_slots():
    ds = RaggedSamples(12, dtype=torch.float32, as_dict=True)
    collate = DetectionCollate(shared_ring=True, ring_slots=2)
    for _ in range(2):
        for k, batch in enumerate(DataLoader(ds, batch_size=4, collate_fn=collate)):
            assert batch._lease is not None
            assert_batches_equal(batch, expected(ds, 4, k))
            del batch
    stats = collate.ring.stats()
    # Each batch freed before the next: the two slots serve all six batches.
    assert stats["batches"] == 6 and stats["fallbacks"] == 0 and stats["slots_allocated"] <= 2
    collate.close_ring()


@pytest.mark.multiprocess
def test_held_batches_are_never_overwritten():
    ds = RaggedSamples(40)
    collate = DetectionCollate(shared_ring=True, ring_slots=3, ring_timeout=0.05)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate)
    held = list(loader)  # every batch kept while the workers go on: more batches than slots
    for k, batch in enumerate(held):
        assert_batches_equal(batch, expected(ds, 4, k))
    stats = collate.ring.stats()
    assert stats["slots_in_use"] == 3  # the held ones: no slot was taken from under a batch
    assert stats["fallbacks"] == len(held) - 3 and stats["waits"] >= stats["fallbacks"]
    in_slots = [b for b in held if b._lease is not None]
    assert len(in_slots) == 3
    assert all(b.images.is_shared() for b in held if b._lease is None)  # fallback memory
    del held, in_slots, batch
    gc.collect()
    assert collate.ring.stats()["slots_in_use"] == 0
    collate.close_ring()


@pytest.mark.multiprocess
def test_item32_workers_wait_for_slots_the_loop_frees():
    ds = RaggedSamples(48)
    # Slots for 2 workers * prefetch_factor 2 in flight plus the 2 batches the loop keeps: every
    # batch the DataLoader waits for can get a slot (with fewer, a later batch could take the
    # last slot and the one the loop needs next would wait until ring_timeout).
    collate = DetectionCollate(shared_ring=True, ring_slots=6, ring_timeout=10.0)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate, prefetch_factor=2)
    window = []
    for k, batch in enumerate(loader):
        window.append((k, batch))  # briefly three held: the worker given the next index waits
        time.sleep(0.02)  # a slow training step
        if len(window) > 2:
            old, oldest = window.pop(0)
            assert_batches_equal(oldest, expected(ds, 2, old))  # not overwritten while held
            del oldest
    for old, oldest in window:
        assert_batches_equal(oldest, expected(ds, 2, old))
    assert k == 23
    stats = collate.ring.stats()
    # Whether a worker had to wait depends on the machine's speed (issue 18 item 32): the wait
    # itself is tested without timing in test_issue18.py.
    assert stats["fallbacks"] == 0 and stats["batches"] == 24
    del window, oldest, batch
    collate.close_ring()


@pytest.mark.multiprocess
def test_item31_two_dataloaders_share_one_ring_at_once():
    """Supported, not an error: slots are claimed under the ring's lock by whichever process."""
    first, second = RaggedSamples(12), RaggedSamples(12, as_dict=True)
    collate = DetectionCollate(shared_ring=True, ring_slots=8)
    loaders = [
        DataLoader(ds, batch_size=3, num_workers=1, collate_fn=collate) for ds in (first, second)
    ]
    for k, (a, b) in enumerate(zip(*loaders, strict=True)):
        assert a._lease is not None and b._lease is not None
        assert_batches_equal(a, expected(first, 3, k))
        assert_batches_equal(b, expected(second, 3, k))
    assert k == 3 and collate.ring.stats()["fallbacks"] == 0
    del a, b, loaders
    collate.close_ring()


def test_a_view_keeps_the_slot():
    ds = RaggedSamples(8)
    collate = DetectionCollate(shared_ring=True, ring_slots=1)
    batch = collate([ds[i] for i in range(4)])
    target = batch[1][2]
    want = target.clone()
    del batch
    gc.collect()
    assert collate.ring.stats()["slots_in_use"] == 1  # the view still holds it
    other = collate([ds[i] for i in range(4, 8)])
    assert other._lease is None and collate.ring.stats()["fallbacks"] == 1  # not overwritten
    assert torch.equal(target, want)
    del target
    gc.collect()
    assert collate.ring.stats()["slots_in_use"] == 0
    again = collate([ds[i] for i in range(4, 8)])
    assert again._lease is not None
    assert_batches_equal(again, other)
    collate.close_ring()


def test_slots_grow_for_a_bigger_batch():
    collate = DetectionCollate(shared_ring=True, ring_slots=1)
    small = [(torch.full((3, 8, 8), i, dtype=torch.uint8), torch.ones(i, 5)) for i in range(2)]
    big = [(torch.full((3, 900, 900), i, dtype=torch.uint8), torch.ones(i, 5)) for i in range(3)]
    first = collate(small)
    size = collate.ring.stats()["bytes"]
    del first
    gc.collect()
    second = collate(big)
    stats = collate.ring.stats()
    assert second._lease is not None and stats["grows"] == 2 and stats["bytes"] > size
    assert_batches_equal(second, DetectionCollate(memory="plain")(big))
    assert len([f for f in collate.ring.files() if "-s0-" in f]) == 1  # the old one is unlinked
    collate.close_ring()


def test_pickled_collate_shares_the_ring_by_name():
    collate = DetectionCollate(shared_ring=True)
    clone = pickle.loads(pickle.dumps(collate))
    assert clone.ring is collate.ring  # the owner process finds its own ring
    assert "shared_ring=True" in repr(collate)
    collate.close_ring()


def test_bad_configuration():
    with pytest.raises(ValueError, match="shared_ring"):
        DetectionCollate(shared_ring="yes")
    with pytest.raises(ValueError, match="ring_slots"):
        DetectionCollate(shared_ring=True, ring_slots=0)
    with pytest.raises(ValueError, match="ring_timeout"):
        DetectionCollate(shared_ring=True, ring_timeout=-1)
    with pytest.raises(ValueError, match="memory='plain'"):
        DetectionCollate(shared_ring=True, memory="plain")


def test_closed_ring_is_a_clear_error_for_a_worker_and_falls_back_in_main():
    collate = DetectionCollate(shared_ring=True)
    ring = collate.ring
    attached = SharedRing._attach(ring.name, ring.slots, ring.timeout, -1)  # a worker's view
    assert attached.stats()["slots"] == ring.slots  # maps the header before the close
    collate.close_ring()
    assert collate.ring is None and not ring.files()
    with pytest.raises(RuntimeError, match="was closed"):
        attached.acquire(64, wait=True)  # the closed mark in the header, not a wait
    worker_view = SharedRing._attach(ring.name, ring.slots, ring.timeout, -1)  # as a spawned worker
    with pytest.raises(RuntimeError, match="was closed"):
        worker_view.acquire(64, wait=False)
    ds = RaggedSamples(4)
    assert_batches_equal(collate([ds[i] for i in range(4)]), expected(ds, 4, 0))


# pin_memory=True on CPU-only torch is the point of this test; torch's notice about it is expected.
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true")
def test_item31_cpu_path_never_touches_cuda():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only path")
    ds = RaggedSamples(8)
    collate = DetectionCollate(shared_ring=True)
    seen = 0
    for batch in DataLoader(ds, batch_size=4, collate_fn=collate, pin_memory=True):
        assert batch._lease is not None and not batch.is_pinned()
        seen += 1
    assert seen == 2 and not torch.cuda.is_initialized()
    collate.close_ring()


@pytest.mark.multiprocess
@pytest.mark.parametrize("persistent", [False, True])
def test_abandoned_epoch_slots_come_back(persistent):
    ds = RaggedSamples(40)
    collate = DetectionCollate(shared_ring=True, ring_slots=8)
    loader = DataLoader(
        ds, batch_size=2, num_workers=2, collate_fn=collate, persistent_workers=persistent
    )
    for k, _batch in enumerate(loader):
        if k == 1:
            break  # batches already written by the workers are never received
    del _batch
    seen = 0
    for k, batch in enumerate(loader):  # the next epoch still finds slots, and right contents
        assert_batches_equal(batch, expected(ds, 2, k))
        assert batch._lease is not None
        seen += 1
    assert seen == 20
    del batch, loader  # non-persistent workers exit; persistent ones drained the queue on reset
    gc.collect()
    deadline = time.monotonic() + 10
    while collate.ring.stats()["slots_in_use"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = collate.ring.stats()
    assert stats["slots_in_use"] == 0 and stats["fallbacks"] == 0
    collate.close_ring()


# ---- lifecycle: no file left in /dev/shm -------------------------------------------------------
@pytest.mark.multiprocess
@needs_dev_shm
def test_files_removed_when_the_collate_is_freed():
    before = ring_files()
    collate = DetectionCollate(shared_ring=True)
    for _ in DataLoader(RaggedSamples(8), batch_size=4, num_workers=1, collate_fn=collate):
        pass
    assert ring_files() - before  # header and slots exist while the ring lives
    del collate, _
    gc.collect()
    assert ring_files() == before


@pytest.mark.multiprocess
@pytest.mark.slow
@needs_dev_shm
@pytest.mark.parametrize(
    "case,context",
    [("normal", "fork"), ("abandon", "fork"), ("interrupt", "fork"), ("interrupt", "spawn")],
)
def test_no_files_left_after_the_process_ends(case, context):
    before = ring_files()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run(
        [sys.executable, "-m", "tests.helpers.ring_lifecycle", case, context],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        start_new_session=True,  # its own process group: the Ctrl-C case signals only it
    )
    name = run.stdout.split()[0]
    assert name.startswith(RING_FILE_PREFIX)
    if case == "interrupt":
        assert run.returncode not in (0, NO_SIGNAL), run.stdout + run.stderr
        assert "KeyboardInterrupt" in run.stderr
    else:
        assert run.returncode == 0, run.stderr
        assert "done" in run.stdout
    assert not glob.glob(os.path.join(SHM, name + "*"))
    assert ring_files() == before
    assert not ring_files(int(name[len(RING_FILE_PREFIX) :].split("-")[0]))  # nor any other


@pytest.mark.multiprocess
@needs_dev_shm
def test_sigkilled_worker_raises_and_its_slot_and_files_are_reclaimed():
    before = ring_files()
    ds = RaggedSamples(40)
    collate = DetectionCollate(shared_ring=True, ring_slots=4)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate, timeout=0)
    iterator = iter(loader)
    first = next(iterator)
    assert_batches_equal(first, expected(ds, 2, 0))
    victim = iterator._workers[0].pid
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(RuntimeError, match="DataLoader worker"):
        for _ in range(len(loader)):
            next(iterator)
    del iterator
    gc.collect()
    deadline = time.monotonic() + 10
    while collate.ring.stats()["slots_in_use"] > 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # workers are reaped: slots they had written are reclaimed
    assert collate.ring.stats()["slots_in_use"] == 1  # only `first`, still held
    assert_batches_equal(first, expected(ds, 2, 0))
    del first
    gc.collect()
    assert collate.ring.stats()["slots_in_use"] == 0
    del collate, loader  # the DataLoader holds the collate, which owns the ring
    gc.collect()
    assert ring_files() == before


def test_pinned_bookkeeping_without_a_gpu(monkeypatch):
    """The CUDA path's order of events, with cudart replaced by a recorder: slots are registered
    once per generation, unregistered (after a synchronize) when a regrown one replaces them and
    at close, and a slot goes back to the pool only after the copy event that reads it has
    completed."""
    calls = []

    class Cudart:
        def cudaHostUnregister(self, address):  # noqa: N802
            calls.append("unpin")

    monkeypatch.setattr(ring_module, "_register", lambda m: calls.append("pin") or True)
    monkeypatch.setattr(torch.cuda, "cudart", Cudart)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("synchronize"))
    collate = DetectionCollate(shared_ring=True, ring_slots=1)
    ring = collate.ring
    ring._local()
    ring._pin = True  # as on a CUDA machine, main process

    class Event:
        def synchronize(self):
            calls.append("event")

    small = [(torch.zeros(3, 8, 8, dtype=torch.uint8), torch.ones(1, 5))]
    batch = collate(small)
    assert calls == ["pin"]
    batch._lease.events.append(Event())  # what DetectionBatch.to("cuda") records
    del batch
    gc.collect()
    assert calls == ["pin", "event"] and ring.stats()["slots_in_use"] == 0
    again = collate(small)  # same generation: no second registration
    del again
    gc.collect()
    big = [(torch.zeros(3, 1200, 1200, dtype=torch.uint8), torch.ones(1, 5))]
    grown = collate(big)
    assert calls == ["pin", "event", "pin", "synchronize", "unpin"]
    del grown
    gc.collect()
    collate.close_ring()
    gc.collect()
    assert calls[-2:] == ["synchronize", "unpin"] and calls.count("unpin") == 2


# ---- pinned path ---------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.multiprocess
@needs_cuda
def test_batches_arrive_pinned_and_copy_correctly():
    ds = RaggedSamples(12)
    collate = DetectionCollate(shared_ring=True, ring_slots=4)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate, pin_memory=True)
    for _ in range(2):
        k = -1
        for k, batch in enumerate(loader):
            assert batch._lease is not None and batch.is_pinned()
            assert batch.pin_memory() is batch
            on_gpu = batch.to("cuda", non_blocking=True)
            want = expected(ds, 4, k)
            del batch  # the slot is reused only after the copy completed (event)
            torch.cuda.synchronize()
            assert torch.equal(on_gpu.images.cpu(), want.images)
            for got, ref in zip(on_gpu[1], want[1], strict=True):
                assert torch.equal(got.cpu(), ref)
        assert k == 2
    collate.close_ring()


# ---- cases found in use (issue 11) ---------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 1])
def test_batch_size_one_with_an_image_without_boxes(workers):
    """A batch whose per-object fields are empty in total (batch_size=1, zero boxes)."""
    ds = RaggedSamples(6)  # images 0 and 4 have no boxes
    collate = DetectionCollate(shared_ring=True)
    loader = DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=collate)
    for k, batch in enumerate(loader):
        assert batch._lease is not None
        assert_batches_equal(batch, expected(ds, 1, k))
    assert k == 5 and collate.ring.stats()["fallbacks"] == 0
    dict_batch = collate([{"image": torch.zeros(3, 4, 4), "boxes": [], "labels": []}])
    assert dict_batch.packed("boxes").shape == (0,) and dict_batch.counts.tolist() == [0]
    del batch, dict_batch
    gc.collect()
    assert collate.ring.stats()["slots_in_use"] == 0
    collate.close_ring()


def test_a_refused_batch_leaves_no_slot_taken():
    collate = DetectionCollate(shared_ring=True)
    image = torch.zeros(3, 4, 4)
    with pytest.raises(ValueError, match=r"field '__index__'"):
        collate([{"image": image, "__index__": torch.ones(2, 3)}])
    with pytest.raises(ValueError, match=r"sample 1 field 'boxes'"):
        collate(
            [{"image": image, "boxes": torch.ones(2, 3)}, {"image": image, "boxes": torch.ones(2)}]
        )
    assert collate.ring.stats()["slots_in_use"] == 0 and collate.ring.stats()["batches"] == 0
    collate.close_ring()


def test_deepcopy_gets_its_own_ring():
    import copy

    collate = DetectionCollate(shared_ring=True, ring_slots=3, ring_timeout=0.5)
    twin = copy.deepcopy(collate)
    assert twin.ring is not collate.ring and twin.ring.name != collate.ring.name
    assert (twin.ring.slots, twin.ring.timeout) == (3, 0.5)
    sample = [(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.rand(2, 5))]
    attached = SharedRing._attach(collate.ring.name, 3, 0.5, -1)  # as a worker sees it
    assert copy.deepcopy(attached) is attached  # cannot close the files: nothing to separate
    twin.close_ring()
    batch = collate(sample)  # the original's ring is untouched by closing the copy
    assert batch._lease is not None and not collate.ring.closed
    del batch
    collate.close_ring()


def test_torch_save_of_a_ring_batch():
    import io

    collate = DetectionCollate(shared_ring=True, channels_last=True)
    ds = RaggedSamples(4)
    batch = collate([ds[i] for i in range(4)])
    assert batch._lease is not None
    buffer = io.BytesIO()
    torch.save(batch, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded._lease is None
    assert_batches_equal(loaded, batch)
    assert loaded.images.is_contiguous(memory_format=torch.channels_last)
    del batch
    gc.collect()
    assert collate.ring.stats()["slots_in_use"] == 0  # the saved copy does not hold the slot
    assert_batches_equal(loaded, expected(ds, 4, 0, channels_last=True))
    collate.close_ring()


def test_ring_module_knows_nothing_of_batches():
    """ring.py is a slot allocator: it imports no fastloader module but the shared _util and its
    own files' module."""
    import ast
    from pathlib import Path

    import fastloader.collate.ring as ring_module

    source = Path(ring_module.__file__).read_text()
    tree = ast.parse(source)
    ours = [
        node.module or "."
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.level or "fastloader" in (node.module or ""))
    ]
    assert [m for m in ours if not m.startswith("_util.") and m != "_ring_files"] == []
    assert "DetectionBatch" not in source
