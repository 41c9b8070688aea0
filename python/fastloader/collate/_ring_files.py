"""The shared ring's files in /dev/shm: their names, making them with their memory reserved (a
full tmpfs is an error, never a SIGBUS), removing them, the owner's lock that outlives nothing
but its owner, and the sweep that removes the rings of owners killed before they could clean up.
Knows files, not slots (ring.py)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
import time
import weakref

try:
    import fcntl
except ImportError:  # Windows: no flock; shared_ring=True raises, everything else works
    fcntl = None  # type: ignore[assignment]

from .._util.processes import pid_alive

__all__ = [
    "CLOSED_COUNTER",
    "HEADER_COLUMNS",
    "HEADER_ROW_BYTES",
    "RING_FILE_PREFIX",
    "SHM_DIR",
    "OwnerLock",
    "close_ring_files",
    "create_file",
    "reclaim_dead_rings",
    "remove_ring_files",
    "ring_entries",
]

RING_FILE_PREFIX = "fastloader-ring-"
# Every file a ring makes: <prefix><owner pid>-<12 hex>-<part>. Only names matching this are
# ever removed, whether by their owner or by the sweep of rings whose owner died.
_FILE_NAME = re.compile(
    re.escape(RING_FILE_PREFIX) + r"(?P<pid>[0-9]+)-[0-9a-f]{12}-(?:owner|header|s[0-9]+-g[0-9]+)"
)
SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
# The header: int64 [slots + 1, HEADER_COLUMNS], one row per slot, then one row of counters, of
# which CLOSED_COUNTER marks a ring whose files are being removed (ring.py reads the rest).
HEADER_COLUMNS = 8
HEADER_ROW_BYTES = HEADER_COLUMNS * 8
CLOSED_COUNTER = 5


def _lock_header(fd: int, wait: bool) -> bool:
    """flock(LOCK_EX) on fd; without wait, tries for a moment and gives up (False)."""
    if wait:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    for _ in range(200):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.005)
    return False


def remove_ring_files(name: str, wait_for_lock: bool = True) -> None:
    """Marks the ring closed and unlinks every file of it (header, slots of every generation,
    half-made ones, the owner lock), under the header lock so that no process creates a slot file
    afterwards. Only files named as a ring's files are touched.

    wait_for_lock=False is for a signal handler, which may have interrupted this very thread
    while it held the lock through another open file (waiting would never end).
    """
    header_path = os.path.join(SHM_DIR, f"{name}-header")
    try:
        fd = os.open(header_path, os.O_RDWR)
    except FileNotFoundError:
        fd = -1
    try:
        if fd >= 0 and _lock_header(fd, wait_for_lock):
            rows = os.fstat(fd).st_size // HEADER_ROW_BYTES
            if rows >= 1:  # the last row holds the counters, the closed mark among them
                closed = (1).to_bytes(8, sys.byteorder, signed=True)
                os.pwrite(fd, closed, ((rows - 1) * HEADER_COLUMNS + CLOSED_COUNTER) * 8)
        prefix = name + "-"
        for entry in ring_entries():
            if entry.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(SHM_DIR, entry))
    finally:
        if fd >= 0:
            os.close(fd)  # drops the lock


def ring_entries() -> list[str]:
    """Names in the shared-memory folder that are ring files."""
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return []
    return [n for n in names if _FILE_NAME.fullmatch(n)]


def _owner_gone(name: str) -> bool:
    """Whether the ring's owner lock is free: its owner (in any pid namespace sharing this
    folder) has exited. A ring without the lock file was made by an older version."""
    try:
        fd = os.open(os.path.join(SHM_DIR, f"{name}-owner"), os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def reclaim_dead_rings() -> list[str]:
    """Removes the files of rings whose owner process is dead (killed before it could clean up,
    e.g. by SIGKILL or the OOM killer); returns their names. A ring counts as dead when its
    owner pid is not running here and its owner lock is free (so a ring of a live process in
    another pid namespace that shares /dev/shm is left alone)."""
    dead: dict[str, int] = {}
    for entry in ring_entries():
        match = _FILE_NAME.fullmatch(entry)
        assert match is not None
        name = entry[: match.end("pid") + 13]  # <prefix><pid>-<12 hex>
        dead.setdefault(name, int(match["pid"]))
    me = os.getpid()
    removed = []
    for name, pid in dead.items():
        try:
            if pid == me or pid_alive(pid) or not _owner_gone(name):
                continue
            remove_ring_files(name, wait_for_lock=False)
        except OSError:  # another user's files (sticky /dev/shm), or gone meanwhile: not ours
            continue
        removed.append(name)
    return removed


def create_file(path: str, nbytes: int, ring: str) -> None:
    """Creates path with nbytes of memory reserved now: on a full tmpfs a sparse file would
    become SIGBUS at the first write into a missing page; reserving makes it an error here."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, nbytes)
        if hasattr(os, "posix_fallocate") and nbytes:
            try:
                os.posix_fallocate(fd, 0, nbytes)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EFBIG, errno.ENOMEM):
                    pass  # a file system without fallocate: sparse, as before
                else:
                    raise _no_space(nbytes, ring) from None
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    os.close(fd)


def _no_space(nbytes: int, ring: str) -> RuntimeError:
    try:
        info = os.statvfs(SHM_DIR)
        found = (
            f"{SHM_DIR} has {_mib(info.f_bavail * info.f_frsize)} free of "
            f"{_mib(info.f_blocks * info.f_frsize)}"
        )
    except OSError:
        found = f"{SHM_DIR} has less free"
    return RuntimeError(
        f"the shared ring {ring} needs {_mib(nbytes)} of shared memory for one more batch slot, "
        f"but {found}. A DataLoader keeps about num_workers * prefetch_factor + 2 batches in "
        f"shared memory at once, so give the process more: in Docker, `docker run "
        f"--shm-size=<N>g ...` or `--ipc=host`; in Kubernetes, an emptyDir with medium: Memory "
        f"mounted on /dev/shm. Smaller batches or fewer workers also fit"
    )


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.1f} MiB"


class OwnerLock:
    """The owner's lock on its ring's -owner file, held for the ring's life: the kernel drops it
    when the owner dies however it dies, which is how a later process tells a dead ring. Forked
    children close their copy (else a DataLoader worker would keep a dead owner's ring alive)."""

    _held: weakref.WeakSet[OwnerLock] = weakref.WeakSet()

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.release()
            raise
        OwnerLock._held.add(self)

    def release(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    @classmethod
    def _after_fork_in_child(cls) -> None:
        for lock in list(cls._held):
            lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=OwnerLock._after_fork_in_child)


def close_ring_files(
    name: str, owner_pid: int, lock: OwnerLock, wait_for_lock: bool = True
) -> None:
    """The owner's finaliser: removes the ring's files, then drops the owner lock."""
    if os.getpid() != owner_pid:  # a forked child inherits the finaliser: only the owner cleans
        return
    try:
        remove_ring_files(name, wait_for_lock)
    finally:
        lock.release()
