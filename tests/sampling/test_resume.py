"""Checkpoint state of the weighted samplers: exact resume, StatefulDataLoader, elastic, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from fastloader import (
    DistributedWeightedBatchSampler,
    DistributedWeightedSampler,
    FastWeightedBatchSampler,
    FastWeightedSampler,
)
from fastloader.sampling._state import STATE_VERSION, next_epoch_seed
from tests.helpers.datasets import IndexDataset

# torchdata 0.11 calls a torch API that torch 2.13 deprecates; nothing to act on here.
pytestmark = pytest.mark.filterwarnings("ignore:.set_vital. is deprecated:UserWarning")

WEIGHTS = np.random.default_rng(11).random(3000) + 0.05
N = 1000  # indices per epoch


def make(form: str, replacement: bool, seed: int | None):
    if form == "sampler":
        return FastWeightedSampler(WEIGHTS, N, replacement, seed=seed)
    return FastWeightedBatchSampler(WEIGHTS, N, 64, False, replacement, seed=seed)


def flat(items) -> list[int]:
    return [i for item in items for i in (item if isinstance(item, list) else [item])]


def run_epochs(sampler, first_epoch: int, epochs: int, stop_after: int | None = None):
    """A training loop: set_epoch, then iterate. Returns (items, state) when stop_after is hit."""
    items = []
    for epoch in range(first_epoch, epochs):
        sampler.set_epoch(epoch)
        for item in sampler:
            items.append(item)
            if len(items) == stop_after:
                return items, sampler.state_dict(), epoch
    return items, sampler.state_dict(), epochs - 1


# ---------------------------------------------------------------- the state itself


@pytest.mark.parametrize("replacement", [True, False])
def test_state_is_a_few_small_fields(replacement):
    sampler = FastWeightedSampler(np.ones(300_000), 200_000, replacement, seed=3)
    iterator = iter(sampler)
    for _ in range(123_457):
        next(iterator)
    state = sampler.state_dict()
    assert state["version"] == STATE_VERSION
    assert state["position"] == 123_457 and state["epoch"] == 0 and state["seed"] == 3
    assert all(isinstance(v, (int, str, bool, type(None))) for v in state.values())
    assert len(pickle.dumps(state)) < 1024
    assert sampler.state_dict() == state  # asking again changes nothing


def test_seed_none_state_holds_the_drawn_epoch_seed():
    torch.manual_seed(0)
    sampler = FastWeightedSampler(WEIGHTS, N)
    assert sampler.state_dict()["epoch_seed"] is None  # nothing drawn before the first epoch
    first = list(sampler)
    drawn = sampler.state_dict()["epoch_seed"]
    assert isinstance(drawn, int)
    assert first == FastWeightedSampler(WEIGHTS, N, seed=drawn).indices().tolist()
    second = list(sampler)
    assert sampler.state_dict()["epoch_seed"] == next_epoch_seed(drawn)
    assert second != first


# ---------------------------------------------------------------- exact resume, in process


@pytest.mark.parametrize("form", ["sampler", "batch"])
@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("seed", [5, None])
@pytest.mark.parametrize("cut", ["mid", "boundary", "start"])
def test_resume_continues_the_uninterrupted_run(form, replacement, seed, cut):
    torch.manual_seed(1)
    whole, _, _ = run_epochs(make(form, replacement, seed), 0, 3)
    per_epoch = len(whole) // 3
    stop = {"mid": per_epoch + 7, "boundary": per_epoch, "start": 1}[cut]
    torch.manual_seed(1)
    done, state, epoch = run_epochs(make(form, replacement, seed), 0, 3, stop_after=stop)
    pickled = pickle.loads(pickle.dumps(state))
    torch.manual_seed(999)  # a new process: the generator is elsewhere, the state must decide
    resumed = make(form, replacement, None if seed is None else 12345)
    resumed.load_state_dict(pickled)
    next_epoch = epoch + 1 if cut == "boundary" else epoch
    rest, _, _ = run_epochs(resumed, next_epoch, 3)
    assert flat(done) + flat(rest) == flat(whole)


def test_load_then_set_epoch_of_the_next_epoch_after_a_finished_one():
    sampler = FastWeightedSampler(WEIGHTS, N, seed=2)
    sampler.set_epoch(4)
    list(sampler)
    state = sampler.state_dict()
    fresh = FastWeightedSampler(WEIGHTS, N, seed=2)
    fresh.set_epoch(5)  # StatefulDataLoader loads after the loop's set_epoch: it must stand
    fresh.load_state_dict(state)
    assert fresh.epoch == 5
    sampler.set_epoch(5)
    assert list(fresh) == list(sampler)


def test_a_later_iter_after_resume_starts_a_fresh_epoch():
    sampler = FastWeightedSampler(WEIGHTS, N, seed=4)
    iterator = iter(sampler)
    head = [next(iterator) for _ in range(10)]
    resumed = FastWeightedSampler(WEIGHTS, N, seed=4)
    resumed.load_state_dict(sampler.state_dict())
    rest = list(resumed)
    assert head + rest == sampler.indices().tolist()
    assert list(resumed) == sampler.indices().tolist()  # the next iteration is a whole epoch


def test_batch_and_plain_states_are_interchangeable():
    batches = FastWeightedBatchSampler(WEIGHTS, N, 64, seed=6)
    iterator = iter(batches)
    head = [next(iterator) for _ in range(3)]
    sampler = FastWeightedSampler(WEIGHTS, N, seed=6)
    sampler.load_state_dict(batches.state_dict())
    assert flat(head) + list(sampler) == sampler.indices().tolist()


def test_drop_last_batch_state_after_the_last_batch_is_an_ended_epoch():
    batches = FastWeightedBatchSampler(WEIGHTS, N, 64, drop_last=True, seed=6)
    got = list(batches)
    assert len(got) == N // 64
    state = batches.state_dict()
    assert state["position"] == N  # over, although the remainder was dropped
    again = FastWeightedBatchSampler(WEIGHTS, N, 64, drop_last=True, seed=6)
    again.load_state_dict(state)
    assert list(again) == got  # a whole fresh epoch, not an empty remainder


# ---------------------------------------------------------------- torchdata StatefulDataLoader


def loader_for(form, seed, num_workers):
    if form == "sampler":
        sampler = FastWeightedSampler(WEIGHTS, N, seed=seed)
        kwargs = {"sampler": sampler, "batch_size": 32}
    elif form == "batch":
        sampler = FastWeightedBatchSampler(WEIGHTS, N, 32, seed=seed)
        kwargs = {"batch_sampler": sampler}
    else:  # rank 1 of 3, as one DDP process would use it
        sampler = DistributedWeightedSampler(WEIGHTS, N, num_replicas=3, rank=1, seed=seed)
        if form == "distributed_batch":
            sampler = DistributedWeightedBatchSampler(sampler, 32)
            kwargs = {"batch_sampler": sampler}
        else:
            kwargs = {"sampler": sampler, "batch_size": 32}
    return sampler, StatefulDataLoader(
        IndexDataset(len(WEIGHTS)), num_workers=num_workers, **kwargs
    )


def loader_epochs(sampler, loader, first_epoch, epochs, stop_after=None):
    batches = []
    for epoch in range(first_epoch, epochs):
        sampler.set_epoch(epoch)
        for batch in loader:
            batches.append(batch.tolist())
            if len(batches) == stop_after:
                return batches, loader.state_dict(), epoch
    return batches, loader.state_dict(), epochs - 1


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize(
    "form,seed",
    [
        ("sampler", 7),
        ("sampler", None),
        ("batch", 7),
        ("batch", None),
        ("distributed", 7),
        ("distributed_batch", 7),
    ],
)
@pytest.mark.parametrize("cut", ["mid", "boundary"])
def test_stateful_dataloader_resumes_exactly(num_workers, seed, form, cut):
    torch.manual_seed(3)
    whole, _, _ = loader_epochs(*loader_for(form, seed, num_workers), 0, 2)
    per_epoch = len(whole) // 2
    stop = per_epoch + 5 if cut == "mid" else per_epoch
    torch.manual_seed(3)
    done, state, epoch = loader_epochs(*loader_for(form, seed, num_workers), 0, 2, stop)
    torch.manual_seed(4242)  # the resumed process's generator differs
    sampler, loader = loader_for(form, seed, num_workers)
    loader.load_state_dict(pickle.loads(pickle.dumps(state)))
    rest, _, _ = loader_epochs(sampler, loader, epoch + 1 if cut == "boundary" else epoch, 2)
    assert done + rest == whole


# ---------------------------------------------------------------- elastic resume


def global_stream(replacement: bool, length: int) -> np.ndarray:
    """Position g of the global stream for g < length (seed 9, epoch 0)."""
    if replacement:
        return FastWeightedSampler(WEIGHTS, length, seed=9).indices().numpy()
    perm = FastWeightedSampler(WEIGHTS, N, False, seed=9).indices().numpy()
    return np.resize(perm, length)  # padding wraps around to the start


def shards(replicas: int, replacement: bool, drop_last: bool = False):
    return [
        DistributedWeightedSampler(
            WEIGHTS, N, replacement, num_replicas=replicas, rank=r, seed=9, drop_last=drop_last
        )
        for r in range(replicas)
    ]


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("before,after", [(2, 1), (1, 2), (2, 3), (3, 2)])
@pytest.mark.parametrize("consumed", [1, 77, 333])
def test_elastic_resume_loses_and_repeats_no_global_position(replacement, before, after, consumed):
    old = shards(before, replacement)
    iterators = [iter(s) for s in old]
    seen = {}  # global position -> index
    for step in range(consumed):  # ranks step in lockstep, as under DDP
        for rank, iterator in enumerate(iterators):
            seen[step * before + rank] = next(iterator)
    state = old[0].state_dict()
    assert state["position"] == consumed * before and state["num_replicas"] == before
    new = shards(after, replacement)
    remaining = []
    for sampler in new:
        sampler.load_state_dict(state)
        remaining.append(list(sampler))
    assert len({len(r) for r in remaining}) == 1, "ranks must stay in lockstep after resuming"
    start = consumed * before
    for rank, items in enumerate(remaining):
        for i, index in enumerate(items):
            position = start + rank + after * i
            assert position not in seen, "a global position was repeated"
            seen[position] = index
    end = max(seen) + 1
    assert sorted(seen) == list(range(end)), "a global position was lost"
    assert end >= N and end - N < after  # everything once, padded by less than one round
    expected = global_stream(replacement, end)
    assert [seen[g] for g in range(end)] == expected.tolist()


def test_elastic_resume_with_batches_from_two_ranks_to_one():
    old = [DistributedWeightedBatchSampler(s, 16) for s in shards(2, True)]
    iterators = [iter(b) for b in old]
    head = [[next(it) for _ in range(5)] for it in iterators]
    single = FastWeightedSampler(WEIGHTS, N, seed=9)
    single.load_state_dict(old[1].state_dict())
    rest = list(single)
    interleaved = [head[r][b][i] for b in range(5) for i in range(16) for r in range(2)]
    assert interleaved + rest == global_stream(True, N).tolist()


# ---------------------------------------------------------------- refusals


def test_mismatched_states_are_refused_naming_the_field():
    sampler = FastWeightedSampler(WEIGHTS, N, seed=1)
    list(sampler)
    state = sampler.state_dict()
    other_weights = WEIGHTS.copy()
    other_weights[5] += 1.0
    cases = [
        (FastWeightedSampler(other_weights, N, seed=1), "weights_fingerprint"),
        (FastWeightedSampler(WEIGHTS[:-1], N, seed=1), "num_weights"),
        (FastWeightedSampler(WEIGHTS, N + 1, seed=1), "num_samples"),
        (FastWeightedSampler(WEIGHTS, N, False, seed=1), "replacement"),
    ]
    for target, field in cases:
        before = target.state_dict()
        with pytest.raises(ValueError, match=field):
            target.load_state_dict(state)
        assert target.state_dict() == before, "a refused state must change nothing"
    with pytest.raises(ValueError, match="unknown state version 99"):
        sampler.load_state_dict({**state, "version": 99})
    with pytest.raises(ValueError, match="lacks the field"):
        sampler.load_state_dict({k: v for k, v in state.items() if k != "position"})
    with pytest.raises(ValueError, match="position"):
        sampler.load_state_dict({**state, "position": -1})
    with pytest.raises(TypeError, match="expects a dict"):
        sampler.load_state_dict([1, 2])


def test_distributed_refuses_a_seedless_state_before_any_epoch():
    fresh = FastWeightedSampler(WEIGHTS, N)
    state = fresh.state_dict()
    sampler = DistributedWeightedSampler(WEIGHTS, N, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="could not agree"):
        sampler.load_state_dict(state)


# ---------------------------------------------------------------- the previous format


def version1(state, weights):
    """What fastloader wrote before the shared state format: no phase, a SHA-1 fingerprint."""
    import hashlib

    old = {k: v for k, v in state.items() if k != "phase"}
    data = np.ascontiguousarray(weights, dtype="<f8")
    old["weights_fingerprint"] = hashlib.sha1(data.data.cast("B")).hexdigest()
    return {**old, "version": 1}


@pytest.mark.parametrize("seed", [5, None])
@pytest.mark.parametrize("cut", [0, 10, N])
def test_version1_states_of_the_weighted_samplers_still_load(seed, cut):
    torch.manual_seed(2)
    sampler = FastWeightedSampler(WEIGHTS, N, seed=seed)
    iterator = iter(sampler)
    for _ in range(cut):
        next(iterator)
    state = sampler.state_dict()
    assert state["phase"] == {0: "waiting", 10: "running", N: "over"}[cut]
    rest = list(iterator)
    following = list(sampler)  # the epoch after
    torch.manual_seed(2)  # a waiting seed=None state draws its first seed here, as the saver did
    resumed = FastWeightedSampler(WEIGHTS, N, seed=None if seed is None else 1)
    resumed.load_state_dict(version1(state, WEIGHTS))
    if cut < N:
        assert list(resumed) == rest and len(rest) == N - cut
    assert list(resumed) == following
    with pytest.raises(ValueError, match="weights_fingerprint"):
        FastWeightedSampler(WEIGHTS, N, seed=1).load_state_dict(version1(state, WEIGHTS + 1.0))
