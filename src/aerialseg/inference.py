"""A trained model ready to predict whole images: its backend (`backends`), its options
(``predict.*``), and the class ids of an image, block by block, from the right mosaic.

PyTorch predicts through the device mosaic (`mosaic`: on a GPU everything stays there); ONNX
Runtime through the host mosaic (`host_mosaic`, NumPy), which needs no torch. Both read the
same windows and blend them in the same order; ONNX Runtime blends log-probabilities, torch
logits, whose argmax is the same class.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import backends, host_mosaic
from .config import prediction_resources
from .errors import InputError
from .io import write
from .io.read import Image, open_image
from .io.spec import DataSpec

log = logging.getLogger("aerialseg")


@dataclass(frozen=True)
class PredictOptions:
    """How a job predicts, read once from ``predict.*`` (`from_settings`): where and how the
    model runs (``runtime``: backend, device, threads, precision, ...), and its mosaic's
    windows every ``stride`` px (None: half the window), their ``blend``, flip ``tta`` and
    windows per batch (``batch_size``; None: the device's default). The windows are the
    model's patch size (`load_model`)."""

    runtime: backends.Runtime
    stride: int | None
    blend: str
    tta: bool
    batch_size: int | None

    @classmethod
    def from_settings(cls, settings: dict, threads: int | None = None) -> "PredictOptions":
        """``settings`` holds ``predict`` and ``train`` (a null ``predict.device`` or
        ``threads`` is train's, `config.prediction_resources`); ``threads``, a job's own (as
        Snakemake gives it), replaces the configured."""
        device, configured_threads = prediction_resources(settings)
        p = settings["predict"]
        runtime = backends.Runtime(p["backend"], device, threads or configured_threads, p["precision"],
                                   p["memory_format"], p["fold_batchnorm"])
        return cls(runtime, p["stride"], p["blend"], p["tta"], p["batch_size"])


@dataclass(frozen=True)
class MosaicOptions:
    """How a loaded model covers an image (`load_model`): windows of ``size`` every ``stride``
    px, ``blend``, flip ``tta``, windows per batch (None: the device's default)."""

    size: int
    stride: int
    blend: str
    tta: bool
    batch_size: int | None


@dataclass(frozen=True)
class ImageReading:
    """How the console command has a model read images instead of as it was trained to:
    ``bands`` (counting from 0; as many as the model reads), ``nodata`` (replacing the files'
    own nodata value) and windows of ``window`` px (instead of its patch size). None keeps the
    model's."""

    bands: tuple[int, ...] | None = None
    nodata: float | None = None
    window: int | None = None


def classes(checkpoint: dict) -> tuple[list[tuple[int, int, int]], list[str]]:
    """The colours and names of a model's classes, in id order."""
    found = checkpoint["data"]["classes"]
    return [tuple(c["color"]) for c in found], [c["name"] for c in found]


def map_codes(checkpoint: dict) -> tuple[list[int] | None, int]:
    """What the GeoTIFF maps of a model hold (`io.write.map_codes`): the dataset's own class
    values for index labels, else the class ids; and the nodata value."""
    data = checkpoint["data"]
    codes = [c.get("value") for c in data["classes"]]
    return write.map_codes(data["label_format"], None if None in codes else codes, data["ignore_values"])


@dataclass
class LoadedModel:
    """A prediction job's model on its backend, with the checkpoint (or the ONNX file's
    metadata, which holds the same) that describes it."""

    checkpoint: dict
    options: MosaicOptions
    predictor: Callable
    n_classes: int
    device: object  # a torch.device, or "cpu" for ONNX Runtime
    backend: str = "torch"
    description: str = ""  # how it runs, for the job's log
    temperature: float = 1.0  # of the confidence and probabilities (`with_temperature`); never of the ids
    reading: ImageReading = ImageReading()  # how the console command has it read images instead

    def open(self, image_path) -> Image:
        """An image open for reading as the model was trained to read it (bands, value range,
        no-data), or with the bands and no-data value of its ``reading``."""
        spec = DataSpec.from_config({"data": self.checkpoint["data"]})
        bands, nodata = self.reading.bands, self.reading.nodata
        spec = replace(spec, bands=spec.bands if bands is None else bands, nodata=spec.nodata if nodata is None else nodata)
        return open_image(image_path, spec, spec.nodata)

    def iter_ids(self, image: Image) -> Iterator[tuple[int, np.ndarray]]:
        """The image's class ids, block by block (no confidence), logging the time when done."""
        yield from self._timed(image, "iter_ids")

    def iter_blocks(self, image: Image) -> Iterator[host_mosaic.Block]:
        """The image's class ids and their confidence, block by block (`host_mosaic.Block`), the
        confidence and probabilities at the model's ``temperature``, logging the time when done."""
        yield from self._timed(image, "iter_blocks", temperature=self.temperature)

    def _timed(self, image: Image, function: str, **extra) -> Iterator:
        """``function`` (iter_ids or iter_blocks, with ``extra`` arguments) of the back-end's
        mosaic on the image."""
        start = time.perf_counter()
        o = self.options
        tiling = host_mosaic.Tiling(o.size, o.stride, batch_size=o.batch_size, blend=o.blend)
        if self.backend == "onnxruntime":
            predict = host_mosaic.with_flips(self.predictor) if o.tta else self.predictor
            yield from getattr(host_mosaic, function)(predict, image, self.n_classes, tiling, **extra)
        else:
            from . import mosaic

            predict = mosaic.with_flips(self.predictor) if o.tta else self.predictor
            yield from getattr(mosaic, function)(predict, image, self.n_classes, tiling, device=self.device, **extra)
        log.info("%s: predicted%s in %.1f s", image.path, " with flip TTA" if o.tta else "", time.perf_counter() - start)

    def window_scores(self, windows: np.ndarray) -> np.ndarray:
        """The scores (B, K, s, s) float32 on the host of uint8 windows (B, s, s, C): logits
        (torch) or log-probabilities (ONNX Runtime), which give the same softmax at any
        temperature."""
        if self.backend == "onnxruntime":
            return np.asarray(self.predictor(windows), dtype=np.float32)
        import torch

        with torch.no_grad():
            batch = torch.from_numpy(np.ascontiguousarray(windows)).to(self.device).permute(0, 3, 1, 2)
            return self.predictor(batch).float().cpu().numpy()

    def map_writer(self, path, image: Image, where) -> write.MapWriter:
        """A GeoTIFF map of the image, in the dataset's class codes (`io.write.map_codes`)."""
        colors, names = classes(self.checkpoint)
        values, nodata = map_codes(self.checkpoint)
        return write.MapWriter(path, image.height, image.width, where, write.MapLegend(colors, names, values, nodata))

    def confidence_writer(self, path, image: Image, where) -> write.ScoreWriter:
        """The confidence raster of a map (`io.write.ScoreWriter`, one band)."""
        return write.ScoreWriter(path, image.height, image.width, where, ["confidence"])

    def probabilities_writer(self, path, image: Image, where) -> write.ScoreWriter:
        """The per-class probabilities of a map, one band per class named after it."""
        return write.ScoreWriter(path, image.height, image.width, where, classes(self.checkpoint)[1])


def with_temperature(model: LoadedModel, calibration) -> LoadedModel:
    """The model with the temperature its run fitted on its validation patches (a calibration.csv
    the calibrate rule wrote, `jobs.calibration`), for its confidence and probabilities; the
    model as it is where none is given."""
    if calibration is None:
        return model
    import pandas as pd

    temperature = float(pd.read_csv(calibration)["temperature"].iloc[0])
    if not temperature > 0:
        raise InputError(f"{calibration}: temperature {temperature} is not positive")
    log.info("confidence at temperature %.4f (fitted on the run's validation patches, %s)", temperature, calibration)
    return replace(model, temperature=temperature)


def load_model(options: PredictOptions, model_path, n_images: int = 1, onnx_cache: Path | None = None,
               reading: ImageReading = ImageReading()) -> LoadedModel:
    """The prologue of a prediction job: the model on its backend (`backends.load`), its
    mosaic's windows of its patch size (or ``reading.window``), reading images as ``reading``
    says. ``onnx_cache``: where graphs exported from a model.pt for ONNX Runtime are kept
    (`backends.onnx_bytes`)."""
    exported = {"stride": options.stride, "blend": options.blend}  # what an ONNX file exported for the job records
    loaded = backends.load(options.runtime, model_path, exported, onnx_cache)
    size = reading.window or loaded.record["patch_size"]
    mosaic = MosaicOptions(size, options.stride or max(size // 2, 1), options.blend, options.tta, options.batch_size)
    model = LoadedModel(loaded.record, mosaic, loaded.predictor, loaded.n_classes, loaded.device, loaded.backend,
                        loaded.description, reading=reading)
    log.info("case %s: predicting %d image(s) with %s", model.checkpoint["case"], n_images, model.description)
    return model
