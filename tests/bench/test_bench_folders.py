"""The main job writes only into folders that are new, empty or its own, and never deletes a file
it did not write (issue 18 item 1's rule, applied to --root and the annotation section)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fastloader import VOCDetection
from fastloader.bench import main_job
from fastloader.bench.sections import ANNOTATIONS_MARKER, annotation_section, write_annotations


def _snapshot(folder):
    """Every file under folder with its bytes, and every folder (symlinks as their target)."""
    found = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(top, name), folder)] = "<dir>"
        for name in files:
            path = os.path.join(top, name)
            key = os.path.relpath(path, folder)
            link = os.path.islink(path)
            found[key] = "-> " + os.readlink(path) if link else Path(path).read_bytes()
    return found


def _user_voc(root):
    """A user's VOC folder: Annotations named like the generated ones, and an image."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for i in range(3):
        (root / "Annotations" / f"{i:06d}.xml").write_text(f"<annotation>mine {i}</annotation>")
    (root / "JPEGImages" / "000000.jpg").write_bytes(b"\xff\xd8 not really")
    return _snapshot(root)


def test_a_user_voc_folder_is_refused_untouched(tmp_path):
    before = _user_voc(tmp_path)
    # 3 files where 5 are asked for: the count mismatch that used to rmtree the folder
    with pytest.raises(ValueError, match="did not write") as raised:
        annotation_section(5, tmp_path)
    message = str(raised.value)
    assert str(tmp_path / "Annotations") in message and "--root" in message
    assert "Nothing was changed" in message
    assert _snapshot(tmp_path) == before
    # the same count is refused too: matching names are not a sign that the files are ours
    with pytest.raises(ValueError, match="did not write"):
        write_annotations(tmp_path, 3)
    assert _snapshot(tmp_path) == before


def test_the_command_line_refuses_a_user_root_with_a_message(tmp_path, capsys):
    root, out = tmp_path / "voc", tmp_path / "out"
    before = _user_voc(root)
    argv = ["--annotations-only", "--annotations", "5", "--root", str(root), "--out", str(out)]
    assert main_job.main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m fastloader.bench: error: ")
    assert str(root / "Annotations") in error and "Traceback" not in error
    assert _snapshot(root) == before and not out.exists()
    # the main run refuses the same folder as its dataset root before any timing
    assert main_job.main(["--quick", "--no-progress", "--root", str(root), "--out", str(out)]) == 2
    assert str(root) in capsys.readouterr().err
    assert _snapshot(root) == before and not out.exists()
    # --annotations N writes beside the dataset folder: a user's folder of that name is refused
    beside = tmp_path / "fastloader-bench-annotations-4"
    _user_voc(beside)
    before = _snapshot(beside)
    small = ["--num-images", "2", "--image-size", "32", "--annotations", "4"]
    argv = ["--quick", "--no-progress", "--root", str(tmp_path / "data"), "--out", str(out)]
    assert main_job.main(argv + small) == 2
    assert str(beside / "Annotations") in capsys.readouterr().err
    assert _snapshot(beside) == before and not out.exists()


def test_its_own_folder_is_reused_or_changed_file_by_file(tmp_path):
    assert write_annotations(tmp_path, 6)
    names = sorted(os.listdir(tmp_path / "Annotations"))
    assert names == [f"{i:06d}.xml" for i in range(6)]
    marker = json.loads((tmp_path / ANNOTATIONS_MARKER).read_text())
    assert marker["count"] == 6
    assert write_annotations(tmp_path, 3)  # fewer: its own extra files go, by name
    assert sorted(os.listdir(tmp_path / "Annotations")) == names[:3]
    before = {name: os.stat(tmp_path / "Annotations" / name).st_mtime_ns for name in names[:3]}
    assert not write_annotations(tmp_path, 3)  # the same: reused as it is
    after = {name: os.stat(tmp_path / "Annotations" / name).st_mtime_ns for name in names[:3]}
    assert after == before
    dataset = VOCDetection(tmp_path)
    # file i holds 1 + i % 4 objects, the third of them difficult (left out of the labels)
    assert len(dataset) == 3 and [len(labels) for labels in dataset.labels()] == [1, 2, 2]


def test_an_interrupted_write_of_its_own_is_finished(tmp_path):
    write_annotations(tmp_path, 5)
    for i in (2, 3, 4):  # as if killed while writing: the marker already names all five
        os.unlink(tmp_path / "Annotations" / f"{i:06d}.xml")
    assert write_annotations(tmp_path, 5)
    assert len(os.listdir(tmp_path / "Annotations")) == 5


@pytest.mark.parametrize("intruder", ["file", "folder", "symlink"])
def test_anything_added_to_its_own_folder_is_refused_untouched(tmp_path, intruder):
    write_annotations(tmp_path / "bench", 4)
    annotations = tmp_path / "bench" / "Annotations"
    precious = tmp_path / "precious.xml"
    precious.write_text("<annotation>keep me</annotation>")
    if intruder == "file":
        (annotations / "mine.xml").write_text("<annotation>mine</annotation>")
        named = "mine.xml"
    elif intruder == "folder":  # a name it could have written, but not a file it wrote
        (annotations / "000009.xml").mkdir()
        named = "000009.xml"
    else:  # one of its own names replaced by a link to someone else's file
        os.unlink(annotations / "000003.xml")
        os.symlink(precious, annotations / "000003.xml")
        named = "000003.xml"
    before = _snapshot(tmp_path)
    for count in (2, 4, 6):
        with pytest.raises(ValueError, match=f"did not write \\({named}"):
            write_annotations(tmp_path / "bench", count)
        assert _snapshot(tmp_path) == before


def test_a_marker_of_another_writer_is_not_trusted(tmp_path):
    before = _user_voc(tmp_path)
    (tmp_path / ANNOTATIONS_MARKER).write_text(json.dumps({"writer": "someone", "count": 3}))
    with pytest.raises(ValueError, match="did not write"):
        write_annotations(tmp_path, 1)
    (tmp_path / ANNOTATIONS_MARKER).unlink()
    assert _snapshot(tmp_path) == before


def test_a_file_where_the_folders_go_is_refused(tmp_path):
    (tmp_path / "root").write_text("not a folder")
    with pytest.raises(ValueError, match="is a file"):
        write_annotations(tmp_path / "root", 2)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "Annotations").write_text("not a folder")
    with pytest.raises(ValueError, match="is not a folder"):
        write_annotations(tmp_path / "other", 2)
    assert (tmp_path / "root").read_text() == "not a folder"
    assert (tmp_path / "other" / "Annotations").read_text() == "not a folder"
