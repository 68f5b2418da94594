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


def cut(image, corners, size: int, channels_first: bool = True):
    """Patches of ``size`` px with top-left ``corners`` (B, 2: row, col), cut by indexing on
    the tensor's own device.

    A (C, H, W) image gives (B, C, size, size) laid out band-major (as the training step has
    always fed the model); with ``channels_first=False`` an (H, W, C) image gives the same
    shape with channels-last strides (as windows stacked from an HWC array); a (H, W) label
    map gives (B, size, size).
    """
    import torch  # only callers that hold tensors get here; the patches rule stays light

    offsets = torch.arange(size, device=image.device)
    rows = (corners[:, 0, None] + offsets)[:, :, None]  # (B, s, 1)
    cols = (corners[:, 1, None] + offsets)[:, None, :]  # (B, 1, s)
    if image.dim() == 2:
        return image[rows, cols]
    if not channels_first:
        return image[rows, cols].permute(0, 3, 1, 2)  # (B, s, s, C) -> (B, C, s, s)
    return image[:, rows, cols].permute(1, 0, 2, 3)  # (C, B, s, s) -> (B, C, s, s)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps of an epoch: full batches only (the trailing partial batch is dropped,
    so a batch of one never reaches BatchNorm); fewer patches than a batch make one batch."""
    return n_train // min(batch_size, n_train)


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


def split_blocks(index: pd.DataFrame, height: int, width: int, size: int, val_fraction: float,
                 seed: int, block_size: int | None = None) -> pd.DataFrame:
    """A spatially disjoint split: whole blocks of the image go to validation.

    The image is cut into square blocks (``block_size``, default 4 x the patch size); a patch
    belongs to the block of its top-left corner. Blocks are drawn at random until at least
    ``val_fraction`` of the patches are in validation; then every training patch that
    overlaps a validation patch is dropped, so no pixel is seen by both.
    """
    block_size = block_size or 4 * size
    block = (index.row.to_numpy() // block_size) * (width // block_size + 1) + index.col.to_numpy() // block_size
    blocks = np.unique(block)
    if len(blocks) < 2:
        raise ValueError(
            f"a {width} x {height} px image holds only one {block_size} px block: the blocks split "
            "needs at least two (set experiment.block_size smaller)"
        )
    rng = np.random.default_rng(seed)
    val = np.zeros(len(index), dtype=bool)
    for b in rng.permutation(blocks)[:-1]:  # at least one block stays for training
        if val.mean() >= val_fraction:
            break
        val |= block == b
    covered = np.zeros((height + 1, width + 1), dtype=np.int64)  # integral image of val coverage
    mask = np.zeros((height, width), dtype=bool)
    for r, c in index.loc[val, ["row", "col"]].to_numpy():
        mask[r : r + size, c : c + size] = True
    covered[1:, 1:] = mask.cumsum(0).cumsum(1)
    r, c = index.row.to_numpy(), index.col.to_numpy()
    overlap = covered[r + size, c + size] - covered[r, c + size] - covered[r + size, c] + covered[r, c] > 0
    keep = val | ~overlap
    if not keep[~val].any():
        raise ValueError("the blocks split leaves no training patch: use a larger image or smaller blocks")
    split = np.where(val, "val", "train").astype(object)
    return index.assign(split=split)[keep].reset_index(drop=True)


def patch_index(height: int, width: int, size: int, stride: int, val_fraction: float, seed: int,
                split: str = "random", block_size: int | None = None) -> pd.DataFrame:
    """The patch index of the contract: row, col, split (train or val)."""
    index = grid(height, width, size, stride)
    if split == "random":
        return split_random(index, val_fraction, seed)
    if split == "blocks":
        return split_blocks(index, height, width, size, val_fraction, seed, block_size)
    raise ValueError(f"unknown experiment.split {split!r}")
