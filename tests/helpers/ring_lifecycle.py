"""Runs one shared-ring lifecycle case in its own process so the test can check /dev/shm after
that process is gone: a normal end, an abandoned loop, Ctrl-C (SIGINT to the process group),
and a process that waits (printing "ready") for the test to SIGTERM or SIGKILL it, with or
without a SIGTERM handler of its own installed first ("handled")."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time

from torch.utils.data import DataLoader

from fastloader import DetectionCollate
from tests.helpers.collate import RaggedSamples

NO_SIGNAL = 3  # exit status when an awaited signal never arrived: the test then fails


def main(case: str, context: str) -> None:
    if case == "handled":
        # An application's own handler, installed before the ring: ours must chain to it.
        def on_sigterm(signum: int, frame: object) -> None:
            print("application handler", flush=True)
            sys.exit(7)

        signal.signal(signal.SIGTERM, on_sigterm)
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
            # Nothing may be freed while the signal is pending: Python raises KeyboardInterrupt
            # at its next check, and a check inside a finaliser (__del__ of a freed batch)
            # would print and drop it.
            gc.collect()
            gc.disable()
            # As Ctrl-C does: SIGINT to the whole process group, workers included.
            os.killpg(os.getpgid(0), signal.SIGINT)
            _wait_for_the_signal()
        if case in ("sigterm", "sigkill", "handled") and k == 2:
            print("ready", flush=True)
            _wait_for_the_signal()
    assert collate.ring.files(), "the ring should have files while in use"
    print("done", flush=True)


def _wait_for_the_signal() -> None:
    deadline = time.monotonic() + float(os.environ.get("RING_LIFECYCLE_WAIT", "60"))
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print("the signal never arrived", flush=True)
    os._exit(NO_SIGNAL)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
