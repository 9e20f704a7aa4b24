"""The face texture: colour, gloss and relief painted on the frontal head plane around the landmarks.

Texel (col, row) holds the head-frame point (x, y) = ORIGIN + (col, row) / texels_per_unit; the
renderer looks up each visible surface point by its head-frame x and y, so a feature painted
through a landmark's frontal position appears exactly at that landmark's projection.

Opaque features are drawn straight into the 8-bit colour with OpenCV's anti-aliased primitives;
translucent ones (shadows, blush, make-up) are blended through soft masks.
"""

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from wflwv.synth.face import Expression, Head, Identity, build_head, lid_offsets

ORIGIN = (-1.35, -2.0)  # head-frame x, y of texel (0, 0)
EXTENT = (2.7, 4.0)  # head units covered across and down
SHIFT = 4  # sub-texel bits of the drawing coordinates
TILE = 1024  # side of the shared fine-noise tiles, larger than any canvas


@dataclass(frozen=True)
class Look:
    """Colours (RGB in [0, 1]) and styling of a person."""

    skin: tuple[float, float, float] = (0.85, 0.66, 0.55)
    lips: tuple[float, float, float] = (0.72, 0.4, 0.4)
    iris: tuple[float, float, float] = (0.35, 0.22, 0.12)
    hair: tuple[float, float, float] = (0.2, 0.13, 0.08)
    hair_style: str = "short"  # short, long or buzz
    hairline: float = -0.95  # height of the front hairline
    stubble: float = 0.0  # 0 .. 1
    makeup: float = 0.0  # 0 .. 1: lipstick, eye shadow, liner and blush
    lipstick: tuple[float, float, float] = (0.7, 0.1, 0.2)
    eye_shadow: tuple[float, float, float] = (0.45, 0.3, 0.5)
    seed: int = 0  # skin blemishes and hair strands


@dataclass(frozen=True)
class FaceMask:
    """A mask worn over the nose and mouth, painted on the face."""

    colour: tuple[float, float, float] = (0.6, 0.78, 0.9)
    pleats: bool = True


def _bytes(colour) -> tuple[int, int, int]:
    return tuple(int(round(255 * min(max(float(c), 0.0), 1.0))) for c in colour)


class Canvas:
    """8-bit colour (rows, cols, 3), gloss and height (rows, cols) over the frontal head plane."""

    def __init__(self, texels_per_unit: float):
        self.texels_per_unit = texels_per_unit
        rows, cols = int(EXTENT[1] * texels_per_unit), int(EXTENT[0] * texels_per_unit)
        self.colour = np.zeros((rows, cols, 3), np.uint8)
        self.gloss = np.full((rows, cols), 0.25, np.float32)
        self.height = np.zeros((rows, cols), np.float32)

    def copy(self) -> "Canvas":
        twin = Canvas.__new__(Canvas)
        twin.texels_per_unit = self.texels_per_unit
        twin.colour, twin.gloss, twin.height = self.colour.copy(), self.gloss.copy(), self.height.copy()
        return twin

    def texels(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points) - ORIGIN) * self.texels_per_unit

    def region(self, points: np.ndarray, margin: float) -> "Region":
        return Region(self, np.asarray(points).reshape(-1, 2), margin)


class Region:
    """A window of a canvas around some points (margin in head units) to draw in."""

    def __init__(self, canvas: Canvas, points: np.ndarray, margin: float):
        self.canvas = canvas
        rows, cols = canvas.height.shape
        (x0, y0), (x1, y1) = canvas.texels(points.min(axis=0) - margin), canvas.texels(points.max(axis=0) + margin)
        x0, y0 = min(max(int(x0), 0), cols), min(max(int(y0), 0), rows)
        x1, y1 = min(max(int(np.ceil(x1)), 0), cols), min(max(int(np.ceil(y1)), 0), rows)
        self.corner = np.array([x0, y0])
        window = (slice(y0, y1), slice(x0, x1))
        self.colour, self.gloss, self.height = canvas.colour[window], canvas.gloss[window], canvas.height[window]

    def _fixed(self, points: np.ndarray) -> np.ndarray:
        return np.round((self.canvas.texels(points) - self.corner) * (1 << SHIFT)).astype(np.int32)

    def _width(self, width: float) -> int:
        return max(1, int(round(width * self.canvas.texels_per_unit)))

    def _axes(self, axes: tuple[float, float]) -> tuple[int, int]:
        return tuple(max(1, int(round(a * self.canvas.texels_per_unit * (1 << SHIFT)))) for a in axes)

    # opaque, anti-aliased
    def _curves(self, curves: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
        return [self._fixed(c) for c in (curves if isinstance(curves, list) else [curves])]

    def fill(self, outlines: np.ndarray | list[np.ndarray], colour) -> None:
        """Fill one outline (n, 2) or several."""
        cv2.fillPoly(self.colour, self._curves(outlines), _bytes(colour), cv2.LINE_AA, SHIFT)

    def stroke(self, curves: np.ndarray | list[np.ndarray], width: float, colour) -> None:
        """Draw along one curve (n, 2) or several."""
        cv2.polylines(self.colour, self._curves(curves), False, _bytes(colour), self._width(width), cv2.LINE_AA, SHIFT)

    def disc(self, centre: np.ndarray, axes: tuple[float, float], colour, angle: float = 0.0) -> None:
        cv2.ellipse(self.colour, tuple(self._fixed(centre).tolist()), self._axes(axes), angle, 0, 360, _bytes(colour), -1, cv2.LINE_AA, SHIFT)

    # soft masks in [0, 1], `soft` (head units) the blur of their edges
    def _mask(self, draw, soft: float) -> np.ndarray:
        mask = np.zeros(self.height.shape, np.uint8)
        draw(mask)
        mask = np.multiply(mask, np.float32(1 / 255), dtype=np.float32)
        sigma = soft * self.canvas.texels_per_unit
        return cv2.GaussianBlur(mask, (0, 0), sigma) if sigma > 0.3 else mask

    def polygon(self, outlines: np.ndarray | list[np.ndarray], soft: float = 0.0) -> np.ndarray:
        return self._mask(lambda m: cv2.fillPoly(m, self._curves(outlines), 255, cv2.LINE_AA, SHIFT), soft)

    def line(self, curves: np.ndarray | list[np.ndarray], width: float, soft: float = 0.0) -> np.ndarray:
        return self._mask(lambda m: cv2.polylines(m, self._curves(curves), False, 255, self._width(width), cv2.LINE_AA, SHIFT), soft)

    def ellipse(self, centre: np.ndarray, axes: tuple[float, float], angle: float = 0.0, soft: float = 0.0) -> np.ndarray:
        centre = tuple(self._fixed(centre).tolist())
        return self._mask(lambda m: cv2.ellipse(m, centre, self._axes(axes), angle, 0, 360, 255, -1, cv2.LINE_AA, SHIFT), soft)

    # translucent
    def blend(self, mask: np.ndarray, colour, opacity: float = 1.0) -> None:
        weight = np.float32(opacity) * mask
        self.colour[:] = cv2.blendLinear(self.colour, np.full_like(self.colour, _bytes(colour)), 1 - weight, weight)

    def restore(self, mask: np.ndarray, before: np.ndarray) -> None:
        """Keep what was drawn only where the mask is full; elsewhere go back to `before`."""
        self.colour[:] = cv2.blendLinear(before, self.colour, 1 - mask, mask)

    def shade(self, mask: np.ndarray, factor: float) -> None:
        """Multiply the colour by `factor` (below 1) where the mask is full."""
        self.blend(mask, (0.0, 0.0, 0.0), 1 - factor)

    def set_gloss(self, mask: np.ndarray, value: float) -> None:
        self.gloss += mask * (value - self.gloss)

    def raise_(self, mask: np.ndarray, height: float) -> None:
        self.height += height * mask


@functools.lru_cache(maxsize=64)
def _catmull_rom_basis(n_points: int, samples: int) -> np.ndarray:
    """Weights (samples * (n - 1) + 1, n) of the uniform Catmull-Rom curve through n points."""
    t = np.linspace(0, 1, samples, endpoint=False)
    segment = 0.5 * np.stack([-(t**3) + 2 * t**2 - t, 3 * t**3 - 5 * t**2 + 2, -3 * t**3 + 4 * t**2 + t, t**3 - t**2], axis=1)
    weights = np.zeros((samples * (n_points - 1) + 1, n_points + 2))
    for i in range(n_points - 1):
        weights[i * samples : (i + 1) * samples, i : i + 4] = segment
    weights[-1, n_points] = 1
    extended = np.zeros((n_points + 2, n_points))  # the end points mirrored through the first and last
    extended[1:-1] = np.eye(n_points)
    extended[0, :2] = [2, -1]
    extended[-1, -2:] = [-1, 2]
    return weights @ extended


def curve(points: np.ndarray, samples: int = 8) -> np.ndarray:
    """A smooth open curve through the points, `samples` per segment."""
    return _catmull_rom_basis(len(points), samples) @ np.asarray(points, np.float64)


@functools.lru_cache(maxsize=8)
def _noise_tile(sigma_rows: float, sigma_cols: float) -> np.ndarray:
    field = np.random.default_rng(12345).standard_normal((TILE, TILE)).astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=sigma_cols, sigmaY=sigma_rows)
    return field / field.std()


def noise_field(rng: np.random.Generator, shape: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    """Smooth noise with zero mean and unit deviation; sigma (rows, cols) in texels.

    Coarse noise is upsampled from a small random grid, fine noise is a random window of a shared tile.
    """
    rows, cols = shape
    if min(sigma) > 4:
        grid = rng.standard_normal((max(2, round(rows / sigma[0])), max(2, round(cols / sigma[1])))).astype(np.float32)
        return cv2.resize(grid, (cols, rows), interpolation=cv2.INTER_CUBIC)
    row, col = rng.integers(0, TILE - rows + 1), rng.integers(0, TILE - cols + 1)
    return _noise_tile(float(sigma[0]), float(sigma[1]))[row : row + rows, col : col + cols]


def paint_base(identity: Identity, look: Look, texels_per_unit: float) -> Canvas:
    """What does not move with the expression: skin, hair, the nose's details and the face's relief."""
    canvas = Canvas(texels_per_unit)
    rng = np.random.default_rng(look.seed)
    t = build_head(identity, Expression()).template
    _paint_skin(canvas, t, look, rng)
    _paint_relief(canvas, t, identity)
    _paint_nose(canvas, t)
    _paint_hair(canvas, look, identity, rng)
    return canvas


def _paint_skin(canvas: Canvas, t: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Skin tone with blotches and pores, rosy cheeks, shadowed eye sockets, stubble and moles."""
    rows, cols = canvas.height.shape
    blotches = noise_field(rng, (rows, cols), (0.08 * canvas.texels_per_unit,) * 2)
    pores = noise_field(rng, (rows, cols), (0.6, 0.6))
    skin = np.asarray(look.skin, np.float32) * (1 + 0.02 * blotches + 0.015 * pores)[..., None]
    canvas.colour[:] = np.clip(skin * 255 + 0.5, 0, 255)
    for side in (-1, 1):
        cheek_centre = np.array([side * 0.5, 0.42])
        cheek = canvas.region(cheek_centre, 0.45)
        glow = cheek.ellipse(cheek_centre, (0.22, 0.15), soft=0.12)
        cheek.blend(glow, np.multiply(look.skin, (1.02, 0.86, 0.84)), 0.35 + 0.4 * look.makeup)
        cheek.raise_(glow, 0.05)
        socket_centre = np.array([side * 0.4, -0.04])
        socket = canvas.region(socket_centre, 0.45)
        hollow = socket.ellipse(socket_centre, (0.27, 0.15), soft=0.07)
        socket.raise_(hollow, -0.06)
        socket.shade(hollow, 0.93)
    if look.stubble > 0:
        beard_outline = np.vstack([t[2:31], t[[57]] + [0, 0.02]])
        beard = canvas.region(beard_outline, 0.15)
        hairs = np.clip(0.6 + 0.4 * noise_field(rng, beard.height.shape, (0.6, 0.6)), 0, 1)
        beard.blend(beard.polygon(beard_outline, soft=0.06) * hairs, np.multiply(look.hair, 0.7), 0.55 * look.stubble)
    for _ in range(rng.integers(0, 4)):  # moles, where the face looks forward (the sides stretch the texture)
        spot = rng.uniform([-0.5, -0.6], [0.5, 1.1])
        canvas.region(spot, 0.03).disc(spot, (0.012, 0.012), np.multiply(look.skin, 0.5))


def _paint_relief(canvas: Canvas, t: np.ndarray, identity: Identity) -> None:
    """The brow ridge, the chin, and the eyeballs bulging a little under the lids."""
    ridge_x = np.linspace(-0.75, 0.75, 9)
    ridge_line = np.column_stack([ridge_x, -0.3 - 0.06 * np.cos(1.9 * ridge_x)])
    ridge = canvas.region(ridge_line, 0.3)
    ridge.raise_(ridge.line(ridge_line, 0.12, soft=0.08), 0.05)
    chin_centre = np.array([0.0, t[16, 1] - 0.2])
    chin = canvas.region(chin_centre, 0.4)
    chin.raise_(chin.ellipse(chin_centre, (0.22, 0.13), soft=0.08), 0.05)
    for corners in ([60, 64], [68, 72]):
        eye_centre = t[corners].mean(axis=0)
        eye = canvas.region(eye_centre, 0.3)
        eye.raise_(eye.ellipse(eye_centre, (identity.eye_width * 0.9, identity.eye_height * 0.9), soft=0.03), 0.025)


def paint_features(base: Canvas, head: Head, identity: Identity, look: Look, mask: FaceMask | None = None) -> Canvas:
    """A copy of the base with the features of this expression: eyes, brows, mouth (and a mask)."""
    canvas = base.copy()
    rng = np.random.default_rng([look.seed, 2])
    _paint_eyes(canvas, head, identity, look)
    _paint_brows(canvas, head.template, look, rng)
    _paint_mouth(canvas, head, look)
    if mask is not None:
        _paint_mask(canvas, head, mask)
    return canvas


def _paint_hair(canvas: Canvas, look: Look, identity: Identity, rng: np.random.Generator) -> None:
    """The hair on the front of the cranium: above the hairline and down the temples."""
    width = identity.head_width + 0.05
    x = np.linspace(-width, width, 25)
    front = look.hairline + 0.22 * (x / width) ** 4 + 0.05 * np.cos(3 * x + rng.uniform(0, 6))
    temples = np.array([[width, 0.1], [width + 0.3, 0.3], [width + 0.3, -2.2], [-width - 0.3, -2.2], [-width - 0.3, 0.3], [-width, 0.1]])
    region = canvas.region(np.array([[-width - 0.3, -2.2], [width + 0.3, 0.3]]), 0.05)
    cap = region.polygon(np.vstack([np.column_stack([x, front]), temples]), soft=0.02)
    coverage = 0.55 if look.hair_style == "buzz" else 1.0
    region.blend(cap, look.hair, coverage)
    strands = noise_field(rng, cap.shape, (6.0, 0.7))
    region.shade(cap * np.clip(0.5 * strands, 0, 1), 0.7)
    region.set_gloss(cap * coverage, 0.5)


def _paint_eyes(canvas: Canvas, head: Head, identity: Identity, look: Look) -> None:
    eyes = [head.template[60:68], head.template[68:76]]
    pupils = head.template[96:98]
    uppers = [curve(points[0:5]) for points in eyes]
    lowers = [curve(np.vstack([points[4:8], points[:1]])) for points in eyes]
    openings = [np.vstack([upper, lower[1:-1]]) for upper, lower in zip(uppers, lowers)]
    open_lids = [_open_upper_lid(points, identity) for points in eyes]
    region = canvas.region(np.vstack([*eyes, *open_lids]), 0.15)
    if look.makeup > 0:
        lid_areas = [np.vstack([lid + [0, -0.11], lid[::-1]]) for lid in open_lids]
        region.blend(region.polygon(lid_areas, soft=0.05), look.eye_shadow, 0.6 * look.makeup)

    # the eyeballs, drawn whole (the whites darker toward the corners) and then cut to the openings
    skin = region.colour.copy()
    region.fill(openings, (0.55, 0.53, 0.5))
    radius = 0.078
    for points, pupil in zip(eyes, pupils):
        centre = (points[0] + points[4]) / 2
        for size, white in ((1.0, (0.75, 0.72, 0.68)), (0.75, (0.9, 0.87, 0.83))):
            region.disc(centre, (size * identity.eye_width, 1.6 * size * identity.eye_height), white)
        region.disc(pupil, (radius, radius), np.multiply(look.iris, 0.55))
        region.disc(pupil, (0.8 * radius, 0.8 * radius), look.iris)
        region.disc(pupil, (0.36 * radius, 0.36 * radius), (0.03, 0.02, 0.02))
        region.disc(pupil + [-0.3 * radius, -0.35 * radius], (0.15 * radius, 0.15 * radius), (0.95, 0.95, 0.95))
    opening = region.polygon(openings)
    region.restore(opening, skin)
    region.set_gloss(opening, 0.9)
    creases = [lid + [0, -0.045] for lid in open_lids]
    region.shade(region.line(creases + [upper + [0, 0.015] for upper in uppers], 0.025, soft=0.012), 0.7)  # and the lids' shadows
    region.stroke(uppers, 0.02 + 0.012 * look.makeup, (0.05, 0.04, 0.04))  # lashes and liner
    region.stroke(lowers, 0.008, np.multiply(look.skin, 0.6))


def _open_upper_lid(points: np.ndarray, identity: Identity) -> np.ndarray:
    """The upper lid's curve as if the eye were open (where its crease sits)."""
    outer, inner = points[0], points[4]
    t = np.linspace(0, 1, 16)
    lift = lid_offsets(identity, 0.0).upper * np.sin(np.pi * t)
    return outer + t[:, None] * (inner - outer) + np.column_stack([0 * t, lift])


def _paint_brows(canvas: Canvas, t: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    brows = [t[33:42], t[42:51]]
    region = canvas.region(np.vstack(brows), 0.04)
    outlines = [np.vstack([curve(points[0:5]), curve(np.vstack([points[4], points[5:9], points[0]]))[1:-1]]) for points in brows]
    brow = region.polygon(outlines, soft=0.012)
    hairs = noise_field(rng, brow.shape, (0.6, 2.0))
    region.blend(brow * np.clip(0.85 + 0.15 * hairs, 0.5, 0.95), np.multiply(look.hair, 0.8) + 0.04)
    region.raise_(brow, 0.01)


def _paint_nose(canvas: Canvas, t: np.ndarray) -> None:
    """Nostrils, the creases around the nose wings and the shine of its tip (template points `t`)."""
    region = canvas.region(t[54:60], 0.12)
    holes = np.maximum(*(region.ellipse(t[57] + [side * 0.07, -0.035], (0.045, 0.02), angle=side * 25, soft=0.012) for side in (-1, 1)))
    wings = region.line([curve(t[57 + 2 * side] + np.array([[0, -0.12], [side * 0.03, -0.04], [-side * 0.03, 0.02]])) for side in (-1, 1)], 0.02, soft=0.015)
    region.shade(np.maximum(holes, 0.3 * wings), 0.25)
    region.set_gloss(holes, 0.0)
    region.set_gloss(region.ellipse(t[54] + [0, 0.02], (0.05, 0.04), soft=0.03), 0.6)


def _paint_mouth(canvas: Canvas, head: Head, look: Look) -> None:
    """Lips, the mouth's inside, and the folds from the nose wings to past the mouth corners."""
    t = head.template
    folds = [curve(np.array([t[57 + 2 * side] + [side * 0.06, -0.02], (t[57 + 2 * side] + t[79 + 3 * side]) / 2 + [side * 0.1, 0.0], t[79 + 3 * side] + [side * 0.08, 0.08]])) for side in (-1, 1)]
    region = canvas.region(np.vstack([t[76:96], *folds]), 0.1)
    crease = region.line(folds, 0.03, soft=0.03)
    region.raise_(crease, -0.03)
    region.shade(crease, 0.95)

    outer_upper, inner_upper = curve(t[76:83]), curve(t[88:93])
    outer_lower = curve(np.vstack([t[82:88], t[76]]))
    inner_lower = curve(np.vstack([t[92:96], t[88]]))
    lip_colour = np.asarray(look.lips) + look.makeup * (np.asarray(look.lipstick) - look.lips)
    # back to front: the mouth's inside, teeth and tongue, then the lips over them
    region.fill(np.vstack([inner_upper, inner_lower]), (0.16, 0.05, 0.05))
    if head.mouth_opening > 0.02:
        region.fill(np.vstack([inner_upper, inner_upper[::-1] + [0, 0.07]]), (0.88, 0.85, 0.78))
        region.disc(t[94] + [0, -0.02], (0.13, 0.05), (0.55, 0.22, 0.22))
    region.fill(np.vstack([outer_upper, inner_upper[::-1]]), 0.88 * lip_colour)
    region.fill(np.vstack([inner_lower, outer_lower]), lip_colour)
    region.stroke(inner_upper, 0.014, (0.2, 0.07, 0.07))
    lips = region.polygon(np.vstack([outer_upper, outer_lower]), soft=0.025)
    region.set_gloss(lips, 0.45 + 0.4 * look.makeup)
    region.raise_(lips, 0.04)


def _mask_edge(head: Head, x: np.ndarray) -> np.ndarray:
    return head.template[53, 1] + 0.25 * (x / 1.2) ** 2


def _paint_mask(canvas: Canvas, head: Head, mask: FaceMask) -> None:
    x = np.linspace(-1.2, 1.2, 25)
    upper_edge = np.column_stack([x, _mask_edge(head, x)])
    outline = np.vstack([upper_edge, [[1.2, 2.0], [-1.2, 2.0]]])
    region = canvas.region(outline, 0.02)
    region.fill(outline, mask.colour)
    cloth = region.polygon(outline, soft=0.01)
    region.set_gloss(cloth, 0.05)
    region.raise_(cloth, 0.02)
    if mask.pleats:
        for offset in (0.35, 0.55, 0.75):
            region.stroke(upper_edge + [0, offset], 0.02, np.multiply(mask.colour, 0.8))
            region.raise_(region.line(upper_edge + [0, offset], 0.02, soft=0.01), -0.015)


def mask_covers(head: Head) -> np.ndarray:
    """Which landmarks (98,) a face mask covers: those below its upper edge."""
    return head.template[:, 1] > _mask_edge(head, head.template[:, 0])


def surface_maps(canvas: Canvas) -> tuple[np.ndarray, np.ndarray]:
    """The renderer's lookup tables: the 8-bit colour, and (rows, cols, 3) float32 gloss with the
    relief's slopes (height per head unit along x and y)."""
    height = cv2.GaussianBlur(canvas.height, (0, 0), 1.0)
    slope = [cv2.Sobel(height, cv2.CV_32F, dx, 1 - dx, ksize=3) * np.float32(canvas.texels_per_unit / 8) for dx in (1, 0)]
    return canvas.colour, cv2.merge([canvas.gloss, *slope])


def hair_strands(seed: int) -> np.ndarray:
    """The hair's strand pattern: noise stretched along the head's vertical."""
    return noise_field(np.random.default_rng([seed, 1]), (256, 256), (8.0, 0.8))
