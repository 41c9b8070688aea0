"""The one sampler-state core: rank geometry and sharding, the epoch cursor, the checkpoint format.

Every resumable sampler of this package (FastWeightedSampler, FastWeightedBatchSampler, their
distributed forms, RepeatFactorSampler, ClassAwareSampler and AspectRatioGroupedBatchSampler)
keeps its place in the epochs with one :class:`Progress` and saves it through ``state_dict()`` as
one flat dict: a few ints and strings, O(1) to build, never an index list. The streams are
counter-based, so these fields fix every remaining index:

=====================  ====================================================================
``version``            :data:`STATE_VERSION`; version 1 states of the weighted samplers are
                       still read, other versions are refused.
``sampler``            the class that saved it (informational: states move between the
                       single-process, batch and distributed forms).
identity fields        what the stream is drawn from, e.g. ``num_weights``,
                       ``weights_fingerprint``, ``num_samples``, ``replacement``; each sampler
                       names its own and a load compares them one by one, naming any that
                       differs. Fingerprints are :func:`fingerprint` of the data.
``seed``               the user's seed, or None.
``epoch``              the epoch ``set_epoch`` selected.
``epoch_seed``         with ``seed=None``: the seed of the epoch that ``position`` counts
                       (None before the first epoch starts); the next epoch's is
                       ``next_epoch_seed(epoch_seed)``.
``position``           global positions of that epoch consumed by all ranks together (a rank's
                       own count times ``num_replicas``: ranks step in lockstep under DDP).
``phase``              ``"waiting"`` (the epoch has not started: the next iteration starts it
                       fresh), ``"running"`` (started: the next iteration continues at
                       ``position``, also at position 0) or ``"over"``.
``num_replicas``       the world size when saved (informational: a state loads at any size and
                       continues at the same global position).
``inner``              AspectRatioGroupedBatchSampler only: its inner sampler's state.
=====================  ====================================================================

Loading validates every field before it assigns anything, so a refused state changes nothing.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from operator import length_hint
from typing import Any

import numpy as np

STATE_VERSION = 2
PHASES = ("waiting", "running", "over")

_COMMON = ("version", "sampler", "seed", "epoch", "epoch_seed", "position", "phase", "num_replicas")
_MASK64 = (1 << 64) - 1


def fingerprint(*parts: np.ndarray | bytes) -> str:
    """The one fingerprint of sampler data: BLAKE2b-128 over each part's length and bytes
    (arrays little-endian, C order), so arrays of different lengths or dtypes never collide."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            part = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            digest.update(str(array.dtype.str).encode())
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def legacy_weights_fingerprint(weights: np.ndarray) -> str:
    """Version 1's weights fingerprint (SHA-1 of the float64 weights), to read old states."""
    data = np.ascontiguousarray(weights, dtype="<f8")
    return hashlib.sha1(data.data.cast("B"), usedforsecurity=False).hexdigest()


def next_epoch_seed(seed: int) -> int:
    """The seed of the epoch after one drawn with ``seed`` (SplitMix64 step), when seed is None.

    Only the first epoch's seed is drawn from the generator; the rest follow from it, so a
    checkpoint that holds the current epoch's seed fixes every later epoch too.
    """
    x = (seed + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


# ------------------------------------------------------------------ geometry and sharding


@dataclass(frozen=True)
class Shard:
    """One rank's global positions of an epoch: first, first + stride, ... (count of them)."""

    first: int
    stride: int
    count: int


@dataclass(frozen=True)
class RankGeometry:
    """Where a rank sits: ``num_replicas`` ranks, this one ``rank``, and whether the tail that
    does not fill a round is dropped (``drop_last``) or padded by wrapping around the stream,
    with DistributedSampler's sizes."""

    num_replicas: int = 1
    rank: int = 0
    drop_last: bool = False

    def end(self, total: int) -> int:
        """Global positions holding real items in an epoch of ``total``; past it, padding."""
        return total - total % self.num_replicas if self.drop_last else total

    def shard_size(self, total: int) -> int:
        """Indices this rank yields in a whole epoch of ``total`` global positions."""
        return self.rest(0, total).count

    def rest(self, start: int, total: int) -> Shard:
        """This rank's positions from global position ``start`` on: round-robin, padded (or
        truncated) to whole rounds, so every rank yields the same count (DDP's lockstep)."""
        remaining = max(0, self.end(total) - start)
        replicas = self.num_replicas
        count = remaining // replicas if self.drop_last else -(-remaining // replicas)
        return Shard(start + self.rank, replicas, count)


def shard_array(stream: np.ndarray, shard: Shard) -> np.ndarray:
    """The items of a global epoch array at ``shard``'s positions; positions past its end wrap
    around to its start, as DistributedSampler pads."""
    if shard.count == 0 or len(stream) == 0:
        return stream[:0]
    last = shard.first + (shard.count - 1) * shard.stride
    if last < len(stream):
        return stream[shard.first : last + 1 : shard.stride]
    positions = np.arange(shard.first, last + 1, shard.stride, dtype=np.int64)
    return stream.take(positions, mode="wrap")


# ------------------------------------------------------------------ the epoch cursor


class Cursor:
    """One iteration over an epoch: its stream, where it starts, and how many of this rank's
    items it has handed out, read from the live list iterator only when asked (no per-item work).
    """

    def __init__(self, seed: int, epoch: int, start: int, shard: Shard) -> None:
        self.seed, self.epoch, self.start, self.shard = seed, epoch, start, shard
        self._done = 0  # items handed out before the current list
        self._length = 0
        self._items: Iterator[Any] | None = None

    def hand_out(self, rows: list[Any]) -> Iterator[Any]:
        """Yields ``rows`` next, counting them as they are taken."""
        self._done += self._length
        self._length, self._items = len(rows), iter(rows)
        return self._items

    def set_taken(self, done: int) -> None:
        self._done, self._length, self._items = done, 0, None

    def taken(self) -> int:
        if self._items is None:
            return self._done
        return self._done + self._length - length_hint(self._items)


class Progress:
    """Where a sampler is in its epochs, and its checkpoint state in the format above.

    ``seed`` None draws each epoch's seed: the first from ``begin``'s ``draw_seed()``, the rest
    with :func:`next_epoch_seed`. ``position`` counts global positions of ``position_epoch``.
    """

    def __init__(self, seed: int | None, geometry: RankGeometry | None = None) -> None:
        self.seed = seed
        self.geometry = RankGeometry() if geometry is None else geometry
        self.epoch = 0
        self.epoch_seed: int | None = None
        self.position, self.position_epoch, self.phase = 0, 0, "waiting"
        self._pending = False  # a loaded state waits for the next iteration
        self.live: Cursor | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def claim(self) -> tuple[int | None, int] | None:
        """Takes a pending loaded state: (its epoch seed, global position) when it stopped inside
        the current epoch, else None. Called when an iteration is created (torchdata calls
        ``iter()`` right after ``load_state_dict``; any later ``iter()`` starts a fresh epoch),
        while :meth:`begin` runs at its first ``next()``, so an iterator that is made and
        dropped draws no seed."""
        pending, self._pending = self._pending, False
        if pending and self.phase == "running" and self.position_epoch == self.epoch:
            return self.epoch_seed, self.position
        return None

    def begin(
        self,
        total: int,
        resume: tuple[int | None, int] | None,
        draw_seed: Callable[[], int] | None = None,
        *,
        whole: bool = False,
    ) -> Cursor:
        """Starts an iteration over the current epoch of ``total`` global positions: at what
        :meth:`claim` returned (from the epoch's start when ``whole``), else a fresh epoch (with
        ``seed`` None, the first one's seed comes from ``draw_seed()``). The new cursor owns the
        position from now on."""
        if resume is not None:
            self.epoch_seed, start = resume
            start = 0 if whole else start
        else:
            start = 0
            if self.seed is None and draw_seed is not None:
                last = self.epoch_seed  # the last started epoch's seed, if any
                self.epoch_seed = draw_seed() if last is None else next_epoch_seed(last)
        # A sampler without a stream of its own (grouped batches) has neither seed: 0 stands in.
        stream_seed = self.seed if self.seed is not None else self.epoch_seed or 0
        cursor = Cursor(stream_seed, self.epoch, start, self.geometry.rest(start, total))
        self.position, self.position_epoch, self.phase = start, self.epoch, "running"
        self.live = cursor
        return cursor

    def record(self, cursor: Cursor, done: int | None = None) -> None:
        """Brings the position up to date with ``cursor`` (``done`` items taken, or what its
        list iterator says); a cursor that is no longer the live one changes nothing."""
        if cursor is not self.live:
            return
        if done is not None:
            cursor.set_taken(done)
        taken = cursor.taken()
        if taken >= cursor.shard.count:
            self.phase = "over"
            self.position = cursor.start + cursor.shard.count * cursor.shard.stride
            self.live = None
        else:
            self.position = cursor.start + taken * cursor.shard.stride

    def current(self) -> tuple[int, str]:
        """(position, phase) of the current epoch: an epoch set after the last one is waiting."""
        if self.live is not None:
            self.record(self.live)
        if self.position_epoch != self.epoch:
            return 0, "waiting"
        return self.position, self.phase

    def state(self, sampler: str, identity: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        position, phase = self.current()
        return {
            "version": STATE_VERSION,
            "sampler": sampler,
            **identity,
            "seed": self.seed,
            "epoch": self.epoch,
            "epoch_seed": self.epoch_seed,
            "position": position,
            "phase": phase,
            "num_replicas": self.geometry.num_replicas,
            **extra,
        }

    def load(self, checked: Mapping[str, Any]) -> None:
        """Assigns a state that :func:`check_state` accepted (nothing here can fail).

        Running: the next iteration continues that epoch at its global position (none left at
        this world size: it yields nothing). Over or waiting: the epoch set before or after
        loading stands (StatefulDataLoader loads after the loop's set_epoch); epochs never go
        back. The seed chain continues from the state's epoch_seed.
        """
        self.seed, self.epoch_seed = checked["seed"], checked["epoch_seed"]
        phase, saved_epoch = checked["phase"], checked["epoch"]
        self.epoch = saved_epoch if phase == "running" else max(self.epoch, saved_epoch)
        self.position, self.position_epoch, self.phase = checked["position"], saved_epoch, phase
        self.live, self._pending = None, True


# ------------------------------------------------------------------ checking a loaded state


def _int_field(
    state: Mapping[str, Any], name: str, owner: str, *, allow_none: bool = False
) -> int | None:
    value = state[name]
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise ValueError(
            f"{owner}.load_state_dict: state field {name!r} should be a non-negative int, "
            f"got {value!r}"
        )
    if int(value) > _MASK64:
        raise ValueError(
            f"{owner}.load_state_dict: state field {name!r} should be below 2**64, got {value}"
        )
    return int(value)


def check_state(
    state: Any,
    identity: Mapping[str, Any],
    owner: str,
    *,
    legacy: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
    seeded: bool = True,
) -> dict[str, Any]:
    """Validates a state for the sampler whose identity fields are ``identity``.

    Returns the fields as plain Python values; raises TypeError / ValueError naming what is
    missing, malformed or different, so a checkpoint of another dataset or configuration is never
    silently resumed. ``legacy`` converts a version 1 state, when the sampler can read one;
    ``seeded`` False is for samplers without a stream of their own (no seed needed).
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"{owner}.load_state_dict expects a dict, but got {type(state).__name__}")
    version = state.get("version")
    if version == 1 and legacy is not None:
        state = legacy(state)
    elif version != STATE_VERSION:
        raise ValueError(
            f"{owner}.load_state_dict: unknown state version {version!r}; this fastloader reads "
            f"version {STATE_VERSION}" + (" and 1" if legacy is not None else "")
        )
    missing = [name for name in (*_COMMON, *identity) if name not in state]
    if missing:
        raise ValueError(f"{owner}.load_state_dict: the state lacks the field(s) {missing}")
    differing = [
        f"{name} (state {state[name]!r}, sampler {identity[name]!r})"
        for name in identity
        if state[name] != identity[name]
    ]
    if differing:
        raise ValueError(
            f"{owner}.load_state_dict: the state was saved by a sampler with different "
            + ", ".join(differing)
        )
    checked = dict(state)
    for name in ("epoch", "position", "num_replicas"):
        checked[name] = _int_field(state, name, owner)
    for name in ("seed", "epoch_seed"):
        checked[name] = _int_field(state, name, owner, allow_none=True)
    if checked["num_replicas"] < 1:
        raise ValueError(f"{owner}.load_state_dict: state field 'num_replicas' should be >= 1")
    if state["phase"] not in PHASES:
        raise ValueError(
            f"{owner}.load_state_dict: state field 'phase' should be one of {PHASES}, "
            f"got {state['phase']!r}"
        )
    running = state["phase"] == "running"
    if seeded and checked["seed"] is None and running and checked["epoch_seed"] is None:
        raise ValueError(
            f"{owner}.load_state_dict: the state has seed=None and a started epoch but no "
            "'epoch_seed'"
        )
    return checked


def is_shared_format(state: Any) -> bool:
    """Whether ``state`` is in this module's format (a sampler of this package saved it)."""
    return isinstance(state, Mapping) and state.get("version") == STATE_VERSION and "phase" in state


def rewound(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` moved back to the start of its epoch, which stays started: loading it and
    taking the epoch again gives the same epoch (its seed included), not the next one."""
    return {**state, "position": 0, "phase": "running"}


def legacy_phase(position: int, end: int) -> str:
    """A version 1 state's phase: it had no such field, only the position (0 = not begun)."""
    return "waiting" if position == 0 else "running" if position < end else "over"
