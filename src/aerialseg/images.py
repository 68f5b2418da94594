"""Reading images and labels, decoding colour-coded labels, writing PNGs.

Images are returned as ``uint8`` arrays of shape (H, W, C). Labels are decoded to ``uint8``
class-id maps of shape (H, W), with `IGNORE_INDEX` for ignored pixels. Every failure names
the file and the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .config import IGNORE_INDEX
from .files import atomic_path

Image.MAX_IMAGE_PIXELS = None  # aerial tiles are legitimately huge

Color = Sequence[int]


class InputError(ValueError):
    """An input file that the workflow cannot use; the message names the file."""


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as a (H, W, C) uint8 array (C = 3 for RGB)."""
    array = _read(path)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype != np.uint8:
        raise InputError(f"{path}: expected an 8-bit image, found {array.dtype}")
    return array


def read_label(path: str | Path) -> np.ndarray:
    """Read a colour-coded label as a (H, W, 3) uint8 array."""
    array = _read(path)
    if array.ndim != 3 or array.shape[2] < 3:
        raise InputError(f"{path}: expected an RGB colour-coded label, found shape {array.shape}")
    return array[:, :, :3]


def _read(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        with Image.open(path) as image:
            if image.mode in ("P", "PA", "RGBA", "LA", "CMYK", "YCbCr"):
                image = image.convert("RGB")
            return np.asarray(image)
    except InputError:
        raise
    except Exception as error:  # PIL and tifffile raise many types for unreadable files
        raise InputError(f"{path}: cannot read image ({error})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image, read from its header only."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.series[0].shape
            return (shape[0], shape[1]) if shape[-1] <= 16 else (shape[-2], shape[-1])
        with Image.open(path) as image:
            return image.height, image.width
    except Exception as error:
        raise InputError(f"{path}: cannot read image ({error})") from None


def _pack(colors: np.ndarray) -> np.ndarray:
    """Pack RGB triples into one uint32 each (0xRRGGBB)."""
    colors = colors.astype(np.uint32, copy=False)
    return (colors[..., 0] << 16) | (colors[..., 1] << 8) | colors[..., 2]


def decode_colors(
    label: np.ndarray,
    colors: Sequence[Color],
    ignore_colors: Sequence[Color] = (),
    *,
    source: str | Path = "label",
) -> np.ndarray:
    """Map a (H, W, 3) colour label to class ids (uint8); ignored colours become IGNORE_INDEX.

    Raises `InputError` listing up to five unknown colours with their pixel counts and the
    position of one pixel each.
    """
    keys = _pack(label)
    ids = np.full(keys.shape, IGNORE_INDEX, dtype=np.uint8)
    known = np.zeros(keys.shape, dtype=bool)
    for class_id, color in enumerate(colors):
        mask = keys == _pack(np.asarray(color))
        ids[mask] = class_id
        known |= mask
    for color in ignore_colors:
        known |= keys == _pack(np.asarray(color))
    if not known.all():
        raise InputError(_unknown_colors_message(source, keys, known))
    return ids


def _unknown_colors_message(source, keys: np.ndarray, known: np.ndarray) -> str:
    unknown = keys[~known]
    values, first, counts = np.unique(unknown, return_index=True, return_counts=True)
    order = np.argsort(-counts)[:5]
    flat_positions = np.flatnonzero(~known)
    lines = []
    for i in order:
        row, col = divmod(int(flat_positions[first[i]]), keys.shape[1])
        v = int(values[i])
        rgb = [(v >> 16) & 255, (v >> 8) & 255, v & 255]
        lines.append(f"{rgb}: {counts[i]} pixels, e.g. at row {row}, col {col}")
    more = f" (showing 5 of {len(values)})" if len(values) > 5 else ""
    return (
        f"{source}: {unknown.size} pixels have a colour that is neither a class colour nor in "
        f"data.ignore_colors{more}:\n    " + "\n    ".join(lines)
    )


def load_pair(
    image_path: str | Path,
    label_path: str | Path,
    colors: Sequence[Color],
    ignore_colors: Sequence[Color] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Read an image and its label; return (image (H, W, C) uint8, class ids (H, W) uint8)."""
    image = read_image(image_path)
    label = read_label(label_path)
    if image.shape[:2] != label.shape[:2]:
        raise InputError(
            f"{label_path}: label is {label.shape[1]} x {label.shape[0]} px but image "
            f"{image_path} is {image.shape[1]} x {image.shape[0]} px (width x height)"
        )
    return image, decode_colors(label, colors, ignore_colors, source=label_path)


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
