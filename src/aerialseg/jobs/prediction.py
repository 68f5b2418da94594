"""The prediction jobs: a run's tiles predicted and written as PNG (and GeoTIFF), maps of
unlabelled images, and the case that maps them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import config as cfg
from ..config import Run, layout
from ..errors import InputError
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
    ``prediction.tif`` (``geotiff``) and with ``predict.vectors`` its polygons (``vectors``)."""

    image: str | Path
    ids: str | Path
    color: str | Path
    geotiff: str | Path | None = None
    vectors: str | Path | None = None


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
            _write_vectors(settings, model.checkpoint, files.geotiff, files.vectors)
    if record is not None:
        run, path = record
        shaping = cfg.without_run_options(settings, "predict")
        write_yaml({"case": run.case.name, "repeat": run.repeat, "model_settings": model.checkpoint.get("fingerprint"),
                    "fingerprint": cfg.fingerprint(shaping), "settings": shaping}, path,
                   "What made this run's predictions from its model.pt (aerialseg).")
    log.info("predicted %d image(s) in all", len(tiles))


def _predict_tile(model: LoadedModel, files: TileFiles) -> None:
    """One image's class ids as PNG (and colours), and as a GeoTIFF where the rule names one."""
    colors, _ = classes(model.checkpoint)
    where = georeference(files.image)
    if (files.geotiff is not None) != (where is not None):
        raise InputError(f"{files.image}: {'' if where else 'not '}georeferenced, but its GeoTIFF prediction was "
                         f"{'not ' if files.geotiff is None else ''}asked for")
    with model.open(files.image) as image:
        ids = np.empty(image.shape, dtype=np.uint8)
        geotiff = model.map_writer(files.geotiff, image, where) if where is not None else None
        try:
            for top, block in model.iter_ids(image):
                ids[top : top + len(block)] = block
                if geotiff is not None:
                    geotiff.write(top, block)
            write_png(files.ids, ids)
            write_png(files.color, colorize(ids, colors))
        except BaseException:  # a killed job, a full disk: no half-written GeoTIFF is left behind
            if geotiff is not None:
                geotiff.abort()
            raise
    if geotiff is not None:
        geotiff.close()
        log.info("%s: georeferenced (%s); wrote %s", files.image, where.crs, files.geotiff)
    elif read_by_gdal(files.image):
        log.info("%s: a raster without a CRS or geotransform; the prediction is written as PNG only", files.image)


def polygons(settings: dict, map_path, out) -> None:
    """The polygons of a georeferenced map (rule polygons), named by the classes of
    ``settings["data"]`` and keyed by the values its maps hold (`map_codes`)."""
    _write_vectors(settings, {"data": settings["data"]}, map_path, out)


def _write_vectors(settings: dict, checkpoint: dict, map_path, vectors_out) -> None:
    """The polygons of a map, named by class and keyed by the values the map holds."""
    _, names = classes(checkpoint)
    values, _ = map_codes(checkpoint)
    min_area = settings["predict"]["min_area"]
    count = write_polygons(map_path, vectors_out, names, min_area, values=values)
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
    ``.png``), its coloured preview, and with ``predict.vectors`` its polygons (``vectors``)."""

    image: str | Path
    map: str | Path
    preview: str | Path
    vectors: str | Path | None = None


def map_images(settings: dict, model_path, maps: Sequence[MapFiles], threads: int | None = None,
               onnx_cache: Path | None = None) -> None:
    """Map unlabelled images with a trained model: each map (class ids, as `map_files` names
    it), a coloured preview and the polygons the rule (or the command) names. A georeferenced
    image is read and its map written band by band (a Cloud-Optimised GeoTIFF), so memory does
    not grow with the image; a PNG or JPEG, which is read whole, gets a PNG map. The model's
    checkpoint says what it reads; the images must have the band count of its training images."""
    model = load_model(settings, model_path, threads, len(maps), onnx_cache)
    for files in maps:
        check_map_input(model.checkpoint, files.image, model_path)
        map_image(model, files.image, files.map, files.preview)
        if files.vectors is not None:
            _write_vectors(settings, model.checkpoint, files.map, files.vectors)


def map_image(model: LoadedModel, image_path, map_out, preview_out) -> None:
    """One map (`map_images`), block by block: a GeoTIFF for a georeferenced image, never held
    whole; a PNG for any other."""
    colors, _ = classes(model.checkpoint)
    where = georeference(image_path)
    if (Path(map_out).suffix == layout.GEOTIFF) != (where is not None):
        raise InputError(f"{image_path}: {'' if where else 'not '}georeferenced, so its map is a "
                         f"{'GeoTIFF' if where else 'PNG'}, not {map_out}")
    with model.open(image_path) as image:
        preview = Preview(image.height, image.width, colors)
        whole = np.empty(image.shape, dtype=np.uint8) if where is None else None
        writer = model.map_writer(map_out, image, where) if where is not None else None
        try:
            for top, block in model.iter_ids(image):
                preview.write(top, block)
                if writer is not None:
                    writer.write(top, block)
                else:
                    whole[top : top + len(block)] = block
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    if writer is not None:
        writer.close()
    else:
        write_png(map_out, whole)
    preview.save(preview_out)
    log.info("%s: mapped to %s (%s), preview %s", image_path, map_out, where.crs if where else "no georeference",
             preview_out)


def best_case(training_csv, out_yaml) -> None:
    """The case with the best validation mIoU in the training table (the mean over repeats;
    ties go to the first, `metrics.best_index`): the one that maps new imagery by default."""
    from ..metrics import best_index

    training = pd.read_csv(training_csv)
    row = training.iloc[best_index(training["val_miou"].to_numpy())]
    write_yaml({"case": str(row["case"]), "val_miou": float(row["val_miou"])}, out_yaml,
               f"The case with the best validation mIoU ({layout.SUMMARY}/training.csv): it maps data.predict.")
    log.info("best case by validation mIoU: %s (%.4f)", row["case"], row["val_miou"])
