"""One map as many jobs (``predict.block_size``): the grid of its blocks, written once; each
block's class ids, predicted from the block and its halo (`blocks.region`); the map gathered
from its blocks, the same file as one job writes (`inference.map_image`), pixel for pixel.

A block file is an ``.npz`` of per-pixel layers of its block (``ids``: class ids,
``IGNORE_INDEX`` for no-data; ``confidence``: uint8 codes of the confidence, 0 for no-data)
and where the block lies (``top``, ``left``); `LAYERS` names the layers a block carries and
what a pixel of a skipped block (all no-data) holds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..blocks import BlockGrid, Rect, Region, region
from ..class_ids import IGNORE_INDEX
from ..config import with_data_defaults
from ..errors import InputError
from ..files import atomic_path, write_json
from ..host_mosaic import Block
from ..inference import (LoadedModel, MapFiles, PredictOptions, Rasters, block_confidence, block_ids, load_model,
                         map_legend, with_temperature)
from ..io import write
from ..io.read import georeference, has_nodata, image_size, open_image
from ..io.spec import DataSpec
from .model_info import read_record
from .preflight import check_map_bands, check_map_size

log = logging.getLogger("aerialseg")

LAYERS = {"ids": (np.uint8, IGNORE_INDEX), "confidence": (np.uint8, 0)}
"""The per-pixel layers of a block file: their type and the value of a pixel that no block
holds (a block that is all no-data)."""
SCAN_ROWS = 256
"""Rows read at a time when the grid job looks for blocks that hold data."""


@dataclass(frozen=True)
class Grid:
    """A map's block grid as its grid job wrote it: the grid, the blocks that hold data (the
    others are all no-data: no job maps them), and what the model file says about itself
    (`model_info.read_record`)."""

    grid: BlockGrid
    blocks: tuple[tuple[int, int], ...]
    model: dict

    @classmethod
    def read(cls, path) -> "Grid":
        found = json.loads(Path(path).read_text())
        return cls(BlockGrid(found["height"], found["width"], found["block_size"]),
                   tuple(tuple(block) for block in found["blocks"]), found["model"])


def block_grid(block_size: int, model_path, image_path, out) -> None:
    """The block grid of an image's map (a small JSON file, the rules' checkpoint): its size,
    ``block_size``, the blocks that hold data, and what the model reads and writes."""
    model = read_record(model_path)
    check_map_bands(model, image_path, model_path)
    check_map_size(image_path, int(model["patch_size"]))
    if georeference(image_path) is None:
        raise InputError(f"{image_path}: not georeferenced: predict.block_size maps georeferenced images (GeoTIFF "
                         "maps) as blocks; set it to null for this image")
    height, width = image_size(image_path)
    grid = BlockGrid(height, width, block_size)
    kept = _blocks_with_data(grid, image_path, DataSpec.for_images({"data": with_data_defaults(model["data"])}))
    write_json({"image": str(image_path), "height": height, "width": width, "block_size": block_size,
                "blocks": kept, "model": {key: model[key] for key in ("case", "patch_size", "data") if key in model}}, out)
    log.info("%s: %d x %d px, %d of %d blocks of %d px hold data", image_path, width, height, len(kept),
             len(grid.index()), block_size)


def _blocks_with_data(grid: BlockGrid, image_path, spec: DataSpec) -> list[tuple[int, int]]:
    """The blocks with at least one valid pixel, read `SCAN_ROWS` rows at a time (every block
    when the image can have no no-data, `has_nodata`)."""
    if not has_nodata(image_path, spec.nodata):
        return grid.index()
    rows, cols = grid.shape
    found = np.zeros((rows, cols), dtype=bool)
    with open_image(image_path, spec, spec.nodata) as image:
        for row in range(rows):
            first = grid.block(row, 0)
            for top in range(first.top, first.bottom, SCAN_ROWS):
                valid = image.rows(top, min(top + SCAN_ROWS, first.bottom))[1]
                for col in range(cols):
                    block = grid.block(row, col)
                    found[row, col] |= bool(valid[:, block.left : block.right].any())
    return [(int(r), int(c)) for r, c in zip(*np.nonzero(found))]


@dataclass(frozen=True)
class BlockFiles:
    """What a block job reads and writes: the image, its grid file, the block's (row, column)
    in the grid and its block file."""

    image: str | Path
    grid: str | Path
    index: tuple[int, int]
    block: str | Path
    calibration: str | Path | None = None  # the run's calibration.csv: the confidence's temperature


def map_block(settings: dict, model_path, files: BlockFiles, threads: int | None = None) -> None:
    """One block of a map (`BlockFiles`): the windows of the whole image's mosaic that touch it
    predicted and blended (`blocks.region`), its pixels written as a block file."""
    grid = Grid.read(files.grid)
    block = grid.grid.block(*files.index)
    model = load_model(PredictOptions.from_settings(settings, threads), model_path)
    model = with_temperature(model, files.calibration)
    check_map_bands(model.checkpoint, files.image, model_path)
    check_map_size(files.image, model.options.size)
    layers = _predict_block(model, files.image, grid.grid, block)
    with atomic_path(files.block) as tmp, open(tmp, "wb") as out:
        np.savez_compressed(out, top=block.top, left=block.left, **layers)
    log.info("%s: block %s (rows %d:%d, columns %d:%d) written to %s", files.image, files.index, block.top,
             block.bottom, block.left, block.right, files.block)


def _predict_block(model: LoadedModel, image_path, grid: BlockGrid, block: Rect) -> dict[str, np.ndarray]:
    """The layers of one block (`LAYERS`), from the mosaic of its region."""
    layers = {name: np.full((block.height, block.width), empty, dtype=dtype) for name, (dtype, empty) in LAYERS.items()}
    with model.open(image_path) as image:
        if image.shape != (grid.height, grid.width):
            raise InputError(f"{image_path}: {image.width} x {image.height} px, but its block grid was made for "
                             f"{grid.width} x {grid.height} px: the image changed; run its grid job again")
        area = Region(image, region(block, image.shape, model.options.size, model.options.stride))
        log.info("block rows %d:%d, columns %d:%d; read with its halo: rows %d:%d, columns %d:%d", block.top,
                 block.bottom, block.left, block.right, area.rect.top, area.rect.bottom, area.rect.left,
                 area.rect.right)
        for found in model.iter_blocks(area):
            for name, rows in (("ids", found.ids), ("confidence", found.confidence)):
                inside = area.crop(found.top, rows, block)
                if inside is not None:
                    layers[name][inside[0]] = inside[1]
    return layers


def gather_blocks(grid_path, blocks: Sequence, files: MapFiles) -> None:
    """A map gathered from its block files (one for every block of the grid that holds data):
    the Cloud-Optimised GeoTIFF, preview, confidence raster and QGIS style that
    `prediction.map_images` writes (``files``), written band of blocks by band of blocks
    (memory: one row of blocks of the map)."""
    grid = Grid.read(grid_path)
    where = georeference(files.image)
    if where is None:
        raise InputError(f"{files.image}: not georeferenced: its map cannot be gathered as a GeoTIFF")
    if files.probabilities is not None or files.masked is not None:
        raise InputError(f"{files.image}: a map made as blocks has no probabilities or masked map yet")
    placed = _placed(grid, blocks)
    legend = map_legend(grid.model)
    height, width = grid.grid.height, grid.grid.width
    preview = write.Preview(height, width, legend.colors)
    with Rasters() as rasters:  # all finished together or all aborted: no half-written raster is left
        rasters.add(write.MapWriter(files.map, height, width, where, legend), block_ids)
        if files.confidence is not None:
            rasters.add(write.ScoreWriter(files.confidence, height, width, where, ["confidence"]), block_confidence)
        rows = (_row_of_blocks(grid.grid, placed, row) for row in range(grid.grid.shape[0]))
        rasters.fill(rows, lambda block: preview.write(block.top, block.ids))
    preview.save(files.preview)
    write.write_styles(legend, files.style, files.confidence_style)
    log.info("%s: gathered from %d block files to %s, preview %s", files.image, len(placed), files.map, files.preview)


def _placed(grid: Grid, paths: Sequence) -> dict[tuple[int, int], Path]:
    """The block files by their place in the grid, checked: exactly the blocks that hold data,
    each once, each of its block's size."""
    placed: dict[tuple[int, int], Path] = {}
    for path in map(Path, paths):
        with np.load(path) as found:
            index = (int(found["top"]) // grid.grid.size, int(found["left"]) // grid.grid.size)
            block = grid.grid.block(*index)
            if (int(found["top"]), int(found["left"])) != (block.top, block.left) or index in placed:
                raise InputError(f"{path}: a block at row {int(found['top'])}, column {int(found['left'])} is not a "
                                 "block of the grid, or a second file for its block")
            if found["ids"].shape != (block.height, block.width):
                raise InputError(f"{path}: {found['ids'].shape} px, but block {index} is {block.height} x {block.width}")
        placed[index] = path
    missing = set(grid.blocks) - set(placed)
    if missing or len(placed) != len(grid.blocks):
        raise InputError(f"the block files do not match the grid: missing {sorted(missing)}, "
                         f"{len(placed)} given for {len(grid.blocks)} blocks with data")
    return placed


def _row_of_blocks(grid: BlockGrid, placed: dict, row: int) -> Block:
    """One row of blocks as a `host_mosaic.Block` of rows (ids and confidence), each block file
    read once; `LAYERS`' value where no block is (a block all no-data)."""
    first = grid.block(row, 0)
    layers = {name: np.full((first.height, grid.width), empty, dtype=dtype) for name, (dtype, empty) in LAYERS.items()}
    for col in range(grid.shape[1]):
        if (row, col) in placed:
            block = grid.block(row, col)
            with np.load(placed[(row, col)]) as found:
                for name, band in layers.items():
                    band[:, block.left : block.right] = found[name]
    return Block(first.top, layers["ids"], layers["confidence"], _not_gathered, _not_gathered)


def _not_gathered(*args):
    raise NotImplementedError("block files hold ids and confidence only: no probabilities or confidence at another "
                              "temperature")
