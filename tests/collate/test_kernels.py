"""The copy kernels' own checks (sizes, strides, writability, element sizes) behind the bindings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fastloader

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: pinned-memory path"
)


def test_pack_arrays_checks_sizes_strides_and_writability():
    from fastloader import _C

    source = np.arange(4, dtype=np.int32)
    out = np.zeros(16, dtype=np.uint8)
    _C.pack_arrays([source], 4, out)
    assert np.array_equal(out.view(np.int32), source)
    with pytest.raises(ValueError, match="holds 8 bytes, 16 needed"):
        _C.pack_arrays([source], 4, np.zeros(8, dtype=np.uint8))
    with pytest.raises(ValueError, match="array 0 has 4-byte elements, expected 8"):
        _C.pack_arrays([source], 8, np.zeros(64, dtype=np.uint8))
    with pytest.raises(ValueError, match="element_size must be positive"):
        _C.pack_arrays([source], 0, out)
    read_only = np.zeros(16, dtype=np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out should be a writable buffer"):
        _C.pack_arrays([source], 4, read_only)
    with pytest.raises(ValueError, match="out should be a writable buffer"):
        _C.pack_arrays([source], 4, bytes(16))
    with pytest.raises(ValueError, match="out should be contiguous"):
        _C.pack_arrays([source], 4, np.zeros(32, dtype=np.uint8)[::2])
    with pytest.raises(ValueError, match="out should be 1-D"):
        _C.pack_arrays([source], 4, np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="array 0 should be a numpy array, but got Tensor"):
        _C.pack_arrays([torch.arange(4, dtype=torch.int32)], 4, out)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        _C.pack_arrays([source], 4, out, 0)
    assert np.array_equal(read_only, np.zeros(16, dtype=np.uint8))


def test_bogus_strides_are_a_value_error():
    from fastloader import _C

    base = np.zeros(1, dtype=np.int32)
    overflowing = np.lib.stride_tricks.as_strided(base, shape=(3,), strides=(2**62,))
    with pytest.raises(ValueError, match="stride overflows int64"):
        _C.pack_arrays([overflowing], 4, np.zeros(12, dtype=np.uint8))
    image = np.lib.stride_tricks.as_strided(
        np.zeros(1, dtype=np.uint8), shape=(1, 2, 3), strides=(0, -(2**63) + 1, 1)
    )
    with pytest.raises(ValueError, match="stride overflows int64"):
        _C.pad_images([image], 1, 2, 3, b"\0", False, np.zeros(6, dtype=np.uint8))


def test_pad_images_checks_its_output_and_element_size():
    from fastloader import _C

    image = np.arange(6, dtype=np.uint16).reshape(1, 2, 3)
    out = np.zeros(2 * 2 * 4, dtype=np.uint8)
    _C.pad_images([image], 1, 2, 4, b"\xff\xff", False, out)
    assert out.view(np.uint16).reshape(2, 4).tolist() == [[0, 1, 2, 65535], [3, 4, 5, 65535]]
    with pytest.raises(ValueError, match="holds 15 bytes, 16 needed"):
        _C.pad_images([image], 1, 2, 4, b"\0\0", False, np.zeros(15, dtype=np.uint8))
    with pytest.raises(ValueError, match="image 0 has 2-byte elements, expected 4"):
        _C.pad_images([image], 1, 2, 4, b"\0\0\0\0", False, np.zeros(64, dtype=np.uint8))
    with pytest.raises(ValueError, match="overflows int64"):
        _C.pad_images([image], 1, 2**40, 2**40, b"\0\0", False, out)
    with pytest.raises(ValueError, match="does not fit the batch slot"):
        _C.pad_images([image], 1, 1, 4, b"\0\0", False, out)


def test_write_index_block_checks_lengths_dtype_and_writability():
    from fastloader import _C

    out = np.zeros(4 * 2 + 1 + 3, dtype=np.int64)
    _C.write_index_block([1, 2], [5, 6, 7, 8], out)
    assert out.tolist() == [1, 2, 0, 1, 3, 5, 6, 7, 8, 0, 1, 1]
    with pytest.raises(ValueError, match=r"holds 11 entries, expected 12 \(4 \* 2 \+ 1 \+ 3\)"):
        _C.write_index_block([1, 2], [5, 6, 7, 8], np.zeros(11, dtype=np.int64))
    with pytest.raises(ValueError, match="image_sizes holds 3 values"):
        _C.write_index_block([1, 2], [5, 6, 7], out)
    with pytest.raises(TypeError, match="out should be a C-contiguous native int64 array"):
        _C.write_index_block([1, 2], [5, 6, 7, 8], np.zeros(12, dtype=np.int32))
    with pytest.raises(TypeError, match="out should be a C-contiguous native int64 array"):
        _C.write_index_block([1, 2], [5, 6, 7, 8], np.zeros(24, dtype=np.int64)[::2])
    frozen = np.zeros(12, dtype=np.int64)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out should be writable"):
        _C.write_index_block([1, 2], [5, 6, 7, 8], frozen)
    with pytest.raises(ValueError, match="negative"):
        _C.write_index_block([1, -1], [5, 6, 7, 8], np.zeros(9, dtype=np.int64))
    with pytest.raises(ValueError, match="overflows int64"):
        _C.write_index_block([2**62, 2**62], [5, 6, 7, 8], np.zeros(9, dtype=np.int64))
    assert out.tolist() == [1, 2, 0, 1, 3, 5, 6, 7, 8, 0, 1, 1]  # failed calls wrote nothing


def test_pooled_buffer_sizes_are_checked():
    from fastloader import _C

    with pytest.raises(ValueError, match="bytes must be non-negative"):
        _C.PooledBuffer(-1)
    with pytest.raises(MemoryError):
        _C.PooledBuffer(2**62)
    block = np.asarray(_C.PooledBuffer(100))
    assert block.shape == (100,) and block.flags.writeable
    try:
        fastloader.set_buffer_pool_limit(2**70)  # more than int64: no limit, not an error
        assert fastloader.buffer_pool_stats()["limit_bytes"] == 2**63 - 1
    finally:
        fastloader.set_buffer_pool_limit(1 << 30)
