"""Issue 18's dataset items: hostile folders, annotations and image headers are refused with an
error naming the file, and nothing outside what fastloader wrote is ever deleted or read"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastloader import SyntheticDetection, VOCDetection
from fastloader.datasets import synthetic, voc
from fastloader.io import decode

SMALL = dict(min_size=12, max_size=24)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------------------------
# Item 1: SyntheticDetection never deletes what it did not write


def test_item01_synthetic_never_deletes_foreign_files(tmp_path):
    # the reproduction: a marker of someone else's beside a precious file
    d = tmp_path / "d"
    d.mkdir()
    (d / "synthetic.json").write_text('{"lr": 0.1}')
    (d / "thesis.tex").write_text("x")
    with pytest.raises(ValueError, match=r"not written by SyntheticDetection.*Nothing was changed"):
        SyntheticDetection(d, num_images=2, **SMALL)
    assert _tree_bytes(d) == {"synthetic.json": b'{"lr": 0.1}', "thesis.tex": b"x"}

    # a folder of its own with one added file: not replaced, nothing deleted
    ours = tmp_path / "ours"
    SyntheticDetection(ours, 3, seed=0, **SMALL)
    (ours / "JPEGImages" / "notes.txt").write_text("mine")
    before = _tree_bytes(ours)
    with pytest.raises(ValueError, match=r"did not write \(JPEGImages/notes\.txt\)"):
        SyntheticDetection(ours, 4, seed=0, **SMALL)
    assert _tree_bytes(ours) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left

    # nor an empty folder of someone else's
    (ours / "JPEGImages" / "notes.txt").unlink()
    (ours / "Annotations" / "drafts").mkdir()
    with pytest.raises(ValueError, match=r"did not write \(Annotations/drafts/\)"):
        SyntheticDetection(ours, 4, seed=0, **SMALL)
    (ours / "Annotations" / "drafts").rmdir()

    # a symlink inside it (to a folder outside) is not ours either: refused, target untouched
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (ours / "Predecoded" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match=r"did not write \(Predecoded/link\)"):
        SyntheticDetection(ours, 4, seed=0, **SMALL)
    assert (outside / "keep.txt").read_text() == "keep"
    (ours / "Predecoded" / "link").unlink()

    # a manifest listing a path outside the folder is not trusted with any deletion
    manifest = ours / "synthetic-files.txt"
    listed = manifest.read_text()
    manifest.write_text(listed + "../outside/keep.txt\n")
    with pytest.raises(ValueError, match="synthetic-files.txt is missing or malformed"):
        SyntheticDetection(ours, 4, seed=0, **SMALL)
    assert (outside / "keep.txt").read_text() == "keep"
    manifest.write_text(listed)

    # another generator's marker, or one whose shape is not exactly ours: refused
    marker = json.loads((ours / "synthetic.json").read_text())
    for changed in ({**marker, "generator": "Other"}, {**marker, "extra": 1}, marker["params"]):
        (ours / "synthetic.json").write_text(json.dumps(changed))
        with pytest.raises(ValueError, match="Nothing was changed"):
            SyntheticDetection(ours, 4, seed=0, **SMALL)
    (ours / "synthetic.json").write_text(json.dumps(marker))

    # only what it wrote: replaced by the new parameters' files, exactly
    again = SyntheticDetection(ours, 4, seed=0, **SMALL)
    assert again.generated and len(again) == 4
    fresh = SyntheticDetection(tmp_path / "fresh", 4, seed=0, **SMALL)
    assert _tree_bytes(ours) == _tree_bytes(fresh.root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "fresh", "ours", "outside"]
    listed = set((ours / "synthetic-files.txt").read_text().split())
    assert listed == set(_tree_bytes(ours)) - {"synthetic.json", "synthetic-files.txt"}


# --------------------------------------------------------------------------------------------
# Item 3, the datasets: every image read gets their pixel limit


def test_item03_datasets_pass_their_pixel_limit_to_every_read(tmp_path):
    ds = SyntheticDetection(tmp_path / "d", 2, seed=0, min_size=20, max_size=20)
    limited = VOCDetection(ds.root, "trainval", max_image_pixels=399)
    with pytest.raises(ValueError, match=r"000000\.jpg: image too large"):
        limited[0]
    npy = VOCDetection(
        ds.root, "trainval", image_dir="Predecoded", image_suffix=".npy", max_image_pixels=399,
        read_into_batch=True,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"000000\.npy: image too large"):
        npy.__getitems__([0])
    assert VOCDetection(ds.root, "trainval", max_image_pixels=400)[0][0].shape == (3, 20, 20)
    with pytest.raises(ValueError, match="max_image_pixels should be"):
        VOCDetection(ds.root, max_image_pixels=-5)


# --------------------------------------------------------------------------------------------
# Item 4: paths from annotations never leave the dataset root


def _voc_folder(root: Path, filenames: dict[str, str]) -> Path:
    """A VOC folder of 24x20 JPEGs named by <filename>, one 'dog' each, and a trainval split."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for stem, filename in filenames.items():
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{filename}</filename><size><width>24</width>"
            "<height>20</height></size><object><name>dog</name><bndbox><xmin>1</xmin>"
            "<ymin>2</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object></annotation>"
        )
    (root / "ImageSets/Main/trainval.txt").write_text("".join(s + "\n" for s in filenames))
    return root


def test_item04_paths_from_annotations_stay_inside_the_root(tmp_path):
    secret = tmp_path / "secret.jpg"
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(secret)
    root = tmp_path / "voc"
    for filename in (str(secret), "../../secret.jpg", "sub/../../../secret.jpg", "/etc/hostname"):
        _voc_folder(root, {"a": filename})
        with pytest.raises(ValueError, match=r"a\.xml: <filename> .* points outside its folder"):
            VOCDetection(root, "trainval")  # classes are read from the annotations
        ds = VOCDetection(root, "trainval", classes=["dog"])
        for read in (ds.__getitem__, ds.labels, ds.image_path):
            with pytest.raises(ValueError, match=r"a\.xml: <filename> .* points outside"):
                read(*([] if read == ds.labels else [0]))
    # split lines are image ids under Annotations: climbing out is refused with the line number
    outside = tmp_path / "x" / "Annotations"
    outside.mkdir(parents=True)
    (outside / "a.xml").write_text((root / "Annotations" / "a.xml").read_text())
    (root / "ImageSets/Main/trainval.txt").write_text("a\n\n../../x/Annotations/a\n")
    with pytest.raises(
        ValueError, match=r"trainval\.txt line 3: image id '\.\./\.\./x/Annotations/a' points"
    ):
        VOCDetection(root, "trainval", classes=["dog"])
    (root / "ImageSets/Main/trainval.txt").write_text(f"{outside / 'a'}\n")
    with pytest.raises(ValueError, match=r"trainval\.txt line 1: image id .* points outside"):
        VOCDetection(root, "trainval", classes=["dog"])


def test_item04_paths_inside_the_root_and_symlinks_in_it_are_followed(tmp_path):
    elsewhere = tmp_path / "disk2"
    elsewhere.mkdir()
    Image.fromarray(np.full((20, 24, 3), 7, np.uint8)).save(elsewhere / "b.png")
    root = _voc_folder(tmp_path / "voc", {"a": "sub/../a.png", "b": "linked/b.png"})
    Image.fromarray(np.full((20, 24, 3), 9, np.uint8)).save(root / "JPEGImages" / "a.png")
    (root / "JPEGImages" / "linked").symlink_to(elsewhere, target_is_directory=True)
    ds = VOCDetection(root, "trainval")
    assert ds[0][0].unique().tolist() == [9] and ds[1][0].unique().tolist() == [7]
    # what is opened is the lexical path checked: '..' after a symlink stays in the folder
    Image.fromarray(np.full((20, 24, 3), 5, np.uint8)).save(tmp_path / "c.png")  # not this one
    Image.fromarray(np.full((20, 24, 3), 3, np.uint8)).save(root / "JPEGImages" / "c.png")
    _voc_folder(root, {"a": "sub/../a.png", "b": "linked/b.png", "c": "linked/../c.png"})
    assert VOCDetection(root, "trainval")[2][0].unique().tolist() == [3]


# --------------------------------------------------------------------------------------------
# Item 20: sizes and coordinates that are not numbers of pixels are refused, naming file and field


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("width", "1e400", "whole number of pixels"),
        ("width", "nan", "whole number of pixels"),
        ("height", "-375", "whole number of pixels"),
        ("height", "0", "whole number of pixels"),
        ("width", "24.5", "whole number of pixels"),
        ("width", "inf", "whole number of pixels"),
        ("height", "4294967296", "whole number of pixels"),
        ("xmin", "nan", "finite number"),
        ("ymax", "inf", "finite number"),
        ("xmax", "-1e400", "finite number"),
        ("ymin", "1e39", "finite number"),  # beyond float32
    ],
)
def test_item20_voc_sizes_and_boxes_must_be_finite_pixels(tmp_path, field, value, message):
    root = _voc_folder(tmp_path / "voc", {"a": "a.jpg"})
    xml = root / "Annotations" / "a.xml"
    text = xml.read_text()
    start, end = text.index(f"<{field}>") + len(field) + 2, text.index(f"</{field}>")
    xml.write_text(text[:start] + value + text[end:])
    parent = "size" if field in ("width", "height") else "bndbox"
    expected = rf"a\.xml: <{parent}/{field}> is '{re.escape(value)}'; expected a {message}"
    with pytest.raises(ValueError, match=expected):
        VOCDetection(root, "trainval")
    ds = VOCDetection(root, "trainval", classes=["dog"])
    for read in (ds.labels, ds.aspect_ratios, ds.image_sizes, lambda: ds.annotation(0)):
        with pytest.raises(ValueError, match=expected):
            read()


def test_item20_whole_sizes_written_as_floats_and_landmarks_read(tmp_path):
    root = _voc_folder(tmp_path / "voc", {"a": "a.jpg"})
    xml = root / "Annotations" / "a.xml"
    marks = "".join(f"<x{k}>{k}.5</x{k}><y{k}>-1</y{k}>" for k in range(1, 6))
    xml.write_text(
        xml.read_text()
        .replace("<width>24</width>", "<width>24.0</width>")
        .replace("</bndbox>", f"</bndbox><landmarks>{marks}</landmarks>")
    )
    ds = VOCDetection(root, "trainval")
    assert ds.image_sizes().tolist() == [[20, 24]]
    assert ds.annotation(0)["landmarks"][0, :, 0].tolist() == [1.5, 2.5, 3.5, 4.5, 5.5]
    xml.write_text(xml.read_text().replace("<x3>3.5</x3>", "<x3>nan</x3>"))
    with pytest.raises(ValueError, match=r"a\.xml: <landmarks/x3> is 'nan'; expected a finite"):
        VOCDetection(root, "trainval")


# --------------------------------------------------------------------------------------------
# Item 25: SyntheticDetection without Pillow names the extra


def test_item25_synthetic_without_pillow_names_the_extra(tmp_path):
    cached = SyntheticDetection(tmp_path / "cached", 2, seed=0, **SMALL)
    script = (
        "import sys; sys.modules['PIL'] = None; sys.modules['simplejpeg'] = None\n"
        "from fastloader import SyntheticDetection\n"
        f"root = {str(tmp_path)!r}\n"
        "try:\n"
        "    SyntheticDetection(root + '/new', 2, min_size=12, max_size=24)\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
        "ds = SyntheticDetection(root + '/cached', 2, min_size=12, max_size=24, "
        "image_format='npy')\n"  # already written: the .npy copies need no Pillow
        "print(ds.generated, tuple(ds[1][0].shape))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ImportError: SyntheticDetection writes JPEG files with Pillow")
    assert "pip install 'fastloader[datasets]'" in lines[0]
    assert lines[1] == f"False {tuple(cached[1][0].shape)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cached"]  # nothing half-written


# --------------------------------------------------------------------------------------------
# Item 26: class indices do not depend on the split


def _two_splits(root: Path, train: str, val: str) -> Path:
    _voc_folder(root, {"t": "t.jpg", "v": "v.jpg"})
    for stem, name in (("t", train), ("v", val)):
        xml = root / "Annotations" / f"{stem}.xml"
        xml.write_text(xml.read_text().replace("<name>dog</name>", f"<name>{name}</name>"))
    (root / "ImageSets/Main/train.txt").write_text("t\n")
    (root / "ImageSets/Main/val.txt").write_text("v\n")
    return root


def test_item26_class_indices_do_not_depend_on_the_split(tmp_path):
    # the case: "train" holds only dog, "val" only kitten
    root = _two_splits(tmp_path / "a", "dog", "kitten")
    found = {}
    for split in ("train", "val", None):
        with pytest.warns(UserWarning, match=r"the 2 names found in .*Annotations, sorted \(dog, "):
            found[split] = VOCDetection(root, split)
    assert all(ds.classes == ["dog", "kitten"] for ds in found.values())
    assert found["train"].labels()[0].tolist() == [0] and found["val"].labels()[0].tolist() == [1]
    # VOC names everywhere: VOC's indices in every split, no warning
    voc_root = _two_splits(tmp_path / "b", "dog", "cat")
    for split in ("train", "val"):
        assert VOCDetection(voc_root, split).classes == list(voc.VOC_CLASSES)
    assert VOCDetection(voc_root, "train").labels()[0].tolist() == [voc.VOC_CLASSES.index("dog")]
    # a name met only on a difficult object still counts, whatever keep_difficult says
    xml = voc_root / "Annotations" / "v.xml"
    xml.write_text(
        xml.read_text().replace("<name>cat</name>", "<name>lynx</name><difficult>1</difficult>")
    )
    for keep in (False, True):
        with pytest.warns(UserWarning, match="the 2 names found"):
            assert VOCDetection(voc_root, "train", keep).classes == ["dog", "lynx"]
    # classes.txt fixes them: no warning, and no other annotation is read
    (voc_root / "classes.txt").write_text("lynx\ndog\n")
    (voc_root / "Annotations" / "v.xml").write_text("<annotation>")
    assert VOCDetection(voc_root, "train").labels()[0].tolist() == [1]


def test_item26_unreadable_annotation_of_another_split_says_why_it_was_read(tmp_path):
    root = _two_splits(tmp_path / "a", "dog", "cat")
    (root / "Annotations" / "v.xml").write_text("<annotation>")
    with pytest.raises(ValueError, match=r"v\.xml: cannot parse.*to fix the class indices of all"):
        VOCDetection(root, "train")
    assert VOCDetection(root, "train", classes=["dog"]).labels()[0].tolist() == [0]


# --------------------------------------------------------------------------------------------
# Item 23: SyntheticDetection checks its sizes before writing anything


def test_item23_synthetic_sizes_are_bounded_before_writing(tmp_path, monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("started writing")

    monkeypatch.setattr(synthetic, "_write_synthetic", started)
    cases = [
        (
            dict(num_images=2**40),
            r"num_images should be at most 10000000, but got num_images=1099511627776",
        ),
        (dict(num_classes=2**40), r"num_classes should be at most 100000"),
        (dict(max_boxes=2**40), r"max_boxes should be at most 100000"),
        (dict(max_size=2**20), r"max_size should be at most 9459"),
        # within every bound but not within the disk: about 4 PB of 4096x4096 images
        (dict(num_images=10**7, min_size=4096, max_size=4096), r"needs about .* GiB but"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            SyntheticDetection(tmp_path / "d", **{"num_images": 2, **kwargs})
    assert list(tmp_path.iterdir()) == []
    assert synthetic.MAX_SIDE**2 <= decode.DEFAULT_MAX_IMAGE_PIXELS < (synthetic.MAX_SIDE + 1) ** 2
