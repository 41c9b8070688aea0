"""`make gpu-check`: every CUDA test (pytest marker `gpu`) and the GPU rows of the benchmarks
(collate + host-to-device copy, DataLoader with pin_memory=True into .cuda()), in one table.

Without a CUDA device it says that nothing was measured and exits 0. `--cpu-dry-run` runs the
same code on the CPU (no pinning) to check the script itself: its figures are not GPU figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from fastloader import DetectionCollate
from fastloader.bench.harness import duration, interleaved, ratio, run_rounds
from fastloader.bench.stock import detection_collate

ROOT = Path(__file__).resolve().parent.parent
BATCH, SHAPE = 32, (3, 640, 640)
Row = tuple[str, str, str]  # (what, result, detail)


def run_gpu_tests(timeout_s: float) -> list[Row]:
    """pytest -m gpu in a child process; one row per test from its JUnit report."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "gpu.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"]
        # Only the files that hold gpu tests: collecting the others needs every test extra
        # (torchdata, simplejpeg, ...), which a GPU host with its own torch may lack.
        files = [str(f) for f in sorted((ROOT / "tests").rglob("test_*.py")) if _has_gpu_tests(f)]
        if not files:  # a check that cannot test must fail, not pass
            return [("pytest -m gpu", "ERROR", "no test file holds a test marked gpu")]
        command += [f"--junitxml={report}", *files]
        done = subprocess.run(command, cwd=ROOT, timeout=timeout_s, capture_output=True, text=True)
        if not report.exists():
            return [("pytest -m gpu", "ERROR", done.stderr.strip()[-300:])]
        rows = []
        for case in ET.parse(report).getroot().iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "FAILED", "error": "ERROR"}.get(child.tag, "skipped")
                    detail = (child.get("message") or "").splitlines()[:1]
                    outcome += f": {detail[0][:80]}" if detail else ""
            name = f"test {case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            rows.append((name, outcome, f"{float(case.get('time', 0)):.2f} s"))
        if done.returncode not in (0, 5) and not rows:
            rows.append(("pytest -m gpu", f"exit {done.returncode}", done.stdout.strip()[-300:]))
        return rows or [("pytest -m gpu", "no test collected", "")]


def _has_gpu_tests(path: Path) -> bool:
    return "pytest.mark.gpu" in path.read_text()


def _collate_cases(samples: list, device: str) -> dict[str, Callable[[], object]]:
    pin = device == "cuda"
    fast_collate = DetectionCollate()  # pinned in the main process when CUDA is present

    def stock() -> object:
        images = torch.stack([s[0] for s in samples])
        targets = [s[1] for s in samples]
        if pin:
            images, targets = images.pin_memory(), [t.pin_memory() for t in targets]
        out = images.to(device, non_blocking=True), [t.to(device) for t in targets]
        _sync(device)
        return out

    def fast() -> object:
        out = fast_collate(samples).to(device, non_blocking=True)
        _sync(device)
        return out

    return {"stock": stock, "fast": fast}


def collate_to_device_rows(device: str, repeats: int) -> list[Row]:
    """bench/bench_collate.py's CUDA rows: collate a batch, then copy it to the device."""
    rows: list[Row] = []
    for dtype in (torch.uint8, torch.float32):
        g = torch.Generator().manual_seed(3)
        samples = [
            (torch.randint(0, 256, SHAPE, generator=g).to(dtype), torch.rand(7, 5, generator=g))
            for _ in range(BATCH)
        ]
        # Warm-up first (CUDA context, first pinned allocation, pool blocks); 5 calls a round.
        cases = _collate_cases(samples, device)
        times = interleaved(cases, repeats, min_calls=5, warmup=1)
        what = f"collate + H2D, batch {BATCH} {str(dtype)[6:]} 640x640"
        rows.append((f"{what}: stock stack+pin", duration(times["stock"], "ms"), ""))
        rows.append(
            (
                f"{what}: fast_detection_collate",
                duration(times["fast"], "ms"),
                f"{ratio(times['stock'], times['fast'])} stock",
            )
        )
    return rows


class _Images(Dataset):
    def __init__(self, count: int) -> None:
        g = torch.Generator().manual_seed(5)
        self.images = [
            torch.randint(0, 256, SHAPE, generator=g, dtype=torch.uint8) for _ in range(8)
        ]
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index % 8], torch.rand(index % 5, 5)


def _loader_seconds(collate: Callable, device: str, batches: int) -> float:
    """Seconds per batch of a 2-worker DataLoader (pin_memory on CUDA) feeding .to(device)."""
    loader = DataLoader(
        _Images(BATCH * (batches + 3)),
        batch_size=BATCH,
        num_workers=2,
        collate_fn=collate,
        pin_memory=device == "cuda",
    )
    start = 0.0
    for k, batch in enumerate(loader):
        if k == 3:  # worker start-up and warm-up are not timed
            start = time.perf_counter()
        moved = (
            batch.to(device, non_blocking=True)
            if hasattr(batch, "packed")
            else (batch[0].to(device, non_blocking=True), [t.to(device) for t in batch[1]])
        )
        _sync(device)
        del moved, batch
    return (time.perf_counter() - start) / batches


def dataloader_rows(device: str, repeats: int, batches: int) -> list[Row]:
    """The end-to-end GPU row of `make bench`: stock vs fast vs ring collate, pinned, to device."""
    ring = DetectionCollate(shared_ring=True)
    cases = {"stock": detection_collate, "fast": DetectionCollate(), "ring": ring}
    times = run_rounds(
        {
            name: partial(_loader_seconds, collate, device, batches)
            for name, collate in cases.items()
        },
        repeats,
    )
    ring.close_ring()
    what = f"DataLoader 2 workers, pin_memory, to {device}, batch {BATCH} uint8"
    return [
        (
            f"{what}: {name}",
            duration(per_batch, "ms"),
            "" if name == "stock" else f"{ratio(times['stock'], per_batch)} stock",
        )
        for name, per_batch in times.items()
    ]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def print_table(title: str, rows: list[Row]) -> None:
    widths = [max(len(r[i]) for r in rows + [("what", "result", "detail")]) for i in range(3)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(("what", "result", "detail"), widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="check this script on a CPU")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per figure")
    parser.add_argument("--batches", type=int, default=20, help="timed DataLoader batches")
    args = parser.parse_args()
    header = f"torch {torch.__version__}, CUDA runtime {torch.version.cuda}"
    if args.cpu_dry_run:
        device = "cpu"
        rows = collate_to_device_rows(device, args.repeats)
        rows += dataloader_rows(device, args.repeats, args.batches)
        print_table(f"gpu-check CPU DRY RUN ({header}): NOT GPU figures", rows)
        return 0
    if not torch.cuda.is_available():
        print(f"gpu-check: NOTHING MEASURED: {header} sees no CUDA device.")
        print("  No CUDA test ran and no GPU figure was taken; run `make gpu-check` on a GPU host.")
        return 0
    device = "cuda"
    started = time.perf_counter()
    rows = run_gpu_tests(timeout_s=300)
    rows += collate_to_device_rows(device, args.repeats)
    rows += dataloader_rows(device, args.repeats, args.batches)
    name = torch.cuda.get_device_name(0)
    elapsed = time.perf_counter() - started
    print_table(f"gpu-check on {name} ({header}), {elapsed:.0f} s; median (min-max)", rows)
    failed = [r for r in rows if r[1].startswith(("FAILED", "ERROR", "exit"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
