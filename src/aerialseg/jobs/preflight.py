"""The checks before the study's jobs, from file headers only (palette, sizes, bands, patch
sizes, the validation split, the images to map), and the record of which input images are
georeferenced: the pre-flight job (rule preflight), so that parsing the workflow opens no image."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

from .. import config as cfg
from .. import patches
from ..errors import ConfigError, InputError
from ..files import write_json
from ..io.labels import lookup_table, size_mismatch
from ..io.headers import Header, read_header
from ..io.read import check_bands, data_bands, image_header, image_size
from ..io.spec import DataSpec

log = logging.getLogger("aerialseg")


def preflight(config: dict, out: str | Path) -> None:
    """The pre-flight job: `check_inputs` on the validated config (a problem stops the workflow
    before any job reads an image), its warnings logged, and the record ``out`` of the input
    images that are georeferenced, which the rules read to know which maps are GeoTIFFs
    (``{"georeferenced": [path, ...]}``)."""
    headers = _Headers()
    for warning in check_inputs(config, headers):
        log.warning("%s", warning)
    images = [tile.image for split in cfg.SPLITS for tile in cfg.tiles(config, split)]
    images += [tile.image for tile in cfg.maps(config)]
    georeferenced = sorted({image for image in images if headers(image).georeferenced})
    write_json({"georeferenced": georeferenced}, out)
    log.info("checked %d input file(s); %d image(s) georeferenced", len(headers.read), len(georeferenced))


def check_inputs(config: dict, headers: Callable[[str], Header] = read_header) -> list[str]:
    """Check what can be checked from file headers only (``headers``): the label palette, image
    and label sizes, the bands asked for, that every patch size fits, that the validation split
    leaves patches on both sides, and that the images to map have the training images' bands.
    Returns warnings: images to map whose CRS or pixel size differ from the training tiles'."""
    spec = DataSpec.from_config(config)
    lookup_table(spec, source="config")
    largest = max(config["experiment"]["patch_sizes"])
    for split in cfg.SPLITS:
        for tile in cfg.tiles(config, split):
            found, label = headers(tile.image), headers(tile.label)
            if (found.height, found.width) != (label.height, label.width):
                raise InputError(size_mismatch(tile.image, (found.height, found.width), tile.label,
                                               (label.height, label.width)))
            check_patch_fits(tile.image, (found.height, found.width), largest)
            check_bands(tile.image, spec.bands, found.bands)
    training = [headers(tile.image) for tile in cfg.tiles(config, "train")]
    _check_split(config, [(found.height, found.width) for found in training])
    return _check_like_training(config, headers)


class _Headers:
    """Headers read once each (`read_header`), and the files they were read from."""

    def __init__(self):
        self.read: dict[str, Header] = {}

    def __call__(self, path) -> Header:
        if path not in self.read:
            self.read[path] = read_header(path)
        return self.read[path]


def _check_like_training(config: dict, header: Callable[[str], Header]) -> list[str]:
    """Every other image (the other training tiles, the test tiles, the images to map) must
    have the data bands of the first training tile (alpha bands aside, which mark no-data);
    a CRS or pixel size that differs from its is worth a warning. The images to map must also
    be at least as large as the largest patch."""
    first = cfg.tiles(config, "train")[0]
    ours = header(first.image)
    others = [(tile.image, "") for split in cfg.SPLITS for tile in cfg.tiles(config, split)[split == "train":]]
    others += [(tile.image, " to map (data.predict)") for tile in cfg.maps(config)]
    warnings = []
    for path, role in others:
        theirs = header(path)
        if theirs.data_bands != ours.data_bands:
            raise InputError(f"{path}: the image{role} has {theirs.data_bands} data band(s), the training images "
                             f"{ours.data_bands} ({first.image}): one model cannot read both")
        if role:
            check_patch_fits(path, (theirs.height, theirs.width), max(config["experiment"]["patch_sizes"]))
        if ours.georeferenced and theirs.georeferenced:
            for what, their, our in (("CRS", theirs.crs, ours.crs), ("pixel size", theirs.pixel_size, ours.pixel_size)):
                if their != our:
                    warnings.append(f"{path}: its {what} is {their}, the training tiles' {our} ({first.image}); "
                                    "it is used anyway, but a model sees pixels, not metres")
    return warnings


def _check_split(config: dict, shapes: Sequence[tuple[int, int]]) -> None:
    """The random split of every patch size leaves at least one validation patch and two
    training patches (BatchNorm needs a batch of two). The blocks and tiles splits are checked
    by the patches job, which draws them."""
    experiment = config["experiment"]
    if experiment["split"] != "random":
        return
    fraction = experiment["val_fraction"]
    for size in experiment["patch_sizes"]:
        stride = cfg.training_stride(config, size)
        n = sum(len(patches.window_starts(h, size, stride)) * len(patches.window_starts(w, size, stride)) for h, w in shapes)
        n_val = int(round(n * fraction))
        if n_val < 1 or n - n_val < MIN_TRAIN_PATCHES:
            where = (f"{shapes[0][1]} x {shapes[0][0]} px training image" if len(shapes) == 1
                     else f"{len(shapes)} training tiles")
            raise ConfigError(
                f"experiment.val_fraction: {fraction} splits the {n} patches of {size} px (stride {stride}) of the "
                f"{where} into {n - n_val} for training and {n_val} for validation; "
                f"training needs at least {MIN_TRAIN_PATCHES} and validation at least 1: choose a fraction nearer "
                "0.2, or a smaller stride or patch size"
            )


MIN_TRAIN_PATCHES = 2
"""A training batch of one never reaches BatchNorm, so at least two training patches."""


def check_patch_fits(path, shape: tuple[int, int], largest: int) -> None:
    height, width = shape
    if min(height, width) < largest:
        raise InputError(
            f"{path}: image is {width} x {height} px, smaller than the largest patch size "
            f"{largest} px (experiment.patch_sizes)"
        )


def check_map_bands(checkpoint: dict, image_path, model_path) -> None:
    """An image to map has the data bands of the model's training images."""
    bands, trained = data_bands(image_path), checkpoint["data"]["image_bands"]
    if bands != trained:
        raise InputError(f"{image_path}: {bands} data band(s), but {model_path} was trained on images of {trained}: "
                         "the model cannot read it")


def check_chosen_bands(image_path, bands) -> None:
    """The bands chosen to read from an image to map (counting from 0) exist in it."""
    count = image_header(image_path)[2]
    if max(bands) >= count:
        raise InputError(f"{image_path}: band {max(bands) + 1} asked for (--bands, counting from 1), but the image "
                         f"has {count} band(s)")


def check_band_count(checkpoint: dict, bands, model_path) -> None:
    """The bands chosen to read from the images to map (counting from 0) are as many as the
    model reads."""
    trained = checkpoint["data"]["bands"]
    if len(bands) != len(trained):
        raise InputError(f"bands {_numbers(bands)} (counting from 1): {len(bands)} band(s), but {model_path} reads "
                         f"{len(trained)} (it was trained on bands {_numbers(trained)})")


def _numbers(bands) -> str:
    """Bands counted from 0 as GDAL and QGIS number them, from 1: ``2,1,0`` -> ``3,2,1``."""
    return ",".join(str(band + 1) for band in bands)


def check_map_size(image_path, window: int) -> None:
    """An image to map is at least as large as the prediction window."""
    height, width = image_size(image_path)
    if min(height, width) < window:
        raise InputError(f"{image_path}: {width} x {height} px, smaller than the model's {window} px windows")
