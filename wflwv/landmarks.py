"""The WFLW 98-point landmark scheme by name: its points and parts, with the regions and
flip permutation read from its data (wflwv/configs/schemes/wflw98.toml, through wflwv.schemes)."""

import numpy as np

from wflwv import schemes

WFLW98 = schemes.get_scheme("wflw98")
N_LANDMARKS = WFLW98.n_points
CHIN = 16
# "left" is the image's left throughout

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
REGIONS = WFLW98.regions

# Index i of a horizontally flipped face takes point FLIP_PERMUTATION[i] of the original.
FLIP_PERMUTATION = WFLW98.flip


def flip_horizontally(points: np.ndarray, width: float) -> np.ndarray:
    """Landmarks (..., 98, 2) of the mirror image of an image `width` wide (pixel-centre convention)."""
    return schemes.flip_horizontally(points, width, WFLW98)
