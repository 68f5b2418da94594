"""Sliding-window prediction of a whole image as a mosaic of overlapping patches.

Windows of the patch size are placed every ``stride`` pixels; the last window of each row and
column snaps to the image edge, so every pixel is predicted, borders included. Windows are
predicted in batches, optionally with flip test-time augmentation, and their logits are
combined where they overlap by ``blend``:

``mean``
    the plain average (the study's);
``gaussian``
    a weighted average with a centre-heavy Gaussian window (sigma = patch / 4), which removes
    the seams of window borders.

Memory stays bounded on huge images: logits are accumulated for one strip of window rows at a
time (classes x patch size x image width), and finished rows are reduced to class ids at
once, so besides the image and the id map only a strip is held.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from .patches import window_starts

Predictor = Callable[[torch.Tensor], torch.Tensor]
"""Maps a uint8 batch (B, C, s, s) to logits (B, K, s, s)."""

BLENDS = ("mean", "gaussian")


def window_weights(size: int, blend: str) -> torch.Tensor:
    """(s, s) weights of one window's logits: ones, or a Gaussian centred on the window."""
    if blend == "mean":
        return torch.ones(size, size)
    if blend == "gaussian":
        x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        g = torch.exp(-0.5 * (x / (size / 4)) ** 2)
        return (g[:, None] * g[None, :] / g.max() ** 2).float()
    raise ValueError(f"unknown predict.blend {blend!r}: expected one of {BLENDS}")


def with_flips(predictor: Predictor) -> Predictor:
    """Test-time augmentation: the mean logits of the batch and its three flips."""

    def predict(batch: torch.Tensor) -> torch.Tensor:
        total = predictor(batch).float()
        for dims in ((-1,), (-2,), (-1, -2)):
            total += predictor(batch.flip(dims)).float().flip(dims)
        return total / 4

    return predict


@torch.no_grad()
def iter_strips(
    predictor: Predictor,
    image: np.ndarray,
    n_classes: int,
    size: int,
    stride: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    blend: str = "mean",
    progress: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first row, blended logits (K, rows, W)) for consecutive finished row blocks."""
    height, width = image.shape[:2]
    if height < size or width < size:
        raise ValueError(f"image of {width} x {height} px is smaller than the {size} px patch")
    if stride > size:
        raise ValueError(f"a stride of {stride} px would leave pixels between {size} px windows unpredicted")
    rows = window_starts(height, size, stride)
    cols = window_starts(width, size, stride)
    weights = window_weights(size, blend)
    total = torch.zeros((n_classes, size, width))  # logits x weights of rows [top, top + size)
    count = torch.zeros((size, width))
    bar = tqdm(total=len(rows) * len(cols), desc="mosaic", unit="window", disable=not progress)
    for i, top in enumerate(rows):
        for start in range(0, len(cols), batch_size):
            batch_cols = cols[start : start + batch_size]
            windows = np.stack([image[top : top + size, c : c + size] for c in batch_cols])
            batch = torch.from_numpy(windows).permute(0, 3, 1, 2).to(device)
            logits = predictor(batch).float().cpu() * weights
            for c, window_logits in zip(batch_cols, logits):
                total[:, :, c : c + size] += window_logits
                count[:, c : c + size] += weights
            bar.update(len(batch_cols))
        done = (rows[i + 1] if i + 1 < len(rows) else top + size) - top  # rows no later window touches
        yield int(top), total[:, :done] / count[:done]
        total = torch.cat([total[:, done:], torch.zeros((n_classes, done, width))], dim=1)
        count = torch.cat([count[done:], torch.zeros((done, width))], dim=0)
    bar.close()


def predict_logits(predictor: Predictor, image: np.ndarray, n_classes: int, size: int, stride: int, **kwargs) -> torch.Tensor:
    """Blended logits (K, H, W) of the whole image; for small images (tests, notebooks)."""
    return torch.cat([block for _, block in iter_strips(predictor, image, n_classes, size, stride, **kwargs)], dim=1)


def predict_ids(predictor: Predictor, image: np.ndarray, n_classes: int, size: int, stride: int, **kwargs) -> np.ndarray:
    """Class ids (H, W) uint8: the argmax of the blended logits, built strip by strip."""
    ids = np.empty(image.shape[:2], dtype=np.uint8)
    for top, block in iter_strips(predictor, image, n_classes, size, stride, **kwargs):
        ids[top : top + block.shape[1]] = block.argmax(0).to(torch.uint8).numpy()
    return ids
