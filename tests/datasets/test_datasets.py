"""VOCDetection on real VOC layouts, the decoders against Pillow, SyntheticDetection, bad input"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastloader import FastWeightedSampler, SyntheticDetection, VOCDetection
from fastloader import datasets as fd
from fastloader.datasets import _base, synthetic, voc
from fastloader.io import decode
from tests.helpers.files import pillow_pixels, tree_bytes

SMALL = dict(min_size=12, max_size=24)


# --------------------------------------------------------------------------------------------
# A real VOC2007 folder, written here with Pillow


def _object(name: str, box: tuple, difficult: int | None = 0) -> str:
    flag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    coords = "".join(
        f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
    )
    return f"<object><name>{name}</name><pose>Left</pose>{flag}<bndbox>{coords}</bndbox></object>"


def _annotation(filename: str | None, height: int, width: int, objects: list[str]) -> str:
    name = "" if filename is None else f"<filename>{filename}</filename>"
    return (
        f"<annotation><folder>VOC2007</folder>{name}<source><database>The VOC2007 Database"
        f"</database></source><size><width>{width}</width><height>{height}</height>"
        f"<depth>3</depth></size><segmented>0</segmented>{''.join(objects)}</annotation>"
    )


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 40, height)[:, None, None]
    return np.clip(ramp + rng.integers(0, 30, (height, width, 3)), 0, 255).astype(np.uint8)


def make_voc2007(root: Path) -> Path:
    """VOCdevkit/VOC2007 with 4 images: RGB JPEGs (landscape, portrait), a grey JPEG, and a PNG
    named by <filename>; difficult objects; a split file listing ids out of name order."""
    voc_root = root / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc_root / sub).mkdir(parents=True)
    Image.fromarray(_photo(30, 40, 0)).save(voc_root / "JPEGImages/000005.jpg", quality=90)
    Image.fromarray(_photo(44, 28, 1)).save(voc_root / "JPEGImages/000007.jpg", quality=75)
    Image.fromarray(_photo(20, 24, 2)[:, :, 0]).save(voc_root / "JPEGImages/000009.jpg")
    Image.fromarray(_photo(16, 18, 3)).save(voc_root / "JPEGImages/000012.png")
    annotations = {
        "000005": _annotation(
            "000005.jpg",
            30,
            40,
            [
                _object("chair", (1, 2, 10, 20)),
                _object("chair", (5, 5, 8, 9), difficult=1),
                _object("person", (0.5, 1.25, 39, 29), difficult=None),
            ],
        ),
        "000007": _annotation("000007.jpg", 44, 28, [_object("car", (3, 4, 20, 40))]),
        "000009": _annotation(None, 20, 24, []),  # no <filename>: <id>.jpg
        "000012": _annotation("000012.png", 16, 18, [_object("dog", (1, 1, 17, 15), 1)]),
    }
    for stem, text in annotations.items():
        (voc_root / "Annotations" / f"{stem}.xml").write_text(text)
    (voc_root / "ImageSets/Main/trainval.txt").write_text("000007\n000005\n\n000012\n000009\n")
    (voc_root / "ImageSets/Main/chair_trainval.txt").write_text("000005  1\n000007 -1\n")
    (voc_root / "ImageSets/Main/test.txt").write_text("")
    return voc_root


def test_voc2007_folder_reads_image_exact_against_pillow(tmp_path):
    root = make_voc2007(tmp_path)
    ds = VOCDetection(root, "trainval")
    assert len(ds) == 4 and ds.classes == list(voc.VOC_CLASSES)
    assert [p.stem for p in ds.annotation_files] == ["000007", "000005", "000012", "000009"]
    for index in range(4):
        image, target = ds[index]
        assert image.dtype == torch.uint8 and image.shape[0] == 3
        assert torch.equal(image, pillow_pixels(ds.image_path(index)))
        assert target.dtype == torch.float32 and target.shape[1] == 15
    chair, person, car = (voc.VOC_CLASSES.index(n) for n in ("chair", "person", "car"))
    _, target = ds[1]  # 000005: the difficult chair is dropped
    assert target[:, :5].tolist() == [[1, 2, 10, 20, chair], [0.5, 1.25, 39, 29, person]]
    assert (target[:, 5:] == -1).all()
    assert [x.tolist() for x in ds.labels()] == [[car], [chair, person], [], []]
    assert ds.image_sizes().tolist() == [[44, 28], [30, 40], [16, 18], [20, 24]]
    np.testing.assert_allclose(ds.aspect_ratios(), [28 / 44, 40 / 30, 18 / 16, 24 / 20])
    kept = VOCDetection(root, "trainval", keep_difficult=True)
    assert [x.tolist() for x in kept.labels()] == [
        [car],
        [chair, chair, person],
        [voc.VOC_CLASSES.index("dog")],
        [],
    ]
    assert kept[1][1][1, :4].tolist() == [5, 5, 8, 9]
    # a class split file (id and a flag per line); no split: every XML, sorted by name
    assert [p.stem for p in VOCDetection(root, "chair_trainval").annotation_files] == [
        "000005",
        "000007",
    ]
    assert [p.stem for p in VOCDetection(root).annotation_files] == [
        "000005",
        "000007",
        "000009",
        "000012",
    ]


def test_samples_are_the_same_before_and_after_the_annotations_are_packed(tmp_path):
    root = make_voc2007(tmp_path)
    lazy = VOCDetection(root, "trainval", classes=voc.VOC_CLASSES, sample_format="dict")
    assert lazy._index is None
    before = [lazy[i] for i in range(len(lazy))]
    lazy.labels()
    assert lazy._index is not None
    for index, sample in enumerate(before):
        after = lazy[index]
        for key in ("image", "boxes", "labels", "landmarks"):
            assert torch.equal(sample[key], after[key]) and sample[key].dtype == after[key].dtype
    after = lazy[1]
    after["boxes"].add_(100)  # a sample is the caller's: changing it leaves the dataset as it was
    assert torch.equal(lazy[1]["boxes"], before[1]["boxes"])


@pytest.mark.parametrize("decoder", decode.DECODERS)
def test_each_decoder_gives_pillows_pixels(tmp_path, decoder):
    if decoder not in decode.available_decoders():
        pytest.skip(f"{decoder} is not installed")
    rng = np.random.default_rng(0)
    for index, (height, width, quality, mode) in enumerate(
        [(37, 53, 90, "RGB"), (64, 48, 50, "RGB"), (33, 17, 95, "L"), (640, 480, 90, "RGB")]
    ):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = tmp_path / f"{index}.jpg"
        image = Image.fromarray(pixels if mode == "RGB" else pixels[:, :, 0])
        image.save(path, quality=quality)
        got = decode.read_image(path, decoder)
        assert got.dtype == torch.uint8 and got.shape == (3, height, width)
        assert got.stride() == (1, 3 * width, 3)  # the decoder's own [H, W, 3] buffer
        assert torch.equal(got, pillow_pixels(path)), f"{decoder} differs on {mode} q{quality}"
    cmyk = tmp_path / "cmyk.jpg"  # simplejpeg declines CMYK: Pillow takes over
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "CMYK").save(cmyk)
    assert torch.equal(decode.read_image(cmyk, decoder), pillow_pixels(cmyk))


def test_auto_decoder_is_the_fastest_installed():
    expected = "simplejpeg" if "simplejpeg" in decode.available_decoders() else "pillow"
    assert decode.default_jpeg_decoder() == expected


# --------------------------------------------------------------------------------------------
# Bad input: each error names the file; empty inputs give documented empty results


def test_missing_image_names_the_file(tmp_path):
    root = make_voc2007(tmp_path)
    (root / "JPEGImages/000005.jpg").unlink()
    with pytest.raises(ValueError, match=r"000005\.jpg: image file not found"):
        VOCDetection(root, "trainval")[1]


@pytest.mark.parametrize("decoder", ["auto", "pillow"])
def test_unreadable_jpeg_names_the_file(tmp_path, decoder):
    root = make_voc2007(tmp_path)
    path = root / "JPEGImages/000007.jpg"
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match=r"000007\.jpg: cannot read the image"):
        VOCDetection(root, "trainval", decoder=decoder)[0]
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"000007\.jpg: cannot read the image"):
        VOCDetection(root, "trainval", decoder=decoder)[0]


def test_xml_without_size_names_the_file(tmp_path):
    root = make_voc2007(tmp_path)
    xml = root / "Annotations/000007.xml"
    xml.write_text(xml.read_text().replace("<size>", "<nosize>").replace("</size>", "</nosize>"))
    ds = VOCDetection(root, "trainval", classes=voc.VOC_CLASSES)
    for read in (lambda: ds[0], ds.image_sizes, ds.labels):
        with pytest.raises(ValueError, match=r"000007\.xml: missing <size> element"):
            read()


def test_unknown_class_names_the_file(tmp_path):
    root = make_voc2007(tmp_path)
    xml = root / "Annotations/000005.xml"
    xml.write_text(xml.read_text().replace("person", "unicorn"))
    with pytest.raises(ValueError, match=r"000005\.xml: class 'unicorn' is not in classes"):
        VOCDetection(root, "trainval", classes=voc.VOC_CLASSES)[1]
    with pytest.raises(ValueError, match=r"000005\.xml: class 'unicorn' is not in classes"):
        VOCDetection(root, "trainval", classes=voc.VOC_CLASSES).labels()
    # without classes, the names found are the classes, with a warning: they are not VOC's
    with pytest.warns(UserWarning, match="class indices are the 4 names found"):
        assert "unicorn" in VOCDetection(root, "trainval").classes


def test_empty_split_is_an_empty_dataset(tmp_path):
    root = make_voc2007(tmp_path)
    ds = VOCDetection(root, "test")
    assert len(ds) == 0 and ds.classes == list(voc.VOC_CLASSES)
    assert ds.labels() == [] and ds.image_sizes().shape == (0, 2)
    assert ds.aspect_ratios().shape == (0,) and ds.image_class_weights().shape == (0,)
    assert ds.class_histogram().tolist() == [0] * 20
    with pytest.raises(IndexError, match="out of range"):
        ds[0]


def test_missing_split_file_or_annotation_names_the_file(tmp_path):
    root = make_voc2007(tmp_path)
    with pytest.raises(ValueError, match=r"ImageSets/Main/val\.txt: split file not found"):
        VOCDetection(root, "val")
    (root / "ImageSets/Main/trainval.txt").write_text("000005\n999999\n")
    ds = VOCDetection(root, "trainval", classes=voc.VOC_CLASSES)
    with pytest.raises(ValueError, match=r"999999\.xml: annotation file not found"):
        ds[1]
    (root / "Annotations/000005.xml").write_text("<annotation><size>")
    with pytest.raises(ValueError, match=r"000005\.xml: cannot parse the annotation"):
        ds[0]


def test_core_imports_without_pillow_and_names_the_extra(tmp_path):
    root = make_voc2007(tmp_path)
    script = (
        "import sys; sys.modules['PIL'] = None; sys.modules['simplejpeg'] = None\n"
        "import fastloader\n"
        "from fastloader import VOCDetection\n"
        f"ds = VOCDetection({str(root)!r}, 'trainval')\n"
        "print(ds.labels()[0].tolist())\n"
        "try:\n    ds[0]\nexcept ImportError as e:\n    print('ImportError:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[6]" in done.stdout  # labels still read: they need no decoder
    assert "fastloader[datasets]" in done.stdout and "000007.jpg" in done.stdout


# --------------------------------------------------------------------------------------------
# SyntheticDetection


def test_same_seed_writes_identical_files_and_other_seed_differs(tmp_path):
    a = SyntheticDetection(tmp_path / "a", 12, seed=7, **SMALL)
    b = SyntheticDetection(tmp_path / "b", 12, seed=7, **SMALL)
    c = SyntheticDetection(tmp_path / "c", 12, seed=8, **SMALL)
    files_a, files_b, files_c = (tree_bytes(d.root) for d in (a, b, c))
    assert len(files_a) == 12 * 3 + 4  # jpg, npy, xml each; classes.txt, split file, marker, list
    assert files_a == files_b
    differing = [
        name for name in files_a if name.startswith("JPEGImages") and files_a[name] != files_c[name]
    ]
    assert len(differing) == 12


def test_jpeg_and_predecoded_npy_hold_the_same_samples(tmp_path):
    jpeg = SyntheticDetection(tmp_path / "d", 6, seed=2, **SMALL)
    npy = SyntheticDetection(tmp_path / "d", 6, seed=2, image_format="npy", **SMALL)
    assert not npy.generated and jpeg.image_format == "jpeg"
    for index in range(6):
        assert jpeg.image_path(index).suffix == ".jpg" and npy.image_path(index).suffix == ".npy"
        (image_j, target_j), (image_n, target_n) = jpeg[index], npy[index]
        assert torch.equal(image_j, pillow_pixels(jpeg.image_path(index)))
        assert torch.equal(image_j, image_n) and image_n.is_contiguous()
        assert torch.equal(target_j, target_n)
        # JPEG is lossy, but mildly: the decoded pixels stay near the generated ones
        generated = torch.from_numpy(synthetic._synthesize(2, index, jpeg.params)[0])
        assert (image_j.float().mean() - generated.float().mean()).abs() < 3
        assert (image_j.int() - generated.int()).abs().float().mean() < 20


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
    second = SyntheticDetection(None, 5, seed=3, image_format="npy", **SMALL)
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
    assert len(list((tmp_path / "d" / "JPEGImages").iterdir())) == 6


def test_written_annotations_read_back_exactly(tmp_path):
    params = dict(num_classes=20, max_boxes=50, **SMALL)
    tuples = SyntheticDetection(tmp_path / "d", 10, seed=5, **params)
    dicts = SyntheticDetection(tmp_path / "d", 10, seed=5, sample_format="dict", **params)
    assert not dicts.generated
    for index in range(10):
        image, labels, boxes, landmarks = synthetic._synthesize(5, index, tuples.params)
        got_image, target = tuples[index]
        assert got_image.dtype == torch.uint8 and got_image.shape == image.shape
        assert target.dtype == torch.float32 and target.shape == (len(labels), 15)
        assert torch.equal(target[:, 0:4], torch.from_numpy(boxes.astype(np.float32)))
        assert target[:, 4].tolist() == [float(label) for label in labels]
        assert torch.equal(
            target[:, 5:15], torch.from_numpy(landmarks.reshape(-1, 10).astype(np.float32))
        )
        sample = dicts[index]
        assert sorted(sample) == ["boxes", "image", "labels", "landmarks"]
        assert sample["labels"].dtype == torch.int64 and sample["labels"].tolist() == labels
        assert torch.equal(sample["boxes"], target[:, 0:4])
        assert sample["landmarks"].shape == (len(labels), 5, 2)
        assert torch.equal(sample["landmarks"].reshape(-1, 10), target[:, 5:15])
        assert torch.equal(sample["image"], got_image)


def test_generated_content_has_the_promised_shape(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 400, seed=0, min_size=8, max_size=16, max_boxes=50)
    counts = []
    for index in range(len(ds)):
        annotation = ds.annotation(index)
        boxes, landmarks = annotation["boxes"], annotation["landmarks"]
        counts.append(len(boxes))
        assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
        assert (boxes[:, 2] <= annotation["width"]).all()
        assert (boxes[:, 3] <= annotation["height"]).all()
        assert (landmarks[..., 0] >= boxes[:, None, 0]).all()
        assert (landmarks[..., 0] <= boxes[:, None, 2]).all()
        assert (landmarks[..., 1] >= boxes[:, None, 1]).all()
        assert (landmarks[..., 1] <= boxes[:, None, 3]).all()
    assert min(counts) == 0 and max(counts) <= 50 and max(counts) >= 45
    sizes = ds.image_sizes()
    assert set(sizes[:, 0]) == set(range(8, 17)) and set(sizes[:, 1]) == set(range(8, 17))
    share = ds.class_histogram() / len(ds)
    assert share[0] > 0.25  # the commonest class is in a third or more of the images
    assert 0.003 < share[-1] < 0.045  # the rarest in about 2%
    assert share[0] / share[-1] > 8


def test_voc_shapes_mix_landscape_and_portrait_with_the_longer_side_fixed(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 600, seed=0, max_size=60, shapes="voc", max_boxes=2)
    sizes = ds.image_sizes()
    assert (sizes.max(axis=1) == 60).all()
    ratios = ds.aspect_ratios()
    np.testing.assert_allclose(ratios, sizes[:, 1] / sizes[:, 0])
    expected = {round(r, 2): share for r, share in synthetic.VOC_SHAPES}
    measured = {
        round(r, 2): n / len(ds)
        for r, n in zip(*np.unique(ratios, return_counts=True), strict=True)
    }
    assert set(measured) == set(expected)
    for ratio, share in expected.items():  # 600 draws: within 4.5 standard deviations
        assert abs(measured[ratio] - share) < 4.5 * np.sqrt(share * (1 - share) / 600), ratio
    for index in (0, 1, 2):  # the JPEGs really have those sizes
        assert tuple(ds[index][0].shape[1:]) == tuple(sizes[index])


def test_labels_sizes_and_weights_never_decode_an_image(tmp_path, monkeypatch):
    written = SyntheticDetection(tmp_path / "d", 30, seed=4, **SMALL)
    expected = [synthetic._synthesize(4, index, written.params)[1] for index in range(30)]
    sizes = written.image_sizes()
    for image in (tmp_path / "d" / "JPEGImages").iterdir():
        image.write_bytes(b"not an image at all")
    fresh = VOCDetection(tmp_path / "d", "trainval")
    with pytest.raises(ValueError, match="cannot read the image"):
        fresh[0]  # the corruption is real: decoding fails

    def forbidden(*args, **kwargs):
        raise AssertionError(f"decoded {args}")

    monkeypatch.setattr(_base, "read_image", forbidden)  # every reader decodes there
    assert [labels.tolist() for labels in fresh.labels()] == expected
    assert np.array_equal(fresh.image_sizes(), sizes)
    weights = fresh.image_class_weights()
    assert weights.shape == (30,) and (weights > 0).all()
    assert fresh.class_histogram().sum() == sum(len(set(labels)) for labels in expected)


def test_image_class_weights_exact_values():
    labels = [np.array([0, 0]), np.array([0]), np.array([0, 1]), np.array([], dtype=np.int64)]
    np.testing.assert_allclose(fd.image_class_weights(labels, 3), [1 / 3, 1 / 3, 1.0, 1.0])
    assert fd.class_histogram(labels, 3).tolist() == [3, 1, 0]
    assert fd.class_histogram(labels, 3, indices=[2, 2, 1, 3]).tolist() == [3, 2, 0]
    assert fd.class_histogram(labels, 3, indices=torch.tensor([0])).tolist() == [1, 0, 0]
    assert fd.class_histogram([], 2).tolist() == [0, 0]


def test_weights_rebalance_an_epoch_of_fast_weighted_sampler(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 400, seed=0, min_size=8, max_size=8)
    before = ds.class_histogram() / len(ds)
    sampler = FastWeightedSampler(ds.image_class_weights(), num_samples=20000, seed=0)
    after = ds.class_histogram(sampler.indices()) / 20000
    assert after[-1] > 3 * before[-1]
    assert after.max() / after.min() < 0.5 * before.max() / before.min()


def test_dataset_pickles_for_spawn_workers_with_its_packed_annotations(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 3, seed=0, sample_format="dict", **SMALL)
    ds.labels()
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._index is not None
    assert torch.equal(clone[2]["boxes"], ds[2]["boxes"])
    assert torch.equal(clone[2]["image"], ds[2]["image"])


def test_bad_arguments_raise_named_errors(tmp_path):
    with pytest.raises(ValueError, match="sample_format"):
        SyntheticDetection(tmp_path / "a", 2, sample_format="list", **SMALL)
    with pytest.raises(ValueError, match="image_format"):
        SyntheticDetection(tmp_path / "a", 2, image_format="png", **SMALL)
    with pytest.raises(ValueError, match="shapes"):
        SyntheticDetection(tmp_path / "a", 2, shapes="square", **SMALL)
    with pytest.raises(ValueError, match="jpeg_quality"):
        SyntheticDetection(tmp_path / "a", 2, jpeg_quality=100, **SMALL)
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
    with pytest.raises(ValueError, match="decoder should be"):
        VOCDetection(ds.root, decoder="opencv")
    with pytest.raises(ValueError, match="keep_difficult"):
        VOCDetection(ds.root, keep_difficult="yes")


def test_npy_images_read_into_recycled_memory_stay_independent(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 6, seed=9, image_format="npy", **SMALL)
    expected = [torch.from_numpy(np.load(ds.image_path(i))) for i in range(6)]
    held = [ds[i][0] for i in range(6)]  # all alive at once: six distinct blocks
    assert len({image.data_ptr() for image in held}) == 6
    for _ in range(3):  # freed blocks come back for later samples, with the right pixels
        del held
        held = [ds[i][0] for i in (5, 4, 3, 2, 1, 0)][::-1]
        assert all(torch.equal(a, b) for a, b in zip(held, expected, strict=False))
        held[0].fill_(7)  # writable, and writing one sample leaves the others alone
        assert all(torch.equal(a, b) for a, b in zip(held[1:], expected[1:], strict=False))


def test_bad_npy_images_name_the_file(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 2, seed=0, image_format="npy", **SMALL)
    path = ds.image_path(0)
    np.save(path, np.zeros((3, 4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"000000\.npy: cannot read the image.*uint8 \[3, H, W\]"):
        ds[0]
    np.save(path, np.asfortranarray(np.zeros((3, 4, 5), dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"000000\.npy: cannot read the image.*Fortran"):
        ds[0]
    np.save(path, np.zeros((3, 4, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"000000\.npy: cannot read the image.*truncated"):
        ds[0]
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"000000\.npy: cannot read the image"):
        ds[0]
