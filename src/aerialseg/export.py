"""A trained model as one ONNX file that maps imagery on its own: in ``aerialseg predict``
(ONNX Runtime, no torch needed) and in QGIS through the Deepness plugin.

The graph takes float32 (batch, bands, height, width), any batch, height and width (the bands
are fixed), already scaled to 0..1 and standardised by the model's mean and std, and gives one
output: per-class probabilities (batch, classes, height, width), the softmax of the logits.
Batch norm is folded into the convolutions by the exporter (eval mode), so the graph holds no
BatchNormalization node.

Its metadata (``metadata_props``, strings) holds two things:

``aerialseg``
    JSON: what mapping an image needs, as a checkpoint holds it (`model.save_checkpoint`):
    ``format``, ``spec`` (the model spec), ``case``, ``repeat``, ``patch_size``, ``data``
    (classes with names, colours and the dataset's codes, label format, bands, value range,
    the images' band count), ``predict`` (the window stride and blend the study used),
    ``fingerprint`` (the settings that made the model), ``source_sha256`` (of the model.pt it
    was exported from), ``aerialseg_version``.
the Deepness keys
    each value JSON, read by the plugin with ``json.loads``: ``model_type`` "Segmentor",
    ``class_names`` {"0": name, ...}, ``tile_size`` (px), ``tiles_overlap`` (percent of the
    tile), ``standardization_mean`` and ``standardization_std`` (per band, for inputs that the
    plugin divides by 255: the value range's rescaling is folded in, see `deepness_standardization`)
    and, when the training imagery was georeferenced, ``resolution`` (cm per pixel).
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path

from . import __version__
from .errors import InputError
from .config import sections
from .files import atomic_path
from .files import sha256

log = logging.getLogger(__name__)

OPSET = 17
"""The ONNX opset of exported graphs: ONNX Runtime 1.14 and newer run it (QGIS installs of the
Deepness plugin bring their own ONNX Runtime, often not the newest)."""

INPUT, OUTPUT = "image", "probabilities"
METADATA_KEY = "aerialseg"
FORMAT = 1
"""The version of the ``aerialseg`` metadata; `read_metadata` refuses others."""

REQUIRED = ("spec", "case", "patch_size", "data", "predict")
"""What `read_metadata` needs in the ``aerialseg`` metadata to map with the file alone."""


def export(model_path: str | Path, out_path: str | Path, predict: dict | None = None,
           record: dict | None = None) -> Path:
    """Write ``model_path`` (a model.pt) as an ONNX file at ``out_path``, atomically, checked
    with ``onnx.checker``. ``predict`` holds the ``stride`` and ``blend`` the model is meant to
    map with, those it gives; else those recorded beside the model, else half the patch and the
    schema's blend;
    ``record`` the run's ``settings.yaml`` (default: the one beside the model, if any)."""
    data = to_bytes(model_path, predict, record)
    with atomic_path(out_path) as tmp:
        Path(tmp).write_bytes(data)
    log.info("%s: exported to %s (ONNX opset %d, %.1f MB)", model_path, out_path, OPSET, len(data) / 1e6)
    return Path(out_path)


def to_bytes(model_path: str | Path, predict: dict | None = None, record: dict | None = None) -> bytes:
    """The ONNX file of a model.pt, in memory (`export`)."""
    import onnx

    from . import model as models

    net, spec, checkpoint = models.load_checkpoint(model_path)
    record = record if record is not None else _beside(model_path, "settings.yaml")
    recorded = _beside(model_path, "prediction_settings.yaml").get("settings", {}).get("predict", {})
    predict = {**sections(predict={})["predict"], **recorded, **(predict or {})}  # the schema's where none is recorded
    meta = project_metadata(checkpoint, spec, predict, record)
    meta["source_sha256"] = sha256(model_path)
    graph = onnx.load_from_string(_trace(net, spec.in_channels))
    for key, value in {METADATA_KEY: json.dumps(meta), **deepness_metadata(meta)}.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    graph.producer_name, graph.producer_version = "aerialseg", __version__
    graph.doc_string = f"aerialseg {meta['case']} (repeat {meta['repeat']}): per-class probabilities"
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def _trace(net, bands: int) -> bytes:
    """The model with a softmax on its logits, traced to ONNX (batch, height and width dynamic)."""
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self, logits: torch.nn.Module):
            super().__init__()
            self.logits = logits

        def forward(self, x):
            return torch.softmax(self.logits(x), dim=1)

    wrapped = Probabilities(net).eval()
    buffer = io.BytesIO()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer warnings
        torch.onnx.export(wrapped, (torch.zeros(2, bands, 64, 64),), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT], output_names=[OUTPUT], do_constant_folding=True,
                          dynamic_axes={INPUT: dynamic, OUTPUT: dynamic})
    return buffer.getvalue()


def _beside(model_path, name: str) -> dict:
    """A YAML record the workflow writes beside a run's model.pt, or {} where there is none."""
    import yaml

    path = Path(model_path).with_name(name)
    try:
        return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}
    except (OSError, yaml.YAMLError):
        return {}


def project_metadata(checkpoint: dict, spec, predict: dict, record: dict) -> dict:
    """The ``aerialseg`` metadata of a checkpoint (see the module's docstring)."""
    size = int(checkpoint["patch_size"])
    return {
        "format": FORMAT, "spec": spec.to_dict(), "case": checkpoint["case"],
        "repeat": checkpoint.get("repeat", record.get("repeat")), "patch_size": size, "data": checkpoint["data"],
        # a stride null or not recorded (no prediction settings beside the model): half the patch
        "predict": {"stride": predict.get("stride") or max(size // 2, 1), "blend": predict["blend"]},
        "fingerprint": checkpoint.get("fingerprint"), "resolution": checkpoint.get("resolution"),
        "aerialseg_version": __version__,
    }


def deepness_metadata(meta: dict) -> dict[str, str]:
    """The keys the QGIS Deepness plugin reads, each a JSON value."""
    size, stride = meta["patch_size"], meta["predict"]["stride"]
    mean, std = deepness_standardization(meta["spec"], meta["data"].get("value_range"))
    keys = {
        "model_type": "Segmentor",
        "class_names": {str(i): c["name"] for i, c in enumerate(meta["data"]["classes"])},
        "tile_size": size,
        "tiles_overlap": round(100 * (size - min(stride, size)) / size),
        "standardization_mean": mean,
        "standardization_std": std,
    }
    if meta.get("resolution"):
        keys["resolution"] = round(float(meta["resolution"]) * 100, 4)  # m per px -> cm per px
    return {key: json.dumps(value) for key, value in keys.items()}


def deepness_standardization(spec: dict, value_range) -> tuple[list[float], list[float]]:
    """Deepness feeds ``raw / 255`` standardised as ``(x - mean) / std``; the model wants
    ``(raw - lo) / (hi - lo)`` standardised by its own mean m and std s, where lo..hi is the
    value range mapped to 0..255 (none: 0..255). Both are the same for ``mean = (lo + m (hi -
    lo)) / 255`` and ``std = s (hi - lo) / 255``."""
    from .model import ModelSpec

    model = ModelSpec(**spec)
    lo, hi = value_range if value_range else (0.0, 255.0)
    scale = (hi - lo) / 255.0
    return ([round((lo + m * (hi - lo)) / 255.0, 9) for m in model.mean],
            [round(s * scale, 9) for s in model.std])


def read_metadata(path: str | Path, props: dict[str, str]) -> dict:
    """The ``aerialseg`` metadata of an ONNX file (``props``: its metadata map), checked: a file
    without it, or without a key that mapping needs, is refused naming what is missing."""
    remedy = "export it with `aerialseg export MODEL.pt -o MODEL.onnx`"
    if METADATA_KEY not in props:
        raise InputError(f"{path}: an ONNX model without aerialseg's metadata (no '{METADATA_KEY}' entry: its classes, "
                         f"bands, value range, normalisation and window size are unknown); {remedy}")
    try:
        meta = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: its '{METADATA_KEY}' metadata is not JSON ({error}); {remedy}") from None
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise InputError(f"{path}: its '{METADATA_KEY}' metadata lacks {', '.join(missing)}; {remedy}")
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: '{METADATA_KEY}' metadata of format {meta.get('format')}, this aerialseg reads "
                         f"format {FORMAT}; {remedy}")
    return meta
