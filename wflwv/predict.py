"""`wflwv predict`: stable landmarks for any video, streamed in memory that does not grow with its length.

The video is decoded three times, each decoder at its own place in the file, so that no frame is
held for long: the first feeds MTCNN and the streamed box steps (wflwv.boxes.streaming), which look
a bounded number of frames ahead; the second feeds LDEQ + RwR (wflwv.inference.predict_frames),
one face segment after another, each a new stream whose state starts from zero; the third, with an
overlay, is drawn on. Landmark rows are written as they come, in row groups (parquet) or lines (CSV).
The model runs in the memory layout and on the torch threads measured fastest for it on the device
(wflwv.tuning), while a reader thread decodes and crops the next frame.
"""

import collections
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wflwv import io
from wflwv.allocator import fix_mmap_threshold
from wflwv.boxes.stage import BoxSettings
from wflwv.boxes.streaming import Segmented, stream_boxes
from wflwv.data.video import VideoInfo, iter_frames, probe, write_video
from wflwv.errors import WflwvError
from wflwv.inference import VideoStream, predict_frames
from wflwv.landmarks import N_LANDMARKS
from wflwv.methods import FRAMES_PER_CALL, LandmarkMethod
from wflwv.models import LDEQ, create_model, load_checkpoint, load_config, load_weights, read_checkpoint
from wflwv.predictions import point_columns
from wflwv.schemes import get_scheme
from wflwv.tuning import choose, torch_threads

FORMATS = (".parquet", ".csv")


@dataclass(frozen=True)
class PredictSettings:
    rwr_iters: int = 2  # RwR's cap on solver iterations per frame (a segment's first frame gets the config's max_iters)
    device: str = "cpu"
    rows_per_group: int = 256  # landmark rows written at a time
    boxes: BoxSettings = field(default_factory=BoxSettings)
    protocol: str = "wflwv"  # "released": the authors' crop and solver, the RwR cap on first frames too (docs/protocol.md)


@dataclass(frozen=True)
class Row:
    frame: int
    track: int  # the face segment; -1 without a face
    landmarks: np.ndarray | None  # (98, 2) frame pixels, None without a face
    iterations: int  # solver iterations, 0 without a face


@dataclass(frozen=True)
class PredictSummary:
    frames: int
    face_frames: int
    segments: int
    mean_iterations: float

    def __str__(self) -> str:
        if self.face_frames == 0:
            return f"no face found in any of the {self.frames} frames (all marked face_found = false)"
        solver = f"; {self.mean_iterations:.2f} solver iterations per face frame" if self.mean_iterations else ""  # a landmark method has no solver
        return f"{self.face_frames} of {self.frames} frames with a face, in {self.segments} segment(s){solver}"


def load_model(model: str, checkpoint: Path | None = None, device: str = "cpu") -> LDEQ:
    """An LDEQ from a checkpoint path (wflwv's or the authors' released format), or from a config name
    or TOML (shipped in models/, or a path) with the weights of `checkpoint`."""
    path = Path(model)
    if path.suffix != ".toml" and path.is_file():
        if checkpoint is not None:
            raise WflwvError(checkpoint, "--checkpoint goes with a config name; --model is already a checkpoint")
        network, _ = load_checkpoint(path, device)
    else:
        config = load_config(model)
        if checkpoint is None:
            raise WflwvError(path, "a model config needs its weights: pass --checkpoint PATH")
        network = create_model(config)
        load_weights(network, read_checkpoint(checkpoint, device), checkpoint)
        network = network.to(device)
    if not isinstance(network, LDEQ):
        raise WflwvError(checkpoint or path, f"predict runs LDEQ + RwR; this is a {type(network).__name__}")
    return network


def predict_video(video: str | Path, model: LDEQ | LandmarkMethod, out: str | Path, overlay: str | Path | None = None, settings: PredictSettings = PredictSettings()) -> PredictSummary:
    """Write the landmarks of every frame of `video` to `out` (.parquet or .csv) and, if asked, the
    video with its landmarks drawn to `overlay` (mp4); both atomically."""
    video, out = Path(video), Path(out)
    if out.suffix not in FORMATS:
        raise WflwvError(out, f"unknown landmarks format {out.suffix!r}: use {' or '.join(FORMATS)}")
    for output in (out, overlay):
        if output is not None and (Path(output).resolve() == video.resolve() or (Path(output).exists() and video.exists() and Path(output).samefile(video))):
            raise WflwvError(output, f"is the input video {video}: it would be overwritten")
    if overlay is not None and Path(overlay).resolve() == out.resolve():
        raise WflwvError(overlay, "is also the landmarks file (--out)")
    info = probe(video)
    if info.n_frames == 0:
        raise WflwvError(video, "video has no frames")
    fix_mmap_threshold()
    counts = collections.Counter()
    method = isinstance(model, LandmarkMethod)
    n_points = get_scheme(model.scheme).n_points if method else N_LANDMARKS
    with io.atomic_path(out) as tmp, RowWriter(tmp, info.fps, settings.rows_per_group, csv=out.suffix == ".csv", n_points=n_points) as writer:
        rows = writer.written(counted((method_rows if method else frame_rows)(video, info, model, settings), counts))
        if overlay is None:
            collections.deque(rows, maxlen=0)
        else:
            write_video(overlay, (draw(frame, row) for row, frame in zip(rows, iter_frames(video), strict=True)), info.fps)
    return PredictSummary(info.n_frames, counts["face"], counts["segments"], counts["iterations"] / max(counts["face"], 1))


def frame_rows(video: Path, info: VideoInfo, model: LDEQ, settings: PredictSettings) -> Iterator[Row]:
    """One Row per frame, in order."""
    boxes = stream_boxes(iter_frames(video), (info.width, info.height), info.fps, settings.boxes)
    starts: list[int] = []  # first frame of each face segment, by stream number
    streams = face_streams(iter_frames(video), boxes, starts)
    choices = choose(model, settings.device, batches=(1,), cap=settings.rwr_iters)  # one video: RwR solves its frames one after another
    with torch_threads(choices.threads):
        solved = predict_frames(model, streams, slots=1, max_iters=settings.rwr_iters, protocol=settings.protocol, device=settings.device, channels_last=choices.channels_last,
                                prefetch=choices.prefetch)
        next_frame = 0
        for number, prediction in solved:
            if prediction is None:
                continue
            frame = starts[number] + prediction.index
            yield from (Row(index, -1, None, 0) for index in range(next_frame, frame))
            yield Row(frame, number, prediction.landmarks, prediction.iterations)
            next_frame = frame + 1
    yield from (Row(index, -1, None, 0) for index in range(next_frame, info.n_frames))


def method_rows(video: Path, info: VideoInfo, method: LandmarkMethod, settings: PredictSettings) -> Iterator[Row]:
    """One Row per frame, in order, from a landmark method given the frames and boxes FRAMES_PER_CALL consecutive frames at a time."""
    numbered = enumerate(zip(iter_frames(video), stream_boxes(iter_frames(video), (info.width, info.height), info.fps, settings.boxes)))
    while chunk := list(itertools.islice(numbered, FRAMES_PER_CALL)):
        boxes = np.stack([np.full(4, np.nan) if box is None else box[:4] for _, (_, (_, box)) in chunk])
        for (index, (_, (segment, _))), points in zip(chunk, method.predict(np.stack([frame for _, (frame, _) in chunk]), boxes)):
            found = segment is not None and np.isfinite(points).all()
            yield Row(index, segment if found else -1, points if found else None, 0)


def face_streams(frames: Iterable[np.ndarray], boxes: Iterable[Segmented], starts: list[int]) -> Iterator[VideoStream]:
    """One lazy stream per face segment; frames without a face are decoded and dropped. Appends each
    segment's first frame index to `starts`."""
    numbered = enumerate(zip(frames, boxes))
    for segment, group in itertools.groupby(numbered, key=lambda item: item[1][1][0]):
        if segment is None:
            continue
        first = next(group)
        starts.append(first[0])
        for_frames, for_boxes = itertools.tee(itertools.chain([first], group))
        yield VideoStream(f"face segment {segment}", (frame for _, (frame, _) in for_frames), (box for _, (_, (_, box)) in for_boxes))


def counted(rows: Iterable[Row], counts: collections.Counter) -> Iterator[Row]:
    for row in rows:
        if row.landmarks is not None:
            counts["face"] += 1
            counts["iterations"] += row.iterations
            counts["segments"] = max(counts["segments"], row.track + 1)
        yield row


def columns(n_points: int = N_LANDMARKS) -> list[str]:
    return ["frame", "time", "face_found", "track", *point_columns(n_points), "iterations"]


class RowWriter:
    """Landmark rows written `rows_per_group` at a time to a parquet (row groups) or CSV file."""

    def __init__(self, path: Path, fps: float, rows_per_group: int, csv: bool, n_points: int = N_LANDMARKS):
        self.path, self.fps, self.rows_per_group, self.as_csv, self.n_points = path, fps, rows_per_group, csv, n_points
        self.pending: list[Row] = []
        self.parquet: pq.ParquetWriter | None = None
        self.csv = None

    def __enter__(self) -> "RowWriter":
        if self.as_csv:
            self.csv = open(self.path, "w", newline="")
            self.csv.write(",".join(columns(self.n_points)) + "\n")
        return self

    def written(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            self.pending.append(row)
            if len(self.pending) == self.rows_per_group:
                self.flush()
            yield row
        self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        table = self.table(self.pending)
        if self.csv is not None:
            self.csv.write(table.to_pandas().to_csv(header=False, index=False))
        else:
            self.parquet = self.parquet or pq.ParquetWriter(self.path, table.schema)
            self.parquet.write_table(table)
        self.pending = []

    def table(self, rows: list[Row]) -> pa.Table:
        frames = np.array([row.frame for row in rows], dtype=np.int64)
        points = np.stack([np.full((self.n_points, 2), np.nan) if row.landmarks is None else row.landmarks for row in rows]).reshape(len(rows), -1)
        data = {"frame": frames, "time": frames / self.fps, "face_found": np.array([row.landmarks is not None for row in rows]), "track": np.array([row.track for row in rows], dtype=np.int64)}
        data |= {name: points[:, i] for i, name in enumerate(columns(self.n_points)[4:-1])}
        data["iterations"] = np.array([row.iterations for row in rows], dtype=np.int64)
        return pa.table(data)

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.flush()
        if self.csv is not None:
            self.csv.close()
        if self.parquet is not None:
            self.parquet.close()


def draw(frame: np.ndarray, row: Row) -> np.ndarray:
    """The frame with its landmarks drawn as green dots (unchanged without a face)."""
    if row.landmarks is None:
        return frame
    frame = frame.copy()
    radius = max(1, round(min(frame.shape[:2]) / 200))
    for x, y in row.landmarks:
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(frame, (round(x), round(y)), radius, (0, 255, 0), -1, lineType=cv2.LINE_AA)
    return frame
