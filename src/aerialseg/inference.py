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
class MosaicOptions:
    """How a job predicts whole images, decided once from ``predict.*`` (and the case's patch
    size): windows of ``size`` every ``stride`` px, ``blend``, flip ``tta``, windows per batch
    (None: the device's default). How the model runs is the backend's (`backends.Runtime`)."""

    size: int
    stride: int
    blend: str = "mean"
    tta: bool = False
    batch_size: int | None = None

    @classmethod
    def from_settings(cls, settings: dict, size: int) -> "MosaicOptions":
        """``settings`` holds ``predict`` (stride null: half the window; ``window``, which only
        the console command sets, replaces the patch size)."""
        predict = settings["predict"]
        size = predict.get("window") or size
        return cls(size=size, stride=predict["stride"] or max(size // 2, 1), blend=predict["blend"], tta=predict["tta"],
                   batch_size=predict["batch_size"])


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

    def open(self, image_path) -> Image:
        """An image open for reading as the model was trained to read it (bands, value range,
        no-data)."""
        spec = DataSpec.from_config({"data": self.checkpoint["data"]})
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


def load_model(settings: dict, model_path, threads: int | None = None, n_images: int = 1,
               onnx_cache: Path | None = None) -> LoadedModel:
    """The prologue of a prediction job: the model on its backend (``predict.backend``,
    `backends.load`) and the mosaic's options (the window is the case's patch size).
    ``onnx_cache``: where graphs exported from a model.pt for ONNX Runtime are kept
    (`backends.onnx_bytes`)."""
    device_name, configured_threads = prediction_resources(settings)
    predict = settings["predict"]
    runtime = backends.Runtime(predict["backend"], device_name, threads or configured_threads, predict["precision"],
                               predict["memory_format"], predict["fold_batchnorm"])
    loaded = backends.load(runtime, model_path, predict, onnx_cache)
    options = MosaicOptions.from_settings(settings, loaded.record["patch_size"])
    model = LoadedModel(loaded.record, options, loaded.predictor, loaded.n_classes, loaded.device, loaded.backend,
                        loaded.description)
    log.info("case %s: predicting %d image(s) with %s", model.checkpoint["case"], n_images, model.description)
    return model
