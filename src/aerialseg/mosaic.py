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

Everything happens on the prediction device: the image goes there one band of rows at a
time, windows are cut from it by indexing, and their weighted logits are summed there. Each
pixel's sum is gathered from the windows that cover it in row-major window order (not
scattered with atomics), so the result is deterministic on a GPU and, on the CPU, equal to
adding the windows one by one. Only finished class ids come back to the host.

Memory stays bounded on huge images: a band holds the windows of as many window rows as fit
in one batch (at least one row), and its rows are reduced to class ids as soon as no later
window touches them. Besides the image and the id map, only a band is held: its windows'
logits and the band's sums, about ``(1 + (patch / stride)^2) x classes x band height x image
width`` floats, where the band height is the window rows of one batch times the stride, plus
the patch size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from .patches import cut, window_starts

log = logging.getLogger(__name__)

Predictor = Callable[[torch.Tensor], torch.Tensor]
"""Maps a uint8 batch (B, C, s, s) on the prediction device to logits (B, K, s, s)."""

BLENDS = ("mean", "gaussian")
CPU_BATCH = 64
"""On the CPU a batch is one window row, at most this many windows: larger batches are slower
there (measured: 128 px windows of a 1024 px image took 3.7 s in batches of 60, 2.6 s in
batches of one 15-window row)."""
GPU_BATCH_PIXELS = 1 << 22
"""On a GPU a batch is about this many pixels of windows (4096 of 32 px, 1024 of 64 px, 256 of
128 px), several window rows at once."""


@dataclass(frozen=True)
class MosaicOptions:
    """How a job predicts whole images, decided once from ``predict.*`` (and the case's patch
    size): windows of ``size`` every ``stride`` px, ``blend``, flip ``tta``, windows per batch
    (None: the device's default, `default_batch_size`), and the device and CPU threads."""

    size: int
    stride: int
    blend: str = "mean"
    tta: bool = False
    batch_size: int | None = None
    device: str = "auto"
    threads: int = 1

    @classmethod
    def from_settings(cls, settings: dict, size: int) -> "MosaicOptions":
        """``settings`` holds ``predict`` (stride null: half the patch) and, for the device
        and threads, ``train`` (`job_resources`)."""
        predict = settings["predict"]
        device, threads = job_resources(settings)
        return cls(size=size, stride=predict["stride"] or max(size // 2, 1), blend=predict["blend"], tta=predict["tta"],
                   batch_size=predict["batch_size"], device=device, threads=threads)

    def predict_ids(self, predictor: Predictor, image: np.ndarray, n_classes: int, device: torch.device,
                    progress: bool = False) -> np.ndarray:
        """The class ids of ``image`` with these options, on ``device`` (resolved from `device`)."""
        return predict_ids(with_flips(predictor) if self.tta else predictor, image, n_classes, self.size, self.stride,
                           batch_size=self.batch_size, device=device, blend=self.blend, progress=progress)


def job_resources(settings: dict) -> tuple[str, int]:
    """The device and CPU threads of a prediction job: ``predict.device`` and
    ``predict.threads``, where null those of training."""
    predict, train = settings["predict"], settings.get("train", {})
    return predict.get("device") or train.get("device", "auto"), predict.get("threads") or train.get("threads", 1)


def default_batch_size(size: int, row_windows: int, on_gpu: bool) -> int:
    """Windows per batch when ``predict.batch_size`` is null: about `GPU_BATCH_PIXELS` of
    windows on a GPU; one window row of at most `CPU_BATCH` windows on the CPU."""
    if on_gpu:
        return max(CPU_BATCH, GPU_BATCH_PIXELS // (size * size))
    return min(CPU_BATCH, row_windows)


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


def covering(starts: np.ndarray, size: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every position 0..length-1 along an axis, the windows (of ``size``, at ``starts``,
    ascending) that cover it, in ascending order, as slots: (index, offset into the window,
    valid), each (slots, length). Unused slots are marked invalid."""
    position = np.arange(length)
    first = np.searchsorted(starts + size, position, side="right")  # first window ending after it
    last = np.searchsorted(starts, position, side="right") - 1  # last window starting at or before it
    slots = int((last - first).max()) + 1
    index = first[None, :] + np.arange(slots)[:, None]
    valid = index <= last[None, :]
    index = np.where(valid, index, 0)
    return index, np.where(valid, position[None, :] - starts[index], 0), valid


@torch.no_grad()
def iter_strips(
    predictor: Predictor,
    image: np.ndarray,
    n_classes: int,
    size: int,
    stride: int,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    blend: str = "mean",
    progress: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first row, blended logits (K, rows, W) on ``device``) for consecutive blocks of
    finished rows, top to bottom. ``batch_size`` None is the device's default."""
    height, width = image.shape[:2]
    if height < size or width < size:
        raise ValueError(f"image of {width} x {height} px is smaller than the {size} px patch")
    if stride > size:
        raise ValueError(f"a stride of {stride} px would leave pixels unpredicted between {size} px windows")
    device = torch.device(device)
    rows, cols = window_starts(height, size, stride), window_starts(width, size, stride)
    batch_size = batch_size or default_batch_size(size, len(cols), device.type == "cuda")
    log.info("%d x %d px: %d windows of %d px, stride %d, in batches of %d, %s blend, on %s", width, height,
             len(rows) * len(cols), size, stride, batch_size, blend, device)
    weights = window_weights(size, blend).to(device)
    col_slots = [torch.from_numpy(a).to(device) for a in covering(cols, size, width)]
    rows_per_band = max(1, batch_size // len(cols))
    total = torch.zeros((0, width, n_classes), device=device)  # rows of the band above that are not finished
    count = torch.zeros((0, width), device=device)
    bar = tqdm(total=len(rows) * len(cols), desc="mosaic", unit="window", disable=not progress)
    for first in range(0, len(rows), rows_per_band):
        band_rows = rows[first : first + rows_per_band]
        top, bottom = int(band_rows[0]), int(band_rows[-1]) + size
        logits = _band_logits(predictor, _band(image, top, bottom, device), band_rows - top, cols, size, batch_size)
        row_slots = [torch.from_numpy(a).to(device) for a in covering(band_rows - top, size, bottom - top)]
        total, count = _add_band(total, count, logits, weights, row_slots, col_slots, len(cols))
        bar.update(len(logits))
        done = (int(rows[first + rows_per_band]) if first + rows_per_band < len(rows) else height) - top
        yield top, (total[:done] / count[:done, :, None]).permute(2, 0, 1)
        total, count = total[done:], count[done:]
    bar.close()


def _band_logits(predictor: Predictor, pixels: torch.Tensor, rows: np.ndarray, cols: np.ndarray, size: int,
                 batch_size: int) -> torch.Tensor:
    """The logits (windows, K, s, s) of a band's windows, row-major, in batches; ``pixels``
    (h, W, C) are the band's rows on the device, ``rows`` the window rows within it."""
    corners = torch.from_numpy(np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)).to(pixels.device)
    return torch.cat([
        predictor(cut(pixels, corners[i : i + batch_size], size, channels_first=False)).float()
        for i in range(0, len(corners), batch_size)
    ])


def _band(image: np.ndarray, top: int, bottom: int, device: torch.device) -> torch.Tensor:
    """Rows ``top:bottom`` of the image as a tensor on ``device``; a read-only image (as
    Pillow gives) is copied band by band rather than shared with a tensor that may write."""
    rows = image[top:bottom]
    return torch.from_numpy(rows if rows.flags.writeable else rows.copy()).to(device)


def _add_band(carried_total, carried_count, logits, weights, row_slots, col_slots, n_cols):
    """Add the weighted logits of a band's windows to the rows carried over from the band
    above. Each pixel receives its windows in row-major order, one covering window per slot,
    as if the windows were added one by one. Sums are held as (rows, W, K)."""
    (row_index, row_offset, row_valid), (col_index, col_offset, col_valid) = row_slots, col_slots
    height, width, n_classes, size = row_index.shape[1], col_index.shape[1], logits.shape[1], weights.shape[0]
    total = torch.cat([carried_total, carried_total.new_zeros((height - len(carried_total), width, n_classes))])
    count = torch.cat([carried_count, carried_count.new_zeros((height - len(carried_count), width))])
    values = logits.permute(0, 2, 3, 1).reshape(-1, n_classes)  # one row of K logits per window pixel
    for r in range(len(row_index)):
        for c in range(len(col_index)):
            window = row_index[r, :, None] * n_cols + col_index[c, None, :]  # (h, W)
            pixel = (window * size + row_offset[r, :, None]) * size + col_offset[c, None, :]
            valid = row_valid[r, :, None] & col_valid[c, None, :]
            w = weights[row_offset[r, :, None], col_offset[c, None, :]]
            value = values.index_select(0, pixel.view(-1)).view(height, width, n_classes)
            total += torch.where(valid[:, :, None], value * w[:, :, None], 0.0)
            count += torch.where(valid, w, 0.0)
    return total, count


def predict_logits(predictor: Predictor, image: np.ndarray, n_classes: int, size: int, stride: int, **kwargs) -> torch.Tensor:
    """Blended logits (K, H, W) of the whole image, on the CPU; for small images (tests, notebooks)."""
    return torch.cat([block.cpu() for _, block in iter_strips(predictor, image, n_classes, size, stride, **kwargs)], dim=1)


def predict_ids(predictor: Predictor, image: np.ndarray, n_classes: int, size: int, stride: int, **kwargs) -> np.ndarray:
    """Class ids (H, W) uint8: the argmax of the blended logits, built band by band on the
    device; only the ids come back."""
    ids = np.empty(image.shape[:2], dtype=np.uint8)
    for top, block in iter_strips(predictor, image, n_classes, size, stride, **kwargs):
        ids[top : top + block.shape[1]] = block.max(0).indices.to(torch.uint8).cpu().numpy()  # argmax, faster
    return ids
