"""The WFLW 98-point landmark scheme."""

import numpy as np

N_LANDMARKS = 98
CHIN = 16
LEFT_EYE_OUTER = 60  # "left" is the image's left throughout
RIGHT_EYE_OUTER = 72
LEFT_PUPIL = 96
RIGHT_PUPIL = 97

# Index ranges of the face parts, end exclusive.
PARTS = {
    "contour": (0, 33),
    "left_eyebrow": (33, 42),
    "right_eyebrow": (42, 51),
    "nose_bridge": (51, 55),
    "lower_nose": (55, 60),
    "left_eye": (60, 68),
    "right_eye": (68, 76),
    "outer_lip": (76, 88),
    "inner_lip": (88, 96),
    "pupils": (96, 98),
}

# The face regions whose flicker is reported on its own (wflwv.metrics.region_nmf): both sides of each part, pupils with the eyes.
REGIONS = {
    "contour": np.arange(0, 33),
    "brows": np.arange(33, 51),
    "nose": np.arange(51, 60),
    "eyes": np.r_[60:76, 96:98],
    "mouth": np.arange(76, 96),
}

# Index i of a horizontally flipped face takes point FLIP_PERMUTATION[i] of the original.
FLIP_PERMUTATION = np.array(
    list(range(32, -1, -1))
    + [46, 45, 44, 43, 42, 50, 49, 48, 47, 37, 36, 35, 34, 33, 41, 40, 39, 38]
    + [51, 52, 53, 54, 59, 58, 57, 56, 55]
    + [72, 71, 70, 69, 68, 75, 74, 73, 64, 63, 62, 61, 60, 67, 66, 65]
    + [82, 81, 80, 79, 78, 77, 76, 87, 86, 85, 84, 83, 92, 91, 90, 89, 88, 95, 94, 93]
    + [97, 96]
)


def flip_horizontally(points: np.ndarray, width: float) -> np.ndarray:
    """Landmarks (..., 98, 2) of the mirror image of an image `width` wide (pixel-centre convention)."""
    flipped = points[..., FLIP_PERMUTATION, :].copy()
    flipped[..., 0] = width - 1 - flipped[..., 0]
    return flipped
