"""FastWeightedSampler / FastWeightedBatchSampler: distributions, streams, DataLoader, errors."""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing as mp
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from fastloader import FastWeightedBatchSampler, FastWeightedSampler
from fastloader.sampling.weighted import STREAM_VERSION
from tests.helpers.datasets import IndexDataset
from tests.helpers.stats import pooled_chisquare_pvalue

P_MIN = 1e-4


def counts_of(indices: torch.Tensor, n: int) -> np.ndarray:
    return np.bincount(indices.numpy(), minlength=n)


# ---------------------------------------------------------------- with replacement: distribution

WEIGHT_SHAPES = {
    "uniform": np.ones(50),
    "two_classes_2_to_1": np.array([2.0] * 10 + [1.0] * 20),
    "zipf_1e5": 1.0 / np.arange(1, 100_001),
    "one_dominant": np.array([1e6] + [1.0] * 99),
    "tiny_beside_one": np.array([1e-30, 1.0, 0.0, 1.0]),
    "with_zeros": np.array([0.0, 3.0, 0.0, 1.0, 0.0, 5.0, 0.0]),
}


@pytest.mark.parametrize("name", sorted(WEIGHT_SHAPES))
@pytest.mark.parametrize("seed", [0, 12345])
def test_with_replacement_fits_weights(name, seed):
    weights = WEIGHT_SHAPES[name]
    k = 2_000_000 if name == "zipf_1e5" else 200_000
    sampler = FastWeightedSampler(weights, k, seed=seed)
    counts = counts_of(sampler.indices(), len(weights))
    assert counts.sum() == k
    assert counts[weights == 0].sum() == 0, "a zero-weight index was drawn"
    expected = k * weights / weights.sum()
    assert pooled_chisquare_pvalue(counts, expected) > P_MIN


def test_alias_table_never_redirects_to_a_zero_weight():
    from fastloader import _C

    weights = np.array([0.0, 1e-300, 0.0, 7.0, 0.0, 1e300, 0.0])
    table = _C.AliasTable(weights)
    acceptance, alias = table.acceptance(), table.alias()
    zero = weights == 0
    assert (acceptance[zero] == 0).all()
    assert (weights[alias[zero]] > 0).all()
    assert (weights[alias[acceptance < 1]] > 0).all()


def test_classic_imbalance_is_rebalanced():
    # 90% class 0, 10% class 1; weights 1/class-frequency should give about 50/50.
    labels = np.array([0] * 900 + [1] * 100)
    class_weight = 1.0 / np.bincount(labels)
    sampler = FastWeightedSampler(class_weight[labels], 100_000, seed=7)
    drawn = labels[sampler.indices().numpy()]
    share = drawn.mean()
    assert abs(share - 0.5) < 0.01


# ---------------------------------------------------------------- without replacement


def test_without_replacement_never_repeats_and_skips_zeros():
    weights = np.random.default_rng(0).random(10_000)
    weights[::7] = 0.0
    positive = np.flatnonzero(weights)
    sampler = FastWeightedSampler(weights, len(positive), replacement=False, seed=3)
    drawn = sampler.indices().numpy()
    assert len(np.unique(drawn)) == len(drawn)
    np.testing.assert_array_equal(np.sort(drawn), positive)


def test_without_replacement_first_draw_follows_weights():
    from fastloader import _C

    weights = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 10.0])
    trials = 20_000
    first = np.empty(trials, dtype=np.int64)
    out = np.empty(3, dtype=np.int64)  # k: the scratch comes from the pool
    for stream in range(trials):
        _C.sample_without_replacement(weights, 3, 99, stream, out)
        first[stream] = out[0]
    counts = np.bincount(first, minlength=len(weights))
    assert counts[4] == 0
    assert pooled_chisquare_pvalue(counts, trials * weights / weights.sum()) > P_MIN


def exact_ordered_sample_probabilities(weights: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    """Successive sampling (draw proportional to weight, remove, repeat), by enumeration."""
    probabilities = {}
    for order in itertools.permutations(range(len(weights)), k):
        p, remaining = 1.0, weights.sum()
        for i in order:
            p *= weights[i] / remaining
            remaining -= weights[i]
        probabilities[order] = p
    return probabilities


def test_without_replacement_matches_successive_sampling_exactly():
    from fastloader import _C

    weights = np.array([5.0, 1.0, 2.0, 0.5, 3.0])
    k, trials = 3, 30_000
    exact = exact_ordered_sample_probabilities(weights, k)
    orders = sorted(exact)
    position = {order: j for j, order in enumerate(orders)}
    counts = np.zeros(len(orders))
    out = np.empty(k, dtype=np.int64)
    for stream in range(trials):
        _C.sample_without_replacement(weights, k, 2024, stream, out)
        counts[position[tuple(out[:k].tolist())]] += 1
    expected = trials * np.array([exact[o] for o in orders])
    assert pooled_chisquare_pvalue(counts, expected) > P_MIN
    # Inclusion probabilities follow from the same enumeration.
    inclusion = np.zeros(len(weights))
    for order, p in exact.items():
        inclusion[list(order)] += p
    observed = np.zeros(len(weights))
    for order, c in zip(orders, counts, strict=False):
        observed[list(order)] += c
    np.testing.assert_allclose(observed / trials, inclusion, atol=0.012)


@pytest.mark.slow
def test_above_two_to_the_24_items_both_ways():
    n = 2**24 + 5
    weights = torch.ones(n, dtype=torch.float32)
    weights[-1] = 1e6  # the last index, beyond 2^24, must be reachable
    with pytest.raises(RuntimeError):
        list(WeightedRandomSampler(weights, 10))  # what users hit with the stock class
    with_repl = FastWeightedSampler(weights, 1000, seed=1).indices()
    assert with_repl.dtype == torch.int64
    assert int(with_repl.max()) < n and int(with_repl.min()) >= 0
    assert (with_repl == n - 1).sum() > 30  # weight 1e6 of ~1.78e7 total: about 56 of 1000
    without = FastWeightedSampler(weights, 1000, replacement=False, seed=1).indices()
    assert len(torch.unique(without)) == 1000
    assert int(without.max()) < n


# ---------------------------------------------------------------- streams


def test_same_seed_and_epoch_repeat_and_epochs_differ():
    for replacement in (True, False):
        sampler = FastWeightedSampler(np.arange(1, 1001), 500, replacement, seed=11)
        first, again = list(sampler), list(sampler)
        assert first == again
        sampler.set_epoch(1)
        assert list(sampler) != first
        sampler.set_epoch(0)
        assert list(sampler) == first
        assert sampler.indices().tolist() == first


def test_iteration_equals_indices_across_chunks():
    sampler = FastWeightedSampler(np.ones(300_000), 200_001, seed=5)  # several 65536 chunks
    assert list(sampler) == sampler.indices().tolist()


def test_manual_seed_and_generator_paths_are_reproducible():
    weights = np.arange(1.0, 101.0)
    torch.manual_seed(123)
    a = list(FastWeightedSampler(weights, 200))
    torch.manual_seed(123)
    b = list(FastWeightedSampler(weights, 200))
    assert a == b
    sampler = FastWeightedSampler(weights, 200)
    assert list(sampler) != list(sampler), "without a seed each epoch must draw a fresh stream"
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    s1 = FastWeightedSampler(weights, 80, replacement=False, generator=g1)
    s2 = FastWeightedSampler(weights, 80, replacement=False, generator=g2)
    assert list(s1) == list(s2) and list(s1) == list(s2)


def test_result_does_not_depend_on_thread_count():
    weights = np.random.default_rng(1).random(400_000)
    previous = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(
                (
                    FastWeightedSampler(weights, 300_000, seed=4).indices(),
                    FastWeightedSampler(weights, 300_000, False, seed=4).indices(),
                )
            )
    finally:
        torch.set_num_threads(previous)
    for with_repl, without in results[1:]:
        assert torch.equal(with_repl, results[0][0])
        assert torch.equal(without, results[0][1])


# A change of either stream is a breaking change for users who saved seeds: these digests pin them,
# and a new digest comes only with a STREAM_VERSION bump (the C++ tests pin the same streams, on
# x86-64 and aarch64). Version 2: the without-replacement keys use ziggurat exponentials instead
# of a series logarithm (issue 11: 5x torch.multinomial); the with-replacement stream is unchanged
# since version 1 (its table is now summed in compensated double instead of long double).
FROZEN = {
    True: "ade3109bf2f926edc6f608a19960c94995d0bf0094a7027ee9f3aa398c04ff01",
    False: "bf24ad6cb50f2082188d5f725eabc0b9feb722a8e91d0c05dc325853aa845b9c",
}


@pytest.mark.parametrize("replacement", [True, False])
def test_frozen_stream(replacement):
    assert STREAM_VERSION == 2
    weights = 1.0 / np.arange(1, 20_001)
    drawn = FastWeightedSampler(weights, 10_000, replacement, seed=20261125).indices()
    digest = hashlib.sha256(drawn.numpy().astype("<i8").tobytes()).hexdigest()
    assert digest == FROZEN[replacement]


def test_ziggurat_tables_are_what_the_generator_prints():
    pytest.importorskip("mpmath")
    root = Path(__file__).resolve().parents[2]
    printed = subprocess.run(
        [sys.executable, str(root / "csrc/core/gen_ziggurat_tables.py")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert printed == (root / "csrc/core/ziggurat_tables.hpp").read_text()


def test_exponential_keys_cope_with_the_whole_double_range():
    # Without a logarithm the keys E / w are coded exactly for any positive weights: subnormal and
    # huge weights in one draw, no overflow, and the huge one first.
    weights = np.array([5e-324, 1.0, 1e308, 2.0, 1e-300, 0.0])
    for seed in range(20):
        drawn = FastWeightedSampler(weights, 5, replacement=False, seed=seed).indices().tolist()
        assert drawn[0] == 2 and sorted(drawn) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- batch sampler


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_batch_sampler_matches_sampler_stream(replacement, drop_last):
    weights = np.random.default_rng(2).random(150_000) + 0.1
    num_samples, batch_size = 140_003, 256
    batches = list(
        FastWeightedBatchSampler(weights, num_samples, batch_size, drop_last, replacement, seed=8)
    )
    flat = FastWeightedSampler(weights, num_samples, replacement, seed=8).indices().tolist()
    full = num_samples // batch_size
    assert len(batches) == (full if drop_last else full + 1)
    assert all(len(b) == batch_size for b in batches[:full])
    assert all(type(i) is int for i in batches[0])
    joined = [i for b in batches for i in b]
    assert joined == flat[: len(joined)]
    if not drop_last:
        assert len(batches[-1]) == num_samples % batch_size
    sampler = FastWeightedBatchSampler(weights, num_samples, batch_size, drop_last, seed=8)
    assert len(sampler) == len(batches)


# ---------------------------------------------------------------- DataLoader, pickling, fork


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("num_workers,context", [(0, None), (2, "fork"), (2, "spawn")])
def test_dataloader_yields_exactly_the_sampled_indices(num_workers, context):
    weights = np.random.default_rng(3).random(5000)
    sampler = FastWeightedSampler(weights, 3000, seed=21)
    loader = DataLoader(
        IndexDataset(5000),
        batch_size=64,
        sampler=sampler,
        num_workers=num_workers,
        multiprocessing_context=context,
    )
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        got = torch.cat(list(loader)).tolist()
        assert got == sampler.indices().tolist()
    sampler.set_epoch(0)
    batch_sampler = FastWeightedBatchSampler(weights, 3000, 64, seed=21)
    loader = DataLoader(
        IndexDataset(5000),
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        multiprocessing_context=context,
    )
    assert torch.cat(list(loader)).tolist() == sampler.indices().tolist()


def test_pickle_keeps_state_and_stream():
    sampler = FastWeightedSampler(np.arange(1.0, 501.0), 300, seed=77)
    sampler.set_epoch(3)
    clone = pickle.loads(pickle.dumps(sampler))
    assert clone.epoch == 3 and clone.seed == 77
    assert list(clone) == list(sampler)
    generator = torch.Generator().manual_seed(5)
    seeded_by_generator = FastWeightedSampler(np.arange(1.0, 501.0), 300, False, generator)
    clone = pickle.loads(pickle.dumps(seeded_by_generator))
    assert list(clone) == list(seeded_by_generator)
    batches = FastWeightedBatchSampler(np.ones(100), 50, 8, seed=1)
    assert list(pickle.loads(pickle.dumps(batches))) == list(batches)


def _draw_in_child(sampler, queue):
    queue.put(sampler.indices().tolist())


@pytest.mark.multiprocess
def test_usable_in_a_forked_process():
    sampler = FastWeightedSampler(np.random.default_rng(4).random(300_000), 200_000, seed=6)
    expected = sampler.indices().tolist()  # the parent used its native code before forking
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_draw_in_child, args=(sampler, queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got == expected


# ---------------------------------------------------------------- weights accepted


@pytest.mark.parametrize(
    "weights",
    [
        [1, 2, 0, 3],
        (1.0, 2.0, 0.0, 3.0),
        np.array([1, 2, 0, 3], dtype=np.int32),
        np.array([1, 2, 0, 3], dtype=np.float16),
        torch.tensor([1, 2, 0, 3], dtype=torch.int64),
        torch.tensor([1, 2, 0, 3], dtype=torch.bfloat16),
        torch.tensor([1, 2, 0, 3], dtype=torch.float16),
        torch.tensor([1.0, 2.0, 0.0, 3.0], requires_grad=True),
        torch.tensor([9.0, 1.0, 9.0, 2.0, 9.0, 0.0, 9.0, 3.0])[1::2],  # non-contiguous view
    ],
    ids=lambda w: type(w).__name__ + str(getattr(w, "dtype", "")),
)
def test_weight_types_give_the_same_stream(weights):
    reference = FastWeightedSampler([1.0, 2.0, 0.0, 3.0], 1000, seed=2).indices()
    assert torch.equal(FastWeightedSampler(weights, 1000, seed=2).indices(), reference)


def test_caller_weights_are_never_modified_or_aliased():
    weights = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    array = np.array([1.0, 0.0, 2.0])
    s1 = FastWeightedSampler(weights, 10, seed=0)
    s2 = FastWeightedSampler(array, 2, False, seed=0)
    before = (list(s1), list(s2))
    weights[1] = 100.0
    array[1] = 100.0
    assert (list(s1), list(s2)) == before
    assert s1.weights[1] == 0.0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "weights,exc,words",
    [
        ([[1.0, 2.0]], ValueError, "weights should be 1-D"),
        ([], ValueError, "weights should not be empty"),
        (["a", "b"], TypeError, "weights should be a sequence of real numbers"),
        ([1.0, None], TypeError, "weights"),
        ("abc", TypeError, "weights"),
        ([1.0, -1.0], ValueError, "weights should be non-negative"),
        ([1.0, float("nan")], ValueError, "weights should be finite"),
        ([1.0, float("inf")], ValueError, "weights should be finite"),
        ([0.0, 0.0], ValueError, "at least one positive"),
        ([1e308, 1e308], ValueError, "sum of weights overflows"),
        (torch.tensor([1 + 1j]), TypeError, "weights should have a real numeric dtype"),
        (torch.tensor([True, False]), TypeError, "weights should have a real numeric dtype"),
        ([[1.0], [1.0, 2.0]], ValueError, "weights"),
    ],
)
def test_bad_weights_raise_at_construction(weights, exc, words):
    with pytest.raises(exc, match=words):
        FastWeightedSampler(weights, 5)


@pytest.mark.parametrize("num_samples", [0, -3, 2.5, True, "10", None])
def test_bad_num_samples(num_samples):
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        FastWeightedSampler([1.0, 2.0], num_samples)


@pytest.mark.parametrize("replacement", [0, 1, "yes", None])
def test_bad_replacement(replacement):
    with pytest.raises(ValueError, match="replacement should be a boolean"):
        FastWeightedSampler([1.0, 2.0], 2, replacement)


def test_too_many_samples_without_replacement():
    # The stock sampler silently returns zero-weight items here (pytorch/pytorch#48841).
    words = r"num_samples=3 should not exceed .* positive weights \(2\)"
    with pytest.raises(ValueError, match=words):
        FastWeightedSampler([1.0, 0.0, 2.0, 0.0, 0.0], 3, replacement=False)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, False])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        FastWeightedBatchSampler([1.0, 2.0], 2, batch_size)


def test_bad_drop_last_generator_seed_epoch():
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        FastWeightedBatchSampler([1.0], 2, 1, drop_last=1)
    with pytest.raises(TypeError, match="generator should be a torch.Generator"):
        FastWeightedSampler([1.0], 2, True, generator=42)
    with pytest.raises(TypeError, match="seed should be an int"):
        FastWeightedSampler([1.0], 2, seed=1.5)
    with pytest.raises(ValueError, match="seed should be in"):
        FastWeightedSampler([1.0], 2, seed=2**64)
    with pytest.raises(ValueError, match="epoch should be a non-negative integer"):
        FastWeightedSampler([1.0], 2, seed=0).set_epoch(-1)


def test_epoch_and_num_samples_beyond_the_native_range_are_rejected_at_the_call():
    sampler = FastWeightedSampler([1.0, 2.0], 4, seed=0)
    sampler.set_epoch(2**64 - 1)  # the largest uint64 stream still works
    assert len(sampler.indices()) == 4
    with pytest.raises(ValueError, match=rf"epoch should be below 2\*\*64, but got epoch={2**64}"):
        sampler.set_epoch(2**64)
    assert sampler.epoch == 2**64 - 1, "a rejected epoch must not replace the current one"
    with pytest.raises(ValueError, match=r"num_samples should be below 2\*\*63"):
        FastWeightedSampler([1.0, 2.0], 2**63)
    with pytest.raises(ValueError, match=r"num_samples should be below 2\*\*63"):
        FastWeightedBatchSampler([1.0, 2.0], 2**64, 8)
    with pytest.raises(ValueError, match=r"epoch should be below 2\*\*64"):
        FastWeightedBatchSampler([1.0, 2.0], 8, 2, seed=0).set_epoch(2**70)


def test_weights_property_cannot_make_the_table_stale():
    sampler = FastWeightedSampler([1.0, 1.0], 20_000, seed=3)
    before = sampler.indices()
    exposed = sampler.weights
    assert exposed.dtype == torch.float64 and exposed.tolist() == [1.0, 1.0]
    # A user "turning off" index 0 through the property is told to use update_weights (issue 18
    # item 12: this edit used to be silently ignored).
    with pytest.raises(RuntimeError, match="update_weights"):
        exposed[0] = 0.0
    assert sampler.weights.tolist() == [1.0, 1.0]
    assert torch.equal(sampler.indices(), before)
    without = FastWeightedSampler([1.0, 1.0, 1.0], 3, replacement=False, seed=3)
    with pytest.raises(RuntimeError, match="update_weights"):
        without.weights[:] = 0.0
    assert sorted(without.indices().tolist()) == [0, 1, 2]


def test_binding_rejects_bogus_sizes_with_value_errors():
    from fastloader import _C

    weights = np.array([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="out holds 4 items, 4611686018427387904 needed"):
        _C.sample_without_replacement(weights, 2**62, 0, 0, np.empty(4, np.int64))
    with pytest.raises(ValueError, match="k should be non-negative"):
        _C.sample_without_replacement(weights, -1, 0, 0, np.empty(4, np.int64))
    read_only = np.empty(8, np.int64)
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="out should be writable"):
        _C.sample_without_replacement(weights, 2, 0, 0, read_only)
    table = _C.AliasTable(np.ones(4))
    with pytest.raises(ValueError, match="out should be writable"):
        table.draw(0, 0, 0, read_only, 4)
    with pytest.raises(ValueError, match="count should be non-negative"):
        table.draw(0, 0, 0, np.empty(4, np.int64), -1)
    with pytest.raises(IndexError, match="overflow"):
        table.draw(0, 0, 2**63 - 2, np.empty(4, np.int64), 4)
    with pytest.raises(TypeError, match="out should be a C-contiguous native int64 array"):
        table.draw(0, 0, 0, np.empty(8, np.int64)[::2], 4)
    with pytest.raises(TypeError, match="out should be a C-contiguous native int64 array"):
        table.draw(0, 0, 0, np.empty((2, 2), np.int64), 4)
    with pytest.raises(TypeError, match="weights should be a C-contiguous native float64 array"):
        _C.AliasTable(np.ones((2, 2)))
    # A valid call next to each bogus one works and fills exactly out[:count].
    out = np.full(6, -1, np.int64)
    table.draw(0, 0, 0, out, 4)
    assert (out[:4] >= 0).all() and (out[4:] == -1).all()


def test_binding_rejects_wrong_buffers_instead_of_reading_garbage():
    from fastloader import _C

    with pytest.raises(TypeError, match="weights should be a C-contiguous native float64 array"):
        _C.AliasTable(np.ones(4, dtype=np.float32))
    table = _C.AliasTable(np.ones(4))
    with pytest.raises(TypeError, match="out should be"):
        table.draw(0, 0, 0, np.empty(4, dtype=np.int32), 4)
    with pytest.raises(ValueError, match="out holds 2 items, 4 needed"):
        table.draw(0, 0, 0, np.empty(2, dtype=np.int64), 4)
    with pytest.raises(IndexError, match="non-negative"):
        table.draw(0, 0, -1, np.empty(4, dtype=np.int64), 4)
    with pytest.raises(ValueError, match="out holds 2 items, 3 needed"):
        _C.sample_without_replacement(np.array([1.0, 0.0, 1.0]), 3, 0, 0, np.empty(2, np.int64))
    with pytest.raises(ValueError, match="cannot draw 3 samples without replacement from 2"):
        _C.sample_without_replacement(np.array([1.0, 0.0, 1.0]), 3, 0, 0, np.empty(3, np.int64))


def test_epochs_reuse_pooled_memory_and_draw_the_same():
    # Each draw takes its output and the kernel's scratch from the recycling pool: a later epoch
    # gets the earlier one's pages back (hits) once its indices are freed, with identical results.
    from fastloader import buffer_pool_stats

    weights = torch.rand(200_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for replacement in (True, False):
        sampler = FastWeightedSampler(weights, 100_000, replacement, seed=5)
        first = sampler.indices().clone()
        hits = buffer_pool_stats()["hits"]
        sampler.set_epoch(0)
        again = sampler.indices()
        assert buffer_pool_stats()["hits"] > hits
        assert torch.equal(first, again)
        if not replacement:
            assert len(set(again.tolist())) == 100_000
