"""Face detection on every frame of a video with MTCNN (facenet-pytorch, weights inside the package)."""

import functools
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wflwv.data.video import iter_frames


@dataclass(frozen=True)
class Detections:
    """Every candidate face of one frame, in frame pixels."""

    boxes: np.ndarray  # (n, 4) x1 y1 x2 y2
    probs: np.ndarray  # (n,)

    @classmethod
    def none(cls) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros(0))


@functools.lru_cache(maxsize=2)
def load_detector(device: str = "cpu"):
    """One MTCNN per process and device, returning every face it finds."""
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device=device)


def detect_frames(frames: list[np.ndarray], device: str = "cpu", max_side: int | None = None) -> list[Detections]:
    """Detections of a batch of same-sized RGB frames; frames whose longer side exceeds max_side are
    detected at that size (faster on large videos) and their boxes scaled back to frame pixels."""
    scale = 1.0
    if max_side is not None and max(frames[0].shape[:2]) > max_side:
        scale = max_side / max(frames[0].shape[:2])
        size = (round(frames[0].shape[1] * scale), round(frames[0].shape[0] * scale))
        frames = [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames]
    boxes, probs = load_detector(device).detect(np.stack(frames))
    return [
        Detections.none() if frame_boxes is None else Detections(np.asarray(frame_boxes, dtype=np.float64) / scale, np.asarray(frame_probs, dtype=np.float64))
        for frame_boxes, frame_probs in zip(boxes, probs)
    ]


def detect_stream(frames: Iterable[np.ndarray], batch_size: int = 16, device: str = "cpu", max_side: int | None = None) -> Iterator[Detections]:
    """Detections of every frame, pulled lazily and detected in batches of batch_size."""
    frames = iter(frames)
    while batch := list(itertools.islice(frames, batch_size)):
        yield from detect_frames(batch, device, max_side)


def detect_video(path: str | Path, batch_size: int = 16, device: str = "cpu", max_side: int | None = None) -> list[Detections]:
    """Detections of every frame of a video, decoded lazily and detected in batches of batch_size."""
    return list(detect_stream(iter_frames(path), batch_size, device, max_side))
