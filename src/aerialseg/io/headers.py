"""What an image's header says: its size, bands, data bands and where it lies (`Header`), all
that the checks before the study's jobs need (`jobs.preflight`), read without its pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .read import data_bands, georeference, image_header


@dataclass(frozen=True)
class Header:
    """An image's size, its bands and data bands (alpha aside), and where it lies: its CRS as
    text (None where unknown) and pixel size, or ``georeferenced`` False."""

    height: int
    width: int
    bands: int
    data_bands: int
    georeferenced: bool
    crs: str | None = None
    pixel_size: tuple[float, float] | None = None


def read_header(path: str | Path) -> Header:
    """The `Header` of an image, from the file and the files beside it."""
    height, width, bands = image_header(path)
    where = georeference(path)
    if where is None:
        return Header(height, width, bands, data_bands(path), False)
    pixel = (round(abs(where.transform.a), 9), round(abs(where.transform.e), 9))
    crs = where.crs.to_string() if where.crs is not None else None
    return Header(height, width, bands, data_bands(path), True, crs, pixel)
