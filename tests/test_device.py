"""The device module: GPU slots for concurrent jobs, and the captured-step control flow,
checked without a GPU (fakes stand in for CUDA); tests that need CUDA skip without it."""

import multiprocessing
import types
from contextlib import contextmanager

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
    without running it, replay runs what was recorded."""

    def __init__(self, fail_capture=False):
        self.capturing, self.fail_capture = False, fail_capture

    def install(self, monkeypatch):
        fake = self

        class Graph:
            def replay(self):
                self.recorded()

        @contextmanager
        def graph(g):
            fake.capturing = True
            try:
                yield
                if fake.fail_capture:
                    raise RuntimeError("operation not permitted when stream is capturing")
            finally:
                fake.capturing = False
            g.recorded = fake.recorded

        stream = types.SimpleNamespace(wait_stream=lambda other: None)
        for name, value in {
            "CUDAGraph": Graph, "graph": graph, "Stream": lambda device: stream,
            "current_stream": lambda device: stream, "stream": lambda s: contextmanager(lambda: (yield))(),
            "synchronize": lambda device: None,
        }.items():
            monkeypatch.setattr(torch.cuda, name, value)


@pytest.mark.parametrize("fail", [False, True])
def test_a_graphed_step_does_each_call_s_work_exactly_once(monkeypatch, caplog, fail):
    fake = _FakeCuda(fail_capture=fail)
    fake.install(monkeypatch)
    runs, recorded = [], []

    def step():
        if fake.capturing:
            recorded.append("captured")
            fake.recorded = lambda: runs.append("replay")
        else:
            runs.append("eager")

    graphed = device.GraphedStep(step, torch.device("cuda"), warmup=2, name="training step")
    with caplog.at_level("INFO"):
        for _ in range(5):
            graphed()
    assert recorded == ["captured"]
    if fail:
        assert runs == ["eager"] * 5 and graphed.mode == "eager"
        assert caplog.text.count("capturing a CUDA graph failed (RuntimeError: operation not permitted") == 1
    else:
        assert runs == ["eager", "eager", "replay", "replay", "replay"] and graphed.mode == "CUDA graph"


def test_a_graphed_step_runs_eagerly_on_the_cpu_or_when_turned_off(monkeypatch):
    _FakeCuda().install(monkeypatch)
    calls = []
    for graphed in (device.GraphedStep(lambda: calls.append(1), torch.device("cpu")),
                    device.GraphedStep(lambda: calls.append(1), torch.device("cuda"), enabled=False)):
        for _ in range(6):
            graphed()
        assert graphed.mode == "eager"
    assert len(calls) == 12
