"""YOLODetection on ultralytics-layout folders: boxes against a VOC copy, data.yaml against
PyYAML, keypoints, bad label lines, read_into_batch and DataLoader workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fastloader import DetectionCollate, SyntheticDetection, YOLODetection, repeat_factors
from fastloader.datasets import read_data_yaml
from fastloader.io.deferred import DeferredSamples, ImageFile


def yolo_from_voc(voc, root: Path, split: str = "train", suffix: str = ".jpg") -> Path:
    """Writes voc as an ultralytics folder (images copied, labels normalized, with its 5
    landmarks as keypoints of 3 values)."""
    (root / "images" / split).mkdir(parents=True)
    (root / "labels" / split).mkdir(parents=True)
    for i in range(len(voc)):
        info = voc.annotation(i)
        stem = f"im{i:03d}"
        shutil.copy(voc.image_path(i), root / "images" / split / f"{stem}{suffix}")
        w, h = info["width"], info["height"]
        lines = []
        for (x1, y1, x2, y2), label, points in zip(
            info["boxes"].tolist(), info["labels"].tolist(), info["landmarks"].tolist(), strict=True
        ):
            fields = [str(label), repr((x1 + x2) / 2 / w), repr((y1 + y2) / 2 / h)]
            fields += [repr((x2 - x1) / w), repr((y2 - y1) / h)]
            for x, y in points:
                fields += [repr(x / w), repr(y / h), "2"]
            lines.append(" ".join(fields))
        if lines or i % 2:  # some images without a label file, some with an empty one
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    names = "".join(f"  {k}: {name}\n" for k, name in enumerate(voc.classes))
    (root / "data.yaml").write_text(
        f"# written by the test\npath: {root}\ntrain: images/train\nval: images/val\n"
        f"kpt_shape: [5, 3]  # eyes, nose, mouth\nnames:\n{names}"
    )
    return root


@pytest.fixture(scope="module")
def voc_and_yolo(tmp_path_factory):
    base = tmp_path_factory.mktemp("yolo")
    voc = SyntheticDetection(base / "voc", 20, seed=6, max_size=48, shapes="voc", max_boxes=4)
    return voc, yolo_from_voc(voc, base / "y")


def test_boxes_landmarks_and_sizes_match_the_voc_copy(voc_and_yolo):
    voc, root = voc_and_yolo
    ds = YOLODetection(root, "train")
    assert len(ds) == len(voc) and ds.classes == voc.classes and ds.num_landmarks == 5
    assert sum(len(x) for x in ds.labels()) > 15
    np.testing.assert_array_equal(ds.image_sizes(), voc.image_sizes())
    np.testing.assert_array_equal(ds.aspect_ratios(), voc.aspect_ratios())
    for i in range(len(voc)):
        image, target = ds[i]
        voc_image, voc_target = voc[i]
        assert torch.equal(image, voc_image)
        assert target.shape == voc_target.shape and target.dtype == torch.float32
        torch.testing.assert_close(target, voc_target, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(ds.labels()[i], voc.labels()[i])
    np.testing.assert_array_equal(ds.image_class_weights(), voc.image_class_weights())
    factors = repeat_factors(ds.labels(), 0.3, num_classes=ds.num_classes)
    assert factors.shape == (len(ds),) and factors.min() >= 1.0


def test_dict_samples_read_into_batch_and_workers(voc_and_yolo, tmp_path):
    voc, _ = voc_and_yolo
    npy = SyntheticDetection(voc.root, 20, seed=6, max_size=48, shapes="voc", max_boxes=4,
                             image_format="npy")  # fmt: skip
    root = yolo_from_voc(npy, tmp_path / "n", suffix=".npy")
    eager = YOLODetection(root, "train")
    deferred = YOLODetection(root, "train", read_into_batch=True)
    fetched = deferred.__getitems__([4, 1, 1, 9])
    assert isinstance(fetched, DeferredSamples)
    assert all(isinstance(image, ImageFile) for image, _ in fetched.pairs)
    a = DetectionCollate()(fetched)
    b = DetectionCollate()([eager[i] for i in (4, 1, 1, 9)])
    assert torch.equal(a.images, b.images) and torch.equal(a.packed(), b.packed())
    loader = DataLoader(eager, batch_size=5, num_workers=2, collate_fn=DetectionCollate())
    batches = list(loader)
    assert len(batches) == 4 and sum(batch.batch_size for batch in batches) == 20
    sample = YOLODetection(root, "train", sample_format="dict")[3]
    assert set(sample) == {"image", "boxes", "labels", "landmarks"}
    assert sample["landmarks"].shape == (len(sample["labels"]), 5, 2)


def make_folder(root: Path, lines: dict[str, str], yaml: str | None = "names: [a, b, c]\n"):
    from PIL import Image

    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for stem, text in lines.items():
        Image.new("RGB", (20, 10)).save(root / "images" / "val" / f"{stem}.png")
        (root / "labels" / "val" / f"{stem}.txt").write_text(text)
    if yaml is not None:
        (root / "data.yaml").write_text(yaml)
    return root


def test_keypoints_with_two_values_and_no_yaml(tmp_path):
    root = make_folder(tmp_path, {"x": "4 0.5 0.5 0.5 0.5 0.25 0.5 0 0\n"}, yaml=None)
    (root / "k.yaml").write_text("kpt_shape: [2, 2]\n")
    ds = YOLODetection(root, "val", data_yaml=root / "k.yaml")
    assert ds.classes == ["0", "1", "2", "3", "4"] and ds.num_landmarks == 2
    _, target = ds[0]
    assert target.tolist() == [[5.0, 2.5, 15.0, 7.5, 4.0, 5.0, 5.0, -1.0, -1.0]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("0 0.5 0.5 0.2\n", r"x.txt:1: expected 5 fields \(class cx cy w h\), got 4"),
        ("0 0.5 0.5 0.2 0.2\n1 0.1 0.2 0.3 0.4 0.5 0.6\n", "x.txt:2: expected 5 fields"),
        ("0 0.5 1.5 0.2 0.2\n", r"x.txt:1: normalized values should lie in \[0, 1\], got 1.5"),
        ("0 0.5 0.5 -0.2 0.2\n", "x.txt:1: normalized values"),
        ("0 0.5 nan 0.2 0.2\n", "x.txt:1: normalized values"),
        ("3 0.5 0.5 0.2 0.2\n", r"x.txt:1: class 3 is outside \[0, 3\)"),
        ("1.0 0.5 0.5 0.2 0.2\n", "x.txt:1: the class should be an integer"),
        ("0 0.5 0.5 0.2 abc\n", "x.txt:1: expected numbers"),
    ],
)
def test_bad_label_lines_name_file_and_line(tmp_path, text, message):
    root = make_folder(tmp_path, {"x": text})
    with pytest.raises(ValueError, match=message):
        YOLODetection(root, "val")


def test_zero_size_boxes_are_dropped_with_one_warning(tmp_path):
    root = make_folder(
        tmp_path, {"x": "0 0.5 0.5 0 0.2\n1 0.5 0.5 0.2 0.2\n", "y": "2 0.5 0.5 0.2 0\n"}
    )
    with pytest.warns(UserWarning, match="dropped 2 boxes with zero width or height") as caught:
        ds = YOLODetection(root, "val")
    assert len(caught) == 1
    assert [x.tolist() for x in ds.labels()] == [[1], []]


def test_duplicate_stems_and_missing_folders(tmp_path):
    from PIL import Image

    root = make_folder(tmp_path / "d", {"x": ""})
    Image.new("RGB", (4, 4)).save(root / "images" / "val" / "x.jpg")
    with pytest.raises(ValueError, match="share the stem 'x'"):
        YOLODetection(root, "val")
    with pytest.raises(ValueError, match="images/train folder"):
        YOLODetection(root, "train")
    with pytest.raises(ValueError, match="data_yaml"):
        YOLODetection(root, "val", data_yaml=root / "missing.yaml")
    with pytest.raises(ValueError, match="split should be"):
        YOLODetection(root, "")


# --------------------------------------------------------------------------------------------
# data.yaml: the subset read, against PyYAML where it is installed


YAML_FORMS = [
    'names: [person, \'traffic light\', "a \\"q\\""]\n',
    "names:\n  - person\n  - 'it''s'\n  - dog  # comment\n",
    "path: ../d\ntrain: images/train\nnames:\n  0: person\n  2: car\n  1: 'bicycle'\nnc: 3\n",
    "names: {0: a, 1: b}\ndownload: |\n  import os\n  print(1)\n",
    "# top\nkpt_shape: [17, 3]\nflip_idx: [0, 2, 1]\nnames:\n  0: person\n",
    "---\nnames: ['a#b', c] # the '#' inside quotes stays\n",
]


@pytest.mark.parametrize("text", YAML_FORMS)
def test_data_yaml_reads_like_pyyaml(tmp_path, text):
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "data.yaml"
    path.write_text(text)
    expected = yaml.safe_load(text)
    names = expected["names"]
    if isinstance(names, dict):
        names = [names[k] for k in range(len(names))]
    got = read_data_yaml(path)
    assert got["names"] == names
    assert got["nc"] == expected.get("nc")
    assert got["kpt_shape"] == (tuple(expected["kpt_shape"]) if "kpt_shape" in expected else None)


@pytest.mark.parametrize(
    "text, message",
    [
        ("names: &anchor [a, b]\n", "names should be a list or a mapping"),
        ("names: [a,\n  b]\n", "names spans several lines"),
        ("names:\n  0: a\n  2: b\n", "number the classes 0 .. 1"),
        ("names:\n  x: a\n", "class indices"),
        ('names: ["a\\tb"]\n', "escapes"),
        ("names: [a, [b]]\n", "nested"),
        ("names:\n  - a\n  1: b\n", "mixes"),
        ("nc: 2\nnames: [a]\n", "nc is 2 but names lists 1"),
        ("kpt_shape: [17, 4]\n", "kpt_shape should be"),
        ("names: [*ref]\n", "plain string"),
        ("  names: [a]\n", "unexpected indentation"),
    ],
)
def test_data_yaml_refuses_what_it_cannot_read_clearly(tmp_path, text, message):
    path = tmp_path / "data.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_data_yaml(path)
