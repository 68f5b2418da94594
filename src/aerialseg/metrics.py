"""Confusion matrices and the scores derived from them.

Rows of a confusion matrix are the ground truth, columns the prediction. A class with no
pixels in either has undefined scores (NaN), and the averages skip it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .class_ids import IGNORE_INDEX


def confusion_matrix(truth: np.ndarray, prediction: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes) over the pixels whose truth is not IGNORE_INDEX."""
    truth = np.asarray(truth).ravel()
    prediction = np.asarray(prediction).ravel()
    if truth.shape != prediction.shape:
        raise ValueError(f"truth has {truth.size} pixels but prediction has {prediction.size}")
    keep = truth != IGNORE_INDEX
    truth, prediction = truth[keep].astype(np.int64), prediction[keep].astype(np.int64)
    if truth.size and (truth.max() >= n_classes or prediction.max() >= n_classes or prediction.min() < 0):
        raise ValueError(f"class ids must lie in 0..{n_classes - 1}")
    flat = np.bincount(truth * n_classes + prediction, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def per_class(cm: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """One row per class: class, precision, recall, f1, iou, support (ground-truth pixels)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _divide(tp, predicted)
    recall = _divide(tp, support)
    f1 = _divide(2 * tp, support + predicted)
    iou = _divide(tp, support + predicted - tp)
    return pd.DataFrame(
        {
            "class": list(class_names),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "iou": iou,
            "support": support.astype(np.int64),
        }
    )


def summary(cm: np.ndarray) -> dict[str, float]:
    """Overall scores: support-weighted precision/recall/F1 (scikit-learn's 'weighted'),
    macro F1, mean IoU, overall accuracy and Cohen's kappa."""
    cm = np.asarray(cm, dtype=np.float64)
    scores = per_class(cm, range(len(cm)))
    total = cm.sum()
    support = scores["support"].to_numpy(dtype=np.float64)

    def weighted(column: str) -> float:
        # scikit-learn counts an undefined score as 0 in the weighted average (weight = support)
        values = np.nan_to_num(scores[column].to_numpy())
        return float((values * support).sum() / total) if total else float("nan")

    def mean(column: str) -> float:
        values = scores[column].to_numpy()
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    accuracy = overall_accuracy(cm)
    expected = float((cm.sum(axis=0) * cm.sum(axis=1)).sum() / total**2) if total else float("nan")
    kappa = (accuracy - expected) / (1 - expected) if total and expected != 1 else float("nan")
    return {
        "precision": weighted("precision"),
        "recall": weighted("recall"),
        "f1": weighted("f1"),
        "f1_macro": mean("f1"),
        "miou": mean("iou"),
        "overall_accuracy": accuracy,
        "kappa": kappa,
    }


def overall_accuracy(cm: np.ndarray) -> float:
    """The share of counted pixels on the diagonal (NaN for an empty matrix)."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def mean_iou(cm: np.ndarray) -> float:
    return summary(cm)["miou"]


def best_index(scores) -> int:
    """The index of the first highest score, a missing (NaN) score counting as the lowest:
    which epoch's weights a run keeps, by validation mIoU. Training, the tables and the
    training-curve figure all ask this one function."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no scores to choose from")
    return int(np.argmax(np.where(np.isnan(values), -np.inf, values)))
