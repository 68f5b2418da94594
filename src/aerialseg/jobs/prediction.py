"""The prediction jobs: a run's tiles predicted and written as PNG (and GeoTIFF), maps of
unlabelled images, and the case that maps them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
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
from ..inference import ImageReading, LoadedModel, PredictOptions, classes, load_model, map_codes, with_temperature
from ..io.read import georeference, read_by_gdal
from ..io.write import (MapLegend, Preview, colorize, write_confidence_style, write_png, write_polygons,
                        write_style)
from ..files import write_yaml
from .preflight import check_band_count, check_chosen_bands, check_map_bands, check_map_size

log = logging.getLogger("aerialseg")


@dataclass(frozen=True)
class TileFiles:
    """The files of one image a predict job reads and writes, as its rule names them:
    ``prediction.png`` (class ids) and ``prediction_color.png``; for a georeferenced image
    ``prediction.tif`` (``geotiff``), its QGIS style ``prediction.qml`` (``style``) and with
    ``predict.vectors`` its polygons (``vectors``); its confidence raster
    ``prediction_confidence.tif`` (``confidence``; None: not written) and that raster's QGIS
    style ``prediction_confidence.qml`` (``confidence_style``)."""

    image: str | Path
    ids: str | Path
    color: str | Path
    geotiff: str | Path | None = None
    vectors: str | Path | None = None
    style: str | Path | None = None
    confidence: str | Path | None = None
    confidence_style: str | Path | None = None


def predict_images(settings: dict, model_path, tiles: Sequence[TileFiles], threads: int | None = None,
                   record: tuple[Run, str | Path] | None = None, calibration=None) -> None:
    """Predict whole images with one case's model, each as a mosaic of overlapping windows;
    one job predicts them all, so the model and the device are set up once. Each image gets
    its class ids and their colours as PNG; a georeferenced one also a Cloud-Optimised GeoTIFF
    written band by band, and polygons where the rule names a file for them (`TileFiles`).
    What the model reads (bands, value range, no-data, classes, patch size) comes from the
    checkpoint; how to predict from ``predict.*`` (`inference.PredictOptions`). ``record`` is
    the run and where to write the settings that made its predictions; ``calibration`` its
    calibration.csv, whose temperature the confidence takes (`inference.with_temperature`)."""
    options = PredictOptions.from_settings(settings, threads)
    model = with_temperature(load_model(options, model_path, len(tiles)), calibration)
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
        rasters = Rasters()
        try:
            if where is not None:
                rasters.add(model.map_writer(files.geotiff, image, where), block_ids)
            if files.confidence is not None:
                rasters.add(model.confidence_writer(files.confidence, image, where), block_confidence)
            for block in model.iter_blocks(image):
                ids[block.top : block.top + len(block.ids)] = block.ids
                rasters.write(block)
            write_png(files.ids, ids)
            write_png(files.color, colorize(ids, colors))
        except BaseException:  # a killed job, a full disk: no half-written GeoTIFF is left behind
            rasters.abort()
            raise
    rasters.close()
    _write_confidence_style(files.confidence_style)
    if where is not None:
        _write_style(model, files.style)
        log.info("%s: georeferenced (%s); wrote %s", files.image, _crs_name(files.image, where), files.geotiff)
    elif read_by_gdal(files.image):
        log.info("%s: a raster without a CRS or geotransform; the prediction is written as PNG only", files.image)


def block_ids(block: Block) -> np.ndarray:
    return block.ids


def block_confidence(block: Block) -> np.ndarray:
    return block.confidence


def _probabilities(block: Block) -> np.ndarray:
    return block.probabilities()


class Rasters:
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
class MapRequest:
    """Where the console command writes the maps of its images (``out_dir``), whether it also
    writes their polygons (``vectors``, for GeoTIFF maps) and in which format (``suffix``)."""

    out_dir: Path
    vectors: bool = False
    suffix: str | None = None  # the maps' format: None for the image's (`map_files`), or layout.PNG
    probabilities: bool = False  # each map's per-class probabilities too
    masked: bool = False  # each map with doubtful pixels as nodata too (a confidence threshold)
    calibration: Path | None = None  # a calibration.csv: the temperature of the maps' confidence


def plan_maps(images: Sequence[Path], request: MapRequest) -> list["MapFiles"]:
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


def _planned(image: Path, request: MapRequest) -> "MapFiles":
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


def _written(files: "MapFiles") -> list[Path]:
    """The files a map job writes for one image."""
    paths = (files.map, files.preview, files.vectors, files.style, files.confidence, files.confidence_style,
             files.probabilities, files.masked)
    return [Path(path) for path in paths if path is not None]


def existing_outputs(maps: Sequence["MapFiles"]) -> list[Path]:
    """The files of these maps (those they write and those they would leave stale) that exist
    already."""
    return [path for files in maps for path in (*_written(files), *map(Path, files.stale)) if path.exists()]


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


def map_images(settings: dict, model_path, maps: Sequence[MapFiles], threads: int | None = None,
               onnx_cache: Path | None = None, reading: ImageReading = ImageReading()) -> None:
    """Map unlabelled images with a trained model: each map (class ids, as `map_files` names
    it), a coloured preview, its confidence, the QGIS style and the other files the rule (or
    the command) names (`MapFiles`). A georeferenced image is read and its rasters written band
    by band (Cloud-Optimised GeoTIFFs), so memory does not grow with the image; a PNG or JPEG,
    which is read whole, gets a PNG map. The model's checkpoint says what it reads (unless
    ``reading`` says otherwise); the images must have the band count of its training images."""
    predict, threshold = PredictOptions.from_settings(settings, threads), settings["predict"]["confidence_threshold"]
    model = load_model(predict, model_path, len(maps), onnx_cache, reading)
    if reading.bands is not None:
        check_band_count(model.checkpoint, reading.bands, model_path)
    for files in maps:
        _check_map_input(model, files, reading.bands, model_path)
        if (files.masked is None) != (threshold is None):
            raise InputError(f"{files.image}: a masked map needs predict.confidence_threshold and the threshold a "
                             "file for the masked map")
        map_image(with_temperature(model, files.calibration), files, threshold)
        _write_style(model, files.style)
        _write_confidence_style(files.confidence_style)
        if files.vectors is not None:
            _write_vectors(settings, model.checkpoint, files.map, files.vectors, files.confidence)
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


def map_image(model: LoadedModel, files: MapFiles, threshold: float | None = None) -> None:
    """One map (`map_images`), block by block: a GeoTIFF for a georeferenced image, never held
    whole; a PNG for any other, or for a georeferenced one where ``files.map`` is a PNG (the
    console command's ``--format png``: held whole, without its georeference). Where
    ``files.masked`` is named, pixels whose written confidence (code / 255) is under
    ``threshold`` are nodata in that copy of the map."""
    colors, _ = classes(model.checkpoint)
    where = georeference(files.image)
    if Path(files.map).suffix == layout.GEOTIFF and where is None:
        raise InputError(f"{files.image}: not georeferenced, so its map is a PNG, not {files.map}")
    where = where if Path(files.map).suffix == layout.GEOTIFF else None
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
    log.info("%s: mapped to %s (%s), preview %s", files.image, files.map,
             _crs_name(files.image, where) if where else "no georeference", files.preview)


def _crs_name(image_path, where) -> str:
    """The CRS of a georeferenced image for the log; one placed only by a world file, without
    a ``.prj`` or ``.aux.xml`` to give its CRS, gets a warning: its map has none either."""
    if where.crs is not None:
        return str(where.crs)
    log.warning("%s: placed by its world file %s, but its CRS is unknown (no .prj or .aux.xml beside it): the map "
                "has the world file's transform and no CRS; set it in QGIS or GDAL", image_path, where.world_file)
    return "CRS unknown"


def _write_style(model: LoadedModel, style) -> None:
    """The QGIS style of a GeoTIFF map (`io.write.write_style`): its classes' names and colours
    keyed by the values the map holds."""
    if style is None:
        return
    colors, names = classes(model.checkpoint)
    values, nodata = map_codes(model.checkpoint)
    write_style(style, MapLegend(colors, names, values, nodata))


def _write_confidence_style(style) -> None:
    """The QGIS style of a confidence raster, where one is named (`io.write.write_confidence_style`)."""
    if style is not None:
        write_confidence_style(style)


def _map_rasters(model: LoadedModel, files: MapFiles, image, where, threshold: float | None):
    """The rasters of a map written block by block, and the PNG maps (of an image without
    georeference) gathered whole: (array, the part of a block it takes), the map's first."""
    rasters, wholes = Rasters(), []
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
