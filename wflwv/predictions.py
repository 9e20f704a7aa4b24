"""Prediction sets: any method's landmarks on a video set, as data (docs/submission.md).

A prediction set is a folder with one file per video ID, in frame pixels, NaN where the method gave
no landmarks: `<ID>.npy` of shape (frames, N, 2), or `<ID>.npz` (key `landmarks`), or the
`<ID>.parquet` / `<ID>.csv` (also `<ID>.landmarks.parquet`/`.csv`) that `wflwv predict` writes. N is the
point count of a scheme (wflwv.schemes: 98 WFLW, 68 iBUG, 478 MediaPipe), the same in every file. An
optional `method.json` describes the method: name, description, parameters, causal (online), and the
point scheme (else the one with the files' point count).
`wflwv bench` writes every model run in this format (`.npy` and `method.json`).
"""

import collections
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from wflwv import io
from wflwv.data.videoset import VideoSet, validate_id
from wflwv.errors import WflwvError
from wflwv.schemes import get_scheme, point_counts, scheme_for_points

# a method's name labels its leaderboard rows and its folders: the rule of video IDs, with spaces, '@' and '+' inside
METHOD_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+ -]*(?<! )")
MAX_METHOD_NAME = 64
METHOD_NAME_RULE = "letters, digits, '_', '-', '.', '@', '+' and inner spaces (not '.', '-' or a space first)"
MAX_METHOD_JSON_BYTES, MAX_METHOD_JSON_DEPTH = 64 * 1024, 16
# what one prediction file may hold once read or decompressed: 1 GiB, 680,000 frames of float64 landmarks
MAX_PREDICTION_BYTES = 1 << 30
# a landmark this far outside any frame is a bug, and its square overflows the scores
MAX_COORDINATE = 1e6
SUFFIXES = (".npy", ".npz", ".parquet", ".csv", ".landmarks.parquet", ".landmarks.csv")
METHOD_FILE = "method.json"


@dataclass(frozen=True)
class MethodInfo:
    name: str
    description: str = ""
    parameters: dict = field(default_factory=dict)
    causal: bool | None = None  # None: not said
    scheme: str | None = None  # the point scheme; None: the one with the files' point count
    fps: float | None = None  # frames per second wflwv measured running the method (wflwv.methods.run); None: not measured

    def to_json(self) -> dict:
        optional = {"scheme": self.scheme, "fps": self.fps}
        return {"name": self.name, "description": self.description, "parameters": self.parameters, "causal": self.causal} | {
            key: value for key, value in optional.items() if value is not None
        }


def read_method(folder: Path) -> MethodInfo:
    """The set's method.json, checked; without one, a method named after the folder."""
    path = folder / METHOD_FILE
    if not path.is_file():
        return MethodInfo(folder.resolve().name)
    data = io.read_json(path, MAX_METHOD_JSON_BYTES, MAX_METHOD_JSON_DEPTH)
    expected = {"name": str, "description": str, "parameters": dict, "causal": bool, "scheme": str}
    if not isinstance(data, dict):
        raise WflwvError(path, "expected a JSON object with name, description, parameters, causal")
    for key, kind in expected.items():
        if key in data and not (isinstance(data[key], kind) or (key == "causal" and data[key] is None)):
            raise WflwvError(path, f"{key!r} must be a {kind.__name__}")
    if "fps" in data and not (type(data["fps"]) in (int, float) and 0 < data["fps"] < math.inf):
        raise WflwvError(path, f"'fps' must be a positive number of frames per second, got {data['fps']!r}")
    if "scheme" in data:
        try:
            get_scheme(data["scheme"])
        except WflwvError as error:
            raise WflwvError(path, error.problem) from None
    fields = (data.get("description", ""), data.get("parameters", {}), data.get("causal"), data.get("scheme"), data.get("fps"))
    return MethodInfo(data.get("name") or folder.resolve().name, *fields)


def validate_method_name(name: str) -> str:
    """A method's name (`--predictions NAME=`, method.json's name): at most MAX_METHOD_NAME characters of METHOD_NAME_RULE."""
    if not name or len(name) > MAX_METHOD_NAME or not METHOD_NAME_PATTERN.fullmatch(name):
        raise WflwvError(None, f"method name {name[:MAX_METHOD_NAME]!r} must be 1 to {MAX_METHOD_NAME} {METHOD_NAME_RULE}")
    return name


def prediction_file(folder: Path, video_id: str) -> Path:
    """The one file of `folder` holding the predictions for a video."""
    validate_id(video_id)
    found = [folder / f"{video_id}{suffix}" for suffix in SUFFIXES if (folder / f"{video_id}{suffix}").is_file()]
    if not found:
        raise WflwvError(folder / f"{video_id}.npy", f"no predictions for video {video_id!r} (expected <ID>.npy, .npz, .parquet or .csv)")
    if len(found) > 1:
        raise WflwvError(found[0], f"video {video_id!r} has predictions in {len(found)} files: {', '.join(p.name for p in found)}")
    return found[0]


def read_landmarks(path: Path, frames: int | None = None) -> np.ndarray:
    """The landmarks (frames, N, 2) of one prediction file, N a scheme's point count, checked for shape and type (NaN allowed); the shape, type
    and size (at most MAX_PREDICTION_BYTES read or decompressed) are checked before the data is read."""

    def check(shape: tuple, dtype: np.dtype) -> None:
        check_shape(path, shape, dtype, frames)

    try:
        if path.suffix in (".npy", ".npz"):
            landmarks = io.load_npy(path, MAX_PREDICTION_BYTES, check)
        else:
            landmarks = table_landmarks(path, read_table(path, frames))
    except WflwvError:
        raise
    except Exception as error:  # a corrupt file of any of the four formats
        raise WflwvError(path, f"not a readable {path.suffix} file ({type(error).__name__}: {error})") from None
    check_shape(path, landmarks.shape, landmarks.dtype, frames)
    landmarks = landmarks.astype(np.float64)
    huge = np.abs(landmarks) > MAX_COORDINATE  # NaN compares False
    if huge.any():
        frame = int(np.flatnonzero(huge.any(axis=(1, 2)))[0])
        raise WflwvError(path, f"landmarks of frame {frame} are {'infinite' if np.isinf(landmarks[frame]).any() else 'beyond ±1e6 px'} (use NaN for no landmarks)")
    return landmarks


def check_shape(path: Path, shape: tuple, dtype: np.dtype, frames: int | None) -> None:
    if len(shape) != 3 or shape[2] != 2 or shape[1] not in point_counts():
        counts = " or ".join(map(str, point_counts()))
        raise WflwvError(path, f"landmarks have shape {shape}, expected (frames, {counts} points, 2)")
    if not np.issubdtype(dtype, np.floating):
        raise WflwvError(path, f"landmarks have dtype {dtype}, expected floating point (NaN where there are none)")
    if frames is not None and shape[0] != frames:
        raise WflwvError(path, f"the video has {frames} frames, the predictions have {shape[0]}")


def read_table(path: Path, frames: int | None) -> pd.DataFrame:
    """A .parquet or .csv prediction file, its size checked first (a parquet file by its metadata: rows and uncompressed bytes)."""
    if path.suffix == ".csv":
        if path.stat().st_size > MAX_PREDICTION_BYTES:
            raise WflwvError(path, f"{path.stat().st_size} bytes, more than the {MAX_PREDICTION_BYTES} allowed")
        return pd.read_csv(path)
    metadata = pq.ParquetFile(path).metadata
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if size > MAX_PREDICTION_BYTES:
        raise WflwvError(path, f"decompresses to {size} bytes, more than the {MAX_PREDICTION_BYTES} allowed")
    if frames is not None and metadata.num_rows != frames:
        raise WflwvError(path, f"the video has {frames} frames, the predictions have {metadata.num_rows}")
    return pd.read_parquet(path)


def table_landmarks(path: Path, table: pd.DataFrame) -> np.ndarray:
    """Landmarks from the rows of `wflwv predict` (frame, x0, y0 ... x<N-1>, y<N-1>), one row per frame in order."""
    n_points = sum(c.startswith(("x", "y")) for c in table.columns) // 2
    columns = point_columns(n_points)
    if "frame" not in table.columns or n_points not in point_counts() or any(name not in table.columns for name in columns):
        counts = " or ".join(map(str, point_counts()))
        raise WflwvError(path, f"landmarks have {n_points} points, expected {counts} (columns frame, x0, y0 ... x<N-1>, y<N-1>)")
    if not np.array_equal(table["frame"].to_numpy(), np.arange(len(table))):
        raise WflwvError(path, "the frame column is not 0, 1, 2 ... (one row per frame, in order)")
    return table[columns].to_numpy(dtype=float).reshape(len(table), n_points, 2)


def point_columns(n_points: int) -> list[str]:
    """`wflwv predict`'s landmark columns, in the order of the points: x0, y0, x1, y1 ..."""
    return [f"{axis}{i}" for i in range(n_points) for axis in "xy"]


def load_prediction_set(folder: Path, frame_counts: dict[str, int], videos: Path | None = None) -> dict[str, np.ndarray]:
    """Each video's landmarks (frames, N, 2) from a prediction set, checked against the video set's frame counts
    and for one scheme: every file has the point count of method.json's scheme, else the count most files have;
    a file that is (a link to) the ground truth of the video set `videos` is refused: it would score the truth itself."""
    if not folder.is_dir():
        raise WflwvError(folder, "no such prediction set folder")
    declared = read_method(folder).scheme
    truth = None if videos is None else VideoSet(videos)
    landmarks, paths = {}, {}
    for video_id, frames in frame_counts.items():
        paths[video_id] = path = prediction_file(folder, video_id)
        if truth is not None:
            check_outside(path, truth, video_id)
        points = read_landmarks(path, frames)
        if np.isnan(points).any(axis=(1, 2)).all():
            always = np.flatnonzero(np.isnan(points).any(axis=2).all(axis=0))
            hint = f"; point {always[0]} is NaN in every frame" if len(always) and not np.isnan(points).all() else ""
            raise WflwvError(path, f"no landmarks in any frame of video {video_id!r} (a frame with any NaN point has none{hint})")
        landmarks[video_id] = points
    counts = collections.Counter(points.shape[1] for points in landmarks.values())
    expected = get_scheme(declared).n_points if declared else counts.most_common(1)[0][0] if counts else None
    for video_id, points in landmarks.items():
        if points.shape[1] != expected:
            said = f"{METHOD_FILE} declares {declared}," if declared else "the set's other files have"
            raise WflwvError(paths[video_id], f"landmarks have {points.shape[1]} points, but {said} {expected}")
    return landmarks


def prediction_set_scheme(method: MethodInfo, landmarks: dict[str, np.ndarray]) -> str:
    """The point scheme of a loaded prediction set: its method.json's "scheme", else the one of its point count."""
    return method.scheme or points_scheme(landmarks)


def points_scheme(landmarks: dict[str, np.ndarray]) -> str:
    """The point scheme of each video's landmarks (frames, N, 2), by their point count N."""
    return scheme_for_points(next(iter(landmarks.values())).shape[1]).name


def check_outside(path: Path, videos: VideoSet, video_id: str) -> None:
    """Refuse a prediction file that resolves (through symlinks) into the video set's ground truth, or is a hard link to it."""
    target, truth = path.resolve(), videos.landmarks_path(video_id)
    linked = target if target.is_relative_to(truth.parent.resolve()) else truth if truth.is_file() and target.samefile(truth) else None
    if linked is not None:
        raise WflwvError(path, f"is the video set's own file {linked}: a prediction set must not link to the ground truth")


def hold_missing(landmarks: np.ndarray) -> np.ndarray:
    """Frames without landmarks (any NaN) scored as holding the last frame's; before the first, the first frame's."""
    present = ~np.isnan(landmarks).any(axis=(1, 2))
    if not present.any():  # nothing to hold: every frame stays unpredicted
        return landmarks
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
