"""The comparison tables of the study, built from the per-run outputs.

A run is one case trained with one seed: repeat 1 is the study's run, repeats 2.. are the
same case with the next seeds. Each score is the mean over the repeats (with one repeat, that
run's score), a ``repeats`` column holds their number and a ``{score}_sd`` column the standard
deviation between seeds (empty with one repeat): the same columns whatever the number of
repeats. Every single run stays in `runs_table`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from .config import Case, Run
from .metrics import best_index, per_class, summary

TRAINING_SCORES = ["train_acc", "train_loss", "train_miou", "val_acc", "val_loss", "val_miou", "train_seconds", "best_epoch"]
TRAINING_COLUMNS = [
    "case", "init", "patch_size", "train_acc", "train_loss", "train_miou",
    "val_acc", "val_loss", "val_miou", "train_seconds", "best_epoch", "epochs", "steps", "pixels",
]
CONFUSION_SCORES = ["precision", "recall", "f1", "f1_macro", "miou", "overall_accuracy", "kappa"]
EVALUATION_SCORES = [*CONFUSION_SCORES, "ece"]
"""The scores of an image: those of its confusion matrix and the expected calibration error of
its confidences (15 equal-width bins, `calibration`), measured on the test tiles only: empty
(NaN) on the training image, and where no calibration was given."""
EVALUATION_COLUMNS = ["case", "init", "patch_size", "image", *EVALUATION_SCORES]
PER_CLASS_SCORES = ["precision", "recall", "f1", "iou"]
PER_CLASS_COLUMNS = ["case", "image", "class", *PER_CLASS_SCORES, "support"]
RUN_COLUMNS = ["case", "init", "patch_size", "repeat", "seed", "image", *EVALUATION_SCORES, *TRAINING_SCORES,
               "steps", "pixels"]


def best_epoch(history: pd.DataFrame) -> int:
    """The epoch whose weights are kept (`metrics.best_index` of the validation mIoU)."""
    return int(history["epoch"].iloc[best_index(history["val_miou"].to_numpy())])


def training_row(case: Case, history: pd.DataFrame) -> dict:
    """The study's Table 2 row: the scores of the kept epoch and the total training time."""
    epoch = best_epoch(history)
    row = history.loc[history.epoch == epoch].iloc[0]
    return {
        "case": case.name, "init": case.init, "patch_size": case.size,
        **{k: float(row[k]) for k in ("train_acc", "train_loss", "train_miou", "val_acc", "val_loss", "val_miou")},
        "train_seconds": float(history["seconds"].sum()),
        "best_epoch": epoch,
        "epochs": int(history["epoch"].max()),
        "steps": int(history["steps"].iloc[-1]),  # optimiser steps and training pixels of the whole run
        "pixels": int(history["pixels"].iloc[-1]),
    }


def over_repeats(runs: pd.DataFrame, keys: list[str], scores: list[str], columns: list[str]) -> pd.DataFrame:
    """One row per ``keys``, with the same columns whatever the number of repeats: the mean of
    each score over the repeats (with one repeat, the run's own value, of its own type),
    ``repeats``, and a ``{score}_sd`` per score (the standard deviation between seeds; empty,
    NaN, with one repeat)."""
    groups = runs.groupby(keys, sort=False)
    first = groups[[c for c in columns if c not in keys and c not in scores]].first()
    table = groups[scores].mean().join(first).reset_index()[columns]
    if groups.size().max() == 1:
        table = table.astype({score: runs[score].dtype for score in scores})
    table["repeats"] = groups.size().to_numpy()
    sd = groups[scores].std(ddof=1).reset_index(drop=True).add_suffix("_sd")
    return pd.concat([table, sd], axis=1)


def training_runs(histories: Mapping[Run, pd.DataFrame]) -> pd.DataFrame:
    return pd.DataFrame([{**training_row(run.case, h), "repeat": run.repeat} for run, h in histories.items()])


def training_table(histories: Mapping[Run, pd.DataFrame]) -> pd.DataFrame:
    """The study's Table 2: one row per case, over its repeats."""
    return over_repeats(training_runs(histories), ["case"], TRAINING_SCORES, TRAINING_COLUMNS)


def evaluation_runs(confusions: Mapping[tuple[Run, str], np.ndarray],
                    ece: Mapping[Run, float] | None = None) -> pd.DataFrame:
    """One row per run and image: its confusion scores, and ``ece`` (the run's test ECE) on the
    test image's row."""
    ece = ece or {}
    return pd.DataFrame([
        {"case": run.case.name, "init": run.case.init, "patch_size": run.case.size, "image": image, "repeat": run.repeat,
         **summary(cm), "ece": float(ece.get(run, np.nan)) if image == "test" else np.nan}
        for (run, image), cm in confusions.items()
    ])


def evaluation_table(confusions: Mapping[tuple[Run, str], np.ndarray],
                     ece: Mapping[Run, float] | None = None) -> pd.DataFrame:
    """The study's Table 3: one row per case and image, over its repeats, with the test ECE."""
    return over_repeats(evaluation_runs(confusions, ece), ["case", "image"], EVALUATION_SCORES, EVALUATION_COLUMNS)


def per_class_table(confusions: Mapping[tuple[Run, str], np.ndarray], class_names: list[str]) -> pd.DataFrame:
    """Per class scores: one row per case, image and class, over the repeats."""
    frames = [
        per_class(cm, class_names).assign(case=run.case.name, image=image, repeat=run.repeat)
        for (run, image), cm in confusions.items()
    ]
    return over_repeats(pd.concat(frames, ignore_index=True), ["case", "image", "class"], PER_CLASS_SCORES, PER_CLASS_COLUMNS)


def runs_table(histories: Mapping[Run, pd.DataFrame], confusions: Mapping[tuple[Run, str], np.ndarray],
               seeds: Mapping[int, int], ece: Mapping[Run, float] | None = None) -> pd.DataFrame:
    """Every single run: one row per case, repeat and image, with the evaluation scores of
    that image, the run's seed and its training scores (the same on both image rows)."""
    training = training_runs(histories).drop(columns=["init", "patch_size", "epochs"])
    runs = evaluation_runs(confusions, ece).merge(training, on=["case", "repeat"], how="left")
    runs["seed"] = runs["repeat"].map(seeds)
    return runs[RUN_COLUMNS].sort_values(["repeat"], kind="stable").reset_index(drop=True)


TILE_COLUMNS = ["case", "init", "patch_size", "repeat", "seed", "image", "tile", *CONFUSION_SCORES]


def tiles_table(confusions: Mapping[tuple[Run, str, str], np.ndarray], seeds: Mapping[int, int]) -> pd.DataFrame:
    """The scores of every tile of every run: one row per case, repeat, image and tile."""
    rows = [{"case": run.case.name, "init": run.case.init, "patch_size": run.case.size, "repeat": run.repeat,
             "seed": seeds[run.repeat], "image": image, "tile": tile, **summary(cm)}
            for (run, image, tile), cm in confusions.items()]
    return pd.DataFrame(rows, columns=TILE_COLUMNS)


CALIBRATION_SCORES = ["temperature", "val_nll", "val_nll_scaled", "ece", "ece_scaled", "accuracy", "mean_confidence",
                      "confidence_correct", "confidence_wrong", "high_confidence_share", "high_confidence_accuracy",
                      "high_confidence_share_scaled"]
CALIBRATION_COLUMNS = ["case", "init", "patch_size", *CALIBRATION_SCORES]


def calibration_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The calibration of each case on the test tiles, over its repeats: the runs' rows of
    `jobs.calibration.calibrate` (one per run), as means with their spread."""
    return over_repeats(runs, ["case"], CALIBRATION_SCORES, CALIBRATION_COLUMNS)


# --- the study's tables, as published ----------------------------------------------------


def case_labels(cases: list[str]) -> dict[str, str]:
    """The study's labels: 1a, 1b, ... for ImageNet cases by patch size, 2a, ... for scratch."""
    parsed = sorted((Case.parse(c) for c in cases), key=lambda c: c.size)
    labels = {}
    for number, init in ((1, "imagenet"), (2, "scratch")):
        for letter, case in zip("abcdefghij", [c for c in parsed if c.init == init]):
            labels[case.name] = f"{number}{letter}"
    return labels


def _cell(row: pd.Series, score: str, scale: float = 1.0, digits: int = 2) -> str:
    value = f"{row[score] * scale:.{digits}f}"
    sd = row.get(f"{score}_sd")
    return value if sd is None or pd.isna(sd) else f"{value} ± {sd * scale:.{digits}f}"


def study_tables(class_stats: pd.DataFrame, training: pd.DataFrame, evaluation: pd.DataFrame) -> str:
    """Tables 1-3 of the study, in its layout, as Markdown (mean ± sd over repeats)."""
    repeats = int(training["repeats"].iloc[0])
    over = f", mean ± sd over {repeats} seeds" if repeats > 1 else ""
    shares = class_stats.pivot(index="class", columns="image", values="share")
    shares = shares.reindex(index=class_stats["class"].unique(), columns=["train", "test"])
    table1 = pd.DataFrame({"Class": shares.index, "Training image (%)": shares["train"].map("{:.2f}".format),
                           "Test image (%)": shares["test"].map("{:.2f}".format)})
    labels = case_labels(training["case"].tolist())
    order = sorted(training.index, key=lambda i: labels[training.loc[i, "case"]])
    table2 = pd.DataFrame([{
        "Case": labels[r.case], "Initialisation": r.init, "Patch size (px)": int(r.patch_size),
        "Train accuracy": _cell(r, "train_acc", 100), "Train loss": _cell(r, "train_loss", digits=3),
        "Train IoU": _cell(r, "train_miou", 100), "Validation accuracy": _cell(r, "val_acc", 100),
        "Validation loss": _cell(r, "val_loss", digits=3), "Validation IoU": _cell(r, "val_miou", 100),
        "Training time (min)": _cell(r, "train_seconds", 1 / 60),
    } for r in (training.loc[i] for i in order)])
    rows = []
    for i in order:
        case = training.loc[i, "case"]
        row = {"Case": labels[case], "Initialisation": training.loc[i, "init"], "Patch size (px)": int(training.loc[i, "patch_size"])}
        for image, title in (("train", "Train"), ("test", "Test")):
            scores = evaluation[(evaluation["case"] == case) & (evaluation["image"] == image)].iloc[0]
            for score, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
                row[f"{title} {name} (%)"] = _cell(scores, score, 100)
        rows.append(row)
    table3 = pd.DataFrame(rows)
    return "\n\n".join([
        "Table 1: class shares of the training and test images (percent of labelled pixels).",
        table1.to_markdown(index=False, disable_numparse=True),
        "Table 2: training results per case, at the kept epoch (best validation mIoU); accuracy and "
        f"IoU in percent, IoU the mean over classes; training time of all epochs{over}.",
        table2.to_markdown(index=False, disable_numparse=True),
        "Table 3: support-weighted precision, recall and F1 of the whole training and test images, "
        f"in percent{over}.",
        table3.to_markdown(index=False, disable_numparse=True),
    ]) + "\n"
