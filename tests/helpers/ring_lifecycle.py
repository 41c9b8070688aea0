"""Runs one shared-ring lifecycle case in its own process (normal end, abandoned loop,
KeyboardInterrupt) so the test can check /dev/shm after that process is gone."""

from __future__ import annotations

import os
import signal
import sys
import time

from torch.utils.data import DataLoader

from fastloader import DetectionCollate
from tests.helpers.collate import RaggedSamples


def main(case: str, context: str) -> None:
    collate = DetectionCollate(shared_ring=True)
    print(collate.ring.name, flush=True)
    loader = DataLoader(
        RaggedSamples(24),
        batch_size=2,
        num_workers=2,
        collate_fn=collate,
        multiprocessing_context=context,
    )
    held = []
    for k, batch in enumerate(loader):
        held.append(batch)
        if case == "abandon" and k == 2:
            break
        if case == "interrupt" and k == 2:
            # As Ctrl-C does: SIGINT to the whole process group, workers included.
            os.killpg(os.getpgid(0), signal.SIGINT)
            # Python raises KeyboardInterrupt at its next check, unless the signal lands while a
            # finalizer runs (__del__ of a freed batch): there it is printed and dropped. On a
            # busy machine that happens; end the way an unlucky Ctrl-C would be retried.
            time.sleep(10)
            raise KeyboardInterrupt("SIGINT was dropped inside a finalizer")
    assert collate.ring.files(), "the ring should have files while in use"
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
