"""AugmentPipeline transforms fused into the collate: readers hand DetectionCollate deferred
AugmentedImages that decode and augment straight into the batch (or ring slot), keyed by
(seed, epoch, position), with targets in each reader's own layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import fastloader.transforms as T
from fastloader import (
    COCODetection,
    DetectionCollate,
    FastWeightedSampler,
    SyntheticDetection,
    VOCDetection,
    WIDERFace,
    YOLODetection,
)
from fastloader.datasets import synthetic_widerface
from fastloader.io.deferred import DeferredSamples
from fastloader.transforms.deferred import AugmentedImage

from ..datasets.test_yolo import yolo_from_voc


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("faces")
    synthetic_widerface(str(root), 12, seed=4, width=160)
    return str(root)


def _coco_from_voc(voc, root: Path) -> Path:
    """voc's images and boxes as a COCO JSON (no keypoints)."""
    images, annotations = [], []
    for i in range(len(voc)):
        info = voc.annotation(i)
        images.append(
            {"id": i + 1, "file_name": os.path.relpath(voc.image_path(i), root),
             "height": info["height"], "width": info["width"]}
        )  # fmt: skip
        for (x1, y1, x2, y2), label in zip(
            info["boxes"].tolist(), info["labels"].tolist(), strict=True
        ):
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1,
                 "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                 "iscrowd": 0}
            )  # fmt: skip
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(voc.classes)]
    path = root / "coco.json"
    data = {"images": images, "annotations": annotations, "categories": categories}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def readers(tmp_path_factory, faces):
    """name -> a function (transform) -> the reader over the same kind of data."""
    base = tmp_path_factory.mktemp("readers")
    voc = SyntheticDetection(base / "voc", 10, seed=2, max_size=96, shapes="voc", max_boxes=4)
    yolo = yolo_from_voc(voc, base / "yolo")
    coco = _coco_from_voc(voc, base)
    return {
        "voc": lambda t: VOCDetection(voc.root, "trainval", transform=t),
        "coco": lambda t: COCODetection(base, coco, transform=t),
        "yolo": lambda t: YOLODetection(yolo, "train", transform=t),
        "widerface": lambda t: WIDERFace(faces, "train", transform=t),
    }


def _expected_target(pipe, plain, position: int) -> torch.Tensor:
    """The reader's own target moved by the plan of (seed, epoch, position), in its layout."""
    image, target = plain[position]
    columns = plain.target_columns
    plan = pipe.plan(
        image.shape[1],
        image.shape[2],
        {"boxes": target[:, columns["boxes"]].numpy(),
         "landmarks": target[:, columns["landmarks"]].numpy()},
        index=position,
    )  # fmt: skip
    out = torch.empty(len(plan.keep), target.shape[1])
    out[:, columns["boxes"]] = torch.from_numpy(plan.boxes)
    if len(plan.keep):  # an image without objects gets no landmark array back
        out[:, columns["landmarks"]] = torch.from_numpy(plan.landmarks)
    out[:, columns["label"]] = target[torch.from_numpy(plan.keep), columns["label"]]
    return out


@pytest.mark.parametrize("name", ["voc", "coco", "yolo", "widerface"])
def test_readers_fuse_with_targets_in_their_own_layout(readers, name):
    pipe = T.retinaface(48, seed=9)
    pipe.set_epoch(2)
    plain, fused = readers[name](None), readers[name](pipe)
    positions = [3, 0, 5, 1]
    samples = fused.__getitems__(positions)
    assert isinstance(samples, DeferredSamples)
    assert all(isinstance(image, AugmentedImage) for image, _ in samples.pairs)
    batch = DetectionCollate()(samples)
    assert batch.images.shape == (4, 3, 48, 48) and batch.images.dtype == torch.float32
    for row, position in enumerate(positions):
        want = _expected_target(pipe, plain, position)
        image, target = fused[position]
        assert target.shape[1] == plain[position][1].shape[1] == 15
        torch.testing.assert_close(target, want, rtol=0, atol=0)
        torch.testing.assert_close(batch.per_image()[row], want, rtol=0, atol=0)
        assert torch.equal(batch.images[row], image)
        # retinaface's targets are divided by the output size: boxes inside [0, 1].
        assert ((target[:, :4] >= 0) & (target[:, :4] <= 1)).all()


def test_dict_samples_and_the_standalone_key(faces):
    pipe = T.retinaface(40, seed=1)
    fused = WIDERFace(faces, "train", transform=pipe, sample_format="dict")
    sample = fused[2]
    assert sample["image"].shape == (3, 40, 40)
    assert sample["landmarks"].shape[1:] == (5, 2) and sample["labels"].dtype == torch.int64
    assert len(sample["boxes"]) == len(sample["labels"]) == len(sample["landmarks"])
    # Keyed by the position, not by torch's generator: the same whatever that draws.
    torch.manual_seed(0)
    first = fused[2]
    torch.manual_seed(1)
    again = fused[2]
    for key in ("image", "boxes", "labels", "landmarks"):
        assert torch.equal(first[key], again[key])
    assert not torch.equal(fused[2]["image"], fused[3]["image"][:, :40, :40])
    # dict samples are not deferred (the collate takes deferred (image, target) pairs only).
    assert isinstance(fused.__getitems__([0, 1]), list)


def _loader(dataset, *, num_workers: int, shared_ring: bool, **options) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=4,
        num_workers=num_workers,
        collate_fn=DetectionCollate(shared_ring=shared_ring),
        **options,
    )


def _per_sample(dataset, positions) -> tuple[torch.Tensor, list[torch.Tensor]]:
    samples = [dataset[p] for p in positions]
    return torch.stack([image for image, _ in samples]), [target for _, target in samples]


def _assert_batches(batches, dataset, order) -> None:
    assert len(batches) == len(order) // 4
    for k, (images, targets) in enumerate(batches):
        want_images, want_targets = _per_sample(dataset, order[4 * k : 4 * k + 4])
        assert torch.equal(images, want_images)
        for got, want in zip(targets, want_targets, strict=True):
            assert torch.equal(got, want)


def _take(loader) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
    # Copies: ring batches give their slot back when dropped.
    return [(b.images.clone(), [t.clone() for t in b.per_image()]) for b in loader]


@pytest.mark.multiprocess
@pytest.mark.parametrize("shared_ring", [False, True])
@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_fused_batches_equal_the_per_sample_path(faces, num_workers, shared_ring):
    pipe = T.retinaface(56, seed=31)
    pipe.set_epoch(4)
    dataset = WIDERFace(faces, "train", transform=pipe)
    batches = _take(_loader(dataset, num_workers=num_workers, shared_ring=shared_ring))
    _assert_batches(batches, dataset, list(range(len(dataset))))


@pytest.mark.multiprocess
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_workers(faces, context):
    if context not in torch.multiprocessing.get_all_start_methods():
        pytest.skip(f"no {context} start method here")
    pipe = T.retinaface(40, seed=8)
    dataset = WIDERFace(faces, "train", transform=pipe)
    loader = _loader(
        dataset,
        num_workers=2 if context == "fork" else 1,
        shared_ring=False,
        persistent_workers=True,
        multiprocessing_context=context,
    )
    seen = []
    for epoch in (0, 3):
        pipe.set_epoch(epoch)  # before iter(loader), as for a sampler
        batches = _take(loader)
        _assert_batches(batches, dataset, list(range(len(dataset))))
        seen.append(batches[0][0])
    assert not torch.equal(seen[0], seen[1])
    assert pipe.epoch == 3 and "epoch=3" in repr(pipe)


def test_epoch_cell_is_shared_memory_and_copies_are_independent():
    import copy
    import pickle

    pipe = T.retinaface(32, seed=0)
    assert pipe._epoch_cell.is_shared()
    pipe.set_epoch(7)
    clone = pickle.loads(pickle.dumps(pipe))
    other = copy.deepcopy(pipe)
    assert clone.epoch == other.epoch == 7
    pipe.set_epoch(8)
    assert (pipe.epoch, clone.epoch, other.epoch) == (8, 7, 7)
    with pytest.raises(ValueError, match="epoch"):
        pipe.set_epoch(-1)


@pytest.mark.multiprocess
# torchdata's StatefulDataLoader touches torch.set_vital, deprecated in this torch.
@pytest.mark.filterwarnings("ignore:.set_vital. is deprecated:UserWarning")
def test_a_resumed_stateful_loader_yields_the_same_fused_batches(faces):
    from torchdata.stateful_dataloader import StatefulDataLoader

    def loader():
        pipe = T.retinaface(40, seed=77)
        pipe.set_epoch(1)
        dataset = WIDERFace(faces, "train", transform=pipe)
        sampler = FastWeightedSampler(np.ones(len(dataset)), num_samples=12, seed=3)
        return StatefulDataLoader(
            dataset,
            batch_size=3,
            sampler=sampler,
            num_workers=2,
            collate_fn=DetectionCollate(shared_ring=True),
        )

    whole = _take(loader())
    assert len(whole) == 4
    first = loader()
    iterator = iter(first)
    next(iterator)
    state = first.state_dict()
    del iterator
    resumed = loader()
    resumed.load_state_dict(state)
    rest = _take(resumed)
    assert len(rest) == 3
    for (a_images, a_targets), (b_images, b_targets) in zip(whole[1:], rest, strict=True):
        assert torch.equal(a_images, b_images)
        for a, b in zip(a_targets, b_targets, strict=True):
            assert torch.equal(a, b)


@pytest.mark.multiprocess
def test_widerface_retinaface_640_into_the_shared_ring(tmp_path):
    synthetic_widerface(str(tmp_path), 4, seed=0, width=700)
    dataset = WIDERFace(str(tmp_path), transform=T.retinaface(640))
    loader = DataLoader(
        dataset, batch_size=2, num_workers=1, collate_fn=DetectionCollate(shared_ring=True)
    )
    count = 0
    for batch in loader:
        count += 1
        assert batch.images.shape == (2, 3, 640, 640) and batch.images.dtype == torch.float32
        assert batch._lease is not None  # a view of the ring slot the worker wrote into
        targets = batch.per_image()
        assert len(targets) == 2
        for target in targets:
            assert target.dtype == torch.float32 and target.shape[1] == 15
            assert set(target[:, 14].tolist()) <= {1.0, -1.0}
    assert count == 2


@pytest.mark.parametrize("shared_ring", [False, True])
def test_each_image_is_written_once_into_its_row(faces, monkeypatch, shared_ring):
    dataset = WIDERFace(faces, "train", transform=T.retinaface(48, seed=2))
    writes: list[tuple[int, int]] = []
    original = AugmentedImage.write_into

    def counted(self, out, reduced_decode=True):
        writes.append((self.index, out.data_ptr()))
        original(self, out, reduced_decode)

    def no_read(self):  # the collate never asks for a separate tensor
        raise AssertionError("read() called in the collate")

    samples = dataset.__getitems__([4, 2, 7])
    monkeypatch.setattr(AugmentedImage, "write_into", counted)
    monkeypatch.setattr(AugmentedImage, "read", no_read)
    batch = DetectionCollate(shared_ring=shared_ring)(samples)
    assert [index for index, _ in writes] == [4, 2, 7]
    images = batch.images
    assert [pointer for _, pointer in writes] == [images[r].data_ptr() for r in range(3)]
    monkeypatch.undo()
    for row, position in enumerate([4, 2, 7]):
        assert torch.equal(images[row], dataset[position][0])


def test_bad_files_are_named(tmp_path):
    synthetic_widerface(str(tmp_path), 4, seed=0, width=200)
    dataset = WIDERFace(str(tmp_path), transform=T.retinaface(48, seed=0))
    truncated, missing = dataset.image_path(1), dataset.image_path(2)
    data = truncated.read_bytes()
    truncated.write_bytes(data[:700] + bytes(50))  # the header intact, the scan cut short
    missing.unlink()
    # The header is read at fetch time: a missing file is named with its label.txt line.
    with pytest.raises(ValueError, match=rf"{missing}: image file not found \(listed at .*line"):
        dataset.__getitems__([0, 2])
    # The pixels are decoded in the collate: a bad scan is named there.
    samples = dataset.__getitems__([0, 1])
    with pytest.raises(ValueError, match=rf"{truncated}: cannot decode the image"):
        DetectionCollate()(samples)
    with pytest.raises(ValueError, match=rf"{truncated}: cannot decode the image"):
        dataset[1]
    truncated.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=str(truncated)):
        dataset.__getitems__([1])
    # A header above the pixel limit is refused before decoding.
    small = WIDERFace(str(tmp_path), transform=T.retinaface(48, seed=0), max_image_pixels=100)
    with pytest.raises(ValueError, match="image too large"):
        small[0]
    assert data  # the test wrote the files it broke
