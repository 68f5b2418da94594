"""The patch grid over an image and its train/validation split."""

from __future__ import annotations

from dataclasses import dataclass

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


def cut(image, corners, size: int):
    """Patches of ``size`` px with top-left ``corners`` (B, 2: row, col), cut by indexing on
    the tensor's own device: a (C, H, W) image gives (B, C, size, size) laid out band-major (as
    the training step has always fed the model); a (H, W) label map gives (B, size, size)."""
    rows, cols = _window_indices(image, corners, size)
    if image.dim() == 2:
        return image[rows, cols]
    return image[:, rows, cols].permute(1, 0, 2, 3)  # (C, B, s, s) -> (B, C, s, s)


def cut_channels_last(image, corners, size: int):
    """`cut` of an (H, W, C) image: (B, C, size, size) with channels-last strides, as windows
    stacked from an HWC array (the mosaic's bands of rows)."""
    rows, cols = _window_indices(image, corners, size)
    return image[rows, cols].permute(0, 3, 1, 2)  # (B, s, s, C) -> (B, C, s, s)


def _window_indices(image, corners, size: int):
    import torch  # only callers that hold tensors get here; the patches rule stays light

    offsets = torch.arange(size, device=image.device)
    return (corners[:, 0, None] + offsets)[:, :, None], (corners[:, 1, None] + offsets)[:, None, :]  # (B, s, 1), (B, 1, s)


def window_sums(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """How many True pixels of ``mask`` (H, W) each window of ``size`` px with its top-left at
    (``rows[i]``, ``cols[i]``) holds, from the mask's summed-area table (int64)."""
    summed = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    summed[1:, 1:] = mask.cumsum(0).cumsum(1)
    return summed[rows + size, cols + size] - summed[rows, cols + size] - summed[rows + size, cols] + summed[rows, cols]


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


def split_blocks_of_tiles(index: pd.DataFrame, shapes: dict[str, tuple[int, int]], size: int, val_fraction: float,
                          seed: int, block_size: int | None = None) -> pd.DataFrame:
    """A spatially disjoint split: whole blocks of the tiles go to validation.

    Each tile is cut into square blocks (``block_size``, default 4 x the patch size); a patch
    belongs to the block of its top-left corner. Blocks of all tiles are drawn at random until
    at least ``val_fraction`` of the patches are in validation; then every training patch that
    overlaps a validation patch of its tile is dropped, so no pixel is seen by both.
    """
    block_size = block_size or 4 * size
    block = np.zeros(len(index), dtype=np.int64)
    offset = 0
    for tile, (height, width) in shapes.items():
        mine = (index.tile == tile).to_numpy()
        rows, cols = index.row.to_numpy()[mine], index.col.to_numpy()[mine]
        block[mine] = offset + (rows // block_size) * (width // block_size + 1) + cols // block_size
        offset += (height // block_size + 1) * (width // block_size + 1)
    blocks = np.unique(block)
    if len(blocks) < 2:
        height, width = next(iter(shapes.values()))
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
    keep = val | ~_overlaps_validation(index, val, shapes, size)
    if not keep[~val].any():
        raise ValueError("the blocks split leaves no training patch: use a larger image or smaller blocks")
    split = np.where(val, "val", "train").astype(object)
    return index.assign(split=split)[keep].reset_index(drop=True)


def _overlaps_validation(index: pd.DataFrame, val: np.ndarray, shapes: dict[str, tuple[int, int]], size: int) -> np.ndarray:
    """Which patches share a pixel with a validation patch of their own tile."""
    overlap = np.zeros(len(index), dtype=bool)
    for tile, (height, width) in shapes.items():
        mine = (index.tile == tile).to_numpy()
        mask = np.zeros((height, width), dtype=bool)
        for r, c in index.loc[mine & val, ["row", "col"]].to_numpy():
            mask[r : r + size, c : c + size] = True
        overlap[mine] = window_sums(mask, index.row.to_numpy()[mine], index.col.to_numpy()[mine], size) > 0
    return overlap


def split_tiles(index: pd.DataFrame, val_fraction: float, seed: int) -> pd.DataFrame:
    """Whole training tiles to validation: tiles drawn at random until at least
    ``val_fraction`` of the patches are in validation; at least one tile stays for training."""
    names = list(dict.fromkeys(index.tile))
    if len(names) < 2:
        raise ValueError("the tiles split needs at least two training tiles (data.train)")
    rng = np.random.default_rng(seed)
    val = np.zeros(len(index), dtype=bool)
    for i in rng.permutation(len(names))[:-1]:
        if val.mean() >= val_fraction:
            break
        val |= (index.tile == names[i]).to_numpy()
    return index.assign(split=np.where(val, "val", "train").astype(object))


@dataclass(frozen=True)
class Split:
    """How the patches divide into training and validation (``experiment.*``): a seeded
    ``val_fraction`` at random, in spatially disjoint blocks (of ``block_size`` px, null: the
    largest that leaves enough blocks) or in whole tiles."""

    val_fraction: float
    seed: int
    kind: str = "random"
    block_size: int | None = None

    @classmethod
    def of(cls, experiment: dict) -> "Split":
        return cls(experiment["val_fraction"], experiment["seed"], experiment["split"], experiment["block_size"])

    def apply(self, index: pd.DataFrame, shapes: dict[str, tuple[int, int]], size: int) -> pd.DataFrame:
        if self.kind == "random":
            return split_random(index, self.val_fraction, self.seed)
        if self.kind == "blocks":
            return split_blocks_of_tiles(index, shapes, size, self.val_fraction, self.seed, self.block_size)
        if self.kind == "tiles":
            return split_tiles(index, self.val_fraction, self.seed)
        raise ValueError(f"unknown experiment.split {self.kind!r}")


def patch_index(height: int, width: int, size: int, stride: int, split: Split) -> pd.DataFrame:
    """The patch index of the contract for one image: row, col, split (train or val)."""
    return patch_index_of_tiles({"": (height, width)}, size, stride, split).drop(columns="tile")


def patch_index_of_tiles(shapes: dict[str, tuple[int, int]], size: int, stride: int, split: Split,
                         valid: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The patch index of several tiles (``shapes``: tile -> (height, width), in order): row,
    col (within the tile), split, tile; the split draws from all of them. With one tile it is
    the one-image index, patch for patch. ``valid`` (tile -> (H, W) bool) drops the patches
    that hold no valid pixel (wholly in no-data) before the split."""
    index = pd.concat([grid(height, width, size, stride).assign(tile=tile) for tile, (height, width) in shapes.items()],
                      ignore_index=True)
    for tile, mask in (valid or {}).items():
        mine = (index.tile == tile).to_numpy()
        empty = np.zeros(len(index), dtype=bool)
        empty[mine] = window_sums(mask, index.row.to_numpy()[mine], index.col.to_numpy()[mine], size) == 0
        index = index[~empty].reset_index(drop=True)
    return split.apply(index, shapes, size)[["row", "col", "split", "tile"]]


def check_windows(height: int, width: int, size: int, stride: int) -> None:
    """A mosaic of ``size`` px windows every ``stride`` px can cover an image of ``height`` x
    ``width`` px: the image is at least one window, and no pixel falls between windows."""
    if height < size or width < size:
        raise ValueError(f"image of {width} x {height} px is smaller than the {size} px patch")
    if stride > size:
        raise ValueError(f"a stride of {stride} px would leave pixels unpredicted between {size} px windows")
