"""Shared-memory ring: a slot allocator over reusable shared-memory files that DataLoader workers
write into and the main process views zero-copy, each slot freed when the last tensor viewing it
is freed. It knows bytes and slots only, nothing of batches (see _ring_batch.py); its files in
/dev/shm (names, reserved memory, removal, the sweep of dead owners' rings) are _ring_files.py's.

Longer than our ~400-line guide: SharedRing's slot protocol (the header states, who may move a
slot between them, under which lock) reads best in one class, and the CUDA registration of a
slot's mapping must live beside the mapping it ends with."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import math
import mmap
import numbers
import os
import secrets
import signal
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
from ._ring_files import (
    CLOSED_COUNTER,
    HEADER_COLUMNS,
    HEADER_ROW_BYTES,
    RING_FILE_PREFIX,
    SHM_DIR,
    OwnerLock,
    close_ring_files,
    create_file,
    reclaim_dead_rings,
    ring_entries,
)

__all__ = [
    "MAX_RING_SLOTS",
    "RING_FILE_PREFIX",
    "RingClosedError",
    "SharedRing",
    "SlotGrant",
    "SlotLease",
    "SlotRef",
    "check_slots",
    "check_timeout",
    "reclaim_dead_rings",
]

_GRANULE = 2 << 20  # slot sizes are multiples of a huge page, with 1/8 headroom to grow rarely
# A DataLoader has about num_workers * prefetch_factor batches in flight plus the ones a loop
# holds; far more slots than that only make the header (64 bytes a slot) and each scan bigger.
MAX_RING_SLOTS = 1024

# Header: int64 [slots + 1, 8] in its own file. One row per slot, then one row of counters.
_STATE, _PID, _GEN, _CAPACITY, _TICKET = range(5)
# Slot states: free | being written or sent by a worker (pid) | viewed by the main process.
_FREE, _WORKER, _MAIN = 0, 1, 2
_WAITS, _FALLBACKS, _GROWS, _BATCHES, _NEXT_TICKET = range(5)
_CLOSED, _COLUMNS, _ROW_BYTES = CLOSED_COUNTER, HEADER_COLUMNS, HEADER_ROW_BYTES


class RingClosedError(RuntimeError):
    """The ring's owner closed it (or was freed): its files are gone."""


def check_slots(value: Any, name: str = "slots") -> int:
    """A slot count in [1, MAX_RING_SLOTS], else ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
    if int(value) > MAX_RING_SLOTS:
        raise ValueError(
            f"{name} should be at most {MAX_RING_SLOTS} (slots are reused; a DataLoader needs "
            f"about num_workers * prefetch_factor plus the batches it holds), but got "
            f"{name}={value}"
        )
    return int(value)


def check_timeout(value: Any, name: str = "timeout") -> float:
    """A finite number of seconds >= 0, else ValueError naming the argument."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or float(value) < 0
    ):
        raise ValueError(
            f"{name} should be a finite non-negative number of seconds, but got {name}={value!r}"
        )
    return float(value)


class _Local:
    """A process's own handle on the ring header: the open file (flock is per open file, so a
    forked child needs its own) and its mapping. Closed when dropped, in its process only."""

    def __init__(self, path: str, slots: int) -> None:
        self.pid, self.fd = os.getpid(), -1
        self.fd = os.open(path, os.O_RDWR)
        try:
            self.map = mmap.mmap(self.fd, (slots + 1) * _ROW_BYTES)
        except BaseException:
            os.close(self.fd)
            raise
        self.header = np.frombuffer(self.map, dtype=np.int64).reshape(-1, _COLUMNS)
        self.thread_lock = threading.RLock()
        self.depth = 0

    def __del__(self) -> None:
        if self.fd >= 0 and self.pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


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

    Files: ``/dev/shm/fastloader-ring-<owner pid>-<token>-header`` (per-slot state and counters,
    locked with ``flock``, which the kernel drops when a process dies), ``...-owner`` (locked by
    the owner for the ring's life) and one file per slot and generation, its memory reserved
    when it is made (a full /dev/shm is a clear error, never a SIGBUS). A process pickles the
    ring as its name. The owner unlinks every file when the ring is closed or freed, at exit and
    on SIGTERM; a ring whose owner was killed outright is removed by the next ring made on the
    machine.

    Args:
        slots: most slots (1 to :data:`MAX_RING_SLOTS`); each is created on first use.
        timeout: seconds (finite, >= 0) a worker waits for a free slot before ``acquire``
            returns None (counted in ``stats()["fallbacks"]``).

    Example:
        >>> from fastloader import SharedRing
        >>> ring = SharedRing(slots=2, timeout=0.5)
        >>> grant = ring.acquire(1000, wait=False)
        >>> grant.memory.nbytes >= 1000, ring.stats()["slots_in_use"]
        (True, 1)
        >>> ring.release(grant.ref)
        >>> ring.close()
        >>> ring.closed, ring.files()
        (True, [])
    """

    def __init__(self, slots: int = 16, timeout: float = 2.0) -> None:
        slots, timeout = check_slots(slots), check_timeout(timeout)
        if fcntl is None:
            raise RuntimeError("shared_ring=True needs a POSIX system (fcntl.flock, mmap files)")
        self.slots = slots
        self.timeout = timeout
        self.owner_pid = os.getpid()
        self.name = f"{RING_FILE_PREFIX}{self.owner_pid}-{secrets.token_hex(6)}"
        self._state: _Local | None = None
        self._finalizer: weakref.finalize[..., SharedRing] | None = None
        reclaim_dead_rings()
        # The owner lock first: a ring is never seen without it while it is being made.
        lock = OwnerLock(self._path("owner"))
        try:
            create_file(self._path("header"), (slots + 1) * _ROW_BYTES, self.name)
        except BaseException:
            close_ring_files(self.name, self.owner_pid, lock)
            raise
        self._finalizer = weakref.finalize(self, close_ring_files, self.name, self.owner_pid, lock)
        _OWNED[self.name] = self
        _install_sigterm_handler()

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
        ring._state = None
        ring._finalizer = None
        return ring

    def _path(self, suffix: str) -> str:
        return os.path.join(SHM_DIR, f"{self.name}-{suffix}")

    def _slot_path(self, slot: int, generation: int) -> str:
        return self._path(f"s{slot}-g{generation}")

    # ---- per-process state ------------------------------------------------------------------
    def _local(self) -> _Local:
        """This process's handle on the header (opened again after a fork: flock locks and
        thread locks must not be shared with the parent)."""
        state = self._state
        if state is not None and state.pid == os.getpid():
            return state
        try:
            state = _Local(self._path("header"), self.slots)
        except FileNotFoundError:
            raise RingClosedError(
                f"the shared ring {self.name} was closed (its DetectionCollate was freed or "
                f"close_ring() was called); make a new DetectionCollate(shared_ring=True)"
            ) from None
        # slot -> (generation, memory, its mapping): an old generation ends with its last view
        self._maps: dict[int, tuple[int, np.ndarray, _SlotMapping]] = {}
        self._pin_refused = 0  # slots CUDA would not page-lock here (they stay pageable)
        self._pin = (
            os.getpid() == self.owner_pid
            and get_worker_info() is None
            and torch.cuda.is_available()
        )
        self._state = state
        return state

    @contextlib.contextmanager
    def _locked(self) -> Iterator[np.ndarray]:
        state = self._local()
        with state.thread_lock:  # flock is per open file: threads of one process need their own
            state.depth += 1
            if state.depth == 1:
                fcntl.flock(state.fd, fcntl.LOCK_EX)
            try:
                yield state.header
            finally:
                state.depth -= 1
                if state.depth == 0:
                    fcntl.flock(state.fd, fcntl.LOCK_UN)

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
        fallback) when none came free within the timeout (at once when wait is False).

        Raises RuntimeError when the ring was closed, or when /dev/shm cannot hold a new slot
        (naming the size found, the size needed and how to give a container more).
        """
        deadline = time.monotonic() + (self.timeout if wait else 0.0)
        delay, waited = 0.0005, False
        while True:
            with self._locked() as header:
                if header[self.slots, _CLOSED]:
                    raise RingClosedError(f"the shared ring {self.name} was closed")
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

    def _choose(self, rows: np.ndarray, nbytes: int) -> int:
        """The free slot to use (-1: none): the smallest that fits (big slots stay for big
        batches), else an unused one, else the largest (to grow). Vectorised: one pass in numpy
        whatever the slot count."""
        free = np.flatnonzero(rows[:, _STATE] == _FREE)
        if free.size == 0:
            return -1
        capacity = rows[free, _CAPACITY]
        fits = capacity >= nbytes
        if fits.any():
            return int(free[fits][np.argmin(capacity[fits])])
        unused = capacity == 0
        if unused.any():
            return int(free[unused][0])
        return int(free[np.argmax(capacity)])

    def _take(self, header: np.ndarray, nbytes: int) -> SlotGrant | None:
        rows = header[: self.slots]
        slot = self._choose(rows, nbytes)
        if slot < 0 or rows[slot, _CAPACITY] < nbytes:
            if self._reclaim(header):  # a dead writer's slot may be the one that fits
                slot = self._choose(rows, nbytes)
        if slot < 0:
            return None
        ticket = int(header[self.slots, _NEXT_TICKET]) + 1
        generation, capacity = int(header[slot, _GEN]), int(header[slot, _CAPACITY])
        if capacity < nbytes:
            new_capacity = -(-(nbytes + nbytes // 8) // _GRANULE) * _GRANULE
            new_path = self._slot_path(slot, generation + 1)
            try:  # a full /dev/shm raises RuntimeError: one clear error, not a wait and a SIGBUS
                create_file(new_path, new_capacity, self.name)
            except OSError:
                return None
            if capacity:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._slot_path(slot, generation))
            generation, capacity = generation + 1, new_capacity
            header[slot, _GEN], header[slot, _CAPACITY] = generation, capacity
            header[self.slots, _GROWS] += 1
        header[self.slots, _NEXT_TICKET] = ticket
        header[slot, _STATE], header[slot, _PID] = _WORKER, os.getpid()
        header[slot, _TICKET] = ticket
        header[self.slots, _BATCHES] += 1
        ref = SlotRef(self, slot, ticket, generation, capacity)
        return SlotGrant(ref, self._map(slot, generation, capacity))

    def _reclaim(self, header: np.ndarray) -> bool:
        """Frees the slots of dead writers (a killed worker, or batches of an abandoned iterator
        whose workers have exited and whose handles were never received); whether any was."""
        rows = header[: self.slots]
        writing = np.flatnonzero(rows[:, _STATE] == _WORKER)
        me, freed = os.getpid(), False
        for pid in {int(p) for p in rows[writing, _PID]}:
            if pid != me and not _pid_alive(pid):
                dead = writing[rows[writing, _PID] == pid]
                rows[dead, _STATE], rows[dead, _PID] = _FREE, 0
                freed = True
        return freed

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
        prefix = self.name + "-"
        return sorted(os.path.join(SHM_DIR, n) for n in ring_entries() if n.startswith(prefix))

    @property
    def closed(self) -> bool:
        return not os.path.exists(self._path("header"))

    def close(self, _wait_for_lock: bool = True) -> None:
        """Unlinks the ring's files and closes its handles (owner process only). Batches still
        held stay valid: their memory lives until their last view is freed."""
        if os.getpid() != self.owner_pid or self._finalizer is None:
            return
        state = self._state
        if state is not None and state.pid == os.getpid():
            self._maps.clear()  # each mapping (and its registration) ends with its last view
        self._state = None  # closes the header's file and mapping here
        detached, self._finalizer = self._finalizer.detach(), None
        if detached is not None:
            _, close_files, args, _ = detached
            close_files(*args, wait_for_lock=_wait_for_lock)
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
def _close_all(wait_for_lock: bool = True) -> None:
    for ring in list(_OWNED.values()):
        ring.close(wait_for_lock)


# ---- SIGTERM: what SLURM, Kubernetes and torchrun send; Python's default ends the process
# without atexit, which would leave the ring's files in /dev/shm.
_previous_sigterm: Any = None
_sigterm_installed = False


def _install_sigterm_handler() -> None:
    """Chains a SIGTERM handler that removes this process's rings before the default action.
    Left alone: a SIGTERM that is ignored, or handled outside Python (we cannot chain to it);
    threads other than the main one cannot install handlers."""
    global _previous_sigterm, _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (AttributeError, ValueError):  # pragma: no cover  # no SIGTERM here
        return
    if previous is signal.SIG_IGN or previous is None:
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    _previous_sigterm, _sigterm_installed = previous, True


def _restore_sigterm_in_child() -> None:
    """A forked child owns none of its parent's rings: it gets the parent's SIGTERM disposition
    back (a child that makes a ring installs the handler again).

    NOTE [SIGTERM in forked children]: while a Python-level handler is installed, a child
    blocked on a multiprocessing lock can miss SIGTERM: CPython runs handlers only when the wait
    returns EINTR, and a signal landing between its non-blocking try and its wait is lost. The
    main benchmark hung once that way in ``multiprocessing.Pool.terminate()`` (its worker alive
    in ``SemLock.__enter__``, SIGTERM caught, nothing pending). With the default disposition
    the kernel ends the child whatever it is doing."""
    global _previous_sigterm, _sigterm_installed
    if not _sigterm_installed:
        return
    try:
        signal.signal(signal.SIGTERM, _previous_sigterm)
    except (TypeError, ValueError, OSError):  # pragma: no cover - not the main thread, odd handler
        return
    _previous_sigterm, _sigterm_installed = None, False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restore_sigterm_in_child)


def _on_sigterm(signum: int, frame: Any) -> None:
    previous = _previous_sigterm
    if callable(previous):
        # A handler of the application's decides whether the process ends; when it does (an
        # exception, sys.exit), atexit removes the rings.
        previous(signum, frame)
        return
    # The default: terminate. This thread may hold a ring's lock (the signal interrupts any
    # bytecode): remove the files without waiting for it, then die of SIGTERM as before.
    with contextlib.suppress(Exception):
        _close_all(wait_for_lock=False)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
