"""Reading images and labels, decoding labels to class ids, writing PNGs and GeoTIFFs.

Images (PNG and JPEG through Pillow; TIFF, GeoTIFF, cloud-optimised GeoTIFF and any other
raster GDAL reads through rasterio, `read_by_gdal`; any integer dtype, or floats with a value range; any number of bands) are
returned as ``uint8`` arrays (H, W, C) holding the configured bands, scaled from
``data.value_range``. A GeoTIFF's CRS and geotransform (`georeference`) go to the
predictions written as GeoTIFF (`rasters.MapWriter`).
Labels are decoded to ``uint8`` class-id maps (H, W), with `IGNORE_INDEX` for ignored
pixels, in one of three formats (`LABEL_FORMATS`, one object each, chosen once per label):

``color``
    RGB labels; each class has a colour (ISPRS colour coding by default).
``index``
    single-channel labels; each class has a value.
``gray_sorted``
    the original study's rule: the label read as greyscale, its grey levels numbered in
    ascending order. Kept for compatibility; two palette colours whose grey levels lie within
    one level of each other are refused, since they collapse (see `gray_level`).

Decoding goes through a lookup table, a band of rows at a time, so it needs little memory
beyond the label and the result. Every failure names the file and the problem.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .class_ids import IGNORE_INDEX
from .errors import InputError
from .files import atomic_path

Image.MAX_IMAGE_PIXELS = None  # aerial tiles are legitimately huge

Color = Sequence[int]
UNKNOWN = 254  # lookup-table entry of a label value that is neither a class nor ignored
CHUNK_ROWS = 512
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Images that Pillow reads (whole); every other raster goes through GDAL (`read_by_gdal`)."""


def read_by_gdal(path: str | Path) -> bool:
    """Whether an image is read through rasterio/GDAL (GeoTIFF, COG, JPEG 2000, ERDAS .img,
    ... with windows, a CRS and a no-data mask) rather than whole through Pillow (PNG, JPEG)."""
    return Path(path).suffix.lower() not in PILLOW_SUFFIXES


@dataclass(frozen=True)
class DataSpec:
    """How to read the images and decode the labels (the ``data`` section of the config)."""

    colors: tuple[tuple[int, int, int], ...]
    label_format: str = "color"
    values: tuple[int, ...] | None = None
    ignore_colors: tuple[tuple[int, int, int], ...] = ()
    ignore_values: tuple[int, ...] = ()
    bands: tuple[int, ...] = (0, 1, 2)
    value_range: tuple[float, float] | None = None
    names: tuple[str, ...] = field(default=())
    nodata: float | None = None

    @classmethod
    def from_config(cls, config: dict) -> "DataSpec":
        data = config["data"]
        classes = data.get("classes", [])  # reading images alone needs none
        values = [c.get("value") for c in classes]
        return cls(
            colors=tuple(tuple(c["color"]) for c in classes),
            label_format=data.get("label_format", "color"),
            values=tuple(values) if None not in values else None,
            ignore_colors=tuple(tuple(c) for c in data.get("ignore_colors", [])),
            ignore_values=tuple(data.get("ignore_values", [])),
            bands=tuple(data.get("bands", (0, 1, 2))),
            value_range=tuple(data["value_range"]) if data.get("value_range") else None,
            names=tuple(c["name"] for c in classes),
            nodata=data.get("nodata"),
        )


# --- reading rasters ---------------------------------------------------------------------


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")


def _read_raster(path: str | Path) -> np.ndarray:
    """Any raster as (H, W) or (H, W, C), in its own dtype."""
    path = Path(path)
    _check_file(path)
    try:
        if read_by_gdal(path):
            return _read_gdal(path)
        with Image.open(path) as image:
            if image.mode in ("P", "PA", "RGBA", "LA", "CMYK", "YCbCr"):
                image = image.convert("RGBA" if image.mode in ("PA", "RGBA") else "RGB")
            return np.asarray(image)
    except InputError:
        raise
    except Exception as error:  # PIL and GDAL raise many types for unreadable files
        raise InputError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None


@contextmanager
def _gdal(path: Path):
    """An open rasterio dataset, without rasterio's warning for a file that has no
    georeference (plain TIFFs are fine; `georeference` says whether there is one)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as dataset:
            yield dataset


def _read_gdal(path: Path) -> np.ndarray:
    """A raster through GDAL (TIFF, GeoTIFF, COG, ...): (H, W) or (H, W, C)."""
    with _gdal(path) as dataset:
        array = dataset.read()  # (bands, H, W), either interleaving
    return array[0] if len(array) == 1 else np.moveaxis(array, 0, -1)


def image_header(path: str | Path) -> tuple[int, int, int]:
    """(height, width, bands) of an image, from its header only."""
    path = Path(path)
    _check_file(path)
    try:
        if read_by_gdal(path):
            with _gdal(path) as dataset:
                return dataset.height, dataset.width, dataset.count
        with Image.open(path) as image:
            bands = 3 if image.mode in ("P", "CMYK", "YCbCr") else len(image.getbands())
            return image.height, image.width, bands
    except Exception as error:
        raise InputError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None


@dataclass(frozen=True)
class Georeference:
    """Where an image lies on the Earth: its coordinate reference system and the affine
    transform from pixel (col, row) to map coordinates (rasterio's CRS and Affine)."""

    crs: object
    transform: object


def georeference(path: str | Path) -> Georeference | None:
    """The CRS and geotransform of a GeoTIFF (or any GDAL raster); None for a PNG or JPEG, or
    for a raster that carries no CRS or only the identity transform (GDAL's default for plain
    TIFFs)."""
    path = Path(path)
    if not read_by_gdal(path) or not path.is_file():
        return None
    try:
        with _gdal(path) as dataset:
            if dataset.crs is None or dataset.transform.is_identity:
                return None
            return Georeference(dataset.crs, dataset.transform)
    except Exception as error:
        raise InputError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None


def data_bands(path: str | Path) -> int:
    """The bands of an image that hold data: all but an alpha band (which marks no-data,
    `rasters`), from the header only."""
    path = Path(path)
    bands = image_header(path)[2]
    if read_by_gdal(path):
        from rasterio.enums import ColorInterp

        with _gdal(path) as dataset:
            return bands - sum(interp == ColorInterp.alpha for interp in dataset.colorinterp)
    return bands - 1 if path.suffix.lower() == ".png" and bands in (2, 4) else bands


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image, from its header only."""
    return image_header(path)[:2]


def check_bands(path, bands: Sequence[int], available: int) -> None:
    if max(bands) >= available:
        raise InputError(
            f"{path}: data.bands asks for band {max(bands)} (counting from 0) but the image has "
            f"{available} band(s)"
        )


def read_image(path: str | Path, spec: DataSpec | None = None) -> np.ndarray:
    """The image's configured bands as (H, W, C) uint8, scaled from ``spec.value_range``."""
    array = _read_raster(path)
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


# --- decoding labels ----------------------------------------------------------------------


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """RGB triples -> one integer each (0xRRGGBB)."""
    colors = np.asarray(colors).astype(np.uint32, copy=False)
    return (colors[..., 0] << 16) | (colors[..., 1] << 8) | colors[..., 2]


def gray_level(colors: np.ndarray) -> np.ndarray:
    """Greyscale as Pillow's ``convert("L")`` computes it (ITU-R 601-2 luma, fixed point).

    Other decoders (OpenCV, scikit-image) round differently and may differ by one level.
    """
    c = np.asarray(colors).astype(np.uint32, copy=False)
    return ((c[..., 0] * 19595 + c[..., 1] * 38470 + c[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint32)


@dataclass(frozen=True)
class LabelFormat:
    """One way of coding classes in label files (``data.label_format``): which pixels a
    label holds (``bands``), the key of each pixel, the keys of the classes and of the ignored
    codes, and how messages name a key and the config keys that list them."""

    name: str
    bands: str  # "single" or "rgb"
    what: str  # how a key is called in messages
    where: str  # the config keys a key may come from
    table_size: int

    def keys(self, label: np.ndarray) -> np.ndarray:
        return label

    def describe(self, key: int) -> str:
        return f"{self.what} {key}"

    def class_keys(self, spec: "DataSpec", source) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    def check(self, label: np.ndarray, source) -> np.ndarray:
        """The label's pixels to decode, or `InputError` naming the file."""
        if self.bands == "single" and label.ndim != 2:
            raise InputError(f"{source}: label_format {self.name!r} needs a single-channel label, found {label.shape[2]} bands")
        if self.bands == "rgb":
            if label.ndim != 3 or label.shape[2] < 3:
                raise InputError(f"{source}: label_format {self.name!r} needs an RGB label, found shape {label.shape}")
            label = label[:, :, :3]
        return label


class _ColorLabels(LabelFormat):
    def keys(self, label):
        return pack_rgb(label)

    def describe(self, key):
        return str([(key >> 16) & 255, (key >> 8) & 255, key & 255])

    def class_keys(self, spec, source):
        return ([int(k) for k in pack_rgb(np.array(spec.colors))],
                [int(k) for k in pack_rgb(np.array(spec.ignore_colors).reshape(-1, 3))])


class _IndexLabels(LabelFormat):
    def class_keys(self, spec, source):
        if spec.values is None:
            raise InputError(f"{source}: data.label_format 'index' needs a value for every class (data.classes[].value)")
        return list(spec.values), list(spec.ignore_values)


class _GraySortedLabels(LabelFormat):
    def keys(self, label):
        return gray_level(label)

    def class_keys(self, spec, source):
        levels = [int(g) for g in gray_level(np.array(spec.colors))]
        ignore = [int(g) for g in gray_level(np.array(spec.ignore_colors).reshape(-1, 3))]
        names = list(spec.names or map(str, spec.colors))
        named = list(zip(names, levels)) + [(f"ignored {list(c)}", g) for c, g in zip(spec.ignore_colors, ignore)]
        for i, (name_a, a) in enumerate(named):
            for name_b, b in named[i + 1 :]:
                if abs(a - b) <= 1:
                    raise InputError(
                        f"{source}: data.label_format 'gray_sorted' cannot tell {name_a} (grey level {a}) "
                        f"from {name_b} (grey level {b}): their colours collapse to (nearly) one grey level; "
                        "use label_format 'color'"
                    )
        if levels != sorted(levels):
            order = [name for name, _ in sorted(zip(names, levels), key=lambda pair: pair[1])]
            raise InputError(
                f"{source}: with data.label_format 'gray_sorted' the classes are numbered by grey level, "
                f"so data.classes must be listed in that order: {', '.join(order)}"
            )
        return levels, ignore


LABEL_FORMATS = {
    "color": _ColorLabels("color", "rgb", "colour", "data.classes[].color nor in data.ignore_colors", 1 << 24),
    "index": _IndexLabels("index", "single", "value", "data.classes[].value nor in data.ignore_values", 1 << 16),
    "gray_sorted": _GraySortedLabels("gray_sorted", "rgb", "grey level",
                                     "the grey level of a class colour nor of an ignore colour", 256),
}
"""The label formats, by their ``data.label_format`` name; each is chosen once, by `label_format`."""


def label_format(spec: DataSpec, source="config") -> LabelFormat:
    try:
        return LABEL_FORMATS[spec.label_format]
    except KeyError:
        raise InputError(f"{source}: unknown data.label_format {spec.label_format!r}") from None


def lookup_table(spec: DataSpec, source="config") -> tuple[np.ndarray, dict[int, int]]:
    """(table mapping label keys to ids, {key: id} of the classes), checking the palette."""
    fmt = label_format(spec, source)
    class_keys, ignore_keys = fmt.class_keys(spec, source)
    table = np.full(fmt.table_size, UNKNOWN, dtype=np.uint8)
    table[ignore_keys] = IGNORE_INDEX
    table[class_keys] = np.arange(len(class_keys), dtype=np.uint8)
    return table, dict(zip(class_keys, range(len(class_keys))))


def decode_label(label: np.ndarray, spec: DataSpec, *, source: str | Path = "label") -> np.ndarray:
    """Map a label array to class ids (uint8); ignored pixels become IGNORE_INDEX.

    Raises `InputError` listing up to five unknown colours or values with their pixel counts
    and one pixel position each.
    """
    fmt = label_format(spec, source)
    label = fmt.check(label, source)
    if label.dtype.kind == "i" and label.size and 0 <= label.min() and label.max() <= 65535:
        label = label.astype(np.uint16)  # Pillow reads some 16-bit PNGs as int32
    if label.dtype.kind != "u" or label.dtype.itemsize > 2:
        raise InputError(f"{source}: labels must be 8- or 16-bit unsigned integers, found {label.dtype}")
    table, _ = lookup_table(spec, source)
    ids = np.empty(label.shape[:2], dtype=np.uint8)
    for start in range(0, label.shape[0], CHUNK_ROWS):
        ids[start : start + CHUNK_ROWS] = table[fmt.keys(label[start : start + CHUNK_ROWS])]
    if (ids == UNKNOWN).any():
        raise InputError(_unknown_message(source, fmt.keys(label), ids == UNKNOWN, fmt))
    return ids


def _unknown_message(source, keys: np.ndarray, unknown: np.ndarray, fmt: LabelFormat) -> str:
    values, first, counts = np.unique(keys[unknown], return_index=True, return_counts=True)
    positions = np.flatnonzero(unknown)
    lines = []
    for i in np.argsort(-counts, kind="stable")[:5]:
        row, col = divmod(int(positions[first[i]]), keys.shape[1])
        lines.append(f"{fmt.describe(int(values[i]))}: {counts[i]} pixels, e.g. at row {row}, col {col}")
    more = f" (the 5 most frequent of {len(values)} shown)" if len(values) > 5 else ""
    return (f"{source}: {int(unknown.sum())} pixels have a {fmt.what} that is neither in {fmt.where}{more}:\n    "
            + "\n    ".join(lines))


def decode_colors(label: np.ndarray, colors: Sequence[Color], ignore_colors: Sequence[Color] = (), *, source="label") -> np.ndarray:
    """Decode an RGB colour label (a shortcut for `decode_label` with format 'color')."""
    spec = DataSpec(colors=tuple(map(tuple, colors)), ignore_colors=tuple(map(tuple, ignore_colors)))
    return decode_label(label, spec, source=source)


def read_label(path: str | Path, spec: DataSpec) -> np.ndarray:
    """Read and decode a label file to class ids (H, W) uint8."""
    return decode_label(_read_raster(path), spec, source=path)


def load_pair(image_path: str | Path, label_path: str | Path, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Read an image and its label: (image (H, W, C) uint8, class ids (H, W) uint8).

    The label is decoded first, so its raw array is freed before the image is read.
    """
    ids = read_label(label_path, spec)
    image = read_image(image_path, spec)
    if image.shape[:2] != ids.shape:
        raise InputError(size_mismatch(image_path, image.shape[:2], label_path, ids.shape))
    return image, ids


def size_mismatch(image_path, image_shape, label_path, label_shape) -> str:
    return (
        f"{label_path}: label is {label_shape[1]} x {label_shape[0]} px but image {image_path} is "
        f"{image_shape[1]} x {image_shape[0]} px (width x height)"
    )


# --- writing ------------------------------------------------------------------------------


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as PNG atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def colorize(ids: np.ndarray, colors: Sequence[Color], ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Map class ids to RGB colours; ignored and unknown ids become black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(colors)] = np.asarray(colors, dtype=np.uint8)
    table[ignore_index] = 0
    return table[ids]
