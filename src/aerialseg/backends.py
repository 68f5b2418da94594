"""Where a trained model runs when it predicts: PyTorch or ONNX Runtime (``predict.backend``),
and the model loaded there (`load`, as `Runtime` says).

``auto`` is ONNX Runtime on the CPU, where it runs this network 2-4x faster than PyTorch, and
PyTorch on a CUDA GPU, where the device mosaic and bf16 run. A ``model.onnx`` runs only on ONNX
Runtime; a ``model.pt`` runs on either: for ONNX Runtime it is exported (`aerialseg.export`),
or taken from a ``model.onnx`` beside it, or from the user's cache, that was exported from
exactly this file (its ``source_sha256``).

Nothing here imports torch until a model is loaded on it (`start_torch`): choosing the backend
and running an ONNX file need only NumPy and ONNX Runtime, so mapping with a ``model.onnx``
starts without torch.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .config import available_cores, with_data_defaults
from .errors import ConfigError, InputError
from .export import INPUT, read_metadata
from .files import sha256
from .startup import StartupClock

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")
CACHE_ENV = "AERIALSEG_CACHE"
"""Environment variable naming the folder where the console command keeps the ONNX files it
exported from model.pt files, keyed by their sha256 (default: ``$XDG_CACHE_HOME/aerialseg`` or
``~/.cache/aerialseg``)."""

INSTALL_HINT = "install it with `pip install onnxruntime` (it is in requirements.txt), or set predict.backend: torch"
TINY = np.float32(1e-30)
"""Probabilities are clamped to this before their log, so that a class with probability 0 (in
float32) gets a finite score: log p - log q = logit p - logit q wherever neither is clamped."""
CHUNK = 16
"""Windows per ONNX Runtime call: a batch is run as chunks of at most this many, shared out to
the sessions. Measured on the project's 2-core CPU machine (AMD EPYC, family 26), one thread,
64 px windows of the DeepLabV3+ graph without its softmax: 6.2 Mpx/s in calls of 8 or 16
windows, 5.7 of 32, 5.2 of 64 (the activations of a small call stay in the core's cache)."""


def cuda_possible() -> bool:
    """Whether a CUDA GPU can be visible to this process, known without importing torch: an
    NVIDIA driver and a ``CUDA_VISIBLE_DEVICES`` that does not hide every GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def choose(backend: str, device: str, model_path) -> str:
    """The backend that runs ``model_path`` on ``device`` (``predict.device`` or train's)."""
    if backend not in BACKENDS:
        raise ConfigError(f"predict.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    onnx_file = Path(model_path).suffix == ".onnx"
    if onnx_file and backend == "torch":
        raise ConfigError(f"{model_path}: an ONNX file runs on ONNX Runtime only; give its model.pt for "
                          "predict.backend torch, or use backend auto or onnxruntime")
    if backend == "auto":
        on_gpu = device.startswith("cuda") or (device == "auto" and cuda_possible() and _torch_sees_cuda())
        backend = "onnxruntime" if onnx_file or not on_gpu else "torch"
        if backend == "onnxruntime" and not onnx_file and not runtime_installed():
            log.warning("ONNX Runtime is not installed: predicting with torch (%s)", INSTALL_HINT)
            backend = "torch"
    if backend == "onnxruntime" and device.startswith("cuda"):
        raise ConfigError("predict.backend onnxruntime runs on the CPU here; set predict.device to cpu or auto, or "
                          "predict.backend to torch for the GPU")
    return backend


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs (``predict.*``): on ``backend`` (one of `BACKENDS`, `choose`)
    and ``device`` with ``threads`` CPU threads; in torch, in ``precision`` and
    ``memory_format`` (`device.compute`), its batch norm folded into the convolutions or not
    (``fold_batchnorm``)."""

    backend: str
    device: str
    threads: int
    precision: str
    memory_format: str
    fold_batchnorm: bool


@dataclass(frozen=True)
class Loaded:
    """A model on its backend: what it records about itself (a checkpoint's fields, or an ONNX
    file's metadata, which holds the same), the scores of a batch of windows (``predictor``),
    its number of classes, its device (a torch.device, or "cpu" for ONNX Runtime), its
    backend, and how it runs (``description``, for the job's log)."""

    record: dict
    predictor: Callable
    n_classes: int
    device: object
    backend: str
    description: str


def load(runtime: Runtime, model_path, exported: dict, cache: Path | None = None) -> Loaded:
    """A model file on the backend that ``runtime`` chooses (`choose`). ``exported`` is the
    ``predict`` settings an ONNX file exported from a model.pt records, ``cache`` where such
    files are kept (`onnx_bytes`)."""
    backend = choose(runtime.backend, runtime.device, model_path)
    if backend == "onnxruntime":
        return _load_onnx(runtime, model_path, exported, cache)
    return _load_torch(runtime, model_path)


def _load_onnx(runtime: Runtime, model_path, exported: dict, cache: Path | None) -> Loaded:
    clock = StartupClock()
    data = onnx_bytes(model_path, exported, cache)
    clock.mark("export" if Path(model_path).suffix == ".pt" else "read")
    model = OnnxModel.load_logits(data, model_path, runtime.threads)
    ignored = [f"{key} {value}" for key, value in (("precision", runtime.precision),
                                                   ("memory_format", runtime.memory_format)) if value != "auto"]
    if ignored:
        log.info("predict.%s: not used by ONNX Runtime, which runs float32 in its own layout", ", ".join(ignored))
    clock.mark("model")
    clock.report("the first window")
    return Loaded(model.meta, model.scores, int(model.meta["spec"]["n_classes"]), "cpu", "onnxruntime",
                  f"ONNX Runtime on the CPU ({model.describe()})")


def start_torch(device_name: str, threads: int) -> tuple[StartupClock, object]:
    """The prologue of a job that runs the model in torch: the heavy imports (timed), the CPU
    threads and the device (on a GPU, a slot). Returns the start-up clock and the device."""
    clock = StartupClock()
    import torch

    from . import device as devices
    from . import model  # noqa: F401  (segmentation-models-pytorch: timed as an import here)

    clock.mark("imports")
    torch.set_num_threads(threads)
    device = devices.resolve(device_name)
    clock.mark("device")
    return clock, device


def _load_torch(runtime: Runtime, model_path) -> Loaded:
    clock, device = start_torch(runtime.device, runtime.threads)
    from . import device as devices
    from . import model as models

    net, spec, checkpoint = models.load_checkpoint(model_path, device)
    if runtime.fold_batchnorm:
        net = models.fold_batchnorm(net)
    how = devices.compute(device, runtime.precision, runtime.memory_format)
    net = how.format(net)
    prepare = models.input_transform(spec, device, how)
    clock.mark("model")
    clock.report("the first window")

    def predictor(batch):
        with how.autocast():
            return net(prepare(batch))

    description = f"torch on {device} ({runtime.threads} CPU threads), in {how.describe()}"
    description += ", batch norm folded" if runtime.fold_batchnorm else ""
    return Loaded({**checkpoint, "data": with_data_defaults(checkpoint["data"])}, predictor, spec.n_classes, device,
                  "torch", description)


def _torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def runtime_installed() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aerialseg"
    return Path(base)


def onnx_bytes(model_path, predict: dict | None = None, cache: Path | None = None) -> bytes:
    """The ONNX file of ``model_path``: the file itself for a model.onnx; for a model.pt, a
    ``model.onnx`` beside it or in ``cache`` (a folder, `cache_dir` for the console command;
    None for the workflow's jobs, which keep nothing outside results/) that was exported from
    exactly this file, else exported now, in memory, and kept in ``cache`` for the next time."""
    path = Path(model_path)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise InputError(f"{path}: model file does not exist")
        return path.read_bytes()
    if not path.is_file():
        raise InputError(f"{path}: checkpoint does not exist")
    source = sha256(path)
    cached = cache / f"{source}.onnx" if cache is not None else None
    for candidate in (path.with_suffix(".onnx"), cached):
        data = candidate.read_bytes() if candidate is not None and candidate.is_file() else None
        if data is not None and _source_of(data) == source:
            log.info("%s: ONNX graph from %s", path, candidate)
            return data
    from . import export

    data = export.to_bytes(path, predict)
    if cached is not None:
        _keep(cached, data)
    return data


def _source_of(data: bytes) -> str | None:
    """The ``source_sha256`` an ONNX file (its bytes) records, None for any file that cannot tell."""
    try:
        import onnx

        graph = onnx.load_from_string(data)
        props = {p.key: p.value for p in graph.metadata_props}
        return json.loads(props.get("aerialseg", "{}")).get("source_sha256")
    except Exception:  # a truncated or foreign file is simply not a match
        return None


def _keep(path: Path, data: bytes) -> None:
    """Write a cache entry atomically; a cache that cannot be written is only logged."""
    from .files import atomic_path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
        log.info("exported ONNX graph cached as %s", path)
    except OSError as error:
        log.info("could not cache the exported ONNX graph in %s (%s): it is exported again next time", path.parent, error)


WORKERS = 8
"""At most this many ONNX Runtime sessions run a batch side by side (`OnnxModel`)."""


@dataclass
class OnnxModel:
    """An ONNX file open in ONNX Runtime, with its aerialseg metadata (`export.read_metadata`),
    which says everything a checkpoint says about what the model reads.

    A batch is split across ``sessions``, which run side by side in threads, each with its
    share of the job's threads, instead of one session whose operators are split across the
    cores. On the project's 2-core CPU machine (AMD EPYC, family 26) a map took the same wall
    time on a quiet machine with 12 % less CPU time and 44 MiB more memory, and 1.49x less wall
    time while other work loaded the machine (the Dubai test image, 5 runs each). Every window
    goes through the same graph, so the split changes no result."""

    sessions: list
    meta: dict
    table: np.ndarray  # (C, 256) float32: the model's input for each band and uint8 value
    pool: ThreadPoolExecutor | None = None
    logits: bool = False  # the sessions run the graph without its softmax (`logits_graph`)

    @classmethod
    def load_logits(cls, data: bytes, name, threads: int) -> "OnnxModel":
        """The model of an ONNX file's bytes run without the softmax that ends its graph
        (`logits_graph`), for the mosaic, which blends scores: the softmax over the classes is
        about a sixth of the graph's time on the CPU, and blending logits is what the torch
        mosaic does. A graph that does not end in a softmax runs as it is."""
        cut = logits_graph(data)
        model = cls.load(cut or data, name, threads)
        return replace(model, logits=cut is not None)

    @classmethod
    def load(cls, data: bytes, name, threads: int) -> "OnnxModel":
        """The model of an ONNX file's bytes, as its file says (its one output: probabilities)."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(f"predict.backend onnxruntime: ONNX Runtime is not installed; {INSTALL_HINT}") from None
        threads = max(1, min(threads, available_cores()))
        workers = min(threads, WORKERS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads // workers
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            sessions = [ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
                        for _ in range(workers)]
        except Exception as error:  # not an ONNX graph, or one ONNX Runtime cannot run
            raise InputError(f"{name}: ONNX Runtime cannot load this model ({type(error).__name__}: "
                             f"{str(error).splitlines()[0]})") from None
        meta = read_metadata(name, sessions[0].get_modelmeta().custom_metadata_map)
        meta["data"] = with_data_defaults(meta["data"])
        from .model_spec import standardization

        mean, std = standardization(meta["spec"])
        values = np.arange(256, dtype=np.float32)[None, :]
        pool = ThreadPoolExecutor(workers, thread_name_prefix="onnxruntime") if workers > 1 else None
        return cls(sessions, meta, (values / 255.0 - mean[:, None]) / std[:, None], pool)

    def describe(self) -> str:
        threads = self.sessions[0].get_session_options().intra_op_num_threads
        return (f"{len(self.sessions)} session(s) side by side, {threads} thread(s) each, "
                f"{self.meta.get('precision', 'float32')}")

    def inputs(self, windows: np.ndarray) -> np.ndarray:
        """The graph's input (B, C, s, s) float32 for uint8 windows (B, s, s, C), looked up per
        band in `table`, which holds ``(v / 255 - mean) / std`` for every value v, computed in
        float32 as torch normalises (`model.normalize`): the same numbers, faster."""
        b, h, w, c = windows.shape
        x = np.empty((b, c, h, w), np.float32)
        for band in range(c):
            np.take(self.table[band], windows[..., band], out=x[:, band])
        return x

    def outputs(self, windows: np.ndarray) -> np.ndarray:
        """The graph's output (B, K, s, s) for uint8 windows (B, s, s, C): probabilities, or
        logits for a model loaded with `load_logits`. The batch runs as chunks of at most
        `CHUNK` windows, shared out to the sessions (ONNX Runtime runs one session from
        several threads at once)."""
        chunks = [windows[i : i + CHUNK] for i in range(0, len(windows), CHUNK)]
        if self.pool is None or len(chunks) < 2:
            return np.concatenate([self._run(self.sessions[0], chunk) for chunk in chunks])
        sessions = [self.sessions[i % len(self.sessions)] for i in range(len(chunks))]
        return np.concatenate(list(self.pool.map(self._run, sessions, chunks)))

    def _run(self, session, windows: np.ndarray) -> np.ndarray:
        return session.run(None, {INPUT: self.inputs(windows)})[0]

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """The scores the mosaic blends (B, K, s, s): the logits where the graph runs without
        its softmax, else log-probabilities, clamped away from log 0. A window's log-softmax
        differs from its logits by one constant per pixel, so blended either gives the argmax
        and the softmax of blended logits."""
        p = self.outputs(windows)
        return p if self.logits else np.log(np.maximum(p, TINY, out=p), out=p)


QUANTISATION = ("QuantizeLinear", "DequantizeLinear")


def logits_graph(data: bytes) -> bytes | None:
    """An ONNX file (its bytes) without the softmax over the classes that ends its graph: its
    output is the softmax's input, the logits (and, in an int8 graph, the quantisation of the
    probabilities that follows the softmax goes too). None where the graph does not end in a
    softmax over axis 1."""
    import onnx

    model = onnx.load_from_string(data)
    graph = model.graph
    if len(graph.output) != 1:
        return None
    producer = {name: node for node in graph.node for name in node.output}
    node, dropped = producer.get(graph.output[0].name), []
    while node is not None and node.op_type in QUANTISATION:
        dropped.append(node)
        node = producer.get(node.input[0])
    axis = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}.get("axis", -1) if node else None
    if node is None or node.op_type != "Softmax" or axis != 1:
        return None
    for gone in dropped + [node]:
        graph.node.remove(gone)
    graph.output[0].name = node.input[0]
    return model.SerializeToString()

