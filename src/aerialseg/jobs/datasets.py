"""The data jobs: the demo scene, the class statistics and weights, the patch index, and
the training tiles side by side on one canvas."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import config as cfg
from .. import demo, patches, stats
from ..class_ids import IGNORE_INDEX
from ..errors import ConfigError, InputError
from ..io.labels import ignore_nodata, load_pair, read_label
from ..io.read import image_size, valid_mask
from ..io.spec import DataSpec
from ..io.write import write_png
from ..files import write_csv, write_json
from .preflight import MIN_TRAIN_PATCHES

log = logging.getLogger("aerialseg")


def demo_scene(image_path, label_path, size: int, seed: int) -> None:
    """Render the synthetic scene and write its image and colour label as PNG."""
    start = time.perf_counter()
    image, label = demo.render_scene(size=size, seed=seed)
    write_png(image_path, image)
    write_png(label_path, label)
    log.info("demo scene %d px (seed %d) written in %.1f s", size, seed, time.perf_counter() - start)


def class_stats(settings: dict, tiles: Mapping[str, Sequence[cfg.Tile]], stats_csv, weights_json,
                tiles_csv=None) -> None:
    """Class pixel counts and shares of each split (``tiles``: split -> its tiles, as
    `config.split_tiles` gives them), over all its tiles; class weights over all training
    tiles; with ``tiles_csv`` the counts of every tile too. The labels are read, and the
    images only where they can have no-data pixels, which are not counted."""
    names = cfg.class_names(settings)
    spec = DataSpec.from_config(settings)
    counts, per_tile = {}, {}
    for image, split in tiles.items():
        for tile in split:
            ids = read_label(tile.label, spec)
            ignore_nodata(ids, valid_mask(tile.image, spec, spec.nodata), tile.image)
            per_tile[(image, tile.name)] = stats.class_counts(ids, len(names))
            log.info("%s %s: %d labelled pixels, %d ignored", image, tile.name, per_tile[(image, tile.name)].sum(),
                     ids.size - per_tile[(image, tile.name)].sum())
        counts[image] = sum(per_tile[(image, tile.name)] for tile in split)
    labels = {image: [tile.label for tile in split] for image, split in tiles.items()}
    unweighted = settings["train"]["weighting"] == "none"
    source = ", ".join(map(str, labels["train"]))
    try:
        if not unweighted:
            stats.check_every_class_present(counts["train"], names, source)
    except ValueError as error:  # a class without pixels: an input problem, reported without traceback
        raise InputError(str(error)) from None
    weights = stats.class_weights(counts["train"], names)
    for name in (n for n, w in weights.items() if w is None):
        log.warning("class %r has no pixels in the training image: the model cannot learn it, and its weight "
                    "is undefined (null in %s; train.weighting is none, so the loss does not use it)", name, weights_json)
    write_csv(stats.class_table(counts, names), stats_csv)
    write_json(weights, weights_json)
    if tiles_csv:
        write_csv(stats.tile_table(per_tile, names), tiles_csv)
    log.info("class weights: %s", weights)


def patch_index(settings: dict, size: int, images_of: Mapping[str, str | Path], out_csv) -> None:
    """The patch grid of the training image (``images_of``: its one tile -> image file) for one
    patch size, without patches wholly in no-data, split into train and val: row, col, split."""
    write_csv(_patch_index(settings, size, images_of).drop(columns="tile"), out_csv)


def patch_index_of_tiles(settings: dict, size: int, images_of: Mapping[str, str | Path], out_csv) -> None:
    """`patch_index` of several training tiles (``images_of``: tile -> image file), with the
    tile of each patch (a tile column)."""
    write_csv(_patch_index(settings, size, images_of), out_csv)


def _patch_index(settings: dict, size: int, images_of: Mapping[str, str | Path]) -> pd.DataFrame:
    experiment = settings["experiment"]
    shapes = {tile: image_size(path) for tile, path in images_of.items()}
    spec = DataSpec.for_images(settings)
    valid = {tile: valid_mask(path, spec, spec.nodata) for tile, path in images_of.items()}
    try:
        index = patches.patch_index_of_tiles(shapes, size, cfg.training_stride(settings, size),
                                             patches.Split.of(experiment),
                                             valid={tile: mask for tile, mask in valid.items() if mask is not None})
    except ValueError as error:  # a split that the tiles cannot give: the message names the keys
        raise ConfigError(f"experiment.split {experiment['split']!r}, {size} px patches: {error}") from None
    if (index.split == "train").sum() < MIN_TRAIN_PATCHES:
        raise ConfigError(
            f"experiment.split {experiment['split']!r}: only {(index.split == 'train').sum()} training patch(es) of "
            f"{size} px are left; training needs at least {MIN_TRAIN_PATCHES} (use smaller blocks or a smaller stride)")
    log.info("p%d: %d patches (%d train, %d val)", size, len(index), (index.split == "train").sum(), (index.split == "val").sum())
    return index


def read_tiles(settings: dict, tiles: Sequence[cfg.Tile]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """All ``tiles`` (image and label) side by side on one canvas, as tall as the tallest, the
    rest filled with zeros and ignored labels: (image (H, W, C) uint8, class ids (H, W), the
    column where each tile starts). One tile is returned as it is read. The canvas needs
    (bands + 1) bytes per pixel of all tiles together, and each tile is copied in as it is read."""
    if len(tiles) == 1:
        image, ids = load_pair(tiles[0].image, tiles[0].label, DataSpec.from_config(settings))
        return image, ids, {tiles[0].name: 0}
    shapes = [image_size(tile.image) for tile in tiles]
    height, width = max(h for h, _ in shapes), sum(w for _, w in shapes)
    bands = len(settings["data"]["bands"])
    canvas, canvas_ids = np.zeros((height, width, bands), np.uint8), np.full((height, width), IGNORE_INDEX, np.uint8)
    offsets, col = {}, 0
    for tile, (h, w) in zip(tiles, shapes):
        image, ids = load_pair(tile.image, tile.label, DataSpec.from_config(settings))
        canvas[:h, col : col + w], canvas_ids[:h, col : col + w] = image, ids
        offsets[tile.name], col = col, col + w
    log.info("%d training tiles on a %d x %d px canvas (%.0f MB)", len(tiles), width, height,
             canvas.nbytes / 1e6 + canvas_ids.nbytes / 1e6)
    return canvas, canvas_ids, offsets
