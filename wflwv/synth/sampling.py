"""Random people, expressions, poses, lights, props and cameras; WFLW's attribute flags for stills.

The six flags (pose, expression, illumination, make-up, occlusion, blur) are set from the
generator's own parameters with the thresholds below.
"""

import numpy as np

from wflwv.synth.face import Expression, Identity
from wflwv.synth.optics import Optics
from wflwv.synth.props import OCCLUDER_KINDS, Body, Glasses, Occluder
from wflwv.synth.render import Light
from wflwv.synth.scene import Pose, Scene, Shot, face_box, landmarks
from wflwv.synth.texture import FaceMask, Look

# attribute thresholds
LARGE_YAW, LARGE_PITCH, LARGE_ROLL = 35.0, 22.0, 30.0  # degrees
STRONG_MOUTH, STRONG_SMILE, STRONG_BROWS = 0.45, 0.75, 0.7
HARSH_AMBIENT, SIDE_LIGHT = 0.2, 55.0  # a light this far to the side with this little ambient
LOW_EXPOSURE, HIGH_EXPOSURE = 0.45, 1.35
HEAVY_MAKEUP = 0.5
OCCLUDED_FRACTION = 0.1  # of the 98 landmarks
BLURRED = 0.045  # motion length, or twice the defocus radius, over the face box side
EXTREME_ANGLES = ((LARGE_YAW + 3, 75.0), (LARGE_PITCH + 3, 38.0), (LARGE_ROLL + 3, 50.0))  # of stills with a large pose

SKIN_TONES = np.array([[0.96, 0.8, 0.69], [0.9, 0.72, 0.6], [0.8, 0.6, 0.47], [0.66, 0.46, 0.33], [0.5, 0.34, 0.24], [0.33, 0.22, 0.15]])
HAIR_COLOURS = np.array([[0.05, 0.04, 0.035], [0.16, 0.1, 0.06], [0.3, 0.2, 0.12], [0.62, 0.48, 0.28], [0.5, 0.2, 0.08], [0.6, 0.6, 0.6]])
HAIR_WEIGHTS = np.array([0.35, 0.25, 0.15, 0.1, 0.05, 0.1])
IRIS_COLOURS = np.array([[0.2, 0.12, 0.06], [0.38, 0.24, 0.12], [0.4, 0.36, 0.18], [0.25, 0.4, 0.25], [0.3, 0.45, 0.65], [0.45, 0.48, 0.5]])
IRIS_WEIGHTS = np.array([0.4, 0.25, 0.1, 0.07, 0.12, 0.06])
LIPSTICKS = np.array([[0.7, 0.08, 0.15], [0.85, 0.35, 0.45], [0.45, 0.08, 0.2], [0.6, 0.35, 0.3], [0.9, 0.2, 0.1]])
EYE_SHADOWS = np.array([[0.4, 0.28, 0.2], [0.45, 0.3, 0.5], [0.3, 0.4, 0.6], [0.3, 0.3, 0.32], [0.6, 0.45, 0.3]])


def _around(rng: np.random.Generator, mean: float, deviation: float) -> float:
    return float(mean + deviation * np.clip(rng.standard_normal(), -2.5, 2.5))


def sample_identity(rng: np.random.Generator) -> Identity:
    nose_length = _around(rng, 0.5, 0.04)
    return Identity(
        head_width=_around(rng, 0.95, 0.04),
        jaw_width=_around(rng, 0.72, 0.05),
        chin=_around(rng, 1.45, 0.06),
        chin_forward=_around(rng, 0.0, 0.03),
        eye_spacing=_around(rng, 0.42, 0.02),
        eye_width=_around(rng, 0.19, 0.012),
        eye_height=_around(rng, 0.075, 0.01),
        eye_tilt=_around(rng, 0.02, 0.015),
        brow_height=_around(rng, 0.3, 0.025),
        brow_arch=_around(rng, 0.06, 0.015),
        brow_thickness=_around(rng, 0.07, 0.012),
        nose_length=nose_length,
        nose_width=_around(rng, 0.17, 0.018),
        nose_depth=_around(rng, 0.28, 0.03),
        mouth_y=nose_length + _around(rng, 0.42, 0.03),
        mouth_width=_around(rng, 0.33, 0.025),
        upper_lip=_around(rng, 0.065, 0.01),
        lower_lip=_around(rng, 0.085, 0.012),
    )


def _pick(rng: np.random.Generator, colours: np.ndarray, weights: np.ndarray | None = None, jitter: float = 0.03) -> tuple[float, float, float]:
    colour = colours[rng.choice(len(colours), p=None if weights is None else weights / weights.sum())]
    return tuple(float(c) for c in np.clip(colour + rng.uniform(-jitter, jitter, 3), 0, 1))


def sample_look(rng: np.random.Generator) -> Look:
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    low = int(tone)
    skin = SKIN_TONES[low] + (tone - low) * (SKIN_TONES[min(low + 1, len(SKIN_TONES) - 1)] - SKIN_TONES[low])
    skin = np.clip(skin * rng.uniform(0.95, 1.05) + rng.uniform(-0.02, 0.02, 3), 0, 1)
    made_up = rng.random() < 0.2
    return Look(
        skin=tuple(float(c) for c in skin),
        lips=tuple(float(c) for c in np.clip(skin * np.array([0.85, 0.55, 0.55]) * rng.uniform(0.85, 1.05), 0, 1)),
        iris=_pick(rng, IRIS_COLOURS, IRIS_WEIGHTS),
        hair=_pick(rng, HAIR_COLOURS, HAIR_WEIGHTS),
        hair_style=str(rng.choice(["short", "long", "buzz"], p=[0.5, 0.35, 0.15])),
        hairline=_around(rng, -0.95, 0.08) - (rng.random() < 0.15) * rng.uniform(0.1, 0.35),
        stubble=float(rng.uniform(0.2, 1.0)) if rng.random() < 0.25 else 0.0,
        makeup=float(rng.uniform(0.3, 1.0)) if made_up else 0.0,
        lipstick=_pick(rng, LIPSTICKS),
        eye_shadow=_pick(rng, EYE_SHADOWS),
        seed=int(rng.integers(2**31)),
    )


def sample_expression(rng: np.random.Generator, strong: bool) -> Expression:
    """A calm face, or with `strong` an exaggerated one (wide-open mouth, broad smile or raised brows)."""
    mouth, smile, brows = rng.uniform(0, 0.2), rng.uniform(0, 0.4), rng.normal(0, 0.25)
    if strong:
        which = rng.integers(3)
        mouth = rng.uniform(0.5, 1.0) if which == 0 else mouth
        smile = rng.uniform(0.8, 1.0) if which == 1 else smile
        brows = rng.uniform(0.75, 1.0) if which == 2 else brows
    blink = (0.0, 0.0)
    if rng.random() < 0.08:
        closed = rng.uniform(0.6, 1.0)
        blink = (closed, closed) if rng.random() < 0.7 else (closed, 0.0)
    return Expression(
        mouth_open=float(mouth),
        smile=float(smile),
        blink=(float(blink[0]), float(blink[1])),
        brow_raise=float(np.clip(brows, -1, 1)),
        gaze=(float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.6, 0.6))),
    )


def sample_light(rng: np.random.Generator, harsh: bool) -> Light:
    tint = tuple(float(c) for c in np.array([1.0, 0.97, 0.92]) + rng.uniform(-0.06, 0.06, 3))
    if harsh:
        side = rng.choice([-1, 1]) * rng.uniform(SIDE_LIGHT + 5, 100)
        return Light(float(side), float(rng.uniform(0, 45)), float(rng.uniform(0.8, 1.05)), float(rng.uniform(0.06, HARSH_AMBIENT - 0.02)), tint)
    return Light(float(rng.uniform(-50, 50)), float(rng.uniform(10, 50)), float(rng.uniform(0.55, 0.8)), float(rng.uniform(0.3, 0.45)), tint)


def sample_body(rng: np.random.Generator) -> Body:
    colour = rng.uniform(0.05, 0.85, 3) * rng.uniform(0.5, 1.0)
    return Body(tuple(float(c) for c in colour), float(rng.uniform(0.2, 0.8)), float(rng.uniform(2.0, 2.5)))


def sample_glasses(rng: np.random.Generator, sunglasses: bool) -> Glasses:
    colour = tuple(float(c) for c in rng.uniform(0.02, 0.5) * rng.uniform(0.5, 1.0, 3))
    return Glasses(sunglasses, colour, float(rng.uniform(0.21, 0.28)), float(rng.uniform(0.13, 0.2)))


def sample_mask(rng: np.random.Generator) -> FaceMask:
    surgical = rng.random() < 0.6
    colour = (0.62, 0.78, 0.9) if surgical else tuple(float(c) for c in rng.uniform(0.05, 0.9, 3))
    return FaceMask(tuple(float(c) for c in np.clip(np.add(colour, rng.uniform(-0.04, 0.04, 3)), 0, 1)), surgical)


TARGETS = {"mouth": [79, 85, 90, 94], "chin": [14, 16, 18], "eye": [60, 64, 96], "cheek": [4, 6, 55], "nose": [54, 57]}


def sample_occluder(rng: np.random.Generator, points: np.ndarray, face: float, skin: tuple[float, float, float], kind: str | None = None, target: str | None = None) -> Occluder:
    """A hand or an object over part of a face whose landmarks are `points` and box side `face`."""
    kind = kind or str(rng.choice(OCCLUDER_KINDS, p=[0.45, 0.15, 0.1, 0.1, 0.1, 0.1]))
    target = target or str(rng.choice(list(TARGETS), p=[0.35, 0.2, 0.15, 0.2, 0.1]))
    anchor = points[TARGETS[target]].mean(axis=0)
    if target in ("eye", "cheek") and rng.random() < 0.5:  # the other side of the face
        anchor = 2 * points[[54, 57]].mean(axis=0) - anchor
    length = {"hand": 1.05, "phone": 0.75, "cup": 0.6, "microphone": 0.6, "book": 1.2, "ball": 0.6}[kind] * face * rng.uniform(0.8, 1.2)
    centre = anchor + rng.normal(0, 0.1 * face, 2)
    if kind == "hand":  # the palm sits on the target, the fingers spread above it
        colour = tuple(float(c) for c in np.clip(np.asarray(skin) * rng.uniform(0.9, 1.1), 0, 1))
        angle = rng.uniform(-70, 70)
        centre = centre + 0.15 * length * np.array([-np.sin(np.radians(angle)), np.cos(np.radians(angle))])
    else:
        colour = tuple(float(c) for c in rng.uniform(0.05, 0.9, 3))
        angle = rng.uniform(-40, 40)
    return Occluder(kind, (float(centre[0]), float(centre[1])), float(length), float(angle), colour)


def place_face(identity: Identity, yaw: float, pitch: float, roll: float, face: float, box_centre: np.ndarray) -> Pose:
    """The pose whose face box, with a neutral expression, has side `face` and centre `box_centre`."""
    unit = Pose(yaw, pitch, roll, 1.0, (0.0, 0.0))
    box = face_box(landmarks(Scene(identity=identity, pose=unit)))
    scale = face / max(box[2] - box[0], box[3] - box[1])
    centre = np.asarray(box_centre) - scale * np.array([box[0] + box[2], box[1] + box[3]]) / 2
    return Pose(yaw, pitch, roll, float(scale), (float(centre[0]), float(centre[1])))


def sample_still(rng: np.random.Generator, side: int, face_range: tuple[float, float], identity: Identity, look: Look) -> Scene:
    """One photo of a person in a side x side image, with each WFLW challenge drawn independently."""
    expression = sample_expression(rng, strong=rng.random() < 0.25)
    angles = np.clip(rng.normal(0, [15, 8, 8]), [-33, -20, -25], [33, 20, 25])  # yaw, pitch, roll
    if rng.random() < 0.25:  # one of them beyond its threshold
        which = rng.choice(3, p=[0.6, 0.2, 0.2])
        angles[which] = rng.choice([-1, 1]) * rng.uniform(*EXTREME_ANGLES[which])
    face = rng.uniform(*face_range)
    box_centre = rng.uniform(0.5 * face + 2, side - 0.5 * face - 2, 2)
    pose = place_face(identity, *(float(angle) for angle in angles), face, box_centre)

    light, exposure, noise = sample_light(rng, harsh=False), float(rng.uniform(0.85, 1.15)), float(rng.uniform(1.0, 4.0))
    challenge = rng.choice(["none", "side", "dark", "bright"], p=[0.7, 0.15, 0.1, 0.05])
    if challenge == "side":
        light = sample_light(rng, harsh=True)
    elif challenge == "dark":
        exposure, noise = float(rng.uniform(0.22, LOW_EXPOSURE - 0.05)), float(rng.uniform(6, 14))
    elif challenge == "bright":
        exposure = float(rng.uniform(HIGH_EXPOSURE + 0.05, 1.7))
    motion, defocus = rng.uniform(0, 1.2), rng.uniform(0, 0.5)
    if rng.random() < 0.3:
        if rng.random() < 0.5:
            motion = rng.uniform(BLURRED + 0.01, 0.15) * face
        else:
            defocus = rng.uniform(BLURRED / 2 + 0.005, 0.05) * face
    optics = Optics(exposure, float(motion), float(rng.uniform(0, 180)), float(defocus), noise)

    points = landmarks(Scene(identity=identity, expression=expression, pose=pose))
    occluders, mask, glasses = [], None, None
    cover = rng.random()
    if cover < 0.2:
        occluders.append(sample_occluder(rng, points, face, look.skin))
    elif cover < 0.27:
        mask = sample_mask(rng)
    if rng.random() < 0.2:
        glasses = sample_glasses(rng, sunglasses=rng.random() < 0.3)
    return Scene(identity, look, expression, pose, light, sample_body(rng), mask, glasses, tuple(occluders), optics)


def attributes(scene: Scene, shot: Shot) -> np.ndarray:
    """WFLW's six flags (pose, expression, illumination, make-up, occlusion, blur) as 0/1 ints."""
    pose, expression, light, optics = scene.pose, scene.expression, scene.light, scene.optics
    box = face_box(shot.landmarks)
    face = max(box[2] - box[0], box[3] - box[1])
    return np.array([
        abs(pose.yaw) >= LARGE_YAW or abs(pose.pitch) >= LARGE_PITCH or abs(pose.roll) >= LARGE_ROLL,
        expression.mouth_open >= STRONG_MOUTH or expression.smile >= STRONG_SMILE or abs(expression.brow_raise) >= STRONG_BROWS,
        (light.ambient <= HARSH_AMBIENT and abs(light.azimuth) >= SIDE_LIGHT) or not LOW_EXPOSURE < optics.exposure < HIGH_EXPOSURE,
        scene.look.makeup >= HEAVY_MAKEUP,
        shot.covered.mean() >= OCCLUDED_FRACTION,
        max(optics.motion_length, 2 * optics.defocus) >= BLURRED * face,
    ], dtype=int)
