"""The WFLW-V layout: videos/<ID>.mp4, landmarks/<ID>.npy, bboxes/<ID>.npy and optional <split>_video_IDs.txt lists."""

import collections
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wflwv import io
from wflwv.data.video import probe, write_video
from wflwv.errors import WflwvError
from wflwv.schemes import normalisation_points, point_counts, scheme_for_points, zero_interocular


ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
MAX_ID_LENGTH = 128
SPLITS = ("hard", "easy")  # the WFLW-V lists <split>_video_IDs.txt
ID_RULE = "letters, digits, '_', '-' and '.' (not first)"


def is_valid_id(video_id: str) -> bool:
    return len(video_id) <= MAX_ID_LENGTH and ID_PATTERN.fullmatch(video_id) is not None


def validate_id(video_id: str) -> str:
    """An ID names files and is embedded in reports: at most MAX_ID_LENGTH letters, digits, '_', '-' and '.', not '.' first.

    So it holds no path separator, whitespace, control character, quote or angle bracket."""
    if len(video_id) > MAX_ID_LENGTH:
        raise WflwvError(None, f"video ID {video_id[:20]!r}... has {len(video_id)} characters, at most {MAX_ID_LENGTH}")
    if not ID_PATTERN.fullmatch(video_id):
        raise WflwvError(None, f"video ID {video_id!r} must be {ID_RULE}")
    return video_id


@dataclass(frozen=True)
class VideoItem:
    id: str
    frames_path: Path
    landmarks: np.ndarray  # (frames, N, 2) frame pixels, N the points of its scheme (98 WFLW, 68 iBUG)
    boxes: np.ndarray  # (frames, >=4) x1 y1 x2 y2 first
    n_frames: int
    fps: float


def variance_path(build: Path, video_id: str) -> Path:
    return Path(build) / "variance" / f"{validate_id(video_id)}.npy"


def load_array(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise WflwvError(path, f"no such {what} file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise WflwvError(path, f"not a readable .npy array ({error})") from None


def check_finite(path: Path, array: np.ndarray, what: str, allow_nan: bool = False) -> None:
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if bad.any():
        frame = int(np.flatnonzero(bad.reshape(len(array), -1).any(axis=1))[0])
        raise WflwvError(path, f"{what} of frame {frame} are {'infinite' if allow_nan else 'not finite'}")


def check_landmarks(path: Path, landmarks: np.ndarray) -> np.ndarray:
    """Landmarks of the right shape (a point scheme's count) and type; NaN marks a frame without ground truth (excluded
    from the scores and counted), in every point of the frame or in none; infinity is refused, and so is a frame whose
    outer eye corners coincide (no inter-ocular distance to normalise by)."""
    if landmarks.ndim != 3 or landmarks.shape[2] != 2 or landmarks.shape[1] not in point_counts():
        counts = " or ".join(map(str, point_counts()))
        raise WflwvError(path, f"landmarks have shape {landmarks.shape}, expected (frames, {counts} points, 2)")
    if not np.issubdtype(landmarks.dtype, np.floating):
        raise WflwvError(path, f"landmarks have dtype {landmarks.dtype}, expected floating point")
    check_finite(path, landmarks, "landmarks", allow_nan=True)
    missing = np.isnan(landmarks).any(axis=2)  # (frames, points)
    partial = missing.any(axis=1) & ~missing.all(axis=1)
    if partial.any():
        frame = int(np.flatnonzero(partial)[0])
        raise WflwvError(path, f"landmarks of frame {frame}: {int(missing[frame].sum())} of {landmarks.shape[1]} points are NaN (a frame without ground truth is NaN in every point)")
    scheme = scheme_for_points(landmarks.shape[1])
    coincide = zero_interocular(landmarks, scheme)
    if coincide.any():
        frame = int(np.flatnonzero(coincide)[0])
        raise WflwvError(path, f"landmarks of frame {frame}: {normalisation_points(scheme, 'interocular')} coincide (zero inter-ocular distance)")
    return landmarks


def check_boxes(path: Path, boxes: np.ndarray) -> np.ndarray:
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise WflwvError(path, f"boxes have shape {boxes.shape}, expected (frames, >=4) with x1 y1 x2 y2 first")
    if not np.issubdtype(boxes.dtype, np.number):
        raise WflwvError(path, f"boxes have dtype {boxes.dtype}, expected numbers")
    boxes = boxes.astype(np.float64)
    check_finite(path, boxes, "boxes")
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if empty.any():
        frame = int(np.flatnonzero(empty)[0])
        raise WflwvError(path, f"box of frame {frame} is empty: {boxes[frame, :4].tolist()} (x1 y1 x2 y2)")
    return boxes


def scheme_problems(videos: "VideoSet", point_counts_by_id: dict[str, int]) -> list[WflwvError]:
    """An error for each video whose landmarks' point count is not the one most of the set's have: one scheme per set."""
    if not point_counts_by_id:
        return []
    common = collections.Counter(point_counts_by_id.values()).most_common(1)[0][0]
    return [
        WflwvError(videos.landmarks_path(video_id), f"landmarks have {count} points, the set's other videos have {common} (one point scheme per set)")
        for video_id, count in point_counts_by_id.items()
        if count != common
    ]


def video_set_scheme(videos: "VideoSet", items: dict[str, VideoItem]) -> str:
    """The point scheme of the loaded videos of a set, all of which must have it."""
    problems = scheme_problems(videos, {video_id: item.landmarks.shape[1] for video_id, item in items.items()})
    if problems:
        raise problems[0]
    return scheme_for_points(next(iter(items.values())).landmarks.shape[1]).name


class VideoSet:
    """A folder in the WFLW-V layout."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def split_path(self, split: str) -> Path:
        return self.root / f"{validate_id(split)}_video_IDs.txt"

    def has_split(self, split: str) -> bool:
        return self.split_path(split).is_file()

    def ids(self, split: str | None = None) -> list[str]:
        """All IDs with a video, sorted; or the IDs listed for a split ("hard", "easy"), in the list's order."""
        if split is None:
            # Names starting with a dot are temporary files of writes in progress.
            paths = sorted(p for p in (self.root / "videos").glob("*.mp4") if not p.name.startswith("."))
            for path in paths:
                if not is_valid_id(path.stem):
                    raise WflwvError(path, f"the file name is not a video ID: at most {MAX_ID_LENGTH} {ID_RULE}")
            return [path.stem for path in paths]
        path = self.split_path(split)
        if not path.is_file():
            raise WflwvError(path, f"no such ID list for split {split!r}")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise WflwvError(path, f"not UTF-8 text (byte {error.start})") from None
        first_line: dict[str, int] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                video_id = validate_id(line.strip())
            except WflwvError as error:
                raise WflwvError(path, f"line {number}: {error.problem}") from None
            if video_id in first_line:
                raise WflwvError(path, f"line {number}: {video_id} is listed twice (first on line {first_line[video_id]})")
            first_line[video_id] = number
        if not first_line:
            raise WflwvError(path, "lists no video IDs")
        return list(first_line)

    def splits(self) -> dict[str, list[str]]:
        """The IDs of each split with a list (hard, easy), or {"all": every ID} where there is none."""
        return {split: self.ids(split) for split in SPLITS if self.has_split(split)} or {"all": self.ids()}

    def input_digests(self, video_id: str) -> dict[str, str]:
        """Digests of the files a video's predictions and scores depend on."""
        return {"video": io.file_digest(self.video_path(video_id)), "boxes": io.file_digest(self.boxes_path(video_id)), "landmarks": io.file_digest(self.landmarks_path(video_id))}

    def video_path(self, video_id: str) -> Path:
        return self.root / "videos" / f"{validate_id(video_id)}.mp4"

    def landmarks_path(self, video_id: str) -> Path:
        return self.root / "landmarks" / f"{validate_id(video_id)}.npy"

    def boxes_path(self, video_id: str) -> Path:
        return self.root / "bboxes" / f"{validate_id(video_id)}.npy"

    def load_landmarks(self, video_id: str) -> np.ndarray:
        """(frames, N, 2) float, frame pixels: N the points of the set's scheme (98 WFLW, 68 iBUG)."""
        path = self.landmarks_path(video_id)
        return check_landmarks(path, load_array(path, "landmarks"))

    def load_boxes(self, video_id: str) -> np.ndarray:
        """(frames, >=4) float64, x1 y1 x2 y2 first."""
        path = self.boxes_path(video_id)
        return check_boxes(path, load_array(path, "boxes"))

    def load(self, video_id: str) -> VideoItem:
        """Landmarks, boxes and video facts, checked to cover the same frames."""
        landmarks, boxes = self.load_landmarks(video_id), self.load_boxes(video_id)
        info = probe(self.video_path(video_id))
        problem = next(self.frame_count_problems(video_id, info.n_frames, landmarks, boxes), None)
        if problem:
            raise problem
        return VideoItem(video_id, self.video_path(video_id), landmarks, boxes, info.n_frames, info.fps)

    def frame_count_problems(self, video_id: str, n_frames: int, landmarks: np.ndarray, boxes: np.ndarray) -> Iterator[WflwvError]:
        """An error for each of landmarks and boxes whose frame count is not the video's."""
        for path, what, count in ((self.landmarks_path(video_id), "landmarks", len(landmarks)), (self.boxes_path(video_id), "boxes", len(boxes))):
            if count != n_frames:
                yield WflwvError(path, f"video has {n_frames} frames, {what} have {count}")

    def write(self, video_id: str, frames: Iterable[np.ndarray], landmarks: np.ndarray, boxes: np.ndarray, fps: float) -> None:
        """Write one item's three files, each atomically; the video, which makes the ID visible to ids(), goes last."""
        landmarks_path, boxes_path, video_path = self.landmarks_path(video_id), self.boxes_path(video_id), self.video_path(video_id)
        landmarks = check_landmarks(landmarks_path, np.asarray(landmarks))
        boxes = check_boxes(boxes_path, np.asarray(boxes))
        if len(boxes) != len(landmarks):
            raise WflwvError(boxes_path, f"landmarks have {len(landmarks)} frames, boxes have {len(boxes)}")
        with io.atomic_path(video_path) as tmp:
            n_frames = write_video(tmp, frames, fps)
            if n_frames != len(landmarks):
                raise WflwvError(video_path, f"video has {n_frames} frames, landmarks have {len(landmarks)}")
            io.save_npy(landmarks_path, landmarks)
            io.save_npy(boxes_path, boxes)

    def write_split(self, name: str, ids: Sequence[str]) -> None:
        io.save_text(self.split_path(name), "".join(f"{validate_id(video_id)}\n" for video_id in ids))
