"""DistributedWeightedSampler: sizes and errors as DistributedSampler, shards of one global stream,
real gloo process groups (spawn, torchrun), Lightning DDP, and the README's examples."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from torch.utils.data import DistributedSampler

from fastloader import (
    DistributedWeightedBatchSampler,
    DistributedWeightedSampler,
    FastWeightedBatchSampler,
    FastWeightedSampler,
    broadcast_seed,
)
from tests.helpers.distributed_ranks import spawned_rank
from tests.helpers.stats import pooled_chisquare_pvalue

ROOT = Path(__file__).resolve().parents[2]
P_MIN = 1e-4


def global_stream(weights, num_samples, replacement, seed, epoch, total_size):
    """The documented global stream: positions 0 .. total_size-1 of one epoch."""
    if replacement:
        sampler = FastWeightedSampler(weights, total_size, seed=seed)
        sampler.set_epoch(epoch)
        return sampler.indices().numpy()
    sampler = FastWeightedSampler(weights, num_samples, False, seed=seed)
    sampler.set_epoch(epoch)
    perm = sampler.indices().numpy()
    return np.resize(perm, total_size)  # pads by wrapping around, or truncates


# ---------------------------------------------------------------- in one process


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("num_samples", [600, 601, 599, 5])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shards_are_the_global_stream_with_distributed_sampler_sizes(
    replacement, num_samples, replicas, drop_last
):
    weights = np.random.default_rng(0).random(700) + 0.01
    shards = [
        DistributedWeightedSampler(
            weights,
            num_samples,
            replacement,
            num_replicas=replicas,
            rank=rank,
            seed=3,
            drop_last=drop_last,
        )
        for rank in range(replicas)
    ]
    stock = DistributedSampler(range(num_samples), replicas, 0, drop_last=drop_last)
    for epoch in (0, 1):
        expected = global_stream(weights, num_samples, replacement, 3, epoch, stock.total_size)
        for rank, sampler in enumerate(shards):
            assert isinstance(sampler, DistributedSampler)
            assert len(sampler) == sampler.num_samples == len(stock)
            assert sampler.total_size == stock.total_size
            sampler.set_epoch(epoch)
            assert list(sampler) == expected[rank::replicas].tolist()
            assert sampler.indices().tolist() == expected[rank::replicas].tolist()


@pytest.mark.parametrize("replacement", [True, False])
def test_one_replica_equals_fast_weighted_sampler(replacement):
    weights = np.arange(1.0, 301.0)
    single = FastWeightedSampler(weights, 250, replacement, seed=17)
    one = DistributedWeightedSampler(weights, 250, replacement, num_replicas=1, rank=0, seed=17)
    for epoch in (0, 3):
        single.set_epoch(epoch)
        one.set_epoch(epoch)
        assert list(one) == list(single)


def test_strided_draw_is_the_contiguous_stream():
    from fastloader import _C

    table = _C.AliasTable(np.arange(1.0, 5001.0))
    whole = np.empty(90_000, dtype=np.int64)
    table.draw(5, 2, 0, whole, len(whole), 2)
    for start, stride in [(0, 2), (1, 2), (2, 3), (7, 5)]:
        count = (len(whole) - start) // stride
        out = np.empty(count, dtype=np.int64)
        table.draw_strided(5, 2, start, stride, out, count, 2)
        assert (out == whole[start::stride][:count]).all()
    with pytest.raises(IndexError, match="stride"):
        table.draw_strided(5, 2, 0, 0, out, 1)
    with pytest.raises(ValueError, match="needed"):
        table.draw_strided(5, 2, 0, 2, np.empty(1, dtype=np.int64), 2)


@pytest.mark.parametrize("replacement", [True, False])
def test_union_of_ranks_fits_the_weights(replacement):
    weights = np.array([5.0, 1.0, 0.0, 3.0, 1.0] * 40)
    num_samples = 150 if not replacement else 200_000
    counts = np.zeros(len(weights))
    for rank in range(3):
        sampler = DistributedWeightedSampler(
            weights, num_samples, replacement, num_replicas=3, rank=rank, seed=21
        )
        counts += np.bincount(sampler.indices().numpy(), minlength=len(weights))
    assert counts[weights == 0].sum() == 0
    if replacement:
        expected = counts.sum() * weights / weights.sum()
        assert pooled_chisquare_pvalue(counts, expected) > P_MIN
    else:
        # Successive sampling: over many seeds, heavier items are taken more often.
        assert counts.max() <= 1  # a permutation of 150 positions: no index twice
        heavy = np.zeros(len(weights))
        for seed in range(200):
            for rank in range(3):
                s = DistributedWeightedSampler(
                    weights, 60, False, num_replicas=3, rank=rank, seed=seed
                )
                heavy[s.indices().numpy()] += 1
        by_class = [heavy[weights == w].mean() for w in (1.0, 3.0, 5.0)]
        assert by_class[0] < by_class[1] < by_class[2]


def test_batch_form_concatenates_to_the_shard():
    weights = np.random.default_rng(1).random(1000) + 0.1
    for drop_last in (False, True):
        sampler = DistributedWeightedSampler(weights, num_replicas=3, rank=1, seed=2)
        batches = list(DistributedWeightedBatchSampler(sampler, 32, drop_last))
        shard = sampler.indices().tolist()
        full = len(shard) // 32
        assert len(batches) == len(DistributedWeightedBatchSampler(sampler, 32, drop_last))
        assert len(batches) == (full if drop_last else full + 1)
        assert [i for b in batches for i in b] == shard[: len(batches) * 32]
    batch_sampler = DistributedWeightedBatchSampler(sampler, 32)
    batch_sampler.set_epoch(4)
    assert sampler.epoch == 4 and batch_sampler.sampler is sampler


def test_bad_arguments_raise_as_distributed_sampler_does():
    weights = np.ones(10)
    for rank in (2, 5, -1):
        with pytest.raises(ValueError) as ours:
            DistributedWeightedSampler(weights, num_replicas=2, rank=rank)
        with pytest.raises(ValueError) as stock:
            DistributedSampler(range(10), num_replicas=2, rank=rank)
        assert str(ours.value) == str(stock.value)
    if not dist.is_initialized():
        with pytest.raises((ValueError, RuntimeError)) as ours:
            DistributedWeightedSampler(weights)
        with pytest.raises(type(ours.value)) as stock:
            DistributedSampler(range(10))
        # Stock's message, then the hint that num_replicas and rank are keyword-only (item 19).
        assert str(ours.value).startswith(str(stock.value))
        assert "keyword-only" in str(ours.value)
    with pytest.raises(TypeError, match="broadcast_seed"):
        DistributedWeightedSampler(weights, num_replicas=2, rank=0, seed=None)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        DistributedWeightedSampler(weights, 0, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="num_samples=11 should not exceed"):
        DistributedWeightedSampler(weights, 11, False, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="weights should be non-negative"):
        DistributedWeightedSampler([1.0, -1.0], num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        DistributedWeightedSampler(weights, num_replicas=2, rank=0, drop_last=1)
    sampler = DistributedWeightedSampler(weights, num_replicas=2, rank=1)
    with pytest.raises(ValueError, match="epoch should be a non-negative integer"):
        sampler.set_epoch(-1)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DistributedWeightedBatchSampler(sampler, 0)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        DistributedWeightedBatchSampler(sampler, 2, drop_last="yes")
    with pytest.raises(TypeError, match="use_distributed_sampler=False"):
        DistributedWeightedBatchSampler(DistributedSampler(range(10), 2, 0), 4)
    with pytest.raises(RuntimeError, match="init_process_group"):
        broadcast_seed()
    single = FastWeightedBatchSampler(weights, 10, 2, seed=0)
    with pytest.raises(TypeError, match="DistributedWeightedSampler"):
        DistributedWeightedBatchSampler(single.sampler, 2)


# ---------------------------------------------------------------- real process groups


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("world", [2, 3])
def test_gloo_process_group_spawned_ranks(world, tmp_path):
    tmp.spawn(spawned_rank, args=(world, free_port(), str(tmp_path)), nprocs=world, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    seeds = {r["seed"] for r in ranks}
    assert len(seeds) == 1, "broadcast_seed must give every rank rank 0's seed"
    seed = seeds.pop()
    weights = np.random.default_rng(5).random(1001) + 0.05
    for replacement in (True, False):
        mine = [r[str(replacement)] for r in ranks]
        assert [m["rank"] for m in mine] == list(range(world))
        assert {m["world"] for m in mine} == {world}
        assert {m["len"] for m in mine} == {math.ceil(1001 / world)}
        total = mine[0]["total"]
        for epoch in (0, 1):
            expected = global_stream(weights, 1001, replacement, seed, epoch, total)
            interleaved = [None] * total
            for rank, m in enumerate(mine):
                got = m["epochs"][epoch]
                assert got["indices"] == got["batches"]
                assert len(got["indices"]) == m["len"]
                interleaved[rank::world] = got["indices"]
            assert interleaved == expected.tolist()
        assert mine[0]["epochs"][0]["indices"] != mine[0]["epochs"][1]["indices"]


def test_torchrun_runs_the_example(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "examples" / "ddp_weighted.py"),
        "--record",
        str(tmp_path),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["seed"] == ranks[1]["seed"]
    labels = torch.randint(0, 10, (10_000,), generator=torch.Generator().manual_seed(0))
    labels[labels > 4] = 0
    weights = (1.0 / torch.bincount(labels).double())[labels]
    for epoch in (0, 1):
        expected = global_stream(weights, 10_000, True, ranks[0]["seed"], epoch, 10_000)
        assert ranks[0]["epochs"][epoch] == expected[0::2].tolist()
        assert ranks[1]["epochs"][epoch] == expected[1::2].tolist()
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]


@pytest.mark.parametrize("batch_sampler", [False, True], ids=["sampler", "batch_sampler"])
def test_lightning_ddp_spawn_keeps_the_sampler_and_sets_epochs(batch_sampler, tmp_path):
    command = [
        sys.executable,
        str(ROOT / "examples" / "lightning_weighted.py"),
        "--record",
        str(tmp_path),
    ] + (["--batch-sampler"] if batch_sampler else [])
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    weights = torch.linspace(0.1, 1.0, 600, dtype=torch.float64)
    for epoch in (0, 1):
        expected = global_stream(weights, 600, True, 0, epoch, 600)
        for rank in (0, 1):
            record = json.loads((tmp_path / f"rank{rank}_epoch{epoch}.json").read_text())
            assert record["sampler"] == "DistributedWeightedSampler", "Lightning rewrapped it"
            assert record["sampler_epoch"] == epoch, "Lightning did not call set_epoch"
            assert record["seen"] == expected[rank::2].tolist()


# ---------------------------------------------------------------- README examples


@pytest.mark.parametrize("name", ["ddp_weighted.py", "lightning_weighted.py", "resume_weighted.py"])
def test_readme_links_the_examples_the_tests_run(name):
    readme = (ROOT / "README.md").read_text()
    assert f"(examples/{name})" in readme and (ROOT / "examples" / name).is_file()


def test_resume_example_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "resume_weighted.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed exactly: 30 + 49 batches = 79" in done.stdout
