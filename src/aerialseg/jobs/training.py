"""The training job: one run (a case and a repeat) trained on all training tiles, and the
record of what made its model."""

from __future__ import annotations

import logging
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from .. import config as cfg
from .. import budget, stats
from ..backends import start_torch
from ..config import Case, Run
from ..errors import DivergenceError
from ..io.read import data_bands, georeference, image_size
from ..files import sha256, write_csv, write_yaml
from .preflight import check_patch_fits
from .datasets import read_tiles

log = logging.getLogger("aerialseg")


@dataclass(frozen=True)
class TrainFiles:
    """A training job's files: the training tiles (`config.Tile`: image and label), the patch
    index and the class weights it reads; the checkpoints, history and settings record it
    writes; where it keeps its resume state (outside the outputs, which Snakemake deletes when
    a job fails)."""

    tiles: Sequence[cfg.Tile]
    patches: str | Path
    weights: str | Path
    model: str | Path
    history: str | Path
    last: str | Path | None = None
    settings: str | Path | None = None
    resume: str | Path | None = None
    reference_patches: str | Path | None = None  # the smallest patch size's index, for a step or pixel budget


def train_case(settings: dict, run: Run, files: TrainFiles, threads: int = 1) -> None:
    """Train one run (a case, with its repeat's seed) on all training tiles; write its best
    checkpoint, its last one, the per-epoch history and the settings that made them (`files`).

    With ``files.resume`` the training state is kept there, so a killed job continues where
    it stopped when run again; it is removed once the outputs exist. A run that diverges stops
    with an error naming the run and the epoch, and writes no model.
    """
    clock, device = start_torch(settings["train"]["device"], threads)
    from .. import model as models
    from .. import train

    seed = cfg.repeat_seed(settings, run.repeat)
    log.info("case %s, repeat %d (seed %d), on %s (%d CPU threads)", run.case.name, run.repeat, seed, device, threads)
    data = _training_data(settings, files, run.case.size)
    clock.mark("data")
    train.seed_everything(seed)
    spec = _model_spec(settings, run.case.init, len(cfg.class_names(settings)), data.image.shape[2])
    net = models.build(spec, settings["model"]["weights"])
    clock.mark("model")
    clock.report("the first epoch")
    record = _settings_record(settings, run, seed)
    try:
        resume = train.Resume(files.resume, _resume_key(record, files)) if files.resume is not None else None
        trained = train.fit(net, spec, data, _train_settings(settings, seed, data, files), device, resume)
    except DivergenceError as error:
        raise DivergenceError(f"case {run.label}: {error}") from None
    _write_training(net, spec, trained, settings, record, files)


def _training_data(settings: dict, files: TrainFiles, size: int):
    """The training tiles side by side on one canvas (one tile: the tile itself), the patch
    index in canvas coordinates, and the loss's class weights."""
    from ..train import TrainingData

    image, ids, offsets = read_tiles(settings, files.tiles)
    for tile in files.tiles:
        check_patch_fits(tile.image, image_size(tile.image), size)
    index = pd.read_csv(files.patches, dtype={"tile": str}, keep_default_na=False)  # a tile may be named "0001"
    if "tile" in index:  # tiles: a patch's column on the canvas is its column in its tile plus the tile's offset
        index = index.assign(col=index.col + index.tile.astype(str).map(offsets))
    names = cfg.class_names(settings)
    weights = stats.loss_weights(json.loads(Path(files.weights).read_text()), names, settings["train"]["weighting"])
    return TrainingData(image, ids, index, size, weights)


def _train_settings(settings: dict, seed: int, data, files: TrainFiles):
    from ..train import TrainSettings

    t = settings["train"]
    return TrainSettings(
        epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], seed=seed, optimizer=t["optimizer"],
        weight_decay=t["weight_decay"], augment=t["augment"], capture=t["capture"], resume_seconds=t["resume_seconds"],
        budget_steps=_budget_steps(settings, data, files), precision=t["precision"], memory_format=t["memory_format"],
    )


def _budget_steps(settings: dict, data, files: TrainFiles) -> int | None:
    """The optimiser steps of a step or pixel budget (`budget.Budget.steps`); None for epochs,
    whose steps the training loop counts itself."""
    plan = budget.of(settings["train"])
    if isinstance(plan, budget.Epochs):
        return None
    n_train = int((data.index.split == "train").sum())
    reference = budget.Reference(settings["train"]["budget_size"],
                                 int((pd.read_csv(files.reference_patches).split == "train").sum()))
    steps = plan.steps(data.size, n_train, reference)
    log.info("budget: %s of the %d px patches in %d epochs: %d optimiser steps", plan.held_equal, reference.size,
             plan.epochs, steps)
    return steps


def _settings_record(settings: dict, run: Run, seed: int) -> dict:
    """What made a run's model: its case, repeat and seed, the settings that shape it, and
    their fingerprint (`config.fingerprint` of ``settings``). How the job runs (device,
    threads) is left out: it does not define the result."""
    shaping = cfg.without_run_options(settings, "train")
    return {"case": run.case.name, "repeat": run.repeat, "seed": seed, "fingerprint": cfg.fingerprint(shaping),
            "settings": shaping}


def _resume_key(record: dict, files: TrainFiles) -> str:
    """What a saved training state must match to be resumed: the run's record and its input
    files (the patch indexes and class weights by content, the tiles by path, size and time)."""
    indexes = [files.patches] + ([files.reference_patches] if files.reference_patches else [])
    inputs = [sha256(path) for path in (*indexes, files.weights)]  # small files: by content
    inputs += [_file_stamp(path) for tile in files.tiles for path in (tile.image, tile.label)]
    return cfg.fingerprint({"record": record, "inputs": inputs})


def _file_stamp(path) -> str:
    """A large file by its path, size and modification time."""
    status = Path(path).stat()
    return f"{path}:{status.st_size}:{status.st_mtime_ns}"


def _write_training(net, spec, trained: tuple[pd.DataFrame, dict, int], settings: dict, record: dict,
                    files: TrainFiles) -> None:
    """The run's files (`TrainFiles`) from what `train.fit` gave (``trained``: the history, the
    best epoch's weights and its number): model.pt, last.pt, history.csv, settings.yaml."""
    from .. import model as models

    history, best_state, best_epoch = trained
    data = {key: settings["data"][key] for key in cfg.LABEL_KEYS + cfg.IMAGE_KEYS}
    data["image_bands"] = data_bands(files.tiles[0].image)
    extra = dict(case=record["case"], repeat=record["repeat"], patch_size=Case.parse(record["case"]).size, data=data,
                 fingerprint=record["fingerprint"], resolution=_resolution(files.tiles[0].image))
    if files.last:
        models.save_checkpoint(files.last, net, spec, epoch=int(history.epoch.iloc[-1]), **extra)
    net.load_state_dict(best_state)
    models.save_checkpoint(files.model, net, spec, epoch=best_epoch, **extra)
    write_csv(history, files.history)
    if files.settings:
        write_yaml(record, files.settings, "What made this run's model.pt, last.pt and history.csv (aerialseg).")
    if files.resume:
        Path(files.resume).unlink(missing_ok=True)
    log.info("kept epoch %d of %d (best validation mIoU)", best_epoch, len(history))


def _resolution(image_path) -> float | None:
    """The pixel size in metres of a training image in a projected CRS in metres, else None
    (an exported model tells GIS software the resolution it was trained at)."""
    where = georeference(image_path)
    if where is None or where.crs is None or not where.crs.is_projected:
        return None
    try:
        metres = where.crs.linear_units_factor[1]
    except Exception:  # a CRS whose units GDAL cannot name
        return None
    return round(abs(where.transform.a) * metres, 6)


def _model_spec(settings: dict, init: str, n_classes: int, in_channels: int):
    from ..model import ModelSpec

    m = settings["model"]
    return ModelSpec(
        n_classes=n_classes, init=init, encoder=m["encoder"], encoder_depth=m["encoder_depth"],
        decoder_channels=m["decoder_channels"], in_channels=in_channels, architecture=m["architecture"],
    )
