"""fastloader.bench.harness (rounds, ratios, formatting, tables) and the stock baselines."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from fastloader import (
    AspectRatioGroupedBatchSampler,
    RepeatFactorSampler,
    fast_detection_collate,
)
from fastloader.bench import harness, stock


def test_rounds_interleave_the_cases_in_order():
    calls = []
    figures = harness.run_rounds(
        {"stock": lambda: calls.append("s") or 1.0, "fast": lambda: calls.append("f") or 2.0}, 3
    )
    assert calls == ["s", "f"] * 3
    assert figures == {"stock": [1.0, 1.0, 1.0], "fast": [2.0, 2.0, 2.0]}
    with pytest.raises(ValueError, match="rounds"):
        harness.run_rounds({"a": lambda: 1.0}, 0)


def test_interleaved_times_every_case_each_round_with_warmup_and_min_calls():
    calls = collections.Counter()
    cpu: dict[str, list[float]] = {}
    times = harness.interleaved(
        {"a": lambda: calls.update("a"), "b": lambda: calls.update("b")},
        4,
        min_calls=3,
        warmup=2,
        cpu=cpu,
    )
    assert calls == {"a": 2 + 4 * 3, "b": 2 + 4 * 3}  # budget 0: exactly min_calls a round
    assert [len(times[k]) for k in "ab"] == [4, 4] and [len(cpu[k]) for k in "ab"] == [4, 4]
    assert all(value >= 0 for value in times["a"] + times["b"])


def test_ratios_are_per_round_and_the_median_of_them():
    stock_times, fast_times = [4.0, 8.0, 2.0], [2.0, 2.0, 2.0]
    assert harness.per_round_ratios(stock_times, fast_times) == [2.0, 4.0, 1.0]
    # the median of per-round ratios (2.0), not the ratio of medians (4 / 2 = 2.0 here too, so
    # a case where they differ:)
    assert harness.ratio([1.0, 10.0, 10.0], [1.0, 1.0, 100.0]) == "1.00x (0.10-10.00)"
    assert harness.per_round_ratios([1.0, 2.0], [0.0, 1.0]) == [2.0]  # a zero round skipped
    with pytest.raises(ValueError, match="3 rounds against 2"):
        harness.per_round_ratios([1.0] * 3, [1.0] * 2)


def test_spread_and_duration_cells():
    assert harness.spread([1.0, 3.0, 2.0]) == "2.00x (1.00-3.00)"
    assert harness.spread([]) == "-"
    assert harness.duration([0.0123, 0.0121, 0.0130]) == "12.3 ms (12.1-13.0)"
    assert harness.duration([2.5e-6, 2.0e-6, 3.0e-6]) == "2.5 us (2-3)"
    assert harness.duration([1.5, 1.25, 2.0], "s") == "1.5 s (1.25-2)"
    assert harness.duration([0.25], "ms") == "250 ms (250-250)"


def test_tables_and_sections():
    header, rows = ["case", "ratio"], [["a", "1.00x"], ["longer name", "2.00x"]]
    text = harness.text_table(header, rows).splitlines()
    assert len(text) == 4 and len({len(line) for line in text}) == 1  # aligned columns
    assert harness.markdown_table(header, rows, left=1).splitlines()[:2] == [
        "| case | ratio |",
        "|---|---:|",
    ]
    section = harness.Section("Title")
    section.table(header, rows)
    section.note("a note")
    assert section.text().startswith("== Title ==\n") and "a note" in section.text()
    assert section.markdown().startswith("## Title\n\n| case | ratio |")


def test_write_report_names_the_command_and_the_machine(tmp_path):
    section = harness.Section("Numbers")
    section.table(["x"], [["1"]])
    path = harness.write_report(tmp_path / "a" / "r.md", "t", "python x.py --y", [section])
    text = path.read_text()
    assert text.startswith("# t\n\nMeasured by `python x.py --y` on ") and " UTC: " in text
    assert "## Numbers" in text
    assert harness.DEFAULT_OUT.parts[0] == "build"  # results stay out of tracked files


def test_stock_detection_collate_matches_fastloader():
    g = torch.Generator().manual_seed(0)
    batch = [
        (torch.randint(0, 256, (3, 8, 6), generator=g, dtype=torch.uint8), torch.rand(k, 5))
        for k in (0, 2, 3)
    ]
    images, targets = stock.detection_collate(batch)
    fast = fast_detection_collate(batch)
    assert torch.equal(images, fast.images)
    assert [t.tolist() for t in targets] == [t.tolist() for t in fast.per_image("target")]
    assert all(t.dtype == torch.float32 for t in targets)


def test_detectron2_style_padding_reference():
    images = [torch.ones(3, 5, 7, dtype=torch.uint8), torch.full((3, 9, 4), 2, dtype=torch.uint8)]
    padded = stock.pad_like_detectron2(images, 8)
    assert padded.shape == (2, 3, 16, 8) and padded.dtype == torch.uint8
    assert padded[0, :, :5, :7].eq(1).all() and padded[0, :, 5:].eq(0).all()
    assert padded[1, :, :9, :4].eq(2).all() and padded[1, :, :, 4:].eq(0).all()
    assert np.array_equal(padded[1, 0, :9, :4].numpy(), np.full((9, 4), 2, dtype=np.uint8))
    padded_images, targets = stock.detectron2_style_padding(
        [(images[0], [[1, 2, 3, 4, 0]]), (images[1], [])], 8
    )
    assert torch.equal(padded_images, padded) and [t.shape for t in targets] == [(1, 5), (0,)]


def test_stock_repeat_factor_epoch_repeats_each_image_floor_or_ceil_times():
    factors = torch.tensor([1.0, 2.5, 0.25, 3.0])
    int_part = torch.trunc(factors)
    epoch = stock.detectron2_repeat_factor_epoch(
        int_part, factors - int_part, torch.Generator().manual_seed(0)
    )
    counts = torch.bincount(epoch, minlength=4).tolist()
    assert counts[0] == 1 and counts[1] in (2, 3) and counts[2] in (0, 1) and counts[3] == 3
    # fastloader's sampler has the same per-image counts rule
    ours = torch.bincount(RepeatFactorSampler(factors, seed=0).indices(), minlength=4).tolist()
    assert ours[0] == 1 and ours[1] in (2, 3) and ours[2] in (0, 1) and ours[3] == 3


def test_stock_grouped_batches_keep_groups_apart_as_ours_do():
    group_ids = [k % 2 for k in range(20)]
    order = torch.utils.data.SequentialSampler(range(20))
    batches = list(stock.torchvision_grouped_batches(order, group_ids, 4))
    assert len(batches) == 5 and all(len({group_ids[i] for i in b}) == 1 for b in batches)
    ours = list(AspectRatioGroupedBatchSampler(order, np.array(group_ids), 4))
    assert len(ours) == 5 and all(len({group_ids[i] for i in b}) == 1 for b in ours)
