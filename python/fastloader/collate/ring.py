"""Shared-memory ring: a slot allocator over reusable shared-memory files that DataLoader workers
write into and the main process views zero-copy, each slot freed when the last tensor viewing it
is freed. It knows bytes and slots only, nothing of batches (see _ring_batch.py)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import mmap
import os
import secrets
import sys
import tempfile
import threading
import time
import weakref

try:
    import fcntl
except ImportError:  # Windows: no flock; shared_ring=True raises, everything else works
    fcntl = None  # type: ignore[assignment]
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import get_worker_info

from .._util.processes import pid_alive as _pid_alive

__all__ = ["RING_FILE_PREFIX", "SharedRing", "SlotGrant", "SlotLease", "SlotRef"]

RING_FILE_PREFIX = "fastloader-ring-"
_SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_GRANULE = 2 << 20  # slot sizes are multiples of a huge page, with 1/8 headroom to grow rarely

# Header: int64 [slots + 1, 8] in its own file. One row per slot, then one row of counters.
_STATE, _PID, _GEN, _CAPACITY, _TICKET = range(5)
# Slot states: free | being written or sent by a worker (pid) | viewed by the main process.
_FREE, _WORKER, _MAIN = 0, 1, 2
_WAITS, _FALLBACKS, _GROWS, _BATCHES, _NEXT_TICKET, _CLOSED = range(6)
_COLUMNS = 8


def _remove_files(name: str, owner_pid: int, slots: int) -> None:
    """Marks the ring closed and unlinks every file of it (header, slots of every generation,
    half-made ones), under the header lock so that no worker creates a slot file afterwards."""
    if os.getpid() != owner_pid:  # a forked child inherits the finaliser: only the owner cleans
        return
    try:
        fd = os.open(os.path.join(_SHM_DIR, f"{name}-header"), os.O_RDWR)
    except FileNotFoundError:
        fd = -1
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX)
            closed = (1).to_bytes(8, sys.byteorder, signed=True)
            os.pwrite(fd, closed, (slots * _COLUMNS + _CLOSED) * 8)
        for path in glob.glob(os.path.join(_SHM_DIR, glob.escape(name) + "*")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    finally:
        if fd >= 0:
            os.close(fd)  # drops the lock


class SlotRef(NamedTuple):
    """Where one claimed slot is: what a worker sends for it (picklable: the ring as its name)."""

    ring: SharedRing
    slot: int
    ticket: int  # tells this use of the slot from later ones
    generation: int  # which file of the slot (a slot grows into a new file)
    capacity: int


class SlotGrant(NamedTuple):
    """A slot just acquired by this process, and its memory mapped here."""

    ref: SlotRef
    memory: np.ndarray  # uint8 over the whole slot


class SlotLease:
    """Owns one claimed slot in the main process: when the last view dies, the slot is freed
    (after any host-to-device copy reading it has completed)."""

    def __init__(self, ring: SharedRing, slot: int, ticket: int) -> None:
        self.ring, self.slot, self.ticket = ring, slot, ticket
        self.events: list[Any] = []  # CUDA events recorded after copies that read the slot

    def __del__(self) -> None:
        try:
            for event in self.events:
                event.synchronize()  # never hand the slot to a worker while a DMA still reads it
            self.ring._release(self.slot, self.ticket)
        except Exception:  # noqa: BLE001, S110 - shutdown or a closed ring: files go with the owner
            pass


def _clear_cuda_error() -> None:
    """Resets CUDA's per-thread last error after a refused registration: torch checks it after
    kernel launches, so a refusal left there would surface as an unrelated error in user code."""
    global _CUDART
    if _CUDART is None:
        _CUDART = False
        with contextlib.suppress(OSError):
            with open("/proc/self/maps") as maps:
                paths = {line.split()[-1] for line in maps if "libcudart" in line}
            for path in sorted(paths):
                _CUDART = ctypes.CDLL(path)  # already loaded by torch: dlopen hands it back
                break
    if _CUDART:
        _CUDART.cudaGetLastError()


_CUDART: Any = None


def _register(memory: np.ndarray) -> bool:
    """Page-locks a slot so batches arrive pinned and H2D copies are single async DMAs; False
    where CUDA refuses (a lock limit, too much registered): the slot then stays pageable."""
    error = torch.cuda.cudart().cudaHostRegister(memory.ctypes.data, memory.nbytes, 0)
    if int(error) != 0:
        _clear_cuda_error()
        return False
    return True


class _SlotMapping:
    """One slot file mapped in this process, with its CUDA registration when pinned.

    NOTE [a registration must not outlive its mapping]: CUDA keeps registrations by virtual
    address. Pages unmapped while registered leave the range "pinned" in CUDA's books, and the
    next mapping placed there (a worker's shared-memory batch, another ring's slot) reads as
    pinned to torch: its non-blocking copies failed with "CUDA error: invalid argument" (issue
    21: any loader run after a shared-ring loader's collate had been freed). So the registration
    ends here, in the one object whose death unmaps the pages: every array over the slot has this
    object as its numpy base, so it dies after the last view of the slot, whoever held it.
    """

    def __init__(self, fd: int, capacity: int, pin: bool) -> None:
        self._mmap = mmap.mmap(fd, capacity)
        self._array: np.ndarray | None = np.frombuffer(self._mmap, dtype=np.uint8)
        self.__array_interface__ = self._array.__array_interface__
        self.pinned = pin and _register(self._array)

    def __del__(self) -> None:
        if self.pinned and self._array is not None:
            with contextlib.suppress(Exception):  # CUDA already torn down at exit
                torch.cuda.synchronize()  # no copy may still read pages being unregistered
                torch.cuda.cudart().cudaHostUnregister(self._array.ctypes.data)
        self._array = None
        with contextlib.suppress(BufferError, ValueError):
            self._mmap.close()


class _SlotView:
    """The numpy base of a slot's tensors: keeps the lease (and so the slot) alive."""

    def __init__(self, lease: SlotLease, memory: np.ndarray) -> None:
        self.lease = lease
        self.memory = memory
        self.__array_interface__ = memory.__array_interface__


class SharedRing:
    """A pool of reusable shared-memory slots, one batch per slot, shared by the main process that
    created it and its DataLoader workers (fork, spawn or forkserver).

    Files: ``/dev/shm/fastloader-ring-<pid>-<token>-header`` (per-slot state and counters, locked
    with ``flock``, which the kernel drops when a process dies) and one file per slot and
    generation. A process pickles the ring as its name; the owner's finaliser (and atexit)
    unlinks every file.
    """

    def __init__(self, slots: int = 16, timeout: float = 2.0) -> None:
        if fcntl is None:
            raise RuntimeError("shared_ring=True needs a POSIX system (fcntl.flock, mmap files)")
        self.slots = slots
        self.timeout = timeout
        self.owner_pid = os.getpid()
        self.name = f"{RING_FILE_PREFIX}{self.owner_pid}-{secrets.token_hex(6)}"
        self._pid: int | None = None
        path = self._path("header")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, (slots + 1) * _COLUMNS * 8)
        finally:
            os.close(fd)
        self._finalizer: weakref.finalize[..., SharedRing] | None = weakref.finalize(
            self, _remove_files, self.name, self.owner_pid, self.slots
        )
        _OWNED[self.name] = self

    # ---- pickling: the ring travels as its name ---------------------------------------------
    def __reduce__(self) -> Any:
        return (_ring_by_name, (self.name, self.slots, self.timeout, self.owner_pid))

    def __deepcopy__(self, memo: dict) -> SharedRing:
        """In the owner, a new ring of the same size: a copy that shared these files would close
        them for the original (pickling, by contrast, is how workers reach this very ring).
        Elsewhere this attached view itself: it cannot close the files, and a ring made in a
        worker would outlive it (workers exit without running finalisers)."""
        if os.getpid() != self.owner_pid:
            return self
        return SharedRing(self.slots, self.timeout)

    @classmethod
    def _attach(cls, name: str, slots: int, timeout: float, owner_pid: int) -> SharedRing:
        ring = cls.__new__(cls)
        ring.name, ring.slots, ring.timeout, ring.owner_pid = name, slots, timeout, owner_pid
        ring._pid = None
        ring._finalizer = None
        return ring

    def _path(self, suffix: str) -> str:
        return os.path.join(_SHM_DIR, f"{self.name}-{suffix}")

    def _slot_path(self, slot: int, generation: int) -> str:
        return self._path(f"s{slot}-g{generation}")

    # ---- per-process state ------------------------------------------------------------------
    def _local(self) -> None:
        """Opens the header in this process (again after a fork: flock locks and thread locks must
        not be shared with the parent)."""
        if self._pid == os.getpid():
            return
        try:
            fd = os.open(self._path("header"), os.O_RDWR)
        except FileNotFoundError:
            raise RuntimeError(
                f"the shared ring {self.name} was closed (its DetectionCollate was freed or "
                f"close_ring() was called); make a new DetectionCollate(shared_ring=True)"
            ) from None
        self._fd = fd
        self._header_map = mmap.mmap(fd, (self.slots + 1) * _COLUMNS * 8)
        self._header = np.frombuffer(self._header_map, dtype=np.int64).reshape(-1, _COLUMNS)
        self._thread_lock = threading.RLock()
        self._depth = 0
        # slot -> (generation, memory, its mapping): an old generation ends with its last view
        self._maps: dict[int, tuple[int, np.ndarray, _SlotMapping]] = {}
        self._pin_refused = 0  # slots CUDA would not page-lock here (they stay pageable)
        self._pin = (
            os.getpid() == self.owner_pid
            and get_worker_info() is None
            and torch.cuda.is_available()
        )
        self._pid = os.getpid()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[np.ndarray]:
        self._local()
        with self._thread_lock:  # flock is per open file: threads of one process need their own
            self._depth += 1
            if self._depth == 1:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield self._header
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _map(self, slot: int, generation: int, capacity: int) -> np.ndarray:
        cached = self._maps.get(slot)
        if cached is not None and cached[0] == generation:
            return cached[1]
        fd = os.open(self._slot_path(slot, generation), os.O_RDWR)
        try:
            mapping = _SlotMapping(fd, capacity, self._pin)
        finally:
            os.close(fd)
        self._pin_refused += self._pin and not mapping.pinned
        memory = np.asarray(mapping)
        self._maps[slot] = (generation, memory, mapping)
        return memory

    # ---- slots --------------------------------------------------------------------------------
    def acquire(self, nbytes: int, wait: bool) -> SlotGrant | None:
        """A free slot of at least nbytes, marked as written by this process; None (counted as a
        fallback) when none came free within the timeout (at once when wait is False)."""
        deadline = time.monotonic() + (self.timeout if wait else 0.0)
        delay, waited = 0.0005, False
        while True:
            with self._locked() as header:
                if header[self.slots, _CLOSED]:
                    raise RuntimeError(f"the shared ring {self.name} was closed")
                grant = self._take(header, nbytes)
                if grant is None and time.monotonic() >= deadline:
                    header[self.slots, _FALLBACKS] += 1
                    return None
                if grant is None and not waited:
                    header[self.slots, _WAITS] += 1
                    waited = True
            if grant is not None:
                return grant
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _take(self, header: np.ndarray, nbytes: int) -> SlotGrant | None:
        me = os.getpid()
        self._reclaim(header)
        free = [s for s in range(self.slots) if header[s, _STATE] == _FREE]
        if not free:
            return None
        fitting = [s for s in free if header[s, _CAPACITY] >= nbytes]
        unused = [s for s in free if header[s, _CAPACITY] == 0]
        if fitting:  # the smallest slot that fits: big slots stay for big batches
            slot = min(fitting, key=lambda s: (header[s, _CAPACITY], s))
        elif unused:
            slot = unused[0]
        else:  # grow the largest free one
            slot = max(free, key=lambda s: header[s, _CAPACITY])
        ticket = int(header[self.slots, _NEXT_TICKET]) + 1
        header[self.slots, _NEXT_TICKET] = ticket
        generation, capacity = int(header[slot, _GEN]), int(header[slot, _CAPACITY])
        if capacity < nbytes:
            new_capacity = -(-(nbytes + nbytes // 8) // _GRANULE) * _GRANULE
            new_path = self._slot_path(slot, generation + 1)
            try:
                fd = os.open(new_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.ftruncate(fd, new_capacity)
                finally:
                    os.close(fd)
            except OSError:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(new_path)
                return None
            if capacity:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._slot_path(slot, generation))
            generation, capacity = generation + 1, new_capacity
            header[slot, _GEN], header[slot, _CAPACITY] = generation, capacity
            header[self.slots, _GROWS] += 1
        header[slot, _STATE], header[slot, _PID], header[slot, _TICKET] = _WORKER, me, ticket
        header[self.slots, _BATCHES] += 1
        ref = SlotRef(self, slot, ticket, generation, capacity)
        return SlotGrant(ref, self._map(slot, generation, capacity))

    def _reclaim(self, header: np.ndarray) -> None:
        """Frees the slots of dead writers (a killed worker, or batches of an abandoned iterator
        whose workers have exited and whose handles were never received)."""
        me = os.getpid()
        for slot in range(self.slots):
            if header[slot, _STATE] == _WORKER:
                pid = int(header[slot, _PID])
                if pid != me and not _pid_alive(pid):
                    header[slot, _STATE], header[slot, _PID] = _FREE, 0

    def _release(self, slot: int, ticket: int) -> None:
        with self._locked() as header:
            if header[slot, _TICKET] == ticket and header[slot, _STATE] != _FREE:
                header[slot, _STATE], header[slot, _PID] = _FREE, 0

    def _claim(self, ref: SlotRef) -> np.ndarray:
        """Marks the slot as the main process's and maps it here (under the lock: the
        pin-memory thread and the main thread may both touch the mappings)."""
        slot = ref.slot
        with self._locked() as header:
            if header[slot, _TICKET] != ref.ticket or header[slot, _STATE] != _WORKER:
                raise RuntimeError(
                    f"shared ring slot {slot} was reclaimed before its batch was received (its "
                    f"worker died); the batch is lost"
                )
            memory = self._map(slot, ref.generation, ref.capacity)
            header[slot, _STATE], header[slot, _PID] = _MAIN, os.getpid()
            return memory

    def release(self, ref: SlotRef) -> None:
        """Frees a slot this process acquired and will not hand on (e.g. its write failed)."""
        self._release(ref.slot, ref.ticket)

    def open_slot(self, ref: SlotRef) -> tuple[torch.Tensor, SlotLease]:
        """The slot's memory as a uint8 tensor (main process), claimed for this process, and the
        lease that frees the slot once that tensor and every view of it are gone."""
        memory = self._claim(ref)
        lease = SlotLease(self, ref.slot, ref.ticket)
        return torch.from_numpy(np.asarray(_SlotView(lease, memory))), lease

    # ---- reporting and lifetime ------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Slots (configured, mapped, in use), bytes of slot memory, and counters: batches written
        into slots, waits for a free slot, fallbacks to fresh shared memory, slot growths; and in
        this process, slots page-locked for CUDA and slots CUDA refused to page-lock."""
        with self._locked() as header:
            if not header[self.slots, _CLOSED]:
                self._reclaim(header)
            rows = header[: self.slots]
            counters = header[self.slots]
            return {
                "slots": self.slots,
                "slots_allocated": int((rows[:, _CAPACITY] > 0).sum()),
                "slots_in_use": int((rows[:, _STATE] != _FREE).sum()),
                "bytes": int(rows[:, _CAPACITY].sum()),
                "batches": int(counters[_BATCHES]),
                "waits": int(counters[_WAITS]),
                "fallbacks": int(counters[_FALLBACKS]),
                "grows": int(counters[_GROWS]),
                # This process's slots page-locked for CUDA, and those CUDA refused (pageable).
                "pinned_slots": sum(mapping.pinned for _, _, mapping in self._maps.values()),
                "pin_refused": self._pin_refused,
            }

    def files(self) -> list[str]:
        """The ring's files in /dev/shm now."""
        return sorted(glob.glob(os.path.join(_SHM_DIR, glob.escape(self.name) + "*")))

    @property
    def closed(self) -> bool:
        return not os.path.exists(self._path("header"))

    def close(self) -> None:
        """Unlinks the ring's files (owner process only). Batches still held stay valid: their
        memory lives until their last view is freed."""
        if os.getpid() != self.owner_pid or self._finalizer is None:
            return
        if self._pid == os.getpid():
            self._maps.clear()  # each mapping (and its registration) ends with its last view
        self._finalizer()
        _OWNED.pop(self.name, None)

    def __repr__(self) -> str:
        return f"SharedRing(name={self.name!r}, slots={self.slots}, timeout={self.timeout})"


# The rings this process created, so a handle received by the owner finds its own object (mapped
# slots, CUDA registrations) rather than a second client. Weak: a freed collate frees its ring.
_OWNED: weakref.WeakValueDictionary[str, SharedRing] = weakref.WeakValueDictionary()


def _ring_by_name(name: str, slots: int, timeout: float, owner_pid: int) -> SharedRing:
    ring = _OWNED.get(name) if os.getpid() == owner_pid else None
    return ring if ring is not None else SharedRing._attach(name, slots, timeout, owner_pid)


@atexit.register
def _close_all() -> None:
    for ring in list(_OWNED.values()):
        ring.close()
