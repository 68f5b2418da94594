"""Opening images: headers, bands, georeference, reading whole or a band of rows at a time
with the no-data mask, and scaling to uint8.

Images (PNG and JPEG through Pillow, whole: their decoders have no windows; TIFF, GeoTIFF,
cloud-optimised GeoTIFF and any other raster GDAL reads through rasterio windows, never whole,
`read_by_gdal`; any integer dtype, or floats with a value range; any number of bands) are
returned as ``uint8`` arrays (H, W, C) holding the configured bands, scaled from
``data.value_range``. A GeoTIFF's CRS and geotransform (`georeference`) go to the predictions
written as GeoTIFF (`write.MapWriter`).

No-data (`open_image`, `valid_mask`): a pixel is no-data where the image says so (its nodata
value, its internal mask or its alpha band, as GDAL's dataset mask combines them; the alpha
band of a PNG, `_png_alpha`), where every configured band equals ``data.nodata`` when that is
set (it then replaces the file's own nodata value, while an internal mask or alpha band still
counts), and where a float band is NaN or infinite. An alpha band marks no-data and is no data
band (`data_bands`), unless ``data.bands`` reads it as one.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image as PillowImage

from ..errors import InputError
from .spec import DataSpec

PillowImage.MAX_IMAGE_PIXELS = None  # aerial tiles are legitimately huge

CHUNK_ROWS = 512
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Images that Pillow reads (whole); every other raster goes through GDAL (`read_by_gdal`)."""


def read_by_gdal(path: str | Path) -> bool:
    """Whether an image is read through rasterio/GDAL (GeoTIFF, COG, JPEG 2000, ERDAS .img,
    ... with windows, a CRS and a no-data mask) rather than whole through Pillow (PNG, JPEG)."""
    return Path(path).suffix.lower() not in PILLOW_SUFFIXES


# --- files and headers --------------------------------------------------------------------


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")


def _unreadable(path: Path, error: Exception) -> InputError:
    return InputError(f"{path}: cannot read image ({type(error).__name__}: {error})")


@contextmanager
def _without_georeference_warning():
    """Silences rasterio's warning for a file that has no georeference: plain TIFFs are fine
    (`georeference` says whether there is one)."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


@contextmanager
def _gdal(path: Path):
    """An open rasterio dataset, without the warning for a file that has no georeference."""
    import rasterio

    with _without_georeference_warning(), rasterio.open(path) as dataset:
        yield dataset


def image_header(path: str | Path) -> tuple[int, int, int]:
    """(height, width, bands) of an image, from its header only."""
    path = Path(path)
    _check_file(path)
    try:
        if read_by_gdal(path):
            with _gdal(path) as dataset:
                return dataset.height, dataset.width, dataset.count
        with PillowImage.open(path) as image:
            bands = 3 if image.mode in ("P", "CMYK", "YCbCr") else len(image.getbands())
            return image.height, image.width, bands
    except Exception as error:
        raise _unreadable(path, error) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image, from its header only."""
    return image_header(path)[:2]


@dataclass(frozen=True)
class Georeference:
    """Where an image lies on the Earth: its coordinate reference system (None where only a
    world file places it and nothing gives its CRS) and the affine transform from pixel
    (col, row) to map coordinates (rasterio's CRS and Affine); ``world_file`` where the
    transform comes from one."""

    crs: object
    transform: object
    world_file: Path | None = None


def world_file(path: str | Path) -> Path | None:
    """The world file beside an image, if any: ``.pgw`` beside a PNG, ``.jgw`` beside a JPEG,
    ``.tfw`` beside a TIFF (first and last letter of the suffix and ``w``), the suffix and
    ``w`` (``.pngw``), or ``.wld``; GDAL reads each."""
    path = Path(path)
    suffix = path.suffix.lower()
    if len(suffix) < 3:
        return None
    for candidate in (f".{suffix[1]}{suffix[-1]}w", f"{suffix}w", ".wld"):
        for spelled in (candidate, candidate.upper()):
            if path.with_suffix(spelled).is_file():
                return path.with_suffix(spelled)
    return None


def _prj_crs(path: Path):
    """The CRS in a ``.prj`` file beside an image (WKT, as ESRI writes it), or None."""
    from rasterio.crs import CRS

    prj = path.with_suffix(".prj")
    if not prj.is_file():
        return None
    try:
        return CRS.from_user_input(prj.read_text().strip())
    except Exception as error:  # rasterio raises CRSError, and others for odd text
        raise InputError(f"{prj}: not a CRS that GDAL reads ({type(error).__name__}: {error})") from None


def georeference(path: str | Path) -> Georeference | None:
    """The CRS and geotransform of a GeoTIFF (or any GDAL raster), or of any image with a world
    file beside it (`world_file`; its CRS from a ``.prj`` or ``.aux.xml`` beside it, else
    unknown: None); None for a PNG or JPEG without one, or for a raster that carries no CRS or
    only the identity transform (GDAL's default for plain TIFFs)."""
    path = Path(path)
    world = world_file(path) if path.is_file() else None
    if not path.is_file() or (not read_by_gdal(path) and world is None):
        return None
    try:
        with _gdal(path) as dataset:
            crs, transform = dataset.crs, dataset.transform
    except Exception as error:
        raise _unreadable(path, error) from None
    crs = crs or _prj_crs(path)
    if transform.is_identity or (crs is None and world is None):
        return None
    return Georeference(crs, transform, world)


# --- alpha bands: they mark no-data, they hold no data ------------------------------------


def _png_alpha(path: Path, count: int) -> int | None:
    """The alpha band of a PNG of ``count`` bands: the last of a grey-alpha (2) or RGBA (4)
    image; None for any other image (GDAL says its own, `_gdal_alpha`)."""
    return count - 1 if path.suffix.lower() == ".png" and count in (2, 4) else None


def _gdal_alpha(dataset) -> list[int]:
    """The bands of a rasterio dataset whose colour interpretation is alpha."""
    from rasterio.enums import ColorInterp

    return [band for band, interp in enumerate(dataset.colorinterp) if interp == ColorInterp.alpha]


def data_bands(path: str | Path) -> int:
    """The bands of an image that hold data: all but an alpha band (which marks no-data), from
    the header only."""
    path = Path(path)
    if not read_by_gdal(path):
        bands = image_header(path)[2]
        return bands - (_png_alpha(path, bands) is not None)
    _check_file(path)
    try:
        with _gdal(path) as dataset:  # opened once: its band count and their colour interpretation
            return dataset.count - len(_gdal_alpha(dataset))
    except Exception as error:
        raise _unreadable(path, error) from None


def check_bands(path, bands: Sequence[int], available: int) -> None:
    if max(bands) >= available:
        raise InputError(
            f"{path}: data.band_numbers asks for band {max(bands) + 1} (counting from 1; data.bands {max(bands)}, "
            f"counting from 0) but the image has {available} band(s)"
        )


# --- reading whole ------------------------------------------------------------------------


def read_raster(path: str | Path) -> np.ndarray:
    """Any raster whole, as (H, W) or (H, W, C), in its own dtype (a palette image as RGB, one
    with transparency as RGBA)."""
    path = Path(path)
    _check_file(path)
    try:
        if read_by_gdal(path):
            with _gdal(path) as dataset:
                array = dataset.read()  # (bands, H, W), either interleaving
            return array[0] if len(array) == 1 else np.moveaxis(array, 0, -1)
        with PillowImage.open(path) as image:
            if image.mode in ("P", "PA", "RGBA", "LA", "CMYK", "YCbCr"):
                image = image.convert("RGBA" if image.mode in ("PA", "RGBA") else "RGB")
            return np.asarray(image)
    except InputError:
        raise
    except Exception as error:  # PIL and GDAL raise many types for unreadable files
        raise _unreadable(path, error) from None


def read_image(path: str | Path, spec: DataSpec | None = None) -> np.ndarray:
    """The image's configured bands as (H, W, C) uint8, scaled from ``spec.value_range``."""
    array = read_raster(path)
    if array.ndim == 2:
        array = array[:, :, None]
    if spec is None:
        bands = tuple(range(array.shape[2]))
        value_range = None
    else:
        bands, value_range = spec.bands, spec.value_range
    check_bands(path, bands, array.shape[2])
    if list(bands) != list(range(array.shape[2])):
        array = array[:, :, list(bands)]
    return to_uint8(array, value_range, source=path)


def to_uint8(array: np.ndarray, value_range: tuple[float, float] | None, *, source) -> np.ndarray:
    """Scale ``value_range`` (default: the integer dtype's full range) linearly to 0..255.

    A float image with NaN or infinite pixels is refused (`InputError` with their count and
    the first one's position): no colour would be right for them."""
    if value_range is None:
        if array.dtype == np.uint8:
            return array
        if not np.issubdtype(array.dtype, np.integer):
            raise InputError(f"{source}: {array.dtype} image: set data.value_range to the values that map to 0 and 255")
        info = np.iinfo(array.dtype)
        value_range = (info.min, info.max)
    low, high = map(float, value_range)
    scale = 255.0 / (high - low)
    out = np.empty(array.shape, dtype=np.uint8)
    floats = np.issubdtype(array.dtype, np.floating)
    for start in range(0, array.shape[0], CHUNK_ROWS):  # chunks keep the float copy small
        chunk = (array[start : start + CHUNK_ROWS].astype(np.float32) - low) * scale
        if floats and not np.isfinite(chunk).all():
            raise InputError(_not_finite_message(source, array, start))
        out[start : start + CHUNK_ROWS] = np.clip(np.rint(chunk), 0, 255)
    return out


def _not_finite_message(source, array: np.ndarray, first_row: int) -> str:
    bad = ~np.isfinite(array[first_row:]).reshape(array.shape[0] - first_row, array.shape[1], -1)
    row, col, band = np.argwhere(bad)[0]
    return (f"{source}: {int(bad.any(axis=2).sum())} pixels are NaN or infinite, e.g. at row {first_row + row}, "
            f"col {col} (band {band}); they have no value to learn from or to predict. Fill them, or cut the "
            "image to where it has data")


# --- reading a band of rows at a time, with the no-data mask ------------------------------


@dataclass
class _Whole:
    """A PNG or JPEG held whole; a PNG's alpha band, unless read as a band, marks no-data."""

    array: np.ndarray
    path: Path

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape

    def read(self, area, bands: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        raw = self.array[area.top : area.bottom, area.left : area.right]
        alpha = _png_alpha(self.path, raw.shape[2])
        if alpha is None or alpha in bands:
            return raw, np.ones(raw.shape[:2], dtype=bool)
        return raw, raw[:, :, alpha] > 0

    def close(self) -> None:
        pass


@dataclass
class _Windows:
    """A GDAL raster read through rasterio windows; ``mask`` is the dataset's ``dataset_mask``,
    or None where it does not count (`open_image`)."""

    dataset: object
    mask: Callable | None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.dataset.height, self.dataset.width, self.dataset.count

    def read(self, area, bands: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        from rasterio.windows import Window

        window = Window(area.left, area.top, area.right - area.left, area.bottom - area.top)
        raw = np.moveaxis(self.dataset.read(window=window), 0, -1)
        return raw, self.mask(window=window) > 0 if self.mask is not None else np.ones(raw.shape[:2], bool)

    def close(self) -> None:
        self.dataset.close()


@dataclass(frozen=True)
class _Area:
    top: int
    left: int
    bottom: int
    right: int


@dataclass
class Image:
    """An image open for reading, a band of rows at a time (`rows`); ``nodata`` is
    ``data.nodata``."""

    path: Path
    spec: DataSpec
    nodata: float | None
    source: _Whole | _Windows

    @property
    def height(self) -> int:
        return self.source.shape[0]

    @property
    def width(self) -> int:
        return self.source.shape[1]

    @property
    def count(self) -> int:
        return self.source.shape[2]

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def rows(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``top:bottom``: the configured bands as (h, W, C) uint8, scaled from the value
        range, and the valid (not no-data) pixels as (h, W) bool."""
        return self.window(_Area(top, 0, bottom, self.width))

    def window(self, area) -> tuple[np.ndarray, np.ndarray]:
        """The pixels of ``area`` (rows ``top:bottom``, columns ``left:right``, e.g. a
        `blocks.Rect`), as `rows` gives them."""
        raw, valid = self.source.read(area, self.spec.bands)
        selected = raw[:, :, list(self.spec.bands)]
        if self.nodata is not None:
            valid &= ~np.all(selected == self.nodata, axis=2)
        if np.issubdtype(selected.dtype, np.floating):
            finite = np.isfinite(selected).all(axis=2)
            valid &= finite
            selected = np.where(finite[:, :, None], selected, 0)
        return to_uint8(selected, self.spec.value_range, source=self.path), valid

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> "Image":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_image(path: str | Path, spec: DataSpec, nodata: float | None = None) -> Image:
    """Open an image for windowed reading (see the module's docstring); ``nodata`` is
    ``data.nodata``. The bands asked for must exist."""
    import rasterio
    from rasterio.enums import MaskFlags

    path = Path(path)
    _check_file(path)
    if not read_by_gdal(path):
        whole = read_raster(path)
        whole = whole[:, :, None] if whole.ndim == 2 else whole
        check_bands(path, spec.bands, whole.shape[2])
        return Image(path, spec, nodata, _Whole(whole, path))
    try:
        with _without_georeference_warning():
            dataset = rasterio.open(path)  # held open until the image is closed
    except Exception as error:
        raise _unreadable(path, error) from None
    check_bands(path, spec.bands, dataset.count)
    # data.nodata replaces the file's own nodata value; its internal mask or alpha band still
    # count, unless the alpha band is one that data.bands reads as data
    by_value = any(MaskFlags.nodata in band for band in dataset.mask_flag_enums)
    alpha_read = any(band in _gdal_alpha(dataset) for band in spec.bands)
    masked = not alpha_read and (nodata is None or not by_value)
    return Image(path, spec, nodata, _Windows(dataset, dataset.dataset_mask if masked else None))


def has_nodata(path: str | Path, nodata: float | None = None) -> bool:
    """Whether an image may have no-data pixels at all, from its header (so that images
    without any are not read for a mask): ``data.nodata`` set, a GDAL nodata value, mask or
    alpha band, a float data type (NaN), or a PNG with an alpha band."""
    path = Path(path)
    if nodata is not None:
        return True
    if not read_by_gdal(path):  # a JPEG has no alpha band; a PNG's header says whether it has one
        return path.suffix.lower() == ".png" and _png_alpha(path, image_header(path)[2]) is not None
    from rasterio.enums import MaskFlags

    with _gdal(path) as dataset:
        flags = dataset.mask_flag_enums
        return (any(MaskFlags.all_valid not in band for band in flags)
                or any(np.issubdtype(np.dtype(t), np.floating) for t in dataset.dtypes))


def valid_mask(path: str | Path, spec: DataSpec, nodata: float | None = None, chunk_rows: int = 1024) -> np.ndarray | None:
    """The valid pixels of a whole image as (H, W) bool, read a band of rows at a time; None
    when the image can have no no-data pixel (`has_nodata`)."""
    if not has_nodata(path, nodata):
        return None
    with open_image(path, spec, nodata) as image:
        valid = np.empty(image.shape, dtype=bool)
        for top in range(0, image.height, chunk_rows):
            valid[top : top + chunk_rows] = image.rows(top, min(top + chunk_rows, image.height))[1]
    return valid
