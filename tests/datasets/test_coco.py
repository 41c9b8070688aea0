"""COCODetection and its native JSON reader: against Python's json (the reference), a VOC round
trip, bad input, samplers and collate, DataLoader workers, and detectron2's repeat factors."""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, SequentialSampler

import fastloader
from fastloader import (
    _C,
    AspectRatioGroupedBatchSampler,
    ClassAwareSampler,
    COCODetection,
    DetectionCollate,
    DistributedWeightedSampler,
    FastWeightedSampler,
    RepeatFactorSampler,
    SyntheticDetection,
    create_aspect_ratio_groups,
    repeat_factors,
)
from fastloader.datasets import coco, to_coco_json
from fastloader.io.deferred import DeferredSamples, ImageFile

# --------------------------------------------------------------------------------------------
# The JSON scanner against Python's json: same accept / reject on valid and broken texts.


def python_accepts(data: bytes) -> bool:
    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")  # RFC 8259 has no NaN / Infinity

    try:
        json.loads(data.decode("utf-8"), parse_constant=no_constants)
        return True
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return False


def native_accepts(data: bytes) -> bool:
    try:
        _C.json_validate(data)
        return True
    except ValueError as exc:
        assert "invalid JSON at byte" in str(exc) and "line" in str(exc)
        return False


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans(), st.sampled_from([None, 0, 2]))
def test_scanner_accepts_what_json_dumps_writes(value, ascii_only, indent):
    data = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode("utf-8")
    assert native_accepts(data) and python_accepts(data)


_MUTATION_BYTES = b'{}[],:"\\ -+.eE0123456789tfnaulrsx\x00\x1f\x7f\xc3\xa9\xff\xed\xa0\x80\xf0'


@settings(max_examples=1500, deadline=None)
@given(json_values, st.data())
def test_scanner_rejects_exactly_what_json_rejects(value, data):
    text = bytearray(json.dumps(value, ensure_ascii=data.draw(st.booleans())).encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(text)))
        kind = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from(list(_MUTATION_BYTES)))
        if kind == "insert":
            text[where:where] = bytes([byte])
        elif where < len(text):
            text[where : where + 1] = b"" if kind == "delete" else bytes([byte])
    mutated = bytes(text)
    assert native_accepts(mutated) == python_accepts(mutated), mutated


@pytest.mark.parametrize(
    "text",
    [b"NaN", b"[Infinity]", b"[1,]", b'{"a":1,}', b"01", b'"\\x"', b'"\x01"', b"\xef\xbb\xbf{}",
     b'"\xed\xa0\x80"', b'"\\ud800"', b"1e999", b"-0.0e-0", b"[" * 50 + b"]" * 50, b" \t\r\n1"],
)  # fmt: skip
def test_scanner_edge_cases_agree_with_json(text):
    assert native_accepts(text) == python_accepts(text)


# --------------------------------------------------------------------------------------------
# Generated COCO files against a plain-json reference reader


def reference(path: Path, keep_crowd: bool = False) -> dict:
    """What COCODetection should hold, computed with Python's json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    ids = sorted(c["id"] for c in data["categories"])
    label_of = {c: k for k, c in enumerate(ids)}
    per_image = defaultdict(list)
    for ann in data.get("annotations", []):
        per_image[ann["image_id"]].append(ann)
    out = {"boxes": [], "labels": [], "sizes": [], "names": []}
    for image in data["images"]:
        boxes, labels = [], []
        for ann in per_image[image["id"]]:
            x, y, w, h = ann["bbox"]
            if (ann.get("iscrowd", 0) and not keep_crowd) or w == 0 or h == 0:
                continue
            boxes.append([x, y, x + w, y + h])
            labels.append(label_of[ann["category_id"]])
        out["boxes"].append(np.array(boxes, dtype=np.float32).reshape(-1, 4))
        out["labels"].append(np.array(labels, dtype=np.int64))
        out["sizes"].append((image["height"], image["width"]))
        out["names"].append(image["file_name"])
    out["classes"] = [
        {c["id"]: c["name"] for c in data["categories"]}[category_id] for category_id in ids
    ]
    return out


def random_coco(seed: int, num_images: int = 30, keypoints: int = 0) -> dict:
    rng = random.Random(seed)
    category_ids = rng.sample(range(1, 500), 12)
    categories = [
        {"id": c, "name": rng.choice(["cat", "d\u00f6g", 'a "q"', "x\\y", "\u732b"]) + str(c),
         "supercategory": "thing", "frequency": rng.choice("fcr")}
        for c in category_ids
    ]  # fmt: skip
    image_ids = rng.sample(range(10**6, 10**9), num_images)  # sparse: the sorted lookup
    images = [
        {"license": 1, "file_name": f"img/{i}.jpg", "height": rng.randint(10, 900),
         "width": rng.randint(10, 900), "date_captured": "2013-11-14 17:02:52", "id": i}
        for i in image_ids
    ]  # fmt: skip
    annotations = []
    for n in range(num_images * 4):
        w = rng.choice([0, rng.uniform(0.1, 300), rng.randint(1, 300)])
        ann = {
            "segmentation": rng.choice(
                [[[rng.uniform(0, 500) for _ in range(rng.randrange(6, 40, 2))]],
                 {"counts": "abc\\u0041\"x", "size": [4, 5]}, []]
            ),
            "area": rng.uniform(0, 1e5),
            "iscrowd": rng.choice([0, 0, 0, 1]),
            "image_id": rng.choice(image_ids),
            "bbox": [rng.uniform(0, 500), rng.randint(0, 500), w, rng.uniform(0.5, 200)],
            "category_id": rng.choice(category_ids),
            "id": 7 * n + 3,
        }  # fmt: skip
        if keypoints:
            ann["keypoints"] = [
                v for _ in range(keypoints)
                for v in (rng.uniform(0, 99), rng.uniform(0, 99), rng.choice([0, 1, 2]))
            ]  # fmt: skip
        items = list(ann.items())
        rng.shuffle(items)  # any member order
        annotations.append(dict(items))
    return {"info": {"description": "generated"}, "licenses": [], "images": images,
            "annotations": annotations, "categories": categories}  # fmt: skip


def write(path: Path, data: dict, **options) -> Path:
    path.write_text(json.dumps(data, **options), encoding="utf-8")
    return path


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("keep_crowd", [False, True])
def test_index_equals_the_json_reference(tmp_path, seed, keep_crowd):
    path = write(tmp_path / "a.json", random_coco(seed), indent=seed % 2 or None,
                 ensure_ascii=bool(seed % 2))  # fmt: skip
    expected = reference(path, keep_crowd)
    with pytest.warns(UserWarning, match="zero width or height"):
        ds = COCODetection(tmp_path, path, keep_crowd=keep_crowd)
    assert len(ds) == 30 and ds.classes == expected["classes"]
    assert ds.image_sizes().tolist() == [list(s) for s in expected["sizes"]]
    for i in range(len(ds)):
        got = ds.annotation(i)
        np.testing.assert_array_equal(got["boxes"], expected["boxes"][i])
        np.testing.assert_array_equal(got["labels"], expected["labels"][i])
        assert got["file_name"] == expected["names"][i]
        assert got["boxes"].dtype == np.float32 and got["labels"].dtype == np.int64
    assert sum(len(x) for x in ds.labels()) == sum(len(x) for x in expected["labels"]) > 0


def test_keypoints_become_landmark_columns(tmp_path):
    data = random_coco(5, num_images=6, keypoints=3)
    path = write(tmp_path / "k.json", data)
    with pytest.warns(UserWarning):
        ds = COCODetection(tmp_path, path, keep_crowd=True)
    assert ds.num_landmarks == 3 and ds.target_columns["landmarks"] == slice(5, 11)
    by_id = {a["id"]: a for a in data["annotations"]}
    seen = 0
    for i in range(len(ds)):
        got = ds.annotation(i)
        for ann_id, points in zip(got["annotation_ids"], got["landmarks"], strict=True):
            raw = np.array(by_id[int(ann_id)]["keypoints"]).reshape(3, 3)
            expected = np.where(raw[:, 2:] != 0, raw[:, :2], -1).astype(np.float32)
            np.testing.assert_array_equal(points, expected)
            seen += 1
    assert seen > 10


def test_against_pycocotools(tmp_path):
    pycocotools = pytest.importorskip("pycocotools.coco")
    path = write(tmp_path / "p.json", random_coco(9))
    with pytest.warns(UserWarning):
        ds = COCODetection(tmp_path, path, keep_crowd=True)
    api = pycocotools.COCO(str(path))
    ids = sorted(api.getCatIds())
    assert list(ds.image_ids) == [img["id"] for img in json.loads(path.read_text())["images"]]
    for i, image_id in enumerate(ds.image_ids.tolist()):
        anns = [a for a in api.loadAnns(api.getAnnIds(imgIds=[image_id])) if a["bbox"][2] > 0]
        got = ds.annotation(i)
        assert got["annotation_ids"].tolist() == [a["id"] for a in anns]  # file order kept
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        np.testing.assert_array_equal(got["boxes"], np.array(boxes, np.float32).reshape(-1, 4))
        assert got["labels"].tolist() == [ids.index(a["category_id"]) for a in anns]
        assert got["iscrowd"].tolist() == [a["iscrowd"] for a in anns]
        np.testing.assert_array_equal(got["area"], np.array([a["area"] for a in anns], np.float32))


def test_lvis_fields(tmp_path):
    data = {
        "images": [
            {"id": 1, "coco_url": "http://images.cocodataset.org/train2017/000000000001.jpg",
             "height": 4, "width": 6, "not_exhaustive_category_ids": [30],
             "neg_category_ids": [10, 20]},
            {"id": 2, "coco_url": "http://images.cocodataset.org/val2017/2.jpg", "height": 4,
             "width": 8, "not_exhaustive_category_ids": [], "neg_category_ids": [30]},
        ],
        "annotations": [{"id": 1, "image_id": 2, "category_id": 20, "bbox": [0, 0, 1, 1],
                         "segmentation": [[0, 0, 1, 0, 1, 1]], "area": 1}],
        "categories": [{"id": 30, "name": "c", "frequency": "r"},
                       {"id": 10, "name": "a", "frequency": "f"},
                       {"id": 20, "name": "b", "frequency": "c"}],
    }  # fmt: skip
    ds = COCODetection(tmp_path, write(tmp_path / "lvis.json", data))
    assert ds.classes == ["a", "b", "c"] and ds.frequencies == ["f", "c", "r"]
    assert ds.image_path(0) == tmp_path / "train2017" / "000000000001.jpg"
    assert [x.tolist() for x in ds.not_exhaustive_classes()] == [[2], []]
    assert [x.tolist() for x in ds.negative_classes()] == [[0, 1], [2]]
    assert [x.tolist() for x in ds.labels()] == [[], [1]]
    chosen = COCODetection(tmp_path, tmp_path / "lvis.json", categories=["c", 20])
    assert chosen.classes == ["c", "b"] and [x.tolist() for x in chosen.labels()] == [[], [1]]
    assert [x.tolist() for x in chosen.negative_classes()] == [[1], [0]]
    assert chosen.category_ids.tolist() == [30, 20]


# --------------------------------------------------------------------------------------------
# Bad input: one test each, naming file / line / id


def small_coco() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6},
                   {"id": 2, "file_name": "b.jpg", "width": 8, "height": 6}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 1, 2, 2]},
                        {"id": 2, "image_id": 2, "category_id": 5, "bbox": [0, 0, 3, 3]}],
        "categories": [{"id": 5, "name": "cat"}],
    }  # fmt: skip


def test_malformed_json_names_file_byte_and_line(tmp_path):
    text = json.dumps(small_coco(), indent=1)
    broken = text.replace('"bbox": [\n    0,', '"bbox": [\n    0,,')
    assert broken != text
    path = tmp_path / "bad.json"
    path.write_text(broken)
    offset = broken.index(",,") + 1
    line = broken[:offset].count("\n") + 1
    with pytest.raises(
        ValueError, match=f"bad.json: invalid JSON at byte {offset} \\(line {line},"
    ):
        COCODetection(tmp_path, path)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_files_raise_value_errors_never_crash(tmp_path_factory, data):
    text = bytearray(json.dumps(random_coco(1, num_images=3)).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(text) - 1))
        byte = data.draw(st.sampled_from(list(_MUTATION_BYTES)))
        kind = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        if kind == "insert":
            text[where:where] = bytes([byte])
        else:
            text[where : where + 1] = b"" if kind == "delete" else bytes([byte])
    path = tmp_path_factory.mktemp("fuzz") / "m.json"
    path.write_bytes(bytes(text))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zero-size boxes may appear or vanish
            ds = COCODetection(path.parent, path, keep_crowd=True)
    except ValueError as exc:
        assert str(path) in str(exc)
        if not python_accepts(bytes(text)):
            # stopped mid-scan, at the syntax error or at a content error met before it
            assert "invalid JSON at byte" in str(exc) or "(byte " in str(exc)
        return
    assert python_accepts(bytes(text))  # whatever we read, json reads too
    assert sum(len(x) for x in ds.labels()) <= len(random_coco(1, num_images=3)["annotations"]) + 1


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["annotations"][1].update(image_id=9),
         "annotation id 2 names image_id 9, which is not in 'images'"),
        (lambda d: d["annotations"][0].update(category_id=6),
         "annotation id 1 names category_id 6, which is not in 'categories'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 1, -2, 2]), "annotation id 1: .*negative"),
        (lambda d: d["annotations"][0].update(bbox=[1, 1, 2]), "4 numbers"),
        (lambda d: d["images"][1].update(id=1), "duplicate image id 1"),
        (lambda d: d["annotations"][1].update(id=1), "duplicate annotation id 1"),
        (lambda d: d["categories"].append({"id": 5, "name": "x"}), "duplicate category id 5"),
        (lambda d: d["images"][0].pop("width"), "image id 1 should have a positive integer"),
        (lambda d: d["annotations"][0].update(image_id="1"), "'image_id' should be an integer"),
        (lambda d: d.pop("images"), "no 'images' list"),
    ],
)  # fmt: skip
def test_bad_content_names_the_ids(tmp_path, edit, message):
    data = small_coco()
    edit(data)
    path = write(tmp_path / "x.json", data)
    with pytest.raises(ValueError, match=f"x.json.*{message}"):
        COCODetection(tmp_path, path)


def test_a_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(small_coco()).encode())
    ds = COCODetection(tmp_path, path)
    assert [x.tolist() for x in ds.labels()] == [[0], [0]]
    # the strict validator still refuses it, as json.loads of the decoded text does
    assert not native_accepts(path.read_bytes()) and not python_accepts(path.read_bytes())


def test_zero_size_boxes_are_dropped_with_one_warning(tmp_path):
    data = small_coco()
    data["annotations"] += [
        {"id": 3, "image_id": 1, "category_id": 5, "bbox": [1, 1, 0, 2]},
        {"id": 4, "image_id": 2, "category_id": 5, "bbox": [1, 1, 2, 0]},
    ]
    with pytest.warns(
        UserWarning, match=r"dropped 2 annotations .*\(first: annotation id 3\)"
    ) as w:
        ds = COCODetection(tmp_path, write(tmp_path / "z.json", data))
    assert len(w) == 1
    assert [len(x) for x in ds.labels()] == [1, 1]


def test_missing_image_names_the_file_and_id(tmp_path):
    ds = COCODetection(tmp_path, write(tmp_path / "m.json", small_coco()))
    with pytest.raises(ValueError, match=r"m.json: image id 2: .*b.jpg: image file not found"):
        ds[1]


def test_bad_arguments(tmp_path):
    path = write(tmp_path / "a.json", small_coco())
    with pytest.raises(ValueError, match="annotation_file"):
        COCODetection(tmp_path, tmp_path / "nope.json")
    with pytest.raises(ValueError, match="sample_format"):
        COCODetection(tmp_path, path, sample_format="list")
    with pytest.raises(ValueError, match="keep_crowd"):
        COCODetection(tmp_path, path, keep_crowd=1)
    with pytest.raises(ValueError, match="'dog' is not a category name"):
        COCODetection(tmp_path, path, categories=["dog"])
    with pytest.raises(TypeError, match="categories should be a sequence"):
        COCODetection(tmp_path, path, categories="cat")
    with pytest.raises(IndexError, match="out of range"):
        COCODetection(tmp_path, path)[2]


# --------------------------------------------------------------------------------------------
# A VOC folder written as COCO JSON reads back identically, and trains the same way


@pytest.fixture(scope="module")
def voc_and_coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    voc = SyntheticDetection(root / "d", 24, seed=3, max_size=48, shapes="voc",
                             image_format="npy", max_boxes=5)  # fmt: skip
    path = root / "voc.json"
    to_coco_json(voc, path)
    return voc, path


def test_voc_round_trip(voc_and_coco):
    voc, path = voc_and_coco
    ds = COCODetection(voc.image_root, path)
    assert ds.classes == voc.classes and len(ds) == len(voc)
    assert sum(len(x) for x in voc.labels()) > 20
    for i in range(len(voc)):
        a, b = ds.annotation(i), voc.annotation(i)
        np.testing.assert_array_equal(a["boxes"], b["boxes"])
        np.testing.assert_array_equal(a["labels"], b["labels"])
        np.testing.assert_array_equal(a["landmarks"], b["landmarks"])
        assert (a["height"], a["width"]) == (b["height"], b["width"])
        image, target = ds[i]
        voc_image, voc_target = voc[i]
        assert torch.equal(image, voc_image) and torch.equal(target, voc_target)
    np.testing.assert_array_equal(ds.image_class_weights(), voc.image_class_weights())
    np.testing.assert_array_equal(ds.aspect_ratios(), voc.aspect_ratios())
    np.testing.assert_array_equal(ds.class_histogram(), voc.class_histogram())


def test_dict_samples_and_collate(voc_and_coco):
    voc, path = voc_and_coco
    ds = COCODetection(voc.image_root, path, sample_format="dict", keep_crowd=True)
    sample = ds[1]
    assert set(sample) == {"image", "boxes", "labels", "landmarks", "iscrowd"}
    assert sample["landmarks"].shape == (len(sample["labels"]), 5, 2)
    batch = DetectionCollate()([ds[i] for i in range(4)])
    assert batch.batch_size == 4 and batch.images.dtype == torch.uint8


def test_read_into_batch_equals_read_samples(voc_and_coco):
    voc, path = voc_and_coco
    eager = COCODetection(voc.image_root, path)
    deferred = COCODetection(voc.image_root, path, read_into_batch=True)
    indices = [3, 0, 7, 7, 11]
    fetched = deferred.__getitems__(indices)
    assert isinstance(fetched, DeferredSamples)
    assert all(isinstance(image, ImageFile) for image, _ in fetched.pairs)
    collate = DetectionCollate()
    a, b = collate(fetched), collate([eager[i] for i in indices])
    assert torch.equal(a.images, b.images) and torch.equal(a.packed(), b.packed())


def test_samplers_take_the_dataset_directly(voc_and_coco):
    voc, path = voc_and_coco
    ds = COCODetection(voc.image_root, path)
    factors = repeat_factors(ds.labels(), 0.3, num_classes=ds.num_classes)
    assert factors.max() > 1.0
    drawn = list(RepeatFactorSampler(factors, seed=0))
    assert len(drawn) >= len(ds) and set(drawn) <= set(range(len(ds)))
    weighted = list(FastWeightedSampler(ds.image_class_weights(), num_samples=50, seed=1))
    assert len(weighted) == 50
    # class-aware: each drawn image holds the class it was drawn for
    labels = ds.labels()
    aware = list(ClassAwareSampler(labels, num_classes=ds.num_classes, num_samples=40, seed=2))
    assert len(aware) == 40 and all(len(labels[i]) > 0 for i in aware)
    shards = [
        list(DistributedWeightedSampler(ds.image_class_weights(), 48, num_replicas=2, rank=r))
        for r in (0, 1)
    ]
    assert [len(x) for x in shards] == [24, 24]
    groups = create_aspect_ratio_groups(ds.aspect_ratios(), k=0)
    assert len(set(groups.tolist())) == 2  # the "voc" shapes hold portraits and landscapes
    grouped = AspectRatioGroupedBatchSampler(SequentialSampler(ds), groups, 4)
    batches = list(grouped)
    assert sum(len(b) for b in batches) == len(ds)
    for batch in batches:
        assert len({int(groups[i]) for i in batch}) == 1


def _loads_in_this_process(sample):
    return coco.index_reads(), os.getpid()


@pytest.mark.multiprocess
def test_fork_workers_share_the_index_without_a_parse(voc_and_coco):
    voc, path = voc_and_coco
    ds = COCODetection(voc.image_root, path, transform=_loads_in_this_process)
    parent = coco.index_reads()
    loader = DataLoader(ds, batch_size=None, num_workers=2,
                        multiprocessing_context="fork")  # fmt: skip
    seen = list(loader)
    assert len(seen) == len(ds)
    assert {loads for loads, _ in seen} == {parent}  # no worker read the file again
    assert len({pid for _, pid in seen} - {os.getpid()}) == 2
    assert ds._packed is not None


def test_pickle_reopens_lazily_and_refuses_a_changed_file(tmp_path):
    path = write(tmp_path / "p.json", small_coco())
    ds = COCODetection(tmp_path, path)
    blob = pickle.dumps(ds)
    assert len(blob) < 2000  # the path and options, not the arrays
    before = coco.index_reads()
    copy = pickle.loads(blob)
    assert coco.index_reads() == before
    assert [x.tolist() for x in copy.labels()] == [x.tolist() for x in ds.labels()]
    assert coco.index_reads() == before + 1
    stale = pickle.loads(blob)
    data = small_coco()
    data["annotations"].pop()
    write(path, data, indent=3)
    with pytest.raises(ValueError, match="changed since the dataset was opened"):
        stale.labels()


# --------------------------------------------------------------------------------------------
# LVIS repeat factors equal detectron2's


def detectron2_repeat_factors(dataset_dicts: list[dict], repeat_thresh: float,
                              sqrt: bool = True) -> torch.Tensor:  # fmt: skip
    """detectron2's RepeatFactorTrainingSampler.repeat_factors_from_category_frequency
    (detectron2/data/samplers/distributed_sampler.py), line for line."""
    category_freq: dict[int, float] = defaultdict(int)
    for dataset_dict in dataset_dicts:
        cat_ids = {ann["category_id"] for ann in dataset_dict["annotations"]}
        for cat_id in cat_ids:
            category_freq[cat_id] += 1
    num_images = len(dataset_dicts)
    for k, v in category_freq.items():
        category_freq[k] = v / num_images
    category_rep = {
        cat_id: max(1.0, math.sqrt(repeat_thresh / cat_freq))
        if sqrt
        else max(1.0, (repeat_thresh / cat_freq))
        for cat_id, cat_freq in category_freq.items()
    }
    rep_factors = []
    for dataset_dict in dataset_dicts:
        cat_ids = {ann["category_id"] for ann in dataset_dict["annotations"]}
        rep_factor = max({category_rep[cat_id] for cat_id in cat_ids}, default=1.0)
        rep_factors.append(rep_factor)
    return torch.tensor(rep_factors, dtype=torch.float32)


def lvis_like(seed: int, num_images: int, num_categories: int) -> dict:
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, num_categories + 1)
    ids = rng.permutation(np.arange(1, 3 * num_categories))[:num_categories]
    images = [{"id": int(i), "coco_url": f"http://h/train2017/{i:012d}.jpg", "height": 480,
               "width": 640, "not_exhaustive_category_ids": [], "neg_category_ids": []}
              for i in range(1, num_images + 1)]  # fmt: skip
    annotations = []
    for image in images:
        for c in rng.choice(ids, size=rng.integers(0, 6), p=zipf / zipf.sum()):
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"],
                                "category_id": int(c), "bbox": [1.0, 2.0, 30.5, 40.25],
                                "segmentation": [[1, 2, 31, 2, 31, 42]]})  # fmt: skip
    categories = [{"id": int(c), "name": f"c{c}", "frequency": "r"} for c in ids]
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.mark.parametrize("sqrt", [True, False])
def test_repeat_factors_equal_detectron2(tmp_path, sqrt):
    data = lvis_like(0, 2000, 300)
    path = write(tmp_path / "lvis.json", data)
    ds = COCODetection(tmp_path, path)
    dicts = [{"annotations": []} for _ in data["images"]]
    position = {img["id"]: k for k, img in enumerate(data["images"])}
    for ann in data["annotations"]:
        dicts[position[ann["image_id"]]]["annotations"].append(ann)
    expected = detectron2_repeat_factors(dicts, 0.01, sqrt)
    ours = torch.from_numpy(repeat_factors(ds.labels(), 0.01, sqrt, num_classes=ds.num_classes))
    assert (expected > 1).sum() > 100
    assert torch.equal(ours.to(torch.float32), expected)


def test_public_names():
    assert fastloader.COCODetection is COCODetection
