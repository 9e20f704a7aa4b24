"""Cluttered backgrounds: a lit wall or an outdoor gradient with furniture-like shapes, out of focus."""

import cv2
import numpy as np

from wflwv.synth.texture import noise_field

THINGS = ("box", "frame", "disc", "pole", "foliage", "stripes")


def paint_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A float32 RGB (height, width, 3) scene behind the person, out of focus.

    It is painted at half the size and enlarged: being blurred anyway, it loses nothing by that.
    """
    full_size = (width, height)
    width, height = (width + 1) // 2, (height + 1) // 2
    if rng.random() < 0.3:  # outdoors: sky above, greenery or street below
        top = rng.uniform(0.55, 0.95) * np.array([0.75, 0.85, 1.0]) * rng.uniform(0.85, 1.0, 3)
        bottom = rng.uniform(0.15, 0.5) * np.array([0.7, 0.8, 0.55]) * rng.uniform(0.7, 1.0, 3)
    else:  # a wall: a hue mixed toward grey, darker toward the floor
        hue = rng.uniform(0.2, 1.0, 3)
        top = rng.uniform(0.25, 0.85) * (0.5 * hue / hue.max() + 0.5)
        bottom = top * rng.uniform(0.5, 1.0)
    down = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    across = np.linspace(-1, 1, width, dtype=np.float32)[None, :, None]
    image = (top + down * (bottom - top)).astype(np.float32) * (1 + rng.uniform(-0.25, 0.25) * across)
    for _ in range(rng.integers(4, 12)):
        _draw_thing(image, rng, str(rng.choice(THINGS)))
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.5))  # depth of field
    image = cv2.resize(image, full_size, interpolation=cv2.INTER_LINEAR)
    return image * (1 + 0.03 * noise_field(rng, full_size[::-1], (0.7, 0.7)))[..., None]


def _draw_thing(image: np.ndarray, rng: np.random.Generator, kind: str) -> None:
    height, width = image.shape[:2]
    colour = tuple(float(c) for c in rng.uniform(0.05, 0.95, 3))
    cx, cy = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
    size = rng.uniform(0.08, 0.5) * max(width, height)
    if kind in ("box", "frame"):
        corner = (int(cx - size / 2), int(cy - size * rng.uniform(0.3, 0.8)))
        far = (int(cx + size / 2), int(cy + size * rng.uniform(0.3, 0.8)))
        cv2.rectangle(image, corner, far, colour, -1 if kind == "box" else max(2, int(size / 12)))
    elif kind == "disc":  # a lamp, a clock, a plate
        cv2.circle(image, (int(cx), int(cy)), int(size / 3), colour, -1)
    elif kind == "pole":
        cv2.line(image, (int(cx), -10), (int(cx + rng.uniform(-0.2, 0.2) * size), height + 10), colour, max(2, int(size / 10)))
    elif kind == "foliage":
        for _ in range(6):
            centre = (int(cx + rng.normal(0, size / 4)), int(cy + rng.normal(0, size / 4)))
            axes = (int(size * rng.uniform(0.05, 0.2)), int(size * rng.uniform(0.05, 0.2)))
            cv2.ellipse(image, centre, axes, rng.uniform(0, 180), 0, 360, colour, -1)
    else:  # shelves, blinds or book spines
        gap = max(3, int(size / rng.integers(4, 10)))
        for offset in range(-int(size / 2), int(size / 2), gap):
            y = int(cy + offset)
            cv2.line(image, (int(cx - size / 2), y), (int(cx + size / 2), y), colour, max(1, gap // 3))
