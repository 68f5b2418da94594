"""The GPU check's own pieces, run where there is no GPU: the self-test's CPU path and the
job-log reader that prints the evidence of a run, finished or cut short."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import job_logs  # noqa: E402


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
2026-11-28 10:00:00,000 INFO aerialseg.device: GPU 0 of 1 visible (NVIDIA H100 80GB HBM3), slot lock GPU-1.1.lock
2026-11-28 10:00:00,100 INFO aerialseg.device: every visible GPU is in use by another job: sharing GPU 0
2026-11-28 10:00:01,000 INFO aerialseg: start-up: 14.2 s before the first epoch (launch 1.0 s, imports 8.0 s)
2026-11-28 10:00:02,000 INFO aerialseg.train: epoch 1/20: train loss 1.2 acc 0.5 mIoU 0.3 | val loss 1.1 acc 0.6 mIoU 0.3 | 2.5 s (CUDA graph steps)
2026-11-28 10:00:03,000 INFO aerialseg.train: epoch 2/20: train loss 1.0 acc 0.6 mIoU 0.4 | val loss 1.0 acc 0.6 mIoU 0.4 | 1.5 s (CUDA graph steps)
"""


def test_job_logs_tells_a_job_cut_short_from_a_finished_one(tmp_path):
    cut = job_logs.describe("train", GPU_TRAIN_LOG)
    assert cut == {"where": "GPU 0 of 1 (NVIDIA H100 80GB HBM3) shared", "startup": 14.2, "epochs": "2/20",
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
