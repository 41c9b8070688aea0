"""The GPU checks' own code, run on the CPU (their --cpu-dry-run paths): a check that cannot run
on a GPU host must fail here, not there, where device time is scarce."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))
import gpu_stress  # noqa: E402


@pytest.mark.parametrize("loader", gpu_stress.LOADERS)
def test_stress_case_checks_every_batch_on_the_cpu(loader):
    row = gpu_stress.run_case(loader, 0, "uint8", "small", batches=2, device="cpu")
    assert row["error"] == "" and row["batches"] == 2 and row["bad_samples"] == 0


def test_stress_check_catches_a_wrong_batch():
    """The comparison must see a stale or shifted slot: flip one pixel of one sample."""
    data = gpu_stress.PatternDataset(4, "float32")
    images, targets = gpu_stress.stock_collate([data[i] for i in range(4)])
    assert gpu_stress.check_batch((images, targets), torch.float32, "cpu")[1] == 0
    images[2, 1, 5, 7] += 1
    assert gpu_stress.check_batch((images, targets), torch.float32, "cpu")[1] == 1
    targets[0][0, 3] = -1
    assert gpu_stress.check_batch((images, targets), torch.float32, "cpu")[1] == 2


def test_stress_failure_rules():
    assert gpu_stress.failed({"error": "", "bad_samples": 0}) is False
    assert gpu_stress.failed({"error": "AcceleratorError: CUDA error: invalid argument"})
    assert gpu_stress.failed({"error": "", "bad_samples": 1})
    killed = {"error": "RuntimeError: DataLoader worker (pid 7) is killed by signal: Killed."}
    assert gpu_stress.failed(killed, expect_error=True) is False
    assert gpu_stress.failed({"error": ""}, expect_error=True)  # the kill went unnoticed


@pytest.mark.multiprocess
def test_train_step_dry_run_prints_the_table(tmp_path):
    out = tmp_path / "table.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastloader.bench.gpu_step",
            "--cpu-dry-run",
            "--workers",
            "0",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["stock", "fastloader"]


def test_main_job_gpu_model_section_says_not_measured_without_cuda(monkeypatch, tmp_path):
    from fastloader.bench import main_job

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    section = main_job._gpu_model_section("retinanet", tmp_path)
    assert "not measured: no CUDA device" in section.markdown()
    assert main_job._parse(["--gpu-model", "fasterrcnn"]).gpu_model == "fasterrcnn"
    with pytest.raises(SystemExit):
        main_job._parse(["--gpu-model", "yolo"])
