"""GPU stress check: the stock, fast-collate and shared-ring loaders at full width.

Each case is one DataLoader (pin_memory=True) in a child process of its own, so a CUDA error in
one case cannot poison the next: many workers, batches of ~40 and ~160 MB in uint8 and float32,
each batch copied the way user code does it (``images.cuda(non_blocking=True)``, then a
synchronize) and compared ON THE GPU against the pattern its sample indices fix; the last few
batches are held across steps (ring slots stay claimed), and one case kills a worker mid-epoch.

    python tools/gpu_stress.py                 # the full matrix (CUDA host)
    python tools/gpu_stress.py --quick         # a smaller matrix
    python tools/gpu_stress.py --cpu-dry-run   # the same code on the CPU: checks the script only
    python tools/gpu_stress.py --sequence      # the three loaders one after another in ONE
                                               # process, as a user trying them would

Prints one row per case and exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from fastloader import DetectionCollate, FastWeightedSampler, fast_detection_collate

SIDE = 640
# (batch size per dtype) for ~40 MB and ~160 MB batches of 3x640x640 images.
BATCH = {
    ("uint8", "small"): 32,
    ("uint8", "large"): 128,
    ("float32", "small"): 8,
    ("float32", "large"): 32,
}
HELD = 3  # batches kept alive across steps (their ring slots stay claimed)
LOADERS = ("stock", "fast", "ring")


def pattern(index: torch.Tensor, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """The image of each sample index: [len(index), 3, SIDE, SIDE], exact in uint8 and float32.
    Rows and columns vary, so a stale or shifted slot cannot pass for the right one."""
    c = torch.arange(3, device=device).view(1, 3, 1, 1)
    y = torch.arange(SIDE, device=device).view(1, 1, SIDE, 1)
    x = torch.arange(SIDE, device=device).view(1, 1, 1, SIDE)
    i = index.to(device).view(-1, 1, 1, 1)
    values = (i * 31 + c * 7 + y * 3 + x) % 251
    return values.to(dtype)


class PatternDataset(Dataset):
    """(image CHW, target [1 + i % 4, 15]) with column 14 holding the sample index."""

    def __init__(self, length: int, dtype: str) -> None:
        self.length, self.dtype = length, getattr(torch, dtype)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = pattern(torch.tensor([i]), self.dtype, "cpu")[0]
        rows = 1 + i % 4
        target = torch.arange(rows * 15, dtype=torch.float32).view(rows, 15) + i
        target[:, 14] = i
        return image, target


def stock_collate(batch: list) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Pytorch_Retinaface's detection_collate, as users copy it."""
    return torch.stack([s[0] for s in batch]), [s[1] for s in batch]


def make_loader(kind: str, dataset: PatternDataset, batch: int, workers: int) -> DataLoader:
    weights = torch.ones(len(dataset), dtype=torch.float64)
    if kind == "stock":
        sampler: Any = WeightedRandomSampler(weights, len(dataset))
        collate: Any = stock_collate
    else:
        sampler = FastWeightedSampler(weights, len(dataset), seed=0)
        collate = DetectionCollate(shared_ring=True) if kind == "ring" else fast_detection_collate
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
    )


def check_batch(batch: Any, dtype: torch.dtype, device: Any) -> tuple[Any, int]:
    """Copies as user code does and compares on the device: (gpu tensors, mismatching samples)."""
    images, targets = batch
    gpu_images = images.to(device, non_blocking=True)
    gpu_targets = [t.to(device, non_blocking=True) for t in targets]
    if device != "cpu":
        torch.cuda.synchronize()
    index = torch.stack([t[0, 14] for t in gpu_targets]).long()
    bad = (gpu_images != pattern(index, dtype, device)).flatten(1).any(1)
    for k, t in enumerate(gpu_targets):
        rows = 1 + int(index[k]) % 4
        want = torch.arange(rows * 15, dtype=torch.float32, device=device).view(rows, 15) + index[k]
        want[:, 14] = index[k]
        if t.shape != want.shape or not torch.equal(t, want):
            bad[k] = True
    return (gpu_images, gpu_targets), int(bad.sum())


def refusing_register(memory: np.ndarray) -> bool:
    """The ring's registration as CUDA refusing it (invalid flags): a real failed call, so the
    error it leaves in CUDA's per-thread state must be cleared by the ring, not met by user code."""
    from fastloader.collate import ring as ring_module

    error = torch.cuda.cudart().cudaHostRegister(memory.ctypes.data, memory.nbytes, 0x7FFFFFF0)
    if int(error) == 0:
        raise AssertionError("cudaHostRegister accepted invalid flags")
    ring_module._clear_cuda_error()
    return False


def run_case(
    kind: str,
    workers: int,
    dtype: str,
    size: str,
    batches: int,
    device: str,
    kill_worker: bool = False,
    refuse_pin: bool = False,
) -> dict[str, Any]:
    batch = BATCH[(dtype, size)]
    dataset = PatternDataset(batch * (batches + 2), dtype)
    loader = make_loader(kind, dataset, batch, workers)
    if refuse_pin:  # registration in the main thread, whose next kernel launch would see it
        from fastloader.collate import ring as ring_module

        ring_module._register = refusing_register  # type: ignore[assignment]
        loader = DataLoader(
            dataset,
            batch_size=batch,
            sampler=loader.sampler,
            drop_last=True,
            collate_fn=loader.collate_fn,
            num_workers=workers,
            pin_memory=False,
        )
    row: dict[str, Any] = {
        "loader": kind,
        "workers": workers,
        "dtype": dtype,
        "size": size,
        "mb": round(batch * 3 * SIDE * SIDE * dataset.dtype.itemsize / 1e6),
        "batches": 0,
        "bad_samples": 0,
        "error": "",
        "pinned": None,
    }
    held: list[Any] = []
    started = time.perf_counter()
    iterator: Any = None
    try:
        iterator = iter(loader)
        for step, cpu_batch in enumerate(iterator):
            if row["pinned"] is None:
                row["pinned"] = bool(cpu_batch[0].is_pinned()) if device != "cpu" else False
            gpu_batch, bad = check_batch(cpu_batch, dataset.dtype, device)
            row["batches"] += 1
            row["bad_samples"] += bad
            held = (held + [(cpu_batch, gpu_batch)])[-HELD:]
            if kill_worker and step == 1 and workers > 0:
                os.kill(iterator._workers[0].pid, signal.SIGKILL)  # type: ignore[attr-defined]
            if row["batches"] >= batches:
                break
    except Exception as error:  # recorded: the row says which loader failed and how
        row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        row["trace"] = "".join(traceback.format_exception(error))[-1500:]
        del iterator  # shut the workers down before anything else can raise
    row["seconds"] = round(time.perf_counter() - started, 2)
    collate = loader.collate_fn
    if isinstance(collate, DetectionCollate) and collate.ring is not None:
        row["ring"] = collate.ring.stats()
    del held
    return row


def child(args: argparse.Namespace) -> None:
    device = "cpu" if args.cpu_dry_run else "cuda"
    for kind in args.loaders:
        try:
            row = run_case(
                kind,
                args.workers[0],
                args.dtypes[0],
                args.sizes[0],
                args.batches,
                device,
                kill_worker=args.kill_worker,
                refuse_pin=args.refuse_pin,
            )
        except Exception as error:  # e.g. a worker's death raised again from torch's SIGCHLD
            row = {
                "loader": kind,
                "workers": args.workers[0],
                "dtype": args.dtypes[0],  # handler
                "size": args.sizes[0],
                "error": f"{type(error).__name__}: {error}"[:200],
            }
        print("ROW " + json.dumps(row), flush=True)


def spawn(
    kind: str,
    workers: int,
    dtype: str,
    size: str,
    args: argparse.Namespace,
    extra: list[str],
    loaders: list[str] | None = None,
) -> list[dict[str, Any]]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--workers",
        str(workers),
        "--dtypes",
        dtype,
        "--sizes",
        size,
        "--batches",
        str(args.batches),
        "--loaders",
        *(loaders or [kind]),
        *extra,
    ]
    if args.cpu_dry_run:
        command.append("--cpu-dry-run")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.case_timeout)
    except subprocess.TimeoutExpired:
        return [
            {
                "loader": kind,
                "workers": workers,
                "dtype": dtype,
                "size": size,
                "error": f"TIMEOUT after {args.case_timeout} s (hang)",
            }
        ]
    rows = [json.loads(line[4:]) for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode != 0 or not rows:
        rows.append(
            {
                "loader": kind,
                "workers": workers,
                "dtype": dtype,
                "size": size,
                "error": f"child exit {done.returncode}: {done.stderr.strip()[-400:]}",
            }
        )
    return rows


def failed(row: dict[str, Any], expect_error: bool = False) -> bool:
    if expect_error:  # a killed worker must surface as the DataLoader's own errors, nothing else:
        # "worker ... killed", or a reset socket when it died handing over a shared-memory fd
        error = row.get("error", "").lower()
        known = "worker" in error or "connection reset" in error
        return not known or row.get("bad_samples", 0) > 0
    return bool(row.get("error")) or row.get("bad_samples", 0) > 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 8, 15, 16])
    parser.add_argument("--dtypes", nargs="+", default=["uint8", "float32"])
    parser.add_argument("--sizes", nargs="+", default=["small", "large"])
    parser.add_argument("--loaders", nargs="+", default=list(LOADERS))
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--case-timeout", type=float, default=120.0)
    parser.add_argument("--quick", action="store_true", help="2 and 16 workers, large batches")
    parser.add_argument(
        "--sequence",
        action="store_true",
        help="also run the three loaders one after another in one process",
    )
    parser.add_argument("--cpu-dry-run", action="store_true")
    parser.add_argument("--kill-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--refuse-pin", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    if not args.cpu_dry_run and not torch.cuda.is_available():
        print("gpu_stress: no CUDA device; nothing measured (--cpu-dry-run checks the script)")
        return 0
    if args.quick:
        args.workers, args.sizes = [2, 16], ["large"]
    if args.cpu_dry_run:  # the CPU check of the script itself: small and quick
        args.workers, args.sizes, args.batches = [0, 2], ["small"], 3
    rows: list[tuple[dict[str, Any], bool]] = []
    for workers in args.workers:
        for dtype in args.dtypes:
            for size in args.sizes:
                for kind in args.loaders:
                    for row in spawn(kind, workers, dtype, size, args, []):
                        rows.append((row, False))
                        report(row, failed(row))
    for kind in args.loaders:  # a worker killed mid-epoch
        workers = max(args.workers)
        for row in spawn(kind, workers, "uint8", "small", args, ["--kill-worker"]):
            row["case"] = "worker killed"
            rows.append((row, True))
            report(row, failed(row, expect_error=workers > 0))
    if not args.cpu_dry_run:  # CUDA refuses to page-lock the ring's slots: a counted fallback
        for row in spawn("ring", max(args.workers), "float32", "large", args, ["--refuse-pin"]):
            row["case"] = "pinning refused"
            ok = row.get("ring", {}).get("pin_refused", 0) > 0 and not failed(row)
            rows.append(
                (row, False)
                if ok
                else ({**row, "error": row.get("error") or "no refusal counted"}, False)
            )
            report(row, not ok)
    if args.sequence:
        for order in (list(LOADERS), list(reversed(LOADERS))):
            workers = max(args.workers)
            for row in spawn("+".join(order), workers, "float32", "large", args, [], order):
                row["case"] = "sequence " + ">".join(order)
                rows.append((row, False))
                report(row, failed(row))
    bad = [r for r, expect in rows if failed(r, expect_error=expect and max(args.workers) > 0)]
    if args.json:
        with open(args.json, "w") as out:
            json.dump([r for r, _ in rows], out, indent=1)
    print(f"gpu_stress: {len(rows) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


def report(row: dict[str, Any], is_failure: bool) -> None:
    case = row.get("case", "")
    what = (
        f"{row['loader']:<16} workers={row['workers']:<3} {row['dtype']:<8} {row['size']:<6}"
        f" {row.get('mb', '?')} MB {case}"
    )
    result = "FAIL" if is_failure else "ok"
    detail = (
        f"batches={row.get('batches')} bad={row.get('bad_samples')} "
        f"pinned={row.get('pinned')} {row.get('seconds', '')} s {row.get('error', '')}"
    )
    if "ring" in row:
        detail += f" ring={row['ring']}"
    print(f"{result:<4} {what} | {detail}", flush=True)
    if is_failure and row.get("trace"):
        print("     " + row["trace"].replace("\n", "\n     "), flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
