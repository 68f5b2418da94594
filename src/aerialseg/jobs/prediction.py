"""The prediction jobs: a run's tiles predicted and written as PNG (and GeoTIFF), maps of
unlabelled images, and the case that maps them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import config as cfg
from ..config import Run, layout
from ..errors import InputError
from ..inference import (ImageReading, LoadedModel, MapFiles, MapOptions, PredictOptions, Rasters, block_confidence,
                         block_ids, crs_name, into_rows, load_model, map_legend, with_temperature, write_map)
from ..io.read import georeference, read_by_gdal, read_raster
from ..io.write import colorize, write_map_geotiff, write_map_polygons, write_png, write_style, write_styles
from ..files import write_yaml
from .preflight import check_band_count, check_chosen_bands, check_map_bands, check_map_size

log = logging.getLogger("aerialseg")


@dataclass(frozen=True)
class TileFiles:
    """The files of one image a predict job reads and writes, as its rule names them:
    ``prediction.png`` (class ids) and ``prediction_color.png``; its confidence raster
    ``prediction_confidence.tif`` (``confidence``; None: not written; in the image's CRS and
    transform where it has them) and that raster's QGIS style ``prediction_confidence.qml``
    (``confidence_style``). A georeferenced image's ``prediction.tif`` is made from its
    ``prediction.png`` (`tile_geotiff`)."""

    image: str | Path
    ids: str | Path
    color: str | Path
    confidence: str | Path | None = None
    confidence_style: str | Path | None = None


def predict_images(settings: dict, model_path, tiles: Sequence[TileFiles], threads: int | None = None,
                   record: tuple[Run, str | Path] | None = None, calibration=None) -> None:
    """Predict whole images with one case's model, each as a mosaic of overlapping windows;
    one job predicts them all, so the model and the device are set up once. Each image gets
    its class ids and their colours as PNG and its confidence raster (`TileFiles`).
    What the model reads (bands, value range, no-data, classes, patch size) comes from the
    checkpoint; how to predict from ``predict.*`` (`inference.PredictOptions`). ``record`` is
    the run and where to write the settings that made its predictions; ``calibration`` its
    calibration.csv, whose temperature the confidence takes (`inference.with_temperature`)."""
    options = PredictOptions.from_settings(settings, threads)
    model = with_temperature(load_model(options, model_path, len(tiles)), calibration)
    for files in tiles:
        _predict_tile(model, files)
    if record is not None:
        run, path = record
        shaping = cfg.without_run_options(settings, "predict")
        write_yaml({"case": run.case.name, "repeat": run.repeat, "model_settings": model.checkpoint.get("fingerprint"),
                    "fingerprint": cfg.fingerprint(shaping), "settings": shaping}, path,
                   "What made this run's predictions from its model.pt (aerialseg).")
    log.info("predicted %d image(s) in all", len(tiles))


def _predict_tile(model: LoadedModel, files: TileFiles) -> None:
    """One image's class ids as PNG (and colours); its confidence raster where the rule names one."""
    colors = model.legend.colors
    where = georeference(files.image)
    with model.open(files.image) as image, Rasters() as rasters:
        ids = np.empty(image.shape, dtype=np.uint8)
        if files.confidence is not None:
            rasters.add(model.confidence_writer(files.confidence, image, where), block_confidence)
        rasters.fill(model.iter_blocks(image), into_rows(ids, block_ids))
    write_png(files.ids, ids)
    write_png(files.color, colorize(ids, colors))
    write_styles(model.legend, None, files.confidence_style)
    if where is None and read_by_gdal(files.image):
        log.info("%s: a raster without a CRS or geotransform; the prediction is written as PNG only", files.image)


def tile_geotiff(settings: dict, image, ids_png, geotiff, style) -> None:
    """A georeferenced tile's prediction as a Cloud-Optimised GeoTIFF in its image's CRS and
    transform (rule prediction_geotiff), from its class ids ``ids_png``, in the dataset's class
    codes with the classes' colours and names (`inference.map_legend` of ``settings["data"]``),
    and its QGIS style ``style``."""
    where = georeference(image)
    if where is None:
        raise InputError(f"{image}: not georeferenced: its prediction is {ids_png} only, no GeoTIFF")
    legend = map_legend({"data": settings["data"]})
    write_map_geotiff(geotiff, read_raster(ids_png), where, legend)
    write_style(style, legend)
    log.info("%s: georeferenced (%s); wrote %s", image, crs_name(image, where), geotiff)


def polygons(settings: dict, map_path, out, confidence_path=None) -> None:
    """The polygons of a georeferenced map (rule polygons), named by the classes of
    ``settings["data"]`` and keyed by the values its maps hold (`inference.map_legend`), with the mean
    confidence of each where the map's confidence raster is given."""
    legend = map_legend({"data": settings["data"]})
    write_map_polygons(map_path, out, legend, settings["predict"]["min_area"], confidence_path)


def map_files(image_path, out_dir) -> tuple[Path, Path]:
    """Where the map of an image goes in ``out_dir`` (`layout.map_files`): ``{name}.tif`` (a
    Cloud-Optimised GeoTIFF in the image's CRS and transform) for a georeferenced image, else
    ``{name}.png`` (class ids); and its coloured preview ``{name}_preview.png``. ``name`` is
    the image file's stem. With ``predict.vectors`` a georeferenced map also gets
    ``{name}.gpkg`` (`layout.vectors_path`)."""
    suffix = layout.GEOTIFF if georeference(image_path) is not None else layout.PNG
    return layout.map_files(out_dir, Path(image_path).stem, suffix)


@dataclass(frozen=True)
class MapRequest:
    """Where the console command writes the maps of its images (``out_dir``), whether it also
    writes their polygons (``vectors``, for GeoTIFF maps) and in which format (``suffix``)."""

    out_dir: Path
    vectors: bool = False
    suffix: str | None = None  # the maps' format: None for the image's (`map_files`), or layout.PNG
    probabilities: bool = False  # each map's per-class probabilities too
    masked: bool = False  # each map with doubtful pixels as nodata too (a confidence threshold)
    calibration: Path | None = None  # a calibration.csv: the temperature of the maps' confidence


def plan_maps(images: Sequence[Path], request: MapRequest) -> list[MapFiles]:
    """The files of each image's map in ``request.out_dir`` (`map_files`, with the style of a
    GeoTIFF map, the polygons asked for, and the other files of an earlier map of the same
    name as ``stale``). `InputError` for an image that does not exist and for images whose
    maps would overwrite each other's files."""
    names = [Path(path).stem for path in images]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"images named {', '.join(twice)} twice: their maps would overwrite each other")
    missing = [str(path) for path in images if not Path(path).is_file()]
    if missing:
        raise InputError(f"no such image file: {', '.join(missing)}")
    taken = sorted({name for name in names if set(layout.companion_names(name)) & set(names)})
    if taken:
        clashes = sorted({n for name in taken for n in set(layout.companion_names(name)) & set(names)})
        raise InputError(f"the files beside the maps of {', '.join(taken)} (preview, confidence, ...) would overwrite "
                         f"the maps of the images named {', '.join(clashes)}: rename one of each")
    return [_planned(Path(image), request) for image in images]


def _planned(image: Path, request: MapRequest) -> MapFiles:
    map_out, preview = (layout.map_files(request.out_dir, image.stem, request.suffix) if request.suffix
                        else map_files(image, request.out_dir))
    geotiff = map_out.suffix == layout.GEOTIFF
    vectors = layout.vectors_path(map_out) if request.vectors and geotiff else None
    files = MapFiles(image, map_out, preview, vectors=vectors, style=layout.style_path(map_out) if geotiff else None,
                     confidence=layout.confidence_path(map_out),
                     confidence_style=layout.style_path(layout.confidence_path(map_out)),
                     probabilities=layout.probabilities_path(map_out) if request.probabilities else None,
                     masked=layout.masked_path(map_out) if request.masked else None, calibration=request.calibration)
    written = set(_written(files))
    return replace(files, stale=tuple(path for path in layout.map_companions(request.out_dir, image.stem)
                                      if path not in written))


def _written(files: MapFiles) -> list[Path]:
    """The files a map job writes for one image."""
    paths = (files.map, files.preview, files.vectors, files.style, files.confidence, files.confidence_style,
             files.probabilities, files.masked)
    return [Path(path) for path in paths if path is not None]


def existing_outputs(maps: Sequence[MapFiles]) -> list[Path]:
    """The files of these maps (those they write and those they would leave stale) that exist
    already."""
    return [path for files in maps for path in (*_written(files), *map(Path, files.stale)) if path.exists()]


def map_images(settings: dict, model_path, maps: Sequence[MapFiles], threads: int | None = None,
               onnx_cache: Path | None = None, reading: ImageReading = ImageReading()) -> None:
    """Map unlabelled images with a trained model: each map (class ids, as `map_files` names
    it), a coloured preview, its confidence, the QGIS style and the other files the rule (or
    the command) names (`MapFiles`). A georeferenced image is read and its rasters written band
    by band (Cloud-Optimised GeoTIFFs), so memory does not grow with the image; a PNG or JPEG,
    which is read whole, gets a PNG map. The model's checkpoint says what it reads (unless
    ``reading`` says otherwise); the images must have the band count of its training images."""
    predict, options = PredictOptions.from_settings(settings, threads), MapOptions.from_settings(settings)
    model = load_model(predict, model_path, len(maps), onnx_cache, reading)
    if reading.bands is not None:
        check_band_count(model.checkpoint, reading.bands, model_path)
    for files in maps:
        _check_map_input(model, files, reading.bands, model_path)
        if (files.masked is None) != (options.threshold is None):
            raise InputError(f"{files.image}: a masked map needs predict.confidence_threshold and the threshold a "
                             "file for the masked map")
        write_map(model, files, options)
        for path in (Path(path) for path in files.stale if Path(path).exists()):
            path.unlink()
            log.info("%s: removed (left from an earlier map of %s)", path, files.image)


def _check_map_input(model: LoadedModel, files: MapFiles, bands: tuple[int, ...] | None, model_path) -> None:
    """The image has the bands the model reads (or the ``bands`` chosen) and a window fits."""
    if bands is None:
        check_map_bands(model.checkpoint, files.image, model_path)
    else:
        check_chosen_bands(files.image, bands)
    check_map_size(files.image, model.options.size)


def best_case(training_csv, out_yaml) -> None:
    """The case with the best validation mIoU in the training table (the mean over repeats;
    ties go to the first, `metrics.best_index`): the one that maps new imagery by default."""
    from ..metrics import best_index

    training = pd.read_csv(training_csv)
    row = training.iloc[best_index(training["val_miou"].to_numpy())]
    write_yaml({"case": str(row["case"]), "val_miou": float(row["val_miou"])}, out_yaml,
               f"The case with the best validation mIoU ({layout.SUMMARY}/training.csv): it maps data.predict.")
    log.info("best case by validation mIoU: %s (%.4f)", row["case"], row["val_miou"])
