"""Deterministic synthetic aerial scene in the style of ISPRS Vaihingen/Potsdam.

``render_scene`` draws a small town seen from above (true orthophoto, RGB) together
with its ground truth in ISPRS colour coding, so the workflow can run offline:

* a jittered street grid of asphalt roads with sidewalks and dashed centre lines, plus
  parking lots, driveways, paved plazas and park paths (Impervious surfaces);
* city blocks of four kinds: detached houses with gardens, apartment slabs, commercial
  halls with a parking lot, and parks / fields;
* buildings with gable or hip roofs (tile courses, ridge lines, sun-lit and shaded
  faces) or flat roofs (parapet, rooftop units), some L-shaped, in tile, grey, dark,
  light and greenish-grey colours;
* round, clumpy tree crowns with a darker rim in street rows, gardens and park
  clusters; crowns may overhang roads and roofs (label Tree wherever the crown is);
* lawns, dry grass, crop stripes and bare-soil patches (Low vegetation);
* cars in road lanes and parking stalls, aligned with the road or stall (the rare class);
* a few containers / rubbish heaps (Clutter).

Every object has a height; shadows are ray-marched over the height map along a random
sun direction and only darken the image, never change the label.  A smooth low-frequency
illumination / colour gradient and per-pixel Gaussian noise keep colour alone from being a
perfect classifier.  Geometry scales with ``size / 1024``; the object count does not, so a
larger size is the same town at a finer ground sampling distance.  Pure numpy, vectorised
per object, all randomness from ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

ISPRS_COLORS: dict[str, tuple[int, int, int]] = {
    "Buildings": (0, 0, 255),
    "Tree": (0, 255, 0),
    "Low vegetation": (0, 255, 255),
    "Car": (255, 255, 0),
    "Impervious surfaces": (255, 255, 255),
    "Clutter": (255, 0, 0),  # ignored by the workflow's default config
}

_BUILDING, _TREE, _LOW_VEGETATION, _CAR, _IMPERVIOUS, _CLUTTER = range(6)  # indices into ISPRS_COLORS
_COLOR_OF_CLASS = np.array(list(ISPRS_COLORS.values()), dtype=np.uint8)

_TILE_ROOFS = [(168, 84, 64), (184, 112, 76), (130, 80, 62), (150, 98, 82), (112, 74, 66)]
_FLAT_ROOFS = [(110, 110, 114), (72, 72, 76), (192, 190, 184), (116, 124, 108), (142, 136, 126)]
_CAR_COLORS = [(226, 226, 224), (232, 230, 220), (34, 34, 38), (172, 174, 178), (150, 36, 34),
               (44, 64, 132), (86, 88, 94)]
_TREE_COLORS = [(52, 84, 44), (44, 72, 40), (66, 92, 50), (40, 64, 52), (82, 96, 52)]
_CLUTTER_COLORS = [(150, 72, 52), (62, 84, 120), (72, 102, 72), (128, 118, 100), (170, 160, 72)]
_SIDEWALK, _PAVING, _MARKING = (150, 148, 142), (172, 160, 142), (196, 196, 190)
# class-wise texture amplitude: (clumpy ~4 px noise, per-pixel noise), indexed by class
_TEXTURE = np.array([(0.03, 0.03), (0.24, 0.07), (0.07, 0.05), (0.0, 0.0), (0.03, 0.04), (0.05, 0.05)],
                    dtype=np.float32)

Rect = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


class _Orientation(Enum):
    """Which way a road, a car or the long sides of a block run in the image."""

    HORIZONTAL = "horizontal"  # along the image's x axis
    VERTICAL = "vertical"  # along its y axis

    def turned(self) -> _Orientation:
        """The orientation at right angles to this one."""
        return _Orientation.VERTICAL if self is _Orientation.HORIZONTAL else _Orientation.HORIZONTAL

    def rect(self, across0, across1, along0, along1) -> Rect:
        """The image rectangle that spans ``along0:along1`` this way and ``across0:across1`` at
        right angles to it."""
        if self is _Orientation.HORIZONTAL:
            return across0, across1, along0, along1
        return along0, along1, across0, across1

    def point(self, across, along) -> tuple:
        """The image point (y, x) at ``along`` this way and ``across`` at right angles to it."""
        return (across, along) if self is _Orientation.HORIZONTAL else (along, across)


@dataclass(frozen=True)
class _Road:
    """A straight street through the whole scene, running ``runs``; across it, it starts at
    ``start`` and is ``width`` px wide (asphalt and sidewalks)."""

    start: int
    width: int
    runs: _Orientation

    @property
    def end(self) -> int:
        return self.start + self.width


@dataclass(frozen=True)
class _Plot:
    """A rectangle of a city block in the block's own coordinates: it runs the way the roads on
    the block's long sides run (``runs``), from ``start`` to ``end`` along them, and from
    ``near`` to ``far`` across, from one of those roads towards the other."""

    near: int
    far: int
    start: int
    end: int
    runs: _Orientation

    @property
    def depth(self) -> int:
        return self.far - self.near

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def area(self) -> Rect:
        """The plot's own rectangle in the image."""
        return self.rect(self.near, self.far, self.start, self.end)

    def rect(self, near, far, start, end) -> Rect:
        """The image rectangle of a rectangle in the plot's coordinates."""
        return self.runs.rect(near, far, start, end)

    def point(self, across, along) -> tuple:
        """The image point (y, x) of a point in the plot's coordinates."""
        return self.runs.point(across, along)

    def part(self, near, far, start, end) -> _Plot:
        """A rectangle in the plot's coordinates, as a plot of its own."""
        return _Plot(near, far, start, end, self.runs)


@dataclass(frozen=True)
class _Lot:
    """A house's lot on one long side of a residential block: from the road at ``edge``,
    ``depth`` px into the block (``inward``: +1 or -1 in the block's near-to-far
    coordinate), and ``length`` px along the road from ``start``."""

    edge: int
    inward: int
    depth: int
    start: int
    length: int


@dataclass(frozen=True)
class _Car:
    """A car with its top-left corner at image row ``top`` and column ``left``, ``length`` px
    long and ``width`` px wide, its length running ``heading``."""

    top: int
    left: int
    length: int
    width: int
    heading: _Orientation

    @property
    def extent(self) -> tuple[int, int]:
        """(height, width) of the car in the image."""
        return (self.width, self.length) if self.heading is _Orientation.HORIZONTAL else (self.length, self.width)


@dataclass
class _Canvas:
    size: int
    rng: np.random.Generator
    sun: tuple[float, float]  # unit (dy, dx) direction in which shadows fall
    image: np.ndarray = field(init=False)  # float32 (H, W, 3)
    labels: np.ndarray = field(init=False)  # uint8 (H, W) class index
    height: np.ndarray = field(init=False)  # float32 (H, W), shadow length in px
    road: np.ndarray = field(init=False)  # bool (H, W), asphalt of streets (car lanes)
    trees: list = field(default_factory=list)  # (y, x, radius, height), drawn last

    def __post_init__(self) -> None:
        size = self.size
        self.image = np.zeros((size, size, 3), np.float32)
        self.labels = np.full((size, size), _LOW_VEGETATION, np.uint8)
        self.height = np.zeros((size, size), np.float32)
        self.road = np.zeros((size, size), bool)

    def scaled(self, length: float, at_least: int = 1) -> int:
        """``length`` (in px at size 1024) scaled to this canvas, at least ``at_least``."""
        return max(at_least, int(round(length * self.size / 1024)))

    def scaled_uniform(self, low: float, high: float, at_least: int = 1) -> int:
        return self.scaled(self.rng.uniform(low, high), at_least)

    def clip(self, rect: Rect) -> tuple[slice, slice] | None:
        y0, y1, x0, x1 = (int(np.clip(v, 0, self.size)) for v in rect)
        return (slice(y0, y1), slice(x0, x1)) if y1 > y0 and x1 > x0 else None

    def fill(self, rect: Rect, label: int | None, colour) -> None:
        cells = self.clip(rect)
        if cells is None:
            return
        self.image[cells] = colour
        if label is not None:
            self.labels[cells] = label

    def tint(self, rect: Rect, low: float = 0.9, high: float = 1.1) -> None:
        cells = self.clip(rect)
        if cells is not None:
            self.image[cells] *= self.rng.uniform(low, high, 3).astype(np.float32)

    def jitter(self, colours, amount: float = 0.08) -> np.ndarray:
        colour = np.asarray(colours[self.rng.integers(len(colours))], np.float32)
        return colour * self.rng.uniform(1 - amount, 1 + amount)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smoothstep-interpolated (cells+1)^2 Gaussian grid upsampled to (size, size)."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    position = np.linspace(0, cells, size, endpoint=False, dtype=np.float32)
    cell = position.astype(np.int64)
    weight = position - cell
    weight = (weight * weight * (3 - 2 * weight))[:, None]
    rows = (grid[cell] * (1 - weight) + grid[cell + 1] * weight).T.copy()  # interpolated along axis 0, transposed
    out, below = rows[cell], rows[cell + 1]  # row gathers are fast; the result is just transposed
    out *= 1 - weight
    below *= weight
    out += below
    return out


def _draw_ground(canvas: _Canvas) -> None:
    """Lawn / dry grass mixture with bare-soil patches, all Low vegetation."""
    dryness = _smooth_noise(canvas.rng, canvas.size, 5)
    dryness = np.clip(dryness * 0.35 + 0.5, 0, 1, out=dryness)
    lawn, dry, soil = np.float32([104, 134, 68]), np.float32([152, 148, 98]), np.float32([140, 114, 84])
    for channel in range(3):
        canvas.image[..., channel] = lawn[channel] + (dry[channel] - lawn[channel]) * dryness
    bare = _smooth_noise(canvas.rng, canvas.size, 9) > 1.0
    canvas.image[bare] = canvas.image[bare] * 0.3 + soil * 0.7


def _road_layout(canvas: _Canvas, runs: _Orientation) -> list[_Road]:
    """Parallel roads running ``runs``; at least one lies inside the scene."""
    spacing = lambda: max(40.0, canvas.rng.uniform(130, 215) * canvas.size / 1024)  # noqa: E731
    roads, position = [], canvas.rng.uniform(0.1, 0.6) * spacing()
    while position < canvas.size:
        main = canvas.rng.random() < 0.15
        width = canvas.scaled_uniform(32, 42, at_least=10) if main else canvas.scaled_uniform(16, 28, at_least=8)
        roads.append(_Road(int(position), width, runs))
        position += width + spacing()
    return roads


def _sidewalk_width(canvas: _Canvas, road: _Road) -> int:
    """The width of each of a road's sidewalks: none on a narrow road."""
    return canvas.scaled(3.5) if road.width >= canvas.scaled(14, at_least=10) else 0


def _draw_roads(canvas: _Canvas, horizontal: list[_Road], vertical: list[_Road]) -> None:
    """Sidewalks, asphalt (the car lanes, `_Canvas.road`) and dashed centre lines, which
    leave the junctions free."""
    for road in horizontal + vertical:
        canvas.fill(road.runs.rect(road.start, road.end, 0, canvas.size), _IMPERVIOUS, _SIDEWALK)
    for road in horizontal + vertical:
        sidewalk = _sidewalk_width(canvas, road)
        asphalt = road.runs.rect(road.start + sidewalk, road.end - sidewalk, 0, canvas.size)
        canvas.fill(asphalt, _IMPERVIOUS, canvas.jitter([(98, 98, 100)], 0.1))
        if (cells := canvas.clip(asphalt)) is not None:
            canvas.road[cells] = True
    dash = canvas.scaled(8, at_least=3)
    for roads, crossing in ((horizontal, vertical), (vertical, horizontal)):
        for road in roads:
            if road.width < canvas.scaled(22):
                continue
            centre = road.start + road.width // 2
            for dash_start in range(0, canvas.size, 2 * dash):
                if any(dash_start < other.end and other.start < dash_start + dash for other in crossing):
                    continue  # no marking in junctions
                canvas.fill(road.runs.rect(centre, centre + canvas.scaled(1), dash_start, dash_start + dash),
                            _IMPERVIOUS, _MARKING)


def _gaps(roads: list[_Road], size: int, min_length: int) -> list[tuple[int, int]]:
    """The stretches between parallel roads (and the scene's edges) at least ``min_length`` long."""
    gaps, start = [], 0
    for road in roads:
        if road.start - start >= min_length:
            gaps.append((start, road.start))
        start = road.end
    return gaps + ([(start, size)] if size - start >= min_length else [])


def _roof(canvas: _Canvas, rect: Rect, colour, kind: str, height: float) -> None:
    """Draw a roof; kind is 'gable', 'hip' or 'flat'."""
    y0, y1, x0, x1 = rect
    rows, cols = y1 - y0, x1 - x0
    if rows <= 0 or cols <= 0 or (cells := canvas.clip(rect)) is None:
        return
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32) + 0.5
    distance = np.stack([y, rows - y, x, cols - x])  # to the top, bottom, left and right edge
    if kind == "gable":  # faces only towards the two long edges
        distance[(2, 3) if cols >= rows else (0, 1), ...] = np.inf
    dy, dx = canvas.sun
    light = np.float32([dy, -dy, dx, -dx])  # face normal . direction towards the sun
    nearest = np.sort(distance, axis=0)
    if kind == "flat":
        shade = np.where(nearest[0] < canvas.scaled(2), 1.12, 0.95)
    else:
        shade = 1 + 0.22 * light[np.argmin(distance, axis=0)]
        courses = nearest[0].astype(np.int64) % canvas.scaled(3, at_least=2) == 0
        shade = shade * np.where(courses, 0.9, 1.0)  # tile courses
        shade = np.where(nearest[1] - nearest[0] < 1.0, 1.12, shade)  # ridge and hip lines
    patch = np.asarray(colour, np.float32) * shade[..., None].astype(np.float32)
    if kind == "flat":
        _rooftop_units(canvas, patch)
    canvas.image[cells] = patch[cells[0].start - y0:cells[0].stop - y0, cells[1].start - x0:cells[1].stop - x0]
    canvas.labels[cells] = _BUILDING
    canvas.height[cells] = height


def _rooftop_units(canvas: _Canvas, patch: np.ndarray) -> None:
    """Small lighter or darker boxes on a flat roof (``patch``, changed in place)."""
    rows, cols = patch.shape[:2]
    for _ in range(canvas.rng.integers(0, 4)):
        unit_rows, unit_cols = canvas.scaled_uniform(3, 8), canvas.scaled_uniform(3, 8)
        if rows > unit_rows + 2 * canvas.scaled(3) and cols > unit_cols + 2 * canvas.scaled(3):
            top = canvas.rng.integers(canvas.scaled(3), rows - unit_rows - canvas.scaled(3) + 1)
            left = canvas.rng.integers(canvas.scaled(3), cols - unit_cols - canvas.scaled(3) + 1)
            patch[top:top + unit_rows, left:left + unit_cols] *= canvas.rng.choice([0.7, 1.25])


def _building(canvas: _Canvas, parts: list[Rect], pitched_chance: float, tile_chance: float, height: float) -> None:
    """One building of one or more rectangles under one roof: pitched (gable or hip) with
    probability ``pitched_chance`` and then tiled with ``tile_chance``, else flat."""
    pitched = canvas.rng.random() < pitched_chance
    colour = canvas.jitter(_TILE_ROOFS if pitched and canvas.rng.random() < tile_chance else _FLAT_ROOFS)
    kind = ("gable" if canvas.rng.random() < 0.65 else "hip") if pitched else "flat"
    for part in parts:
        _roof(canvas, part, colour, kind, height)


def _add_tree(canvas: _Canvas, y: float, x: float, radius: float | None = None) -> None:
    radius = radius if radius is not None else canvas.rng.uniform(6, 11) * canvas.size / 1024
    canvas.trees.append((int(y), int(x), max(2.0, radius), canvas.scaled(canvas.rng.uniform(6, 12)) + radius))


def _random_point(canvas: _Canvas, plot: _Plot) -> tuple[float, float]:
    """A uniformly random image point (y, x) of ``plot``, its y drawn first."""
    top, bottom, left, right = plot.area
    return canvas.rng.uniform(top, bottom), canvas.rng.uniform(left, right)


def _free_pavement(canvas: _Canvas, car: _Car) -> tuple[slice, slice] | None:
    """The pixels under ``car`` where all of them are in the scene and paved (no car yet), else None."""
    height, width = car.extent
    if car.top < 0 or car.left < 0 or car.top + height > canvas.size or car.left + width > canvas.size:
        return None
    cells = (slice(car.top, car.top + height), slice(car.left, car.left + width))
    return cells if (canvas.labels[cells] == _IMPERVIOUS).all() else None


def _park_car(canvas: _Canvas, car: _Car) -> None:
    """Draw ``car`` where its footprint is free pavement."""
    if (cells := _free_pavement(canvas, car)) is not None:
        _draw_car(canvas, car, cells)


def _drive_car(canvas: _Canvas, car: _Car) -> None:
    """Draw ``car`` where its footprint is free pavement, all of it in a car lane."""
    if (cells := _free_pavement(canvas, car)) is not None and canvas.road[cells].all():
        _draw_car(canvas, car, cells)


def _draw_car(canvas: _Canvas, car: _Car, cells: tuple[slice, slice]) -> None:
    """A car's body with its windscreen and rear window, facing either way along its heading."""
    position = (np.arange(car.length) + 0.5) / car.length  # from one end to the other, 0-1
    position = position[::-1] if canvas.rng.random() < 0.5 else position
    windows = ((position > 0.22) & (position < 0.4)) | ((position > 0.78) & (position < 0.9))
    shade = np.where(windows, 0.4, 1.0).astype(np.float32)
    along = shade[None, :, None] if car.heading is _Orientation.HORIZONTAL else shade[:, None, None]
    canvas.image[cells] = canvas.jitter(_CAR_COLORS, 0.05) * along
    canvas.labels[cells] = _CAR
    canvas.height[cells] = canvas.scaled(1.5)


def _car_size(canvas: _Canvas) -> tuple[int, int]:
    """A random car's (length, width)."""
    return canvas.scaled_uniform(8, 10.5, at_least=6), canvas.scaled_uniform(4, 5.5, at_least=3)


def _draw_parking(canvas: _Canvas, lot: _Plot) -> None:
    """A parking lot: rows of stalls side by side along the lot, cars parked across it in some."""
    canvas.fill(lot.area, _IMPERVIOUS, canvas.jitter([(106, 104, 100)], 0.06))
    stall_depth = canvas.scaled(10.5, at_least=6) + canvas.scaled(3)
    stall_width = max(canvas.scaled(5.5, at_least=3) + 2, canvas.scaled(7))
    rows = [lot.near + canvas.scaled(2)]
    if lot.depth >= 2 * stall_depth + canvas.scaled(12):
        rows.append(lot.far - canvas.scaled(2) - stall_depth)
    occupied = canvas.rng.uniform(0.15, 0.45)  # the share of stalls with a car
    for row in rows:
        if row + stall_depth > lot.far:
            continue
        for stall in range(lot.start + canvas.scaled(3), lot.end - stall_width, stall_width):
            canvas.fill(lot.rect(row, row + stall_depth, stall, stall + canvas.scaled(1)), _IMPERVIOUS, _MARKING)
            if canvas.rng.random() < occupied:
                length, width = _car_size(canvas)
                across = row + (stall_depth - length) // 2
                along = stall + canvas.scaled(1) + (stall_width - canvas.scaled(1) - width) // 2
                _park_car(canvas, _Car(*lot.point(across, along), length, width, lot.runs.turned()))


def _ordered(u: int, v: int) -> tuple[int, int]:
    return min(u, v), max(u, v)


def _residential(canvas: _Canvas, block: _Plot) -> None:
    """Detached houses facing the roads on both long sides (one side in a shallow block), each
    on a lot of its own (`_house`)."""
    depth = block.depth
    sides = [(block.near, 1), (block.far, -1)] if depth >= canvas.scaled(70) else [(block.near, 1)]
    for edge, inward in sides:
        start = block.start + int(canvas.rng.integers(0, canvas.scaled(10) + 1))
        while start < block.end - canvas.scaled(20):
            length = canvas.scaled_uniform(38, 60, at_least=12)
            if not _house(canvas, block, _Lot(edge, inward, depth // len(sides), start, length)):
                break
            start += length


def _house(canvas: _Canvas, block: _Plot, lot: _Lot) -> bool:
    """A house on ``lot`` of ``block``, set back from the road, maybe L-shaped, with its
    driveway, maybe a terrace, and garden trees behind it; False, drawing nothing, where the
    lot is too shallow for one."""
    house_width = int(lot.length * canvas.rng.uniform(0.6, 0.82))
    house_depth, setback = canvas.scaled_uniform(26, 40, at_least=4), canvas.scaled_uniform(6, 14)
    house_depth = min(house_depth, lot.depth - setback - canvas.scaled(6))
    if house_depth < canvas.scaled(6, at_least=3) or house_width < 3:
        return False
    canvas.tint(block.rect(*_ordered(lot.edge, lot.edge + lot.inward * lot.depth), lot.start, lot.start + lot.length))
    left = lot.start + int(canvas.rng.integers(0, max(1, lot.length - house_width - canvas.scaled(3))))
    front, back = lot.edge + lot.inward * setback, lot.edge + lot.inward * (setback + house_depth)
    parts = [block.rect(*_ordered(front, back), left, left + house_width)]
    if canvas.rng.random() < 0.3:  # L-shaped: a wing at the back
        wing_width = int(house_width * canvas.rng.uniform(0.35, 0.55))
        wing_depth = int(house_depth * canvas.rng.uniform(0.4, 0.7))
        wing_left = left if canvas.rng.random() < 0.5 else left + house_width - wing_width
        if abs(setback + house_depth + wing_depth) < lot.depth - canvas.scaled(3):
            parts.append(block.rect(*_ordered(back, back + lot.inward * wing_depth), wing_left, wing_left + wing_width))
    driveway_width = canvas.scaled(5, at_least=2)
    driveway = left + house_width - driveway_width if canvas.rng.random() < 0.5 else left
    canvas.fill(block.rect(*_ordered(lot.edge, front), driveway, driveway + driveway_width), _IMPERVIOUS,
                canvas.jitter([_PAVING, (112, 110, 108)]))
    _building(canvas, parts, pitched_chance=0.85, tile_chance=0.7, height=canvas.scaled_uniform(8, 13))
    if canvas.rng.random() < 0.6:  # paved terrace behind the house
        terrace, terrace_depth = left + int(house_width * canvas.rng.uniform(0, 0.4)), canvas.scaled_uniform(6, 12)
        terrace_width = int(house_width * 0.6)
        canvas.fill(block.rect(*_ordered(back, back + lot.inward * terrace_depth), terrace, terrace + terrace_width),
                    _IMPERVIOUS, canvas.jitter([_PAVING]))
    for _ in range(canvas.rng.integers(1, 4)):  # garden trees behind the house
        across = lot.edge + lot.inward * canvas.rng.uniform(setback + house_depth + canvas.scaled(4), lot.depth)
        along = canvas.rng.uniform(lot.start, lot.start + lot.length)
        _add_tree(canvas, *block.point(across, along))
    return True


def _apartments(canvas: _Canvas, block: _Plot) -> None:
    """Long slabs parallel to the block's long side, lawn, trees, a parking strip."""
    if canvas.rng.random() < 0.35 and block.depth > canvas.scaled(70):
        strip = canvas.scaled(10.5, at_least=6) + canvas.scaled(7)
        _draw_parking(canvas, block.part(block.near, block.near + strip, block.start + canvas.scaled(4),
                                         block.end - canvas.scaled(4)))
        block = block.part(block.near + strip, block.far, block.start, block.end)  # the rest of the block
    band = max(canvas.scaled_uniform(50, 70, at_least=10), 1)
    for number in range(max(1, block.depth // band)):
        depth, length = canvas.scaled_uniform(26, 38, at_least=4), int(block.length * canvas.rng.uniform(0.55, 0.9))
        offset = int(canvas.rng.integers(canvas.scaled(6), max(canvas.scaled(6) + 1, band - depth - canvas.scaled(4))))
        near = block.near + number * band + offset
        start = block.start + int(canvas.rng.integers(0, max(1, block.length - length)))
        slab = block.rect(near, min(near + depth, block.far - canvas.scaled(3)), start, start + length)
        _building(canvas, [slab], 0.45, 0.6, canvas.scaled_uniform(14, 22))
    for _ in range(canvas.rng.integers(6, 14)):
        _add_tree(canvas, *_random_point(canvas, block))


def _commercial(canvas: _Canvas, block: _Plot) -> None:
    """One or two flat-roofed halls with a parking lot towards one road."""
    margin = canvas.scaled_uniform(5, 10)
    lot_depth = int(block.depth * canvas.rng.uniform(0.25, 0.4))
    if canvas.rng.random() < 0.5:  # the parking lot on the near side, the halls behind it
        _draw_parking(canvas, block.part(block.near + margin, block.near + margin + lot_depth, block.start + margin,
                                         block.end - margin))
        hall_near, hall_far = block.near + lot_depth + 2 * margin, block.far - margin
    else:
        _draw_parking(canvas, block.part(block.far - margin - lot_depth, block.far - margin, block.start + margin,
                                         block.end - margin))
        hall_near, hall_far = block.near + margin, block.far - lot_depth - 2 * margin
    halls = [(block.start + margin, block.end - margin)]
    if canvas.rng.random() < 0.5 and block.length > canvas.scaled(120):
        middle = int(canvas.rng.uniform(0.35, 0.65) * block.length) + block.start
        halls = [(block.start + margin, middle - margin), (middle + margin, block.end - margin)]
    height = canvas.scaled_uniform(12, 24)
    for start, end in halls:
        _building(canvas, [block.rect(hall_near, hall_far, start, end)], pitched_chance=0.1, tile_chance=0.2,
                  height=height)


def _park(canvas: _Canvas, block: _Plot) -> None:
    """Lawn or crop field with paths, maybe a plaza, and clusters of trees."""
    if canvas.rng.random() < 0.15:  # field: crop / soil stripes along the block
        stripe = canvas.scaled(6, at_least=2)
        for near in range(block.near, block.far, 2 * stripe):
            canvas.fill(block.rect(near, min(near + stripe, block.far), block.start, block.end), None,
                        canvas.jitter([(138, 118, 82), (120, 132, 74)]))
        return
    canvas.tint(block.area, 0.95, 1.12)
    path_width = canvas.scaled(4, at_least=2)
    path = int(canvas.rng.uniform(block.near, block.far - path_width))
    canvas.fill(block.rect(path, path + path_width, block.start, block.end), _IMPERVIOUS, _PAVING)
    if canvas.rng.random() < 0.6:
        _plaza(canvas, block)
    for _ in range(canvas.rng.integers(3, 7)):  # clusters of trees
        centre_across = canvas.rng.uniform(block.near, block.far)
        centre_along = canvas.rng.uniform(block.start, block.end)
        spread = canvas.rng.uniform(10, 28) * canvas.size / 1024
        for _ in range(canvas.rng.integers(6, 17)):
            across, along = canvas.rng.normal(centre_across, spread), canvas.rng.normal(centre_along, spread)
            if block.near <= across < block.far and block.start <= along < block.end:
                _add_tree(canvas, *block.point(across, along), canvas.rng.uniform(4, 12) * canvas.size / 1024)


def _plaza(canvas: _Canvas, park: _Plot) -> None:
    """A paved plaza in a park, maybe with a small pavilion in its middle."""
    depth, length = int(park.depth * canvas.rng.uniform(0.25, 0.45)), int(park.length * canvas.rng.uniform(0.25, 0.45))
    near = int(canvas.rng.uniform(park.near, park.far - depth))
    start = int(canvas.rng.uniform(park.start, park.end - length))
    canvas.fill(park.rect(near, near + depth, start, start + length), _IMPERVIOUS,
                canvas.jitter([_PAVING, (150, 142, 134)]))
    if depth > canvas.scaled(24) and length > canvas.scaled(24) and canvas.rng.random() < 0.5:
        side = canvas.scaled_uniform(10, 16)
        across, along = near + depth // 2, start + length // 2
        pavilion = park.rect(across - side // 2, across + side // 2, along - side // 2, along + side // 2)
        _building(canvas, [pavilion], 0.5, 0.5, canvas.scaled_uniform(6, 9))


def _draw_blocks(canvas: _Canvas, horizontal: list[_Road], vertical: list[_Road]) -> None:
    """A block of a random kind in every gap between the roads, laid out along its long sides."""
    kinds = [_residential, _apartments, _commercial, _park]
    for top, bottom in _gaps(horizontal, canvas.size, canvas.scaled(20, at_least=8)):
        for left, right in _gaps(vertical, canvas.size, canvas.scaled(20, at_least=8)):
            if bottom - top > right - left:  # taller than wide: its long sides face vertical roads
                block = _Plot(left, right, top, bottom, _Orientation.VERTICAL)
            else:
                block = _Plot(top, bottom, left, right, _Orientation.HORIZONTAL)
            kind = kinds[canvas.rng.choice(4, p=[0.4, 0.2, 0.22, 0.18])]
            kind(canvas, block)


def _street_trees(canvas: _Canvas, roads: list[_Road]) -> None:
    """Rows of trees along both sides of most roads, off the asphalt and off roofs."""
    for road in roads:
        if canvas.rng.random() > 0.75:
            continue
        radius = canvas.rng.uniform(5, 9) * canvas.size / 1024
        for edge, outward in ((road.start, -1), (road.end, 1)):
            across, along = edge + outward * radius * 0.3, canvas.rng.uniform(0, 2 * radius)
            while along < canvas.size:
                y, x = road.runs.point(across, along)
                if 0 <= y < canvas.size and 0 <= x < canvas.size and not canvas.road[int(y), int(x)] \
                        and canvas.labels[int(y), int(x)] != _BUILDING and canvas.rng.random() < 0.85:
                    _add_tree(canvas, y, x, radius * canvas.rng.uniform(0.85, 1.15))
                along += radius * canvas.rng.uniform(2.0, 2.8)


def _road_cars(canvas: _Canvas, roads: list[_Road]) -> None:
    """Cars in the lanes of the roads (two lanes where a road is wide enough), heading the way
    their road runs, at random gaps."""
    gap = 380 * canvas.size / 1024
    for road in roads:
        sidewalk = _sidewalk_width(canvas, road)
        asphalt = road.width - 2 * sidewalk
        two_lanes = asphalt >= 2 * canvas.scaled(5.5, at_least=3) + 4
        lanes = ([road.start + sidewalk + asphalt * 0.27, road.start + sidewalk + asphalt * 0.73] if two_lanes
                 else [road.start + road.width / 2])
        for lane in lanes:
            along = canvas.rng.exponential(gap)
            while along < canvas.size:
                length, width = _car_size(canvas)
                across = int(round(lane - width / 2))
                _drive_car(canvas, _Car(*road.runs.point(across, int(along)), length, width, road.runs))
                along += length + canvas.scaled(3) + canvas.rng.exponential(gap)


def _draw_clutter(canvas: _Canvas) -> None:
    """A few containers / rubbish heaps made of 1-3 rectangles or discs, on open ground."""
    for _ in range(canvas.rng.integers(10, 20)):
        y, x = canvas.rng.integers(0, canvas.size, 2)
        if canvas.labels[y, x] not in (_LOW_VEGETATION, _IMPERVIOUS) or canvas.road[y, x]:
            continue
        colour = canvas.jitter(_CLUTTER_COLORS, 0.1)
        for _ in range(canvas.rng.integers(1, 4)):
            height, width = canvas.scaled_uniform(4, 12, at_least=2), canvas.scaled_uniform(4, 12, at_least=2)
            top = y + int(canvas.rng.integers(-height, height + 1)) // 2
            left = x + int(canvas.rng.integers(-width, width + 1)) // 2
            if (cells := canvas.clip((top, top + height, left, left + width))) is None:
                continue
            rows, cols = np.ogrid[cells[0], cells[1]]
            shape = np.ones((height, width), bool)[: rows.shape[0], : cols.shape[1]]
            if canvas.rng.random() < 0.5:  # disc instead of a box
                squared = (rows - top - height / 2) ** 2 + (cols - left - width / 2) ** 2
                shape = squared <= (min(height, width) / 2) ** 2 + 1
            free = shape & np.isin(canvas.labels[cells], (_LOW_VEGETATION, _IMPERVIOUS)) & ~canvas.road[cells]
            canvas.image[cells][free] = colour * canvas.rng.uniform(0.85, 1.15)
            canvas.labels[cells][free] = _CLUTTER
            canvas.height[cells][free] = np.maximum(canvas.height[cells][free], canvas.scaled(3))


def _draw_trees(canvas: _Canvas) -> None:
    """Every tree's round, clumpy crown, lit on the sun's side, over whatever lies below."""
    dy, dx = canvas.sun
    for y, x, radius, height in canvas.trees:
        reach = int(np.ceil(radius * 1.2)) + 1
        if (cells := canvas.clip((y - reach, y + reach + 1, x - reach, x + reach + 1))) is None:
            continue
        rows, cols = np.ogrid[cells[0].start - y:cells[0].stop - y, cells[1].start - x:cells[1].stop - x]
        phases = canvas.rng.uniform(0, 2 * np.pi, 2)
        angle, distance = np.arctan2(rows, cols), np.hypot(rows, cols)
        crown = radius * (1 + 0.1 * np.sin(3 * angle + phases[0]) + 0.06 * np.sin(5 * angle + phases[1]))
        inside = distance <= crown
        relative = np.clip(distance / crown, 0, 1)
        shade = 0.7 + 0.3 * np.sqrt(1 - relative**2) - 0.12 * (rows * dy + cols * dx) / radius  # dome, lit sun-side
        canvas.image[cells][inside] = canvas.jitter(_TREE_COLORS) * shade[inside][:, None]
        canvas.labels[cells][inside] = _TREE
        canvas.height[cells][inside] = np.maximum(canvas.height[cells][inside], height)


def _shadows(canvas: _Canvas) -> np.ndarray:
    """Ray-march the height map against the sun: True where a pixel is shaded."""
    size, heights, (dy, dx) = canvas.size, canvas.height, canvas.sun
    shadow, step, ray = np.zeros((size, size), bool), max(1.0, size / 1024), max(1.0, size / 1024)
    while ray <= heights.max():  # the ray's height above the ground, and so its length along the shadow
        shift_y, shift_x = int(round(ray * dy)), int(round(ray * dx))
        shaded = (slice(max(shift_y, 0), size + min(shift_y, 0)), slice(max(shift_x, 0), size + min(shift_x, 0)))
        casting = (slice(max(-shift_y, 0), size - max(shift_y, 0)), slice(max(-shift_x, 0), size - max(shift_x, 0)))
        shadow[shaded] |= heights[casting] - ray > heights[shaded]
        ray += step
    return shadow


def render_scene(size: int = 1024, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (image, label): image is uint8 (size, size, 3) RGB; label is uint8 (size, size, 3)
    in ISPRS colour coding (only colours from ISPRS_COLORS)."""
    if size < 64:
        raise ValueError(f"render_scene needs size >= 64, got {size}")
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi)
    canvas = _Canvas(int(size), rng, (float(np.sin(angle)), float(np.cos(angle))))
    _draw_ground(canvas)
    horizontal, vertical = _road_layout(canvas, _Orientation.HORIZONTAL), _road_layout(canvas, _Orientation.VERTICAL)
    _draw_roads(canvas, horizontal, vertical)
    _draw_blocks(canvas, horizontal, vertical)
    _road_cars(canvas, horizontal)
    _road_cars(canvas, vertical)
    _draw_clutter(canvas)
    _street_trees(canvas, horizontal)
    _street_trees(canvas, vertical)
    _draw_trees(canvas)
    return _photograph(canvas), _COLOR_OF_CLASS[canvas.labels]


def _photograph(canvas: _Canvas) -> np.ndarray:
    """Class-wise texture, shadows, a global illumination / colour gradient, sensor noise."""
    rng, size, image = canvas.rng, canvas.size, canvas.image
    factor = _smooth_noise(rng, size, max(2, size // 4))  # clumpy texture (~4 px), strong in crowns
    factor *= _TEXTURE[:, 0][canvas.labels]
    fine = rng.standard_normal((size, size), np.float32)
    fine *= _TEXTURE[:, 1][canvas.labels]
    factor += fine + 1
    light = _smooth_noise(rng, size, 3)
    factor *= light * 0.13 + 1
    shadow = _shadows(canvas)
    factor[shadow] *= 0.5
    image *= factor[..., None]
    tint, tint_amplitude = _smooth_noise(rng, size, 2), rng.uniform(-0.05, 0.05, 3)
    for channel, shade in enumerate((0.92, 1.0, 1.2)):  # shadows are bluish
        image[..., channel] *= tint * tint_amplitude[channel] + 1
        image[..., channel][shadow] *= shade
        image[..., channel] += rng.standard_normal((size, size), np.float32) * 5
    return np.clip(image, 0, 255, out=image).astype(np.uint8)
