"""The planners: the fast paths for tensor pairs give exactly the general planner's batch (or
pass the batch on), and their errors are the general planner's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastloader import DetectionCollate, fast_detection_collate

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: pinned-memory path"
)


def _general_path(batch, collate):
    from fastloader.collate._general import plan_samples
    from fastloader.collate._samples import as_dicts
    from fastloader.collate._write import write_batch

    samples, tuple_samples = as_dicts(batch, collate.image_key)
    return write_batch(plan_samples(samples, tuple_samples, collate._options), "plain")


def _same_batch(a, b):
    assert a.keys() == b.keys()
    for name in a.keys():
        x, y = a.tensors()[name], b.tensors()[name]
        assert x.dtype == y.dtype and x.shape == y.shape and x.stride() == y.stride(), name
        assert torch.equal(x, y), name
    assert torch.equal(a.tensors()["__index__"], b.tensors()["__index__"])
    assert a._layout == b._layout


def _pair_batches():
    g = torch.Generator().manual_seed(5)
    same = [
        (torch.randint(0, 256, (3, 8, 6), generator=g, dtype=torch.uint8), torch.rand(k, 5))
        for k in (0, 2, 3)
    ]
    varied = [(torch.rand(3, h, w, generator=g), torch.rand(1, 4)) for h, w in ((5, 7), (8, 3))]
    strided = [(torch.rand(3, 10, 12)[:, ::2, 1::2], torch.rand(6, 5)[::2]) for _ in range(2)]
    last = [(torch.rand(4, 4, 3).permute(2, 0, 1), torch.rand(2, 5))]
    negated = [(torch.rand(3, 4, 4)._neg_view(), torch.rand(2, 5)._neg_view()) for _ in range(2)]
    bf16 = [(torch.rand(3, 4, 5).to(torch.bfloat16), torch.rand(2, 5)) for _ in range(2)]
    return {
        "same": same,
        "varied": varied,
        "strided": strided,
        "channels_last_input": last,
        "negated": negated,
        "bfloat16": bf16,
    }


@pytest.mark.parametrize("case", sorted(_pair_batches()))
@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"size_divisibility": 4, "pad_value": 7},
        {"channels_last": True},
        {"target_dtype": None},
        {"size_divisibility": 2},
    ],
)
def test_fast_pair_path_matches_the_general_path(case, settings):
    batch = _pair_batches()[case]
    collate = DetectionCollate(memory="plain", **settings)
    _same_batch(collate(batch), _general_path(batch, collate))


def test_fast_pair_path_is_taken_for_plain_pairs_and_refuses_the_rest():
    from fastloader.collate._pairs import plan_pairs

    options = fast_detection_collate._options
    plain = [(torch.rand(3, 4, 4), torch.rand(2, 5)) for _ in range(3)]
    assert plan_pairs(plain, options) is not None
    assert plan_pairs(tuple(plain), options) is not None
    refused = {
        "grad": [(torch.rand(3, 4, 4, requires_grad=True), torch.rand(2, 5))],
        "int target": [(torch.rand(3, 4, 4), torch.ones(2, 5, dtype=torch.int64))],
        "mixed image dtypes": [plain[0], (torch.rand(3, 4, 4).double(), torch.rand(2, 5))],
        "1-D target": [(torch.rand(3, 4, 4), torch.rand(5))],
        "gray image": [(torch.rand(4, 4), torch.rand(2, 5))],
        "numpy image": [(np.zeros((3, 4, 4), np.float32), torch.rand(2, 5))],
        "list target": [(torch.rand(3, 4, 4), [[1.0, 2.0]])],
        "triple": [(torch.rand(3, 4, 4), torch.rand(2, 5), 1)],
        "dict": [{"image": torch.rand(3, 4, 4)}],
        "sparse": [(torch.rand(3, 4, 4).to_sparse(), torch.rand(2, 5))],
        "channels differ": [plain[0], (torch.rand(1, 4, 4), torch.rand(2, 5))],
        "widths differ": [plain[0], (torch.rand(3, 4, 4), torch.rand(2, 4))],
    }
    for name, batch in refused.items():
        assert plan_pairs(batch, options) is None, name


def test_fast_pair_path_errors_are_the_general_paths():
    bad_pad = DetectionCollate(pad_value=300, size_divisibility=8)
    with pytest.raises(ValueError, match="pad_value=300 cannot be"):
        bad_pad([(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.rand(1, 5))])
    with pytest.raises(ValueError, match="expected a 2-D"):
        fast_detection_collate([(torch.zeros(3, 4, 4), torch.rand(5))])
    with pytest.raises(TypeError, match="share a dtype"):
        fast_detection_collate(
            [
                (torch.zeros(3, 4, 4), torch.rand(1, 5)),
                (torch.zeros(3, 4, 4).double(), torch.rand(1, 5)),
            ]
        )


class FlippedImage:
    """A DeferredImage, as an augmenting dataset would hand one over: it writes its source
    mirrored and scaled, straight into the batch row it is given."""

    writes = 0

    def __init__(self, source: torch.Tensor) -> None:
        self.source = source
        self.shape = tuple(source.shape)
        self.dtype = torch.float32

    def write_into(self, out: torch.Tensor) -> None:
        FlippedImage.writes += 1
        torch.mul(self.source.flip(-1), 0.5, out=out)

    def read(self) -> torch.Tensor:
        return self.source.flip(-1) * 0.5


@pytest.mark.parametrize("shared_ring", [False, True])
def test_deferred_images_write_themselves_into_the_batch(shared_ring):
    """The hook for images augmented in the collate (issue 19): a DeferredImage is written once,
    into its place in the batch or ring slot, and the batch equals the one of read samples."""
    from fastloader.io.deferred import DeferredImage, DeferredSamples

    g = torch.Generator().manual_seed(3)
    sources = [torch.rand(3, 5 + k, 7 - k, generator=g) for k in range(4)]
    pairs = [(FlippedImage(s), torch.rand(k, 5, generator=g)) for k, s in enumerate(sources)]
    assert all(isinstance(image, DeferredImage) for image, _ in pairs)
    collate = DetectionCollate(size_divisibility=4, pad_value=-1.0, shared_ring=shared_ring)
    FlippedImage.writes = 0
    batch = collate(DeferredSamples(pairs))
    assert FlippedImage.writes == 4  # each image written once, in place
    assert (batch._lease is not None) == shared_ring
    want = DetectionCollate(size_divisibility=4, pad_value=-1.0)(
        [(image.read(), target) for image, target in pairs]
    )
    assert torch.equal(batch.images, want.images) and batch.images.shape == (4, 3, 8, 8)
    assert torch.equal(batch.packed(), want.packed())
    assert batch.image_sizes.tolist() == want.image_sizes.tolist()
    if shared_ring:
        del batch
        collate.close_ring()
