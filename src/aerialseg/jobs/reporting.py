"""The reporting jobs: scores and confusion matrices of a prediction, pooled tiles, the
comparison tables, the checked conclusions and the figures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import config as cfg
from .. import budget, tables
from ..config import Case, Run, layout
from ..io.labels import load_pair
from ..io.read import read_image
from ..io.spec import DataSpec
from ..files import write_csv, write_markdown, write_text, write_yaml
from ..metrics import confusion_matrix, mean_iou, per_class

log = logging.getLogger("aerialseg")


@dataclass(frozen=True)
class EvaluationFiles:
    """What an evaluate job reads (an image, its label, its predicted class ids) and writes (its
    per-class scores, its confusion matrix and, where named, the mosaic figure)."""

    image: str | Path
    label: str | Path
    prediction: str | Path
    metrics: str | Path
    confusion: str | Path
    mosaic: str | Path | None = None


def evaluate(settings: dict, run: Run, place: str, files: EvaluationFiles) -> None:
    """Per-class scores and the confusion matrix of one prediction against its label, and
    the mosaic figure (image | ground truth | prediction | errors) with the mIoU; ``place``
    (the split, with the tile where it has several: "test", "test tile t2") titles the figure."""
    names = cfg.class_names(settings)
    image_arr, truth = load_pair(files.image, files.label, DataSpec.from_config(settings))
    prediction = read_image(files.prediction)[:, :, 0]
    cm = confusion_matrix(truth, prediction, len(names))
    _write_scores(cm, names, files.metrics, files.confusion)
    if files.mosaic:
        from .. import figures

        classes = list(zip(names, cfg.class_colors(settings)))
        title = f"{run.label}, {place}: mIoU {mean_iou(cm):.3f}"
        shown = image_arr[:, :, :3] if image_arr.shape[2] >= 3 else np.repeat(image_arr[:, :, :1], 3, axis=2)
        figures.save(figures.mosaic_panel(shown, truth, prediction, classes, title), files.mosaic)


def _write_scores(cm: np.ndarray, names: Sequence[str], metrics_out, confusion_out) -> None:
    write_csv(per_class(cm, names), metrics_out)
    write_csv(pd.DataFrame(cm, index=names, columns=names).rename_axis("truth").reset_index(), confusion_out)


def pool(settings: dict, confusion_paths: Sequence, metrics_out, confusion_out) -> None:
    """The scores of a split's tiles pooled: one confusion matrix, the sum of theirs, and its
    per-class scores (what `evaluate` writes for a split of one image)."""
    cm = sum(read_confusion(path) for path in confusion_paths)
    _write_scores(cm, cfg.class_names(settings), metrics_out, confusion_out)
    log.info("%d tiles pooled: %d pixels counted, mIoU %.4f", len(confusion_paths), cm.sum(), mean_iou(cm))


def read_confusion(path) -> np.ndarray:
    return pd.read_csv(path, index_col=0).to_numpy()


@dataclass(frozen=True)
class SummaryInputs:
    """What the summary reads: each run's ``history.csv`` (``histories``), each (run, image)'s
    (pooled) ``confusion.csv`` (``confusions``), the class statistics, each (run, image, tile)'s
    ``confusion.csv`` (``tile_confusions``) and each run's ``calibration.csv`` (its test ECE
    joins the evaluation tables)."""

    histories: Mapping[Run, str | Path]
    confusions: Mapping[tuple[Run, str], str | Path]
    class_stats: str | Path
    tile_confusions: Mapping[tuple[Run, str, str], str | Path] | None = None
    calibrations: Mapping[Run, str | Path] | None = None


def summarize(settings: dict, inputs: SummaryInputs, out: Mapping[str, str | Path]) -> None:
    """Write the comparison tables (CSV and Markdown), every single run, the study's Tables
    1-3 in its own layout, the scores of every tile, the calibration of every case, and the
    settings that shaped them, from ``inputs`` (`SummaryInputs`). ``out`` maps training,
    training_md, evaluation, evaluation_md, per_class, runs, study_tables, settings, tiles,
    calibration and calibration_md to paths. ``settings`` holds every setting that shapes a
    result (`config.result_settings`): its fingerprint ends each Markdown table."""
    histories, confusions, tile_confusions = inputs.histories, inputs.confusions, inputs.tile_confusions
    calibrations, class_stats_csv = inputs.calibrations, inputs.class_stats
    history = {run: pd.read_csv(path) for run, path in histories.items()}
    confusion = {key: read_confusion(path) for key, path in confusions.items()}
    seeds = {run.repeat: cfg.repeat_seed(settings, run.repeat) for run in history}
    if tile_confusions is not None and out.get("tiles"):
        tiles = {key: read_confusion(path) for key, path in tile_confusions.items()}
        write_csv(tables.tiles_table(tiles, seeds), out["tiles"])
    calibrated = {run: pd.read_csv(path) for run, path in (calibrations or {}).items()}
    ece = {run: float(frame["ece"].iloc[0]) for run, frame in calibrated.items()}
    calibration = pd.concat(calibrated.values(), ignore_index=True) if calibrated else None
    training = tables.training_table(history)
    evaluation = tables.evaluation_table(confusion, ece)
    name = cfg.fingerprint(settings)
    footer = f"\nSettings {name}: every setting that shaped these results is in {layout.SUMMARY}/settings.yaml.\n"
    write_csv(training, out["training"])
    write_markdown(training, out["training_md"], footer=footer)
    write_csv(evaluation, out["evaluation"])
    write_markdown(evaluation, out["evaluation_md"], footer=footer)
    write_csv(tables.per_class_table(confusion, cfg.class_names(settings)), out["per_class"])
    write_csv(tables.runs_table(history, confusion, seeds, ece), out["runs"])
    write_text(tables.study_tables(pd.read_csv(class_stats_csv), training, evaluation) + footer, out["study_tables"])
    if calibration is not None and out.get("calibration"):
        _write_calibration(calibration, out, footer)
    write_yaml({"fingerprint": name, "settings": settings}, out["settings"],
               "Every setting that shaped the results in results/ (aerialseg); the tables end with its fingerprint.")


def _write_calibration(runs: pd.DataFrame, out: Mapping[str, str | Path], footer: str) -> None:
    """The calibration table of the cases and whether temperature scaling lowered the test ECE
    in most runs (`calibration.temperature_helps`)."""
    from ..calibration import temperature_helps

    table = tables.calibration_table(runs)
    lowered = int((runs["ece_scaled"] < runs["ece"]).sum())
    helps = temperature_helps(runs["ece"].tolist(), runs["ece_scaled"].tolist())
    verdict = (f"\nTemperature scaling (one temperature per run, fitted on its validation patches) lowered the test "
               f"ECE in {lowered} of {len(runs)} runs: it {'helps' if helps else 'does not help'} in most runs of this "
               "study. ECE: expected calibration error over 15 equal-width confidence bins, a fraction 0-1.\n")
    write_csv(table, out["calibration"])
    write_markdown(table, out["calibration_md"], footer=verdict + footer)
    log.info("temperature scaling lowered the test ECE in %d of %d runs", lowered, len(runs))


def conclude(settings: dict, runs_csv, patch_csvs: Mapping[int, str | Path], markdown_out, html_out) -> None:
    """Check the study's three conclusions against every run (see `aerialseg.conclusions`);
    ``patch_csvs`` maps each patch size to its patch index."""
    from .. import conclusions

    experiment = settings["experiment"]
    strides = {size: cfg.training_stride(settings, size) for size in experiment["patch_sizes"]}
    steps = {size: budget.steps_per_epoch(int((pd.read_csv(path)["split"] == "train").sum()), settings["train"]["batch_size"])
             for size, path in patch_csvs.items()}
    found, blocks = conclusions.document(pd.read_csv(runs_csv), experiment["split"], strides=strides, steps=steps,
                                         budget=budget.of(settings["train"]))
    write_text(conclusions.to_markdown(blocks), markdown_out)
    write_text(conclusions.to_html(blocks), html_out)
    for number, finding in enumerate(found, 1):
        log.info("conclusion %d (%s): %s", number, finding.claim, finding.verdict)


def figure_curves(run: Run, history_path, out) -> None:
    from .. import figures

    history = pd.read_csv(history_path)
    figures.save(figures.training_curves(history, f"{run.label}: training curves"), out)


def figure_confusions(settings: dict, image: str, confusions: Mapping[Case, str | Path], out) -> None:
    """The row-normalised confusion matrices of the cases (``confusions``: case -> file) on one image."""
    from .. import figures

    matrices = {case.name: read_confusion(path) for case, path in confusions.items()}
    title = f"{image} image: row-normalised confusion matrices"
    figures.save(figures.confusion_grid(matrices, cfg.class_names(settings), title), out)


def figure_learning(histories: Mapping[Run, str | Path], out) -> None:
    """Validation mIoU of every run against its optimiser steps and its training pixels."""
    from .. import figures

    figures.save(figures.learning_curves({run: pd.read_csv(path) for run, path in histories.items()}), out)


def figure_summary(settings: dict, evaluation_csv, out) -> None:
    from .. import figures

    metrics = tuple(settings["figures"]["metrics"])
    figures.save(figures.metric_vs_patch_size(pd.read_csv(evaluation_csv), metrics), out)


def figure_reliability(case: str, reliability: Sequence, scaled: Sequence, calibrations: Sequence, out) -> None:
    """The reliability diagram of a case (`figures.reliability_diagram`): the test tiles'
    counts of its runs pooled, as predicted and with each run's temperature."""
    from .. import figures
    from ..calibration import ReliabilityCounts, pool

    def pooled(paths):
        return pool(ReliabilityCounts.from_frame(pd.read_csv(path)) for path in paths)

    temperatures = ", ".join(f"{pd.read_csv(path)['temperature'].iloc[0]:.2f}" for path in calibrations)
    counts = {"as predicted": pooled(reliability), f"temperature {temperatures}": pooled(scaled)}
    figures.save(figures.reliability_diagram(counts, f"{case}: reliability on the test tiles"), out)
