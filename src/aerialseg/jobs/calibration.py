"""The calibration job: how far one run's confidences can be trusted. It fits the run's
temperature on its validation patches (the split the run held out from training) and counts,
over its test tiles, how often pixels of each confidence are right, as predicted (T = 1) and
with the temperature applied (`calibration`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import config as cfg
from ..calibration import MAX_FIT_PIXELS, FIT_SEED, ReliabilityCounts, fit_temperature, pixel_rows
from ..class_ids import IGNORE_INDEX
from ..config import Run
from ..files import write_csv
from ..inference import LoadedModel, PredictOptions, load_model
from ..io.labels import read_label
from ..io.spec import DataSpec
from .datasets import read_tiles

log = logging.getLogger("aerialseg")

BATCH = 64
"""Validation patches per model call."""


@dataclass(frozen=True)
class CalibrationFiles:
    """A calibration job's files: the training tiles (the validation patches are cut from
    them) and the patch index that says which patches are validation ones, the test tiles
    (image and label); the run's ``calibration.csv`` (one row), and the test tiles' reliability
    counts (`calibration.ReliabilityCounts.to_frame`) as predicted (``reliability``) and with
    the temperature (``scaled``)."""

    train_tiles: Sequence[cfg.Tile]
    patches: str | Path
    test_tiles: Sequence[cfg.Tile]
    summary: str | Path
    reliability: str | Path
    scaled: str | Path


def calibrate(settings: dict, run: Run, model_path, files: CalibrationFiles, threads: int | None = None) -> None:
    """Fit the run's temperature on its validation patches; count the test tiles' confidences
    and correctness at T = 1 and at the fitted T (15 equal-width bins); write both counts and
    one row of scores: the temperature, the validation NLL before and after, the test ECE
    before (``ece``) and after (``ece_scaled``), the accuracy, the mean confidence of right
    and of wrong pixels, and the share and accuracy of pixels above 0.9 confidence."""
    model = load_model(PredictOptions.from_settings(settings, threads), model_path, len(files.test_tiles))
    logits, labels = validation_scores(settings, model, files)
    fit = fit_temperature(logits, labels)
    log.info("temperature %.3f fitted on %d validation pixels: NLL %.4f -> %.4f", fit.temperature, fit.pixels,
             fit.nll_before, fit.nll_after)
    raw, scaled = counts_of_tiles(settings, model, files.test_tiles, fit.temperature)
    write_csv(raw.to_frame(), files.reliability)
    write_csv(scaled.to_frame(), files.scaled)
    row = {"case": run.case.name, "init": run.case.init, "patch_size": run.case.size, "repeat": run.repeat,
           "temperature": fit.temperature, "val_nll": fit.nll_before, "val_nll_scaled": fit.nll_after,
           "val_pixels": fit.pixels, **raw.summary(), "ece_scaled": scaled.ece(),
           "high_confidence_share_scaled": scaled.high_confidence_share()}
    write_csv(pd.DataFrame([row]), files.summary)
    log.info("test tiles: ECE %.4f as predicted, %.4f at T = %.3f (%d pixels)", raw.ece(), scaled.ece(),
             fit.temperature, raw.total)


def validation_scores(settings: dict, model: LoadedModel, files: CalibrationFiles) -> tuple[np.ndarray, np.ndarray]:
    """The model's scores (N, K) and the labels (N,) of the pixels of the run's validation
    patches, each patch predicted alone as in training's validation. Of more patches than
    `calibration.MAX_FIT_PIXELS` pixels a seeded draw of patches is taken (the fit draws
    pixels from them)."""
    image, ids, offsets = read_tiles(settings, files.train_tiles)
    index = pd.read_csv(files.patches, dtype={"tile": str}, keep_default_na=False)
    if "tile" in index:  # a patch's column on the canvas is its column in its tile plus the tile's offset
        index = index.assign(col=index.col + index.tile.astype(str).map(offsets))
    val = index.loc[index.split == "val", ["row", "col"]].to_numpy()
    if len(val) == 0:
        raise ValueError(f"{files.patches}: no validation patch to fit a temperature on")
    size = model.options.size
    most = max(1, MAX_FIT_PIXELS // (size * size))
    if len(val) > most:
        val = val[np.sort(np.random.default_rng(FIT_SEED).choice(len(val), most, replace=False))]
    scores, labels = [], []
    for start in range(0, len(val), BATCH):
        corners = val[start : start + BATCH]
        windows = np.stack([image[r : r + size, c : c + size] for r, c in corners])
        scores.append(pixel_rows(model.window_scores(windows), axis=1))
        labels.append(np.stack([ids[r : r + size, c : c + size] for r, c in corners]).ravel())
    log.info("%d validation patches of %d px predicted", len(val), size)
    return np.concatenate(scores), np.concatenate(labels)


def counts_of_tiles(settings: dict, model: LoadedModel, tiles: Sequence[cfg.Tile],
                temperature: float) -> tuple[ReliabilityCounts, ReliabilityCounts]:
    """The reliability counts of the test tiles pooled, at T = 1 and at ``temperature``: every
    pixel with a label and data, its confidence (float32, from the blended scores of the
    mosaic, as the map's) and whether the map's class is its label's."""
    spec = DataSpec.from_config(settings)
    raw, scaled = ReliabilityCounts.empty(), ReliabilityCounts.empty()
    for tile in tiles:
        truth = read_label(tile.label, spec)
        with model.open(tile.image) as image:
            for block in model.iter_blocks(image):
                rows = truth[block.top : block.top + len(block.ids)]
                valid = (rows != IGNORE_INDEX) & (block.ids != IGNORE_INDEX)
                correct = block.ids == rows
                raw = raw.add(block.confidence_at(1.0), correct, valid)
                scaled = scaled.add(block.confidence_at(temperature), correct, valid)
    return raw, scaled
