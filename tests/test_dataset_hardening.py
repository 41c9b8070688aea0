"""Issue 18's dataset items: hostile folders, annotations and image headers are refused with an
error naming the file, and nothing outside what fastloader wrote is ever deleted or read"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastloader import SyntheticDetection

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

    # a symlink inside it (to a folder outside) is not ours either: refused, target untouched
    (ours / "JPEGImages" / "notes.txt").unlink()
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
