"""The comparison tables of the study, built from the per-case outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import Case
from .metrics import per_class, summary

TRAINING_COLUMNS = [
    "case", "init", "patch_size", "train_acc", "train_loss", "train_miou",
    "val_acc", "val_loss", "val_miou", "train_seconds", "best_epoch", "epochs",
]
EVALUATION_COLUMNS = [
    "case", "init", "patch_size", "image", "precision", "recall", "f1", "f1_macro", "miou",
    "overall_accuracy", "kappa",
]


def best_epoch(history: pd.DataFrame) -> int:
    """The epoch whose weights are kept: the first with the highest validation mIoU."""
    scores = history["val_miou"].fillna(-np.inf).to_numpy()
    return int(history["epoch"].iloc[int(np.argmax(scores))])


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
    }


def training_table(histories: dict[Case, pd.DataFrame]) -> pd.DataFrame:
    return pd.DataFrame([training_row(c, h) for c, h in histories.items()], columns=TRAINING_COLUMNS)


def evaluation_table(confusions: dict[tuple[Case, str], np.ndarray]) -> pd.DataFrame:
    """The study's Table 3: one row per case and image."""
    rows = [
        {"case": case.name, "init": case.init, "patch_size": case.size, "image": image, **summary(cm)}
        for (case, image), cm in confusions.items()
    ]
    return pd.DataFrame(rows, columns=EVALUATION_COLUMNS)


def per_class_table(confusions: dict[tuple[Case, str], np.ndarray], class_names: list[str]) -> pd.DataFrame:
    frames = [
        per_class(cm, class_names).assign(case=case.name, image=image)
        for (case, image), cm in confusions.items()
    ]
    columns = ["case", "image", "class", "precision", "recall", "f1", "iou", "support"]
    return pd.concat(frames, ignore_index=True)[columns]
