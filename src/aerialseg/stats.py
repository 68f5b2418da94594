"""Class pixel counts, shares and weights."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .class_ids import IGNORE_INDEX


def class_counts(ids: np.ndarray, n_classes: int) -> np.ndarray:
    """Pixels per class id 0..n_classes-1; ignored pixels are not counted."""
    counts = np.bincount(ids.ravel(), minlength=256)
    counts[IGNORE_INDEX] = 0
    return counts[:n_classes].astype(np.int64)


def class_table(counts_per_image: dict[str, np.ndarray], class_names: Sequence[str]) -> pd.DataFrame:
    """Long table: image, class, pixels, share (percent of that image's labelled pixels)."""
    rows = []
    for image, counts in counts_per_image.items():
        total = counts.sum()
        for name, n in zip(class_names, counts):
            share = 100.0 * n / total if total else float("nan")
            rows.append({"image": image, "class": name, "pixels": int(n), "share": share})
    return pd.DataFrame(rows, columns=["image", "class", "pixels", "share"])


def tile_table(counts_per_tile: dict[tuple[str, str], np.ndarray], class_names: Sequence[str]) -> pd.DataFrame:
    """Long table per tile: image, tile, class, pixels, share (percent of the tile's labelled pixels)."""
    table = class_table({key: counts for key, counts in counts_per_tile.items()}, class_names)
    keys = pd.DataFrame(table.pop("image").tolist(), columns=["image", "tile"])
    return pd.concat([keys, table], axis=1)


def class_weights(counts: np.ndarray, class_names: Sequence[str]) -> dict[str, float | None]:
    """w_i = sum(n) / n_i; ``None`` for a class without pixels, whose weight would be infinite
    (`check_every_class_present` refuses those where the loss weighs classes)."""
    total = float(counts.sum())
    return {name: total / float(n) if n else None for name, n in zip(class_names, counts)}


def check_every_class_present(counts: np.ndarray, class_names: Sequence[str], source: str = "training image") -> None:
    """Refuse a class without pixels in ``source``: its weight sum(n)/n_i would be infinite."""
    missing = [name for name, n in zip(class_names, counts) if n == 0]
    if missing:
        raise ValueError(
            f"{source}: class(es) {', '.join(map(repr, missing))} have no pixels, so their "
            "weight sum(n)/n_i would be infinite; remove them from data.classes, use a "
            "training image that contains them, or set train.weighting: none"
        )


def loss_weights(weights: dict[str, float], class_names: Sequence[str], weighting: str = "inverse") -> list[float]:
    """The cross-entropy weights per class: the class weights, their square roots, or ones.

    Scaling all weights by one factor changes nothing: the weighted mean divides by the sum
    of the weights of the pixels, so no normalisation is offered.
    """
    if weighting == "inverse":
        return [weights[n] for n in class_names]
    if weighting == "inverse_sqrt":
        return [weights[n] ** 0.5 for n in class_names]
    if weighting == "none":
        return [1.0] * len(class_names)
    raise ValueError(f"unknown train.weighting {weighting!r}")
