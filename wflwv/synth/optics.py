"""The camera's side of the picture: exposure, motion and defocus blur, sensor noise, 8-bit output."""

import functools
from dataclasses import dataclass

import cv2
import numpy as np

LENS_SIGMA = 0.55  # every lens is a little soft; this also smooths the renderer's hard edges
NOISE_TILE = 1024  # sensor noise is cut from a random window of a fixed Gaussian tile this large


@dataclass(frozen=True)
class Optics:
    exposure: float = 1.0  # brightness gain on the scene; low light is well below 1
    motion_length: float = 0.0  # pixels the image smears along during the exposure
    motion_angle: float = 0.0  # degrees, image x toward image y
    defocus: float = 0.0  # radius in pixels of the out-of-focus disc
    noise: float = 2.0  # sensor noise deviation (8-bit levels) at mid grey


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line kernel `length` pixels long (anti-aliased ends)."""
    half = int(np.ceil(length / 2)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    for t in np.linspace(-length / 2, length / 2, max(2, int(np.ceil(length * 3)))):
        x, y = half + t * direction
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        kernel[y0 : y0 + 2, x0 : x0 + 2] += np.array([[(1 - fx) * (1 - fy), fx * (1 - fy)], [(1 - fx) * fy, fx * fy]])
    return kernel / kernel.sum()


def disc_kernel(radius: float) -> np.ndarray:
    half = int(np.ceil(radius)) + 1
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(x, y), 0, 1).astype(np.float32)
    return kernel / kernel.sum()


@functools.lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((NOISE_TILE, NOISE_TILE, 3), dtype=np.float32)


def sensor_noise(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Unit Gaussian noise: a window of the tile at a random place, so each frame gets its own."""
    row, col = rng.integers(0, NOISE_TILE - shape[0] + 1), rng.integers(0, NOISE_TILE - shape[1] + 1)
    return _noise_tile()[row : row + shape[0], col : col + shape[1]]


def photograph(scene: np.ndarray, optics: Optics, rng: np.random.Generator) -> np.ndarray:
    """Float RGB scene radiance (rows, cols, 3) -> uint8 RGB image."""
    image = cv2.GaussianBlur(scene * np.float32(optics.exposure), (0, 0), LENS_SIGMA)
    if optics.motion_length >= 1:
        image = cv2.filter2D(image, -1, motion_kernel(optics.motion_length, optics.motion_angle), borderType=cv2.BORDER_REFLECT)
    if optics.defocus >= 0.75:
        image = cv2.filter2D(image, -1, disc_kernel(optics.defocus), borderType=cv2.BORDER_REFLECT)
    # shot noise grows with the signal, read noise does not
    deviation = (optics.noise / 255) * np.sqrt(0.3 + 1.4 * np.clip(image, 0, 1))
    image += deviation * sensor_noise(rng, image.shape)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
