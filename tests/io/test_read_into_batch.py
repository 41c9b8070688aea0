"""VOCDetection(read_into_batch=True): the DataLoader's batch fetch hands DetectionCollate where
each .npy image lies in its file, and the collate reads it straight into the batch. The batches
must equal the ones built from ordinary samples; other collate_fns must see ordinary samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset, default_collate

from fastloader import DetectionCollate, SyntheticDetection
from fastloader.io.deferred import DeferredSamples, ImageFile

VOC_NPY = {"max_size": 64, "shapes": "voc", "image_format": "npy", "max_boxes": 4}


def datasets(tmp_path, num_images=12):
    eager = SyntheticDetection(tmp_path / "d", num_images, seed=4, **VOC_NPY)
    deferred = SyntheticDetection(
        tmp_path / "d", num_images, seed=4, read_into_batch=True, **VOC_NPY
    )
    return eager, deferred


def assert_same_batch(a, b):
    assert torch.equal(a.images, b.images)
    assert a.images.dtype == torch.uint8 and a.images.stride() == b.images.stride()
    assert torch.equal(a.packed(), b.packed())
    for name in ("counts", "offsets", "image_sizes", "batch_index"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize(
    "options", [{}, {"size_divisibility": 32, "pad_value": 7}, {"channels_last": True}]
)
def test_deferred_batches_equal_the_batches_of_read_samples(tmp_path, options):
    eager, deferred = datasets(tmp_path)
    indices = [3, 0, 7, 7, 11, 5]
    fetched = deferred.__getitems__(indices)
    assert isinstance(fetched, DeferredSamples)
    assert all(isinstance(image, ImageFile) for image, _ in fetched.pairs)
    widths = {image.shape[2] for image, _ in fetched.pairs}
    assert len(widths) > 1  # both paths: full-width reads in place, narrower ones copied
    collate = DetectionCollate(**options)
    assert_same_batch(collate(fetched), collate([eager[i] for i in indices]))


def test_in_dataloader_workers_with_the_shared_ring(tmp_path):
    eager, deferred = datasets(tmp_path, 16)
    collate = DetectionCollate(shared_ring=True)
    got = list(DataLoader(deferred, batch_size=5, num_workers=2, collate_fn=collate))
    expected = list(DataLoader(eager, batch_size=5, collate_fn=DetectionCollate()))
    assert len(got) == len(expected) == 4
    for a, b in zip(got, expected, strict=True):
        assert_same_batch(a, b)
    # Subset forwards the batch fetch; the collate still reads the images into place.
    subset = Subset(deferred, [2, 9, 4])
    (batch,) = DataLoader(subset, batch_size=3, collate_fn=DetectionCollate())
    assert_same_batch(batch, DetectionCollate()([eager[i] for i in (2, 9, 4)]))
    collate.close_ring()


def test_item31_other_collate_fns_see_ordinary_samples(tmp_path):
    eager, deferred = datasets(tmp_path)
    fetched = deferred.__getitems__([1, 2, 3])
    assert len(fetched) == 3
    for got, index in zip(fetched, (1, 2, 3), strict=True):
        image, target = got
        assert torch.equal(image, eager[index][0]) and torch.equal(target, eager[index][1])
    assert fetched[-1][0] is fetched[2][0]  # read once, then kept
    assert all(torch.equal(s[0], eager[i][0]) for s, i in zip(fetched[1:], (2, 3), strict=True))
    with pytest.raises(IndexError):
        fetched[3]
    loader = DataLoader(deferred, batch_size=1, collate_fn=lambda batch: batch)
    (first, *_) = loader
    assert torch.equal(first[0][0], eager[0][0])
    same = deferred.__getitems__([4, 4])
    batch = default_collate(same)  # same-size images stack
    assert torch.equal(batch[0][0], eager[4][0])


def test_fetched_as_usual_when_it_cannot_defer(tmp_path):
    eager, _ = datasets(tmp_path)
    root = tmp_path / "d"
    transformed = SyntheticDetection(
        root, 12, seed=4, read_into_batch=True, transform=lambda s: s, **VOC_NPY
    )
    as_dicts = SyntheticDetection(
        root, 12, seed=4, read_into_batch=True, sample_format="dict", **VOC_NPY
    )
    for dataset in (transformed, as_dicts, eager):
        fetched = dataset.__getitems__([0, 1])
        assert type(fetched) is list and len(fetched) == 2
    jpeg = SyntheticDetection(
        root, 12, seed=4, read_into_batch=True, **{**VOC_NPY, "image_format": "jpeg"}
    )
    pairs = jpeg.__getitems__([0, 1]).pairs  # decoded now: only .npy files are placed
    assert all(isinstance(image, torch.Tensor) for image, _ in pairs)
    with pytest.raises(ValueError, match="read_into_batch should be a boolean"):
        SyntheticDetection(root, 12, seed=4, read_into_batch="yes", **VOC_NPY)


def test_bad_files_name_the_file(tmp_path):
    _, deferred = datasets(tmp_path)
    path = deferred.image_path(0)
    good = path.read_bytes()
    path.write_bytes(good[:-5])
    with pytest.raises(ValueError, match=r"000000\.npy: cannot read the image.*truncated"):
        deferred.__getitems__([0])
    path.unlink()
    with pytest.raises(ValueError, match=r"000000\.npy: image file not found"):
        deferred.__getitems__([1, 0])
    np.save(path, np.zeros((3, 5, 5), dtype=np.uint8))  # not the size its XML gives
    with pytest.raises(ValueError, match=r"000000\.xml: <size> says .* but .*000000\.npy is 5x5"):
        deferred.__getitems__([0])
    path.write_bytes(good)
    fetched = deferred.__getitems__([0, 1])
    path.write_bytes(good[:-5])  # shortened after it was placed: the read names it
    with pytest.raises(ValueError, match=r"000000\.npy: truncated \.npy file"):
        DetectionCollate()(fetched)
