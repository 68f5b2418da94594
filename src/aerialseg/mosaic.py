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
adding the windows one by one. Only finished class ids (and, with `iter_blocks`, their
confidence as uint8 codes) come back to the host.

Memory stays bounded on huge images: the image is read a band of window rows at a time (an
array, or an image open for windowed reading, `io.read.Image`), a band holds the windows of
as many window rows as fit in one batch (at least one row), and its rows are reduced to class
ids as soon as no later window touches them (`iter_ids`). Besides the image's band, only a
band's logits and sums are held, about ``(1 + (patch / stride)^2) x classes x band height x
image width`` floats, where the band height is the window rows of one batch times the
stride, plus the patch size. Windows wholly in no-data are not predicted.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from .calibration import CODE_SCALE
from .class_ids import IGNORE_INDEX
from . import host_mosaic
from .patches import check_windows, cut_channels_last, window_sums, window_starts

log = logging.getLogger(__name__)

Predictor = Callable[[torch.Tensor], torch.Tensor]
"""Maps a uint8 batch (B, C, s, s) on the prediction device to logits (B, K, s, s)."""

BLENDS = host_mosaic.BLENDS
CPU_BATCH = host_mosaic.CPU_BATCH
Tiling = host_mosaic.Tiling
GPU_BATCH_PIXELS = 1 << 22
"""On a GPU a batch is about this many pixels of windows (4096 of 32 px, 1024 of 64 px, 256 of
128 px), several window rows at once."""


def default_batch_size(size: int, row_windows: int, device: torch.device) -> int:
    """Windows per batch on ``device`` when ``predict.batch_size`` is null: about
    `GPU_BATCH_PIXELS` of windows on a GPU; one window row of at most `CPU_BATCH` windows on
    the CPU."""
    if device.type == "cuda":
        return max(CPU_BATCH, GPU_BATCH_PIXELS // (size * size))
    return min(CPU_BATCH, row_windows)


def window_weights(size: int, blend: str) -> torch.Tensor:
    """(s, s) weights of one window (`host_mosaic.window_weights`) as a tensor."""
    return torch.from_numpy(host_mosaic.window_weights(size, blend))


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
def iter_strips(predictor: Predictor, image, n_classes: int, tiling: Tiling,
                device: torch.device | str = "cpu") -> Iterator[tuple[int, torch.Tensor, np.ndarray | None]]:
    """Yield (first row, blended logits (K, rows, W) on ``device``, valid pixels (rows, W) or
    None) for consecutive blocks of finished rows, top to bottom. ``image`` is an (H, W, C)
    uint8 array or an image open for windowed reading (`io.read.Image`), read one band of
    window rows at a time; windows wholly in no-data are not predicted (they cover only
    no-data pixels). ``tiling.batch_size`` None is the device's default."""
    source = image if hasattr(image, "rows") else host_mosaic.ArrayImage(image)
    height, width = source.shape
    size, stride = tiling.size, tiling.stride
    check_windows(height, width, size, stride)
    device = torch.device(device)
    rows, cols = window_starts(height, size, stride), window_starts(width, size, stride)
    tiling = replace(tiling, batch_size=tiling.batch_size or default_batch_size(size, len(cols), device))
    log.info("%d x %d px: %d windows of %d px, stride %d, in batches of %d, %s blend, on %s", width, height,
             len(rows) * len(cols), size, stride, tiling.batch_size, tiling.blend, device)
    sums = _Sums(n_classes, window_weights(size, tiling.blend).to(device), cols, width)
    rows_per_band = max(1, tiling.batch_size // len(cols))
    bar = tqdm(total=len(rows) * len(cols), desc="mosaic", unit="window", disable=not host_mosaic.shows_progress())
    for first in range(0, len(rows), rows_per_band):
        band_rows = rows[first : first + rows_per_band]
        top, bottom = int(band_rows[0]), int(band_rows[-1]) + size
        pixels, valid = source.rows(top, bottom)
        corners = _corners(band_rows - top, cols)
        keep = None if valid is None else _windows_with_data(valid, corners, size)
        logits = _band_logits(predictor, _band(pixels, device), corners, tiling, n_classes, keep)
        sums.add(logits, band_rows - top, bottom - top)
        bar.update(len(logits))
        done = (int(rows[first + rows_per_band]) if first + rows_per_band < len(rows) else height) - top
        yield top, sums.finish(done), None if valid is None else valid[:done]
    bar.close()


def _corners(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The top-left corners (row, col) of the windows at ``rows`` x ``cols``, row-major: (N, 2)."""
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)


def _windows_with_data(valid: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Which windows of a band (at ``corners``) hold at least one valid pixel."""
    return window_sums(valid, corners[:, 0], corners[:, 1], size) > 0


def _band_logits(predictor: Predictor, pixels: torch.Tensor, corners: np.ndarray, tiling: Tiling, n_classes: int,
                 keep: np.ndarray | None = None) -> torch.Tensor:
    """The logits (windows, K, s, s) of a band's windows, row-major, ``tiling.batch_size`` at a
    time; ``pixels`` (h, W, C) are the band's rows on the device, ``corners`` the windows'
    corners within it (`_corners`). Windows not in ``keep`` are not predicted: their logits
    are zeros."""
    size, batch_size = tiling.size, tiling.batch_size
    corners = torch.from_numpy(corners).to(pixels.device)
    logits = torch.zeros((len(corners), n_classes, size, size), device=pixels.device)  # filled batch by batch
    if keep is None or keep.all():
        for i in range(0, len(corners), batch_size):
            logits[i : i + batch_size] = predictor(cut_channels_last(pixels, corners[i : i + batch_size], size))
        return logits
    kept = torch.from_numpy(np.flatnonzero(keep)).to(pixels.device)
    shape = min(batch_size, len(corners))  # the batch of a band without no-data
    for i in range(0, len(kept), batch_size):
        batch = kept[i : i + batch_size]
        windows = corners[batch]
        if pixels.is_cuda and len(batch) < shape:  # pad with copies of a window: on CUDA every new batch shape
            windows = torch.cat([windows, windows[-1:].expand(shape - len(batch), 2)])  # costs a cuDNN benchmark
        logits[batch] = predictor(cut_channels_last(pixels, windows, size))[: len(batch)].float()
    return logits


def _band(rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """A band of rows as a tensor on ``device``; read-only rows (as Pillow gives) are copied
    rather than shared with a tensor that may write."""
    return torch.from_numpy(rows if rows.flags.writeable else rows.copy()).to(device)


COLUMN_CHUNK = 4096
"""Columns of a band summed at a time: the index and value temporaries of `_Sums.add` stay this
wide, whatever the width of the image."""


class _Sums:
    """The sums of the rows that windows still touch, on the device of ``weights`` (the (s, s)
    weights of one window): ``total`` (rows, W, K) of weighted logits and ``count`` (rows, W)
    of weights, from the first row that is not finished yet. ``cols`` are the windows' columns."""

    def __init__(self, n_classes: int, weights: torch.Tensor, cols: np.ndarray, width: int):
        self.weights, self.n_cols = weights, len(cols)
        self.col_slots = [torch.from_numpy(a).to(weights.device) for a in covering(cols, weights.shape[0], width)]
        self.total = torch.zeros((0, width, n_classes), device=weights.device)
        self.count = torch.zeros((0, width), device=weights.device)

    def add(self, logits: torch.Tensor, rows: np.ndarray, height: int) -> None:
        """Add the weighted logits of a band's windows (at window ``rows`` of a band ``height``
        rows high, which starts at the first row not finished yet). Each pixel receives its
        windows in row-major order, one covering window per slot, as if the windows were added
        one by one. The sums are built `COLUMN_CHUNK` columns at a time, in place."""
        row_slots = [torch.from_numpy(a).to(self.weights.device) for a in covering(rows, self.weights.shape[0], height)]
        (row_index, row_offset, row_valid), (col_index, col_offset, col_valid) = row_slots, self.col_slots
        width, n_classes, size = col_index.shape[1], logits.shape[1], self.weights.shape[0]
        total = torch.cat([self.total, self.total.new_zeros((height - len(self.total), width, n_classes))])
        count = torch.cat([self.count, self.count.new_zeros((height - len(self.count), width))])
        values = logits.permute(0, 2, 3, 1).reshape(-1, n_classes)  # one row of K logits per window pixel
        for start in range(0, width, COLUMN_CHUNK):
            cols = slice(start, min(start + COLUMN_CHUNK, width))
            for r in range(len(row_index)):
                for c in range(len(col_index)):
                    window = row_index[r, :, None] * self.n_cols + col_index[c, None, cols]  # (h, chunk)
                    pixel = (window * size + row_offset[r, :, None]) * size + col_offset[c, None, cols]
                    valid = row_valid[r, :, None] & col_valid[c, None, cols]
                    w = torch.where(valid, self.weights[row_offset[r, :, None], col_offset[c, None, cols]], 0.0)
                    value = values.index_select(0, pixel.reshape(-1)).view(height, -1, n_classes)
                    total[:, cols] += value.mul_(w[:, :, None])  # in place: one temporary of the chunk's size
                    count[:, cols] += w
        self.total, self.count = total, count

    def finish(self, done: int) -> torch.Tensor:
        """The blended logits (K, done, W) of the first ``done`` rows, which no later window
        touches; they leave the sums."""
        blended = (self.total[:done] / self.count[:done, :, None]).permute(2, 0, 1)
        self.total, self.count = self.total[done:], self.count[done:]
        return blended


def predict_logits(predictor: Predictor, image, n_classes: int, tiling: Tiling,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """Blended logits (K, H, W) of the whole image, on the CPU; for small images (tests, notebooks)."""
    return torch.cat([block.cpu() for _, block, _ in iter_strips(predictor, image, n_classes, tiling, device)], dim=1)


def iter_ids(predictor: Predictor, image, n_classes: int, tiling: Tiling,
             device: torch.device | str = "cpu") -> Iterator[tuple[int, np.ndarray]]:
    """(first row, class ids (rows, W) uint8) of consecutive blocks of finished rows: the
    argmax of the blended logits, computed on the device, `IGNORE_INDEX` where the image has no
    data; only the ids come back. A map of any size can be written block by block."""
    for top, block, valid in iter_strips(predictor, image, n_classes, tiling, device):
        ids = block.max(0).indices.to(torch.uint8).cpu().numpy()  # argmax's ids, faster
        if valid is not None:
            ids[~valid] = IGNORE_INDEX
        yield top, ids


def iter_blocks(predictor: Predictor, image, n_classes: int, tiling: Tiling, device: torch.device | str = "cpu",
                temperature: float = 1.0) -> Iterator[host_mosaic.Block]:
    """`iter_ids` with each block's confidence (`host_mosaic.Block`), in the same pass: the
    argmax, the softmax at it and its uint8 code are computed on the device, and only ids and
    codes (two bytes a pixel) come back; the probabilities only when the block's
    ``probabilities`` is called. With a ``temperature`` T the confidence and probabilities are
    those of the logits / T; the ids are the argmax of the logits as they are."""
    for top, block, valid in iter_strips(predictor, image, n_classes, tiling, device):
        best = block.max(0)
        ids = best.indices.to(torch.uint8).cpu().numpy()
        if temperature != 1.0:
            block = block / temperature
            best = block.max(0)
        confidence = _codes(1 / torch.exp(block - best.values).sum(0)).cpu().numpy()
        if valid is not None:
            ids[~valid] = IGNORE_INDEX
            confidence[~valid] = 0
        yield host_mosaic.Block(top, ids, confidence, _probabilities(block, valid), _confidence_at(block, best.values))


def _codes(scores: torch.Tensor) -> torch.Tensor:
    """Scores in [0, 1] as uint8 codes on their device (`calibration.to_codes`); NaN scores
    (rows no window predicted, all no-data) become 1 here and 0 once the caller masks no-data."""
    return torch.nan_to_num(scores * CODE_SCALE, nan=0.0).round_().clamp_(1, CODE_SCALE).to(torch.uint8)


def _confidence_at(block: torch.Tensor, top: torch.Tensor):
    def confidence_at(temperature: float) -> np.ndarray:
        return (1 / torch.exp((block - top) / temperature).sum(0)).float().cpu().numpy()

    return confidence_at


def _probabilities(block: torch.Tensor, valid: np.ndarray | None):
    def probabilities() -> np.ndarray:
        codes = _codes(block.softmax(0)).cpu().numpy()
        if valid is not None:
            codes[:, ~valid] = 0
        return codes

    return probabilities


def predict_ids(predictor: Predictor, image, n_classes: int, tiling: Tiling,
                device: torch.device | str = "cpu") -> np.ndarray:
    """Class ids (H, W) uint8 of the whole image (`iter_ids`, gathered)."""
    source = image if hasattr(image, "rows") else host_mosaic.ArrayImage(image)
    ids = np.empty(source.shape, dtype=np.uint8)
    for top, block in iter_ids(predictor, source, n_classes, tiling, device):
        ids[top : top + len(block)] = block
    return ids
