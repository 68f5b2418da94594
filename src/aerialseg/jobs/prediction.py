"""The prediction jobs: a run's tiles predicted and written as PNG (and GeoTIFF), maps of
unlabelled images, and the case that maps them."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import config as cfg
from ..config import Run, layout
from ..errors import InputError
from ..inference import LoadedModel, classes, load_model, map_codes
from ..io.read import georeference, read_by_gdal
from ..io.write import MapLegend, Preview, colorize, write_png, write_polygons, write_style
from ..files import write_yaml
from .preflight import check_chosen_bands, check_map_bands, check_map_size

log = logging.getLogger("aerialseg")


@dataclass(frozen=True)
class TileFiles:
    """The files of one image a predict job reads and writes, as its rule names them:
    ``prediction.png`` (class ids) and ``prediction_color.png``; for a georeferenced image
    ``prediction.tif`` (``geotiff``), its QGIS style ``prediction.qml`` (``style``) and with
    ``predict.vectors`` its polygons (``vectors``)."""

    image: str | Path
    ids: str | Path
    color: str | Path
    geotiff: str | Path | None = None
    vectors: str | Path | None = None
    style: str | Path | None = None


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
        _write_style(model, files.style)
        log.info("%s: georeferenced (%s); wrote %s", files.image, _crs_name(files.image, where), files.geotiff)
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
class MapRequest:
    """Where the console command writes the maps of its images (``out_dir``), whether it also
    writes their polygons (``vectors``, for GeoTIFF maps) and in which format (``suffix``)."""

    out_dir: Path
    vectors: bool = False
    suffix: str | None = None  # the maps' format: None for the image's (`map_files`), or layout.PNG


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
    taken = sorted({name for name in names if layout.preview_name(name) in names})
    if taken:
        raise InputError(f"the previews of {', '.join(taken)} would overwrite the maps of the images named "
                         f"{', '.join(layout.preview_name(name) for name in taken)}: rename one of each")
    return [_planned(Path(image), request) for image in images]


def _planned(image: Path, request: MapRequest) -> "MapFiles":
    map_out, preview = (layout.map_files(request.out_dir, image.stem, request.suffix) if request.suffix
                        else map_files(image, request.out_dir))
    geotiff = map_out.suffix == layout.GEOTIFF
    vectors = layout.vectors_path(map_out) if request.vectors and geotiff else None
    style = layout.style_path(map_out) if geotiff else None
    written = {map_out, preview, vectors, style}
    stale = tuple(path for path in layout.map_companions(request.out_dir, image.stem) if path not in written)
    return MapFiles(image, map_out, preview, vectors, style, stale)


def existing_outputs(maps: Sequence["MapFiles"]) -> list[Path]:
    """The files of these maps (those they write and those they would leave stale) that exist
    already."""
    paths = [path for files in maps for path in (files.map, files.preview, files.vectors, files.style, *files.stale)]
    return [Path(path) for path in paths if path is not None and Path(path).exists()]


@dataclass(frozen=True)
class MapFiles:
    """The files of one unlabelled image a map job reads and writes: its map (``{name}.tif`` or
    ``.png``), its coloured preview, the QGIS style of a GeoTIFF map (``style``), with
    ``predict.vectors`` its polygons (``vectors``), and the files of an earlier map of the
    same name that this one replaces and must not leave behind (``stale``: removed once the
    map is written; the console command's ``--overwrite``)."""

    image: str | Path
    map: str | Path
    preview: str | Path
    vectors: str | Path | None = None
    style: str | Path | None = None
    stale: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ImageReading:
    """How the console command reads the images instead of as the model's training images
    were read: ``bands`` (counting from 0; as many as the model reads) and ``nodata``
    (replacing the files' own nodata value). None keeps the model's."""

    bands: tuple[int, ...] | None = None
    nodata: float | None = None


def map_images(settings: dict, model_path, maps: Sequence[MapFiles], threads: int | None = None,
               onnx_cache: Path | None = None, reading: ImageReading = ImageReading()) -> None:
    """Map unlabelled images with a trained model: each map (class ids, as `map_files` names
    it), a coloured preview, the QGIS style and the polygons the rule (or the command) names.
    A georeferenced image is read and its map written band by band (a Cloud-Optimised
    GeoTIFF), so memory does not grow with the image; a PNG or JPEG, which is read whole, gets
    a PNG map. The model's checkpoint says what it reads (unless ``reading`` says otherwise);
    the images must have the band count of its training images."""
    model = _read_as(load_model(settings, model_path, threads, len(maps), onnx_cache), reading, model_path)
    for files in maps:
        if reading.bands is None:
            check_map_bands(model.checkpoint, files.image, model_path)
        else:
            check_chosen_bands(files.image, reading.bands)
        check_map_size(files.image, model.options.size)
        map_image(model, files.image, files.map, files.preview)
        _write_style(model, files.style)
        if files.vectors is not None:
            _write_vectors(settings, model.checkpoint, files.map, files.vectors)
        for path in (Path(path) for path in files.stale if Path(path).exists()):
            path.unlink()
            log.info("%s: removed (left from an earlier map of %s)", path, files.image)


def _read_as(model: LoadedModel, reading: ImageReading, model_path) -> LoadedModel:
    """The model reading images as ``reading`` says: its bands (as many as it was trained on)
    and no-data value in place of those of its training data."""
    if reading == ImageReading():
        return model
    checkpoint = copy.deepcopy(model.checkpoint)
    data = checkpoint["data"]
    if reading.bands is not None:
        if len(reading.bands) != len(data["bands"]):
            raise InputError(f"bands {_numbers(reading.bands)} (counting from 1): {len(reading.bands)} band(s), but "
                             f"{model_path} reads {len(data['bands'])} (it was trained on bands {_numbers(data['bands'])})")
        data["bands"] = list(reading.bands)
    if reading.nodata is not None:
        data["nodata"] = reading.nodata
    return replace(model, checkpoint=checkpoint)


def _numbers(bands) -> str:
    """Bands counted from 0 as GDAL and QGIS number them, from 1: ``2,1,0`` -> ``3,2,1``."""
    return ",".join(str(band + 1) for band in bands)


def map_image(model: LoadedModel, image_path, map_out, preview_out) -> None:
    """One map (`map_images`), block by block: a GeoTIFF for a georeferenced image, never held
    whole; a PNG for any other, or for a georeferenced one where ``map_out`` is a PNG (the
    console command's ``--format png``: held whole, without its georeference)."""
    colors, _ = classes(model.checkpoint)
    where = georeference(image_path)
    if Path(map_out).suffix == layout.GEOTIFF and where is None:
        raise InputError(f"{image_path}: not georeferenced, so its map is a PNG, not {map_out}")
    where = where if Path(map_out).suffix == layout.GEOTIFF else None
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
    log.info("%s: mapped to %s (%s), preview %s", image_path, map_out,
             _crs_name(image_path, where) if where else "no georeference", preview_out)


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


def best_case(training_csv, out_yaml) -> None:
    """The case with the best validation mIoU in the training table (the mean over repeats;
    ties go to the first, `metrics.best_index`): the one that maps new imagery by default."""
    from ..metrics import best_index

    training = pd.read_csv(training_csv)
    row = training.iloc[best_index(training["val_miou"].to_numpy())]
    write_yaml({"case": str(row["case"]), "val_miou": float(row["val_miou"])}, out_yaml,
               f"The case with the best validation mIoU ({layout.SUMMARY}/training.csv): it maps data.predict.")
    log.info("best case by validation mIoU: %s (%.4f)", row["case"], row["val_miou"])
