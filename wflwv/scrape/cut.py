"""Frame-accurate windows: decode the downloaded video, re-encode exactly the requested frames, count them.

A section download (or a stream copy) cuts at key frames, so the window would start early and hold
the wrong number of frames; decoding from the first frame and re-encoding the window does not.
Frame indices are those of the decoded frames, in decoding order, from 0.

The cut is one run of the ffmpeg binary (imageio-ffmpeg's), built with ffmpeg-python: the `select`
filter keeps decoded frames start..end, and decoding stops once they are written. No frame crosses
into Python, which makes it faster than decoding to RGB with PyAV and encoding back
(benchmarks/cut.py).
"""

import contextlib
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import ffmpeg
import imageio_ffmpeg
import numpy as np

from wflwv import io
from wflwv.data.video import VideoInfo, iter_frames, probe
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
        encode_window(source, window, facts.fps, tmp)
        found = probe(tmp).n_frames
        if found != expected:
            raise WflwvError(out, f"cut holds {found} frames, the window {expected}")
    return facts


def encode_window(source: Path, window: tuple[int, int], fps: float, out: Path, crf: int = 23) -> None:
    """Decoded frames start..end of `source` as H.264 (libx264, yuv420p) mp4 at `fps`, as write_video
    writes them; an odd width or height gets one black column or row at the right or bottom."""
    start, end = window
    rate = Fraction(fps).limit_denominator(1001)
    video = (
        ffmpeg.input(str(source)).video
        .filter("select", f"between(n,{start},{end})")
        .filter("setpts", f"N*{rate.denominator}/{rate.numerator}/TB")  # the window's frames, evenly spaced from 0
        .filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
    )
    options = {"vcodec": "libx264", "pix_fmt": "yuv420p", "crf": crf, "r": str(rate), "frames:v": end - start + 1, "format": "mp4"}
    try:
        ffmpeg.output(video, str(out), **options).overwrite_output().global_args("-nostdin", "-v", "error").run(cmd=imageio_ffmpeg.get_ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as error:
        raise WflwvError(source, f"ffmpeg could not cut frames {start}-{end}: {error.stderr.decode(errors='replace').strip().splitlines()[-1:]}") from None


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
