"""A process exits cleanly while or after our kernels (and their threads) ran.

Before bindings/released_gil.hpp, a daemon thread still inside a kernel when the main thread
exited aborted the whole process at exit ("terminate called without an active exception", status
134): CPython <= 3.13 ends such a thread with pthread_exit when it asks for the GIL back, and that
forced unwind left pybind11's noexcept gil_scoped_release destructor.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_SETUP = """
import sys, threading, time
import numpy as np
import torch
from fastloader import _C, fast_detection_collate

table = _C.AliasTable(np.random.default_rng(0).random(1000) + 0.1)
out = np.empty(2_000_000, dtype=np.int64)
threads = int(sys.argv[1])
"""


def _run(body: str, threads: int) -> subprocess.CompletedProcess:
    code = textwrap.dedent(_SETUP) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code, str(threads)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.multiprocess
@pytest.mark.parametrize("threads", [1, 3])
def test_exit_while_a_daemon_thread_is_inside_a_kernel(threads):
    # The daemon thread loops over a kernel that runs without the GIL, so when the main thread
    # finishes it is inside one; it then asks for the GIL back during finalization.
    body = """
    inside = threading.Event()

    def draw_forever():
        while True:
            inside.set()
            table.draw(0, 0, 0, out, len(out), threads)

    threading.Thread(target=draw_forever, daemon=True).start()
    assert inside.wait(60)
    time.sleep(0.02)
    print("main thread done", flush=True)
    """
    for attempt in range(2):  # the unfixed build aborted in 5 of 6 runs
        done = _run(body, threads)
        assert "terminate called" not in done.stderr, (attempt, done.stderr[-2000:])
        assert done.returncode == 0, (attempt, done.returncode, done.stderr[-2000:])
        assert done.stdout == "main thread done\n"


@pytest.mark.multiprocess
def test_exit_after_kernels_ran_on_threads_and_in_a_forked_child():
    # parallel_for starts and joins its threads in each call: nothing of ours runs at exit,
    # in the parent or in a child forked after the threads ran.
    body = """
    import os
    samples = [(torch.zeros(3, 40 + i, 50, dtype=torch.uint8), torch.zeros(i, 5)) for i in range(8)]
    for _ in range(20):
        table.draw(0, 0, 0, out, len(out), max(threads, 2))
        fast_detection_collate(samples)
    pid = os.fork()
    if pid == 0:
        table.draw(0, 1, 0, out, len(out), max(threads, 2))
        os._exit(0 if int(out.max()) < 1000 else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status), flush=True)
    """
    done = _run(body, 4)
    assert "terminate called" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "child 0\n"


def test_every_binding_releases_the_gil_through_the_exit_safe_guard():
    uses = {}
    for path in sorted((ROOT / "csrc" / "bindings").glob("*.cpp")):
        text = path.read_text()
        assert "gil_scoped_release" not in text, f"{path.name}: use ReleasedGil"
        uses[path.name] = len(re.findall(r"\bReleasedGil release;", text))
    assert sum(uses.values()) >= 18, uses  # every kernel call that ran without the GIL still does
