"""`mediapipe478`: MediaPipe's face mesh with attention (478 points: the 468 of the mesh and 10 of the irises).

mediapipe 0.10.14, the last release with the model files in its wheel (face_landmark_with_attention.tflite,
Apache 2.0), needs protobuf<5 and brings its own OpenCV, which clash with wflwv's: so it lives in its own
virtual environment, made by `wflwv setup-method mediapipe478` under $WFLWV_CACHE/mediapipe478, and runs
there as a subprocess (wflwv.methods.worker). Each face is cropped around its box (side 1.6 times the
box's, 256 pixels) and MediaPipe finds the face in the crop and fits its mesh, as its own pipeline does
on a detection's region.
"""

import sys
import time
from pathlib import Path

import numpy as np

from wflwv.methods.common import install
from wflwv.methods.worker import Worker, check_file, crop_points
from wflwv.real import default_cache

NAME = "mediapipe478"
# mediapipe and what it imports, every version pinned, installed without resolving: its declared jax, sounddevice and
# opencv-contrib (700 MB more) are never imported by the face mesh, and opencv-python-headless provides its cv2
REQUIREMENTS = ["mediapipe==0.10.14", "absl-py==2.5.1", "attrs==26.1.0", "flatbuffers==25.12.19", "numpy==1.26.4", "protobuf==4.25.9",
                "opencv-python-headless==4.11.0.86", "matplotlib==3.11.2", "contourpy==1.3.3", "cycler==0.12.1", "fonttools==4.69.1",
                "kiwisolver==1.5.1", "packaging==26.4", "pillow==13.0.0", "pyparsing==3.3.3", "python-dateutil==4.0.0", "tzdata==2026.6"]  # fmt: skip
SETUP = f"wflwv setup-method {NAME}"
CROP_SIZE, CROP_SCALE = 256, 1.6


def environment() -> Path:
    return default_cache() / NAME


class MediaPipe478:
    name = NAME
    scheme = "mediapipe478"
    identity = {"requirements": REQUIREMENTS, "crop": [CROP_SIZE, CROP_SCALE]}

    def __init__(self):
        python = check_file(environment() / "bin" / "python", NAME, SETUP)
        self.worker = Worker(NAME, [str(python), "-I", str(Path(__file__).with_name("mediapipe_worker.py"))])  # -I: not its folder, where mediapipe.py is this file

    def predict(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return crop_points(self.worker, frames, boxes, 478, CROP_SIZE, CROP_SCALE)

    @staticmethod
    def setup() -> str:
        """Make the virtual environment (once; again if its requirements change); returns what was done."""
        folder, stamp = environment(), environment() / "requirements.txt"
        if stamp.is_file() and stamp.read_text().split() == REQUIREMENTS:
            return f"{NAME}: set up already in {folder}"
        start = time.perf_counter()
        install(NAME, [sys.executable, "-m", "venv", "--clear", str(folder)])
        pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        install(NAME, [*pip, "--no-deps", *REQUIREMENTS])
        stamp.write_text("\n".join(REQUIREMENTS) + "\n")
        return f"{NAME}: set up in {folder} in {time.perf_counter() - start:.0f} s"
