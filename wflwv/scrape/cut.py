"""Frame-accurate windows: decode the downloaded video, re-encode exactly the requested frames, count them.

A section download (or a stream copy) cuts at key frames, so the window would start early and hold
the wrong number of frames; decoding from the first frame and re-encoding the window does not.
Frame indices are those of the decoded frames, in decoding order, from 0.
"""

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from wflwv import io
from wflwv.data.video import VideoInfo, iter_frames, probe, write_video
from wflwv.errors import WflwvError

FACE_PROBABILITY = 0.95


def cut_window(source: Path, window: tuple[int, int], out: Path) -> VideoInfo:
    """Write frames start..end (inclusive) of `source` to `out` at the source's frame rate, atomically,
    after checking that the written file decodes to exactly that many frames; returns the source's facts."""
    start, end = window
    facts = probe(source)
    if end >= facts.n_frames:
        raise WflwvError(source, f"window {start}-{end} ends past the last frame, {facts.n_frames - 1}")
    expected = end - start + 1
    with io.atomic_path(out) as tmp:
        with contextlib.closing(iter_frames(source)) as frames:
            written = write_video(tmp, itertools.islice(frames, start, end + 1), facts.fps)
        found = probe(tmp).n_frames
        if written != expected or found != expected:
            raise WflwvError(out, f"cut holds {found} frames ({written} written), the window {expected}")
    return facts


def find_face_window(source: Path, seconds: float, samples_per_second: float = 2.0, min_face: int = 40) -> tuple[int, int] | None:
    """The first window of `seconds` in which every sampled frame shows a face (MTCNN, probability
    >= 0.95, box side >= min_face pixels), as inclusive frame indices; None when there is none."""
    from facenet_pytorch import MTCNN

    facts = probe(source)
    length = max(1, round(seconds * facts.fps))
    step = max(1, round(facts.fps / samples_per_second))
    detector = MTCNN(device="cpu", min_face_size=min_face)

    def samples() -> Iterator[tuple[int, bool]]:
        with contextlib.closing(iter_frames(source)) as frames, one_torch_thread():
            for index, frame in enumerate(frames):
                if index % step == 0:
                    yield index, has_face(detector, frame, min_face)

    return first_window(samples(), length, facts.n_frames)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Concurrency comes from the executor, one video per CPU; torch's threads would only wait for each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def has_face(detector, frame: np.ndarray, min_face: int) -> bool:
    boxes, probabilities = detector.detect(frame)
    if boxes is None:
        return False
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return bool(((probabilities >= FACE_PROBABILITY) & (sides >= min_face)).any())


def first_window(samples: Iterable[tuple[int, bool]], length: int, n_frames: int) -> tuple[int, int] | None:
    """The first `length` frames, starting at a sample, whose samples all have a face; reads samples
    (index, face found), in order, only until the window is known."""
    start = None
    for index, face in samples:
        if start is not None and (start + length - 1 < index or face and start + length - 1 == index):
            return start, start + length - 1
        if not face:
            start = None
        elif start is None:
            start = index
    if start is not None and start + length <= n_frames:
        return start, start + length - 1
    return None
