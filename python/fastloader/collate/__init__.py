"""The detection collate: `DetectionCollate` and `fast_detection_collate` (`detection_collate`),
the batch type (`batch`), the shared-memory batch ring (`ring`; its files in `_ring_files`, the
handle a worker sends in `_ring_batch`), and the private stages behind one call. Imports `_util`
and `io` (images still to be written into the batch: `io.deferred`), never `sampling`,
`datasets` or `bench`.

One call is two stages. Planners (``detection_collate.PLANNERS``, in order; each
``(batch, options) -> plan | None``, never writing) read and check the samples until one returns a
plan: `_deferred` (images still in their files, or written by a ``DeferredImage``), `_pairs`
(tensor pairs: small same-size ones as a ``StackPlan``, the rest as a ``BatchPlan``), `_general`
(anything else, reading values through `_samples`; every error names the sample and field).
Plan types, thresholds and the size arithmetic live in `_plan`. Then `_write` allocates (a ring
slot or fresh memory) and writes every field.

Following one batch of (image tensor, target tensor) pairs through ``DetectionCollate.__call__``
in a DataLoader worker with ``shared_ring=True``: 10 stops in 7 modules, 3 climbs back up (it was
16 stops in 8 modules, 6 climbs):

1. ``detection_collate``: ``__call__`` takes the options and asks the planners in order;
2. ``_deferred``: ``plan_deferred``: not a ``DeferredSamples``, None;
3. ``_pairs``: ``plan_same_size_pairs``: a ring batch, None; ``plan_pairs`` checks each pair;
4. ``_plan``: sizes (``padded_size``, ``nbytes_of``, ``fill_bytes``, ``packed_targets``) and
   ``pairs_plan`` build the ``BatchPlan``;
5. ``_pairs`` returns it;
6. ``detection_collate`` hands it to the writer;
7. ``_write``: ``write_into_ring`` lays the fields out in one block;
8. ``ring``: ``acquire`` claims a slot of that size;
9. ``_write``: ``write_field`` copies each field (kernels in ``_C``), ``write_index`` the index;
10. ``batch``: the ``DetectionBatch``, which pickles as its slot's handle (``_ring_batch``).

Without a ring a small same-size batch stops at 1-6, then ``_write.write_stacked`` and ``batch``.
A new kind of batch (e.g. images augmented in the collate) is one planner module listed in
``PLANNERS``, or, when its images can write themselves, a ``DeferredImage`` and no new planner.
"""

from .batch import DetectionBatch
from .detection_collate import (
    DetectionCollate,
    buffer_pool_stats,
    clear_buffer_pool,
    fast_detection_collate,
    set_buffer_pool_limit,
)
from .ring import SharedRing

__all__ = [
    "DetectionBatch",
    "DetectionCollate",
    "SharedRing",
    "buffer_pool_stats",
    "clear_buffer_pool",
    "fast_detection_collate",
    "set_buffer_pool_limit",
]
