"""Repeat-factor, class-aware and aspect-ratio grouped samplers: distributions, API, errors."""

import bisect
import pickle
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.optimize import linear_sum_assignment
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from fastloader import (
    AspectRatioGroupedBatchSampler,
    ClassAwareSampler,
    RepeatFactorSampler,
    create_aspect_ratio_groups,
)
from tests.helpers.stats import pooled_chisquare_pvalue

# -------------------------------------------------------------------------------------------
# RepeatFactorSampler


def test_each_image_appears_floor_or_ceil_times_and_len_is_exact():
    factors = np.random.default_rng(0).uniform(0.0, 4.0, 5000)
    sampler = RepeatFactorSampler(factors, seed=3)
    lengths = set()
    for epoch in range(4):
        sampler.set_epoch(epoch)
        expected_len = len(sampler)
        drawn = list(sampler)
        assert len(drawn) == expected_len
        lengths.add(expected_len)
        counts = np.bincount(drawn, minlength=len(factors))
        assert np.all((counts == np.floor(factors)) | (counts == np.ceil(factors)))
    assert len(lengths) > 1  # the epoch length follows the rounding


def test_repeat_counts_have_mean_r_chi_square():
    # Over E epochs image i appears E*floor(r_i) + Binomial(E, frac(r_i)) times: the standardised
    # squared deviations sum to a chi-square with one degree of freedom per image.
    rng = np.random.default_rng(1)
    factors = np.floor(rng.uniform(0, 3, 800)) + rng.uniform(0.05, 0.95, 800)
    sampler = RepeatFactorSampler(factors, seed=11)
    epochs = 300
    totals = np.zeros(len(factors))
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        totals += np.bincount(sampler.indices().numpy(), minlength=len(factors))
    fraction = factors - np.floor(factors)
    statistic = np.sum((totals - epochs * factors) ** 2 / (epochs * fraction * (1 - fraction)))
    p_value = stats.chi2.sf(statistic, len(factors))
    assert 1e-3 < p_value < 1 - 1e-3
    assert abs(totals.sum() / epochs - factors.sum()) < 4 * np.sqrt(
        (fraction * (1 - fraction)).sum() / epochs
    )


def test_shuffle_puts_every_image_anywhere_uniformly_across_buckets():
    # 40000 copies: several shuffle buckets. Positions of images, split into 10 image groups x
    # 10 position bins, must be independent and uniform.
    n, epochs = 40000, 25
    sampler = RepeatFactorSampler(np.ones(n), seed=5)
    table = np.zeros((10, 10))
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        order = sampler.indices().numpy()
        positions = np.empty(n, dtype=np.int64)
        positions[order] = np.arange(n)
        table += np.histogram2d(np.arange(n) % 10, positions * 10 // n, bins=[10, 10])[0]
    assert stats.chi2_contingency(table)[1] > 1e-3
    first = Counter()
    small = RepeatFactorSampler(np.ones(7), seed=2)
    for epoch in range(3500):
        small.set_epoch(epoch)
        first[next(iter(small))] += 1
    observed = np.array([first[i] for i in range(7)])
    assert pooled_chisquare_pvalue(observed, np.full(7, 500.0)) > 1e-3


def test_stream_is_a_pure_function_of_seed_and_epoch():
    factors = np.random.default_rng(2).uniform(0.2, 3.0, 30000)
    a = RepeatFactorSampler(factors, seed=9)
    b = RepeatFactorSampler(torch.tensor(factors, dtype=torch.float64), seed=9)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = a.indices()
        torch.set_num_threads(2)
        two = b.indices()
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    b.set_epoch(1)
    assert not torch.equal(one[: len(b)], b.indices()[: len(one)])
    c = RepeatFactorSampler(factors, seed=10)
    assert not torch.equal(one[:1000], c.indices()[:1000])
    assert torch.equal(pickle.loads(pickle.dumps(a)).indices(), one)


def test_zero_factor_leaves_an_image_out():
    sampler = RepeatFactorSampler([0.0, 2.0, 0.0, 1.0], seed=0)
    assert sorted(sampler) == [1, 1, 3]


@pytest.mark.parametrize("num_replicas", [2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_split_one_global_stream_as_distributed_sampler(num_replicas, drop_last):
    factors = np.random.default_rng(4).uniform(0.5, 2.5, 101)
    global_stream = RepeatFactorSampler(factors, seed=7).indices().numpy()
    for rank in range(num_replicas):
        sampler = RepeatFactorSampler(
            factors, seed=7, num_replicas=num_replicas, rank=rank, drop_last=drop_last
        )
        reference = DistributedSampler(
            range(len(global_stream)), num_replicas, rank, shuffle=False, drop_last=drop_last
        )
        assert len(sampler) == len(reference)
        assert list(sampler) == global_stream[list(reference)].tolist()


def test_state_dict_resumes_mid_epoch():
    factors = np.random.default_rng(6).uniform(0.5, 2.5, 3000)
    sampler = RepeatFactorSampler(factors, seed=1, num_replicas=2, rank=1)
    sampler.set_epoch(3)
    everything = sampler.indices().tolist()
    iterator = iter(sampler)
    head = [next(iterator) for _ in range(1234)]
    state = sampler.state_dict()
    # The shared format (sampling/_state.py): global positions, so rank 1's 1234 are 2468.
    assert state["position"] == 2468 and state["epoch"] == 3 and state["phase"] == "running"
    resumed = RepeatFactorSampler(factors, seed=99, num_replicas=2, rank=1)
    resumed.load_state_dict(pickle.loads(pickle.dumps(state)))
    resumed.set_epoch(3)  # what a training loop does on restart: keeps the position
    assert head + list(resumed) == everything
    resumed.set_epoch(4)
    assert len(list(resumed)) == len(resumed)  # a new epoch starts at 0


@pytest.mark.parametrize("before,after", [(1, 3), (3, 2), (2, 2)])
def test_policy_states_resume_elastically_at_the_global_position(before, after):
    # The shared state format counts global positions, so a RepeatFactorSampler checkpoint
    # loads at another world size and loses or repeats no position (issue 17's one state core).
    factors = np.random.default_rng(3).uniform(0.5, 2.5, 301)
    global_stream = RepeatFactorSampler(factors, seed=2).indices().tolist()
    old = [RepeatFactorSampler(factors, seed=2, num_replicas=before, rank=r) for r in range(before)]
    iterators = [iter(s) for s in old]
    seen = {}
    for step in range(40):
        for rank, it in enumerate(iterators):
            seen[step * before + rank] = next(it)
    state = old[0].state_dict()
    assert state["position"] == 40 * before
    for rank in range(after):
        new = RepeatFactorSampler(factors, seed=99, num_replicas=after, rank=rank)
        new.load_state_dict(state)
        for i, index in enumerate(new):
            position = 40 * before + rank + after * i
            assert position not in seen
            seen[position] = index
    end = max(seen) + 1
    assert sorted(seen) == list(range(end)) and end - len(global_stream) < after
    assert [seen[g] for g in range(len(global_stream))] == global_stream


def test_load_state_dict_names_each_mismatch():
    factors = np.ones(100)
    sampler = RepeatFactorSampler(factors, seed=1)
    state = sampler.state_dict()
    with pytest.raises(ValueError, match="repeat_factors_fingerprint"):
        RepeatFactorSampler(np.full(100, 2.0), seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="num_images"):
        RepeatFactorSampler(np.ones(101), seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        sampler.load_state_dict({**state, "version": 99})
    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['position'\]"):
        sampler.load_state_dict({k: v for k, v in state.items() if k != "position"})
    with pytest.raises(ValueError, match="position=101 is past"):
        sampler.load_state_dict({**state, "position": 101})
    with pytest.raises(ValueError, match="phase"):
        sampler.load_state_dict({**state, "phase": "half"})
    with pytest.raises(TypeError, match="load_state_dict expects a dict"):
        sampler.load_state_dict([1, 2])
    # The shared format is elastic: another world size continues at the same global position.
    RepeatFactorSampler(factors, seed=1, num_replicas=2, rank=0).load_state_dict(state)


def test_load_state_dict_without_a_seed_is_refused_and_keeps_the_sampler():
    sampler = RepeatFactorSampler(np.linspace(0.5, 2.0, 50), seed=4)
    before = list(sampler)
    with pytest.raises(ValueError, match=r"state_dict\['seed'\]"):
        sampler.load_state_dict({**sampler.state_dict(), "seed": None})
    assert sampler.seed == 4 and list(sampler) == before


@pytest.mark.parametrize(
    "factors, match",
    [
        ([1.0, -0.5], r"repeat_factors\[1\]"),
        ([1.0, float("nan")], r"repeat_factors\[1\]"),
        ([0.0, 0.0], "positive"),
        ([], "empty"),
        ([2.0**31], "2\\*\\*31"),
    ],
)
def test_bad_repeat_factors_are_named(factors, match):
    with pytest.raises(ValueError, match=match):
        RepeatFactorSampler(factors, seed=0)


def test_bad_sharding_arguments():
    with pytest.raises(ValueError, match="seed"):
        RepeatFactorSampler([1.0], num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="rank"):
        RepeatFactorSampler([1.0], seed=0, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        RepeatFactorSampler([1.0], seed=0, num_replicas=0)
    with pytest.raises(ValueError, match="epoch"):
        RepeatFactorSampler([1.0], seed=0).set_epoch(-1)


def test_seed_none_follows_torch_manual_seed():
    torch.manual_seed(5)
    a = RepeatFactorSampler(np.ones(50)).indices()
    torch.manual_seed(5)
    b = RepeatFactorSampler(np.ones(50)).indices()
    assert torch.equal(a, b)


def test_dataloader_batches_follow_the_sampler():
    sampler = RepeatFactorSampler(np.full(40, 1.5), seed=0)
    loader = DataLoader(range(40), batch_size=8, sampler=sampler)
    assert torch.cat(list(loader)).tolist() == sampler.indices().tolist()


# -------------------------------------------------------------------------------------------
# ClassAwareSampler


def single_label_dataset(sizes):
    """Images of one class each: class c has sizes[c] images."""
    return [np.array([c]) for c, size in enumerate(sizes) for _ in range(size)]


@pytest.mark.parametrize("num_sample_class", [1, 3])
def test_class_aware_visits_every_class_equally_in_mmdet_order(num_sample_class):
    sizes = [1, 5, 50, 400]
    labels = single_label_dataset(sizes)
    sampler = ClassAwareSampler(labels, num_sample_class, seed=0, num_samples=960)
    drawn = sampler.indices().numpy()
    classes = np.array([labels[i][0] for i in drawn])
    # Each visit takes num_sample_class images of one class; each cycle of 4 visits covers all.
    visits = classes.reshape(-1, num_sample_class)
    assert np.all(visits == visits[:, :1])
    for cycle in visits[:, 0].reshape(-1, 4):
        assert sorted(cycle) == [0, 1, 2, 3]
    assert np.bincount(classes).tolist() == [240] * 4
    # Within a class, each run of its size is a fresh permutation of its images.
    for block in drawn[classes == 1].reshape(-1, 5):
        assert sorted(block) == [1, 2, 3, 4, 5]
    assert len(set(drawn[classes == 3])) == 240  # a prefix of one permutation of 400 images


def test_class_aware_draws_classes_equally_within_tolerance_with_multilabel_images():
    rng = np.random.default_rng(0)
    labels = [
        rng.choice(8, size=rng.integers(1, 3), p=[0.5, 0.2, 0.1, 0.08, 0.06, 0.03, 0.02, 0.01])
        for _ in range(3000)
    ]
    sampler = ClassAwareSampler(labels, seed=4)
    epoch_visits = Counter()
    for epoch in range(3):
        sampler.set_epoch(epoch)
        drawn = sampler.indices().numpy()
        # Reconstruct visited classes: the visited class is in the image; cycles of 8 visits
        # cover 8 different classes, so each class is visited 375 times an epoch.
        for cycle in drawn.reshape(-1, 8):
            # One image per class in each cycle: images and the 8 classes match perfectly.
            missing = np.ones((8, 8))
            for row, image in enumerate(cycle):
                missing[row, labels[image]] = 0
            rows, cols = linear_sum_assignment(missing)
            assert missing[rows, cols].sum() == 0
        epoch_visits.update(np.concatenate([np.unique(labels[i]) for i in drawn]).tolist())
    present = np.array([epoch_visits[c] for c in range(8)], dtype=float)
    # Every class gets at least its 375 visits an epoch; co-occurrence only adds to that.
    assert present.min() >= 3 * 375
    uniform_share = present[1:] / present[1:].sum()
    assert uniform_share.max() / uniform_share.min() < 3  # versus 50x in the labels


def test_class_aware_images_within_a_class_are_uniform():
    labels = single_label_dataset([30, 3])
    sampler = ClassAwareSampler(labels, seed=1, num_samples=6000)
    drawn = sampler.indices().numpy()
    counts = np.bincount(drawn, minlength=33)
    assert counts[:30].tolist() == [100] * 30 and counts[30:].tolist() == [1000] * 3
    firsts = Counter()
    for epoch in range(900):
        sampler.set_epoch(epoch)
        firsts[int(sampler.indices()[:2].max())] += 1  # one of the two visits is class 1
    observed = np.array([firsts[i] for i in (30, 31, 32)])
    assert pooled_chisquare_pvalue(observed, np.full(3, 300.0)) > 1e-3


def test_empty_classes_and_empty_images_are_skipped():
    labels = [np.array([0]), np.array([], dtype=np.int64), np.array([2, 2]), np.array([0, 2])]
    sampler = ClassAwareSampler(labels, num_classes=4, seed=0, num_samples=400)
    assert sampler.empty_classes.tolist() == [1, 3]
    assert sampler.images_per_class.tolist() == [2, 0, 2, 0]
    assert set(sampler.indices().tolist()) == {0, 2, 3}
    assert len(sampler) == 400


def test_class_aware_contract_matches_repeat_factor_sampler():
    labels = [np.array([i % 5]) for i in range(103)]
    global_stream = ClassAwareSampler(labels, seed=3).indices().numpy()
    assert len(global_stream) == 103
    for rank in range(4):
        sampler = ClassAwareSampler(labels, seed=3, num_replicas=4, rank=rank)
        reference = DistributedSampler(range(103), 4, rank, shuffle=False)
        assert list(sampler) == global_stream[list(reference)].tolist()
    sampler = ClassAwareSampler(labels, 2, seed=3)
    it = iter(sampler)
    head = [next(it) for _ in range(50)]
    resumed = ClassAwareSampler(labels, 2, seed=0)
    resumed.load_state_dict(sampler.state_dict())
    assert head + list(resumed) == sampler.indices().tolist()
    with pytest.raises(ValueError, match="num_sample_class"):
        ClassAwareSampler(labels, 1, seed=3).load_state_dict(sampler.state_dict())


def test_class_aware_bad_input():
    with pytest.raises(ValueError, match="num_sample_class"):
        ClassAwareSampler([np.array([0])], 0, seed=0)
    with pytest.raises(ValueError, match=r"image_labels\[1\] holds class 3"):
        ClassAwareSampler([np.array([0]), np.array([3])], num_classes=2, seed=0)
    with pytest.raises(ValueError, match="at least one object"):
        ClassAwareSampler([np.array([], dtype=np.int64)] * 3, seed=0)
    with pytest.raises(ValueError, match="num_samples"):
        ClassAwareSampler([np.array([0])], seed=0, num_samples=0)


# -------------------------------------------------------------------------------------------
# AspectRatioGroupedBatchSampler


def torchvision_grouped_batches(indices, group_ids, batch_size):
    """torchvision's GroupedBatchSampler algorithm (references/detection), restated here."""
    buffers, samples, batches = {}, defaultdict(list), []
    for index in indices:
        group = group_ids[index]
        buffers.setdefault(group, []).append(index)
        samples[group].append(index)
        if len(buffers[group]) == batch_size:
            batches.append(buffers.pop(group))
            buffers[group] = []  # the dict re-creates the key at once: it moves to the end
    remaining = len(indices) // batch_size - len(batches)
    for group, buffer in sorted(buffers.items(), key=lambda item: len(item[1]), reverse=True):
        if remaining <= 0:
            break
        need = batch_size - len(buffer)
        cycled = samples[group] * (need // len(samples[group]) + 1)
        batches.append(buffer + cycled[:need])
        remaining -= 1
    return batches


@pytest.mark.parametrize("batch_size", [1, 2, 5, 32])
@pytest.mark.parametrize("num_groups", [1, 3, 8])
def test_batches_equal_torchvision_grouped_batch_sampler(batch_size, num_groups):
    rng = np.random.default_rng(batch_size * 10 + num_groups)
    for n in (7, 100, 1001):
        group_ids = rng.integers(0, num_groups, n).tolist()
        generator = torch.Generator().manual_seed(n)
        sampler = RandomSampler(range(n), generator=generator)
        generator.manual_seed(0)
        ours = list(AspectRatioGroupedBatchSampler(sampler, group_ids, batch_size))
        generator.manual_seed(0)
        reference = torchvision_grouped_batches(list(sampler), group_ids, batch_size)
        assert ours == reference
        assert len(ours) == n // batch_size


def test_every_batch_is_one_group_and_holds_the_samplers_indices_plus_the_fill():
    rng = np.random.default_rng(7)
    group_ids = rng.integers(0, 6, 5000)
    sampler = RepeatFactorSampler(rng.uniform(0.5, 2.0, 5000), seed=2)
    grouped = AspectRatioGroupedBatchSampler(sampler, group_ids, 16)
    batches = list(grouped)
    assert len(batches) == len(sampler) // 16 == len(grouped)
    assert all(len(set(group_ids[b])) == 1 and len(b) == 16 for b in batches)
    stream = sampler.indices().tolist()
    # The documented contract: full batches in stream order, then completed buffers.
    flat = Counter(i for b in batches for i in b)
    left_over = Counter(stream) - flat  # indices of buffers not completed
    filled = flat - Counter(stream)  # repeated members used as fill
    per_group_left = Counter(group_ids[i] for i in left_over.elements())
    assert all(count < 16 for count in per_group_left.values())
    firsts = {g: [i for i in stream if group_ids[i] == g][:16] for g in range(6)}
    assert all(i in firsts[group_ids[i]] for i in filled)
    assert sum(filled.values()) < 16 * 6


def test_grouping_over_our_sampler_takes_its_epoch_without_iterating():
    sampler = RepeatFactorSampler(np.full(64, 1.0), seed=0)
    group_ids = np.arange(64) % 2
    grouped = AspectRatioGroupedBatchSampler(sampler, group_ids, 8)
    expected = torchvision_grouped_batches(sampler.indices().tolist(), group_ids.tolist(), 8)
    assert list(grouped) == expected
    grouped.set_epoch(1)
    assert sampler.epoch == 1
    assert list(grouped) != expected


def test_grouping_over_the_weighted_sampler_uses_its_epoch_array():
    from fastloader import FastWeightedSampler

    sampler = FastWeightedSampler(np.linspace(1, 2, 300), 1000, seed=4)
    group_ids = np.arange(300) % 3
    expected = torchvision_grouped_batches(list(sampler), group_ids.tolist(), 16)
    assert list(AspectRatioGroupedBatchSampler(sampler, group_ids, 16)) == expected


def test_sparse_group_ids_batch_like_dense_ones():
    sampler = SequentialSampler(range(50))
    sparse = (np.arange(50) % 3) * 1_000_000
    dense = np.arange(50) % 3
    assert list(AspectRatioGroupedBatchSampler(sampler, sparse, 4)) == list(
        AspectRatioGroupedBatchSampler(sampler, dense, 4)
    )


def test_grouped_state_dict_resumes_after_the_saved_batch():
    labels = np.random.default_rng(1).uniform(0.5, 2.0, 900)

    def make(seed):
        return AspectRatioGroupedBatchSampler(
            RepeatFactorSampler(labels, seed=seed), np.arange(900) % 4, 10
        )

    grouped = make(5)
    grouped.set_epoch(2)
    everything = list(grouped)
    it = iter(grouped)
    head = [next(it) for _ in range(17)]
    state = grouped.state_dict()
    resumed = make(123)
    resumed.load_state_dict(state)
    assert head + list(resumed) == everything
    other = AspectRatioGroupedBatchSampler(
        RepeatFactorSampler(labels, seed=5), np.arange(900) % 4, 9
    )
    with pytest.raises(ValueError, match="batch_size"):
        other.load_state_dict(state)


def test_grouped_batch_sampler_in_a_dataloader():
    grouped = AspectRatioGroupedBatchSampler(SequentialSampler(range(20)), np.arange(20) % 2, 4)
    loader = DataLoader(range(20), batch_sampler=grouped)
    assert [b.tolist() for b in loader] == [
        [0, 2, 4, 6],
        [1, 3, 5, 7],
        [8, 10, 12, 14],
        [9, 11, 13, 15],
        [16, 18, 0, 2],
    ]


def test_grouped_bad_input():
    sampler = SequentialSampler(range(10))
    with pytest.raises(ValueError, match="batch_size"):
        AspectRatioGroupedBatchSampler(sampler, [0] * 10, 0)
    with pytest.raises(ValueError, match="sampler should be an instance"):
        AspectRatioGroupedBatchSampler(list(range(10)), [0] * 10, 2)
    with pytest.raises(ValueError, match=r"group_ids\[3\]"):
        AspectRatioGroupedBatchSampler(sampler, [0, 0, 0, -1], 2)
    with pytest.raises(ValueError, match=r"group_ids\[1\]"):
        AspectRatioGroupedBatchSampler(sampler, [0.0, 0.5], 2)
    with pytest.raises(ValueError, match="group_ids"):
        AspectRatioGroupedBatchSampler(sampler, [], 2)
    short = AspectRatioGroupedBatchSampler(sampler, [0] * 5, 2)
    with pytest.raises(IndexError, match="index 5"):
        list(short)


def test_create_aspect_ratio_groups_uses_torchvisions_bins():
    ratios = np.random.default_rng(0).uniform(0.2, 3.0, 1000)
    for k in (0, 1, 3):
        bins = (2 ** np.linspace(-1, 1, 2 * k + 1)).tolist() if k > 0 else [1.0]
        expected = [bisect.bisect_right(bins, r) for r in ratios]
        assert create_aspect_ratio_groups(ratios, k).tolist() == expected
    groups = create_aspect_ratio_groups([500 / 375, 375 / 500, 1.0, 4.0, 0.1])
    assert groups.tolist() == [5, 2, 4, 7, 0] and groups.dtype == np.int64


@pytest.mark.parametrize("bad", [float("nan"), 0.0, -1.5, float("inf")])
def test_bad_aspect_ratios_are_named(bad):
    with pytest.raises(ValueError, match=r"aspect_ratios\[1\]"):
        create_aspect_ratio_groups([1.0, bad])


def test_bad_k():
    with pytest.raises(ValueError, match="k"):
        create_aspect_ratio_groups([1.0], k=-1)


def test_real_gloo_ranks_share_out_one_global_stream(tmp_path):
    import torch.multiprocessing as mp

    from tests.helpers.policy_ranks import gather_epochs

    world = 3
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(gather_epochs, args=(world, str(tmp_path / "init"), results), nprocs=world)
        results = dict(results)
    factors = np.linspace(0.3, 2.7, 997)
    labels = [np.array([i % 7]) for i in range(997)]
    for which, single in enumerate(
        (RepeatFactorSampler(factors, seed=5), ClassAwareSampler(labels, seed=5))
    ):
        single.set_epoch(2)
        stream = single.indices().numpy()
        per_rank = results[0][which]
        assert all(results[r][which] == per_rank for r in range(world))  # all ranks agree
        size = -(-len(stream) // world)
        assert [len(p) for p in per_rank] == [size] * world
        for rank, got in enumerate(per_rank):
            positions = (np.arange(size) * world + rank) % len(stream)
            assert got == stream[positions].tolist()
