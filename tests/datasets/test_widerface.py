"""WIDERFace on Pytorch_Retinaface's label.txt layout: targets against an independent reading of
the file as Retinaface's WiderFaceDetection reads it, images against Pillow, label statistics
without decoding, read_into_batch, every malformed line named; and the synthetic generator"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fastloader import DetectionCollate, WIDERFace
from fastloader.datasets import _base, synthetic, synthetic_widerface
from fastloader.io.deferred import DeferredSamples, ImageFile
from tests.helpers.files import pillow_pixels, tree_bytes


def _retinaface_targets(label_file: Path) -> tuple[list[str], list[np.ndarray]]:
    """An independent reading of label.txt by the rules Pytorch_Retinaface's WiderFaceDetection
    (data/wider_face.py) applies: the path is what follows '# '; a face's float64 row is x, y,
    x + w, y + h, the landmark x, y at fields 4,5 7,8 10,11 13,14 16,17, and the label -1 when
    the first landmark's x is negative, else 1."""
    paths: list[str] = []
    faces: list[list[list[float]]] = []
    for line in label_file.read_text().splitlines():
        if line.startswith("# "):
            paths.append(line[2:])
            faces.append([])
            continue
        v = [float(field) for field in line.split(" ")]
        marks = [v[c] for start in (4, 7, 10, 13, 16) for c in (start, start + 1)]
        faces[-1].append([v[0], v[1], v[0] + v[2], v[1] + v[3], *marks, -1 if v[4] < 0 else 1])
    return paths, [np.array(rows, dtype=np.float64).reshape(-1, 15) for rows in faces]


# --------------------------------------------------------------------------------------------
# Reading


def test_synthetic_folder_reads_as_retinaface_reads_it(tmp_path):
    root = synthetic_widerface(tmp_path / "w", 10, seed=3, width=96, max_faces=12)
    ds = WIDERFace(root, "train")
    paths, targets = _retinaface_targets(root / "train" / "label.txt")
    assert len(ds) == 10 and len(paths) == 10
    flags = []
    for index in range(10):
        image, target = ds[index]
        assert ds.image_path(index) == root / "train" / "images" / paths[index]
        assert image.dtype == torch.uint8 and image.shape[0] == 3 and image.shape[2] == 96
        assert torch.equal(image, pillow_pixels(ds.image_path(index)))
        assert target.dtype == torch.float32 and target.shape == (len(targets[index]), 15)
        assert np.array_equal(target.numpy(), targets[index].astype(np.float32))
        flags += target[:, 14].tolist()
    # both kinds of faces are there, and a face without landmarks has every landmark at -1
    assert (
        flags.count(1.0) > 10
        and flags.count(-1.0) > 5
        and len(flags) == flags.count(1.0) + flags.count(-1.0)
    )
    every = torch.cat([ds[i][1] for i in range(10)])
    assert (every[every[:, 14] == -1][:, 4:14] == -1).all()
    assert (every[every[:, 14] == 1][:, 4:14] >= 0).all()


def _write_folder(root: Path, label_text: str, images: dict[str, tuple[int, int]]) -> Path:
    for name, (height, width) in images.items():
        path = root / "train" / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(len(name)).integers(0, 256, (height, width, 3), np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
    (root / "train" / "label.txt").write_text(label_text)
    return root


LABELS = (
    "# 0--Parade/a.jpg\n"
    "449 330 122 149 488.906 373.643 0.0 542.089 376.442 0.0 515.031 412.83 0.0 "
    "485.174 425.893 0.0 538.357 431.491 0.0 0.82\n"
    "78 221 7 8 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0\n"
    "# 0--Parade/empty.jpg\n"
    "\n"
    "# 1--Handshaking/b.jpg\n"
    "10   20 30 40\n"  # the box alone, any whitespace: a face without landmarks
)


def test_hand_written_label_file_exact_values(tmp_path):
    root = _write_folder(
        tmp_path, LABELS, {"0--Parade/a.jpg": (600, 1024), "0--Parade/empty.jpg": (40, 30),
                           "1--Handshaking/b.jpg": (70, 50)},
    )  # fmt: skip
    ds = WIDERFace(root)
    assert len(ds) == 3 and ds.split == "train"
    _, target = ds[0]
    expected = np.array(
        [
            [449, 330, 571, 479, 488.906, 373.643, 542.089, 376.442, 515.031, 412.83,
             485.174, 425.893, 538.357, 431.491, 1],
            [78, 221, 85, 229] + [-1] * 11,
        ],
        dtype=np.float32,
    )  # fmt: skip
    assert np.array_equal(target.numpy(), expected)
    assert ds[1][1].shape == (0, 15) and ds[1][1].dtype == torch.float32
    assert ds[2][1].tolist() == [[10, 20, 40, 60] + [-1] * 11]
    dicts = WIDERFace(root, sample_format="dict")
    sample = dicts[0]
    assert sorted(sample) == ["boxes", "image", "labels", "landmarks"]
    assert sample["labels"].dtype == torch.int64 and sample["labels"].tolist() == [1, -1]
    assert sample["boxes"].dtype == torch.float32 and sample["boxes"].shape == (2, 4)
    assert torch.equal(sample["landmarks"].reshape(2, 10), torch.from_numpy(expected[:, 4:14]))
    assert torch.equal(sample["image"], ds[0][0])
    # statistics: one class, 'face'; sizes from the headers
    assert ds.classes == ("face",) and ds.num_classes == 1
    assert [x.tolist() for x in ds.labels()] == [[0, 0], [], [0]]
    assert ds.class_histogram().tolist() == [2]
    np.testing.assert_allclose(ds.image_class_weights(), [0.5, 1.0, 0.5])
    assert ds.image_sizes().tolist() == [[600, 1024], [40, 30], [70, 50]]
    np.testing.assert_allclose(ds.aspect_ratios(), [1024 / 600, 30 / 40, 50 / 70])
    assert ds.annotation(2)["path"] == "1--Handshaking/b.jpg"


def test_statistics_and_sizes_never_decode(tmp_path, monkeypatch):
    root = synthetic_widerface(tmp_path / "w", 6, seed=1, width=64)
    fresh = WIDERFace(root)

    def forbidden(*args, **kwargs):
        raise AssertionError(f"decoded {args}")

    monkeypatch.setattr(_base, "read_image", forbidden)  # every reader decodes there
    sizes = fresh.image_sizes()
    assert sizes.shape == (6, 2) and (sizes[:, 1] == 64).all()
    assert set(sizes[:, 0]) <= {48, 43, 51, 64, 85, 96}  # 64 / VOC_SHAPES' ratios
    assert fresh.image_class_weights().shape == (6,) and len(fresh.labels()) == 6
    monkeypatch.undo()
    assert [tuple(fresh[i][0].shape[1:]) for i in range(6)] == [tuple(s) for s in sizes]


def test_transform_gets_image_and_target(tmp_path):
    root = synthetic_widerface(tmp_path / "w", 3, seed=0, width=32)
    seen = []

    def flip(image, target):
        seen.append((image.shape, type(target)))
        return image.flip(-1), target[:, :4] if isinstance(target, torch.Tensor) else target

    ds = WIDERFace(root, transform=flip)
    plain = WIDERFace(root)
    image, target = ds[1]
    assert ds.transform is flip and torch.equal(image, plain[1][0].flip(-1))
    assert torch.equal(target, plain[1][1][:, :4])
    dicts = WIDERFace(root, transform=flip, sample_format="dict")
    sample = dicts[1]
    assert seen[-1][1] is dict and sorted(sample) == ["boxes", "image", "labels", "landmarks"]
    assert torch.equal(sample["image"], plain[1][0].flip(-1))
    # with a transform, the batch fetch gives ordinary samples
    assert isinstance(WIDERFace(root, transform=flip, read_into_batch=True).__getitems__([0]), list)


def test_read_into_batch_from_predecoded_copies_equals_decoded_batches(tmp_path):
    root = synthetic_widerface(tmp_path / "w", 8, seed=2, width=48, predecoded=True)
    jpeg = WIDERFace(root)
    npy = WIDERFace(root, image_dir="predecoded", image_suffix=".npy", read_into_batch=True)
    assert npy.image_path(3).suffix == ".npy"
    indices = [5, 0, 3, 3, 7]
    fetched = npy.__getitems__(indices)
    assert isinstance(fetched, DeferredSamples)
    assert all(isinstance(image, ImageFile) for image, _ in fetched.pairs)
    collate = DetectionCollate()
    got, expected = collate(fetched), collate([jpeg[i] for i in indices])
    assert torch.equal(got.images, expected.images) and torch.equal(got.packed(), expected.packed())
    batches = list(DataLoader(npy, batch_size=3, collate_fn=collate))
    assert len(batches) == 3 and sum(len(b.images) for b in batches) == 8
    # JPEG folders are decoded in the batch fetch instead
    deferred_jpeg = WIDERFace(root, read_into_batch=True).__getitems__([1])
    assert torch.equal(deferred_jpeg.pairs[0][0], jpeg[1][0])


def test_pickles_with_its_sizes(tmp_path):
    root = synthetic_widerface(tmp_path / "w", 3, seed=0, width=32)
    ds = WIDERFace(root, sample_format="dict")
    ds.image_sizes()
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._sizes is not None and torch.equal(clone[2]["boxes"], ds[2]["boxes"])


# --------------------------------------------------------------------------------------------
# Bad input: every error names the file and the line


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("# a.jpg\n1 2 3\n", 2, "a face line has 3 numbers; expected 20"),
        ("# a.jpg\n" + " ".join(["1"] * 19) + "\n", 2, "a face line has 19 numbers"),
        ("# a.jpg\n1 2 x 4\n", 2, "'x' is not a number"),
        ("# a.jpg\n1 2 nan 4\n", 2, "every number should be finite"),
        ("# a.jpg\n1 2 1e400 4\n", 2, "every number should be finite"),
        ("# a.jpg\n1 2 -3 4\n", 2, "the box.s width and height should be >= 0"),
        ("1 2 3 4\n# a.jpg\n", 1, "a face line before any '# <image path>' line"),
        ("# a.jpg\n#\n", 2, "'#' should be followed by an image path"),
        ("# a.jpg\n# ../../etc/x.jpg\n", 2, "image path '../../etc/x.jpg' points outside"),
        ("# /etc/hostname\n", 1, "image path '/etc/hostname' points outside"),
    ],
)
def test_malformed_label_lines_name_file_and_line(tmp_path, text, line, message):
    root = _write_folder(tmp_path, text, {"a.jpg": (8, 8)})
    with pytest.raises(ValueError, match=rf"label\.txt line {line}: {message}"):
        WIDERFace(root)


def test_missing_files_name_the_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=r"train/label\.txt: label file not found"):
        WIDERFace(tmp_path)
    root = _write_folder(tmp_path, LABELS, {"0--Parade/a.jpg": (6, 8)})
    ds = WIDERFace(root)
    with pytest.raises(
        ValueError, match=r"empty\.jpg: image file not found \(listed at .*line 4\)"
    ):
        ds[1]
    with pytest.raises(
        ValueError, match=r"empty\.jpg: image file not found \(listed at .*line 4\)"
    ):
        ds.image_sizes()
    (root / "train" / "images" / "1--Handshaking").mkdir()
    (root / "train" / "images" / "1--Handshaking" / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"b\.jpg: cannot read the image.*line 6\)"):
        ds[2]
    npy = WIDERFace(root, image_suffix=".npy", read_into_batch=True)
    with pytest.raises(ValueError, match=r"a\.npy: image file not found \(listed at .*line 1\)"):
        npy.__getitems__([0])


def test_bad_arguments_raise_named_errors(tmp_path):
    root = synthetic_widerface(tmp_path / "w", 2, seed=0, width=32)
    for split in ("", "../train", "a/b", "..", 3):
        with pytest.raises(ValueError, match="split should be a split folder name"):
            WIDERFace(root, split)
    with pytest.raises(ValueError, match="sample_format"):
        WIDERFace(root, sample_format="list")
    with pytest.raises(TypeError, match="transform"):
        WIDERFace(root, transform=3)
    with pytest.raises(ValueError, match="decoder should be"):
        WIDERFace(root, decoder="opencv")
    with pytest.raises(ValueError, match="read_into_batch"):
        WIDERFace(root, read_into_batch="yes")
    with pytest.raises(ValueError, match="max_image_pixels"):
        WIDERFace(root, max_image_pixels=0)
    with pytest.raises(ValueError, match=r"image too large.*line 1\)"):
        WIDERFace(root, max_image_pixels=100)[0]
    ds = WIDERFace(root)
    with pytest.raises(IndexError, match="out of range"):
        ds[2]
    with pytest.raises(TypeError, match="index should be an int"):
        ds[0.5]
    assert torch.equal(ds[torch.tensor(1)][1], ds[-1][1])


# --------------------------------------------------------------------------------------------
# The generator


def test_generator_is_a_pure_function_of_seed_and_parameters(tmp_path):
    a = synthetic_widerface(tmp_path / "a", 5, seed=7, width=64)
    b = synthetic_widerface(tmp_path / "b", 5, seed=7, width=64)
    c = synthetic_widerface(tmp_path / "c", 5, seed=8, width=64)
    files_a = tree_bytes(a)
    assert files_a == tree_bytes(b) and files_a != tree_bytes(c)
    assert "train/images/3--Synthetic/000003.jpg" in files_a
    marker = json.loads(files_a["synthetic.json"])
    assert marker["generator"] == "synthetic_widerface" and marker["params"]["width"] == 64
    listed = set(files_a["synthetic-files.txt"].decode().split())
    assert listed == set(files_a) - {"synthetic.json", "synthetic-files.txt"}
    stamp = {p: p.stat().st_mtime_ns for p in a.rglob("*")}
    assert synthetic_widerface(tmp_path / "a", 5, seed=7, width=64) == a  # reused as is
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*")} == stamp
    # 1024 wide by default, as WIDER FACE's images
    big = WIDERFace(synthetic_widerface(tmp_path / "big", 1, seed=0, max_faces=3))
    assert big.image_sizes()[0, 1] == 1024


def test_generator_never_deletes_what_it_did_not_write(tmp_path):
    foreign = tmp_path / "f"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not written by synthetic_widerface"):
        synthetic_widerface(foreign, 2, width=32)
    assert tree_bytes(foreign) == {"notes.txt": b"mine"}
    # SyntheticDetection's folder is not this generator's, and the other way round
    from fastloader import SyntheticDetection

    voc = SyntheticDetection(tmp_path / "voc", 2, min_size=8, max_size=8)
    with pytest.raises(ValueError, match="written by SyntheticDetection, not synthetic_widerface"):
        synthetic_widerface(voc.root, 2, width=32)
    wider = synthetic_widerface(tmp_path / "w", 2, width=32)
    with pytest.raises(ValueError, match="written by synthetic_widerface, not SyntheticDetection"):
        SyntheticDetection(wider, 2, min_size=8, max_size=8)
    # its own folder with other parameters: replaced, and only when it holds nothing else
    (wider / "train" / "extra.txt").write_text("x")
    with pytest.raises(ValueError, match=r"did not write \(train/extra\.txt\)"):
        synthetic_widerface(wider, 3, width=32)
    (wider / "train" / "extra.txt").unlink()
    assert synthetic_widerface(wider, 3, width=32) == wider and len(WIDERFace(wider)) == 3
    assert tree_bytes(wider) == tree_bytes(synthetic_widerface(tmp_path / "w3", 3, width=32))


def test_generator_checks_its_arguments_before_writing(tmp_path, monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("started writing")

    monkeypatch.setattr(synthetic, "_write_widerface", started)
    cases = [
        (dict(num_images=0), "num_images should be a positive integer"),
        (dict(num_images=2**40), "num_images should be at most"),
        (dict(width=8), "width should be at least 16"),
        (dict(width=10**6), "width should be at most 9459"),
        (dict(max_faces=-1), "max_faces should be a non-negative integer"),
        (dict(jpeg_quality=100), "jpeg_quality"),
        (dict(split="../x"), "split should be a split folder name"),
        (dict(predecoded=1), "predecoded should be a boolean"),
        (dict(num_images=10**7, width=9000), r"needs about .* GiB but"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            synthetic_widerface(tmp_path / "w", **{"num_images": 2, **kwargs})
    with pytest.raises(TypeError, match="seed should be an int"):
        synthetic_widerface(tmp_path / "w", 2, seed=None)
    assert list(tmp_path.iterdir()) == []
