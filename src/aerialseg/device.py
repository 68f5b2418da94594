"""The compute device that training and prediction share: which one a job uses, in which
precision and memory format, and running a fixed-shape step as a captured CUDA graph.

Nothing here knows about models, images or the training loop.

GPUs of one machine are shared out between concurrent jobs with slot locks: a job takes the
first GPU that no other running job holds, or, when every visible GPU is taken, the one held
by the fewest. The lock is an ``flock`` on a small file, released by the operating system
when the job's process ends, however it ends. Only the GPUs that ``CUDA_VISIBLE_DEVICES``
shows are considered, and locks are keyed by each GPU's UUID, so jobs that see different
subsets (a Slurm allocation, a user's own ``CUDA_VISIBLE_DEVICES``) never block each other
wrongly.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import torch

from .errors import ConfigError

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "AERIALSEG_GPU_LOCKS"
"""Environment variable naming the folder of the GPU slot locks (default: in the temp dir)."""

_held: list[int] = []  # file descriptors of the slot locks this process holds


def resolve(name: str = "auto") -> torch.device:
    """The device of a job: ``auto`` is a free CUDA GPU if there is one, else the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available (set it to auto or cpu)")
    keys = gpu_keys()
    index = claim_gpu(keys)
    _open(index)
    log.info("GPU %d of %d visible (%s), slot lock %s", index, len(keys), torch.cuda.get_device_name(index), keys[index])
    return torch.device("cuda", index)


def _open(index: int) -> None:
    """Make GPU ``index`` the current one and start its CUDA context now, so that the
    context's start-up counts as the device's."""
    torch.cuda.set_device(index)
    torch.zeros(1, device=torch.device("cuda", index))


def gpu_keys() -> list[str]:
    """One stable name per visible GPU, in CUDA's order: its UUID, else its entry of
    ``CUDA_VISIBLE_DEVICES``, else its index."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    keys = []
    for index in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        keys.append(str(uuid) if uuid is not None else visible[index] if index < len(visible) else str(index))
    return keys


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "aerialseg-gpu-locks")


def claim_gpu(keys: Sequence[str], folder: str | Path | None = None) -> int:
    """Take a slot on one of the GPUs named by ``keys`` and return its index.

    Slot 0 of every GPU is tried first, then slot 1 of every GPU, and so on: concurrent jobs
    land on different GPUs while there are free ones, and share evenly beyond that. The slot
    is held until the process ends.
    """
    import fcntl

    if not keys:
        raise ValueError("no GPU to claim")
    folder = Path(folder) if folder is not None else lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for slot in itertools.count():
        for index, key in enumerate(keys):
            path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}.{slot}.lock"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
            except OSError as error:  # another user's lock folder, say: leave that slot alone
                log.warning("cannot open GPU slot lock %s (%s); skipping it", path, error)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            _held.append(fd)
            if slot:
                log.info("every visible GPU is in use by another job: sharing GPU %d", index)
            return index
    raise AssertionError("unreachable")


def autocast(device: torch.device):
    """bf16 autocast on a GPU that supports it; a no-op on the CPU, so CPU runs stay in
    float32 and exact. The weight cast cache is off, as CUDA graph capture requires."""
    enabled = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled, cache_enabled=False)


def channels_last(x):
    """A 4-D tensor or a module in channels-last memory format on CUDA; unchanged on the CPU."""
    if isinstance(x, torch.nn.Module):
        on_cuda = any(p.is_cuda for p in x.parameters())
        return x.to(memory_format=torch.channels_last) if on_cuda else x
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x


class GraphedStep:
    """Calls ``step``, a function of no arguments, as a captured CUDA graph.

    ``step`` must take everything that varies from call to call from tensors it reads in
    place (a step counter on the device, say) and write its results into tensors in place,
    and it must not synchronise with the host: then replaying its graph is the same as
    calling it. The first ``warmup`` calls run eagerly on a side stream (they initialise the
    optimiser state and the libraries' handles), the next one captures the graph and replays
    it, and every later call only replays it. Each call does the step's work exactly once.

    On the CPU, or with ``enabled=False``, every call runs ``step`` eagerly. If capture
    fails, the reason is logged once and the step runs eagerly from then on.
    """

    def __init__(self, step: Callable[[], None], device: torch.device, enabled: bool = True,
                 warmup: int = 3, name: str = "step"):
        self.step, self.device, self.warmup, self.name = step, device, warmup, name
        self.capture = enabled and device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0

    @property
    def mode(self) -> str:
        return "CUDA graph" if self.graph is not None else "eager"

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif not self.capture:
            self.step()
        elif self.calls < self.warmup:
            self._warm_up()
        else:
            self._capture()
        self.calls += 1

    def _warm_up(self) -> None:
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            self.step()
        current.wait_stream(side)

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.step()
        except Exception as error:  # an unusual model, an old driver: fall back, once
            log.warning("%s: capturing a CUDA graph failed (%s: %s); running it eagerly", self.name,
                        type(error).__name__, str(error).splitlines()[0] if str(error) else "")
            self.capture = False
            torch.cuda.synchronize(self.device)
            self.step()  # capture only records the work: this call's step has not run yet
            return
        self.graph = graph
        log.info("%s: captured as a CUDA graph after %d eager warm-up call(s)", self.name, self.warmup)
        graph.replay()
