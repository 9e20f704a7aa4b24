"""The 3D face template: identity and expression parameters -> head primitives and 98 landmarks.

Head units: 1 unit is about 75 mm; the origin is midway between the eye centres, x to the image's
right, y down, z away from the camera (the face looks along -z). The head is a union of ellipsoids
(cranium, jaw, nose, nose wings, ears, neck); every landmark is a point of its front surface,
chosen in frontal coordinates (x, y) where the texture paints the feature it names, so its
projection is exact for any pose. The face contour (0-32) is the outline of the cranium and jaw
seen from the front, a fixed curve on the head: when the head turns, the far half goes behind
the face and its ground truth stays the true (hidden) projection.

The same head also carries iBUG's 68 points (ibug68_points): on the same curves, each point where iBUG
defines it. They are WFLW's points that the standard 98-to-68 map takes, except the eyelids: iBUG puts
two points on each lid at a third and two thirds of the way between the corners, WFLW three at a quarter,
a half and three quarters, so the map's lid points (WFLW's quarters) are not iBUG's.
"""

import functools
from dataclasses import dataclass, replace

import numpy as np

from wflwv.landmarks import FLIP_PERMUTATION, N_LANDMARKS
from wflwv.schemes import convert, get_scheme
from wflwv.synth.geometry import FRONTAL, Ellipsoid, cast

CRANIUM_CENTRE_Y = -0.3
CRANIUM_HEIGHT = 1.45  # half height
CRANIUM_DEPTH = 1.15
JAW_TOP = -0.35
CONTOUR_START_Y = -0.05  # contour points 0 and 32 lie at this height on the outline
FACE_PARTS = ("cranium", "jaw", "nose", "left_wing", "right_wing")
WFLW_LID = np.array([0.25, 0.5, 0.75])  # where along each lid, from the outer corner, WFLW's lid points are
IBUG_LID = np.array([1, 2]) / 3  # and iBUG's


@dataclass(frozen=True)
class Identity:
    """Face shape, in head units."""

    head_width: float = 0.95  # half width of the cranium
    jaw_width: float = 0.72  # half width of the jaw
    chin: float = 1.45  # height of the chin below the eye line
    chin_forward: float = 0.0
    eye_spacing: float = 0.42  # half the distance between the eye centres
    eye_width: float = 0.19  # half width of an eye
    eye_height: float = 0.075  # upper lid above the corners' line
    eye_tilt: float = 0.02  # outer corners raised by this much
    brow_height: float = 0.3
    brow_arch: float = 0.06
    brow_thickness: float = 0.07
    nose_length: float = 0.5  # height of the nose tip below the eye line
    nose_width: float = 0.17  # half width of the nose wings
    nose_depth: float = 0.3  # how far the tip stands out
    mouth_y: float = 0.92
    mouth_width: float = 0.33  # half width
    upper_lip: float = 0.07
    lower_lip: float = 0.09


@dataclass(frozen=True)
class Expression:
    mouth_open: float = 0.0  # 0 closed .. 1 wide open
    smile: float = 0.0  # 0 .. 1
    blink: tuple[float, float] = (0.0, 0.0)  # image-left, image-right eye; 1 is closed
    brow_raise: float = 0.0  # -1 frown .. 1 raised
    gaze: tuple[float, float] = (0.0, 0.0)  # iris offset, in [-1, 1] of its range (x to the image's right)

    def mirrored(self) -> "Expression":
        return replace(self, blink=self.blink[::-1], gaze=(-self.gaze[0], self.gaze[1]))


@dataclass(frozen=True)
class Head:
    parts: dict[str, Ellipsoid]  # the face's primitives first (FACE_PARTS), then ears and neck
    template: np.ndarray  # (98, 2) frontal x, y of the landmarks: where the texture paints them
    landmarks: np.ndarray  # (98, 3) head-frame landmarks
    mouth_opening: float  # vertical gap between the inner lips at the centre
    landmarks68: np.ndarray  # (68, 3) head-frame landmarks of iBUG's scheme (ibug68_points)


def mouth_opening(expression: Expression) -> float:
    return 0.32 * expression.mouth_open + 0.03 * expression.smile


@functools.lru_cache(maxsize=512)
def build_head(identity: Identity, expression: Expression) -> Head:
    """The head of this identity making this expression (cached: a video asks for each frame's twice)."""
    opening = mouth_opening(expression)
    chin = identity.chin + 0.8 * opening  # the jaw drops with the lower lip
    parts = {
        "cranium": Ellipsoid((0.0, CRANIUM_CENTRE_Y, 0.05), (identity.head_width, CRANIUM_HEIGHT, CRANIUM_DEPTH)),
        "jaw": Ellipsoid(
            (0.0, (JAW_TOP + chin) / 2, -0.1 - identity.chin_forward), (identity.jaw_width, (chin - JAW_TOP) / 2, 0.95)
        ),
    }
    face_at_tip = min(_front_z(part, 0.0, identity.nose_length) for part in parts.values())
    nose = Ellipsoid((0.0, identity.nose_length - 0.2, 0.0), (0.6 * identity.nose_width, 0.32, 0.13), tilt=35.0)
    nose = replace(nose, centre=(0.0, nose.centre[1], face_at_tip - identity.nose_depth - frontmost_point(nose)[2]))
    tip = frontmost_point(nose)
    wing_y = tip[1] + 0.03
    wing_z = min(_front_z(part, identity.nose_width, wing_y) for part in parts.values()) - 0.03
    for name, side in (("left_wing", -1), ("right_wing", 1)):
        parts[name] = Ellipsoid((side * (identity.nose_width - 0.07), wing_y, wing_z), (0.09, 0.07, 0.09))
    parts["nose"] = nose
    parts = {name: parts[name] for name in FACE_PARTS}
    for name, side in (("left_ear", -1), ("right_ear", 1)):
        parts[name] = Ellipsoid((side * (identity.head_width - 0.03), 0.22, 0.25), (0.1, 0.3, 0.17))
    parts["neck"] = Ellipsoid((0.0, 1.95, 0.3), (0.58, 1.15, 0.6))

    template = np.zeros((N_LANDMARKS, 2))
    contour, contour_depth = face_outline(parts["cranium"], parts["jaw"])
    template[0:33] = contour
    _place_sides(template, identity, expression)
    template[51:60] = nose_points(identity, tip)
    template[76:96] = mouth_points(identity, expression, opening)
    depth = frontal_depth({name: parts[name] for name in FACE_PARTS}, template[:, 0], template[:, 1])
    depth[0:33] = contour_depth
    landmarks = np.column_stack([template, depth])
    return Head(parts, template, landmarks, opening, ibug68_points(parts, landmarks, identity, expression))


def ibug68_points(parts: dict[str, Ellipsoid], landmarks: np.ndarray, identity: Identity, expression: Expression) -> np.ndarray:
    """iBUG's 68 head-frame points (68, 3) of the head whose WFLW landmarks (98, 3) are given: the points the
    standard map takes, with each eye's lid points moved to where iBUG defines them (a third and two thirds)."""
    points = convert(landmarks, "wflw98", "ibug68")
    left = np.arange(36, 42)
    for side_expression, indices, sign in ((expression, left, 1), (expression.mirrored(), get_scheme("ibug68").flip[left], -1)):
        eye = eye_outline(identity, side_expression.blink[0], IBUG_LID) * [sign, 1]
        points[indices] = np.column_stack([eye, frontal_depth({name: parts[name] for name in FACE_PARTS}, eye[:, 0], eye[:, 1])])
    return points


def frontal_depth(parts: dict[str, Ellipsoid], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """z of the union's front surface at head-frame (x, y) (inf where nothing is)."""
    return cast(list(parts.values()), FRONTAL, x, y)[0].min(axis=0)


def _front_z(part: Ellipsoid, x: float, y: float) -> float:
    """z of an untilted part's front surface at head-frame (x, y) (inf off it)."""
    (cx, cy, cz), (a, b, c) = part.centre, part.axes
    inside = 1 - ((x - cx) / a) ** 2 - ((y - cy) / b) ** 2
    return cz - c * inside**0.5 if inside >= 0 else np.inf


def frontmost_point(part: Ellipsoid) -> np.ndarray:
    shape = part.shape_matrix
    return np.asarray(part.centre) - shape @ shape[2] / np.linalg.norm(shape[2])


def face_outline(cranium: Ellipsoid, jaw: Ellipsoid, n: int = 33) -> tuple[np.ndarray, np.ndarray]:
    """The outline of cranium and jaw seen from the front, from the image's left through the chin,
    as n points equally spaced along it, with the depth of the rim each lies on."""
    ref_y = 0.3  # inside both: the outline is star-shaped from here
    start_x = -cranium.axes[0] * np.sqrt(1 - ((CONTOUR_START_Y - cranium.centre[1]) / cranium.axes[1]) ** 2)
    start = np.arctan2(-start_x, CONTOUR_START_Y - ref_y)  # angle from straight down, positive to the left
    angles = np.linspace(start, -start, 241)
    direction = np.stack([-np.sin(angles), np.cos(angles)], axis=1)
    reach = np.stack([_ray_to_ellipse(part, ref_y, direction) for part in (cranium, jaw)])
    outer = reach.argmax(axis=0)
    dense = np.array([0.0, ref_y]) + reach.max(axis=0)[:, None] * direction
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    at = np.linspace(0, arc[-1], n)
    points = np.stack([np.interp(at, arc, dense[:, 0]), np.interp(at, arc, dense[:, 1])], axis=1)
    rim_depth = np.array([cranium.centre[2], jaw.centre[2]])[outer[np.searchsorted(arc, at).clip(0, len(arc) - 1)]]
    return points, rim_depth


def _ray_to_ellipse(part: Ellipsoid, ref_y: float, direction: np.ndarray) -> np.ndarray:
    """Distance from (0, ref_y) along each direction to the outline of the part's frontal ellipse."""
    a, b = part.axes[0], part.axes[1]
    dx, dy = direction[:, 0] / a, direction[:, 1] / b
    oy = (ref_y - part.centre[1]) / b
    qa, qb, qc = dx * dx + dy * dy, dy * oy, oy * oy - 1
    return (-qb + np.sqrt(qb * qb - qa * qc)) / qa


def _place_sides(template: np.ndarray, identity: Identity, expression: Expression) -> None:
    """Brow, eye and pupil of each side: the image-right ones mirror a left one made with the
    mirrored expression."""
    left = np.r_[33:42, 60:68, 96]
    for side_expression, indices, sign in ((expression, left, 1), (expression.mirrored(), FLIP_PERMUTATION[left], -1)):
        eye, pupil = eye_points(identity, side_expression.blink[0], side_expression.gaze)
        points = np.vstack([brow_points(identity, expression.brow_raise), eye, pupil])
        template[indices] = points * [sign, 1]


def eye_points(identity: Identity, blink: float, gaze: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The image-left eye: outer corner, upper lid, inner corner, lower lid (8, 2), and the pupil."""
    points = eye_outline(identity, blink, WFLW_LID)
    outer, inner = points[0], points[len(WFLW_LID) + 1]
    pupil = (outer + inner) / 2 + np.array([0.35 * identity.eye_width * gaze[0], 0.25 * identity.eye_height * gaze[1] - 0.1 * identity.eye_height])
    return points, pupil


def eye_outline(identity: Identity, blink: float, t: np.ndarray) -> np.ndarray:
    """The image-left eye: outer corner, the upper lid at fractions t of the way to the inner corner, the inner
    corner, the lower lid at the same fractions back to the outer corner."""
    outer = np.array([-identity.eye_spacing - identity.eye_width, -identity.eye_tilt])
    inner = np.array([-identity.eye_spacing + identity.eye_width, 0.0])
    lid = lid_offsets(identity, blink)
    upper = outer + t[:, None] * (inner - outer) + np.column_stack([0 * t, lid.upper * np.sin(np.pi * t)])
    lower = outer + t[::-1, None] * (inner - outer) + np.column_stack([0 * t, lid.lower * np.sin(np.pi * t[::-1])])
    return np.vstack([outer, upper, inner, lower])


@dataclass(frozen=True)
class LidOffsets:
    upper: float  # y offset of the upper lid's middle from the corners' line (negative: above)
    lower: float


def lid_offsets(identity: Identity, blink: float) -> LidOffsets:
    lower = 0.55 * identity.eye_height
    return LidOffsets(upper=(1 - blink) * -identity.eye_height + blink * 0.85 * lower, lower=lower)


def brow_points(identity: Identity, raise_: float) -> np.ndarray:
    """The image-left brow: upper edge outer to inner (5), lower edge inner to outer (4)."""
    outer_x = -identity.eye_spacing - identity.eye_width - 0.07
    inner_x = -identity.eye_spacing + identity.eye_width + 0.01
    lift = identity.brow_height + 0.08 * raise_

    def edge(t: np.ndarray, sign: float) -> np.ndarray:
        x = outer_x + t * (inner_x - outer_x)
        centre = -lift - (identity.brow_arch + 0.02 * raise_) * np.sin(np.pi * t**0.75) + 0.03 * t
        half = identity.brow_thickness * (0.25 + 0.35 * t)
        return np.column_stack([x, centre + sign * half])

    return np.vstack([edge(np.linspace(0, 1, 5), -1), edge(np.array([7, 5, 3, 1]) / 8, 1)])


def nose_points(identity: Identity, tip: np.ndarray) -> np.ndarray:
    """Bridge from between the eyes to the tip (4), then the base from the image's left (5)."""
    bridge = np.column_stack([np.zeros(4), np.linspace(-0.02, tip[1], 4)])
    w = identity.nose_width
    base_x = np.array([-w, -0.5 * w, 0.0, 0.5 * w, w])
    base_y = tip[1] + np.array([0.04, 0.08, 0.1, 0.08, 0.04])
    return np.vstack([bridge, np.column_stack([base_x, base_y])])


def mouth_points(identity: Identity, expression: Expression, opening: float) -> np.ndarray:
    """Outer lip (12) then inner lip (8) in the WFLW order, from the left corner clockwise."""
    smile = expression.smile
    half = identity.mouth_width * (1 + 0.12 * smile)
    inner_half = 0.85 * half
    centre_y = identity.mouth_y
    corner_y = centre_y - 0.07 * smile + 0.03 * opening

    def baseline(x):  # the line where the lips meet, raised at the corners by a smile
        return centre_y + (corner_y - centre_y) * (x / half) ** 2

    def gap(x):  # the opening between the lips
        return opening * np.sqrt(np.clip(1 - (x / inner_half) ** 2, 0, 1))

    upper_inner_x = np.array([-0.45, 0.0, 0.45]) * half
    lower_inner_x = upper_inner_x[::-1]
    upper_inner = baseline(upper_inner_x) - 0.2 * gap(upper_inner_x)
    lower_inner = baseline(lower_inner_x) + 0.8 * gap(lower_inner_x)

    upper_x = np.array([-0.62, -0.28, 0.0, 0.28, 0.62]) * half
    bow = np.array([0.75, 1.0, 0.82, 1.0, 0.75])
    upper = baseline(upper_x) - 0.2 * gap(upper_x) - identity.upper_lip * bow
    lower_x = np.array([0.6, 0.3, 0.0, -0.3, -0.6]) * half
    lower = baseline(lower_x) + 0.8 * gap(lower_x) + identity.lower_lip * (1 - 0.35 * (lower_x / half) ** 2)

    inner_corner_y = baseline(inner_half)
    return np.vstack([
        [-half, corner_y],
        np.column_stack([upper_x, upper]),
        [half, corner_y],
        np.column_stack([lower_x, lower]),
        [-inner_half, inner_corner_y],
        np.column_stack([upper_inner_x, upper_inner]),
        [inner_half, inner_corner_y],
        np.column_stack([lower_inner_x, lower_inner]),
    ])
