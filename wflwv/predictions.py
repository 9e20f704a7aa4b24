"""Prediction sets: any method's landmarks on a video set, as data (docs/submission.md).

A prediction set is a folder with one file per video ID, in frame pixels, NaN where the method gave
no landmarks: `<ID>.npy` of shape (frames, 98, 2), or `<ID>.npz` (key `landmarks`), or the
`<ID>.parquet` / `<ID>.csv` (also `<ID>.landmarks.parquet`/`.csv`) that `wflwv predict` writes. An
optional `method.json` describes the method: name, description, parameters, causal (online).
`wflwv bench` writes every model run in this format (`.npy` and `method.json`).
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wflwv import io
from wflwv.data.videoset import validate_id
from wflwv.errors import WflwvError
from wflwv.landmarks import N_LANDMARKS

SUFFIXES = (".npy", ".npz", ".parquet", ".csv", ".landmarks.parquet", ".landmarks.csv")
METHOD_FILE = "method.json"
# `wflwv predict`'s landmark columns, in the order of the 98 points
POINT_COLUMNS = [(f"x{i}", f"y{i}") for i in range(N_LANDMARKS)]


@dataclass(frozen=True)
class MethodInfo:
    name: str
    description: str = ""
    parameters: dict = field(default_factory=dict)
    causal: bool | None = None  # None: not said

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description, "parameters": self.parameters, "causal": self.causal}


def read_method(folder: Path) -> MethodInfo:
    """The set's method.json, checked; without one, a method named after the folder."""
    path = folder / METHOD_FILE
    if not path.is_file():
        return MethodInfo(folder.resolve().name)
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WflwvError(path, f"not valid JSON ({error})") from None
    expected = {"name": str, "description": str, "parameters": dict, "causal": bool}
    if not isinstance(data, dict):
        raise WflwvError(path, "expected a JSON object with name, description, parameters, causal")
    for key, kind in expected.items():
        if key in data and not (isinstance(data[key], kind) or (key == "causal" and data[key] is None)):
            raise WflwvError(path, f"{key!r} must be a {kind.__name__}")
    return MethodInfo(data.get("name") or folder.resolve().name, data.get("description", ""), data.get("parameters", {}), data.get("causal"))


def prediction_file(folder: Path, video_id: str) -> Path:
    """The one file of `folder` holding the predictions for a video."""
    validate_id(video_id)
    found = [folder / f"{video_id}{suffix}" for suffix in SUFFIXES if (folder / f"{video_id}{suffix}").is_file()]
    if not found:
        raise WflwvError(folder / f"{video_id}.npy", f"no predictions for video {video_id!r} (expected <ID>.npy, .npz, .parquet or .csv)")
    if len(found) > 1:
        raise WflwvError(found[0], f"video {video_id!r} has predictions in {len(found)} files: {', '.join(p.name for p in found)}")
    return found[0]


def read_landmarks(path: Path) -> np.ndarray:
    """The landmarks (frames, 98, 2) of one prediction file, checked for shape and type (NaN allowed)."""
    try:
        if path.suffix == ".npy":
            landmarks = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "landmarks" not in archive:
                    raise WflwvError(path, f"no 'landmarks' array (keys: {', '.join(archive.files) or 'none'})")
                landmarks = archive["landmarks"]
        else:
            landmarks = table_landmarks(path, pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path))
    except WflwvError:
        raise
    except Exception as error:  # a corrupt file of any of the four formats
        raise WflwvError(path, f"not a readable {path.suffix} file ({type(error).__name__}: {error})") from None
    if landmarks.ndim != 3 or landmarks.shape[1:] != (N_LANDMARKS, 2):
        raise WflwvError(path, f"landmarks have shape {landmarks.shape}, expected (frames, {N_LANDMARKS}, 2)")
    if not np.issubdtype(landmarks.dtype, np.floating):
        raise WflwvError(path, f"landmarks have dtype {landmarks.dtype}, expected floating point (NaN where there are none)")
    if np.isinf(landmarks).any():
        raise WflwvError(path, "landmarks are infinite in some frame (use NaN for no landmarks)")
    return landmarks.astype(np.float64)


def table_landmarks(path: Path, table: pd.DataFrame) -> np.ndarray:
    """Landmarks from the rows of `wflwv predict` (frame, x0, y0 ... x97, y97), one row per frame in order."""
    missing = [name for pair in POINT_COLUMNS for name in pair if name not in table.columns]
    if "frame" not in table.columns or missing:
        raise WflwvError(path, f"landmarks have {sum(c.startswith(('x', 'y')) for c in table.columns) // 2} points, expected {N_LANDMARKS} (columns frame, x0, y0 ... x97, y97)")
    if not np.array_equal(table["frame"].to_numpy(), np.arange(len(table))):
        raise WflwvError(path, "the frame column is not 0, 1, 2 ... (one row per frame, in order)")
    return table[[name for pair in POINT_COLUMNS for name in pair]].to_numpy(dtype=float).reshape(len(table), N_LANDMARKS, 2)


def load_prediction_set(folder: Path, frame_counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Each video's landmarks (frames, 98, 2) from a prediction set, checked against the video set's frame counts."""
    if not folder.is_dir():
        raise WflwvError(folder, "no such prediction set folder")
    landmarks = {}
    for video_id, frames in frame_counts.items():
        path = prediction_file(folder, video_id)
        points = read_landmarks(path)
        if len(points) != frames:
            raise WflwvError(path, f"video {video_id!r} has {frames} frames, the predictions have {len(points)}")
        if np.isnan(points).all():
            raise WflwvError(path, f"no landmarks in any frame of video {video_id!r}")
        landmarks[video_id] = points
    return landmarks


def hold_missing(landmarks: np.ndarray) -> np.ndarray:
    """Frames without landmarks (any NaN) scored as holding the last frame's; before the first, the first frame's."""
    present = ~np.isnan(landmarks).any(axis=(1, 2))
    source = np.maximum.accumulate(np.where(present, np.arange(len(landmarks)), -1))
    source[source < 0] = np.flatnonzero(present)[0]
    return landmarks[source]


def write_prediction_set(folder: Path, landmarks: dict[str, np.ndarray], method: MethodInfo) -> None:
    """`<ID>.npy` for each video and method.json, each written atomically."""
    for video_id, points in landmarks.items():
        io.save_npy(folder / f"{validate_id(video_id)}.npy", points)
    io.save_text(folder / METHOD_FILE, json.dumps(method.to_json(), indent=2) + "\n")


def predictions_digest(landmarks: dict[str, np.ndarray]) -> str:
    """A digest of the landmarks themselves (float64, by video ID), whatever file format held them."""
    digest = hashlib.sha256()
    for video_id in sorted(landmarks):
        digest.update(video_id.encode() + b"\0" + np.ascontiguousarray(landmarks[video_id], dtype=np.float64).tobytes())
    return digest.hexdigest()
