"""The mosaic on the host, in NumPy: sliding windows for runtimes that take and give arrays
(ONNX Runtime), without torch.

Windows, their order, the blend and the results are those of `aerialseg.mosaic`: windows of
``size`` every ``stride`` px, the last of each row and column snapped to the image edge,
scores blended by ``mean`` or ``gaussian`` weights, finished rows handed on band by band.
Each window's weighted scores are added to the band's sums one window at a time in row-major
order, which is the order in which `mosaic` gathers them, so on the same scores both give the
same sums bit for bit. Windows wholly in no-data are not predicted and add nothing; their
pixels are no-data anyway.

Memory stays flat in image size: besides the image's band of rows, a band holds its windows'
scores (``windows x classes x size^2`` floats, one batch of window rows) and the sums of its
rows (``classes x band height x width`` floats).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from queue import Full, Queue
from typing import Callable, Iterator, TypeVar

import numpy as np
from tqdm.auto import tqdm

from .calibration import confidence_from_logits, softmax, to_codes
from .class_ids import IGNORE_INDEX
from .patches import check_windows, window_starts

log = logging.getLogger(__name__)
T = TypeVar("T")

BatchPredictor = Callable[[np.ndarray], np.ndarray]
"""Maps uint8 windows (B, s, s, C) to float32 scores (B, K, s, s) whose largest is the class:
logits or log-probabilities."""

CPU_BATCH = 64
"""On the CPU, windows per model call when no batch size is given: one window row, at most
this many windows (larger batches are slower there; measured with torch: 128 px windows of a
1024 px image took 3.7 s in batches of 60, 2.6 s in batches of one 15-window row)."""


BLENDS = ("mean", "gaussian")


@dataclass(frozen=True)
class Tiling:
    """How a mosaic (this one or `aerialseg.mosaic`) covers an image with windows: windows of
    ``size`` px every ``stride`` px (the last of each row and column snapped to the image edge),
    ``batch_size`` of them per model call (None: the device's default) and their scores
    combined by ``blend``, one of `BLENDS`."""

    size: int
    stride: int
    batch_size: int | None = None
    blend: str = "mean"


def shows_progress() -> bool:
    """Whether a mosaic shows its progress bar: where aerialseg's information messages are
    shown (a job's log, the command without --quiet), not in a library call or a test."""
    return logging.getLogger("aerialseg").isEnabledFor(logging.INFO)


def window_weights(size: int, blend: str) -> np.ndarray:
    """(s, s) float32 weights of one window: ones, or a Gaussian centred on it (sigma s / 4),
    which removes the seams at window borders; both mosaics weigh their windows with these."""
    if blend == "mean":
        return np.ones((size, size), np.float32)
    if blend == "gaussian":
        x = np.arange(size, dtype=np.float64) - (size - 1) / 2
        g = np.exp(-0.5 * (x / (size / 4)) ** 2)
        return (g[:, None] * g[None, :] / g.max() ** 2).astype(np.float32)
    raise ValueError(f"unknown predict.blend {blend!r}: expected one of {BLENDS}")


def with_flips(predict: BatchPredictor) -> BatchPredictor:
    """Test-time augmentation: the mean scores of the windows and their three flips."""

    def flipped(windows: np.ndarray) -> np.ndarray:
        total = predict(windows).astype(np.float32, copy=True)
        for axes in ((2,), (1,), (1, 2)):  # width, height, both (windows are (B, s, s, C))
            back = tuple(a + 1 for a in axes)  # the same axes of the scores (B, K, s, s)
            total += np.flip(predict(np.ascontiguousarray(np.flip(windows, axes))), back)
        return total / 4

    return flipped


class ArrayImage:
    """An (H, W, C) uint8 array read like an `io.read.Image`, a band of rows at a time; every
    pixel is valid."""

    def __init__(self, array: np.ndarray):
        self.array, self.shape = array, array.shape[:2]

    def rows(self, top: int, bottom: int):
        return self.array[top:bottom], None


def iter_strips(predict: BatchPredictor, image, n_classes: int,
                tiling: Tiling) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield (first row, blended scores (K, rows, W) float32, valid pixels (rows, W) or None)
    for consecutive blocks of finished rows, top to bottom (`mosaic.iter_strips`, on the host).
    The next band of window rows is read and predicted in a background thread while the caller
    works on the block before (`read_ahead`)."""
    source = image if hasattr(image, "rows") else ArrayImage(image)
    height, width = source.shape
    check_windows(height, width, tiling.size, tiling.stride)
    rows, cols = window_starts(height, tiling.size, tiling.stride), window_starts(width, tiling.size, tiling.stride)
    batch_size = tiling.batch_size or min(CPU_BATCH, len(cols))
    log.info("%d x %d px: %d windows of %d px, stride %d, in batches of %d, %s blend, on the host", width, height,
             len(rows) * len(cols), tiling.size, tiling.stride, batch_size, tiling.blend)
    band = _Band(n_classes, width, window_weights(tiling.size, tiling.blend))
    per_band = max(1, batch_size // len(cols))
    bar = tqdm(total=len(rows) * len(cols), desc="mosaic", unit="window", disable=not shows_progress())
    bands = [rows[first : first + per_band] for first in range(0, len(rows), per_band)]
    for number, scored in enumerate(read_ahead(_scored(predict, source, bands, cols, tiling.size, batch_size))):
        band.extend(scored.top, scored.bottom)
        for corners, scores in scored.batches:
            band.add(corners, scores)
        bar.update(len(bands[number]) * len(cols))
        done = int(bands[number + 1][0]) if number + 1 < len(bands) else height
        yield scored.top, band.finish(done), None if scored.valid is None else scored.valid[: done - scored.top]
    bar.close()


@dataclass(frozen=True)
class _Scored:
    """A band of window rows predicted: the image rows it spans (``top:bottom``), its windows'
    corners and scores, batch by batch, and its valid pixels (None: all)."""

    top: int
    bottom: int
    batches: list[tuple[list[tuple[int, int]], np.ndarray]]
    valid: np.ndarray | None


def _scored(predict: BatchPredictor, source, bands, cols, size: int, batch_size: int) -> Iterator[_Scored]:
    """Each band of window rows read and its windows predicted, in batches; windows wholly in
    no-data are left out."""
    for band_rows in bands:
        top, bottom = int(band_rows[0]), int(band_rows[-1]) + size
        pixels, valid = source.rows(top, bottom)
        corners = [(int(r), int(c)) for r in band_rows for c in cols]
        if valid is not None:
            corners = [(r, c) for r, c in corners if valid[r - top : r - top + size, c : c + size].any()]
        batches = [corners[i : i + batch_size] for i in range(0, len(corners), batch_size)]
        yield _Scored(top, bottom, [(batch, predict(_cut(pixels, batch, top, size))) for batch in batches], valid)


_DONE = object()


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of an iterator, each made in a background thread while the caller works on
    the one before: the model predicts the next band of windows while the caller blends,
    writes and hands on the last (ONNX Runtime, NumPy and the raster readers release the
    GIL). At most one item waits; an error in the thread is raised here, and a caller that
    stops early stops the thread after the item it is making."""
    queue: Queue = Queue(maxsize=1)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # raised in the caller's thread
            put((None, error))

    thread = threading.Thread(target=produce, name="mosaic-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _cut(pixels: np.ndarray, corners, top: int, size: int) -> np.ndarray:
    """The windows at ``corners`` (image rows and columns) of a band starting at row ``top``,
    as one contiguous (B, s, s, C) array."""
    out = np.empty((len(corners), size, size, pixels.shape[2]), pixels.dtype)
    for i, (r, c) in enumerate(corners):
        out[i] = pixels[r - top : r - top + size, c : c + size]
    return out


class _Band:
    """The running sums of the rows that windows still touch: ``total`` (K, rows, W) of weighted
    scores and ``count`` (rows, W) of weights, starting at image row ``top``."""

    def __init__(self, n_classes: int, width: int, weights: np.ndarray):
        self.weights, self.size, self.top = weights, weights.shape[0], 0
        self.unit = bool((weights == 1).all())  # mean blend: x * 1 is x, the product is skipped
        self.total = np.zeros((n_classes, 0, width), np.float32)
        self.count = np.zeros((0, width), np.float32)

    def extend(self, top: int, bottom: int) -> None:
        """Make room for rows up to ``bottom`` (the band's rows start at or before ``top``)."""
        more = bottom - (self.top + self.count.shape[0])
        if more > 0:
            k, _, w = self.total.shape
            self.total = np.concatenate([self.total, np.zeros((k, more, w), np.float32)], axis=1)
            self.count = np.concatenate([self.count, np.zeros((more, w), np.float32)])

    def add(self, corners, scores: np.ndarray) -> None:
        s = self.size
        for (r, c), window in zip(corners, scores):
            rows = slice(r - self.top, r - self.top + s)
            self.total[:, rows, c : c + s] += window if self.unit else window * self.weights
            self.count[rows, c : c + s] += self.weights

    def finish(self, done: int) -> np.ndarray:
        """The blended scores of rows ``top:done``, which no later window touches; they leave the band."""
        n = done - self.top
        with np.errstate(invalid="ignore", divide="ignore"):  # rows of unpredicted (no-data) windows: 0 / 0
            blended = self.total[:, :n] / self.count[None, :n]
        self.total, self.count, self.top = self.total[:, n:], self.count[n:], done
        return blended


def iter_ids(predict: BatchPredictor, image, n_classes: int, tiling: Tiling) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, class ids (rows, W) uint8) of consecutive blocks of finished rows: the argmax
    of the blended scores, `IGNORE_INDEX` where the image has no data."""
    for top, block, valid in iter_strips(predict, image, n_classes, tiling):
        ids = block.argmax(0).astype(np.uint8)
        if valid is not None:
            ids[~valid] = IGNORE_INDEX
        yield top, ids


@dataclass(frozen=True)
class Block:
    """A block of finished rows of a map, from one pass of the mosaic: rows ``top:top +
    len(ids)``, their class ids (uint8, `IGNORE_INDEX` where the image has no data), their
    confidence as uint8 codes (`calibration.to_codes`: the softmax of the blended scores at
    the chosen class, code / 255; 0 where the image has no data) and ``probabilities``, which
    computes the per-class probabilities of the block as uint8 codes (K, rows, W) when called
    (only a map that writes them pays for them); ``confidence_at`` the confidence as float32
    at a temperature T (the softmax of the blended scores / T at the chosen class; undefined
    where the image has no data), for calibration."""

    top: int
    ids: np.ndarray
    confidence: np.ndarray
    probabilities: Callable[[], np.ndarray]
    confidence_at: Callable[[float], np.ndarray]


def iter_blocks(predict: BatchPredictor, image, n_classes: int, tiling: Tiling,
                temperature: float = 1.0) -> Iterator[Block]:
    """`iter_ids` with each block's confidence (`Block`), from the same blended scores: logits,
    or log-probabilities (`BatchPredictor`), whose softmax is that of the blended logits, since
    a window's log-probabilities are its logits less one number per pixel and softmax ignores
    a shift shared by all classes. With a ``temperature`` T the confidence and probabilities
    are those of the scores / T (temperature scaling); the ids are the argmax of the scores as
    they are, never changed by T."""
    for top, scores, valid in iter_strips(predict, image, n_classes, tiling):
        ids = scores.argmax(0).astype(np.uint8)
        if valid is not None:
            ids[~valid] = IGNORE_INDEX
        scaled = scores / np.float32(temperature) if temperature != 1.0 else scores
        confidence = to_codes(confidence_from_logits(scaled, axis=0), valid)
        yield Block(top, ids, confidence, _probabilities(scaled, valid), _confidence_at(scaled))


def _probabilities(scores: np.ndarray, valid: np.ndarray | None) -> Callable[[], np.ndarray]:
    return lambda: to_codes(softmax(scores, axis=0), valid)


def _confidence_at(scores: np.ndarray) -> Callable[[float], np.ndarray]:
    return lambda temperature: confidence_from_logits(scores, axis=0, temperature=temperature)
