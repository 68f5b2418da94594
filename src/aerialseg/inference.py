"""A trained model ready to map whole images: how it predicts (``predict.*``, read once into
`PredictOptions`), its backend (`backends`), the class ids of an image, block by block, from
the right mosaic, and a map's files written from them (`write_map`).

PyTorch predicts through the device mosaic (`mosaic`: on a GPU everything stays there); ONNX
Runtime through the host mosaic (`host_mosaic`, NumPy), which needs no torch. Both read the
same windows and blend them in the same order; both blend logits (ONNX Runtime runs the
exported graph without its softmax, `backends.OnnxModel.load_logits`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from . import backends, host_mosaic
from .calibration import CODE_SCALE
from .class_ids import IGNORE_INDEX
from .config import layout, prediction_resources
from .errors import InputError
from .host_mosaic import Block
from .io import write
from .io.read import Image, georeference, open_image
from .io.spec import DataSpec

log = logging.getLogger("aerialseg")


# --- what a job reads of its settings, once ---------------------------------------------------


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
class MapOptions:
    """What a map takes of ``predict.*`` besides how to predict: the confidence under which the
    pixels of its masked copy are nodata (``threshold``, ``predict.confidence_threshold``;
    None: no masked map) and the smallest region its polygons keep (``min_area``, px)."""

    threshold: float | None
    min_area: int

    @classmethod
    def from_settings(cls, settings: dict) -> "MapOptions":
        """A map job's settings (``predict`` holds both keys)."""
        predict = settings["predict"]
        return cls(predict["confidence_threshold"], predict["min_area"])


@dataclass(frozen=True)
class ImageReading:
    """How the console command has a model read images instead of as it was trained to:
    ``bands`` (counting from 0; as many as the model reads), ``nodata`` (replacing the files'
    own nodata value) and windows of ``window`` px (instead of its patch size). None keeps the
    model's."""

    bands: tuple[int, ...] | None = None
    nodata: float | None = None
    window: int | None = None


# --- a model's classes --------------------------------------------------------------------------


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


def map_legend(checkpoint: dict) -> write.MapLegend:
    """What the values of a model's maps mean: its classes' colours and names, keyed by the
    values the maps hold (`map_codes`)."""
    colors, names = classes(checkpoint)
    return write.MapLegend(colors, names, *map_codes(checkpoint))


# --- the model ----------------------------------------------------------------------------------


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

    @property
    def legend(self) -> write.MapLegend:
        """What the values of its maps mean (`map_legend`)."""
        return map_legend(self.checkpoint)

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

    def iter_blocks(self, image: Image) -> Iterator[Block]:
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
        """The scores (B, K, s, s) float32 on the host of uint8 windows (B, s, s, C): logits, or
        log-probabilities for an ONNX graph that does not end in a softmax it can drop; both
        give the same softmax at any temperature."""
        if self.backend == "onnxruntime":
            return np.asarray(self.predictor(windows), dtype=np.float32)
        import torch

        with torch.no_grad():
            batch = torch.from_numpy(np.ascontiguousarray(windows)).to(self.device).permute(0, 3, 1, 2)
            return self.predictor(batch).float().cpu().numpy()

    def map_writer(self, path, image: Image, where) -> write.MapWriter:
        """A GeoTIFF map of the image, in the dataset's class codes (`io.write.map_codes`)."""
        return write.MapWriter(path, image.height, image.width, where, self.legend)

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


# --- loading ------------------------------------------------------------------------------------


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


# --- a map's files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapFiles:
    """The files of one unlabelled image a map job reads and writes: its map (``{name}.tif`` or
    ``.png``), its coloured preview, the QGIS style of a GeoTIFF map (``style``), with
    ``predict.vectors`` its polygons (``vectors``), its confidence raster
    ``{name}_confidence.tif`` (``confidence``) and its QGIS style ``{name}_confidence.qml``
    (``confidence_style``), with ``predict.probabilities`` its per-class
    probabilities ``{name}_probabilities.tif``, with ``predict.confidence_threshold`` its
    masked map ``{name}_masked.tif|png`` (``masked``), and the files of an earlier map of the
    same name that this one replaces and must not leave behind (``stale``: removed once the
    map is written; the console command's ``--overwrite``). A file left None is not written."""

    image: str | Path
    map: str | Path
    preview: str | Path
    vectors: str | Path | None = None
    style: str | Path | None = None
    confidence: str | Path | None = None
    confidence_style: str | Path | None = None
    probabilities: str | Path | None = None
    masked: str | Path | None = None
    stale: tuple[Path, ...] = ()
    calibration: str | Path | None = None  # read: the run's calibration.csv, for the confidence's temperature


def block_ids(block: Block) -> np.ndarray:
    return block.ids


def block_confidence(block: Block) -> np.ndarray:
    return block.confidence


def _probabilities(block: Block) -> np.ndarray:
    return block.probabilities()


class Rasters:
    """The rasters a job writes block by block (maps, confidence, probabilities), each with
    the part of a block it takes, used as ``with Rasters() as rasters:``: all are finished
    together (`fill`), or all aborted on any error inside the ``with`` (a writer that cannot
    be made, a bad image, a killed job, a full disk, one that cannot be finished), so that no
    half-written file is left."""

    def __init__(self):
        self.writers: list[tuple[object, Callable[[Block], np.ndarray]]] = []

    def __enter__(self) -> Rasters:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is not None:  # aborting a finished raster is harmless: only temporary files go
            self.abort()

    def add(self, writer, part: Callable[[Block], np.ndarray]) -> None:
        self.writers.append((writer, part))

    def write(self, block: Block) -> None:
        for writer, part in self.writers:
            writer.write(block.top, part(block))

    def fill(self, blocks: Iterable[Block], *also: Callable[[Block], object]) -> None:
        """Write every block into every raster, and hand it to each of ``also`` (a preview, an
        array held whole); then finish them all (on an error, the ``with`` aborts them all)."""
        for block in blocks:
            self.write(block)
            for take in also:
                take(block)
        for writer, _ in self.writers:
            writer.close()

    def abort(self) -> None:
        for writer, _ in self.writers:
            writer.abort()


def write_map(model: LoadedModel, files: MapFiles, options: MapOptions) -> None:
    """One image's map and every file beside it that ``files`` names: the rasters, with the
    confidence at the temperature of ``files.calibration`` (`map_image`), then the QGIS styles
    of the map and its confidence, and the map's polygons (`io.write.write_map_polygons`)."""
    model = with_temperature(model, files.calibration)
    map_image(model, files, options.threshold)
    write.write_styles(model.legend, files.style, files.confidence_style)
    if files.vectors is not None:
        write.write_map_polygons(files.map, files.vectors, model.legend, options.min_area, files.confidence)


def map_image(model: LoadedModel, files: MapFiles, threshold: float | None = None) -> None:
    """One map, block by block: a GeoTIFF for a georeferenced image, never held whole; a PNG
    for any other, or for a georeferenced one where ``files.map`` is a PNG (the console
    command's ``--format png``: held whole, without its georeference). Where ``files.masked``
    is named, pixels whose written confidence (code / 255) is under ``threshold`` are nodata
    in that copy of the map."""
    where = georeference(files.image)
    if Path(files.map).suffix == layout.GEOTIFF and where is None:
        raise InputError(f"{files.image}: not georeferenced, so its map is a PNG, not {files.map}")
    where = where if Path(files.map).suffix == layout.GEOTIFF else None
    with model.open(files.image) as image, Rasters() as rasters:
        preview = write.Preview(image.height, image.width, model.legend.colors)
        wholes = _map_rasters(rasters, model, files, image, where, threshold)
        rasters.fill(model.iter_blocks(image), lambda block: preview.write(block.top, block.ids),
                     *(into_rows(whole, part) for whole, part in wholes))
    for (whole, _), path in zip(wholes, (files.map, files.masked)):
        write.write_png(path, whole)
    preview.save(files.preview)
    log.info("%s: mapped to %s (%s), preview %s", files.image, files.map,
             crs_name(files.image, where) if where else "no georeference", files.preview)


def into_rows(whole: np.ndarray, part: Callable[[Block], np.ndarray]) -> Callable[[Block], None]:
    """What puts a block's part (its ids, say) in its rows of an array held whole."""
    def take(block: Block) -> None:
        whole[block.top : block.top + len(block.ids)] = part(block)
    return take


def _map_rasters(rasters: Rasters, model: LoadedModel, files: MapFiles, image, where, threshold: float | None):
    """The rasters of a map written block by block, added to ``rasters``; the PNG maps (of an
    image without georeference) gathered whole: (array, the part of a block it takes), the map's first."""
    wholes = []
    parts = [(files.map, block_ids)] + ([(files.masked, _masked_ids(threshold))] if files.masked is not None else [])
    for path, part in parts:
        if where is not None:
            rasters.add(model.map_writer(path, image, where), part)
        else:
            wholes.append((np.empty(image.shape, dtype=np.uint8), part))
    if files.confidence is not None:
        rasters.add(model.confidence_writer(files.confidence, image, where), block_confidence)
    if files.probabilities is not None:
        rasters.add(model.probabilities_writer(files.probabilities, image, where), _probabilities)
    return wholes


def _masked_ids(threshold: float) -> Callable[[Block], np.ndarray]:
    """The part of a block a masked map takes: its ids, nodata where the confidence written
    (code / 255) is under ``threshold``."""
    kept = np.arange(256) / CODE_SCALE >= threshold  # per code; float64, as the threshold is written

    def masked(block: Block) -> np.ndarray:
        return np.where(kept[block.confidence], block.ids, np.uint8(IGNORE_INDEX))

    return masked


def crs_name(image_path, where) -> str:
    """The CRS of a georeferenced image for the log; one placed only by a world file, without
    a ``.prj`` or ``.aux.xml`` to give its CRS, gets a warning: its map has none either."""
    if where.crs is not None:
        return str(where.crs)
    log.warning("%s: placed by its world file %s, but its CRS is unknown (no .prj or .aux.xml beside it): the map "
                "has the world file's transform and no CRS; set it in QGIS or GDAL", image_path, where.world_file)
    return "CRS unknown"
