"""A landmark model in another runtime (a virtual environment, Node) as a subprocess: crops in, points out.

The parent writes each batch of crops (k, S, S, 3) uint8 RGB as one .npy to the worker's stdin; the worker
answers with one .npy (k, N, 2) float64 of points in [0, 1] crop units (0 and 1 the crop's edges), NaN
where it found no face. Each message is its length (8 bytes, little-endian) and then the .npy bytes.
The worker's stderr is kept, and its last line is the error if it dies.
"""

import io
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from wflwv.data.crop import box_to_affine, crop, invert_affine, transform_points
from wflwv.errors import WflwvError
from wflwv.methods.common import has_face

BATCH = 32  # crops per message


class Worker:
    def __init__(self, name: str, command: list[str], env: dict[str, str] | None = None):
        self.name, self.command = name, command
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)

    def points(self, crops: np.ndarray) -> np.ndarray:
        try:
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(crops, dtype=np.uint8), allow_pickle=False)
            self.process.stdin.write(len(buffer.getvalue()).to_bytes(8, "little") + buffer.getvalue())
            self.process.stdin.flush()
            size = int.from_bytes(self.process.stdout.read(8), "little")
            return np.load(io.BytesIO(self.process.stdout.read(size)), allow_pickle=False)
        except (BrokenPipeError, ValueError, EOFError):
            self.log.seek(0)
            last = (self.log.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise WflwvError(self.name, f"its worker ({' '.join(self.command)}) stopped: {last}") from None

    def __del__(self):
        if getattr(self, "process", None) and self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def crop_points(worker: Worker, frames: np.ndarray, boxes: np.ndarray, n_points: int, size: int, scale: float) -> np.ndarray:
    """(n, n_points, 2) frame pixels: each box's crop (side = scale * the box's longer side, size x size) through the worker."""
    landmarks = np.full((len(frames), n_points, 2), np.nan)
    faces = np.flatnonzero(has_face(boxes))
    for start in range(0, len(faces), BATCH):
        chosen = faces[start : start + BATCH]
        affines = np.stack([box_to_affine(boxes[i], size, scale) for i in chosen])
        units = worker.points(np.stack([crop(frames[i], affine, size) for i, affine in zip(chosen, affines)]))
        pixels = units * size - 0.5  # edges at 0 and size -> pixel centres at integers, as wflwv's crops
        landmarks[chosen] = transform_points(pixels, np.stack([invert_affine(a) for a in affines]))
    return landmarks


def check_file(path: Path, method: str, setup: str) -> Path:
    if not path.exists():
        raise WflwvError(path, f"{method} is not set up here: {setup}")
    return path
