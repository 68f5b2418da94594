"""Sliding-window prediction of a whole image as a mosaic of overlapping patches.

Windows of the patch size are placed every ``stride`` pixels; the last window of each row and
column snaps to the image edge, so every pixel is predicted, borders included. Windows are
predicted in batches and their logits averaged where they overlap.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .patches import grid

Predictor = Callable[[torch.Tensor], torch.Tensor]
"""Maps a uint8 batch (B, C, s, s) to logits (B, K, s, s)."""


@torch.no_grad()
def predict_logits(
    predictor: Predictor,
    image: np.ndarray,
    n_classes: int,
    size: int,
    stride: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Mean logits (K, H, W) over all windows covering each pixel, on the CPU."""
    height, width = image.shape[:2]
    if height < size or width < size:
        raise ValueError(f"image of {width} x {height} px is smaller than the {size} px patch")
    corners = grid(height, width, size, stride)[["row", "col"]].to_numpy()
    image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(device)
    total = torch.zeros((n_classes, height, width), dtype=torch.float32)
    count = torch.zeros((height, width), dtype=torch.float32)
    starts = range(0, len(corners), batch_size)
    for start in tqdm(starts, desc="mosaic", unit="batch", disable=not progress):
        batch = corners[start : start + batch_size]
        windows = torch.stack([image_t[:, r : r + size, c : c + size] for r, c in batch])
        logits = predictor(windows).float().cpu()
        for (r, c), window_logits in zip(batch, logits):
            total[:, r : r + size, c : c + size] += window_logits
            count[r : r + size, c : c + size] += 1
    return total / count


def predict_ids(predictor: Predictor, image: np.ndarray, n_classes: int, size: int, stride: int, **kwargs) -> np.ndarray:
    """Class ids (H, W) uint8: the argmax of the averaged logits."""
    logits = predict_logits(predictor, image, n_classes, size, stride, **kwargs)
    return logits.argmax(0).to(torch.uint8).numpy()
