"""Weighted sampling under torch.distributed: each rank draws its own positions of one stream."""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from .._util.checks import boolean, positive_int, seed_or_none
from ._state import RankGeometry
from .weighted import FastWeightedSampler, WeightsLike, _BatchesOf


class DistributedWeightedSampler(DistributedSampler):
    """Rank ``rank``'s shard of one weighted stream: global positions rank, rank + R, rank + 2R, ...

    A :class:`torch.utils.data.DistributedSampler`, so Lightning and other code that checks
    ``isinstance(sampler, DistributedSampler)`` use it as it is. Sizes are DistributedSampler's:
    ``num_samples`` (default ``len(weights)``) is the global count per epoch; each rank yields
    ``ceil(num_samples / R)`` (with ``drop_last``, ``ceil((num_samples - R) / R)`` when R does not
    divide it), which ``len()`` and the attribute ``num_samples`` give, as DistributedSampler's do;
    ``total_size`` is that times R.

    The global stream of an epoch is, with replacement, ``FastWeightedSampler(weights, total_size,
    seed=seed)`` at the same epoch, and each rank draws only its own positions (O(total_size / R)
    time and memory per rank). Without replacement it is the weighted permutation
    ``FastWeightedSampler(weights, num_samples, replacement=False, seed=seed)``, padded by wrapping
    around to its start (or truncated with ``drop_last``); each rank computes it natively (O(n))
    and keeps its shard. With ``num_replicas=1`` it equals FastWeightedSampler.

    ``seed`` must be the same on every rank, or ranks draw overlapping samples: pass a constant, or
    ``seed=broadcast_seed()`` to take one fresh seed from rank 0. ``set_epoch`` selects the epoch.

    ``state_dict()`` / ``load_state_dict()`` save and resume in O(1) (format in
    ``fastloader.sampling._state``); a state saved at one world size loads at another and continues
    at the same global position (rank 0's position times R is the prefix consumed by all ranks).

    Args:
        weights: 1-D non-negative finite weights, as for :class:`FastWeightedSampler`; the same
            on every rank. Change them with :meth:`update_weights`.
        num_samples: indices per epoch over all ranks (default ``len(weights)``).
        replacement: with (alias table) or without replacement (weighted permutation).
        num_replicas, rank: keyword-only (unlike DistributedSampler's positional order); taken
            from the initialized process group when None.
        seed: the stream's seed, the same on every rank (see :func:`broadcast_seed`).
        drop_last: drop the tail that does not fill a round instead of padding it.

    Example:
        >>> from fastloader import DistributedWeightedSampler
        >>> ranks = [DistributedWeightedSampler([1.0] * 10, num_replicas=2, rank=r, seed=0)
        ...          for r in range(2)]
        >>> [len(r) for r in ranks]
        [5, 5]
        >>> whole = DistributedWeightedSampler([1.0] * 10, num_replicas=1, rank=0, seed=0)
        >>> [i for pair in zip(*ranks) for i in pair] == list(whole)  # rank r: positions r, r+2..
        True
    """

    def __init__(
        self,
        weights: WeightsLike,
        num_samples: int | None = None,
        replacement: bool = True,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if seed_or_none(seed) is None:
            raise TypeError(
                "seed should be an int that every rank shares, but got None; use "
                "seed=fastloader.broadcast_seed() for one fresh seed taken on rank 0"
            )
        if not isinstance(replacement, bool) and isinstance(replacement, numbers.Integral):
            raise ValueError(
                f"replacement should be a boolean value, but got replacement={replacement!r}; "
                "num_replicas and rank are keyword-only here (unlike DistributedSampler's "
                "positional order): DistributedWeightedSampler(weights, num_replicas=2, rank=0)"
            )
        global_samples = positive_int(
            len(weights) if num_samples is None else num_samples, "num_samples"
        )
        drop_last = boolean(drop_last, "drop_last")
        for name, value in (("num_replicas", num_replicas), ("rank", rank)):
            # DistributedSampler takes 1.0 or True and fails later (or counts True as 1).
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, numbers.Integral)
            ):
                raise ValueError(f"{name} should be an int or None, but got {name}={value!r}")
        if (num_replicas is None or rank is None) and not (
            dist.is_available() and dist.is_initialized()
        ):
            # DistributedSampler's own error and type, plus what its users trip on here.
            raise ValueError(
                "Default process group has not been initialized, please make sure to call "
                "init_process_group. Or pass num_replicas= and rank=, which are keyword-only "
                "here: DistributedWeightedSampler(weights, num_replicas=2, rank=0)"
            )
        # DistributedSampler fills in num_replicas / rank from torch.distributed, raises its own
        # errors for bad ones and computes the sizes; a range stands in for the dataset.
        stand_in = cast("Dataset[int]", range(global_samples))
        super().__init__(stand_in, num_replicas, rank, True, seed, drop_last)
        positive_int(self.num_replicas, "num_replicas")
        self.replacement = boolean(replacement, "replacement")
        geometry = RankGeometry(self.num_replicas, self.rank, drop_last)
        self._stream = FastWeightedSampler._shard(
            weights, global_samples, replacement, seed, geometry
        )

    @property
    def weights(self) -> torch.Tensor:
        """The weights as a float64 tensor (a read-only copy; see :meth:`update_weights`)."""
        return self._stream.weights

    def update_weights(self, weights: WeightsLike) -> None:
        """See :meth:`FastWeightedSampler.update_weights`: from the next iteration on. Call it
        with the same weights on every rank (or ranks draw from different distributions)."""
        self._stream.update_weights(weights)

    @property
    def global_num_samples(self) -> int:
        """Indices per epoch of the global stream (before padding or truncation to total_size)."""
        return self._stream.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch's stream; call it with the same epoch on every rank."""
        self._stream.set_epoch(epoch)
        self.epoch = self._stream.epoch

    def __iter__(self) -> Iterator[int]:
        return iter(self._stream)

    def __len__(self) -> int:
        return self.num_samples

    def indices(self) -> torch.Tensor:
        """This rank's whole epoch as an int64 tensor: what ``__iter__`` yields, in order (a
        pending loaded state's epoch from its start, else a fresh one; see
        :meth:`FastWeightedSampler.indices`)."""
        return self._stream.indices()

    def state_dict(self) -> dict[str, Any]:
        """O(1) resumable state; see ``fastloader.sampling._state`` for the fields."""
        state = self._stream.state_dict()
        state["sampler"] = type(self).__name__
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues at the state's global position, at this or any other world size.

        Load the same state (rank 0's) on every rank. Raises ValueError when it belongs to other
        weights, ``num_samples`` or ``replacement``, or to an unknown format version.
        """
        checked = self._stream._checked_state(state)
        if checked["seed"] is None and checked["epoch_seed"] is None:
            raise ValueError(
                "DistributedWeightedSampler.load_state_dict: the state has seed=None and no drawn "
                "epoch seed yet, so ranks could not agree on a stream"
            )
        self._stream.load_state_dict(state)
        # None for a seed=None state: DistributedSampler's own seed is never used (our __iter__).
        self.epoch, self.seed = self._stream.epoch, self._stream.seed  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self._stream.weights)}, num_samples="
            f"{self.global_num_samples}, replacement={self.replacement}, rank={self.rank}, "
            f"num_replicas={self.num_replicas}, seed={self.seed}, epoch={self.epoch})"
        )


class DistributedWeightedBatchSampler(_BatchesOf):
    """Batches of a :class:`DistributedWeightedSampler`'s shard: ``DataLoader(batch_sampler=...)``.

    The concatenated batches equal the sampler's indices; lists are cut from C++-filled arrays.
    ``.sampler`` is the DistributedWeightedSampler, which is where Lightning calls ``set_epoch``.
    With Lightning, pass ``Trainer(use_distributed_sampler=False)``: otherwise Lightning tries to
    rebuild the batch sampler around its own DistributedSampler, which this class refuses.

    Args:
        sampler: the rank's :class:`DistributedWeightedSampler`.
        batch_size: indices per batch.
        drop_last: drop the rank's last batch when it is short.

    Example:
        >>> from fastloader import DistributedWeightedBatchSampler, DistributedWeightedSampler
        >>> sampler = DistributedWeightedSampler([1.0] * 10, num_replicas=2, rank=1, seed=0)
        >>> batches = DistributedWeightedBatchSampler(sampler, batch_size=2)
        >>> [len(b) for b in batches], [i for b in batches for i in b] == list(sampler)
        ([2, 2, 1], True)
    """

    def __init__(
        self, sampler: DistributedWeightedSampler, batch_size: int, drop_last: bool = False
    ) -> None:
        if not isinstance(sampler, DistributedWeightedSampler):
            raise TypeError(
                "sampler should be a fastloader DistributedWeightedSampler, but got "
                f"{type(sampler).__name__}; with Lightning, set Trainer(use_distributed_sampler="
                "False) so that it does not replace the sampler"
            )
        self.sampler = sampler
        self.batch_size = positive_int(batch_size, "batch_size")
        self.drop_last = boolean(drop_last, "drop_last")

    def _source(self) -> FastWeightedSampler:
        return self.sampler._stream


def broadcast_seed(
    group: Any = None, src: int = 0, generator: torch.Generator | None = None
) -> int:
    """One fresh seed drawn on rank ``src`` and sent to every rank of ``group``: all return it.

    The seed comes from ``generator`` (torch's default generator when None) on rank ``src`` only,
    so ``torch.manual_seed`` there makes it repeat. A collective: call it on every rank, e.g.
    ``DistributedWeightedSampler(weights, seed=broadcast_seed())``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "broadcast_seed needs an initialized process group: call "
            "torch.distributed.init_process_group first"
        )
    holder: list[Any] = [None]
    if dist.get_rank() == src:
        drawn = torch.empty((), dtype=torch.int64).random_(generator=generator)
        holder[0] = int(drawn.item())
    # An object broadcast picks the right device for the backend (CPU for gloo, CUDA for nccl).
    dist.broadcast_object_list(holder, src=src, group=group)
    return int(holder[0])
