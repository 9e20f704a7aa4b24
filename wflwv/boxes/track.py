"""The main face track of a video: detections linked frame to frame, short gaps filled.

Detections are linked into tracks by their overlap (IoU) with each track's previous box, greedily,
best overlap first; a track survives frames where its face is not found. Each track is scored by
the sum over its frames of how large, central and confident its boxes are, so the main face is the
one that is large, central and there for long: a distractor that is briefly larger or more
confident does not win, and one that is there throughout but small or off-centre does not either.
"""

from dataclasses import dataclass

import numpy as np

from wflwv.boxes.detect import Detections


@dataclass(frozen=True)
class TrackSettings:
    weight_size: float = 1.0  # box side over the frame's shorter side
    weight_centre: float = 0.5  # 1 at the frame centre, 0 at a corner
    weight_prob: float = 0.5  # MTCNN's detection probability
    min_iou: float = 0.2  # a detection overlapping a track's previous box less is not that track's face
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


class Linker:
    """Online linking: each frame's detections join the tracks whose last box they overlap most
    (greedy, best overlap first, at least min_iou) or start new tracks, numbered 0, 1, ... A track not
    seen for more than forget_after frames is forgotten (None: never), so memory stays bounded."""

    def __init__(self, min_iou: float, forget_after: int | None = None):
        self.min_iou, self.forget_after = min_iou, forget_after
        self.last: dict[int, tuple[int, np.ndarray]] = {}  # track -> (frame, box) where it was last seen
        self.n_tracks, self.frame = 0, -1

    def step(self, boxes: np.ndarray) -> list[int]:
        """The track of each of the next frame's boxes (n, 4)."""
        self.frame += 1
        if self.forget_after is not None:
            self.last = {track: seen for track, seen in self.last.items() if self.frame - seen[0] <= self.forget_after}
        known = list(self.last)
        overlaps = np.array([iou(self.last[track][1], boxes) for track in known]).reshape(len(known), len(boxes))
        assigned: list[int | None] = [None] * len(boxes)
        for flat in np.argsort(-overlaps, axis=None):
            row, candidate = np.unravel_index(flat, overlaps.shape)
            if overlaps[row, candidate] < self.min_iou:
                break
            if assigned[candidate] is None and known[row] not in assigned:
                assigned[candidate] = known[row]
        for candidate, track in enumerate(assigned):
            if track is None:
                assigned[candidate], self.n_tracks = self.n_tracks, self.n_tracks + 1
            self.last[assigned[candidate]] = (self.frame, boxes[candidate])
        return assigned


def link(detections: list[Detections], min_iou: float) -> list[dict[int, int]]:
    """Tracks as {frame: index of its detection in that frame}, frames in increasing order."""
    linker, tracks = Linker(min_iou), []
    for t, frame in enumerate(detections):
        for candidate, track in enumerate(linker.step(frame.boxes)):
            if track == len(tracks):
                tracks.append({})
            tracks[track][t] = candidate
    return tracks


def confident(detections: Detections, settings: TrackSettings) -> Detections:
    keep = detections.probs >= settings.min_prob
    return Detections(detections.boxes[keep], detections.probs[keep])


def track_main_face(detections: list[Detections], frame_size: tuple[int, int], settings: TrackSettings = TrackSettings()) -> Track | None:
    """The main face's track, or None when no frame has a candidate."""
    detections = [confident(d, settings) for d in detections]
    tracks = link(detections, settings.min_iou)
    if not tracks:
        return None
    scores = [candidate_scores(d, frame_size, settings) for d in detections]
    main = max(tracks, key=lambda track: sum(scores[t][candidate] for t, candidate in track.items()))
    detected = np.zeros(len(detections), dtype=bool)
    detected[list(main)] = True
    boxes = np.zeros((len(detections), 4))
    for t, candidate in main.items():
        boxes[t] = detections[t].boxes[candidate]
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
