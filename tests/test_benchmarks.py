"""The GPU check's own pieces, run where there is no GPU: the self-test's CPU path and the
job-log reader that prints the evidence of a run, finished or cut short."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    """A benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


job_logs = _script("job_logs")


def test_the_self_test_runs_its_cpu_checks_and_skips_the_cuda_ones(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_selftest.py"), str(tmp_path / "none"),
                             "--device", "cpu", "--crop", "256"], capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.split(" ")[0] in ("PASS", "FAIL", "SKIP")]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the demo scene, 256 x 256 px (no Dubai folder found)" in result.stdout
    assert [line.split(":")[0] for line in lines] == [
        "PASS training step calls", "PASS training confusion counts", "PASS validation step calls",
        "PASS validation confusion counts", "PASS a loss per step", "SKIP no host sync in a replay",
        "PASS dropout draws fresh numbers per step", "SKIP captured history = eager history",
        "SKIP device mosaic = CPU mosaic"]
    assert "self-test: PASS: 6 passed, 0 failed, 3 skipped" in result.stdout


GPU_TRAIN_LOG = """\
2026-11-28 10:00:00,000 INFO aerialseg.device: took GPU slot 1 of GPU 0 (/tmp/aerialseg-gpu-locks/GPU-1.1.lock)
2026-11-28 10:00:00,000 INFO aerialseg.device: every visible GPU is in use by another job: sharing GPU 0
2026-11-28 10:00:00,100 INFO aerialseg.device: GPU 0 of 1 visible (NVIDIA H100 80GB HBM3), slot lock GPU-1
2026-11-28 10:00:01,000 INFO aerialseg: start-up: 14.2 s before the first epoch (launch 1.0 s, imports 8.0 s)
2026-11-28 10:00:02,000 INFO aerialseg.train: epoch 1/20: train loss 1.2 acc 0.5 mIoU 0.3 | val loss 1.1 acc 0.6 mIoU 0.3 | 2.5 s (CUDA graph steps)
2026-11-28 10:00:03,000 INFO aerialseg.train: epoch 2/20: train loss 1.0 acc 0.6 mIoU 0.4 | val loss 1.0 acc 0.6 mIoU 0.4 | 1.5 s (CUDA graph steps)
"""


def test_job_logs_tells_a_job_cut_short_from_a_finished_one(tmp_path):
    cut = job_logs.describe("train", GPU_TRAIN_LOG)
    assert cut == {"where": "GPU 0 of 1 (NVIDIA H100 80GB HBM3, slot 1) shared", "startup": 14.2, "epochs": "2/20",
                   "epoch_s": 2.0, "mosaic_s": None, "steps": {}, "failures": [], "end": "cut short"}
    done = job_logs.describe("train", GPU_TRAIN_LOG + (
        "2026-11-28 10:01:00,000 INFO aerialseg.train: training step: captured, 6157 replays (after 3 eager warm-up calls; 6160 calls in all)\n"
        "2026-11-28 10:01:00,000 INFO aerialseg.train: validation step: eager, because capturing it failed (RuntimeError: x)\n"
        "2026-11-28 10:01:01,000 INFO aerialseg: kept epoch 17 of 20 (best validation mIoU)\n"))
    assert done["end"] == "done" and done["steps"] == {
        "training": "captured, 6157 replays (after 3 eager warm-up calls; 6160 calls in all)",
        "validation": "eager, because capturing it failed (RuntimeError: x)"}
    failed = job_logs.describe("train", GPU_TRAIN_LOG + "2026-11-28 10:00:04,000 ERROR aerialseg: case x: training diverged\n")
    assert failed["end"] == "FAILED: case x: training diverged"
    crashed = job_logs.describe("train", GPU_TRAIN_LOG + (
        "2026-11-28 10:00:04,000 ERROR aerialseg: train_case failed: OutOfMemoryError: CUDA out of memory. Tried\n"
        "Traceback (most recent call last):\n"))
    assert crashed["end"] == "FAILED: train_case failed: OutOfMemoryError: CUDA out of memory. Tried"


def test_job_logs_reads_a_prediction_job_and_a_partial_epoch():
    log = (
        "2026-11-28 10:00:00,000 INFO aerialseg: start-up: 9.0 s before the first window (launch 1.0 s)\n"
        "2026-11-28 10:00:02,000 INFO aerialseg: results/demo/train/image.png: predicted in 1.5 s\n"
        "2026-11-28 10:00:04,000 INFO aerialseg: results/demo/test/image.png: predicted with flip TTA in 2.5 s\n")
    assert job_logs.describe("predict", log)["end"] == "cut short"
    done = job_logs.describe("predict", log + "2026-11-28 10:00:04,100 INFO aerialseg: predicted 2 image(s) in all\n")
    assert done["end"] == "done, 2 image(s)" and done["mosaic_s"] == 4.0 and done["where"] == "?"
    partial = job_logs.describe("train", GPU_TRAIN_LOG.replace("epoch 2/20:", "epoch 2/2 (partial: 30 steps in all):"))
    assert partial["epochs"] == "2/2"


def test_a_failed_benchmark_child_shows_its_own_error():
    """A child that fails (here: CUDA asked for where there is none) is reported with what it
    printed, not only its exit status."""
    mosaic_throughput = _script("mosaic_throughput")
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA to make the child fail")
    with pytest.raises(SystemExit) as stop:
        mosaic_throughput.measure("aerialseg", "standin", 64, 32, 16, "cuda")
    assert "failed with exit status 1" in str(stop.value) and "no CUDA device is available" in str(stop.value)
