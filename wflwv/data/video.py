"""Video files through PyAV: exact frame counts, streamed RGB frames, atomic H.264 mp4 writing."""

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from wflwv import io
from wflwv.errors import WflwvError


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int
    fps: float
    width: int
    height: int


@contextlib.contextmanager
def open_video(path: Path) -> Iterator[av.container.InputContainer]:
    """An input container with at least one video stream; errors name the file and what is wrong."""
    if not path.is_file():
        raise WflwvError(path, "no such video file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        raise WflwvError(path, f"{unreadable_kind(path)} (ffmpeg: {error.strerror})") from None
    with container:
        if not container.streams.video:
            raise WflwvError(path, "has no video stream")
        yield container


def unreadable_kind(path: Path) -> str:
    # An mp4 cut short loses the index written at its end, so ffmpeg reads it as it reads any non-video.
    with open(path, "rb") as f:
        is_mp4 = f.read(8)[4:] == b"ftyp"
    return "truncated or corrupt mp4" if is_mp4 else "not a video file"


def video_packets(path: Path, container: av.container.InputContainer) -> Iterator[av.Packet]:
    """Demuxed packets of the first video stream, the final flush packet included; raises where the file is cut short.

    Packets of a cut video's edit list that are decoded only to be dropped come with is_discard set.
    An index that lists more frames than the file holds is a cut file, unless the packets' timestamps
    span them: an AVI's dropped frames are empty index entries, which the demuxer skips, so the
    frames are those decoded, as OpenCV reads them too.
    """
    stream = container.streams.video[0]
    n_packets, first, last = 0, None, None  # the lowest and highest timestamp of a packet with data
    try:
        for packet in container.demux(stream):
            if packet.is_corrupt:
                raise WflwvError(path, f"truncated or corrupt video: packet {n_packets} is damaged")
            n_packets += packet.size > 0
            if packet.size > 0 and packet.pts is not None:
                first = packet.pts if first is None else min(first, packet.pts)
                last = packet.pts if last is None else max(last, packet.pts)
            yield packet
    except av.FFmpegError as error:
        raise WflwvError(path, f"corrupt video after {n_packets} packets (ffmpeg: {error.strerror})") from None
    if max(n_packets, spanned_frames(stream, first, last)) < stream.frames:
        raise WflwvError(path, f"truncated video: its index lists {stream.frames} frames, the file holds {n_packets}")


def spanned_frames(stream: av.video.stream.VideoStream, first: int | None, last: int | None) -> int:
    """How many frames the timestamps from first to last span at the stream's frame rate (0 where unknown)."""
    rate = stream.average_rate or stream.guessed_rate
    if first is None or not rate or not stream.time_base:
        return 0
    return round((last - first) * stream.time_base * rate) + 1


def probe(path: str | Path) -> VideoInfo:
    """Frame count, rate and displayed size of a video's first video stream.

    The frame count is that of the decoded frames, found by demuxing without decoding: the count in
    the container's header also includes the frames an edit list drops. The size is as displayed:
    a phone video stored sideways swaps width and height (see quarter_turns).
    """
    path = Path(path)
    with open_video(path) as container:
        n_frames = sum(packet.size > 0 and not packet.is_discard for packet in video_packets(path, container))
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = float(stream.average_rate or stream.guessed_rate)
    if quarter_turns(path) % 2:
        width, height = height, width
    return VideoInfo(n_frames, rate, width, height)


def quarter_turns(path: Path) -> int:
    """Counter-clockwise quarter turns (np.rot90's k) that its display matrix asks of the video's first frame."""
    return next((frame_turns(frame) for frame in decoded_frames(path)), 0)


def frame_turns(frame: av.VideoFrame) -> int:
    # ffmpeg's display rotation is counter-clockwise in degrees, as np.rot90's k counts quarter turns
    return round((frame.rotation or 0) / 90) % 4


def decoded_frames(path: str | Path) -> Iterator[av.VideoFrame]:
    """Every frame decoded, as stored (before its display rotation)."""
    path = Path(path)
    with open_video(path) as container:
        container.streams.video[0].thread_type = "AUTO"
        for packet in video_packets(path, container):
            try:
                frames = packet.decode()
            except av.FFmpegError as error:
                raise WflwvError(path, f"corrupt video: cannot decode packet at {packet.pts} (ffmpeg: {error.strerror})") from None
            yield from frames


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decoded frames as displayed, uint8 RGB (H, W, 3), one at a time: the display matrix's rotation applied."""
    # one converter for the whole video: VideoFrame.to_ndarray sets up a fresh swscale context for each
    # frame, 0.2 ms of a 640x360 frame's 0.37 ms conversion (benchmarks/RESULTS.md, the authors' loop)
    reformatter = VideoReformatter()
    for frame in decoded_frames(path):
        image = reformatter.reformat(frame, format="rgb24").to_ndarray()
        turns = frame_turns(frame)
        yield np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def count_decoded_frames(path: str | Path) -> int:
    """Frames decoded from the whole file: finds the damage that demuxing alone (probe) does not."""
    return sum(1 for _ in decoded_frames(path))


def read_video(path: str | Path) -> np.ndarray:
    """All frames, uint8 RGB (T, H, W, 3)."""
    frames = list(iter_frames(path))
    if not frames:
        raise WflwvError(path, "video has no frames")
    return np.stack(frames)


def check_frame(path: Path, frame: np.ndarray, index: int, expected_shape: tuple[int, ...]) -> tuple[int, ...]:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise WflwvError(path, f"frame {index} is {frame.dtype} of shape {frame.shape}, expected uint8 RGB (height, width, 3)")
    if frame.shape != expected_shape:
        raise WflwvError(path, f"frame {index} has shape {frame.shape}, the first frame {expected_shape}")
    return frame.shape


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, crf: int = 23) -> int:
    """Write uint8 RGB frames (H, W, 3) as an H.264 (libx264, yuv420p) mp4, atomically; returns the frame count.

    yuv420p needs an even width and height: an odd one gets one more column or row at the right or
    bottom, a copy of the last, so pixel coordinates stay those of the frames given.
    """
    path = Path(path)
    if not (np.isfinite(fps) and fps > 0):
        raise WflwvError(path, f"frame rate {fps} is not a positive number")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise WflwvError(path, "no frames to write")
    shape = check_frame(path, np.asarray(first), 0, np.shape(first))
    padding = ((0, shape[0] % 2), (0, shape[1] % 2), (0, 0))

    n_frames = 0
    with io.atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = shape[0] + shape[0] % 2, shape[1] + shape[1] % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in itertools.chain([first], frames):
            frame = np.asarray(frame)
            check_frame(path, frame, n_frames, shape)
            even = np.pad(frame, padding, mode="edge")
            container.mux(stream.encode(av.VideoFrame.from_ndarray(even, format="rgb24")))
            n_frames += 1
        container.mux(stream.encode(None))
    return n_frames
