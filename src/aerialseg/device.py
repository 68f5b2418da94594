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
from dataclasses import dataclass
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import torch

from .errors import ConfigError, first_line

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "AERIALSEG_GPU_LOCKS"
"""Environment variable naming the folder of the GPU slot locks (default: in the temp dir)."""

STRICT_CAPTURE_ENV = "AERIALSEG_STRICT_CAPTURE"
"""Environment variable: set to 1 and a step that should be captured as a CUDA graph but
cannot be raises `CaptureError` (with the root cause chained) instead of running eagerly.
For checks and benchmarks, which must prove that capture happened."""

_held: list[int] = []  # file descriptors of the slot locks this process holds


def resolve(name: str = "auto") -> torch.device:
    """The device of a job: ``auto`` is a free CUDA GPU if there is one, else the CPU;
    ``cuda`` a free GPU, ``cuda:N`` GPU number N (counting from 0, as CUDA does)."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available (set it to auto or cpu)")
    keys = gpu_keys()
    index = _numbered_gpu(name, keys)
    if index is None:
        index = claim_gpu(keys)
    else:
        claim_gpu([keys[index]])  # a slot on that GPU: the index within the list is 0
    _open(index)
    # Fixed shapes (training steps, mosaic batches): let cuDNN time its algorithms once per
    # shape and keep the fastest.
    torch.backends.cudnn.benchmark = True
    log.info("GPU %d of %d visible (%s), slot lock %s", index, len(keys), torch.cuda.get_device_name(index), keys[index])
    return torch.device("cuda", index)


def _numbered_gpu(name: str, keys: Sequence[str]) -> int | None:
    """The GPU ``cuda:N`` names (checked against those visible), None for ``cuda`` or ``auto``."""
    if not name.startswith("cuda:"):
        return None
    number = name.partition(":")[2]
    if not number.isdigit() or int(number) >= len(keys):
        raise ConfigError(f"device {name!r}: {len(keys)} CUDA device(s) visible, numbered 0 to {len(keys) - 1}")
    return int(number)


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
    is held until the process ends. A lock file that cannot be opened (another user's) is
    skipped; when no lock of a slot can be opened at all, no later slot can be either, and
    `ConfigError` says which folder to fix.
    """
    import fcntl

    if not keys:
        raise ValueError("no GPU to claim")
    folder = _made_lock_folder(folder)
    for slot in itertools.count():
        failures = []
        for index, key in enumerate(keys):
            path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}.{slot}.lock"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
            except OSError as error:  # another user's lock, say: leave that slot alone
                log.warning("cannot open GPU slot lock %s (%s); skipping it", path, error)
                failures.append(error)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            _held.append(fd)
            log.info("took GPU slot %d of GPU %d (%s)", slot, index, path)
            if slot:
                log.info("every visible GPU is in use by another job: sharing GPU %d", index)
            return index
        if len(failures) == len(keys):
            raise _lock_folder_error(folder, failures[0])
    raise AssertionError("unreachable")


def _made_lock_folder(folder: str | Path | None) -> Path:
    """The folder of the slot locks (None: `lock_dir`), made if it is not there yet."""
    folder = Path(folder) if folder is not None else lock_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _lock_folder_error(folder, error) from None
    return folder


def _lock_folder_error(folder: Path, error: OSError) -> ConfigError:
    return ConfigError(
        f"{folder}: cannot create GPU slot locks there ({error.strerror or error}); it may belong to another "
        f"user. Set {LOCK_DIR_ENV} to a folder of your own, e.g. export {LOCK_DIR_ENV}=$HOME/.aerialseg-gpu-locks"
    )


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively: a GPU of compute capability 8.0 (Ampere)
    or newer (older GPUs, V100 or T4, would emulate it, slower than float32, which
    `torch.cuda.is_bf16_supported()` counts as supported by default), or a CPU whose flags
    (``/proc/cpuinfo``) include AVX-512 BF16 or AMX BF16 instructions."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return cpu_native_bf16()


def cpu_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: say no rather than guess
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class Compute:
    """How a job runs the model on its device, decided once (`compute`): in bf16 autocast or
    float32, in channels-last or contiguous memory format."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    def autocast(self):
        """bf16 autocast, or a no-op in float32. The weight cast cache is off, as CUDA graph
        capture requires."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16,
                              cache_enabled=False)

    def format(self, x):
        """A 4-D tensor or a module in this memory format (contiguous: NCHW, whatever the
        strides the tensor came with, such as the channels-last ones of windows cut from an
        (H, W, C) image)."""
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        if isinstance(x, torch.nn.Module):
            return x.to(memory_format=layout)
        return x.contiguous(memory_format=layout)

    def describe(self) -> str:
        return f"{'bf16 autocast' if self.bf16 else 'float32'}, {'channels-last' if self.channels_last else 'contiguous'}"


PRECISIONS = ("auto", "float32", "bf16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def compute(device: torch.device, precision: str = "auto", memory_format: str = "auto") -> Compute:
    """How to run the model for prediction (``predict.precision``, ``predict.memory_format``).
    ``auto`` is bf16 on a GPU with native bf16 and float32 everywhere else (the CPU keeps the
    study's numbers exactly; bf16 is there for the asking, where `native_bf16`), and
    channels-last everywhere (on the CPU too: the same class ids, faster)."""
    return _compute(device, precision, memory_format, auto_memory_format="channels_last")


def compute_for_training(device: torch.device, precision: str = "auto", memory_format: str = "auto") -> Compute:
    """How to run the model for training (``train.precision``, ``train.memory_format``): as
    `compute`, but ``auto`` keeps the CPU contiguous, so the study's histories stay the same."""
    return _compute(device, precision, memory_format,
                    auto_memory_format="channels_last" if device.type == "cuda" else "contiguous")


def _compute(device: torch.device, precision: str, memory_format: str, auto_memory_format: str) -> Compute:
    """The `Compute` of a precision and a memory format; ``auto_memory_format`` is the one
    that ``auto`` stands for."""
    if precision not in PRECISIONS or memory_format not in MEMORY_FORMATS:
        raise ConfigError(f"precision {precision!r} / memory format {memory_format!r}: expected one of {PRECISIONS} "
                          f"and one of {MEMORY_FORMATS}")
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda" and native_bf16(device))
    if bf16 and not native_bf16(device):
        log.warning("bf16 asked for on %s, which would only emulate it (slower than float32)", device)
    channels = (auto_memory_format if memory_format == "auto" else memory_format) == "channels_last"
    return Compute(device, bf16=bf16, channels_last=channels)


def autocast(device: torch.device):
    """bf16 autocast where `compute` would choose it by default (a GPU with native bf16);
    float32 elsewhere."""
    return compute(device).autocast()


def channels_last(x):
    """A 4-D tensor or a module in channels-last memory format on CUDA, contiguous (NCHW) on
    the CPU: the default memory formats of training (`compute`)."""
    on_cuda = any(p.is_cuda for p in x.parameters()) if isinstance(x, torch.nn.Module) else x.is_cuda
    return Compute(torch.device("cuda" if on_cuda else "cpu"), channels_last=on_cuda).format(x)


class CaptureError(RuntimeError):
    """A step could not be captured as a CUDA graph; the root cause is chained (``__cause__``)."""


def strict_capture() -> bool:
    """Whether a failed capture must raise (`STRICT_CAPTURE_ENV` set to 1, yes or true)."""
    return os.environ.get(STRICT_CAPTURE_ENV, "").strip().lower() in ("1", "yes", "true")


def capture_graph(step: Callable[[], None], device: torch.device) -> "torch.cuda.CUDAGraph":
    """Record one call of ``step`` as a CUDA graph, on a side stream, without running it.

    Unlike ``torch.cuda.graph``, a failure inside ``step`` is not masked by the "operation
    failed due to a previous error during capture" that ending the broken capture raises:
    `CaptureError` is raised from the step's own exception, and the stream that was current
    before is current again whatever happens.
    """
    graph = torch.cuda.CUDAGraph()
    current = torch.cuda.current_stream(device)
    torch.cuda.synchronize(device)
    side = torch.cuda.Stream(device)
    side.wait_stream(current)
    with torch.cuda.stream(side):  # its exit restores the current stream, also on an error
        graph.capture_begin()
        try:
            step()
        except Exception as root:
            try:
                graph.capture_end()  # ends the broken capture; its own error only repeats the root
            except Exception:
                pass
            raise CaptureError(f"{type(root).__name__}: {first_line(root)}") from root
        try:
            graph.capture_end()
        except Exception as root:
            raise CaptureError(f"ending the capture: {type(root).__name__}: {first_line(root)}") from root
    current.wait_stream(side)
    return graph


class GraphedStep:
    """Calls ``step``, a function of no arguments, as a captured CUDA graph.

    ``step`` must take everything that varies from call to call from tensors it reads in
    place (a step counter on the device, say) and write its results into tensors in place,
    and it must not synchronise with the host: then replaying its graph is the same as
    calling it. The first ``warmup`` calls run eagerly on a side stream (they initialise the
    optimiser state and the libraries' handles), the next one captures the graph and replays
    it, and every later call only replays it. Each call does the step's work exactly once.

    On the CPU, or where the caller gives a reason not to capture (``eager_because``, such
    as capture turned off in its settings), every call runs ``step`` eagerly. If capture
    fails, the root cause is logged with its traceback and the step runs eagerly from then
    on; in strict mode (`strict_capture`: the environment says so, as the GPU self-test does)
    the `CaptureError` is raised instead.
    `summary` says how the calls ran, for the job's log, with the reason for eager calls.
    """

    def __init__(self, step: Callable[[], None], device: torch.device, *, eager_because: str | None = None,
                 warmup: int = 3, name: str = "step"):
        self.step, self.device, self.warmup, self.name = step, device, warmup, name
        self.strict = strict_capture()
        self.why_eager = "the device is the CPU" if device.type != "cuda" else eager_because
        self.capture = self.why_eager is None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = self.replays = 0

    @property
    def mode(self) -> str:
        return "CUDA graph" if self.graph is not None else "eager"

    def summary(self) -> str:
        """How the calls ran: "captured, N replays (...)" or "eager, because ..."."""
        if self.graph is not None:
            return (f"captured, {self.replays} replays (after {self.warmup} eager warm-up calls; "
                    f"{self.calls} calls in all)")
        if self.why_eager is None:
            return (f"eager, because only {self.calls} call(s) came, no more than the {self.warmup} eager warm-up "
                    "calls before capture")
        return f"eager, because {self.why_eager} ({self.calls} calls)"

    def __call__(self) -> None:
        if self.graph is not None:
            self._replay()
        elif not self.capture:
            self.step()
        elif self.calls < self.warmup:
            self._warm_up()
        else:
            self._capture()
        self.calls += 1

    def _replay(self) -> None:
        self.graph.replay()
        self.replays += 1

    def _warm_up(self) -> None:
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            self.step()
        current.wait_stream(side)

    def _capture(self) -> None:
        try:
            graph = capture_graph(self.step, self.device)
        except CaptureError as error:  # an unusual model, an old driver
            if self.strict:
                raise CaptureError(f"{self.name}: capturing a CUDA graph failed ({error}); "
                                   f"{STRICT_CAPTURE_ENV} is set, so it does not fall back") from error.__cause__
            log.warning("%s: capturing a CUDA graph failed (%s); running it eagerly from now on", self.name, error,
                        exc_info=error)
            self.capture, self.why_eager = False, f"capturing it failed ({error})"
            torch.cuda.synchronize(self.device)
            self.step()  # capture only records the work: this call's step has not run yet
            return
        self.graph = graph
        log.info("%s: captured as a CUDA graph after %d eager warm-up call(s)", self.name, self.warmup)
        self._replay()
