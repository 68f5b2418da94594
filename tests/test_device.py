"""The device module: GPU slots for concurrent jobs, and the captured-step control flow,
checked without a GPU (fakes stand in for CUDA); tests that need CUDA skip without it."""

import multiprocessing
import types
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from aerialseg import device
from aerialseg.errors import ConfigError

CUDA = torch.cuda.is_available()


def _job(lock_dir, gpus, ready, done, found):
    """A training job on a machine with ``gpus`` fake GPUs: resolve its device, report it,
    and hold it until the test says so."""
    torch.cuda.is_available = lambda: True
    torch.cuda.device_count = lambda: gpus
    torch.cuda.get_device_properties = lambda i: types.SimpleNamespace(uuid=f"GPU-fake-{i}")
    torch.cuda.get_device_name = lambda i: "fake"
    device._open = lambda index: None
    found.put(device.resolve("auto").index)
    ready.wait()
    done.wait()


def _run_jobs(lock_dir, gpus, n):
    context = multiprocessing.get_context("fork")
    ready, done, found = context.Barrier(n + 1), context.Event(), context.Queue()
    jobs = [context.Process(target=_job, args=(lock_dir, gpus, ready, done, found)) for _ in range(n)]
    for job in jobs:
        job.start()
    ready.wait(timeout=60)  # every job holds its device now
    indices = sorted(found.get(timeout=10) for _ in jobs)
    done.set()
    for job in jobs:
        job.join(timeout=30)
    return indices


def test_concurrent_jobs_land_on_different_gpus_then_share_evenly(tmp_path, monkeypatch):
    monkeypatch.setenv(device.LOCK_DIR_ENV, str(tmp_path))
    assert _run_jobs(tmp_path, gpus=4, n=4) == [0, 1, 2, 3]
    assert _run_jobs(tmp_path, gpus=3, n=5) == [0, 0, 1, 1, 2]  # every GPU busy: the least shared one
    assert _run_jobs(tmp_path, gpus=4, n=1) == [0]  # slots are free again once their jobs end


def test_a_gpu_job_logs_its_slot_and_lets_cudnn_pick_its_fastest_kernels(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(device.LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # restored after the test
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(uuid="GPU-fake-0"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "fake")
    monkeypatch.setattr(device, "_open", lambda index: None)
    with caplog.at_level("INFO"):
        assert device.resolve("auto") == torch.device("cuda", 0)
    assert torch.backends.cudnn.benchmark is True
    assert f"took GPU slot 0 of GPU 0 ({tmp_path / 'GPU-fake-0.0.lock'})" in caplog.text


def test_gpus_are_named_by_uuid_else_by_their_visible_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace())
    assert device.gpu_keys() == ["3", "1"]
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(uuid=f"GPU-{i}"))
    assert device.gpu_keys() == ["GPU-0", "GPU-1"]


@pytest.mark.skipif(CUDA, reason="checks the CPU fallback")
def test_without_cuda_auto_is_the_cpu_and_cuda_is_a_config_error():
    assert device.resolve("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="train.device is 'cuda' but no CUDA device is available"):
        device.resolve("cuda")


class _FakeCuda:
    """Just enough of torch.cuda for GraphedStep's control flow: capture records the step
    without running it, replay runs what was recorded, streams are a stack. A step that
    fails inside a capture makes ending the capture fail too, with CUDA's generic message,
    as the real one does."""

    def __init__(self):
        self.capturing, self.failed = False, False
        self.default = types.SimpleNamespace(name="default", wait_stream=lambda other: None)
        self.streams = [self.default]

    def install(self, monkeypatch):
        fake = self

        class Graph:
            def capture_begin(self):
                fake.capturing, fake.failed = True, False

            def capture_end(self):
                fake.capturing = False
                if fake.failed:
                    raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
                self.recorded = fake.recorded

            def replay(self):
                self.recorded()

        @contextmanager
        def stream(s):
            fake.streams.append(s)
            try:
                yield
            finally:
                fake.streams.pop()

        for name, value in {
            "CUDAGraph": Graph, "stream": stream, "synchronize": lambda device: None,
            "Stream": lambda device: types.SimpleNamespace(name="side", wait_stream=lambda other: None),
            "current_stream": lambda device: fake.streams[-1],
        }.items():
            monkeypatch.setattr(torch.cuda, name, value)


def _counting_step(fake, fail):
    """A step that records, when captured, a replay of itself; with ``fail`` an op inside
    the capture raises (as an op that cannot be captured does)."""
    runs, recorded = [], []

    def step():
        if fake.capturing:
            recorded.append("captured")
            if fail:
                fake.failed = True
                raise RuntimeError("operation not permitted when stream is capturing")
            fake.recorded = lambda: runs.append("replay")
        else:
            runs.append("eager")

    return step, runs, recorded


@pytest.mark.parametrize("fail", [False, True])
def test_a_graphed_step_does_each_call_s_work_exactly_once(monkeypatch, caplog, fail):
    fake = _FakeCuda()
    fake.install(monkeypatch)
    monkeypatch.delenv(device.STRICT_CAPTURE_ENV, raising=False)  # not strict: a failed capture falls back
    step, runs, recorded = _counting_step(fake, fail)
    graphed = device.GraphedStep(step, torch.device("cuda"), warmup=2, name="training step")
    with caplog.at_level("INFO"):
        for _ in range(5):
            graphed()
    assert recorded == ["captured"]
    assert fake.streams == [fake.default]  # back on the stream it started on
    if fail:
        assert runs == ["eager"] * 5 and graphed.mode == "eager"
        # the root cause, not CUDA's "previous error" that ending the broken capture raises
        assert caplog.text.count("capturing a CUDA graph failed (RuntimeError: operation not permitted") == 1
        assert "Traceback" in caplog.text and "operation not permitted when stream is capturing" in caplog.text
        assert graphed.summary().startswith("eager, because capturing it failed (RuntimeError: operation not permitted")
    else:
        assert runs == ["eager", "eager", "replay", "replay", "replay"] and graphed.mode == "CUDA graph"
        assert graphed.replays == 3
        assert graphed.summary() == "captured, 3 replays (after 2 eager warm-up calls; 5 calls in all)"


def test_in_strict_mode_a_failed_capture_raises_its_root_cause(monkeypatch):
    fake = _FakeCuda()
    fake.install(monkeypatch)
    monkeypatch.setenv(device.STRICT_CAPTURE_ENV, "1")
    step, runs, _ = _counting_step(fake, fail=True)
    graphed = device.GraphedStep(step, torch.device("cuda"), warmup=1, name="validation step")
    graphed()
    with pytest.raises(device.CaptureError, match="validation step: capturing a CUDA graph failed") as caught:
        graphed()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "operation not permitted when stream is capturing" in str(caught.value.__cause__)
    assert fake.streams == [fake.default] and runs == ["eager"]


def test_a_graphed_step_runs_eagerly_on_the_cpu_or_when_turned_off(monkeypatch):
    _FakeCuda().install(monkeypatch)
    calls = []
    for graphed, why in ((device.GraphedStep(lambda: calls.append(1), torch.device("cpu")), "the device is the CPU"),
                         (device.GraphedStep(lambda: calls.append(1), torch.device("cuda"),
                                             eager_because="capture is turned off (train.capture: false)"),
                          "capture is turned off (train.capture: false)")):
        for _ in range(6):
            graphed()
        assert graphed.mode == "eager" and graphed.summary() == f"eager, because {why} (6 calls)"
    assert len(calls) == 12


def test_a_lock_folder_where_no_lock_can_be_made_is_an_error_not_a_spin(tmp_path, monkeypatch):
    """Another user's lock folder (mode 0755) whose slot 0 is held: slot 1 cannot be created.
    The claim must stop with a message naming the folder, not loop over ever higher slots."""
    import fcntl

    held = tmp_path / "GPU-a.0.lock"
    held.touch()
    holder = open(held)
    fcntl.flock(holder, fcntl.LOCK_EX)
    real_open = device.os.open

    def no_new_files(path, flags, mode=0o777):
        if not Path(path).exists():
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(device.os, "open", no_new_files)
    try:
        with pytest.raises(ConfigError, match=f"{tmp_path}: cannot create GPU slot locks there .*AERIALSEG_GPU_LOCKS"):
            device.claim_gpu(["GPU-a"], tmp_path)
    finally:
        holder.close()


def test_bf16_autocast_only_where_the_gpu_computes_bf16_natively(monkeypatch):
    cuda = torch.device("cuda", 0)
    for capability, native in (((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d, c=capability: c)
        assert device.native_bf16(cuda) is native
        assert device.compute(cuda).bf16 is native  # auto: bf16 where the GPU has it
    for flags, native in ((True, True), (False, False)):
        monkeypatch.setattr(device, "cpu_native_bf16", lambda f=flags: f)
        assert device.native_bf16(torch.device("cpu")) is native


def test_the_cpu_keeps_float32_unless_bf16_is_asked_for_and_predicts_in_channels_last(monkeypatch):
    monkeypatch.setattr(device, "cpu_native_bf16", lambda: True)
    cpu = torch.device("cpu")
    assert device.compute_for_training(cpu) == device.Compute(cpu, bf16=False, channels_last=False)
    assert device.compute(cpu) == device.Compute(cpu, bf16=False, channels_last=True)
    assert device.compute_for_training(cpu, "bf16", "contiguous") == device.Compute(cpu, bf16=True, channels_last=False)
    with pytest.raises(ConfigError, match="precision 'half'"):
        device.compute(cpu, "half")


def test_a_numbered_gpu_is_chosen_and_checked_against_those_visible():
    from aerialseg import backends
    from aerialseg.device import _numbered_gpu
    from aerialseg.errors import ConfigError

    assert _numbered_gpu("cuda:1", ["gpu-a", "gpu-b"]) == 1
    assert _numbered_gpu("cuda", ["gpu-a"]) is None and _numbered_gpu("auto", []) is None
    with pytest.raises(ConfigError, match="device 'cuda:2': 2 CUDA device\\(s\\) visible, numbered 0 to 1"):
        _numbered_gpu("cuda:2", ["gpu-a", "gpu-b"])
    assert backends.choose("auto", "cuda:1", "model.pt") == "torch"  # a GPU: PyTorch
    with pytest.raises(ConfigError, match="runs on the CPU here"):
        backends.choose("onnxruntime", "cuda:0", "model.pt")
