"""Regression tests for issue 18's sampler items, one per item, named after it."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from torch.utils.data import Sampler

import fastloader.sampling.distributed
import fastloader.sampling.grouping
import fastloader.sampling.policies
import fastloader.sampling.weighted
from fastloader import (
    AspectRatioGroupedBatchSampler,
    ClassAwareSampler,
    DistributedWeightedBatchSampler,
    DistributedWeightedSampler,
    FastWeightedBatchSampler,
    FastWeightedSampler,
    RepeatFactorSampler,
    class_balanced_weights,
    class_image_counts,
    power_weights,
    repeat_factors,
)
from tests.helpers.stats import pooled_chisquare_pvalue

P_MIN = 1e-4


def test_item09_grouped_resume_seed_none():
    def make():
        return AspectRatioGroupedBatchSampler(
            FastWeightedSampler(np.ones(20), 20), np.arange(20) % 3, 3
        )

    torch.manual_seed(0)
    whole = list(make())
    torch.manual_seed(0)
    grouped = make()
    iterator = iter(grouped)
    head = [next(iterator) for _ in range(2)]
    state = grouped.state_dict()
    torch.manual_seed(123)  # a new process: its generator is elsewhere
    resumed = make()
    resumed.load_state_dict(state)
    assert len(whole) == 6
    assert head + list(resumed) == whole


def test_state_taken_between_iter_and_first_next_keeps_the_epoch():
    # The same fault in the plain sampler: a state saved after iter() but before next() named
    # the epoch's seed as if the epoch had not begun, so a resume skipped to the next epoch.
    torch.manual_seed(0)
    sampler = FastWeightedSampler(np.ones(50), 30)
    iterator = iter(sampler)
    first = next(iterator)
    state = sampler.state_dict()
    rest = list(iterator)
    torch.manual_seed(7)
    resumed = FastWeightedSampler(np.ones(50), 30)
    resumed.load_state_dict(state)
    assert list(resumed) == rest and len(rest) == 29 and isinstance(first, int)


def test_item10_elastic_drop_last_past_the_new_end_yields_nothing():
    old = DistributedWeightedSampler(torch.ones(11), num_replicas=1, rank=0, seed=7, drop_last=True)
    iterator = iter(old)
    for _ in range(10):
        next(iterator)
    state = old.state_dict()
    for rank in (0, 1):
        new = DistributedWeightedSampler(
            torch.ones(11), num_replicas=2, rank=rank, seed=7, drop_last=True
        )
        new.load_state_dict(state)
        assert list(new) == [], "the epoch is over at this world size: nothing may be replayed"
        new.set_epoch(1)
        assert len(list(new)) == 5  # the next epoch is whole


@pytest.mark.parametrize("before", [1, 2, 3])
@pytest.mark.parametrize("after", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [True, False])
def test_item10_elastic_resume_never_replays_an_epoch(before, after, drop_last):
    n = 11
    for consumed in range(1, n // before + 1):
        olds = [
            DistributedWeightedSampler(
                torch.ones(n), num_replicas=before, rank=r, seed=7, drop_last=drop_last
            )
            for r in range(before)
        ]
        if consumed >= len(olds[0]):
            continue  # an ended epoch: the next iteration is a fresh one, by design
        iterators = [iter(s) for s in olds]
        for _ in range(consumed):
            for it in iterators:
                next(it)
        state = olds[0].state_dict()
        new = DistributedWeightedSampler(
            torch.ones(n), num_replicas=after, rank=0, seed=7, drop_last=drop_last
        )
        new.load_state_dict(state)
        left = n - consumed * before
        assert len(list(new)) <= max(0, -(-left // after)), (consumed, state)


@pytest.mark.parametrize(
    "make",
    [
        lambda w: FastWeightedSampler(w, 40_000, seed=0),
        lambda w: DistributedWeightedSampler(w, 40_000, num_replicas=2, rank=1, seed=0),
    ],
)
def test_item11_subnormal_weight_sums_follow_the_weights(make):
    sampler = make([1e-310, 3e-310])
    counts = np.bincount(sampler.indices().numpy(), minlength=2)
    expected = counts.sum() * np.array([0.25, 0.75])
    assert pooled_chisquare_pvalue(counts, expected) > P_MIN, counts


def test_item11_smallest_subnormals_and_ordinary_weights_unchanged():
    counts = np.bincount(FastWeightedSampler([5e-324, 1e-323], 30_000, seed=1).indices().numpy())
    assert pooled_chisquare_pvalue(counts, 30_000 * np.array([1 / 3, 2 / 3])) > P_MIN
    # A lift never applies to weights whose sum is normal: their stream is bit for bit the same
    # as with the same ratios at scale 1 (the frozen-stream tests pin the absolute streams).
    a = FastWeightedSampler([1.0, 3.0], 1000, seed=2).indices()
    b = FastWeightedSampler([2.0**-1000, 3 * 2.0**-1000], 1000, seed=2).indices()
    assert torch.equal(a, b)


def test_item12_update_weights_takes_effect_at_the_next_iteration():
    sampler = FastWeightedSampler([1.0, 1.0, 1.0], 3000, seed=4)
    live = iter(sampler)
    head = [next(live) for _ in range(10)]
    before = sampler.state_dict()["weights_fingerprint"]
    sampler.update_weights([0.0, 0.0, 1.0])
    rest = list(live)  # the iteration under way keeps its weights
    assert set(head + rest) == {0, 1, 2}
    assert set(sampler) == {2}  # the next one uses the new weights
    assert sampler.state_dict()["weights_fingerprint"] != before
    assert sampler.weights.tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="keep their length"):
        sampler.update_weights([1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        sampler.update_weights([1.0, -1.0, 1.0])
    assert sampler.weights.tolist() == [0.0, 0.0, 1.0], "a refused update changes nothing"
    without = FastWeightedSampler([1.0, 1.0, 1.0], 2, replacement=False, seed=0)
    with pytest.raises(ValueError, match="should not exceed"):
        without.update_weights([1.0, 0.0, 0.0])


def test_item12_update_weights_on_every_form():
    batches = FastWeightedBatchSampler([1.0, 1.0], 8, 4, seed=0)
    batches.update_weights([0.0, 1.0])
    assert [i for b in batches for i in b] == [1] * 8
    dist = DistributedWeightedSampler([1.0, 1.0], 8, num_replicas=2, rank=0, seed=0)
    dist_batches = DistributedWeightedBatchSampler(dist, 2)
    dist_batches.update_weights([1.0, 0.0])
    assert list(dist) == [0] * 4 and dist.weights.tolist() == [1.0, 0.0]


def test_item12_in_place_edits_raise_instead_of_being_ignored():
    sampler = FastWeightedSampler([1.0, 1.0], 10, seed=0)
    for edit in (
        lambda w: w.__setitem__(0, 0.0),
        lambda w: w.mul_(2),
        lambda w: w[:1].zero_(),
        lambda w: w.numpy().__setitem__(0, 0.0),
        lambda w: torch.mul(w, 2, out=w),
    ):
        with pytest.raises((RuntimeError, ValueError), match="read-only"):
            edit(sampler.weights)
    doubled = sampler.weights * 2  # arithmetic gives ordinary tensors
    doubled[0] = 5.0
    assert doubled.tolist() == [5.0, 2.0] and type(doubled) is torch.Tensor
    repeat = RepeatFactorSampler([1.0, 2.0, 1.0], seed=0)
    with pytest.raises(RuntimeError, match="read-only"):
        repeat.repeat_factors[0] = 50.0
    assert len(list(repeat)) == len(repeat) == 4
    grouped = AspectRatioGroupedBatchSampler(repeat, [0, 1, 0], 1)
    with pytest.raises(ValueError, match="read-only"):
        grouped.group_ids[0] = 1


@pytest.mark.parametrize(
    "counts,q,expected",
    [
        ([10, 5], 400, [1.0, 0.5**400]),
        ([10, 5], 1e6, [1.0, 0.0]),
        ([1e-200, 1e-200], 2, [0.5, 0.5]),
        ([1e300, 1e-300], 3, [1.0, 0.0]),
    ],
)
def test_item13_power_weights_are_finite(counts, q, expected):
    got = power_weights(counts, q)
    assert np.isfinite(got).all() and got.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)


def test_item13_class_balanced_weights_are_finite():
    got = class_balanced_weights([1e-320, 1], 0.5)
    assert np.isfinite(got).all() and got.sum() == pytest.approx(2.0)
    # w_c is proportional to 1 / (1 - beta**n_c): the tiny class carries all but ~1e-320.
    assert got[0] == pytest.approx(2.0) and 0 < got[1] < 1e-300
    tiny = class_balanced_weights([1e-320, 1.0], 0.999999)  # n * log(beta) underflows to 0
    assert np.isfinite(tiny).all() and tiny[0] == pytest.approx(2.0)
    # 1 - beta**n is n * -log(beta) there; 1e-320 is subnormal, so only ~11 bits are exact.
    np.testing.assert_allclose(tiny[1] / tiny[0], 1e-320 * (1e-6 / (1 - 0.999999)), rtol=1e-2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ClassAwareSampler([np.array([0]), np.array([1])] * 10, seed=3),
        lambda: RepeatFactorSampler(np.linspace(0.5, 2.0, 20), seed=3),
        lambda: FastWeightedSampler(np.ones(20), 20, seed=3),
        lambda: AspectRatioGroupedBatchSampler(
            RepeatFactorSampler(np.ones(20), seed=3), np.arange(20) % 2, 2
        ),
    ],
)
@pytest.mark.parametrize(
    "bad", [{"position": -1}, {"epoch": 2**64}, {"phase": "done"}, {"seed": "x"}]
)
def test_item14_refused_state_changes_nothing(make, bad):
    sampler = make()
    it = iter(sampler)
    next(it)
    state = sampler.state_dict()
    expected = list(make())
    with pytest.raises(ValueError):
        sampler.load_state_dict({**state, "seed": 99, **bad})
    assert sampler.state_dict() == state
    if hasattr(sampler, "seed"):
        assert sampler.seed == 3
    assert list(sampler) == expected  # a fresh epoch, as if nothing had been loaded


def test_item14_grouped_refusal_leaves_the_inner_sampler():
    inner = RepeatFactorSampler(np.ones(20), seed=3)
    grouped = AspectRatioGroupedBatchSampler(inner, np.arange(20) % 2, 2)
    other = AspectRatioGroupedBatchSampler(RepeatFactorSampler(np.ones(20), seed=9), [0] * 20, 2)
    state = other.state_dict()
    state["group_ids_fingerprint"] = grouped.state_dict()["group_ids_fingerprint"]
    state["num_groups"] = grouped.num_groups
    live = iter(inner)
    next(live)  # the inner sampler is mid-epoch: a refused load must not turn that into a resume
    before = inner.state_dict()
    with pytest.raises(ValueError, match="num_batches"):
        grouped.load_state_dict({**state, "num_batches": 3})
    assert inner.state_dict() == before and inner.seed == 3
    assert list(inner) == list(RepeatFactorSampler(np.ones(20), seed=3))  # a fresh epoch


def test_item18_epoch_and_rank_ranges():
    sampler = FastWeightedSampler([1.0, 2.0], 4, seed=0)
    with pytest.raises(ValueError, match="below 2\\*\\*64"):
        sampler.load_state_dict({**sampler.state_dict(), "epoch": 2**64})
    for rank in (1.0, True):
        with pytest.raises(ValueError, match="rank should be an int"):
            DistributedWeightedSampler([1.0, 2.0], num_replicas=2, rank=rank)
    with pytest.raises(ValueError, match="num_replicas should be an int"):
        DistributedWeightedSampler([1.0, 2.0], num_replicas=2.0, rank=0)
    repeat = RepeatFactorSampler([1.0, 2.0], seed=0)
    repeat.set_epoch(2**64 - 1)  # the others' range: the native stream counter is a uint64
    assert len(list(repeat)) == len(repeat)
    with pytest.raises(ValueError, match="below 2\\*\\*64"):
        repeat.set_epoch(2**64)
    grouped = AspectRatioGroupedBatchSampler(repeat, [0, 0], 1)
    grouped.set_epoch(2**64 - 1)


def test_item19_positional_num_replicas_rank_say_keyword_only():
    with pytest.raises(ValueError, match="keyword-only"):
        DistributedWeightedSampler(np.ones(10), 2, 0)  # DistributedSampler's positional order
    with pytest.raises(ValueError, match="keyword-only"):
        DistributedWeightedSampler(np.ones(10), 2)


class _FloatSampler(Sampler[float]):
    def __init__(self, values):
        self.values = values

    def __iter__(self):
        return iter(self.values)

    def __len__(self):
        return len(self.values)


@pytest.mark.parametrize(
    "labels, shown",
    [
        ([np.array([2**63 + 5], dtype=np.uint64)], "9223372036854775813"),
        ([np.array([0.0]), np.array([np.inf])], "inf"),
        ([np.array([-np.inf])], "-inf"),
    ],
)
def test_item21_uint64_and_infinite_labels_are_named_as_given(labels, shown):
    """The int64 cast wrapped uint64 above 2**63 and turned inf into -2**63, so the error named
    class -9223372036854775808, a class nobody wrote."""
    for function in (class_image_counts, lambda lab: repeat_factors(lab, 0.1)):
        with pytest.raises(
            ValueError, match=rf"image_labels\[{len(labels) - 1}\] holds class {shown};"
        ):
            function(labels)


@pytest.mark.parametrize(
    "values", [[0.0, 1.5, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0], ["0", "1", "2", "3"]]
)
def test_item23_grouped_refuses_non_integer_indices(values):
    grouped = AspectRatioGroupedBatchSampler(_FloatSampler(values), [0, 0, 1, 1], 2)
    with pytest.raises(TypeError, match="integer dataset indices"):
        list(grouped)


def test_item23_integer_indices_from_custom_samplers_still_work():
    grouped = AspectRatioGroupedBatchSampler(_FloatSampler([3, 2, 1, 0]), [0, 0, 1, 1], 2)
    assert list(grouped) == [[3, 2], [1, 0]]
    tensors = _FloatSampler([torch.tensor(i) for i in (3, 2, 1, 0)])
    assert list(AspectRatioGroupedBatchSampler(tensors, [0, 0, 1, 1], 2)) == [[3, 2], [1, 0]]


PUBLIC_SAMPLERS = [
    FastWeightedSampler,
    FastWeightedBatchSampler,
    DistributedWeightedSampler,
    DistributedWeightedBatchSampler,
    RepeatFactorSampler,
    ClassAwareSampler,
    AspectRatioGroupedBatchSampler,
]


@pytest.mark.parametrize("cls", PUBLIC_SAMPLERS, ids=lambda c: c.__name__)
def test_item28_sampler_docstrings_have_args_and_a_running_example(cls):
    doc = cls.__doc__ or ""
    assert "Args:" in doc and "Example:" in doc, cls.__name__
    tests = doctest.DocTestFinder(recurse=False).find(cls, cls.__name__, globs={})
    examples = sum(len(t.examples) for t in tests)
    assert examples >= 2, f"{cls.__name__} has no doctest example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_item28_modules_doctests_pass():
    for module in (
        fastloader.sampling.weighted,
        fastloader.sampling.distributed,
        fastloader.sampling.policies,
        fastloader.sampling.grouping,
    ):
        failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failed == 0, module.__name__
