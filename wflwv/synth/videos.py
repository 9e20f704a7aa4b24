"""Videos: smooth random trajectories through the world's parameters, and how ambiguous each frame is.

Everyone moves at the pace of real faces (docs/synth.md): blinks, speech at the rate of syllables,
quick turns and nods. An easy video is a person in good light who never turns far from frontal. A hard
one combines two or three challenges that make a still-image model unsure of itself: a hand or an
object passing over the mouth and chin, a face mask, a turn to a large yaw, fast shaking with motion
blur, or low light with strong sensor noise.
"""

from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from wflwv.landmarks import PARTS
from wflwv.synth.backdrop import paint_background
from wflwv.synth.face import Expression
from wflwv.synth.optics import Optics
from wflwv.synth.sampling import (
    place_face,
    sample_body,
    sample_glasses,
    sample_identity,
    sample_light,
    sample_look,
    sample_mask,
    sample_occluder,
)
from wflwv.synth.scene import Scene, face_box, landmarks, landmarks68, render

CHALLENGES = ("occluder", "mask", "turn", "shake", "dark")
# a frame is ambiguous for a cause when it passes that cause's threshold
AMBIGUOUS_COVER = 0.3  # fraction of the mouth's or the chin's landmarks behind something
AMBIGUOUS_YAW = 45.0  # degrees
EASY_YAW = 38.0  # degrees: an easy video's head turns approach this and stay below AMBIGUOUS_YAW
AMBIGUOUS_BLUR = 0.06  # motion length, or twice the defocus radius, over the face box side
AMBIGUOUS_EXPOSURE = 0.4
CAUSES = ("occlusion", "yaw", "blur", "low_light")
MOUTH = np.arange(PARTS["outer_lip"][0], PARTS["inner_lip"][1])
CHIN = np.arange(12, 21)
BOX_SMOOTHING = 2.0  # frames: the released boxes are stabilised; these follow the head as smoothly


def smooth_curve(rng: np.random.Generator, n: int, timescale: float) -> np.ndarray:
    """A random curve of n samples with unit deviation that changes over about `timescale` samples."""
    pad = int(4 * timescale) + 1
    curve = gaussian_filter1d(rng.standard_normal(n + 2 * pad), timescale)[pad:-pad]
    return (curve - curve.mean()) / (curve.std() + 1e-9)


def events(rng: np.random.Generator, n: int, fps: float, per_second: float, gap: float = 0.0) -> list[float]:
    """Frames at which events happen at random at `per_second` on average, at least `gap` seconds apart.

    The process starts a few events before the video, so that the video catches it in its steady state."""
    times, t = [], -rng.uniform(4, 5) / per_second * fps
    while t < n:
        times.append(t)
        t += (gap + rng.exponential(max(1 / per_second - gap, 0.05))) * fps
    return times


def blinks(rng: np.random.Generator, n: int, fps: float, per_minute: float) -> np.ndarray:
    """Eyelid closure over time: blinks at `per_minute` on average, each closing in 60-110 ms, staying
    shut up to 50 ms and reopening more slowly, in 120-250 ms (docs/synth.md)."""
    closure, t = np.zeros(n), np.arange(n)
    for start in events(rng, n, fps, per_minute / 60, gap=0.4):
        closing, shut, opening = rng.uniform([0.06, 0.0, 0.12], [0.11, 0.05, 0.25]) * fps
        depth = rng.uniform(0.7, 1.0)
        down = np.clip((t - start) / closing, 0, 1)
        up = np.clip(1 - (t - start - closing - shut) / opening, 0, 1)
        closure = np.maximum(closure, depth * np.minimum(down, up))
    return closure


def speech(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """Mouth opening of a person talking: phrases of 1-3 s with pauses between them, each a run of
    syllables at the person's rate of 3.5-5.5 a second (docs/synth.md), the jaw opening and closing once a syllable."""
    opening, t = np.zeros(n), np.arange(n)
    rate, loudness = rng.uniform(3.5, 5.5), rng.uniform(0.25, 0.45)
    start = rng.uniform(-1.0, 0.3) * fps
    while start < n:
        phrase_end = start + rng.uniform(1.0, 3.0) * fps
        while start < phrase_end:
            length = fps / rate * rng.uniform(0.8, 1.25)
            phase = np.clip((t - start) / length, 0, 1)
            opening += loudness * rng.uniform(0.3, 1.0) * np.sin(np.pi * phase) ** 2
            start += length
        start += rng.uniform(0.2, 0.8) * fps
    return opening


def minimum_jerk(rng: np.random.Generator, n: int, fps: float, per_second: float, reach: float) -> np.ndarray:
    """Quick turns: at `per_second` on average the angle moves to a new one within +-`reach` degrees in
    0.25-0.5 s, along the minimum-jerk profile of quick voluntary head movements."""
    angle, t, current = np.zeros(n), np.arange(n), 0.0
    for start in events(rng, n, fps, per_second, gap=0.6):
        target, length = rng.uniform(-reach, reach), rng.uniform(0.25, 0.5) * fps
        phase = np.clip((t - start) / length, 0, 1)
        angle += (target - current) * (10 * phase**3 - 15 * phase**4 + 6 * phase**5)
        current = target
    return angle


def nods(rng: np.random.Generator, n: int, fps: float, per_second: float, depth: tuple[float, float]) -> np.ndarray:
    """Nods: at `per_second` on average, one to three cycles of the head going down and up at 2-4 Hz,
    `depth` degrees deep."""
    pitch, t = np.zeros(n), np.arange(n)
    for start in events(rng, n, fps, per_second, gap=1.0):
        frequency, cycles, amplitude = rng.uniform(2.0, 4.0), rng.integers(1, 4), rng.uniform(*depth)
        phase = np.clip((t - start) * frequency / fps, 0, cycles)
        pitch -= amplitude * (1 - np.cos(2 * np.pi * phase)) / 2
    return pitch


@dataclass(frozen=True)
class Clip:
    """A planned video: one scene per frame, over a background that the camera shake moves."""

    scenes: list[Scene]
    background: np.ndarray  # float32 RGB, `margin` pixels larger than the frames on each side
    shake: np.ndarray  # (frames, 2) camera offsets in pixels
    margin: int
    challenges: tuple[str, ...]


def plan_clip(rng: np.random.Generator, hard: bool, n: int, size: tuple[int, int], face_range: tuple[float, float], fps: float = 30.0) -> Clip:
    """The scenes of an n-frame video of `size` (width, height) whose face box side stays in `face_range`."""
    width, height = size
    identity, look = sample_identity(rng), sample_look(rng)
    challenges = tuple(sorted(rng.choice(CHALLENGES, size=rng.integers(2, 4), replace=False))) if hard else ()

    # pose: slow wandering with quick turns and nods, a sweep to large yaw for "turn", a fast shake for "shake"
    spread = 2.0 if hard else 1.0
    yaw = rng.uniform(-10, 10) * spread + rng.uniform(3, 10) * spread * smooth_curve(rng, n, 25)
    yaw += minimum_jerk(rng, n, fps, rng.uniform(0.15, 0.4), 20 * spread)
    pitch = rng.uniform(-5, 5) * spread + rng.uniform(2, 5) * spread * smooth_curve(rng, n, 30)
    pitch += nods(rng, n, fps, rng.uniform(0.1, 0.3), (3, 8))
    roll = rng.uniform(-4, 4) * spread + rng.uniform(1, 4) * spread * smooth_curve(rng, n, 30)
    if "turn" in challenges:
        sweep = np.sin(2 * np.pi * rng.uniform(0.4, 1.0) * np.arange(n) / n + rng.uniform(0, 2 * np.pi))
        yaw = 0.3 * yaw + rng.choice([-1, 1]) * rng.uniform(55, 75) * sweep
    shake = rng.uniform(0.3, 1.0) * smooth_curve(rng, n, 3)[:, None] * [1, 0.6] if rng.random() < 0.3 else np.zeros((n, 2))
    shutter = rng.uniform(0.3, 0.5)
    if "shake" in challenges:  # a shaking head filmed by a shaking hand with a long shutter
        yaw += rng.uniform(10, 16) * smooth_curve(rng, n, 3)
        roll += rng.uniform(3, 6) * smooth_curve(rng, n, 3)
        shake = rng.uniform(3, 6) * np.column_stack([smooth_curve(rng, n, 2.5), smooth_curve(rng, n, 2.5)])
        shutter = rng.uniform(0.9, 1.0)
    if not hard:
        yaw = EASY_YAW * np.tanh(yaw / EASY_YAW)
    face = rng.uniform(*face_range) * (1 + 0.05 * smooth_curve(rng, n, 40))
    face = np.clip(face, *face_range)
    drift = (8 if hard else 4) * np.column_stack([smooth_curve(rng, n, 35), smooth_curve(rng, n, 35)])
    centre = np.array([width, height]) * [0.5, 0.45] + rng.uniform(-0.08, 0.08, 2) * [width, height] + drift

    # expression: talking, smiling, blinking, glancing
    talking = rng.random() < 0.7
    mouth = np.clip(rng.uniform(0, 0.1) + (speech(rng, n, fps) if talking else np.zeros(n)), 0, 1)
    smile = np.clip(rng.uniform(0, 0.4) + 0.15 * smooth_curve(rng, n, 30), 0, 1)
    if hard and rng.random() < 0.4:  # laughing
        mouth, smile = np.clip(mouth + rng.uniform(0.2, 0.5) * (1 + smooth_curve(rng, n, 10)) / 2, 0, 1), np.clip(smile + 0.4, 0, 1)
    blink = blinks(rng, n, fps, (26 if talking else 17) * np.exp(rng.normal(0, 0.25)))
    brows = np.clip(0.25 * smooth_curve(rng, n, 20), -1, 1)
    gaze = 0.5 * np.column_stack([smooth_curve(rng, n, 15), smooth_curve(rng, n, 15)])

    light = sample_light(rng, harsh=hard and rng.random() < 0.3)
    azimuth = light.azimuth + 8 * smooth_curve(rng, n, 50)
    exposure, noise = rng.uniform(0.9, 1.1), rng.uniform(1.5, 3.0)
    if "dark" in challenges:  # lit by a screen in a dark room, with the camera's gain turned up
        light = replace(light, tint=(0.8, 0.9, 1.1), ambient=0.25)
        exposure, noise = rng.uniform(0.22, 0.38), rng.uniform(10, 18)
    defocus = np.full(n, rng.uniform(0, 0.5))
    if "shake" in challenges:  # the autofocus hunts
        defocus += 0.035 * face * np.clip(smooth_curve(rng, n, 8), 0, None)

    mask = sample_mask(rng) if "mask" in challenges else None
    glasses = sample_glasses(rng, sunglasses=hard and rng.random() < 0.3) if rng.random() < 0.2 else None
    body = sample_body(rng)

    scenes = []
    for t in range(n):
        expression = Expression(float(mouth[t]), float(smile[t]), (float(blink[t]),) * 2, float(brows[t]), (float(gaze[t, 0]), float(gaze[t, 1])))
        pose = place_face(identity, float(yaw[t]), float(pitch[t]), float(roll[t]), float(face[t]), centre[t] + shake[t])
        optics = Optics(float(exposure), 0.0, 0.0, float(defocus[t]), float(noise))
        scenes.append(Scene(identity, look, expression, pose, replace(light, azimuth=float(azimuth[t])), body, mask, glasses, (), optics))
    if "occluder" in challenges:
        scenes = _pass_occluders(rng, scenes, face)
    scenes = _motion_blur(scenes, shutter)
    margin = int(np.ceil(np.abs(shake).max())) + 2
    background = paint_background(rng, width + 2 * margin, height + 2 * margin)
    return Clip(scenes, background, shake, margin, challenges)


def _pass_occluders(rng: np.random.Generator, scenes: list[Scene], face: np.ndarray) -> list[Scene]:
    """One or two hands or objects that come in from the side, cover the mouth or the chin a while, and leave."""
    n = len(scenes)
    tracks = [[] for _ in range(n)]
    passes = rng.integers(1, 3)
    for index in range(passes):
        start = int(rng.uniform(0, 0.6) * n / passes + index * n / passes)
        hold = int(rng.uniform(20, 50))
        move = int(rng.uniform(8, 15))
        target = str(rng.choice(["mouth", "chin"], p=[0.6, 0.4]))
        first = min(start + move, n - 1)
        points = landmarks(scenes[first])
        occluder = sample_occluder(rng, points, float(face[first]), scenes[first].look.skin, target=target)
        side = rng.choice([-1, 1])
        away = np.array(occluder.centre) + [side * 1.6 * face[first], 0.6 * face[first]]
        for t in range(max(0, start), min(n, start + 2 * move + hold)):
            # ease in, hold, ease out, following the face as it moves
            phase = min((t - start) / move, 1.0, (start + 2 * move + hold - t) / move)
            weight = 0.5 - 0.5 * np.cos(np.pi * np.clip(phase, 0, 1))
            follow = np.subtract(scenes[t].pose.centre, scenes[first].pose.centre)
            position = away + weight * (np.array(occluder.centre) - away) + follow
            tracks[t].append(replace(occluder, centre=(float(position[0]), float(position[1])), angle=occluder.angle + 10 * (1 - weight) * side))
    return [replace(scene, occluders=tuple(track)) for scene, track in zip(scenes, tracks)]


def _motion_blur(scenes: list[Scene], shutter: float) -> list[Scene]:
    """Blur each frame along the face's motion (the mean landmark velocity) for a fraction `shutter` of a frame."""
    points = np.stack([landmarks(scene) for scene in scenes])
    velocity = np.gradient(points.mean(axis=1), axis=0)
    length = shutter * np.linalg.norm(velocity, axis=1)
    angle = np.degrees(np.arctan2(velocity[:, 1], velocity[:, 0]))
    return [
        replace(scene, optics=replace(scene.optics, motion_length=float(smear), motion_angle=float(towards)))
        for scene, smear, towards in zip(scenes, length, angle)
    ]


@dataclass(frozen=True)
class Footage:
    frames: list[np.ndarray]  # uint8 RGB
    landmarks: np.ndarray  # (frames, 98, 2)
    boxes: np.ndarray  # (frames, 4) x1 y1 x2 y2, smooth in time
    ambiguous: dict[str, np.ndarray]  # cause -> (frames,) bool
    landmarks68: np.ndarray  # (frames, 68, 2) iBUG's points of the same faces (wflwv.synth.face.ibug68_points)


def shoot(clip: Clip, rng: np.random.Generator, resolution: int | None = None) -> Footage:
    """Render the clip; `rng` draws the sensor noise, fresh in every frame (`resolution`: see scene.render)."""
    frames, points, covered = [], [], []
    height, width = clip.background.shape[0] - 2 * clip.margin, clip.background.shape[1] - 2 * clip.margin
    still = clip.background[clip.margin : clip.margin + height, clip.margin : clip.margin + width]
    for scene, offset in zip(clip.scenes, clip.shake):
        move = np.float32([[1, 0, -clip.margin - offset[0]], [0, 1, -clip.margin - offset[1]]])
        background = cv2.warpAffine(clip.background, move, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) if offset.any() else still
        shot = render(scene, background, rng, resolution)
        frames.append(shot.image)
        points.append(shot.landmarks)
        covered.append(shot.covered)
    points, covered = np.stack(points), np.stack(covered)
    boxes = gaussian_filter1d(face_box(points), BOX_SMOOTHING, axis=0, mode="nearest")
    points68 = np.stack([landmarks68(scene) for scene in clip.scenes])
    return Footage(frames, points, boxes, ambiguity(clip.scenes, points, covered), points68)


def ambiguity(scenes: list[Scene], points: np.ndarray, covered: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame and cause, whether the frame is ambiguous: mouth or chin covered, large yaw, heavy
    blur, low light; "any" is their union."""
    box = face_box(points)
    face = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    blur = np.array([max(s.optics.motion_length, 2 * s.optics.defocus) for s in scenes])
    causes = {
        "occlusion": (covered[:, MOUTH].mean(axis=1) >= AMBIGUOUS_COVER) | (covered[:, CHIN].mean(axis=1) >= AMBIGUOUS_COVER),
        "yaw": np.abs([s.pose.yaw for s in scenes]) >= AMBIGUOUS_YAW,
        "blur": blur >= AMBIGUOUS_BLUR * face,
        "low_light": np.array([s.optics.exposure for s in scenes]) <= AMBIGUOUS_EXPOSURE,
    }
    causes["any"] = np.logical_or.reduce(list(causes.values()))
    return causes
