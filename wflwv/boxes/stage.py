"""The `wflwv boxes` stage: bboxes/<ID>.npy for every video of a build folder.

Two modes, each a resumable per-video stage (wflwv.pipeline.stage):
- detection (stages/boxes): MTCNN on every frame, the main face tracked, short gaps filled,
  boxes mapped to the models' convention and smoothed;
- bootstrap round N (stages/boxes_roundN): boxes rebuilt from the labels, landmarks/<ID>.npy, of a
  source build folder: the build itself (in place, as `wflwv boxes --from-landmarks` does) or, in a
  pipeline, the previous round's own folder, so that no round overwrites what an earlier one read.

A video is redone when what determines its boxes changes (wflwv.pipeline.stage): its video file,
the calibration file, the settings that change boxes (max_side, min_face, smoothing, the tracking
settings) and, in a bootstrap round, its labels.

bboxes/<ID>.npy is (frames, 5): x1 y1 x2 y2 in frame pixels, then 1 where the frame shows the main
face (detected, or inside a gap of at most max_gap frames) and 0 where it does not (the box there is
interpolated from the frames around it). Each row reports the box jitter (see box_jitter) before
smoothing and after.
"""

import dataclasses
import functools
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import pandas as pd

from wflwv import io
from wflwv.boxes.calibration import DEFAULT_CALIBRATION, Calibration
from wflwv.boxes.detect import detect_video
from wflwv.boxes.stabilise import SMOOTHING_SECONDS, box_jitter, smooth_boxes, stabilised_boxes
from wflwv.boxes.track import TrackSettings, runs, track_main_face
from wflwv.data.video import probe
from wflwv.data.videoset import VideoSet, load_array
from wflwv.errors import WflwvError
from wflwv.pipeline.stage import Executor, Stage, run_stage


@dataclass(frozen=True)
class BoxSettings:
    device: str = "cpu"
    batch_size: int = 16  # frames per MTCNN call
    max_side: int | None = 640  # frames larger than this are detected downscaled
    min_face: float = 0.5  # share of frames that must show the main face
    smoothing: float = SMOOTHING_SECONDS
    calibration: Path | Traversable = DEFAULT_CALIBRATION
    track: TrackSettings = field(default_factory=TrackSettings)


def detect_item(build: Path, settings: BoxSettings, video_id: str) -> dict:
    """Detection mode for one video: writes bboxes/<ID>.npy, returns the stage row."""
    videos = VideoSet(build)
    path = videos.video_path(video_id)
    info = probe(path)
    calibration = Calibration.load(settings.calibration)
    detections = detect_video(path, settings.batch_size, settings.device, settings.max_side)
    if len(detections) != info.n_frames:
        raise WflwvError(path, f"{len(detections)} frames decoded, {info.n_frames} expected")
    track = track_main_face(detections, (info.width, info.height), settings.track)
    face_frames = 0 if track is None else int(track.face.sum())
    if face_frames < settings.min_face * info.n_frames:
        raise WflwvError(path, f"no usable face track: the main face is on {face_frames} of {info.n_frames} frames, at least {settings.min_face:.0%} needed")
    raw = calibration.detector(track.boxes)
    boxes = smooth_boxes(raw, info.fps, settings.smoothing)
    io.save_npy(videos.boxes_path(video_id), np.column_stack([boxes, track.face]))
    return {
        "frames": info.n_frames,
        "detected": int(track.detected.sum()),
        "filled": int((track.face & ~track.detected).sum()),
        "no_face": info.n_frames - face_frames,
        "no_face_frames": ranges_text(~track.face),
        "jitter_before": box_jitter(raw),
        "jitter_after": box_jitter(boxes),
    }


def bootstrap_item(build: Path, settings: BoxSettings, source: Path, video_id: str) -> dict:
    """One bootstrap round for one video: boxes from SOURCE's landmarks/<ID>.npy, smoothed, into BUILD's bboxes;
    the face flags of SOURCE's boxes are kept, and frames without a face take the boxes around them."""
    videos, previous = VideoSet(build), VideoSet(source)
    info = probe(videos.video_path(video_id))
    landmarks = previous.load_landmarks(video_id)
    if len(landmarks) != info.n_frames:
        raise WflwvError(previous.landmarks_path(video_id), f"video has {info.n_frames} frames, landmarks have {len(landmarks)}")
    face = previous_face_flags(previous.boxes_path(video_id), info.n_frames)
    raw, boxes = stabilised_boxes(landmarks, face, info.fps, Calibration.load(settings.calibration), settings.smoothing)
    io.save_npy(videos.boxes_path(video_id), np.column_stack([boxes, face]))
    return {"frames": info.n_frames, "no_face": int((~face).sum()), "jitter_before": box_jitter(raw), "jitter_after": box_jitter(boxes)}


def detect_inputs(build: Path, settings: BoxSettings, video_id: str) -> dict:
    """What determines a video's detected boxes: the video, the calibration and the settings that change them."""
    changing = {"max_side": settings.max_side, "min_face": settings.min_face, "smoothing": settings.smoothing, "track": dataclasses.asdict(settings.track)}
    return {"video": VideoSet(build).video_path(video_id), "calibration": Path(settings.calibration), **changing}


def bootstrap_inputs(build: Path, settings: BoxSettings, source: Path, video_id: str) -> dict:
    """What determines a bootstrap round's boxes: the video, its labels, the calibration, the smoothing, and the source's
    boxes (their face flags) when they are not the ones being replaced."""
    videos, previous = VideoSet(build), VideoSet(source)
    replaced = {} if source == build else {"previous_boxes": previous.boxes_path(video_id)}
    return {"video": videos.video_path(video_id), "landmarks": previous.landmarks_path(video_id), "calibration": Path(settings.calibration),
            "smoothing": settings.smoothing} | replaced


def previous_face_flags(path: Path, n_frames: int) -> np.ndarray:
    """The face column of an existing boxes file of the same length; every frame when there is none."""
    boxes = load_array(path, "boxes") if path.is_file() else np.zeros((0, 0))
    if boxes.shape == (n_frames, 5):
        return boxes[:, 4] > 0
    return np.ones(n_frames, dtype=bool)


def ranges_text(mask: np.ndarray) -> str:
    """Runs of True frames as "start-end" (inclusive), comma-separated; "" when there are none."""
    return ",".join(f"{start}-{stop - 1}" for start, stop in runs(mask))


def run_boxes(build: str | Path, settings: BoxSettings = BoxSettings(), from_landmarks: bool = False, round_number: int = 1, executor: Executor = Executor(),
              force: bool = False, source: Path | None = None) -> pd.DataFrame:
    """Run detection (or bootstrap round `round_number` from the labels and boxes of `source`, default `build`) on every
    video of `build`; returns the manifest."""
    build = Path(build)
    source = build if source is None else Path(source)
    ids = VideoSet(build).ids()
    if not ids:
        raise WflwvError(build / "videos", "no videos (<ID>.mp4) to find boxes in")
    if round_number < 1:
        raise WflwvError(None, f"bootstrap round must be 1 or more, got {round_number}")
    Calibration.load(settings.calibration)  # a missing calibration stops the run, not every item
    if from_landmarks:
        name, process, inputs = f"boxes_round{round_number}", functools.partial(bootstrap_item, build, settings, source), functools.partial(bootstrap_inputs, build, settings, source)
    else:
        name, process, inputs = "boxes", functools.partial(detect_item, build, settings), functools.partial(detect_inputs, build, settings)
    resources = {"num_gpus": 1} if settings.device.startswith("cuda") and not from_landmarks else {}
    stage = Stage(name, build / "stages" / name, process, resources, inputs, (build / "bboxes",))
    return run_stage(stage, ids, executor, force)


def summary(manifest: pd.DataFrame) -> str:
    """Counts and the median jitter before and after smoothing (the failures' reasons are in the manifest)."""
    done = manifest[manifest["status"] == "done"]
    lines = [f"{len(done)} of {len(manifest)} videos have boxes"]
    if len(done):
        before, after = done["jitter_before"].median(), done["jitter_after"].median()
        lines.append(f"box jitter (median over videos, % of box side): {before:.3f} before smoothing, {after:.3f} after ({before / after:.1f}x less)")
    return "\n".join(lines)
