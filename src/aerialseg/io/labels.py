"""Decoding labels to class ids: ``uint8`` maps (H, W), with `IGNORE_INDEX` for ignored pixels,
in one of three formats (`LABEL_FORMATS`, one object each, chosen once per label):

``color``
    RGB labels; each class has a colour (ISPRS colour coding by default).
``index``
    single-channel labels; each class has a value.
``gray_sorted``
    the original study's rule: the label read as greyscale, its grey levels numbered in
    ascending order. Kept for compatibility; two palette colours whose grey levels lie within
    one level of each other are refused, since they collapse (see `gray_level`).

Decoding goes through a lookup table, a band of rows at a time, so it needs little memory
beyond the label and the result. Every failure names the file and the problem. `load_pair`
reads a label with its image, whose no-data pixels it sets to the ignore index.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..class_ids import IGNORE_INDEX
from ..errors import InputError
from .read import CHUNK_ROWS, open_image, read_raster
from .spec import DataSpec

log = logging.getLogger("aerialseg")

Color = Sequence[int]
UNKNOWN = 254  # lookup-table entry of a label value that is neither a class nor ignored


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
    return decode_label(read_raster(path), spec, source=path)


def load_pair(image_path: str | Path, label_path: str | Path, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """An image's configured bands (H, W, C) uint8 and its label's class ids (H, W) uint8, the
    ids of the image's no-data pixels (`read`) set to the ignore index: left out of the loss
    and every score.

    The label is decoded first, so its raw array is freed before the image is read.
    """
    ids = read_label(label_path, spec)
    with open_image(image_path, spec, spec.nodata) as image:
        if image.shape != ids.shape:
            raise InputError(size_mismatch(image_path, image.shape, label_path, ids.shape))
        pixels, valid = image.rows(0, image.height)
    ignore_nodata(ids, valid, image_path)
    return pixels, ids


def ignore_nodata(ids: np.ndarray, valid: np.ndarray | None, image_path) -> None:
    """Set the ids of an image's no-data pixels (not ``valid``; None: none) to the ignore index."""
    if valid is not None and not valid.all():
        log.info("%s: %d no-data pixels, left out", image_path, int((~valid).sum()))
        ids[~valid] = IGNORE_INDEX


def size_mismatch(image_path, image_shape, label_path, label_shape) -> str:
    return (
        f"{label_path}: label is {label_shape[1]} x {label_shape[0]} px but image {image_path} is "
        f"{image_shape[1]} x {image_shape[0]} px (width x height)"
    )
