"""What the built-in methods share: their optional extras and running per face."""

import importlib
import subprocess
from collections.abc import Callable

import numpy as np

from wflwv.errors import WflwvError


def require(module: str, method: str, extra: str):
    """`module` imported, or a one-line refusal naming the pip command that installs the method's extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(module, method, extra) from None


def missing_extra(module: str, method: str, extra: str) -> WflwvError:
    return WflwvError(method, f"needs the optional extra {extra!r} ({module} is not installed): pip install 'wflwv[{extra}]'")


def has_face(boxes: np.ndarray) -> np.ndarray:
    """(n,) bool: which frames have a box (finite x1 y1 x2 y2 with x2 > x1 and y2 > y1; an empty box holds no face)."""
    boxes = np.asarray(boxes, dtype=np.float64)[:, :4]
    with np.errstate(invalid="ignore"):
        return np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def per_face(frames: np.ndarray, boxes: np.ndarray, n_points: int, predict_one: Callable[[np.ndarray, np.ndarray], np.ndarray | None]) -> np.ndarray:
    """(n, n_points, 2) landmarks from predict_one(frame, box) on each frame with a box; NaN rows elsewhere or where it returns None."""
    landmarks = np.full((len(frames), n_points, 2), np.nan)
    for index in np.flatnonzero(has_face(boxes)):
        points = predict_one(frames[index], np.asarray(boxes[index][:4], dtype=np.float64))
        if points is not None:
            landmarks[index] = points
    return landmarks


def install(method: str, command: list[str]) -> None:
    """Run a set-up step (pip, npm, venv) of a method; a failure is one line naming the method and the step."""
    try:
        subprocess.run(command, check=True)
    except subprocess.CalledProcessError as error:
        raise WflwvError(method, f"set-up step failed (exit {error.returncode}): {' '.join(command[:4])} ...") from None
