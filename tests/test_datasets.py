"""SyntheticDetection and VOCDetection: determinism, XML round trips, label-only reads, bad input"""

from __future__ import annotations

import pickle
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from fastloader import FastWeightedSampler, SyntheticDetection, VOCDetection
from fastloader import datasets as fd

SMALL = dict(min_size=12, max_size=24)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_writes_identical_files_and_other_seed_differs(tmp_path):
    a = SyntheticDetection(tmp_path / "a", 12, seed=7, **SMALL)
    b = SyntheticDetection(tmp_path / "b", 12, seed=7, **SMALL)
    c = SyntheticDetection(tmp_path / "c", 12, seed=8, **SMALL)
    files_a, files_b, files_c = (_tree_bytes(d.root) for d in (a, b, c))
    assert len(files_a) == 12 * 2 + 2  # images, annotations, classes.txt, marker
    assert files_a == files_b
    differing = [
        name for name in files_a if name.startswith("images") and files_a[name] != files_c[name]
    ]
    assert len(differing) == 12


def test_image_i_does_not_depend_on_num_images(tmp_path):
    short = SyntheticDetection(tmp_path / "short", 3, seed=1, **SMALL)
    long = SyntheticDetection(tmp_path / "long", 9, seed=1, **SMALL)
    for index in range(3):
        (image_s, target_s), (image_l, target_l) = short[index], long[index]
        assert torch.equal(image_s, image_l) and torch.equal(target_s, target_l)


def test_default_root_is_a_cache_keyed_by_the_parameters(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = SyntheticDetection(None, 5, seed=3, **SMALL)
    assert first.generated and first.root.parent == tmp_path
    stamp = {p: p.stat().st_mtime_ns for p in first.root.rglob("*")}
    second = SyntheticDetection(None, 5, seed=3, **SMALL)
    assert not second.generated and second.root == first.root
    assert {p: p.stat().st_mtime_ns for p in second.root.rglob("*")} == stamp
    other = SyntheticDetection(None, 6, seed=3, **SMALL)
    assert other.generated and other.root != first.root
    # no staging folders left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.root.name, other.root.name])


def test_explicit_root_with_other_parameters_is_rewritten(tmp_path):
    SyntheticDetection(tmp_path / "d", 4, seed=0, **SMALL)
    again = SyntheticDetection(tmp_path / "d", 6, seed=0, **SMALL)
    assert again.generated and len(again) == 6
    assert len(list((tmp_path / "d" / "images").iterdir())) == 6


def test_written_annotations_read_back_exactly(tmp_path):
    params = dict(num_classes=20, max_boxes=50, **SMALL)
    tuples = SyntheticDetection(tmp_path / "d", 10, seed=5, **params)
    dicts = SyntheticDetection(tmp_path / "d", 10, seed=5, sample_format="dict", **params)
    assert not dicts.generated
    for index in range(10):
        image, labels, boxes, landmarks = fd._synthesize(5, index, tuples.params)
        got_image, target = tuples[index]
        assert got_image.dtype == torch.uint8 and got_image.shape == image.shape
        assert torch.equal(got_image, torch.from_numpy(image))
        assert target.dtype == torch.float32 and target.shape == (len(labels), 15)
        assert torch.equal(target[:, 0:4], torch.from_numpy(boxes.astype(np.float32)))
        assert target[:, 4].tolist() == [float(label) for label in labels]
        assert torch.equal(
            target[:, 5:15], torch.from_numpy(landmarks.reshape(-1, 10).astype(np.float32))
        )
        sample = dicts[index]
        assert sorted(sample) == ["boxes", "image", "labels", "landmarks"]
        assert sample["labels"].dtype == torch.int64 and sample["labels"].tolist() == labels
        assert sample["boxes"].dtype == torch.float32 and torch.equal(
            sample["boxes"], target[:, 0:4]
        )
        assert sample["landmarks"].shape == (len(labels), 5, 2)
        assert torch.equal(sample["landmarks"].reshape(-1, 10), target[:, 5:15])
        assert torch.equal(sample["image"], got_image)


def test_png_dataset_holds_the_same_pixels_as_npy(tmp_path):
    npy = SyntheticDetection(tmp_path / "n", 4, seed=2, image_format="npy", **SMALL)
    png = SyntheticDetection(tmp_path / "p", 4, seed=2, image_format="png", **SMALL)
    assert all(p.suffix == ".png" for p in (png.root / "images").iterdir())
    for index in range(4):
        assert torch.equal(npy[index][0], png[index][0])
        assert torch.equal(npy[index][1], png[index][1])


def test_generated_content_has_the_promised_shape(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 400, seed=0, min_size=8, max_size=16, max_boxes=50)
    counts, heights, widths = [], set(), set()
    for index in range(len(ds)):
        annotation = ds.annotation(index)
        boxes, landmarks = annotation["boxes"], annotation["landmarks"]
        counts.append(len(boxes))
        heights.add(annotation["height"])
        widths.add(annotation["width"])
        assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
        assert (boxes[:, 2] <= annotation["width"]).all() and (
            boxes[:, 3] <= annotation["height"]
        ).all()
        assert (landmarks[..., 0] >= boxes[:, None, 0]).all()
        assert (landmarks[..., 0] <= boxes[:, None, 2]).all()
        assert (landmarks[..., 1] >= boxes[:, None, 1]).all()
        assert (landmarks[..., 1] <= boxes[:, None, 3]).all()
    assert min(counts) == 0 and max(counts) <= 50 and max(counts) >= 45
    assert heights == set(range(8, 17)) and widths == set(range(8, 17))
    share = ds.class_histogram() / len(ds)
    assert share[0] > 0.25  # the commonest class is in a third or more of the images
    assert 0.003 < share[-1] < 0.045  # the rarest in about 2%
    assert share[0] / share[-1] > 8


def test_hand_written_voc_folder(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "images").mkdir()
    image = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    np.save(tmp_path / "images" / "a.npy", image)
    np.save(tmp_path / "images" / "b.npy", image)
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.npy</filename><size><width>5</width><height>4</height></size>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>0.5</ymin><xmax>4</xmax>"
        "<ymax>3.25</ymax></bndbox></object>"
        "<object><name>cat</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>2</xmax><ymax>2</ymax>"
        "</bndbox><landmarks><x1>1</x1><y1>1</y1><x2>2</x2><y2>1</y2><x3>1.5</x3><y3>1.5</y3>"
        "<x4>1</x4><y4>2</y4><x5>2</x5><y5>2</y5></landmarks></object></annotation>"
    )
    (tmp_path / "Annotations" / "b.xml").write_text(
        "<annotation><filename>b.npy</filename><size><width>5</width><height>4</height></size>"
        "</annotation>"
    )
    ds = VOCDetection(tmp_path)
    assert ds.classes == ["cat", "dog"] and len(ds) == 2
    got, target = ds[0]
    assert torch.equal(got, torch.from_numpy(image))
    assert target.tolist()[0] == [1, 0.5, 4, 3.25, 1] + [-1.0] * 10
    assert target.tolist()[1] == [0, 0, 2, 2, 0, 1, 1, 2, 1, 1.5, 1.5, 1, 2, 2, 2]
    empty_image, empty_target = ds[-1]
    assert empty_target.shape == (0, 15) and empty_target.dtype == torch.float32
    as_dict = VOCDetection(tmp_path, classes=["dog", "cat"], sample_format="dict")[1]
    assert as_dict["boxes"].shape == (0, 4) and as_dict["labels"].shape == (0,)
    assert as_dict["landmarks"].shape == (0, 5, 2)
    assert [
        labels.tolist() for labels in VOCDetection(tmp_path, classes=["dog", "cat"]).labels()
    ] == [[0, 1], []]
    with pytest.raises(ValueError, match="'cat' is not in classes"):
        VOCDetection(tmp_path, classes=["dog"])[0]
    np.save(tmp_path / "images" / "b.npy", image[:, :3])
    with pytest.raises(ValueError, match="says 4x5 but the image is 3x5"):
        ds[1]


def test_labels_never_decode_an_image(tmp_path, monkeypatch):
    written = SyntheticDetection(tmp_path / "d", 30, seed=4, **SMALL)
    expected = [fd._synthesize(4, index, written.params)[1] for index in range(30)]
    for image in (tmp_path / "d" / "images").iterdir():
        image.write_bytes(b"not an image at all")
    fresh = VOCDetection(tmp_path / "d")
    with pytest.raises(ValueError, match="cannot load the image"):
        fresh[0]  # the corruption is real: decoding fails

    def forbidden(path):
        raise AssertionError(f"decoded {path}")

    monkeypatch.setattr(fd, "_load_image", forbidden)
    monkeypatch.setattr(fd, "read_png", forbidden)
    assert [labels.tolist() for labels in fresh.labels()] == expected
    weights = fresh.image_class_weights()
    assert weights.shape == (30,) and (weights > 0).all()
    assert fresh.class_histogram().sum() == sum(len(set(labels)) for labels in expected)


def test_image_class_weights_exact_values():
    labels = [np.array([0, 0]), np.array([0]), np.array([0, 1]), np.array([], dtype=np.int64)]
    np.testing.assert_allclose(fd.image_class_weights(labels, 3), [1 / 3, 1 / 3, 1.0, 1.0])
    assert fd.class_histogram(labels, 3).tolist() == [3, 1, 0]
    assert fd.class_histogram(labels, 3, indices=[2, 2, 1, 3]).tolist() == [3, 2, 0]
    assert fd.class_histogram(labels, 3, indices=torch.tensor([0])).tolist() == [1, 0, 0]


def test_weights_rebalance_an_epoch_of_fast_weighted_sampler(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 400, seed=0, min_size=8, max_size=8)
    before = ds.class_histogram() / len(ds)
    sampler = FastWeightedSampler(ds.image_class_weights(), num_samples=20000, seed=0)
    after = ds.class_histogram(sampler.indices()) / 20000
    assert after[-1] > 3 * before[-1]
    assert after.max() / after.min() < 0.5 * before.max() / before.min()


def _encode_png(pixels: np.ndarray, filters: list[int]) -> bytes:
    """A reference PNG encoder for RGB with a chosen filter per row (to test the decoder)."""
    height, width, _ = pixels.shape
    raw = pixels.reshape(height, width * 3).astype(np.int64)
    out = bytearray()
    for y in range(height):
        kind = filters[y]
        out.append(kind)
        for x in range(width * 3):
            left = raw[y, x - 3] if x >= 3 else 0
            up = raw[y - 1, x] if y else 0
            upper_left = raw[y - 1, x - 3] if y and x >= 3 else 0
            estimate = left + up - upper_left
            pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - upper_left)
            paeth = left if pa <= pb and pa <= pc else (up if pb <= pc else upper_left)
            predictor = [0, left, up, (left + up) // 2, paeth][kind]
            out.append(int(raw[y, x] - predictor) & 0xFF)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(out)))
        + chunk(b"IEND", b"")
    )


def test_png_reader_undoes_every_filter(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(10, 7, 3), dtype=np.uint8)
    path = tmp_path / "f.png"
    path.write_bytes(_encode_png(pixels, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]))
    assert np.array_equal(fd.read_png(path), pixels.transpose(2, 0, 1))
    fd.write_png(path, torch.from_numpy(pixels.transpose(2, 0, 1).copy()))
    assert np.array_equal(fd.read_png(path), pixels.transpose(2, 0, 1))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ValueError, match="truncated PNG"):
        fd.read_png(path)


def test_dataset_pickles_for_spawn_workers(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 3, seed=0, sample_format="dict", **SMALL)
    ds.labels()
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._labels is None
    assert torch.equal(clone[2]["boxes"], ds[2]["boxes"])


def test_bad_arguments_raise_named_errors(tmp_path):
    with pytest.raises(ValueError, match="sample_format"):
        SyntheticDetection(tmp_path / "a", 2, sample_format="list", **SMALL)
    with pytest.raises(ValueError, match="image_format"):
        SyntheticDetection(tmp_path / "a", 2, image_format="jpeg", **SMALL)
    with pytest.raises(ValueError, match="max_size should be >= min_size"):
        SyntheticDetection(tmp_path / "a", 2, min_size=10, max_size=9)
    with pytest.raises(ValueError, match="num_images"):
        SyntheticDetection(tmp_path / "a", 0, **SMALL)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(ValueError, match="not written by SyntheticDetection"):
        SyntheticDetection(foreign, 2, **SMALL)
    assert (foreign / "thesis.txt").read_text() == "precious"
    with pytest.raises(ValueError, match="Annotations"):
        VOCDetection(tmp_path / "nowhere")
    ds = SyntheticDetection(tmp_path / "b", 2, **SMALL)
    with pytest.raises(IndexError, match="out of range"):
        ds[2]
    with pytest.raises(TypeError, match="index should be an int"):
        ds[0.5]
    with pytest.raises(TypeError, match="transform"):
        VOCDetection(ds.root, transform=3)
