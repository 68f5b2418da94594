"""The headers of input files, read once and kept: what the workflow must know of an image
before any job runs (its size, bands, data bands and where it lies), so that parsing the
workflow opens no image it has seen before.

Snakemake parses the workflow in every run, every dry run and every cluster job. A
`HeaderRecord` keeps each file's `Header` in a JSON file (`.snakemake/aerialseg/headers.json`
for the workflow) keyed by the file's stamp: its size and modification time, and those of the
files beside it that place it (world file, ``.prj``, ``.aux.xml``). A header is read from the
file only where the record holds none for the file as it is now.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from ..files import write_json
from .read import data_bands, georeference, image_header, world_file

log = logging.getLogger(__name__)


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


def stamp(path: str | Path) -> list:
    """What a header depends on: the size and modification time (ns) of the file and of the
    files beside it that place it on the Earth."""
    path = Path(path)
    beside = [world_file(path), path.with_suffix(".prj"), path.with_name(path.name + ".aux.xml")]
    found = [(p, p.stat()) for p in [path, *beside] if p is not None and p.is_file()]
    return [[p.name, status.st_size, status.st_mtime_ns] for p, status in found]


class HeaderRecord:
    """Headers of images kept in a JSON file between runs (`header`); `save` writes the ones
    read since it was loaded."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self.read: list[str] = []  # files whose header was read from the file, not the record
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, ValueError):  # half-written by a killed run, say: read the headers again
                log.info("%s: unreadable, the image headers are read again", self.path)

    def header(self, path: str | Path) -> Header:
        """The header of an image: from the record where it holds one for the file as it is now,
        else read from the file (and kept)."""
        key, now = str(path), stamp(path)
        entry = self.entries.get(key)
        if entry is not None and entry["stamp"] == now:
            header = entry["header"]
            return Header(**{**header, "pixel_size": tuple(header["pixel_size"]) if header["pixel_size"] else None})
        found = read_header(path)
        self.entries[key] = {"stamp": now, "header": asdict(found)}
        self.read.append(key)
        return found

    def save(self) -> None:
        """Write the record if a header was read from its file since it was loaded."""
        if self.read:
            write_json(self.entries, self.path)
