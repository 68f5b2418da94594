"""The prediction jobs: a run's tiles predicted and written as PNG (and GeoTIFF), maps of
unlabelled images, and the case that maps them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .. import config as cfg
from ..config import Run, layout
from ..calibration import CODE_SCALE
from ..class_ids import IGNORE_INDEX
from ..errors import InputError
from ..host_mosaic import Block
from ..inference import LoadedModel, classes, load_model, map_codes
from ..io.read import georeference, read_by_gdal
from ..io.write import Preview, colorize, write_png, write_polygons
from ..files import write_yaml
from .preflight import check_map_input

log = logging.getLogger("aerialseg")


@dataclass(frozen=True)
class TileFiles:
    """The files of one image a predict job reads and writes, as its rule names them:
    ``prediction.png`` (class ids) and ``prediction_color.png``; for a georeferenced image
    ``prediction.tif`` (``geotiff``) and with ``predict.vectors`` its polygons (``vectors``);
    its confidence raster ``prediction_confidence.tif`` (``confidence``; None: not written)."""

    image: str | Path
    ids: str | Path
    color: str | Path
    geotiff: str | Path | None = None
    vectors: str | Path | None = None
    confidence: str | Path | None = None


def predict_images(settings: dict, model_path, tiles: Sequence[TileFiles], threads: int | None = None,
                   record: tuple[Run, str | Path] | None = None) -> None:
    """Predict whole images with one case's model, each as a mosaic of overlapping windows;
    one job predicts them all, so the model and the device are set up once. Each image gets
    its class ids and their colours as PNG; a georeferenced one also a Cloud-Optimised GeoTIFF
    written band by band, and polygons where the rule names a file for them (`TileFiles`).
    What the model reads (bands, value range, no-data, classes, patch size) comes from the
    checkpoint; how to predict from ``predict.*`` (`inference.MosaicOptions`). ``record`` is
    the run and where to write the settings that made its predictions."""
    model = load_model(settings, model_path, threads, len(tiles))
    for files in tiles:
        _predict_tile(model, files)
        if files.vectors is not None:
            _write_vectors(settings, model.checkpoint, files.geotiff, files.vectors, files.confidence)
    if record is not None:
        run, path = record
        shaping = cfg.without_run_options(settings, "predict")
        write_yaml({"case": run.case.name, "repeat": run.repeat, "model_settings": model.checkpoint.get("fingerprint"),
                    "fingerprint": cfg.fingerprint(shaping), "settings": shaping}, path,
                   "What made this run's predictions from its model.pt (aerialseg).")
    log.info("predicted %d image(s) in all", len(tiles))


def _predict_tile(model: LoadedModel, files: TileFiles) -> None:
    """One image's class ids as PNG (and colours), and as a GeoTIFF where the rule names one;
    its confidence raster where the rule names one."""
    colors, _ = classes(model.checkpoint)
    where = georeference(files.image)
    if (files.geotiff is not None) != (where is not None):
        raise InputError(f"{files.image}: {'' if where else 'not '}georeferenced, but its GeoTIFF prediction was "
                         f"{'not ' if files.geotiff is None else ''}asked for")
    with model.open(files.image) as image:
        ids = np.empty(image.shape, dtype=np.uint8)
        rasters = _Rasters()
        try:
            if where is not None:
                rasters.add(model.map_writer(files.geotiff, image, where), _ids)
            if files.confidence is not None:
                rasters.add(model.confidence_writer(files.confidence, image, where), _confidence)
            for block in model.iter_blocks(image):
                ids[block.top : block.top + len(block.ids)] = block.ids
                rasters.write(block)
            write_png(files.ids, ids)
            write_png(files.color, colorize(ids, colors))
        except BaseException:  # a killed job, a full disk: no half-written GeoTIFF is left behind
            rasters.abort()
            raise
    rasters.close()
    if where is not None:
        log.info("%s: georeferenced (%s); wrote %s", files.image, where.crs, files.geotiff)
    elif read_by_gdal(files.image):
        log.info("%s: a raster without a CRS or geotransform; the prediction is written as PNG only", files.image)


def _ids(block: Block) -> np.ndarray:
    return block.ids


def _confidence(block: Block) -> np.ndarray:
    return block.confidence


def _probabilities(block: Block) -> np.ndarray:
    return block.probabilities()


class _Rasters:
    """The rasters a job writes block by block (maps, confidence, probabilities), each with
    the part of a block it takes; all are finished together, or all aborted (no half-written
    file is left)."""

    def __init__(self):
        self.writers: list[tuple[object, Callable[[Block], np.ndarray]]] = []

    def add(self, writer, part: Callable[[Block], np.ndarray]) -> None:
        self.writers.append((writer, part))

    def write(self, block: Block) -> None:
        for writer, part in self.writers:
            writer.write(block.top, part(block))

    def abort(self) -> None:
        for writer, _ in self.writers:
            writer.abort()

    def close(self) -> None:
        try:
            for number, (writer, _) in enumerate(self.writers):
                writer.close()
        except BaseException:
            for writer, _ in self.writers[number + 1 :]:
                writer.abort()
            raise


def polygons(settings: dict, map_path, out, confidence_path=None) -> None:
    """The polygons of a georeferenced map (rule polygons), named by the classes of
    ``settings["data"]`` and keyed by the values its maps hold (`map_codes`), with the mean
    confidence of each where the map's confidence raster is given."""
    _write_vectors(settings, {"data": settings["data"]}, map_path, out, confidence_path)


def _write_vectors(settings: dict, checkpoint: dict, map_path, vectors_out, confidence_path=None) -> None:
    """The polygons of a map, named by class and keyed by the values the map holds."""
    _, names = classes(checkpoint)
    values, _ = map_codes(checkpoint)
    min_area = settings["predict"]["min_area"]
    count = write_polygons(map_path, vectors_out, names, min_area, values=values, confidence_path=confidence_path)
    log.info("%s: %d polygons (regions under %d px merged) in %s", map_path, count, min_area, vectors_out)


def map_files(image_path, out_dir) -> tuple[Path, Path]:
    """Where the map of an image goes in ``out_dir`` (`layout.map_files`): ``{name}.tif`` (a
    Cloud-Optimised GeoTIFF in the image's CRS and transform) for a georeferenced image, else
    ``{name}.png`` (class ids); and its coloured preview ``{name}_preview.png``. ``name`` is
    the image file's stem. With ``predict.vectors`` a georeferenced map also gets
    ``{name}.gpkg`` (`layout.vectors_path`)."""
    suffix = layout.GEOTIFF if georeference(image_path) is not None else layout.PNG
    return layout.map_files(out_dir, Path(image_path).stem, suffix)


@dataclass(frozen=True)
class MapFiles:
    """The files of one unlabelled image a map job reads and writes: its map (``{name}.tif`` or
    ``.png``), its coloured preview, with ``predict.vectors`` its polygons (``vectors``), its
    confidence raster ``{name}_confidence.tif`` (``confidence``), with ``predict.probabilities``
    its per-class probabilities ``{name}_probabilities.tif`` and with
    ``predict.confidence_threshold`` its masked map ``{name}_masked.tif|png`` (``masked``). A
    file left None is not written (`layout.map_companions` names them all)."""

    image: str | Path
    map: str | Path
    preview: str | Path
    vectors: str | Path | None = None
    confidence: str | Path | None = None
    probabilities: str | Path | None = None
    masked: str | Path | None = None


def map_images(settings: dict, model_path, maps: Sequence[MapFiles], threads: int | None = None,
               onnx_cache: Path | None = None) -> None:
    """Map unlabelled images with a trained model: each map (class ids, as `map_files` names
    it), a coloured preview, its confidence and the other files the rule (or the command)
    names (`MapFiles`). A georeferenced image is read and its rasters written band by band
    (Cloud-Optimised GeoTIFFs), so memory does not grow with the image; a PNG or JPEG, which
    is read whole, gets a PNG map. The model's checkpoint says what it reads; the images must
    have the band count of its training images."""
    model = load_model(settings, model_path, threads, len(maps), onnx_cache)
    threshold = settings["predict"].get("confidence_threshold")
    for files in maps:
        check_map_input(model.checkpoint, files.image, model_path)
        if (files.masked is None) != (threshold is None):
            raise InputError(f"{files.image}: a masked map needs predict.confidence_threshold and the threshold a "
                             "file for the masked map")
        map_image(model, files, threshold)
        if files.vectors is not None:
            _write_vectors(settings, model.checkpoint, files.map, files.vectors, files.confidence)


def map_image(model: LoadedModel, files: MapFiles, threshold: float | None = None) -> None:
    """One map (`map_images`), block by block: a GeoTIFF for a georeferenced image, never held
    whole; a PNG for any other. Where ``files.masked`` is named, pixels whose written
    confidence (code / 255) is under ``threshold`` are nodata in that copy of the map."""
    colors, _ = classes(model.checkpoint)
    where = georeference(files.image)
    if (Path(files.map).suffix == layout.GEOTIFF) != (where is not None):
        raise InputError(f"{files.image}: {'' if where else 'not '}georeferenced, so its map is a "
                         f"{'GeoTIFF' if where else 'PNG'}, not {files.map}")
    with model.open(files.image) as image:
        preview = Preview(image.height, image.width, colors)
        rasters, wholes = _map_rasters(model, files, image, where, threshold)
        try:
            for block in model.iter_blocks(image):
                preview.write(block.top, block.ids)
                rasters.write(block)
                for whole, part in wholes:
                    whole[block.top : block.top + len(block.ids)] = part(block)
        except BaseException:
            rasters.abort()
            raise
    rasters.close()
    for (whole, _), path in zip(wholes, (files.map, files.masked)):
        write_png(path, whole)
    preview.save(files.preview)
    log.info("%s: mapped to %s (%s), preview %s", files.image, files.map, where.crs if where else "no georeference",
             files.preview)


def _map_rasters(model: LoadedModel, files: MapFiles, image, where, threshold: float | None):
    """The rasters of a map written block by block, and the PNG maps (of an image without
    georeference) gathered whole: (array, the part of a block it takes), the map's first."""
    rasters, wholes = _Rasters(), []
    parts = [(files.map, _ids)] + ([(files.masked, _masked_ids(threshold))] if files.masked is not None else [])
    for path, part in parts:
        if where is not None:
            rasters.add(model.map_writer(path, image, where), part)
        else:
            wholes.append((np.empty(image.shape, dtype=np.uint8), part))
    if files.confidence is not None:
        rasters.add(model.confidence_writer(files.confidence, image, where), _confidence)
    if files.probabilities is not None:
        rasters.add(model.probabilities_writer(files.probabilities, image, where), _probabilities)
    return rasters, wholes


def _masked_ids(threshold: float) -> Callable[[Block], np.ndarray]:
    """The part of a block a masked map takes: its ids, nodata where the confidence written
    (code / 255) is under ``threshold``."""
    kept = np.arange(256) / CODE_SCALE >= threshold  # per code; float64, as the threshold is written

    def masked(block: Block) -> np.ndarray:
        return np.where(kept[block.confidence], block.ids, np.uint8(IGNORE_INDEX))

    return masked


def best_case(training_csv, out_yaml) -> None:
    """The case with the best validation mIoU in the training table (the mean over repeats;
    ties go to the first, `metrics.best_index`): the one that maps new imagery by default."""
    from ..metrics import best_index

    training = pd.read_csv(training_csv)
    row = training.iloc[best_index(training["val_miou"].to_numpy())]
    write_yaml({"case": str(row["case"]), "val_miou": float(row["val_miou"])}, out_yaml,
               f"The case with the best validation mIoU ({layout.SUMMARY}/training.csv): it maps data.predict.")
    log.info("best case by validation mIoU: %s (%.4f)", row["case"], row["val_miou"])
