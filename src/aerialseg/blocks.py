"""A map made as many jobs (``predict.block_size``): the grid of blocks, the windows that touch
a block, and the region (the block and its halo) that a block job reads and predicts.

Blocks are squares of ``block_size`` px laid from the image's top-left corner, the last of
each row and column cut at the image's edge; like the map's Cloud-Optimised GeoTIFF tiles
(256 px from the same corner), so that a block size that is a multiple of 256 px makes every
block whole tiles.

Exactness: the whole-image mosaic places windows of ``size`` every ``stride`` px from 0, the
last of each row and column snapped to the edge (`patches.window_starts`), and blends at each
pixel the windows that cover it. A block job predicts exactly the windows of that global grid
that touch its block and nothing else: they cover a rectangle, the block plus a halo of at
most one window less a pixel on each side (`region`), and the mosaic of that rectangle places
exactly those windows at the same places (its own window grid, from its corner, is the global
one shifted; `region` checks it). Every pixel of the block is thus blended from the same
windows, in the same order, as in the whole-image run; the halo's own pixels, which lack some
of their windows, are thrown away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .patches import window_starts


@dataclass(frozen=True)
class Rect:
    """Rows ``top:bottom`` and columns ``left:right`` of an image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


@dataclass(frozen=True)
class BlockGrid:
    """The blocks of ``size`` px of an image of ``height`` x ``width`` px."""

    height: int
    width: int
    size: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of blocks."""
        return -(-self.height // self.size), -(-self.width // self.size)

    def block(self, row: int, col: int) -> Rect:
        """The pixels of block (``row``, ``col``), counted from the top left."""
        rows, cols = self.shape
        if not (0 <= row < rows and 0 <= col < cols):
            raise ValueError(f"block ({row}, {col}) is outside the grid of {rows} x {cols} blocks")
        top, left = row * self.size, col * self.size
        return Rect(top, left, min(top + self.size, self.height), min(left + self.size, self.width))

    def index(self) -> list[tuple[int, int]]:
        """Every block's (row, col), row by row."""
        rows, cols = self.shape
        return [(r, c) for r in range(rows) for c in range(cols)]


def touching(length: int, size: int, stride: int, low: int, high: int) -> np.ndarray:
    """The starts of the windows along an axis of ``length`` px (`patches.window_starts`) that
    touch positions ``low:high``."""
    starts = window_starts(length, size, stride)
    return starts[(starts < high) & (starts + size > low)]


def region(block: Rect, shape: tuple[int, int], size: int, stride: int) -> Rect:
    """The rectangle of an image of ``shape`` (height, width) covered by the windows of ``size``
    every ``stride`` px that touch ``block``: the block and its halo, what a block job reads.
    Its own mosaic places the same windows (checked)."""
    spans = []
    for length, low, high in ((shape[0], block.top, block.bottom), (shape[1], block.left, block.right)):
        starts = touching(length, size, stride, low, high)
        first, end = int(starts[0]), int(starts[-1]) + size
        if not np.array_equal(window_starts(end - first, size, stride) + first, starts):
            raise RuntimeError(f"the windows of {first}:{end} are not those of the whole image")  # a broken invariant
        spans.append((first, end))
    (top, bottom), (left, right) = spans
    return Rect(top, left, bottom, right)


class Region:
    """A rectangle of an open image (`io.read.Image`), read like an image of its own (``shape``,
    ``rows``): what a block job hands the mosaic."""

    def __init__(self, image, rect: Rect):
        self.image, self.rect = image, rect
        self.path, self.shape = image.path, (rect.height, rect.width)

    def rows(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``top:bottom`` of the rectangle: pixels (h, w, C) uint8 and valid pixels (h, w)."""
        r = self.rect
        return self.image.window(Rect(r.top + top, r.left, r.top + bottom, r.right))

    def crop(self, top: int, rows: np.ndarray, block: Rect) -> tuple[slice, np.ndarray] | None:
        """Where rows ``top:top + len(rows)`` of the rectangle's results fall in ``block``: (the
        block's rows, the part of ``rows`` in the block); None when they miss it."""
        first, last = max(self.rect.top + top, block.top), min(self.rect.top + top + len(rows), block.bottom)
        if first >= last:
            return None
        start = first - self.rect.top - top
        cols = slice(block.left - self.rect.left, block.right - self.rect.left)
        return slice(first - block.top, last - block.top), rows[start : start + last - first, ..., cols]
