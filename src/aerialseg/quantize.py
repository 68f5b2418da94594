"""int8 graphs for mapping on the CPU: ONNX Runtime's static quantisation of an exported model.

Optional and never the default. The weights become int8 per output channel, the activations
uint8 with ranges calibrated on windows of imagery the user names (the model's training
images, or imagery like what it will map), in the QDQ format that ONNX Runtime runs with
integer kernels. Measured on the Dubai pair (benchmarks/int8.py, 2-core AMD EPYC): 1.55x the
float32 graph's speed, 0.7 % of the class ids differ, test mIoU 0.7419 against 0.7421.

The int8 file carries the float32 file's metadata, so it maps and opens in QGIS like any
exported model; its ``aerialseg`` metadata adds ``precision: int8`` and what calibrated it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import InputError
from .export import INPUT, METADATA_KEY

log = logging.getLogger(__name__)

WINDOWS = 256
"""Calibration windows when none are asked for: 256 windows measured the figures above."""

WINDOWS_PER_BAND = 16
"""Calibration windows cut from each band of rows read (reading a band per window would read
a large image many times over)."""


def export_int8(model_path: str | Path, out_path: str | Path, images: Sequence[str | Path], count: int = WINDOWS,
                predict: dict | None = None) -> Path:
    """Write the int8 graph of ``model_path`` (a model.pt, exported on the way, or a model.onnx)
    at ``out_path``, atomically, calibrated on ``count`` windows of ``images``; ``predict`` as
    in `export.export`."""
    from .backends import OnnxModel, onnx_bytes
    from .files import atomic_path

    if not images:
        raise InputError(f"{model_path}: int8 quantisation needs images to calibrate on (--calibration IMAGE ...)")
    missing = [str(image) for image in images if not Path(image).is_file()]
    if missing:
        raise InputError(f"{', '.join(missing)}: calibration image file does not exist")
    fp32 = onnx_bytes(model_path, predict)
    model = OnnxModel.load(fp32, model_path, 1)  # its metadata and input table; the calibrator runs its own
    if model.meta.get("precision") == "int8":
        raise InputError(f"{model_path}: already an int8 graph; quantise its float32 model.pt or model.onnx")
    windows = calibration_windows(model, images, count)
    data = quantize(fp32, model, windows, ", ".join(Path(image).name for image in images))
    with atomic_path(out_path) as tmp:
        Path(tmp).write_bytes(data)
    log.info("%s: int8 graph written to %s (%.1f MB), activations calibrated on %d windows of %s", model_path,
             out_path, len(data) / 1e6, len(windows), ", ".join(map(str, images)))
    return Path(out_path)


def calibration_windows(model, images: Sequence[str | Path], count: int = WINDOWS, seed: int = 0) -> np.ndarray:
    """``count`` windows of the model's patch size (uint8, (N, s, s, C)) from ``images``,
    read as the model reads them (its bands, value range and no-data), at random places,
    the same for the same seed; windows that hold no-data are passed over."""
    from .io.read import open_image
    from .io.spec import DataSpec

    spec = DataSpec.from_config({"data": model.meta["data"]})
    size, rng, found = int(model.meta["patch_size"]), np.random.default_rng(seed), []
    per_image = -(-count // len(images))
    for path in images:
        with open_image(path, spec, spec.nodata) as image:
            if image.height < size or image.width < size:
                raise InputError(f"{path}: {image.width} x {image.height} px, smaller than the model's {size} px window")
            found += _windows_of(image, size, per_image, rng)
    if not found:
        raise InputError(f"{', '.join(map(str, images))}: no window of {size} px without no-data to calibrate on")
    return np.stack(found[:count])


def _windows_of(image, size: int, count: int, rng) -> list[np.ndarray]:
    """Up to ``count`` valid windows of one image, a band of rows at a time."""
    windows, tries = [], 0
    while len(windows) < count and tries < 4 * count:
        top = int(rng.integers(0, image.height - size + 1))
        rows, valid = image.rows(top, top + size)
        for left in rng.integers(0, image.width - size + 1, WINDOWS_PER_BAND):
            tries += 1
            if valid[:, left : left + size].all() and len(windows) < count:
                windows.append(rows[:, left : left + size])
    return windows


def quantize(fp32: bytes, model, windows: np.ndarray, source: str) -> bytes:
    """The int8 graph of ``fp32`` (an exported ONNX file; ``model`` its `backends.OnnxModel`),
    activations calibrated on ``windows`` (`calibration_windows`); ``source`` says in its
    metadata what they came from."""
    try:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise InputError("int8 quantisation needs ONNX Runtime: install it with `pip install onnxruntime` "
                         "(it is in requirements.txt)") from None
    with tempfile.TemporaryDirectory(prefix="aerialseg-int8-") as folder:
        fp32_path, pre, out = (Path(folder) / name for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        fp32_path.write_bytes(fp32)
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), _Reader(model, windows), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return _with_metadata(out.read_bytes(), fp32, {"precision": "int8", "calibration": {
            "windows": int(len(windows)), "source": source}})


class _Reader:
    """Feeds ONNX Runtime's calibrator the windows as the model's input, 16 at a time."""

    def __init__(self, model, windows: np.ndarray):
        self.model, self.batches = model, iter(np.array_split(windows, max(1, len(windows) // 16)))

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {INPUT: self.model.inputs(batch)}

    def rewind(self):  # pragma: no cover - the calibrator of some ONNX Runtime releases asks for it
        pass


def _with_metadata(int8: bytes, fp32: bytes, extra: dict) -> bytes:
    """The int8 graph with the float32 file's metadata, ``extra`` added to its ``aerialseg`` entry."""
    import onnx

    source, graph = onnx.load_from_string(fp32), onnx.load_from_string(int8)
    del graph.metadata_props[:]
    for prop in source.metadata_props:
        value = json.dumps({**json.loads(prop.value), **extra}) if prop.key == METADATA_KEY else prop.value
        entry = graph.metadata_props.add()
        entry.key, entry.value = prop.key, value
    graph.producer_name, graph.producer_version = source.producer_name, source.producer_version
    graph.doc_string = source.doc_string + " (int8)"
    onnx.checker.check_model(graph)
    return graph.SerializeToString()
