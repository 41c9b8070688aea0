"""Regression tests of issue 18's collate and ring items (the ring's lifecycle items 2, 5, 6, 7, 8
and 33 are in test_ring_lifecycle.py): each fails on e97f180 and passes now."""

from __future__ import annotations

import copy
import doctest
import gc
import io
import os
import pickle
import threading
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fastloader import DetectionCollate, fast_detection_collate
from fastloader.collate.ring import SharedRing
from fastloader.io.deferred import DeferredSamples, ImageFile
from tests.helpers.collate import DeepcopyInWorker, RaggedSamples


def plain(samples, **options):
    return DetectionCollate(memory="plain", **options)(samples)


def assert_same_tensors(got, want):
    assert got.keys() == want.keys()
    for name, tensor in want.tensors().items():
        other = got.tensors()[name]
        assert other.dtype == tensor.dtype and other.shape == tensor.shape, name
        assert torch.equal(other, tensor), name


# ---- item 15: a deep copy in a worker does not take the ring slot ----------------------------
@pytest.mark.multiprocess
def test_item15_deepcopy_of_a_ring_batch_in_a_worker_keeps_the_original():
    ds = RaggedSamples(12)
    collate = DetectionCollate(shared_ring=True, ring_slots=8)
    loader = DataLoader(ds, batch_size=4, num_workers=1, collate_fn=DeepcopyInWorker(collate))
    seen = 0
    for k, (batch, twin) in enumerate(loader):
        want = plain([ds[i] for i in range(4 * k, 4 * k + 4)])
        assert batch._lease is not None  # the original arrived through its slot
        assert twin._lease is None  # the copy is fresh memory of its own
        assert_same_tensors(batch, want)
        assert_same_tensors(twin, want)
        seen += 1
    assert seen == 3
    del batch, twin
    gc.collect()
    assert collate.ring.stats()["slots_in_use"] == 0 and collate.ring.stats()["fallbacks"] == 0
    collate.close_ring()


def test_item15_copies_of_a_batch_in_the_main_process():
    collate = DetectionCollate(shared_ring=True, ring_slots=2)
    batch = collate([(torch.full((3, 4, 5), 9, dtype=torch.uint8), torch.ones(2, 5))])
    deep, shallow = copy.deepcopy(batch), copy.copy(batch)
    assert deep._lease is None and deep.images.data_ptr() != batch.images.data_ptr()
    assert shallow._lease is batch._lease and shallow.images is batch.images
    batch.images.zero_()
    assert int(deep.images.sum()) == 9 * 60 and int(shallow.images.sum()) == 0
    del batch, shallow
    gc.collect()
    assert collate.ring.stats()["slots_in_use"] == 0  # the deep copy does not hold the slot
    collate.close_ring()


# ---- item 16: closing a pickled copy's ring -----------------------------------------------------
def test_item16_closing_a_pickled_copy_leaves_the_originals_ring_open():
    collate = DetectionCollate(shared_ring=True, ring_slots=2)
    clone = pickle.loads(pickle.dumps(collate))
    assert clone.ring is collate.ring
    sample = [(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.ones(1, 5))]
    clone.close_ring()
    assert clone.ring is None and not collate.ring.closed
    batch = collate(sample)
    assert batch._lease is not None  # still written into the ring
    again = pickle.loads(pickle.dumps(collate))
    collate.close_ring()  # the owner closes: its copy falls back instead of raising
    fallback = again(sample)
    assert fallback._lease is None and torch.equal(fallback.images, batch.images)
    assert again.ring is None


# ---- item 17: torch.save of a ring batch's tensors ----------------------------------------------
def test_item17_torch_save_of_a_ring_batchs_tensors():
    collate = DetectionCollate(shared_ring=True, channels_last=True)
    ds = RaggedSamples(4, as_dict=True)
    batch = collate([ds[i] for i in range(4)])
    assert batch._lease is not None
    buffer = io.BytesIO()
    torch.save(batch.tensors(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    want = plain([ds[i] for i in range(4)], channels_last=True)
    for name, tensor in want.tensors().items():
        assert torch.equal(loaded[name], tensor) and loaded[name].stride() == tensor.stride()
    del batch
    gc.collect()
    assert collate.ring.stats()["slots_in_use"] == 0
    collate.close_ring()


# ---- item 21: a zero-shape image on the read_into_batch path -------------------------------------
def test_item21_zero_shape_image_file_names_the_file(tmp_path):
    empty, full = tmp_path / "empty.npy", tmp_path / "full.npy"
    np.save(empty, np.zeros((3, 0, 0), np.uint8))
    np.save(full, np.ones((3, 4, 5), np.uint8))
    pairs = [
        (ImageFile(str(empty), os.path.getsize(empty), (3, 0, 0)), torch.zeros(0, 5)),
        (ImageFile(str(full), os.path.getsize(full) - 60, (3, 4, 5)), torch.zeros(1, 5)),
    ]
    for batch in (DeferredSamples(pairs), DeferredSamples(pairs[:1])):
        with pytest.raises(ValueError, match=r"empty\.npy: cannot read the image.*no pixels"):
            DetectionCollate()(batch)
    with pytest.raises(ValueError, match=r"empty\.npy: cannot read the image"):
        DeferredSamples(pairs)[0]


# ---- item 22: settings changed after construction-------------------------------------------------
def test_item22_settings_are_checked_when_set_after_construction():
    collate = DetectionCollate(size_divisibility=8)
    bad = [
        ("size_divisibility", -5, ValueError, "size_divisibility should be a non-negative"),
        ("size_divisibility", 2**40, ValueError, "size_divisibility should be at most"),
        ("memory", "bogus", ValueError, "memory should be one of"),
        ("pad_value", "x", TypeError, "pad_value should be a real number"),
        ("channels_last", 1, ValueError, "channels_last should be a boolean"),
        ("image_key", "", TypeError, "image_key should be a non-empty str"),
        ("image_key", "__index__", ValueError, "reserved"),
        ("image_fields", "boxes", TypeError, "image_fields should be a sequence"),
        ("image_fields", ("image",), ValueError, "should not contain the image_key"),
        ("target_dtype", torch.complex64, TypeError, "target_dtype should be a real"),
    ]
    for name, value, error, pattern in bad:
        before = getattr(collate, name)
        with pytest.raises(error, match=pattern):
            setattr(collate, name, value)
        assert getattr(collate, name) == before  # a refused value changes nothing
    sample = [(torch.ones(3, 5, 6, dtype=torch.uint8), torch.ones(1, 5))]
    assert collate(sample).images.shape == (1, 3, 8, 8)
    collate.size_divisibility, collate.pad_value = 32, 7  # accepted values take effect
    out = collate(sample)
    assert out.images.shape == (1, 3, 32, 32) and int(out.images[0, 0, 31, 31]) == 7
    with pytest.raises(AttributeError):
        collate.shared_ring = True  # type: ignore[misc]
    ring = DetectionCollate(shared_ring=True, ring_slots=1)
    with pytest.raises(ValueError, match="cannot be combined with memory='plain'"):
        ring.memory = "plain"
    ring.close_ring()


# ---- item 24: [H, W, C] images and 2-D images-----------------------------------------------------
def test_item24_hwc_images_are_refused_with_a_hint_and_2d_images_batch_as_documented():
    hint = r"looks like \[H, W, C\]; images must be \[C, H, W\].*permute\(2, 0, 1\)"
    hwc = [
        [(np.zeros((48, 64, 3), np.uint8), torch.zeros(2, 15))] * 2,  # the batch
        [(torch.zeros(48, 64, 3, dtype=torch.uint8), torch.zeros(2, 5))] * 2,  # same size
        [(torch.zeros(48, 64, 3), torch.zeros(2, 5)), (torch.zeros(40, 60, 3), torch.zeros(0, 5))],
        [{"image": torch.zeros(30, 20, 4), "boxes": torch.zeros(1, 4)}],
        [(torch.zeros(3, 48, 64), torch.zeros(0, 5)), (torch.zeros(40, 64, 3), torch.zeros(0, 5))],
    ]
    for batch in hwc:
        with pytest.raises(ValueError, match=hint):
            fast_detection_collate(batch)
    # [C, H, W] with a small width, and many channels, are still images.
    narrow = fast_detection_collate([(torch.ones(3, 10, 3), torch.zeros(0, 5))] * 2)
    assert narrow.images.shape == (2, 3, 10, 3)
    many = fast_detection_collate([(torch.ones(8, 10, 12), torch.zeros(0, 5))])
    assert many.images.shape == (1, 8, 10, 12)
    flat = fast_detection_collate([(torch.ones(5, 6), torch.zeros(0, 5))] * 3)
    assert flat.images.shape == (3, 5, 6)  # [H, W] images: a [B, H, W] batch, as documented
    assert "``[B, H, W]``" in DetectionCollate.__doc__


# ---- item 28: docstrings and their examples-------------------------------------------------------
def test_item28_collate_docstrings_are_their_own_and_their_examples_run():
    import fastloader.collate.batch as batch_module
    import fastloader.collate.detection_collate as collate_module
    import fastloader.collate.ring as ring_module

    assert fast_detection_collate.__doc__ != DetectionCollate.__doc__
    assert "Args:" not in fast_detection_collate.__doc__  # it takes no constructor arguments
    for cls in (DetectionCollate, type(fast_detection_collate([(torch.zeros(1, 1, 1), [])]))):
        assert "Args:" in cls.__doc__ and "Example:" in cls.__doc__, cls
    assert "Example:" in SharedRing.__doc__
    for module in (collate_module, batch_module, ring_module):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


# ---- item 29: dict-sample batches in torchvision's form-------------------------------------------
def test_item29_dict_batches_unpack_as_images_and_torchvision_targets():
    ds = RaggedSamples(6, as_dict=True)
    samples = [ds[i] for i in range(6)]
    batch = fast_detection_collate(samples)
    images, targets = batch
    assert images is batch.images and len(targets) == 6
    for target, sample in zip(targets, samples, strict=True):
        assert set(target) == {"boxes", "labels", "landmarks", "scale", "id"}
        assert torch.equal(target["boxes"], sample["boxes"])
        assert torch.equal(target["labels"], sample["labels"])
        assert target["labels"].dtype == torch.int64
        assert float(target["scale"]) == sample["scale"] and int(target["id"]) == sample["id"]
    assert batch.targets_as_dicts()[1]["landmarks"].shape == (samples[1]["landmarks"].shape)
    with pytest.raises(KeyError, match=r"dict samples: name a field, e.g. per_image\('boxes'\)"):
        batch.per_image()
    assert dict(batch)["labels"][1].tolist() == samples[1]["labels"].tolist()  # by name as before


def test_item29_tuple_batches_give_boxes_and_labels_in_the_common_layouts():
    voc = fast_detection_collate([(torch.zeros(3, 4, 4), [[1, 2, 3, 4, 7], [5, 6, 7, 8, 2]])])
    (only,) = voc.targets_as_dicts()
    assert only["boxes"].tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert only["labels"].tolist() == [7, 2] and only["labels"].dtype == torch.int64
    assert torch.equal(only["target"], voc[1][0])
    face = torch.arange(30, dtype=torch.float32).view(2, 15)
    (entry,) = fast_detection_collate([(torch.zeros(3, 4, 4), face)]).targets_as_dicts()
    assert torch.equal(entry["landmarks"], face[:, 4:14].view(2, 5, 2))
    assert entry["labels"].tolist() == [14, 29]
    (other,) = fast_detection_collate([(torch.zeros(3, 4, 4), torch.ones(1, 7))]).targets_as_dicts()
    assert set(other) == {"target"}  # no layout to guess from


# ---- item 32: waiting for a slot, without timing--------------------------------------------------
def test_item32_a_writer_waits_for_the_slot_the_loop_frees():
    """The waits counter as a synchronisation, not a race against a sleep: a writer finds the one
    slot taken, waits (counted), and gets it when its holder frees it; no fallback."""
    ring = SharedRing(1, timeout=60)
    held = ring.acquire(100, wait=False)
    got = []
    writer = threading.Thread(target=lambda: got.append(ring.acquire(100, wait=True)))
    writer.start()
    deadline = time.monotonic() + 60
    while ring.stats()["waits"] == 0 and time.monotonic() < deadline:
        time.sleep(0.001)  # until the writer has found the slot taken
    assert ring.stats()["waits"] == 1 and not got
    ring.release(held.ref)
    writer.join(60)
    assert len(got) == 1 and got[0] is not None and got[0].ref.slot == 0
    assert ring.stats()["fallbacks"] == 0 and ring.stats()["batches"] == 2
    ring.release(got[0].ref)
    ring.close()
