"""Rasters of any size: images read a band of rows at a time with their no-data mask, class-id
maps written band by band into Cloud-Optimised GeoTIFFs, and maps as polygons.

Reading (`open_image`): GeoTIFF, COG and any other GDAL raster are read through rasterio
windows, never whole; PNG and JPEG through Pillow, whole (their decoders have no windows).
A pixel is no-data where the image says so (its nodata value, its internal mask or its alpha
band, as GDAL's dataset mask combines them; the alpha band of a PNG), where every configured
band equals ``data.nodata`` when that is set (it then replaces the file's own nodata value,
while an internal mask or alpha band still counts), and where a float band is NaN or infinite.

Writing (`MapWriter`): rows of class ids go into a tiled GeoTIFF as they are finished; closing
it turns that into a Cloud-Optimised GeoTIFF (internal 256 px tiles, overviews made with
nearest-neighbour resampling, never averaging class ids), with the colour table, the class
names and the nodata value `NODATA_ID`. Memory stays that of a band of rows, whatever the map.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .class_ids import IGNORE_INDEX
from .errors import InputError
from .files import atomic_path

log = logging.getLogger(__name__)

GDAL_CACHE_MB = 128
"""GDAL's block cache (``GDAL_CACHEMAX``), unless the environment sets it: GDAL's default, 5 % of
the RAM, would let the cache of blocks read and written grow past a gigabyte on big images."""
os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))  # read by GDAL at its first block I/O

NODATA_ID = IGNORE_INDEX
"""The class id of no-data pixels in every map (and of ignored pixels in labels): no class."""


@dataclass
class Image:
    """An image open for reading, a band of rows at a time (`rows`)."""

    path: Path
    height: int
    width: int
    count: int
    spec: object  # images.DataSpec
    nodata: float | None
    _dataset: object = None  # a rasterio dataset, or None for an image held whole
    _whole: np.ndarray | None = None
    _file_mask: bool = True  # read GDAL's dataset mask (no when data.nodata replaces the file's own value)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def rows(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``top:bottom``: the configured bands as (h, W, C) uint8, scaled from the value
        range, and the valid (not no-data) pixels as (h, W) bool."""
        from .images import to_uint8

        if self._whole is not None:
            raw = self._whole[top:bottom]
            valid = _alpha_valid(raw, self.spec.bands, self.path)
        else:
            from rasterio.windows import Window

            window = Window(0, top, self.width, bottom - top)
            raw = np.moveaxis(self._dataset.read(window=window), 0, -1)
            valid = self._dataset.dataset_mask(window=window) > 0 if self._file_mask else np.ones(raw.shape[:2], bool)
        selected = raw[:, :, list(self.spec.bands)]
        if self.nodata is not None:
            valid &= ~np.all(selected == self.nodata, axis=2)
        if np.issubdtype(selected.dtype, np.floating):
            finite = np.isfinite(selected).all(axis=2)
            valid &= finite
            selected = np.where(finite[:, :, None], selected, 0)
        return to_uint8(selected, self.spec.value_range, source=self.path), valid

    def close(self) -> None:
        if self._dataset is not None:
            self._dataset.close()

    def __enter__(self) -> "Image":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_image(path: str | Path, spec, nodata: float | None = None) -> Image:
    """Open an image for windowed reading (see the module's docstring); ``nodata`` is
    ``data.nodata``. The bands asked for must exist."""
    import warnings

    import rasterio
    from rasterio.enums import ColorInterp, MaskFlags
    from rasterio.errors import NotGeoreferencedWarning

    from .images import _check_file, _read_raster, check_bands, read_by_gdal

    path = Path(path)
    _check_file(path)
    if not read_by_gdal(path):
        whole = _read_raster(path)
        whole = whole[:, :, None] if whole.ndim == 2 else whole
        check_bands(path, spec.bands, whole.shape[2])
        return Image(path, whole.shape[0], whole.shape[1], whole.shape[2], spec, nodata, _whole=whole)
    try:
        with warnings.catch_warnings():  # plain TIFFs are fine; images.georeference says whether there is one
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(path)
    except Exception as error:
        raise InputError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None
    check_bands(path, spec.bands, dataset.count)
    # data.nodata replaces the file's own nodata value; its internal mask or alpha band still
    # count, unless the alpha band is one that data.bands reads as data
    by_value = any(MaskFlags.nodata in band for band in dataset.mask_flag_enums)
    alpha_read = any(dataset.colorinterp[band] == ColorInterp.alpha for band in spec.bands)
    return Image(path, dataset.height, dataset.width, dataset.count, spec, nodata, _dataset=dataset,
                 _file_mask=not alpha_read and (nodata is None or not by_value))


def _alpha_valid(raw: np.ndarray, bands: Sequence[int], path: Path) -> np.ndarray:
    """A PNG's alpha band (its fourth band of an RGBA image, or second of a grey-alpha one),
    when the model does not read it as a band, marks transparent pixels as no-data."""
    alpha = {4: 3, 2: 1}.get(raw.shape[2]) if path.suffix.lower() == ".png" else None
    if alpha is None or alpha in bands:
        return np.ones(raw.shape[:2], dtype=bool)
    return raw[:, :, alpha] > 0


def has_nodata(path: str | Path, nodata: float | None = None) -> bool:
    """Whether an image may have no-data pixels at all, from its header (so that images
    without any are not read for a mask): ``data.nodata`` set, a GDAL nodata value, mask or
    alpha band, a float data type (NaN), or a PNG with an alpha band."""
    from .images import _gdal, image_header, read_by_gdal

    path = Path(path)
    if nodata is not None:
        return True
    if not read_by_gdal(path):
        return path.suffix.lower() == ".png" and image_header(path)[2] in (2, 4)
    from rasterio.enums import MaskFlags

    with _gdal(path) as dataset:
        flags = dataset.mask_flag_enums
        return (any(MaskFlags.all_valid not in band for band in flags)
                or any(np.issubdtype(np.dtype(t), np.floating) for t in dataset.dtypes))


def valid_mask(path: str | Path, spec, nodata: float | None = None, chunk_rows: int = 1024) -> np.ndarray | None:
    """The valid pixels of a whole image as (H, W) bool, read a band of rows at a time; None
    when the image can have no no-data pixel (`has_nodata`)."""
    if not has_nodata(path, nodata):
        return None
    with open_image(path, spec, nodata) as image:
        valid = np.empty(image.shape, dtype=bool)
        for top in range(0, image.height, chunk_rows):
            valid[top : top + chunk_rows] = image.rows(top, min(top + chunk_rows, image.height))[1]
    return valid


def map_codes(label_format: str, values: Sequence[int] | None, ignore_values: Sequence[int] = ()) -> tuple[list[int] | None, int]:
    """What a map of a dataset holds: (the value written for each class id, or None for the
    ids themselves; the nodata value). Index labels are mapped in the dataset's own codes,
    their ``data.classes[].value``; colour labels keep the class ids. The nodata value never
    collides with a class value: for index labels the first ``data.ignore_values`` value when
    there is one (it means "no class" in the dataset's own coding already), else 255 when
    that is free, else the largest value the map's type holds that no class takes."""
    if label_format != "index" or values is None:
        return None, NODATA_ID
    taken = set(values)
    free_ignored = [v for v in ignore_values if v not in taken]
    if free_ignored:
        return list(values), free_ignored[0]
    if NODATA_ID not in taken:
        return list(values), NODATA_ID
    top = 255 if max(values) <= 255 and len(taken) < 256 else 65535
    return list(values), next(v for v in range(top, -1, -1) if v not in taken)


class MapWriter:
    """A map of class ids written band by band (`write`), finished as a Cloud-Optimised
    GeoTIFF by `close`: internal 256 px tiles, deflate, overviews by nearest-neighbour
    resampling, the colour table and class names keyed by the values written, and ``nodata``.

    ``values`` maps class ids to the values written (default: the ids themselves). Nothing
    appears at ``path`` until `close` succeeds."""

    def __init__(self, path: str | Path, height: int, width: int, where, colors: Sequence, names: Sequence[str] = (),
                 values: Sequence[int] | None = None, nodata: int = NODATA_ID):
        import rasterio

        self.path, self.height, self.width = Path(path), height, width
        self.values = np.asarray(values if values is not None else range(len(colors)), dtype=np.int64)
        dtype = "uint16" if max(self.values.max(initial=0), nodata) > 255 else "uint8"
        self.lookup = np.full(256, nodata, dtype=dtype)  # class id -> the value written; NODATA_ID -> nodata
        self.lookup[: len(self.values)] = self.values
        self.tmp = self.path.with_name(f".{self.path.name}.rows.tif")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dataset = rasterio.open(
            self.tmp, "w", driver="GTiff", width=width, height=height, count=1, dtype=dtype, crs=where.crs,
            transform=where.transform, tiled=True, blockxsize=256, blockysize=256, compress="deflate", nodata=nodata,
            photometric="palette", BIGTIFF="IF_SAFER",
        )
        # the colour table before any pixel is written, as GDAL needs for a palette image
        self.dataset.write_colormap(1, {int(v): (*map(int, c), 255) for v, c in zip(self.values, colors)})
        self.dataset.set_band_description(1, "class" if values is not None else "class id")
        if names:
            self.dataset.update_tags(1, CLASSES=";".join(f"{int(v)}={n}" for v, n in zip(self.values, names)))
        self.rows_written = 0

    def write(self, top: int, ids: np.ndarray) -> None:
        """Rows ``top:top + len(ids)`` of class ids (``NODATA_ID`` for no-data pixels)."""
        from rasterio.windows import Window

        self.dataset.write(self.lookup[ids][None], window=Window(0, top, self.width, len(ids)))
        self.rows_written += len(ids)

    def close(self) -> None:
        """Finish the map: the COG, with its overviews, replaces whatever was at ``path``."""
        from rasterio.shutil import copy as copy_raster

        self.dataset.close()
        try:
            if self.rows_written != self.height:
                raise RuntimeError(f"{self.path}: {self.rows_written} of {self.height} rows were written")
            with atomic_path(self.path) as tmp:
                copy_raster(self.tmp, tmp, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=256,
                            OVERVIEW_RESAMPLING="NEAREST", OVERVIEWS="AUTO", BIGTIFF="IF_SAFER")
        finally:
            self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        self.dataset.close()
        self.tmp.unlink(missing_ok=True)


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
        from .images import colorize, write_png

        write_png(path, colorize(self.ids, self.colors))


def write_polygons(map_path: str | Path, out_path: str | Path, names: Sequence[str], min_area: int = 0,
                   values: Sequence[int] | None = None, batch: int = 10000) -> int:
    """Write a map as polygons into a GeoPackage: one feature per connected region (4-connected)
    of a class, with its ``class`` name and ``class_id`` (its value in the map), in the map's
    CRS, after regions smaller than ``min_area`` px are merged into their neighbours
    (rasterio's sieve). No-data pixels make no polygon. Returns the number of features.

    Memory: not bounded by bands, unlike the map. The whole map is read, then its valid mask
    and its sieved copy are made, about 3 bytes per pixel, with GDAL's block cache
    (`GDAL_CACHE_MB`) and the polygons of a batch of ``batch`` features on top. Measured on a
    6000 x 6000 px map: 300 MiB with 52 thousand polygons, 400 MiB with 314 thousand (README,
    "Polygons")."""
    import rasterio
    from pyogrio.raw import write
    from rasterio import features

    name_of = dict(zip(values if values is not None else range(len(names)), names))
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.stem}.tmp.gpkg")
    tmp.unlink(missing_ok=True)
    count = 0
    try:
        with rasterio.open(map_path) as dataset:
            ids, nodata = dataset.read(1), dataset.nodata
            sieved = features.sieve(ids, min_area, mask=ids != nodata) if min_area > 1 else ids
            crs = dataset.crs.to_wkt() if dataset.crs else None
            chunk: list = []
            for shape in features.shapes(sieved, mask=sieved != nodata, transform=dataset.transform):
                chunk.append(shape)
                if len(chunk) == batch:
                    count += _write_features(write, tmp, chunk, name_of, crs, append=count > 0)
                    chunk = []
            if chunk or count == 0:
                count += _write_features(write, tmp, chunk, name_of, crs, append=count > 0)
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _write_features(write, path: Path, shapes: list, name_of: dict, crs, append: bool) -> int:
    geometry = np.array([_polygon_wkb(shape["coordinates"]) for shape, _ in shapes], dtype=object)
    ids = np.array([int(value) for _, value in shapes], dtype=np.int32)
    classes = np.array([name_of.get(int(value), str(int(value))) for _, value in shapes], dtype=object)
    write(path, geometry, field_data=[classes, ids], fields=["class", "class_id"], crs=crs, geometry_type="Polygon",
          driver="GPKG", layer="map", append=append, encoding="UTF-8")
    return len(shapes)


def _polygon_wkb(rings: Sequence[Sequence[Sequence[float]]]) -> bytes:
    """A polygon (exterior ring, then holes) as well-known binary, little-endian."""
    parts = [struct.pack("<BII", 1, 3, len(rings))]
    for ring in rings:
        points = np.asarray(ring, dtype="<f8")
        parts.append(struct.pack("<I", len(points)) + points.tobytes())
    return b"".join(parts)
