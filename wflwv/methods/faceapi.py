"""`faceapi68`: face-api's 68-point landmark net (@vladmandic/face-api 1.7.15, MIT) under Node, as a subprocess.

Its model (model/face_landmark_68_model.bin) runs on tfjs 4.22.0's WebAssembly backend in a small JS
worker (faceapi_worker.js, wflwv.methods.worker's protocol). `wflwv setup-method faceapi68` installs the
three npm packages into $WFLWV_CACHE/faceapi68 with npm; Node 18 or later must be on the PATH. Each
face is cropped to its box made square (side 1.1 times the box's longer side, 112 pixels, the net's input),
as face-api crops its own detector's boxes.
"""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from wflwv.errors import WflwvError
from wflwv.methods.common import install
from wflwv.methods.worker import Worker, check_file, crop_points
from wflwv.real import default_cache

NAME = "faceapi68"
PACKAGES = {"@vladmandic/face-api": "1.7.15", "@tensorflow/tfjs": "4.22.0", "@tensorflow/tfjs-backend-wasm": "4.22.0"}
SETUP = f"wflwv setup-method {NAME}"
CROP_SIZE, CROP_SCALE = 112, 1.1
NODE_HINT = "install Node 18 or later (Debian: apt-get install nodejs npm)"


def environment() -> Path:
    return default_cache() / NAME


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise WflwvError(NAME, f"needs Node, which is not on the PATH: {NODE_HINT}")
    return found


class FaceApi68:
    name = NAME
    scheme = "ibug68"
    identity = {"packages": PACKAGES, "crop": [CROP_SIZE, CROP_SCALE]}

    def __init__(self):
        command, modules = [node(), str(Path(__file__).with_name("faceapi_worker.js"))], environment() / "node_modules"
        for package in PACKAGES:
            check_file(modules / package / "package.json", NAME, SETUP)
        self.worker = Worker(NAME, command, env=os.environ | {"NODE_PATH": str(modules)})

    def predict(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return crop_points(self.worker, frames, boxes, 68, CROP_SIZE, CROP_SCALE)

    @staticmethod
    def setup() -> str:
        """npm install the pinned packages into the cache (once; again if the pins change); returns what was done."""
        folder, manifest = environment(), {"private": True, "dependencies": PACKAGES}
        stamp = folder / "installed.json"  # written once npm install has succeeded
        if stamp.is_file() and json.loads(stamp.read_text()) == manifest:
            return f"{NAME}: set up already in {folder}"
        npm = shutil.which("npm")
        if npm is None:
            raise WflwvError(NAME, f"needs npm, which is not on the PATH: {NODE_HINT}")
        start = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        install(NAME, [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(folder)])
        stamp.write_text(json.dumps(manifest, indent=2) + "\n")
        return f"{NAME}: set up in {folder} in {time.perf_counter() - start:.0f} s"
