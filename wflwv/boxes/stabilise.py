"""Stable boxes: from landmarks to boxes, smoothed over time, bootstrapped with a landmark predictor.

MTCNN's boxes jump from frame to frame, and a crop that jumps makes the landmarks predicted on it
jump too. As the paper's authors did, the boxes are rebuilt from the landmarks predicted on the
current boxes (their tight box, mapped to the models' box convention), smoothed over time, and the
process is repeated. The smoother is a Gaussian run offline over the whole video: symmetric, so it
has no lag, and without the side lobes of Savitzky-Golay's response, which let through much of
the frame-to-frame noise; on noisy synthetic landmarks it gave both less jitter and boxes closer to
the true ones than Savitzky-Golay at any window (the figures are in docs/boxes.md).
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from wflwv.boxes.calibration import Calibration, centre_size, tight_boxes
from wflwv.boxes.track import fill_gaps
from wflwv.data.video import probe

SMOOTHING_SECONDS = 0.1  # the Gaussian's standard deviation: 3 frames at 30 fps

Predictor = Callable[[Path, np.ndarray], np.ndarray]  # predict(video_path, boxes (frames, >=4)) -> landmarks (frames, 98, 2)


def smooth_boxes(boxes: np.ndarray, fps: float, seconds: float = SMOOTHING_SECONDS) -> np.ndarray:
    """Boxes (frames, 4) smoothed by a Gaussian of standard deviation `seconds` (0: unchanged)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return gaussian_filter1d(boxes, seconds * fps, axis=0, mode="nearest") if seconds > 0 else boxes


def landmark_boxes(landmarks: np.ndarray, calibration: Calibration) -> np.ndarray:
    """The model boxes (frames, 4) of landmarks (frames, 98, 2): their tight box, mapped."""
    return calibration.landmarks(tight_boxes(np.asarray(landmarks, dtype=np.float64)))


def box_jitter(boxes: np.ndarray) -> float:
    """How much boxes (frames, >=4) shake, in percent of the box side: the RMS over frames of the
    second difference of (centre x, centre y, side), side = max(width, height) as in the crop,
    divided by the side. A box moving at constant speed has none; NaN with fewer than 3 frames."""
    if len(boxes) < 3:
        return float("nan")
    centre, size = centre_size(boxes)
    side = size.max(axis=1)
    acceleration = np.diff(np.column_stack([centre, side]), n=2, axis=0) / side[1:-1, None]
    return float(100 * np.sqrt(np.mean(np.sum(acceleration**2, axis=1))))


def stabilised_boxes(landmarks: np.ndarray, face: np.ndarray, fps: float, calibration: Calibration, seconds: float = SMOOTHING_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """The model boxes (frames, 4) of landmarks, frames without a face (face False) taking the boxes
    around them (all frames if none has one); returned before and after smoothing."""
    raw, _ = fill_gaps(landmark_boxes(landmarks, calibration), face if face.any() else ~face, 0)
    return raw, smooth_boxes(raw, fps, seconds)


def bootstrap_boxes(
    video_path: str | Path,
    boxes: np.ndarray,
    predict: Predictor,
    rounds: int,
    calibration: Calibration | None = None,
    seconds: float = SMOOTHING_SECONDS,
) -> np.ndarray:
    """`rounds` rounds of: landmarks = predict(video, boxes), boxes = the smoothed model boxes of
    those landmarks. Boxes (frames, >=4); a fifth column, if any, is the face flag of the boxes
    file: frames flagged 0 take the boxes around them. Extra columns are kept as they are."""
    video_path = Path(video_path)
    calibration = calibration or Calibration.load()
    fps = probe(video_path).fps
    boxes = np.array(boxes, dtype=np.float64)
    face = boxes[:, 4] > 0 if boxes.shape[1] > 4 else np.ones(len(boxes), dtype=bool)
    for _ in range(rounds):
        boxes[:, :4] = stabilised_boxes(predict(video_path, boxes), face, fps, calibration, seconds)[1]
    return boxes
