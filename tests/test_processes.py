"""fastloader._util.processes.pid_alive: the one liveness check of the ring and the tuner."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from fastloader._util.processes import pid_alive


def test_this_process_is_alive_and_a_reaped_child_is_not():
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process any more
    assert not pid_alive(child.pid)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to see a zombie's state")
def test_an_exited_unreaped_child_still_counts_until_reaped():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        state = ""
        while state != "Z" and time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
            time.sleep(0.01)
        assert state == "Z"  # exited, not waited for
        assert pid_alive(child.pid)  # its parent has not seen it exit yet
    finally:
        child.wait()
    assert not pid_alive(child.pid)
