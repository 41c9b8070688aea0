"""The oldest torch we claim (2.1) lacks torch.uint16/32/64: fastloader still imports and works,
and refuses such fields by name. Simulated by deleting the attributes before the import."""

import subprocess
import sys
import textwrap


def test_torch_without_unsigned_dtypes():
    script = textwrap.dedent(
        """
        import torch
        for name in ("uint16", "uint32", "uint64"):
            delattr(torch, name)
        import numpy as np
        from fastloader import DetectionCollate, FastWeightedSampler

        collate = DetectionCollate()
        image = torch.zeros(3, 4, 4, dtype=torch.uint8)
        batch = collate([{"image": image, "ids": np.arange(3, dtype=np.int32)}])
        assert batch.packed("ids").tolist() == [0, 1, 2]
        try:
            collate([{"image": image, "ids": np.arange(3, dtype=np.uint16)}])
        except TypeError as error:
            assert "'ids'" in str(error) and "uint16" in str(error), error
        else:
            raise AssertionError("a uint16 field was accepted without torch.uint16")
        assert len(list(FastWeightedSampler([1.0, 2.0], 4, seed=0))) == 4
        print("ok")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok"
