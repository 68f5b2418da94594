"""The patch grid over an image and its train/validation split."""

from __future__ import annotations

import numpy as np
import pandas as pd


def window_starts(length: int, size: int, stride: int) -> np.ndarray:
    """Start offsets of windows of ``size`` every ``stride`` px along an axis of ``length``.

    The last window is snapped to the edge, so every pixel is covered even when the stride
    does not divide ``length - size``.
    """
    if size > length:
        raise ValueError(f"a {size} px window does not fit in {length} px")
    if stride < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    starts = np.arange(0, length - size + 1, stride)
    if starts[-1] != length - size:
        starts = np.append(starts, length - size)
    return starts


def grid(height: int, width: int, size: int, stride: int) -> pd.DataFrame:
    """Top-left corners (row, col) of all patches, row-major."""
    rows = window_starts(height, size, stride)
    cols = window_starts(width, size, stride)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return pd.DataFrame({"row": rr.ravel(), "col": cc.ravel()})


def split_random(index: pd.DataFrame, val_fraction: float, seed: int) -> pd.DataFrame:
    """Mark a seeded random ``val_fraction`` of the patches as 'val', the rest as 'train'."""
    n = len(index)
    n_val = int(round(n * val_fraction))
    if n_val < 1 or n - n_val < 1:
        raise ValueError(
            f"{n} patches cannot be split with val_fraction {val_fraction}: each split needs "
            "at least one patch (use a smaller stride or patch size)"
        )
    rng = np.random.default_rng(seed)
    split = np.full(n, "train", dtype=object)
    split[rng.permutation(n)[:n_val]] = "val"
    return index.assign(split=split)


def patch_index(height: int, width: int, size: int, stride: int, val_fraction: float, seed: int) -> pd.DataFrame:
    """The patch index of the contract: row, col, split."""
    return split_random(grid(height, width, size, stride), val_fraction, seed)
