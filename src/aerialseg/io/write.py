"""Writing: PNGs, colour previews, maps of class ids as Cloud-Optimised GeoTIFFs written band
by band, and maps as polygons.

`MapWriter`: rows of class ids go into a tiled GeoTIFF as they are finished; closing it turns
that into a Cloud-Optimised GeoTIFF (internal 256 px tiles, overviews made with
nearest-neighbour resampling, never averaging class ids), with the colour table, the class
names and the nodata value (`IGNORE_INDEX` unless the dataset's own codes need another,
`map_codes`). Memory stays that of a band of rows, whatever the map.

`write_style`: a map's QGIS style (``.qml``), a paletted renderer with each class's name and
colour, which QGIS applies when the map beside it is added as a layer.
"""

from __future__ import annotations

import logging
import struct
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image as PillowImage

from ..class_ids import IGNORE_INDEX
from ..config.settings import available_cores
from ..files import atomic_path

log = logging.getLogger("aerialseg")

Color = Sequence[int]


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as PNG atomically."""
    with atomic_path(path) as tmp:
        PillowImage.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def colorize(ids: np.ndarray, colors: Sequence[Color], ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Map class ids to RGB colours; ignored and unknown ids become black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(colors)] = np.asarray(colors, dtype=np.uint8)
    table[ignore_index] = 0
    return table[ids]


def map_codes(label_format: str, values: Sequence[int] | None, ignore_values: Sequence[int] = ()) -> tuple[list[int] | None, int]:
    """What a map of a dataset holds: (the value written for each class id, or None for the
    ids themselves; the nodata value). Index labels are mapped in the dataset's own codes,
    their ``data.classes[].value``; colour labels keep the class ids. The nodata value never
    collides with a class value: for index labels the first ``data.ignore_values`` value when
    there is one (it means "no class" in the dataset's own coding already), else 255 when
    that is free, else the largest value the map's type holds that no class takes."""
    if label_format != "index" or values is None:
        return None, IGNORE_INDEX
    taken = set(values)
    free_ignored = [v for v in ignore_values if v not in taken]
    if free_ignored:
        return list(values), free_ignored[0]
    if IGNORE_INDEX not in taken:
        return list(values), IGNORE_INDEX
    top = 255 if max(values) <= 255 and len(taken) < 256 else 65535
    return list(values), next(v for v in range(top, -1, -1) if v not in taken)


@dataclass(frozen=True)
class MapLegend:
    """What the values of a map mean: the colour and name of each class (in id order), the value
    written for each class id (None: the ids themselves, `map_codes`) and the nodata value."""

    colors: Sequence
    names: Sequence[str] = ()
    values: Sequence[int] | None = None
    nodata: int = IGNORE_INDEX


@contextmanager
def _quiet_without_georeference():
    """A plain TIFF (of an image without georeference) is meant: rasterio need not warn."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


class _RowsToCog:
    """Rows written into a tiled temporary GeoTIFF as they are finished (`write`), turned into
    a Cloud-Optimised GeoTIFF at ``path`` by `close` (internal 256 px tiles, deflate,
    overviews by ``resampling``); `abort` leaves nothing behind. ``where`` is the image's
    georeference (CRS and transform), or None for a plain TIFF.

    The temporary file is compressed at deflate's fastest level (it is written while the model
    predicts, and read once), and the COG's tiles are compressed on every core the process
    may use: the same bytes as one thread at the default level, in half the time (a 25 Mpx
    map and its confidence on the 2-core EPYC: 0.21 s + 0.64 s instead of 0.59 s + 1.16 s)."""

    resampling = "NEAREST"

    def __init__(self, path: str | Path, height: int, width: int, where, **profile):
        import rasterio

        self.path, self.height, self.width = Path(path), height, width
        self.tmp = self.path.with_name(f".{self.path.name}.rows.tif")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        placed = {"crs": where.crs, "transform": where.transform} if where is not None else {}
        with _quiet_without_georeference():
            self.dataset = rasterio.open(self.tmp, "w", driver="GTiff", width=width, height=height, tiled=True,
                                         blockxsize=256, blockysize=256, compress="deflate", zlevel=1,
                                         BIGTIFF="IF_SAFER", **placed, **profile)
        self.rows_written = 0

    def _write(self, top: int, bands: np.ndarray) -> None:
        """Rows ``top:top + rows`` of every band, (bands, rows, W)."""
        from rasterio.windows import Window

        self.dataset.write(bands, window=Window(0, top, self.width, bands.shape[1]))
        self.rows_written += bands.shape[1]

    def close(self) -> None:
        """Finish the raster: the COG, with its overviews, replaces whatever was at ``path``."""
        from rasterio.shutil import copy as copy_raster

        self.dataset.close()
        try:
            if self.rows_written != self.height:
                raise RuntimeError(f"{self.path}: {self.rows_written} of {self.height} rows were written")
            with atomic_path(self.path) as tmp, _quiet_without_georeference():
                copy_raster(self.tmp, tmp, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=256,
                            OVERVIEW_RESAMPLING=self.resampling, OVERVIEWS="AUTO", BIGTIFF="IF_SAFER",
                            NUM_THREADS=available_cores())
        finally:
            self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        self.dataset.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> _RowsToCog:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is not None:  # aborting after `close` is harmless: only the temporary file goes
            self.abort()


class MapWriter(_RowsToCog):
    """A map of class ids written band by band (`write`), finished as a Cloud-Optimised
    GeoTIFF by `close`: internal 256 px tiles, deflate, overviews by nearest-neighbour
    resampling, the colour table and class names keyed by the values written, and the nodata
    value (``legend``). Nothing appears at ``path`` until `close` succeeds."""

    def __init__(self, path: str | Path, height: int, width: int, where, legend: MapLegend):
        values, nodata = legend.values, legend.nodata
        self.values = np.asarray(values if values is not None else range(len(legend.colors)), dtype=np.int64)
        dtype = "uint16" if max(self.values.max(initial=0), nodata) > 255 else "uint8"
        self.lookup = np.full(256, nodata, dtype=dtype)  # class id -> the value written; IGNORE_INDEX -> nodata
        self.lookup[: len(self.values)] = self.values
        super().__init__(path, height, width, where, count=1, dtype=dtype, nodata=nodata, photometric="palette")
        # the colour table before any pixel is written, as GDAL needs for a palette image
        self.dataset.write_colormap(1, {int(v): (*map(int, c), 255) for v, c in zip(self.values, legend.colors)})
        self.dataset.set_band_description(1, "class" if values is not None else "class id")
        if legend.names:
            self.dataset.update_tags(1, CLASSES=";".join(f"{int(v)}={n}" for v, n in zip(self.values, legend.names)))

    def write(self, top: int, ids: np.ndarray) -> None:
        """Rows ``top:top + len(ids)`` of class ids (``IGNORE_INDEX`` for no-data pixels)."""
        self._write(top, self.lookup[ids][None])


def write_map_geotiff(path: str | Path, ids: np.ndarray, where, legend: MapLegend) -> None:
    """A map of class ids held whole (``ids``, H x W) as the Cloud-Optimised GeoTIFF that
    `MapWriter` writes band by band; nothing is left at ``path`` if it fails."""
    with MapWriter(path, *ids.shape, where, legend) as writer:
        writer.write(0, ids)
        writer.close()


class ScoreWriter(_RowsToCog):
    """Scores 0-1 of a map (its confidence, or one probability per class) written band by band
    as uint8 codes (`calibration.to_codes`), finished as a Cloud-Optimised GeoTIFF (a plain
    one without georeference): one band per name in ``descriptions`` (the band's
    description), the GDAL band scale 1/255 and offset 0 (a code v means v / 255), nodata 0
    (where the map has nodata), overviews by averaging (scores, not classes)."""

    resampling = "AVERAGE"

    def __init__(self, path: str | Path, height: int, width: int, where, descriptions: Sequence[str]):
        super().__init__(path, height, width, where, count=len(descriptions), dtype="uint8", nodata=0,
                         photometric="minisblack")
        self.dataset.scales = (1 / 255,) * len(descriptions)
        self.dataset.offsets = (0.0,) * len(descriptions)
        for band, description in enumerate(descriptions, 1):
            self.dataset.set_band_description(band, description)

    def write(self, top: int, codes: np.ndarray) -> None:
        """Rows ``top:top + rows`` of codes: (rows, W) for one band, (bands, rows, W) for several."""
        self._write(top, codes[None] if codes.ndim == 2 else codes)


def write_style(path: str | Path, legend: MapLegend) -> None:
    """A QGIS layer style (``.qml``) for a map: a paletted renderer of band 1 with one entry
    per class (the value the map holds, its colour, its name as the label); the nodata value
    stays transparent. Written atomically."""
    import xml.etree.ElementTree as ET

    values = legend.values if legend.values is not None else range(len(legend.colors))
    names = list(legend.names) or [str(v) for v in values]
    root = ET.Element("qgis", version="3.28", styleCategories="Symbology")
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(pipe, "rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1",
                             nodataColor="")
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for value, color, name in zip(values, legend.colors, names):
        ET.SubElement(palette, "paletteEntry", value=str(int(value)), label=str(name), alpha="255",
                      color="#{:02x}{:02x}{:02x}".format(*map(int, color[:3])))
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    _write_qml(path, root)


def _write_qml(path: str | Path, root) -> None:
    import xml.etree.ElementTree as ET

    ET.indent(root)
    text = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text + "\n", encoding="utf-8")


CONFIDENCE_RAMP = ((0.0, "#d7191c", "0: a guess"), (0.5, "#fdae61", "0.5"), (0.75, "#ffffbf", "0.75"),
                   (0.9, "#a6d96a", "0.9"), (1.0, "#1a9641", "1: certain"))
"""The confidence raster's colour ramp: (confidence, colour, label), red for doubtful pixels
to green for sure ones."""


def write_styles(legend: MapLegend, style: str | Path | None, confidence_style: str | Path | None) -> None:
    """The QGIS styles of a map and of its confidence raster, each where it is named."""
    if style is not None:
        write_style(style, legend)
    if confidence_style is not None:
        write_confidence_style(confidence_style)


def write_confidence_style(path: str | Path) -> None:
    """A QGIS layer style (``.qml``) for a confidence raster (`ScoreWriter`, one band): a
    colour ramp over the confidence 0-1. QGIS applies the band scale 1/255, so the ramp's
    values are the confidence itself; nodata (0) stays transparent. Written atomically."""
    import xml.etree.ElementTree as ET

    root = ET.Element("qgis", version="3.28", styleCategories="Symbology")
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(pipe, "rasterrenderer", type="singlebandpseudocolor", band="1", opacity="1",
                             alphaBand="-1", classificationMin="0", classificationMax="1", nodataColor="")
    ET.SubElement(renderer, "rasterTransparency")
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader", colorRampType="INTERPOLATED",
                           classificationMode="1", clip="0", minimumValue="0", maximumValue="1")
    for value, color, label in CONFIDENCE_RAMP:
        ET.SubElement(shader, "item", value=str(value), color=color, label=label, alpha="255")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    _write_qml(path, root)


class Preview:
    """A coloured preview of a map, at most ``max_side`` px a side, gathered band by band into
    one array made up front (small arrays kept while a map's big bands come and go would
    fragment the heap: the process would grow by hundreds of MB)."""

    def __init__(self, height: int, width: int, colors: Sequence, max_side: int = 2048):
        self.stride = max(1, -(-max(height, width) // max_side))
        self.colors = colors
        self.ids = np.empty((-(-height // self.stride), -(-width // self.stride)), dtype=np.uint8)

    def write(self, top: int, ids: np.ndarray) -> None:
        first = (-top) % self.stride  # the first row of this band on the preview's grid
        rows = ids[first :: self.stride, :: self.stride]
        start = (top + first) // self.stride
        self.ids[start : start + len(rows)] = rows

    def save(self, path) -> None:
        write_png(path, colorize(self.ids, self.colors))


def write_map_polygons(map_path: str | Path, out_path: str | Path, legend: MapLegend, min_area: int = 0,
                       confidence_path=None) -> int:
    """The polygons of a map (`write_polygons`), named by the classes of its ``legend`` and
    keyed by the values the map holds; logged. Returns the number of features."""
    count = write_polygons(map_path, out_path, legend.names, min_area, values=legend.values,
                           confidence_path=confidence_path)
    log.info("%s: %d polygons (regions under %d px merged) in %s", map_path, count, min_area, out_path)
    return count


POLYGON_BATCH = 10000
"""Features that `write_polygons` makes and writes at a time."""


def write_polygons(map_path: str | Path, out_path: str | Path, names: Sequence[str], min_area: int = 0,
                   values: Sequence[int] | None = None, confidence_path=None) -> int:
    """Write a map as polygons into a GeoPackage: one feature per connected region (4-connected)
    of a class, with its ``class`` name and ``class_id`` (its value in the map), in the map's
    CRS, after regions smaller than ``min_area`` px are merged into their neighbours
    (rasterio's sieve). With ``confidence_path`` (the map's confidence raster) each feature
    also has ``confidence``: the mean confidence (0-1, code / 255) of its pixels. No-data
    pixels make no polygon. Returns the number of features.

    Memory: not bounded by bands, unlike the map. The whole map is read, then its valid mask
    and its sieved copy are made, about 3 bytes per pixel, with GDAL's block cache
    (`io.GDAL_CACHE_MB`) and the polygons of a batch of `POLYGON_BATCH` features on top; with a
    confidence raster about 9 bytes more per pixel (the raster, the regions' numbers and one
    class's labelling at a time). Measured on a
    6000 x 6000 px map without confidence: 300 MiB with 52 thousand polygons, 400 MiB with 314
    thousand (README, "Polygons")."""
    import rasterio
    from pyogrio.raw import write

    name_of = dict(zip(values if values is not None else range(len(names)), names))
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.stem}.tmp.gpkg")
    tmp.unlink(missing_ok=True)
    count = 0
    try:
        with rasterio.open(map_path) as dataset:
            shapes, regions, crs = _shapes(dataset, min_area, confidence_path)
            for number, chunk in enumerate(_batches(shapes, POLYGON_BATCH)):
                geometry, field_data = _features(chunk, name_of, regions)
                with warnings.catch_warnings():  # a map without a CRS (a world file alone) was warned of already
                    warnings.filterwarnings("ignore", message="'crs' was not provided")
                    write(tmp, geometry, field_data=field_data, fields=["class", "class_id", "confidence"][: len(field_data)],
                          crs=crs, geometry_type="Polygon", driver="GPKG", layer="map", append=number > 0,
                          encoding="UTF-8")
                count += len(chunk)
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _shapes(dataset, min_area: int, confidence_path):
    """The regions of an open map as rasterio's shapes (after the sieve), with their classes and
    mean confidence where its confidence raster is given (`_Regions`), and the map's CRS."""
    from rasterio import features

    ids, nodata = dataset.read(1), dataset.nodata
    sieved = features.sieve(ids, min_area, mask=ids != nodata) if min_area > 1 else ids
    regions = None if confidence_path is None else _Regions(sieved, nodata, _read_confidence(confidence_path, ids))
    shapes = features.shapes(sieved if regions is None else regions.numbers, mask=sieved != nodata,
                             transform=dataset.transform)
    return shapes, regions, dataset.crs.to_wkt() if dataset.crs else None


def _read_confidence(path, ids: np.ndarray) -> np.ndarray:
    """A map's confidence raster (uint8 codes), which must cover the map pixel for pixel."""
    import rasterio

    with rasterio.open(path) as dataset:
        codes = dataset.read(1)
    if codes.shape != ids.shape:
        raise ValueError(f"{path}: {codes.shape[1]} x {codes.shape[0]} px, but its map is {ids.shape[1]} x {ids.shape[0]}")
    return codes


class _Regions:
    """The connected regions (4-connected) of each class of a map: ``numbers`` (int32, 1.. per
    region, 0 for no-data), and per number the class value (``value``) and the mean
    confidence of its pixels (``confidence``, 0-1)."""

    def __init__(self, ids: np.ndarray, nodata, codes: np.ndarray):
        from scipy import ndimage

        self.numbers = np.zeros(ids.shape, dtype=np.int32)
        value = [0]
        for v in np.unique(ids[ids != nodata]):
            found, n = ndimage.label(ids == v)  # 4-connected, as rasterio's shapes
            self.numbers[found > 0] = found[found > 0] + len(value) - 1
            value += [int(v)] * n
        self.value = np.asarray(value)
        pixels = np.bincount(self.numbers.ravel(), minlength=len(value))
        sums = np.bincount(self.numbers.ravel(), weights=codes.ravel(), minlength=len(value))
        self.confidence = sums / np.maximum(pixels, 1) / 255


def _batches(items, size: int):
    """Lists of ``size`` items, then the rest: at least one list, which may be empty."""
    chunk: list = []
    full = 0
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk, full = [], full + 1
    if chunk or not full:
        yield chunk


def _features(shapes: list, name_of: dict, regions: _Regions | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The geometries (well-known binary) and fields (class name, class id and, with
    ``regions``, mean confidence) of a batch of (polygon, value) pairs; with ``regions`` the
    value is a region's number."""
    geometry = np.array([_polygon_wkb(shape["coordinates"]) for shape, _ in shapes], dtype=object)
    numbers = np.array([int(value) for _, value in shapes], dtype=np.int64)
    ids = (numbers if regions is None else regions.value[numbers]).astype(np.int32)
    classes = np.array([name_of.get(int(value), str(int(value))) for value in ids], dtype=object)
    if regions is None:
        return geometry, [classes, ids]
    return geometry, [classes, ids, regions.confidence[numbers].astype(np.float64)]


def _polygon_wkb(rings: Sequence[Sequence[Sequence[float]]]) -> bytes:
    """A polygon (exterior ring, then holes) as well-known binary, little-endian."""
    parts = [struct.pack("<BII", 1, 3, len(rings))]
    for ring in rings:
        points = np.asarray(ring, dtype="<f8")
        parts.append(struct.pack("<I", len(points)) + points.tobytes())
    return b"".join(parts)
