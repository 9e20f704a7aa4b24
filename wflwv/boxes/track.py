"""The main face track of a video: detections linked frame to frame, short gaps filled.

Each frame's candidates are scored by how large, central and confident they are and by their
overlap with the track's previous box; the track starts from the best-scoring candidate of the
whole video and is followed forwards and backwards from there, so a distractor that is briefly
larger or more central than the main face does not steal the track once it is established.
"""

from dataclasses import dataclass

import numpy as np

from wflwv.boxes.detect import Detections


@dataclass(frozen=True)
class TrackSettings:
    weight_size: float = 1.0  # box side over the frame's shorter side
    weight_centre: float = 0.5  # 1 at the frame centre, 0 at a corner
    weight_prob: float = 0.5  # MTCNN's detection probability
    weight_iou: float = 2.0  # overlap with the track's previous box
    min_iou: float = 0.2  # a candidate overlapping the previous box less is another face (or a false one)
    min_prob: float = 0.8  # candidates below are ignored
    max_gap: int = 10  # frames without a detection filled by interpolation; longer gaps are marked as no face


@dataclass(frozen=True)
class Track:
    boxes: np.ndarray  # (frames, 4) x1 y1 x2 y2, interpolated or held where nothing was detected
    detected: np.ndarray  # (frames,) bool: the box is this frame's detection
    face: np.ndarray  # (frames,) bool: detected, or inside a gap short enough to be filled


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with each of boxes (n, 4)."""
    corner_low, corner_high = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:4], boxes[:, 2:4])
    overlap = np.prod(np.clip(corner_high - corner_low, 0, None), axis=1)
    area = np.prod(box[2:4] - box[:2])
    areas = np.prod(boxes[:, 2:4] - boxes[:, :2], axis=1)
    return overlap / (area + areas - overlap)


def candidate_scores(detections: Detections, frame_size: tuple[int, int], settings: TrackSettings) -> np.ndarray:
    """Size, centrality and probability score of each candidate of a frame (width, height)."""
    boxes = detections.boxes
    width, height = frame_size
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    offset = np.linalg.norm((centre - [width / 2, height / 2]) / [width / 2, height / 2], axis=1) / np.sqrt(2)
    return settings.weight_size * side / min(width, height) + settings.weight_centre * (1 - offset) + settings.weight_prob * detections.probs


def track_main_face(detections: list[Detections], frame_size: tuple[int, int], settings: TrackSettings = TrackSettings()) -> Track | None:
    """The main face's track, or None when no frame has a candidate."""
    detections = [Detections(d.boxes[d.probs >= settings.min_prob], d.probs[d.probs >= settings.min_prob]) for d in detections]
    scores = [candidate_scores(d, frame_size, settings) for d in detections]
    best = [s.max() if len(s) else -np.inf for s in scores]
    seed = int(np.argmax(best))
    if not np.isfinite(best[seed]):
        return None
    chosen: dict[int, np.ndarray] = {seed: detections[seed].boxes[np.argmax(scores[seed])]}
    for order in (range(seed + 1, len(detections)), range(seed - 1, -1, -1)):
        previous, last_seen = chosen[seed], seed
        for t in order:
            if not len(detections[t].probs):
                continue
            overlap = iou(previous, detections[t].boxes)
            lost = abs(t - last_seen) > settings.max_gap  # the face left for a while: take whichever face is best now
            total = scores[t] + settings.weight_iou * overlap
            allowed = np.ones_like(overlap, dtype=bool) if lost else overlap >= settings.min_iou
            if allowed.any():
                pick = int(np.argmax(np.where(allowed, total, -np.inf)))
                chosen[t] = previous = detections[t].boxes[pick]
                last_seen = t
    detected = np.zeros(len(detections), dtype=bool)
    detected[list(chosen)] = True
    boxes = np.zeros((len(detections), 4))
    boxes[detected] = np.stack([chosen[t] for t in np.flatnonzero(detected)])
    boxes, face = fill_gaps(boxes, detected, settings.max_gap)
    return Track(boxes, detected, face)


def fill_gaps(boxes: np.ndarray, valid: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of invalid frames replaced, interpolated linearly between the valid frames around them
    (held before the first and after the last); returns the boxes and where they hold a face: valid
    frames and gaps of at most max_gap frames (at the video's ends too)."""
    frames = np.arange(len(boxes))
    known = np.flatnonzero(valid)
    filled = np.stack([np.interp(frames, known, column) for column in boxes[known].T], axis=1)
    face = valid.copy()
    for start, stop in runs(~valid):
        face[start:stop] = stop - start <= max_gap
    return filled, face


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
