"""One picture of one person: every parameter of the world, and its rendering with exact landmarks."""

import functools
from dataclasses import dataclass

import numpy as np

from wflwv.synth.face import Expression, Identity, build_head
from wflwv.synth.geometry import Camera, rotation
from wflwv.synth.optics import Optics, photograph
from wflwv.synth.props import Body, Glasses, Occluder, draw_body, draw_glasses, draw_occluder
from wflwv.synth.render import Light, head_parts, render_head
from wflwv.synth.texture import FaceMask, Look, hair_strands, mask_covers, paint_base, paint_features, surface_maps

FOREHEAD = 0.2  # a face box reaches this fraction of the landmarks' height above them, like a detector's
FACE_BOX_UNITS = 2.0  # a face box is about this many head units across


@dataclass(frozen=True)
class Pose:
    yaw: float = 0.0  # degrees, see geometry.rotation
    pitch: float = 0.0
    roll: float = 0.0
    scale: float = 50.0  # pixels per head unit
    centre: tuple[float, float] = (128.0, 110.0)  # pixel of the head origin, midway between the eyes

    def camera(self) -> Camera:
        return Camera(rotation(self.yaw, self.pitch, self.roll), self.scale, self.centre)


@dataclass(frozen=True)
class Scene:
    identity: Identity = Identity()
    look: Look = Look()
    expression: Expression = Expression()
    pose: Pose = Pose()
    light: Light = Light()
    body: Body = Body()
    mask: FaceMask | None = None
    glasses: Glasses | None = None
    occluders: tuple[Occluder, ...] = ()
    optics: Optics = Optics()


@dataclass(frozen=True)
class Shot:
    image: np.ndarray  # uint8 RGB (rows, cols, 3)
    landmarks: np.ndarray  # (98, 2) pixels, the exact projections (hidden ones included)
    covered: np.ndarray  # (98,) bool: behind a hand, an object, a face mask or a dark lens


def landmarks(scene: Scene) -> np.ndarray:
    """The (98, 2) pixel landmarks of a scene, without rendering it."""
    return scene.pose.camera().project(build_head(scene.identity, scene.expression).landmarks)


def landmarks68(scene: Scene) -> np.ndarray:
    """The (68, 2) pixel landmarks of iBUG's scheme of a scene (wflwv.synth.face.ibug68_points)."""
    return scene.pose.camera().project(build_head(scene.identity, scene.expression).landmarks68)


def face_box(points: np.ndarray) -> np.ndarray:
    """x_min y_min x_max y_max of the landmarks (..., 98, 2), raised by FOREHEAD of their height."""
    low, high = points.min(axis=-2), points.max(axis=-2)
    top = low[..., 1] - FOREHEAD * (high[..., 1] - low[..., 1])
    return np.stack([low[..., 0], top, high[..., 0], high[..., 1]], axis=-1)


def texels_per_unit(face: float) -> int:
    """Texture resolution for faces up to `face` pixels across: about a texel per pixel."""
    return int(16 * max(1, round(face / FACE_BOX_UNITS / 16)))


@functools.lru_cache(maxsize=2)
def _base(identity: Identity, look: Look, resolution: int):
    return paint_base(identity, look, resolution)


@functools.lru_cache(maxsize=2)
def _strands(seed: int) -> np.ndarray:
    return hair_strands(seed)


def render(scene: Scene, background: np.ndarray, rng: np.random.Generator, resolution: int | None = None) -> Shot:
    """Picture the scene over a float32 RGB background of the frame's size; `rng` draws the sensor noise.

    `resolution` is the face texture's texels per head unit (by default, enough for this face).
    """
    frame = background.copy()
    head = build_head(scene.identity, scene.expression)
    camera = scene.pose.camera()
    light = scene.light
    resolution = resolution or texels_per_unit(camera.scale * FACE_BOX_UNITS)
    canvas = paint_features(_base(scene.identity, scene.look, resolution), head, scene.identity, scene.look, scene.mask)
    parts = head_parts(head, scene.look)
    depth = render_head(frame, parts, surface_maps(canvas), resolution, _strands(scene.look.seed), scene.look, camera, light)
    draw_body(frame, scene.body, scene.look.skin, camera, scene.pose.yaw, light)
    points = camera.project(head.landmarks)
    covered = mask_covers(head) if scene.mask is not None else np.zeros(len(points), bool)
    if scene.glasses is not None:
        covered |= draw_glasses(frame, scene.glasses, head, camera, depth, light)
    for occluder in scene.occluders:
        covered |= draw_occluder(frame, occluder, light, points)
    return Shot(photograph(frame, scene.optics, rng), points, covered)
