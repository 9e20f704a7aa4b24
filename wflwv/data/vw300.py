"""The 300-VW layout: <ID>/vid.avi and <ID>/annot/000001.pts, 000002.pts... (frame numbers 1-based, 6 digits),
68 iBUG points per frame (Shen et al., "The First Facial Landmark Tracking in-the-Wild Challenge", ICCV-W 2015).

A .pts file is `version: 1`, `n_points: 68`, `{`, one `x y` line per point, `}`. The reader takes the real files'
quirks: CRLF line ends, runs of spaces or tabs ("n_points:  68"), blank lines and trailing whitespace. Its
coordinates are 1-based (the top-left pixel's centre is (1, 1)), as menpo, the 300-VW authors' library, reads
them; wflwv's are 0-based, so reading subtracts 1 and writing adds 1.

Frames and annotations: frame n of vid.avi (1-based) is scored where annot/<n>.pts exists. A frame without one
has no ground truth (NaN: not scored, counted as excluded), and annotations numbered past the video's last
frame are ignored (the real set has videos whose annotation count is not their frame count); `wflwv verify`
lists both. Boxes: 300-VW has none, so each frame's box is its ground truth's tight box, held from the nearest
annotated frame where a frame has no annotation.

Splits: the hard/easy ID lists of WFLW-V (<split>_video_IDs.txt) where the folder has them, as `wflwv export
--format 300vw` writes; else the official test categories 1-3 of the IDs present; else all videos.
"""

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.bitstream import BitStreamFilterContext

from wflwv import io
from wflwv.data.video import open_video, probe, quarter_turns
from wflwv.data.videoset import SPLITS, VideoItem, VideoSet, check_boxes, is_valid_id, validate_id
from wflwv.errors import WflwvError
from wflwv.schemes import get_scheme, normalisation_points, zero_interocular

SCHEME = get_scheme("ibug68")
PTS_ORIGIN = 1.0  # .pts pixel coordinates minus wflwv's
VIDEO_NAME, ANNOT_DIR = "vid.avi", "annot"
PTS_NAME = re.compile(r"(\d{6})\.pts")

# The official test split: 31, 19 and 14 videos (category 1: laboratory and naturalistic well-lit conditions,
# 2: real-world human-computer interaction, 3: arbitrary conditions); the other 50 videos are for training.
CATEGORIES = {
    "category1": "114 124 125 126 150 158 401 402 505 506 507 508 509 510 511 514 515 518 519 520 521 522 524 525 537 538 540 541 546 547 548".split(),
    "category2": "203 208 211 212 213 214 218 224 403 404 405 406 407 408 409 412 550 551 553".split(),
    "category3": "410 411 516 517 526 528 529 530 531 533 557 558 559 562".split(),
}


def read_pts(path: Path) -> np.ndarray:
    """The (68, 2) points of a .pts file, wflwv pixels; a malformed file raises WflwvError naming it and the problem."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise WflwvError(path, f"not a text .pts file (byte {error.start})") from None
    lines = [(number, line.split()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    header = {fields[0].rstrip(":"): fields[1:] for _, fields in lines[:2] if fields[0].endswith(":")}
    if header.get("version") != ["1"]:
        raise WflwvError(path, "the header does not start with 'version: 1'")
    if len(header.get("n_points", [])) != 1 or not header["n_points"][0].isdigit():
        raise WflwvError(path, "the header has no 'n_points: N' line after 'version: 1'")
    declared = int(header["n_points"][0])
    if declared != SCHEME.n_points:
        raise WflwvError(path, f"n_points is {declared}, expected {SCHEME.n_points} (iBUG 68 points)")
    body = lines[2:]
    if not body or body[0][1] != ["{"]:
        raise WflwvError(path, "no '{' line after the header")
    if body[-1][1] != ["}"]:
        raise WflwvError(path, "does not end with a '}' line")
    rows = body[1:-1]
    if len(rows) != declared:
        raise WflwvError(path, f"has {len(rows)} points between the braces, n_points says {declared}")
    points = np.array([_point(path, number, fields) for number, fields in rows])
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if len(bad):
        raise WflwvError(path, f"line {rows[bad[0]][0]}: point {bad[0] + 1} is not finite")
    return points - PTS_ORIGIN


def read_annotation(path: Path) -> np.ndarray:
    """read_pts, refusing a face whose outer eye corners coincide (no inter-ocular distance to normalise by)."""
    points = read_pts(path)
    if zero_interocular(points, SCHEME):
        raise WflwvError(path, f"{normalisation_points(SCHEME, 'interocular', first=1)} (the outer eye corners) coincide")
    return points


def _point(path: Path, number: int, fields: list[str]) -> tuple[float, float]:
    try:
        x, y = map(float, fields)
    except ValueError:
        raise WflwvError(path, f"line {number}: expected two numbers 'x y', found {' '.join(fields)!r}") from None
    return x, y


def format_pts(points: np.ndarray) -> str:
    """A .pts file's text for (68, 2) points in wflwv pixels (written 1-based, as the real files are)."""
    rows = "".join(f"{x:.3f} {y:.3f}\n" for x, y in np.asarray(points, dtype=float) + PTS_ORIGIN)
    return f"version: 1\nn_points:  {len(points)}\n{{\n{rows}}}\n"


def pts_name(frame: int) -> str:
    """The annotation file of frame `frame` (0-based): 1-based, 6 digits."""
    return f"{frame + 1:06d}.pts"


def is_vw300(root: Path) -> bool:
    """Whether a folder is in the 300-VW layout: it has <ID>/vid.avi."""
    return any(Path(root).glob(f"*/{VIDEO_NAME}"))


def annotation_files(folder: Path) -> dict[int, Path]:
    """The .pts files of an annot/ folder by 0-based frame; a name that is not a 1-based 6-digit frame number is refused."""
    if not folder.is_dir():
        raise WflwvError(folder, "no such annotation folder (expected <ID>/annot/000001.pts...)")
    files = {}
    for path in sorted(folder.glob("*.pts")):
        if path.name.startswith(io.PARTIAL_PREFIX):
            continue
        match = PTS_NAME.fullmatch(path.name)
        if not match or int(match[1]) == 0:
            raise WflwvError(path, "the name is not a frame number: 6 digits counting from 000001.pts (1-based)")
        files[int(match[1]) - 1] = path
    return files


def held_boxes(landmarks: np.ndarray) -> np.ndarray:
    """(frames, 4) tight boxes of each frame's points; a frame without points holds the nearest annotated frame's box."""
    boxes = np.concatenate([np.min(landmarks, axis=1), np.max(landmarks, axis=1)], axis=1)
    annotated, frames = np.flatnonzero(~np.isnan(boxes).any(axis=1)), np.arange(len(boxes))
    after = annotated[np.minimum(np.searchsorted(annotated, frames), len(annotated) - 1)]
    before = annotated[np.maximum(np.searchsorted(annotated, frames) - 1, 0)]
    return boxes[np.where(np.abs(before - frames) <= np.abs(after - frames), before, after)]


class Vw300Set:
    """A folder in the 300-VW layout, read as a video set: the interface of VideoSet that bench and report use."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.lists = VideoSet(root)  # the hard/easy ID lists, when the folder has them

    def ids(self) -> list[str]:
        """Every ID with a vid.avi, sorted."""
        paths = sorted(self.root.glob(f"*/{VIDEO_NAME}"))
        for path in paths:
            if not is_valid_id(path.parent.name):
                raise WflwvError(path.parent, "the folder name is not a video ID")
        return [path.parent.name for path in paths]

    def splits(self) -> dict[str, list[str]]:
        """The ID lists' splits where there are any; else the official test categories of the IDs present; else all."""
        if any(self.lists.has_split(split) for split in SPLITS):
            return {split: self.lists.ids(split) for split in SPLITS if self.lists.has_split(split)}
        present = set(self.ids())
        categories = {name: [i for i in ids if i in present] for name, ids in CATEGORIES.items()}
        return {name: ids for name, ids in categories.items() if ids} or {"all": self.ids()}

    def video_path(self, video_id: str) -> Path:
        return self.root / validate_id(video_id) / VIDEO_NAME

    def annot_path(self, video_id: str) -> Path:
        return self.root / validate_id(video_id) / ANNOT_DIR

    landmarks_path = annot_path  # where a video's landmarks are, for errors that name them

    def load_landmarks(self, video_id: str, n_frames: int) -> np.ndarray:
        """(n_frames, 68, 2) wflwv pixels, NaN for a frame without an annotation; annotations past the end are ignored."""
        files = annotation_files(self.annot_path(video_id))
        landmarks = np.full((n_frames, SCHEME.n_points, 2), np.nan)
        for frame, path in files.items():
            if frame < n_frames:
                landmarks[frame] = read_annotation(path)
        if np.isnan(landmarks).all():
            raise WflwvError(self.annot_path(video_id), f"no annotation for any of the video's {n_frames} frames")
        return landmarks

    def load(self, video_id: str) -> VideoItem:
        info = probe(self.video_path(video_id))
        landmarks = self.load_landmarks(video_id, info.n_frames)
        boxes = check_boxes(self.annot_path(video_id), held_boxes(landmarks))
        return VideoItem(video_id, self.video_path(video_id), landmarks, boxes, info.n_frames, info.fps)

    def input_digests(self, video_id: str) -> dict[str, str]:
        """Digests of what a video's predictions and scores depend on: the video and its annotation files (the boxes' source)."""
        annotations = io.digest({path.name: path for path in annotation_files(self.annot_path(video_id)).values()})  # by name and content
        return {"video": io.file_digest(self.video_path(video_id)), "boxes": annotations, "landmarks": annotations}

    def write(self, video_id: str, source: Path, landmarks: np.ndarray) -> None:
        """One video: `source` remuxed into vid.avi and a .pts file per frame with points (68, 2 each; NaN rows get none).
        The annotations go first, each atomically, stale ones are removed, and vid.avi, which makes the ID visible, last."""
        annot = self.annot_path(video_id)
        written = set()
        for frame, points in enumerate(landmarks):
            if not np.isnan(points).any():
                io.save_text(annot / pts_name(frame), format_pts(points))
                written.add(pts_name(frame))
        for stale in set(annotation_files(annot).values()) - {annot / name for name in written}:
            stale.unlink()
        with io.atomic_path(self.video_path(video_id)) as tmp:
            remux_to_avi(source, tmp)
            n_frames = probe(tmp).n_frames
            if n_frames != len(landmarks):
                raise WflwvError(source, f"remuxed into AVI it has {n_frames} frames, not its {len(landmarks)}: re-encode it without an edit list")


# Stream formats that MP4 stores length-prefixed and AVI needs as a byte stream.
ANNEX_B_FILTERS = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}


def remux_to_avi(source: Path, target: Path) -> None:
    """Copy the video stream of `source` into an AVI file without re-encoding: the frames decode to the same pixels."""
    if quarter_turns(source):
        raise WflwvError(source, "has a display rotation, which AVI cannot carry: re-encode it upright first")
    with open_video(source) as container, av.open(str(target), "w", format="avi") as output:
        stream = container.streams.video[0]
        out = output.add_stream_from_template(stream)
        out.time_base = Fraction(1) / Fraction(stream.average_rate or stream.guessed_rate)
        name = ANNEX_B_FILTERS.get(stream.codec_context.name)
        bitstream = BitStreamFilterContext(name, stream, out) if name else None
        try:
            for packet in _with_flush(container.demux(stream)):
                for filtered in bitstream.filter(packet) if bitstream else [packet] if packet else []:
                    filtered.stream = out
                    output.mux(filtered)
        except av.FFmpegError as error:
            raise WflwvError(source, f"cannot be remuxed into AVI ({error.strerror})") from None


def _with_flush(packets: Iterator[av.Packet]) -> Iterator[av.Packet | None]:
    """The packets that carry data, then None (a bitstream filter's flush)."""
    yield from (packet for packet in packets if packet.dts is not None)
    yield None


def open_video_set(root: str | Path) -> VideoSet | Vw300Set:
    """The video set of a folder: 300-VW's layout where it has <ID>/vid.avi, else WFLW-V's."""
    return Vw300Set(root) if is_vw300(Path(root)) else VideoSet(root)
