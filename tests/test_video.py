import subprocess
import types
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
from conftest import write_sideways

from wflwv.data.video import VideoInfo, iter_frames, probe, read_video, write_video
from wflwv.errors import WflwvError


def moving_square(n_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A grey gradient with a bright 10x10 square moving 2 px right per frame."""
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    frames[...] = np.linspace(40, 120, width, dtype=np.uint8)[None, None, :, None]
    for t in range(n_frames):
        frames[t, 10:20, 4 + 2 * t : 14 + 2 * t] = (250, 200, 30)
    return frames


def square_left_edge(frame: np.ndarray) -> int:
    return int(np.flatnonzero(frame[15, :, 0] > 200)[0])


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return moving_square(20)


@pytest.fixture(scope="module")
def video(tmp_path_factory, frames) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    assert write_video(path, frames, fps=10, crf=18) == len(frames)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def test_write_then_read_round_trip(video, frames):
    assert probe(video) == VideoInfo(n_frames=20, fps=10.0, width=64, height=48)
    decoded = read_video(video)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames).mean() < 3
    assert [square_left_edge(f) for f in decoded] == [4 + 2 * t for t in range(20)]


def test_iter_frames_streams_the_same_frames(video):
    stream = iter_frames(video)
    assert isinstance(stream, types.GeneratorType)
    assert np.array_equal(np.stack(list(stream)), read_video(video))


def test_the_mp4_is_h264_yuv420p(video):
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")


def test_odd_sizes_are_padded_by_copying_the_last_row_and_column(tmp_path):
    frames = moving_square(3, height=33, width=31)
    frames[:, :, -1] = (0, 0, 255)
    frames[:, -1, :-1] = (255, 255, 255)
    write_video(tmp_path / "odd.mp4", frames, fps=5, crf=0)
    assert probe(tmp_path / "odd.mp4") == VideoInfo(n_frames=3, fps=5.0, width=32, height=34)
    decoded = read_video(tmp_path / "odd.mp4").astype(int)
    assert np.abs(decoded[:, :33, :31] - frames).mean() < 3
    assert np.abs(decoded[:, 5:30, 31] - (0, 0, 255)).max() < 40  # the copied column (chroma is shared by 2x2 pixels)
    assert np.abs(decoded[:, 33, 5:25] - 255).max() < 20  # the copied row


def test_ntsc_frame_rate_survives(tmp_path):
    write_video(tmp_path / "ntsc.mp4", moving_square(4), fps=30000 / 1001)
    assert probe(tmp_path / "ntsc.mp4").fps == pytest.approx(29.97, abs=1e-3)


def test_frame_count_of_a_cut_video_ignores_the_frames_its_edit_list_drops(video, tmp_path):
    cut = tmp_path / "cut.mp4"
    ffmpeg("-ss", "0.75", "-i", str(video), "-c", "copy", str(cut))  # stream copy: an edit list trims the first frames
    with av.open(str(cut)) as container:
        header_count = container.streams.video[0].frames
    decoded = read_video(cut)
    assert probe(cut).n_frames == len(decoded) < header_count == 20
    assert square_left_edge(decoded[0]) == 4 + 2 * (20 - len(decoded))  # the last frames are the ones kept


def assert_unreadable(path: Path, problem: str) -> None:
    for read in (probe, read_video):
        with pytest.raises(WflwvError, match=problem) as error:
            read(path)
        assert error.value.path == str(path)


def test_missing_file(tmp_path):
    assert_unreadable(tmp_path / "absent.mp4", "no such video file")


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n")
    assert_unreadable(path, "not a video file")


def test_audio_only_file(tmp_path):
    path = tmp_path / "sound.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "aac", str(path))
    assert_unreadable(path, "has no video stream")


def test_mp4_truncated_to_half_its_bytes(video, tmp_path):
    path = tmp_path / "half.mp4"
    data = video.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_unreadable(path, "truncated or corrupt mp4")


def test_truncated_mp4_with_its_index_first(video, tmp_path):
    faststart = tmp_path / "faststart.mp4"
    ffmpeg("-i", str(video), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    with av.open(str(faststart)) as container:
        packet_starts = [p.pos for p in container.demux(container.streams.video[0]) if p.size]
    cut_inside_a_packet, cut_between_packets = tmp_path / "inside.mp4", tmp_path / "between.mp4"
    cut_inside_a_packet.write_bytes(data[: len(data) // 2])
    cut_between_packets.write_bytes(data[: packet_starts[12]])
    assert_unreadable(cut_inside_a_packet, "truncated or corrupt video")
    assert_unreadable(cut_between_packets, "its index lists 20 frames, the file holds 12")


def avi_with_dropped_frames(path: Path, frames: np.ndarray, stamps: list[int]) -> Path:
    """An MPEG-4 AVI of `frames` at these timestamps (1/25 s): AVI's muxer writes an empty index entry, a dropped frame, in each gap."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for image, stamp in zip(frames, stamps):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = stamp, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_an_avi_with_dropped_frames_is_its_decoded_frames_not_a_truncated_file(frames, tmp_path):
    path = avi_with_dropped_frames(tmp_path / "gaps.avi", frames[:6], [0, 1, 2, 5, 6, 7])
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 8  # the index counts the two dropped frames
    assert probe(path).n_frames == 6
    decoded = read_video(path)
    assert [square_left_edge(frame) for frame in decoded] == [square_left_edge(frame) for frame in frames[:6]]
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WflwvError):
        probe(cut)


def test_bad_frames_are_rejected_and_the_old_file_kept(video, tmp_path):
    target = tmp_path / "target.mp4"
    target.write_bytes(video.read_bytes())
    mixed = [np.zeros((48, 64, 3), np.uint8), np.zeros((48, 66, 3), np.uint8)]
    for frames, problem in [
        (mixed, r"frame 1 has shape \(48, 66, 3\), the first frame \(48, 64, 3\)"),
        ([np.zeros((48, 64, 3))], "frame 0 is float64"),
        ([np.zeros((48, 64), np.uint8)], r"expected uint8 RGB \(height, width, 3\)"),
        ([], "no frames to write"),
    ]:
        with pytest.raises(WflwvError, match=problem) as error:
            write_video(target, frames, fps=10)
        assert error.value.path == str(target)
    with pytest.raises(WflwvError, match="frame rate 0 is not a positive number"):
        write_video(target, mixed[:1], fps=0)
    assert target.read_bytes() == video.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.mp4"]


def test_frames_come_from_any_iterable(tmp_path, frames):
    assert write_video(tmp_path / "gen.mp4", (frame for frame in frames[:5]), fps=10) == 5
    assert probe(tmp_path / "gen.mp4").n_frames == 5


def test_a_video_stored_sideways_is_read_as_displayed(frames, tmp_path):
    sideways = write_sideways(tmp_path / "phone.mp4", frames, fps=10)
    assert probe(sideways) == VideoInfo(n_frames=20, fps=10.0, width=64, height=48)
    decoded = read_video(sideways)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 3  # the codec's rounding only
