"""The checkpoint state of fastloader's samplers: one small dict format, built and checked here.

Every resumable sampler (FastWeightedSampler, FastWeightedBatchSampler and their distributed forms
in distributed.py) saves the same dict through ``state_dict()``: a few ints and strings, O(1) to
build and well under 1 KB pickled, never an index list. The stream is counter-based, so these
fields fix every remaining index:

=====================  ====================================================================
``version``            :data:`STATE_VERSION`; a state of another version is refused.
``sampler``            the class that saved it (informational: states move between the
                       single-process and distributed forms).
``num_weights``        ``len(weights)``.
``weights_fingerprint`` SHA-1 of the float64 weights as the sampler copied them at construction.
``num_samples``        indices per epoch of the *global* stream (all ranks together).
``replacement``        with or without replacement.
``seed``               the user's seed, or None.
``epoch``              the epoch ``set_epoch`` selected.
``epoch_seed``         with ``seed=None``: the seed drawn for the current epoch (None before the
                       first epoch starts); the next epoch's is ``next_epoch_seed(epoch_seed)``.
``position``           global positions of the epoch's stream consumed by all ranks together
                       (a rank's own count times ``num_replicas``: ranks step in lockstep under
                       DDP); 0 = the epoch has not started, >= the epoch's size = it is over.
``num_replicas``       the world size when saved (informational: a state loads at any size).
=====================  ====================================================================

Loading checks ``version``, ``num_weights``, ``weights_fingerprint``, ``num_samples`` and
``replacement`` against the sampler and raises ValueError naming each field that differs. Other
samplers (e.g. repeat-factor or class-aware ones) should add their own identity fields and reuse
:func:`make_state` / :func:`check_state`.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

STATE_VERSION = 1

# Fields that say which stream a state belongs to: a mismatch means the state is not this run's.
IDENTITY_FIELDS = ("num_weights", "weights_fingerprint", "num_samples", "replacement")

_FIELDS = (
    "version",
    "sampler",
    "num_weights",
    "weights_fingerprint",
    "num_samples",
    "replacement",
    "seed",
    "epoch",
    "epoch_seed",
    "position",
    "num_replicas",
)
_MASK64 = (1 << 64) - 1


def weights_fingerprint(weights: np.ndarray) -> str:
    """SHA-1 of the float64 weights in little-endian byte order (about 6 ms per 1e6 weights)."""
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


def make_state(**fields: Any) -> dict[str, Any]:
    """The state dict with every field of the format, in a fixed order (version set here)."""
    state = {"version": STATE_VERSION, **fields}
    missing = [name for name in _FIELDS if name not in state]
    extra = [name for name in state if name not in _FIELDS]
    if missing or extra:
        raise AssertionError(f"sampler state fields missing {missing} or unknown {extra}")
    return {name: state[name] for name in _FIELDS}


def _int_field(state: Mapping[str, Any], name: str, *, allow_none: bool = False) -> int | None:
    value = state[name]
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"sampler state field {name!r} should be a non-negative int, got {value!r}"
        )
    return int(value)


def check_state(state: Any, expected: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Validates a state for the sampler described by ``expected`` (its IDENTITY_FIELDS).

    Returns the fields as plain Python values; raises ValueError naming what is missing or
    differs, so a checkpoint of another dataset or configuration is never silently resumed.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"{owner}.load_state_dict expects a dict, but got {type(state).__name__}")
    missing = [name for name in _FIELDS if name not in state]
    if "version" in state and state["version"] != STATE_VERSION:
        raise ValueError(
            f"{owner}.load_state_dict: unknown state version {state['version']!r}; this fastloader "
            f"reads version {STATE_VERSION}"
        )
    if missing:
        raise ValueError(f"{owner}.load_state_dict: the state lacks the field(s) {missing}")
    differing = [
        f"{name} (state {state[name]!r}, sampler {expected[name]!r})"
        for name in IDENTITY_FIELDS
        if state[name] != expected[name]
    ]
    if differing:
        raise ValueError(
            f"{owner}.load_state_dict: the state was saved by a sampler with different "
            + ", ".join(differing)
        )
    checked = dict(state)
    for name in ("epoch", "position", "num_replicas"):
        checked[name] = _int_field(state, name)
    for name in ("seed", "epoch_seed"):
        checked[name] = _int_field(state, name, allow_none=True)
        if checked[name] is not None and checked[name] > _MASK64:
            raise ValueError(
                f"sampler state field {name!r} should be below 2**64, got {checked[name]}"
            )
    if checked["num_replicas"] < 1:
        raise ValueError("sampler state field 'num_replicas' should be at least 1")
    if checked["seed"] is None and checked["position"] > 0 and checked["epoch_seed"] is None:
        raise ValueError("sampler state has seed=None and a position but no 'epoch_seed'")
    return checked
