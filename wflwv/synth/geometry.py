"""Head poses and closed-form ray casting of ellipsoids under a scaled orthographic camera.

Head frame: x to the image's right, y down, z away from the camera; a frontal face looks along -z.
A camera maps a head point X to the pixel `scale * (R @ X)[:2] + centre` at depth `(R @ X)[2]`
(head units, smaller is nearer).
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head-to-camera rotation for angles in degrees.

    Positive yaw turns the nose to the image's right, positive pitch raises it, positive roll turns
    the face clockwise in the image.
    """
    y, p, r = np.radians([yaw, pitch, roll])
    turn = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    nod = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    tilt = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return tilt @ nod @ turn


@dataclass(frozen=True)
class Camera:
    rotation: np.ndarray  # (3, 3) head to camera
    scale: float  # pixels per head unit
    centre: tuple[float, float]  # pixel of the head origin

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) of head points (..., 3)."""
        return self.scale * (points @ self.rotation[:2].T) + np.asarray(self.centre)

    def depth(self, points: np.ndarray) -> np.ndarray:
        return points @ self.rotation[2]

    def rays(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame ray origins (head units) of pixel coordinates: the rays run along +z."""
        return (xs - self.centre[0]) / self.scale, (ys - self.centre[1]) / self.scale

    def to_head(self, ray_x: np.ndarray, ray_y: np.ndarray, depth: np.ndarray) -> list[np.ndarray]:
        """Head-frame coordinates [x, y, z] of the points at `depth` along the rays."""
        r = self.rotation.tolist()
        return [r[0][j] * ray_x + r[1][j] * ray_y + r[2][j] * depth for j in range(3)]


FRONTAL = Camera(np.eye(3), 1.0, (0.0, 0.0))  # looks at the head frame itself: pixels are head x, y


@dataclass(frozen=True)
class Ellipsoid:
    centre: tuple[float, float, float]
    axes: tuple[float, float, float]
    tilt: float = 0.0  # rotation about the head's x axis in degrees (positive: the bottom comes forward)

    @functools.cached_property
    def orientation(self) -> np.ndarray:
        return rotation(0.0, self.tilt, 0.0) if self.tilt else np.eye(3)

    @functools.cached_property
    def to_unit_sphere(self) -> np.ndarray:
        """The linear map taking head-frame offsets from the centre to the unit sphere."""
        return np.diag(1 / np.asarray(self.axes)) @ self.orientation.T

    @functools.cached_property
    def shape_matrix(self) -> np.ndarray:
        """Columns: the head-frame semi-axes."""
        return self.orientation @ np.diag(self.axes)


def cast(shapes: Sequence[Ellipsoid], camera: Camera, ray_x: np.ndarray, ray_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depths (near, far), shape (len(shapes), *rays), where the camera's rays (x and y broadcast
    together) enter and leave each ellipsoid; inf where they miss."""
    unit = np.stack([shape.to_unit_sphere for shape in shapes])
    to_local = unit @ camera.rotation.T  # camera-frame offsets to the unit sphere
    offset = -np.einsum("pij,pj->pi", unit, np.array([shape.centre for shape in shapes]))
    # the point on the unit sphere is start + depth * along, start affine in the ray's x and y:
    # start_i = k[:, i, 0] x + k[:, i, 1] y + k[:, i, 2], and (start . along) likewise with k[:, 3]
    along = to_local[:, :, 2]
    k = np.concatenate([to_local[:, :, :2], offset[:, :, None]], axis=2)
    k = np.concatenate([k, np.einsum("pik,pi->pk", k, along)[:, None]], axis=1)
    k = k.astype(np.float32).reshape(len(shapes), 4, 3, *[1] * max(np.ndim(ray_x), np.ndim(ray_y)))

    def affine(i: int) -> np.ndarray:  # with rays given as a row and a column, only the last sum is full size
        return (k[:, i, 0] * ray_x + k[:, i, 2]) + k[:, i, 1] * ray_y

    a = np.float32((along * along).sum(axis=1)).reshape(k.shape[:1] + k.shape[3:])
    b = affine(3)
    c = np.float32(-1)
    for i in range(3):
        start = affine(i)
        c = c + start * start
    disc = b * b - a * c
    miss = disc < 0
    root = np.sqrt(np.maximum(disc, 0, out=disc), out=disc)
    near, far = (-b - root) / a, (root - b) / a
    near[miss] = far[miss] = np.inf
    return near, far


def pixel_boxes(shapes: Sequence[Ellipsoid], camera: Camera) -> np.ndarray:
    """Bounding boxes (len(shapes), 4), x0 y0 x1 y1, of the ellipsoids' images."""
    half = camera.scale * np.linalg.norm(camera.rotation[:2] @ np.stack([shape.shape_matrix for shape in shapes]), axis=2)
    centres = camera.project(np.array([shape.centre for shape in shapes]))
    return np.hstack([centres - half, centres + half])
