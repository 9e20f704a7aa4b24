"""Boxes for a video of any length in bounded memory: the detection mode's steps, run as a stream.

The box stage (wflwv.boxes.stage) sees a whole video at once. Here each step sees a bounded window:
- the main face is chosen causally: the live track (seen in the last max_gap frames) with the
  highest score so far, scored as track_main_face scores tracks;
- gaps of at most max_gap frames between two detections of the main face are interpolated, so
  frames wait at most max_gap + 1 frames; a longer gap, or a change of main face, ends a face
  segment, and the frames between segments have no face;
- the Gaussian smoothing is exact: each box waits for the `radius` boxes after it (4 standard
  deviations, scipy's truncation), and a segment's ends are handled as smooth_boxes handles a video's.
Memory is that of the look-ahead, not of the video.
"""

import collections
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from wflwv.boxes.calibration import Calibration
from wflwv.boxes.detect import Detections, detect_stream
from wflwv.boxes.stabilise import smooth_boxes
from wflwv.boxes.stage import BoxSettings
from wflwv.boxes.track import Linker, TrackSettings, candidate_scores, confident, fill_gaps

Segmented = tuple[int | None, np.ndarray | None]  # (face segment, box) of a frame; (None, None) without a face


def stream_boxes(frames: Iterable[np.ndarray], frame_size: tuple[int, int], fps: float, settings: BoxSettings = BoxSettings(), calibration: Calibration | None = None) -> Iterator[Segmented]:
    """(face segment, model box x1 y1 x2 y2) of every frame (width, height) in order, or (None, None)."""
    calibration = calibration or Calibration.load(settings.calibration)
    detections = detect_stream(frames, settings.batch_size, settings.device, settings.max_side)
    segments = fill_short_gaps(main_face_stream(detections, frame_size, settings.track), settings.track.max_gap)
    calibrated = ((segment, None if box is None else calibration.detector(box)) for segment, box in segments)
    return smooth_segments(calibrated, fps, settings.smoothing)


def main_face_stream(detections: Iterable[Detections], frame_size: tuple[int, int], settings: TrackSettings = TrackSettings()) -> Iterator[tuple[int | None, np.ndarray | None]]:
    """(main track, its detection or None) of every frame; (None, None) while there is no track."""
    linker, scores = Linker(settings.min_iou, forget_after=settings.max_gap), {}
    for frame in detections:
        frame = confident(frame, settings)
        tracks = linker.step(frame.boxes)
        scores = {track: scores.get(track, 0.0) for track in linker.last}
        for track, score in zip(tracks, candidate_scores(frame, frame_size, settings)):
            scores[track] += score
        main = max(scores, key=scores.get, default=None)
        yield main, frame.boxes[tracks.index(main)] if main in tracks else None


def fill_short_gaps(frames: Iterable[tuple[int | None, np.ndarray | None]], max_gap: int) -> Iterator[Segmented]:
    """(face segment, box) of every frame: frames without a box between two detections of the same
    track at most max_gap frames apart are interpolated (fill_gaps), and at most max_gap frames at
    either end of the video take the nearest detection's box, as fill_gaps does; every other frame
    without a box has no face. Segments are numbered 0, 1, ..."""
    segment, track, last_box, waiting = -1, None, None, 0
    for frame_track, box in frames:
        if box is None:
            waiting += 1
            continue
        if frame_track == track and waiting <= max_gap:
            valid = np.r_[True, np.zeros(waiting, dtype=bool), True]
            filled, _ = fill_gaps(np.stack([last_box, *np.zeros((waiting, 4)), box]), valid, max_gap)
            yield from ((segment, filled_box) for filled_box in filled[1:-1])
        else:
            held = last_box is None and waiting <= max_gap  # the video's first detection, held before it
            segment, track = segment + 1, frame_track
            yield from itertools.repeat((segment, box) if held else (None, None), waiting)
        yield segment, box
        last_box, waiting = box, 0
    held = last_box is not None and waiting <= max_gap
    yield from itertools.repeat((segment, last_box) if held else (None, None), waiting)


def smooth_segments(frames: Iterable[Segmented], fps: float, seconds: float) -> Iterator[Segmented]:
    """Each face segment's boxes smoothed as smooth_boxes smooths a video's, with a look-ahead of
    4 standard deviations."""
    for segment, group in itertools.groupby(frames, key=lambda frame: frame[0]):
        boxes = (box for _, box in group)
        yield from (((segment, box) for box in sliding_smooth(boxes, fps, seconds)) if segment is not None else ((None, None) for _ in boxes))


def sliding_smooth(boxes: Iterable[np.ndarray], fps: float, seconds: float) -> Iterator[np.ndarray]:
    """smooth_boxes(all boxes) one box at a time, holding at most 2 * radius + 1 boxes."""
    radius = int(4.0 * seconds * fps + 0.5)
    window: collections.deque[np.ndarray] = collections.deque(maxlen=2 * radius + 1)
    received = emitted = 0
    for box in boxes:
        window.append(box)
        received += 1
        if received - 1 - emitted >= radius:
            yield smooth_boxes(np.stack(window), fps, seconds)[emitted - (received - len(window))]
            emitted += 1
    if emitted < received:
        smoothed = smooth_boxes(np.stack(window), fps, seconds)
        yield from smoothed[emitted - (received - len(window)):]
