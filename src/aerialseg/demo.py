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

import numpy as np

ISPRS_COLORS: dict[str, tuple[int, int, int]] = {
    "Buildings": (0, 0, 255),
    "Tree": (0, 255, 0),
    "Low vegetation": (0, 255, 255),
    "Car": (255, 255, 0),
    "Impervious surfaces": (255, 255, 255),
    "Clutter": (255, 0, 0),  # ignored by the workflow's default config
}

_BLD, _TREE, _LV, _CAR, _IMP, _CLT = range(6)  # indices into ISPRS_COLORS
_LUT = np.array(list(ISPRS_COLORS.values()), dtype=np.uint8)

_TILE_ROOFS = [(168, 84, 64), (184, 112, 76), (130, 80, 62), (150, 98, 82), (112, 74, 66)]
_FLAT_ROOFS = [(110, 110, 114), (72, 72, 76), (192, 190, 184), (116, 124, 108), (142, 136, 126)]
_CAR_COLORS = [(226, 226, 224), (232, 230, 220), (34, 34, 38), (172, 174, 178), (150, 36, 34),
               (44, 64, 132), (86, 88, 94)]
_TREE_COLORS = [(52, 84, 44), (44, 72, 40), (66, 92, 50), (40, 64, 52), (82, 96, 52)]
_CLUTTER_COLORS = [(150, 72, 52), (62, 84, 120), (72, 102, 72), (128, 118, 100), (170, 160, 72)]
_SIDEWALK, _PAVING, _LINE = (150, 148, 142), (172, 160, 142), (196, 196, 190)
# class-wise texture amplitude: (clumpy ~4 px noise, per-pixel noise), indexed by class
_TEX = np.array([(0.03, 0.03), (0.24, 0.07), (0.07, 0.05), (0.0, 0.0), (0.03, 0.04), (0.05, 0.05)],
                dtype=np.float32)

Rect = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


@dataclass
class _Canvas:
    size: int
    rng: np.random.Generator
    sun: tuple[float, float]  # unit (dy, dx) direction in which shadows fall
    img: np.ndarray = field(init=False)  # float32 (H, W, 3)
    labels: np.ndarray = field(init=False)  # uint8 (H, W) class index
    height: np.ndarray = field(init=False)  # float32 (H, W), shadow length in px
    road: np.ndarray = field(init=False)  # bool (H, W), asphalt of streets (car lanes)
    trees: list = field(default_factory=list)  # (cy, cx, r, height), drawn last

    def __post_init__(self) -> None:
        n = self.size
        self.img = np.zeros((n, n, 3), np.float32)
        self.labels = np.full((n, n), _LV, np.uint8)
        self.height = np.zeros((n, n), np.float32)
        self.road = np.zeros((n, n), bool)

    def scaled(self, v: float, lo: int = 1) -> int:
        """Length ``v`` (in px at size 1024) scaled to this canvas, at least ``lo``."""
        return max(lo, int(round(v * self.size / 1024)))

    def scaled_uniform(self, a: float, b: float, lo: int = 1) -> int:
        return self.scaled(self.rng.uniform(a, b), lo)

    def clip(self, r: Rect) -> tuple[slice, slice] | None:
        y0, y1, x0, x1 = (int(np.clip(v, 0, self.size)) for v in r)
        return (slice(y0, y1), slice(x0, x1)) if y1 > y0 and x1 > x0 else None

    def fill(self, r: Rect, cls: int | None, colour, h: float | None = None) -> None:
        cells = self.clip(r)
        if cells is None:
            return
        self.img[cells] = colour
        if cls is not None:
            self.labels[cells] = cls
        if h is not None:
            self.height[cells] = h

    def tint(self, r: Rect, lo: float = 0.9, hi: float = 1.1) -> None:
        cells = self.clip(r)
        if cells is not None:
            self.img[cells] *= self.rng.uniform(lo, hi, 3).astype(np.float32)

    def jitter(self, colours, amount: float = 0.08) -> np.ndarray:
        c = np.asarray(colours[self.rng.integers(len(colours))], np.float32)
        return c * self.rng.uniform(1 - amount, 1 + amount)


def _frame(transposed: bool):
    """Map local (a0, a1, b0, b1) rectangles to global ones; ``transposed`` swaps the axes."""
    return (lambda a0, a1, b0, b1: (b0, b1, a0, a1)) if transposed else (lambda a0, a1, b0, b1: (a0, a1, b0, b1))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smoothstep-interpolated (cells+1)^2 Gaussian grid upsampled to (size, size)."""
    g = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    t = np.linspace(0, cells, size, endpoint=False, dtype=np.float32)
    i = t.astype(np.int64)
    f = t - i
    f = (f * f * (3 - 2 * f))[:, None]
    rows = (g[i] * (1 - f) + g[i + 1] * f).T.copy()  # interpolated along axis 0, transposed
    out, nxt = rows[i], rows[i + 1]  # row gathers are fast; the result is just transposed
    out *= 1 - f
    nxt *= f
    out += nxt
    return out


def _draw_ground(canvas: _Canvas) -> None:
    """Lawn / dry grass mixture with bare-soil patches, all Low vegetation."""
    t = _smooth_noise(canvas.rng, canvas.size, 5)
    t = np.clip(t * 0.35 + 0.5, 0, 1, out=t)
    lawn, dry, soil = np.float32([104, 134, 68]), np.float32([152, 148, 98]), np.float32([140, 114, 84])
    for c in range(3):
        canvas.img[..., c] = lawn[c] + (dry[c] - lawn[c]) * t
    bare = _smooth_noise(canvas.rng, canvas.size, 9) > 1.0
    canvas.img[bare] = canvas.img[bare] * 0.3 + soil * 0.7


def _road_layout(canvas: _Canvas) -> list[tuple[int, int]]:
    """(position, width) of parallel roads; at least one lies inside the scene."""
    spacing = lambda: max(40.0, canvas.rng.uniform(130, 215) * canvas.size / 1024)  # noqa: E731
    roads, pos = [], canvas.rng.uniform(0.1, 0.6) * spacing()
    while pos < canvas.size:
        main = canvas.rng.random() < 0.15
        w = canvas.scaled_uniform(32, 42, lo=10) if main else canvas.scaled_uniform(16, 28, lo=8)
        roads.append((int(pos), w))
        pos += w + spacing()
    return roads


def _draw_roads(canvas: _Canvas, hroads, vroads) -> None:
    sw = lambda w: canvas.scaled(3.5) if w >= canvas.scaled(14, lo=10) else 0  # noqa: E731  sidewalk width
    for p, w in hroads:
        canvas.fill((p, p + w, 0, canvas.size), _IMP, _SIDEWALK)
    for p, w in vroads:
        canvas.fill((0, canvas.size, p, p + w), _IMP, _SIDEWALK)
    for horiz, roads in ((True, hroads), (False, vroads)):
        for p, w in roads:
            r = (p + sw(w), p + w - sw(w), 0, canvas.size)
            r = r if horiz else (r[2], r[3], r[0], r[1])
            canvas.fill(r, _IMP, canvas.jitter([(98, 98, 100)], 0.1))
            if (cells := canvas.clip(r)) is not None:
                canvas.road[cells] = True
    dash = canvas.scaled(8, lo=3)
    for horiz, roads, cross in ((True, hroads, vroads), (False, vroads, hroads)):
        for p, w in roads:
            if w < canvas.scaled(22):
                continue
            c = p + w // 2
            for u in range(0, canvas.size, 2 * dash):
                if any(u < q + v and q < u + dash for q, v in cross):  # no marking in junctions
                    continue
                canvas.fill((c, c + canvas.scaled(1), u, u + dash) if horiz else (u, u + dash, c, c + canvas.scaled(1)),
                        _IMP, _LINE)


def _gaps(roads, size: int, min_len: int) -> list[tuple[int, int]]:
    out, start = [], 0
    for p, w in roads:
        if p - start >= min_len:
            out.append((start, p))
        start = p + w
    return out + ([(start, size)] if size - start >= min_len else [])


def _roof(canvas: _Canvas, r: Rect, colour, kind: str, h: float) -> None:
    """Draw a roof; kind is 'gable', 'hip' or 'flat'."""
    y0, y1, x0, x1 = r
    hh, ww = y1 - y0, x1 - x0
    if hh <= 0 or ww <= 0 or (cells := canvas.clip(r)) is None:
        return
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32) + 0.5
    d = np.stack([yy, hh - yy, xx, ww - xx])  # distance to top, bottom, left, right edge
    if kind == "gable":  # faces only towards the two long edges
        d[(2, 3) if ww >= hh else (0, 1), ...] = np.inf
    dy, dx = canvas.sun
    light = np.float32([dy, -dy, dx, -dx])  # face normal . direction towards the sun
    ds = np.sort(d, axis=0)
    if kind == "flat":
        f = np.where(ds[0] < canvas.scaled(2), 1.12, 0.95)
    else:
        f = 1 + 0.22 * light[np.argmin(d, axis=0)]
        f = f * np.where(ds[0].astype(np.int64) % canvas.scaled(3, lo=2) == 0, 0.9, 1.0)  # tile courses
        f = np.where(ds[1] - ds[0] < 1.0, 1.12, f)  # ridge and hip lines
    patch = np.asarray(colour, np.float32) * f[..., None].astype(np.float32)
    if kind == "flat":  # rooftop units: small lighter / darker boxes
        for _ in range(canvas.rng.integers(0, 4)):
            bh, bw = canvas.scaled_uniform(3, 8), canvas.scaled_uniform(3, 8)
            if hh > bh + 2 * canvas.scaled(3) and ww > bw + 2 * canvas.scaled(3):
                uy = canvas.rng.integers(canvas.scaled(3), hh - bh - canvas.scaled(3) + 1)
                ux = canvas.rng.integers(canvas.scaled(3), ww - bw - canvas.scaled(3) + 1)
                patch[uy:uy + bh, ux:ux + bw] *= canvas.rng.choice([0.7, 1.25])
    canvas.img[cells] = patch[cells[0].start - y0:cells[0].stop - y0, cells[1].start - x0:cells[1].stop - x0]
    canvas.labels[cells] = _BLD
    canvas.height[cells] = h


def _building(canvas: _Canvas, rects: list[Rect], pitched_p: float, tile_p: float, h: float) -> None:
    pitched = canvas.rng.random() < pitched_p
    colour = canvas.jitter(_TILE_ROOFS if pitched and canvas.rng.random() < tile_p else _FLAT_ROOFS)
    kind = ("gable" if canvas.rng.random() < 0.65 else "hip") if pitched else "flat"
    for r in rects:
        _roof(canvas, r, colour, kind, h)


def _add_tree(canvas: _Canvas, cy: float, cx: float, r: float | None = None) -> None:
    r = r if r is not None else canvas.rng.uniform(6, 11) * canvas.size / 1024
    canvas.trees.append((int(cy), int(cx), max(2.0, r), canvas.scaled(canvas.rng.uniform(6, 12)) + r))


def _car(canvas: _Canvas, y0: int, x0: int, length: int, width: int, *, horiz: bool, on_road: bool) -> bool:
    """Draw one car (body, windscreen, rear window) if its footprint is free pavement."""
    h, w = (width, length) if horiz else (length, width)
    if y0 < 0 or x0 < 0 or y0 + h > canvas.size or x0 + w > canvas.size:
        return False
    cells = (slice(y0, y0 + h), slice(x0, x0 + w))
    if not (canvas.labels[cells] == _IMP).all() or (on_road and not canvas.road[cells].all()):
        return False
    t = (np.arange(length) + 0.5) / length
    t = t[::-1] if canvas.rng.random() < 0.5 else t
    win = ((t > 0.22) & (t < 0.4)) | ((t > 0.78) & (t < 0.9))
    f = np.where(win, 0.4, 1.0).astype(np.float32)
    body = canvas.jitter(_CAR_COLORS, 0.05) * (f[None, :, None] if horiz else f[:, None, None])
    canvas.img[cells] = body
    canvas.labels[cells] = _CAR
    canvas.height[cells] = canvas.scaled(1.5)
    return True


def _car_dims(canvas: _Canvas) -> tuple[int, int]:
    return canvas.scaled_uniform(8, 10.5, lo=6), canvas.scaled_uniform(4, 5.5, lo=3)


def _draw_parking(canvas: _Canvas, to_global, a0: int, a1: int, b0: int, b1: int, *, transposed: bool) -> None:
    """Parking lot in local coordinates; stalls in rows along b, cars along a."""
    canvas.fill(to_global(a0, a1, b0, b1), _IMP, canvas.jitter([(106, 104, 100)], 0.06))
    sd, sw = canvas.scaled(10.5, lo=6) + canvas.scaled(3), max(canvas.scaled(5.5, lo=3) + 2, canvas.scaled(7))
    rows = [a0 + canvas.scaled(2)]
    if a1 - a0 >= 2 * sd + canvas.scaled(12):
        rows.append(a1 - canvas.scaled(2) - sd)
    fill_p = canvas.rng.uniform(0.15, 0.45)
    for ra in rows:
        if ra + sd > a1:
            continue
        for b in range(b0 + canvas.scaled(3), b1 - sw, sw):
            canvas.fill(to_global(ra, ra + sd, b, b + canvas.scaled(1)), _IMP, _LINE)
            if canvas.rng.random() < fill_p:
                cl, cw = _car_dims(canvas)
                a, bb = ra + (sd - cl) // 2, b + canvas.scaled(1) + (sw - canvas.scaled(1) - cw) // 2
                y, x = (bb, a) if transposed else (a, bb)
                _car(canvas, y, x, cl, cw, horiz=transposed, on_road=False)


def _residential(canvas: _Canvas, to_global, a0: int, a1: int, b0: int, b1: int, *, transposed: bool) -> None:
    """Detached houses facing the roads on both long sides, gardens, driveways."""
    sides = [(a0, 1), (a1, -1)] if a1 - a0 >= canvas.scaled(70) else [(a0, 1)]
    depth = (a1 - a0) // len(sides)
    for edge, sgn in sides:
        b = b0 + int(canvas.rng.integers(0, canvas.scaled(10) + 1))
        span = lambda u, v: (min(u, v), max(u, v))  # noqa: E731
        while b < b1 - canvas.scaled(20):
            lw = canvas.scaled_uniform(38, 60, lo=12)
            hw, hd, sb = int(lw * canvas.rng.uniform(0.6, 0.82)), canvas.scaled_uniform(26, 40, lo=4), canvas.scaled_uniform(6, 14)
            hd = min(hd, depth - sb - canvas.scaled(6))
            if hd < canvas.scaled(6, lo=3) or hw < 3:
                break
            canvas.tint(to_global(*span(edge, edge + sgn * depth), b, b + lw))
            off = b + int(canvas.rng.integers(0, max(1, lw - hw - canvas.scaled(3))))
            front, back = edge + sgn * sb, edge + sgn * (sb + hd)
            rects = [to_global(*span(front, back), off, off + hw)]
            if canvas.rng.random() < 0.3:  # L-shaped: a wing at the back
                ww, wd = int(hw * canvas.rng.uniform(0.35, 0.55)), int(hd * canvas.rng.uniform(0.4, 0.7))
                wb = off if canvas.rng.random() < 0.5 else off + hw - ww
                if abs(sb + hd + wd) < depth - canvas.scaled(3):
                    rects.append(to_global(*span(back, back + sgn * wd), wb, wb + ww))
            dw = canvas.scaled(5, lo=2)
            db = off + hw - dw if canvas.rng.random() < 0.5 else off
            canvas.fill(to_global(*span(edge, front), db, db + dw), _IMP, canvas.jitter([_PAVING, (112, 110, 108)]))
            _building(canvas, rects, pitched_p=0.85, tile_p=0.7, h=canvas.scaled_uniform(8, 13))
            if canvas.rng.random() < 0.6:  # paved terrace behind the house
                tb, td = off + int(hw * canvas.rng.uniform(0, 0.4)), canvas.scaled_uniform(6, 12)
                canvas.fill(to_global(*span(back, back + sgn * td), tb, tb + int(hw * 0.6)), _IMP, canvas.jitter([_PAVING]))
            for _ in range(canvas.rng.integers(1, 4)):  # garden trees behind the house
                ga, gb = edge + sgn * canvas.rng.uniform(sb + hd + canvas.scaled(4), depth), canvas.rng.uniform(b, b + lw)
                _add_tree(canvas, *((gb, ga) if transposed else (ga, gb)))
            b += lw


def _apartments(canvas: _Canvas, to_global, a0: int, a1: int, b0: int, b1: int, *, transposed: bool) -> None:
    """Long slabs parallel to the block's long side, lawn, trees, a parking strip."""
    if canvas.rng.random() < 0.35 and a1 - a0 > canvas.scaled(70):
        strip = canvas.scaled(10.5, lo=6) + canvas.scaled(7)
        _draw_parking(canvas, to_global, a0, a0 + strip, b0 + canvas.scaled(4), b1 - canvas.scaled(4), transposed=transposed)
        a0 += strip
    band = max(canvas.scaled_uniform(50, 70, lo=10), 1)
    for k in range(max(1, (a1 - a0) // band)):
        sd, length = canvas.scaled_uniform(26, 38, lo=4), int((b1 - b0) * canvas.rng.uniform(0.55, 0.9))
        sa = a0 + k * band + int(canvas.rng.integers(canvas.scaled(6), max(canvas.scaled(6) + 1, band - sd - canvas.scaled(4))))
        sb = b0 + int(canvas.rng.integers(0, max(1, b1 - b0 - length)))
        _building(canvas, [to_global(sa, min(sa + sd, a1 - canvas.scaled(3)), sb, sb + length)], 0.45, 0.6, canvas.scaled_uniform(14, 22))
    for _ in range(canvas.rng.integers(6, 14)):
        _add_tree(canvas, *((canvas.rng.uniform(b0, b1), canvas.rng.uniform(a0, a1)) if transposed
                        else (canvas.rng.uniform(a0, a1), canvas.rng.uniform(b0, b1))))


def _commercial(canvas: _Canvas, to_global, a0: int, a1: int, b0: int, b1: int, *, transposed: bool) -> None:
    """One or two flat-roofed halls with a parking lot towards one road."""
    m = canvas.scaled_uniform(5, 10)
    lot = int((a1 - a0) * canvas.rng.uniform(0.25, 0.4))
    if canvas.rng.random() < 0.5:
        _draw_parking(canvas, to_global, a0 + m, a0 + m + lot, b0 + m, b1 - m, transposed=transposed)
        ha0, ha1 = a0 + lot + 2 * m, a1 - m
    else:
        _draw_parking(canvas, to_global, a1 - m - lot, a1 - m, b0 + m, b1 - m, transposed=transposed)
        ha0, ha1 = a0 + m, a1 - lot - 2 * m
    cuts = [b0 + m, b1 - m]
    if canvas.rng.random() < 0.5 and b1 - b0 > canvas.scaled(120):
        c = int(canvas.rng.uniform(0.35, 0.65) * (b1 - b0)) + b0
        cuts = [b0 + m, c - m, c + m, b1 - m]
    h = canvas.scaled_uniform(12, 24)
    for i in range(0, len(cuts), 2):
        _building(canvas, [to_global(ha0, ha1, cuts[i], cuts[i + 1])], pitched_p=0.1, tile_p=0.2, h=h)


def _park(canvas: _Canvas, to_global, a0: int, a1: int, b0: int, b1: int, *, transposed: bool) -> None:
    """Lawn or crop field with paths, maybe a plaza, and clusters of trees."""
    local = lambda a, b: (b, a) if transposed else (a, b)  # noqa: E731
    if canvas.rng.random() < 0.15:  # field: crop / soil stripes along b
        w = canvas.scaled(6, lo=2)
        for a in range(a0, a1, 2 * w):
            canvas.fill(to_global(a, min(a + w, a1), b0, b1), None, canvas.jitter([(138, 118, 82), (120, 132, 74)]))
        return
    canvas.tint(to_global(a0, a1, b0, b1), 0.95, 1.12)
    pw = canvas.scaled(4, lo=2)
    pa = int(canvas.rng.uniform(a0, a1 - pw))
    canvas.fill(to_global(pa, pa + pw, b0, b1), _IMP, _PAVING)
    if canvas.rng.random() < 0.6:  # plaza with a small pavilion
        ph, pl = int((a1 - a0) * canvas.rng.uniform(0.25, 0.45)), int((b1 - b0) * canvas.rng.uniform(0.25, 0.45))
        qa, qb = int(canvas.rng.uniform(a0, a1 - ph)), int(canvas.rng.uniform(b0, b1 - pl))
        canvas.fill(to_global(qa, qa + ph, qb, qb + pl), _IMP, canvas.jitter([_PAVING, (150, 142, 134)]))
        if ph > canvas.scaled(24) and pl > canvas.scaled(24) and canvas.rng.random() < 0.5:
            s = canvas.scaled_uniform(10, 16)
            _building(canvas, [to_global(qa + ph // 2 - s // 2, qa + ph // 2 + s // 2, qb + pl // 2 - s // 2,
                             qb + pl // 2 + s // 2)], 0.5, 0.5, canvas.scaled_uniform(6, 9))
    for _ in range(canvas.rng.integers(3, 7)):
        ca, cb = canvas.rng.uniform(a0, a1), canvas.rng.uniform(b0, b1)
        spread = canvas.rng.uniform(10, 28) * canvas.size / 1024
        for _ in range(canvas.rng.integers(6, 17)):
            a, b = canvas.rng.normal(ca, spread), canvas.rng.normal(cb, spread)
            if a0 <= a < a1 and b0 <= b < b1:
                _add_tree(canvas, *local(a, b), canvas.rng.uniform(4, 12) * canvas.size / 1024)


def _draw_blocks(canvas: _Canvas, hroads, vroads) -> None:
    kinds = [_residential, _apartments, _commercial, _park]
    for y0, y1 in _gaps(hroads, canvas.size, canvas.scaled(20, lo=8)):
        for x0, x1 in _gaps(vroads, canvas.size, canvas.scaled(20, lo=8)):
            transposed = (y1 - y0) > (x1 - x0)  # local b axis along the block's long side
            a0, a1, b0, b1 = (x0, x1, y0, y1) if transposed else (y0, y1, x0, x1)
            kind = kinds[canvas.rng.choice(4, p=[0.4, 0.2, 0.22, 0.18])]
            kind(canvas, _frame(transposed), a0, a1, b0, b1, transposed=transposed)


def _street_trees(canvas: _Canvas, roads, horiz: bool) -> None:
    for p, w in roads:
        if canvas.rng.random() > 0.75:
            continue
        r = canvas.rng.uniform(5, 9) * canvas.size / 1024
        for edge, sgn in ((p, -1), (p + w, 1)):
            c, u = edge + sgn * r * 0.3, canvas.rng.uniform(0, 2 * r)
            while u < canvas.size:
                y, x = (c, u) if horiz else (u, c)
                if 0 <= y < canvas.size and 0 <= x < canvas.size and not canvas.road[int(y), int(x)] \
                        and canvas.labels[int(y), int(x)] != _BLD and canvas.rng.random() < 0.85:
                    _add_tree(canvas, y, x, r * canvas.rng.uniform(0.85, 1.15))
                u += r * canvas.rng.uniform(2.0, 2.8)


def _road_cars(canvas: _Canvas, roads, horiz: bool) -> None:
    gap = 380 * canvas.size / 1024
    for p, w in roads:
        sw = canvas.scaled(3.5) if w >= canvas.scaled(14, lo=10) else 0
        aw = w - 2 * sw
        lanes = [p + sw + aw * 0.27, p + sw + aw * 0.73] if aw >= 2 * canvas.scaled(5.5, lo=3) + 4 else [p + w / 2]
        for lane in lanes:
            u = canvas.rng.exponential(gap)
            while u < canvas.size:
                cl, cw = _car_dims(canvas)
                c = int(round(lane - cw / 2))
                _car(canvas, c, int(u), cl, cw, horiz=True, on_road=True) if horiz else \
                    _car(canvas, int(u), c, cl, cw, horiz=False, on_road=True)
                u += cl + canvas.scaled(3) + canvas.rng.exponential(gap)


def _draw_clutter(canvas: _Canvas) -> None:
    """A few containers / rubbish heaps made of 1-3 rectangles or discs, on open ground."""
    for _ in range(canvas.rng.integers(10, 20)):
        cy, cx = canvas.rng.integers(0, canvas.size, 2)
        if canvas.labels[cy, cx] not in (_LV, _IMP) or canvas.road[cy, cx]:
            continue
        colour = canvas.jitter(_CLUTTER_COLORS, 0.1)
        for _ in range(canvas.rng.integers(1, 4)):
            h, w = canvas.scaled_uniform(4, 12, lo=2), canvas.scaled_uniform(4, 12, lo=2)
            y0, x0 = cy + int(canvas.rng.integers(-h, h + 1)) // 2, cx + int(canvas.rng.integers(-w, w + 1)) // 2
            if (cells := canvas.clip((y0, y0 + h, x0, x0 + w))) is None:
                continue
            yy, xx = np.ogrid[cells[0], cells[1]]
            shape = np.ones((h, w), bool)[: yy.shape[0], : xx.shape[1]]
            if canvas.rng.random() < 0.5:  # disc instead of a box
                shape = (yy - y0 - h / 2) ** 2 + (xx - x0 - w / 2) ** 2 <= (min(h, w) / 2) ** 2 + 1
            m = shape & np.isin(canvas.labels[cells], (_LV, _IMP)) & ~canvas.road[cells]
            canvas.img[cells][m] = colour * canvas.rng.uniform(0.85, 1.15)
            canvas.labels[cells][m] = _CLT
            canvas.height[cells][m] = np.maximum(canvas.height[cells][m], canvas.scaled(3))


def _draw_trees(canvas: _Canvas) -> None:
    dy, dx = canvas.sun
    for cy, cx, r, h in canvas.trees:
        ext = int(np.ceil(r * 1.2)) + 1
        if (cells := canvas.clip((cy - ext, cy + ext + 1, cx - ext, cx + ext + 1))) is None:
            continue
        yy, xx = np.ogrid[cells[0].start - cy:cells[0].stop - cy, cells[1].start - cx:cells[1].stop - cx]
        ph = canvas.rng.uniform(0, 2 * np.pi, 2)
        th, d = np.arctan2(yy, xx), np.hypot(yy, xx)
        rr = r * (1 + 0.1 * np.sin(3 * th + ph[0]) + 0.06 * np.sin(5 * th + ph[1]))
        m = d <= rr
        rho = np.clip(d / rr, 0, 1)
        f = 0.7 + 0.3 * np.sqrt(1 - rho**2) - 0.12 * (yy * dy + xx * dx) / r  # dome, lit sun-side
        canvas.img[cells][m] = canvas.jitter(_TREE_COLORS) * f[m][:, None]
        canvas.labels[cells][m] = _TREE
        canvas.height[cells][m] = np.maximum(canvas.height[cells][m], h)


def _shadows(canvas: _Canvas) -> np.ndarray:
    """Ray-march the height map against the sun: True where a pixel is shaded."""
    n, hm, (dy, dx) = canvas.size, canvas.height, canvas.sun
    shadow, step, k = np.zeros((n, n), bool), max(1.0, n / 1024), max(1.0, n / 1024)
    while k <= hm.max():
        oy, ox = int(round(k * dy)), int(round(k * dx))
        dst = (slice(max(oy, 0), n + min(oy, 0)), slice(max(ox, 0), n + min(ox, 0)))
        src = (slice(max(-oy, 0), n - max(oy, 0)), slice(max(-ox, 0), n - max(ox, 0)))
        shadow[dst] |= hm[src] - k > hm[dst]
        k += step
    return shadow


def render_scene(size: int = 1024, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (image, label): image is uint8 (size, size, 3) RGB; label is uint8 (size, size, 3)
    in ISPRS colour coding (only colours from ISPRS_COLORS)."""
    if size < 64:
        raise ValueError(f"render_scene needs size >= 64, got {size}")
    rng = np.random.default_rng(seed)
    ang = rng.uniform(0, 2 * np.pi)
    canvas = _Canvas(int(size), rng, (float(np.sin(ang)), float(np.cos(ang))))
    _draw_ground(canvas)
    hroads, vroads = _road_layout(canvas), _road_layout(canvas)
    _draw_roads(canvas, hroads, vroads)
    _draw_blocks(canvas, hroads, vroads)
    _road_cars(canvas, hroads, True)
    _road_cars(canvas, vroads, False)
    _draw_clutter(canvas)
    _street_trees(canvas, hroads, True)
    _street_trees(canvas, vroads, False)
    _draw_trees(canvas)
    return _photograph(canvas), _LUT[canvas.labels]


def _photograph(canvas: _Canvas) -> np.ndarray:
    """Class-wise texture, shadows, a global illumination / colour gradient, sensor noise."""
    rng, n, img = canvas.rng, canvas.size, canvas.img
    f = _smooth_noise(rng, n, max(2, n // 4))  # clumpy texture (~4 px), strong in crowns
    f *= _TEX[:, 0][canvas.labels]
    fine = rng.standard_normal((n, n), np.float32)
    fine *= _TEX[:, 1][canvas.labels]
    f += fine + 1
    light = _smooth_noise(rng, n, 3)
    f *= light * 0.13 + 1
    shadow = _shadows(canvas)
    f[shadow] *= 0.5
    img *= f[..., None]
    tint, tint_amp = _smooth_noise(rng, n, 2), rng.uniform(-0.05, 0.05, 3)
    for c, shade in enumerate((0.92, 1.0, 1.2)):  # shadows are bluish
        img[..., c] *= tint * tint_amp[c] + 1
        img[..., c][shadow] *= shade
        img[..., c] += rng.standard_normal((n, n), np.float32) * 5
    return np.clip(img, 0, 255, out=img).astype(np.uint8)
