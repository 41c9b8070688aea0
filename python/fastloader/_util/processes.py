"""Whether a process is still there: one answer for the shared ring (is a slot's owner gone?)
and the tuner (has a stopped worker exited?)."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` names a process: signal 0 reaches it, or is refused because the process
    belongs to another user. A zombie (exited, not yet reaped by its parent) still counts, as it
    always did for the ring: its parent (for a worker, the DataLoader) has yet to see it exit."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
