"""The prediction jobs: a run's tiles predicted and written as PNG (and GeoTIFF), maps of
unlabelled images, and the case that maps them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import config as cfg
from ..config import Run, layout
from ..config.layout import geotiff_path, vectors_path
from ..errors import InputError
from ..inference import LoadedModel, classes, load_model, map_codes
from ..io.read import georeference, read_by_gdal
from ..io.write import Preview, colorize, write_png, write_polygons
from ..files import write_yaml
from .preflight import check_map_input

log = logging.getLogger("aerialseg")


def predict_images(settings: dict, model_path, image_paths: Sequence, ids_outs: Sequence, color_outs: Sequence,
                   threads: int | None = None, record: tuple[Run, str | Path] | None = None) -> None:
    """Predict whole images with one case's model, each as a mosaic of overlapping windows;
    one job predicts them all, so the model and the device are set up once. Each image gets
    its class ids and their colours as PNG; a georeferenced one also ``prediction.tif``, a
    Cloud-Optimised GeoTIFF written band by band (`geotiff_path`), and with
    ``predict.vectors`` its polygons, ``prediction.gpkg``. What the model reads (bands, value
    range, no-data, classes, patch size) comes from the checkpoint; how to predict from
    ``predict.*`` (`mosaic.MosaicOptions`). ``record`` is the run and where to write the
    settings that made its predictions (``prediction_settings.yaml``)."""
    model = load_model(settings, model_path, threads, len(image_paths))
    colors, _ = classes(model.checkpoint)
    for image_path, ids_out, color_out in zip(image_paths, ids_outs, color_outs, strict=True):
        with model.open(image_path) as image:
            ids = np.empty(image.shape, dtype=np.uint8)
            where = georeference(image_path)
            geotiff = model.map_writer(geotiff_path(ids_out), image, where) if where is not None else None
            try:
                for top, block in model.iter_ids(image):
                    ids[top : top + len(block)] = block
                    if geotiff is not None:
                        geotiff.write(top, block)
                write_png(ids_out, ids)
                write_png(color_out, colorize(ids, colors))
            except BaseException:  # a killed job, a full disk: no half-written GeoTIFF is left behind
                if geotiff is not None:
                    geotiff.abort()
                raise
        if geotiff is not None:
            geotiff.close()
            log.info("%s: georeferenced (%s); wrote %s", image_path, where.crs, geotiff_path(ids_out))
            _write_vectors(settings, model.checkpoint, geotiff_path(ids_out))
        elif read_by_gdal(image_path):
            log.info("%s: a raster without a CRS or geotransform; the prediction is written as PNG only", image_path)
    if record is not None:
        run, path = record
        shaping = cfg.without_run_options(settings, "predict")
        write_yaml({"case": run.case.name, "repeat": run.repeat, "model_settings": model.checkpoint.get("fingerprint"),
                    "fingerprint": cfg.fingerprint(shaping), "settings": shaping}, path,
                   "What made this run's predictions from its model.pt (aerialseg).")
    log.info("predicted %d image(s) in all", len(image_paths))


def _write_vectors(settings: dict, checkpoint: dict, map_path) -> None:
    """The polygons of a map, named by class and keyed by the values the map holds."""
    if not settings["predict"].get("vectors"):
        return
    _, names = classes(checkpoint)
    values, _ = map_codes(checkpoint)
    count = write_polygons(map_path, vectors_path(map_path), names, settings["predict"].get("min_area", 0),
                                   values=values)
    log.info("%s: %d polygons (regions under %d px merged) in %s", map_path, count,
             settings["predict"].get("min_area", 0), vectors_path(map_path))


def map_files(image_path, out_dir) -> tuple[Path, Path]:
    """Where the map of an image goes in ``out_dir`` (`layout.map_files`): ``{name}.tif`` (a
    Cloud-Optimised GeoTIFF in the image's CRS and transform) for a georeferenced image, else
    ``{name}.png`` (class ids); and its coloured preview ``{name}_preview.png``. ``name`` is
    the image file's stem. With ``predict.vectors`` a georeferenced map also gets
    ``{name}.gpkg`` (`layout.vectors_path`)."""
    suffix = layout.GEOTIFF if georeference(image_path) is not None else layout.PNG
    return layout.map_files(out_dir, Path(image_path).stem, suffix)


def map_images(settings: dict, model_path, image_paths: Sequence, map_outs: Sequence, preview_outs: Sequence,
               threads: int | None = None, onnx_cache: Path | None = None) -> None:
    """Map unlabelled images with a trained model: each map (class ids, as `map_files` names
    it) and a coloured preview. A georeferenced image is read and its map written band by band
    (a Cloud-Optimised GeoTIFF), so memory does not grow with the image; a PNG or JPEG, which
    is read whole, gets a PNG map. The model's checkpoint says what it reads; the images must
    have the band count of its training images."""
    model = load_model(settings, model_path, threads, len(image_paths), onnx_cache)
    for image_path, map_out, preview_out in zip(image_paths, map_outs, preview_outs, strict=True):
        check_map_input(model.checkpoint, image_path, model_path)
        map_image(model, image_path, map_out, preview_out)
        if Path(map_out).suffix == layout.GEOTIFF:  # polygons need a CRS
            _write_vectors(settings, model.checkpoint, map_out)


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
