"""What is drawn around and over the head: clothes, glasses, and occluders (hands and objects).

Each drawing function paints into a float32 RGB frame in place; those that can hide landmarks
report which, from the same pixels as the image, so occlusion labels match what is seen.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from wflwv.synth.face import Head
from wflwv.synth.geometry import Camera
from wflwv.synth.render import DepthMap, Light

SHIFT = 4  # sub-pixel bits of OpenCV drawing
OCCLUDER_KINDS = ("hand", "phone", "cup", "microphone", "book", "ball")


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * (1 << SHIFT)).astype(np.int32)


def _window(frame: np.ndarray, points: np.ndarray, margin: float) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The frame window around some pixels, and its corner (to subtract from pixel coordinates)."""
    rows, cols = frame.shape[:2]
    x0, y0 = np.floor(points.min(axis=0) - margin).astype(int).clip(0, [cols, rows])
    x1, y1 = np.ceil(points.max(axis=0) + margin).astype(int).clip(0, [cols, rows])
    if x1 <= x0 or y1 <= y0:
        return None
    return (slice(y0, y1), slice(x0, x1)), np.array([x0, y0])


def _paint(target: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> None:
    """Blend a colour (3,) or (h, w, 3) into a frame window with the coverage (h, w) in [0, 1]."""
    target += coverage[..., None] * (colour - target)


def _lit(colour, light: Light, brightness: float = 0.7) -> np.ndarray:
    return np.asarray(colour, np.float32) * (light.ambient + brightness * light.strength) * np.asarray(light.tint, np.float32)


@dataclass(frozen=True)
class Body:
    """Shoulders and clothes under the head."""

    colour: tuple[float, float, float] = (0.25, 0.3, 0.45)
    neckline: float = 0.5  # depth of the opening around the neck, in head units
    width: float = 2.3  # half width of the shoulders, in head units


def draw_body(frame: np.ndarray, body: Body, skin: tuple[float, float, float], camera: Camera, yaw: float, light: Light) -> None:
    """Shoulders below the head: they turn half as much as the head and do not roll with it."""
    scale, (cx, cy) = camera.scale, camera.centre
    half = body.width * scale * (0.75 + 0.25 * abs(np.cos(np.radians(yaw / 2))))
    top = cy + 2.2 * scale
    centre_x = cx - 0.25 * np.sin(np.radians(yaw)) * scale
    bottom = frame.shape[0] + 2

    def outline_y(x: np.ndarray) -> np.ndarray:  # the shoulders' top edge, x from the middle
        return top + 0.8 * scale * (1 - np.sqrt(np.clip(1 - (x / half) ** 2, 0, 1)) ** 0.5)

    lit_side = np.sign(np.sin(np.radians(light.azimuth))) or 1
    for side in (-1, 1):  # the side turned to the light is the brighter
        x = np.linspace(0, half, 12)
        outline = np.vstack([np.column_stack([centre_x + side * x, outline_y(x)]), [[centre_x + side * half, bottom], [centre_x, bottom]]])
        cv2.fillPoly(frame, [_fixed(outline)], _lit(body.colour, light, 0.75 if side == lit_side else 0.5).tolist(), cv2.LINE_8, SHIFT)
    opening = 0.6 * scale
    neckline = np.array([[centre_x - opening, outline_y(opening)], [centre_x, top + body.neckline * scale], [centre_x + opening, outline_y(opening)]])
    cv2.fillPoly(frame, [_fixed(neckline)], _lit(np.multiply(skin, 0.85), light).tolist(), cv2.LINE_8, SHIFT)


@dataclass(frozen=True)
class Glasses:
    sunglasses: bool = False
    colour: tuple[float, float, float] = (0.08, 0.08, 0.1)
    width: float = 0.25  # half width of a lens, head units
    height: float = 0.17


def draw_glasses(frame: np.ndarray, glasses: Glasses, head: Head, camera: Camera, depth: DepthMap, light: Light) -> np.ndarray:
    """Frames (and dark lenses) in front of the eyes, hidden where the head is nearer.

    Returns the landmarks (98,) seen through a dark lens.
    """
    lens_z = head.landmarks[[96, 97], 2].min() - 0.14
    t = np.linspace(0, 2 * np.pi, 33)
    rim = np.sign(np.column_stack([np.cos(t), np.sin(t)])) * np.abs(np.column_stack([np.cos(t), np.sin(t)])) ** 0.6
    rings = []
    for pupil in head.landmarks[[96, 97]]:
        wrap = 0.06 * rim[:, 0] * np.sign(pupil[0])  # the outer side of the lens curves back
        rings.append(np.column_stack([pupil[0] + glasses.width * rim[:, 0], pupil[1] + 0.03 + glasses.height * rim[:, 1], lens_z + wrap]))
    inner = [head.landmarks[96, 0] + glasses.width * 0.95, head.landmarks[97, 0] - glasses.width * 0.95]
    bridge = np.array([[inner[0], -0.02, lens_z], [0.0, -0.07, lens_z - 0.05], [inner[1], -0.02, lens_z]])
    pixels = [camera.project(points) for points in (*rings, bridge)]
    located = _window(frame, np.vstack(pixels), 0.05 * camera.scale + 2)
    if located is None:
        return np.zeros(len(head.landmarks), bool)
    window, corner = located
    target = frame[window]
    lenses = np.zeros(target.shape[:2], np.uint8)
    frames = np.zeros_like(lenses)
    thickness = max(1, int(round(0.03 * camera.scale)))
    for points, where in zip((*rings, bridge), pixels):
        visible = camera.depth(points) < depth.at(where) + 0.02
        if glasses.sunglasses and visible.mean() > 0.5 and len(points) > 3:
            cv2.fillPoly(lenses, [_fixed(where - corner)], 255, cv2.LINE_AA, SHIFT)
        runs = np.split(np.arange(len(points)), np.flatnonzero(np.diff(visible.astype(int))) + 1)
        shown = [_fixed(where[run] - corner) for run in runs if visible[run[0]] and len(run) > 1]
        cv2.polylines(frames, shown, False, 255, thickness, cv2.LINE_AA, SHIFT)  # without the hidden stretches
    lens_cover = lenses.astype(np.float32) * (0.88 / 255)
    _paint(target, lens_cover, np.float32([0.04, 0.04, 0.05]))
    _paint(target, frames.astype(np.float32) / 255, _lit(glasses.colour, light))
    return _sample(lens_cover, camera.project(head.landmarks) - corner) > 0.5


def _sample(mask: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The mask's values at the nearest pixels (0 outside it)."""
    col, row = np.round(pixels).astype(int).T
    inside = (row >= 0) & (row < mask.shape[0]) & (col >= 0) & (col < mask.shape[1])
    values = np.zeros(len(pixels), mask.dtype)
    values[inside] = mask[row[inside], col[inside]]
    return values


@dataclass(frozen=True)
class Occluder:
    """A hand or an object in front of the face, in image pixels."""

    kind: str  # one of OCCLUDER_KINDS
    centre: tuple[float, float]
    size: float  # pixels: the length of a hand, the long side of an object
    angle: float  # degrees
    colour: tuple[float, float, float]


def draw_occluder(frame: np.ndarray, occluder: Occluder, light: Light, landmarks: np.ndarray) -> np.ndarray:
    """Paint the occluder, rounded by its shading; returns which landmarks (n,) it covers."""
    shapes = _occluder_shapes(occluder)
    located = _window(frame, np.vstack([points for _, points, _ in shapes]), occluder.size * 0.2)
    if located is None:
        return np.zeros(len(landmarks), bool)
    window, corner = located
    target = frame[window]
    body, details = np.zeros(target.shape[:2], np.uint8), np.zeros(target.shape[:2], np.uint8)
    for kind, points, width in shapes:
        if kind == "fill":
            cv2.fillPoly(body, [_fixed(points - corner)], 255, cv2.LINE_AA, SHIFT)
        else:
            cv2.polylines(details if kind == "detail" else body, [_fixed(points - corner)], False, 255, max(1, int(round(width))), cv2.LINE_AA, SHIFT)
    coverage = body.astype(np.float32) / 255
    # darker toward the rim and on the side away from the light
    thickness = cv2.GaussianBlur(coverage, (0, 0), max(0.8, 0.03 * occluder.size))
    rows, cols = coverage.shape
    to_light = light.direction()
    ramp = ((np.arange(cols)[None, :] - cols / 2) * to_light[0] + (np.arange(rows)[:, None] - rows / 2) * to_light[1]) / max(rows, cols)
    shade = np.clip(0.35 + 0.8 * thickness + 0.6 * ramp, 0, 1) * (1 - 0.45 * details.astype(np.float32) / 255)
    colour = np.asarray(occluder.colour, np.float32) * (light.ambient + light.strength * shade)[..., None] * np.asarray(light.tint, np.float32)
    _paint(target, coverage, colour)
    return _sample(coverage, landmarks - corner) > 0.5


def _occluder_shapes(occluder: Occluder) -> list[tuple[str, np.ndarray, float]]:
    """Polygons ("fill"), thick strokes ("line") and dark strokes ("detail") in image pixels."""
    size = occluder.size
    angle = np.radians(occluder.angle)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def place(points) -> np.ndarray:
        return np.asarray(points, np.float64) * size @ turn.T + occluder.centre

    def ellipse(cx, cy, ax, ay, n=20) -> np.ndarray:
        a = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return place(np.column_stack([cx + ax * np.cos(a), cy + ay * np.sin(a)]))

    if occluder.kind == "hand":  # local frame: fingers point to -y, palm centre at the origin, 1 = hand length
        shapes = [("fill", ellipse(0, 0.12, 0.2, 0.22), 0), ("line", place([[0.0, 0.3], [0.05, 1.4]]), 0.3 * size)]  # and the forearm
        for offset, length in zip((-0.13, -0.045, 0.045, 0.13), (0.36, 0.42, 0.4, 0.32)):
            shapes.append(("line", place([[offset, 0.0], [offset * 1.15, -length]]), 0.085 * size))
        shapes.append(("line", place([[0.18, 0.15], [0.32, -0.05], [0.36, -0.15]]), 0.09 * size))
        for offset in (-0.088, 0.0, 0.088):
            shapes.append(("detail", place([[offset, -0.05], [offset * 1.15, -0.3]]), 0.012 * size))
        return shapes
    if occluder.kind == "phone":
        return [
            ("fill", place([[-0.25, -0.5], [0.25, -0.5], [0.25, 0.5], [-0.25, 0.5]]), 0),
            ("detail", place([[-0.2, -0.44], [0.2, -0.44], [0.2, 0.4], [-0.2, 0.4], [-0.2, -0.44]]), 0.02 * size),
        ]
    if occluder.kind == "cup":
        return [
            ("fill", place([[-0.3, -0.4], [0.3, -0.4], [0.25, 0.4], [-0.25, 0.4]]), 0),
            ("line", place([[0.3, -0.25], [0.48, -0.15], [0.45, 0.1], [0.28, 0.15]]), 0.07 * size),
        ]
    if occluder.kind == "microphone":
        return [
            ("fill", ellipse(0, -0.35, 0.16, 0.16), 0),
            ("line", place([[0, -0.2], [0, 0.55]]), 0.1 * size),
            ("detail", place([[-0.12, -0.35], [0.12, -0.35]]), 0.02 * size),
        ]
    if occluder.kind == "book":
        return [
            ("fill", place([[-0.38, -0.5], [0.38, -0.5], [0.38, 0.5], [-0.38, 0.5]]), 0),
            ("detail", place([[-0.3, -0.3], [0.3, -0.3]]), 0.03 * size),
        ]
    if occluder.kind == "ball":
        return [("fill", ellipse(0, 0, 0.5, 0.5, 32), 0), ("detail", place([[-0.5, 0], [-0.2, 0.1], [0.2, 0.1], [0.5, 0]]), 0.02 * size)]
    raise ValueError(f"unknown occluder kind {occluder.kind!r}")
